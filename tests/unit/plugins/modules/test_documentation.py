# SPDX-License-Identifier: GPL-3.0-or-later
"""The modules' documentation as ansible-doc renders it, doc fragments merged in.

Every module declares the action_group attribute with exactly the groups meta/runtime.yml puts it in (issue 11),
and the attributes every module has come from plugins/doc_fragments/attributes.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..')
COLLECTION = 'hostprep.container_host'
MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, 'plugins', 'modules')) if name.endswith('.py'))
DOCKER_HOST_MODULES = ['btrfs_data_root', 'containerd_snapshotter', 'docker_cow_benchmark', 'docker_images_archive',
                       'docker_storage_info', 'docker_storage_reset']


def ansible_doc(names):
    command = os.path.join(os.path.dirname(sys.executable), 'ansible-doc')
    run = subprocess.run([command, '--json'] + ['%s.%s' % (COLLECTION, name) for name in names],
                         check=False, capture_output=True, text=True)
    found = {name.rsplit('.', 1)[1]: entry['doc'] for name, entry in json.loads(run.stdout or '{}').items()}
    return found, run.stderr


@pytest.fixture(scope='module')
def docs():
    """One ansible-doc run for all modules; when one module's documentation breaks it, one run per module."""
    found, stderr = ansible_doc(MODULES)
    if not found:
        for name in MODULES:
            one, error = ansible_doc([name])
            found.update(one)
            stderr += error
    return Docs(found, stderr)


class Docs(dict):
    """Each module's documentation; a module without any fails its own tests with ansible-doc's error."""

    def __init__(self, found, stderr):
        super().__init__(found)
        self.stderr = stderr

    def __missing__(self, module):
        pytest.fail('ansible-doc shows no documentation of %s: %s' % (module, self.stderr))


def runtime_groups(module):
    with open(os.path.join(ROOT, 'meta', 'runtime.yml'), encoding='utf-8') as f:
        groups = yaml.safe_load(f)['action_groups']
    return sorted('%s.%s' % (COLLECTION, group) for group, members in groups.items() if module in members)


@pytest.mark.parametrize('module', MODULES)
def test_action_group_lists_every_group_of_runtime_yml(docs, module):
    groups = runtime_groups(module)
    assert groups, '%s is in no action group of meta/runtime.yml' % module
    attribute = docs[module]['attributes']['action_group']
    assert sorted(attribute['membership']) == groups
    description = attribute['description']
    text = ' '.join(description) if isinstance(description, list) else description
    for group in groups:
        assert 'C(group/%s)' % group in text


@pytest.mark.parametrize('module', MODULES)
def test_every_module_declares_the_common_attributes(docs, module):
    attributes = docs[module]['attributes']
    assert {'action_group', 'check_mode', 'diff_mode', 'idempotent', 'platform'} <= set(attributes)
    assert attributes['platform']['platforms'] == 'posix'
    for attribute in attributes.values():
        assert attribute['support'] in ('full', 'partial', 'none', 'N/A') and attribute['description']


@pytest.mark.parametrize('module', DOCKER_HOST_MODULES)
def test_docker_host_comes_from_the_fragment(docs, module):
    option = docs[module]['options']['docker_host']
    assert option['default'] == 'unix:///var/run/docker.sock' and option['type'] == 'str'
    assert option['description'][0].startswith("The Docker engine's API address")
