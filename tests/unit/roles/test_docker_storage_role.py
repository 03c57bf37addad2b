# SPDX-License-Identifier: GPL-3.0-or-later
"""The docker_storage role's task files, read as data: every fact it notes is forgotten (tasks/forget.yml),
and its entry points are documented."""

from __future__ import annotations

import glob
import os

import yaml

ROLE = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'roles', 'docker_storage')


def tasks_of(path: str) -> list[dict]:
    with open(path, encoding='utf-8') as handle:
        return yaml.safe_load(handle) or []


def noted(tasks: list[dict]) -> set[str]:
    """The registers and set_fact names of tasks, blocks included."""
    names: set[str] = set()
    for task in tasks:
        if 'register' in task:
            names.add(task['register'])
        facts = task.get('ansible.builtin.set_fact')
        if isinstance(facts, dict):
            names.update(key for key in facts if key != 'cacheable')
        for part in ('block', 'rescue', 'always'):
            names |= noted(task.get(part) or [])
    return names


def test_every_fact_of_the_role_is_forgotten():
    made: set[str] = set()
    for path in glob.glob(os.path.join(ROLE, 'tasks', '*.yml')):
        if os.path.basename(path) != 'forget.yml':
            made |= noted(tasks_of(path))
    forget = tasks_of(os.path.join(ROLE, 'tasks', 'forget.yml'))
    forgotten = forget[0]['ansible.builtin.set_fact']
    assert set(forgotten) == made
    assert all(value is None for value in forgotten.values())
    assert all(name.startswith('__docker_storage_') for name in made)


def test_each_entry_point_forgets_at_its_start_and_end():
    with open(os.path.join(ROLE, 'meta', 'argument_specs.yml'), encoding='utf-8') as handle:
        entries = yaml.safe_load(handle)['argument_specs']
    assert {'main', 'reset'} <= set(entries)
    for entry in entries:
        tasks = tasks_of(os.path.join(ROLE, 'tasks', entry + '.yml'))
        assert tasks[0].get('ansible.builtin.include_tasks') == 'forget.yml', entry
        assert tasks[-1]['always'][-1].get('ansible.builtin.include_tasks') == 'forget.yml', entry
