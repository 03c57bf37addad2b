# SPDX-License-Identifier: GPL-3.0-or-later
"""Re-run cost (issue 12): an idempotent run of each role against a no-op playbook with the same tasks.

For each role (storage_network and validate on a netns lab host, docker_storage
on a private dockerd the role manages): converge once, then alternate REPEAT
times the role's idempotent run and a no-op playbook built from that run's own
task records (one ``ansible.builtin.ping`` per module task the role ran on the
host, one ``ansible.builtin.debug`` per controller-side task, one skipped task
per skipped one). Prints the medians, their ratio, and the costliest tasks of
one extra run under ansible.posix.profile_tasks; writes bench/results/rerun_cost.json.

    .venv/bin/python -m bench.rerun_cost [--repeat 5] [--roles storage_network,validate,docker_storage]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import tempfile

from tests.lab import ROOT
from tests.lab.dockerd import loop_filesystem, unmount_all
from tests.lab.netns_lab import Lab, python_in
from tests.lab.playbook import Ansible, write_yaml
from tests.lab.playbook import run as run_playbook
from tests.lab.private_dockerd import Engine

# Tasks that run on the controller only (no module on the host).
CONTROLLER = {'ansible.builtin.set_fact', 'ansible.builtin.assert', 'ansible.builtin.debug', 'ansible.builtin.fail',
              'ansible.builtin.include_tasks', 'ansible.builtin.import_tasks', 'ansible.builtin.validate_argument_spec',
              'hostprep.container_host.fleet_report', 'ansible.builtin.meta'}
PROFILE_LINE = re.compile(r'^(.+?) -+ (\d+\.\d+)s$')


def noop_play(records: list[dict]) -> list[dict]:
    tasks = []
    for index, record in enumerate(records):
        name = 'noop %d (%s)' % (index, record['task'])
        if record['status'] == 'skipped':
            tasks.append({'name': name, 'ansible.builtin.debug': {'msg': 'x'}, 'when': False})
        elif record['action'] in CONTROLLER:
            tasks.append({'name': name, 'ansible.builtin.debug': {'msg': 'x'}})
        else:
            tasks.append({'name': name, 'ansible.builtin.ping': {}})
    return [{'name': 'no-op with the same tasks', 'hosts': 'all', 'gather_facts': False, 'tasks': tasks}]


def profile(ansible: Ansible, playbook: str, inventory: str, variables: dict) -> list[tuple[str, float]]:
    """The costliest tasks of one run (ansible.posix.profile_tasks)."""
    env = {'ANSIBLE_CALLBACKS_ENABLED': 'hostprep_results,ansible.posix.profile_tasks', 'PROFILE_TASKS_TASK_OUTPUT_LIMIT': '8'}
    out = run_playbook(playbook, inventory, os.path.join(ansible.workdir, 'profile.jsonl'), variables, env=env)
    tail = out.stdout.rsplit('PLAY RECAP', 1)[-1]
    return [(m.group(1).strip(), float(m.group(2))) for m in map(PROFILE_LINE.match, tail.splitlines()) if m][:8]


def measure(ansible: Ansible, name: str, playbook: str, inventory: str, variables: dict, repeat: int) -> dict:
    first = ansible.playbook(playbook, inventory, variables, diff=False)
    if first.rc != 0:
        raise RuntimeError('%s: converge failed:\n%s' % (name, first.stdout[-3000:]))
    role_times, noop_times, changed = [], [], []
    noop = None
    for dummy in range(repeat):
        run = ansible.playbook(playbook, inventory, variables, diff=False)
        if run.rc != 0:
            raise RuntimeError('%s: idempotent run failed:\n%s' % (name, run.stdout[-3000:]))
        role_times.append(run.seconds)
        changed.append(run.changed)
        if noop is None:
            noop = write_yaml(os.path.join(ansible.workdir, 'noop-%s.yml' % name), noop_play(run.records))
            tasks = len(run.records)
        noop_run = ansible.playbook(noop, inventory, {}, diff=False)
        noop_times.append(noop_run.seconds)
    role_s, noop_s = statistics.median(role_times), statistics.median(noop_times)
    result = {'role': name, 'tasks': tasks, 'role_median_s': round(role_s, 2), 'noop_median_s': round(noop_s, 2),
              'ratio': round(role_s / noop_s, 2), 'changed': changed, 'role_s': [round(x, 2) for x in role_times],
              'noop_s': [round(x, 2) for x in noop_times], 'costliest': profile(ansible, playbook, inventory, variables)}
    print(json.dumps(result), flush=True)
    return result


def netns_roles(ansible: Ansible, workdir: str, repeat: int, roles: list[str]) -> list[dict]:
    lab = Lab('hprc%d' % (os.getpid() % 1000), fleet=1)
    info = lab.up()
    try:
        member = info['fleet'][0]
        host = {'ansible_python_interpreter': python_in(member['netns'], workdir), 'ansible_become': False}
        inventory = ansible.inventory({'lab-host': host})
        out = []
        if 'storage_network' in roles:
            out.append(measure(ansible, 'storage_network', os.path.join(ROOT, 'playbooks', 'storage_network.yml'), inventory, {
                'hostprep_hosts': 'all', 'storage_network_links': [{'name': 'eth0'}],
                'storage_network_targets': [info['targets']['t9000']['v4']], 'storage_network_persist': 'none',
                'storage_network_sysctl_file': os.path.join(workdir, 'pmtud.conf')}, repeat))
        if 'validate' in roles:
            out.append(measure(ansible, 'validate', os.path.join(ROOT, 'playbooks', 'validate.yml'), inventory, {
                'hostprep_hosts': 'all', 'validate_benchmark': False, 'validate_expected_mtu': 1500,
                'validate_storage_targets': [info['targets']['t1500']['v4']],
                'validate_report_dir': os.path.join(workdir, 'report')}, repeat))
        return out
    finally:
        lab.down()


def docker_storage(ansible: Ansible, workdir: str, repeat: int) -> dict:
    with contextlib.ExitStack() as stack:
        mount = stack.enter_context(loop_filesystem(workdir, 'ext4', size_mb=256))
        engine = Engine(workdir, os.path.join(mount, 'docker')).start()
        stack.callback(lambda: (engine.stop(), unmount_all(engine.data_root), unmount_all(engine.dir)))
        return measure(ansible, 'docker_storage', os.path.join(ROOT, 'playbooks', 'docker_storage.yml'), ansible.inventory(),
                       engine.vars('overlay2'), repeat)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--roles', default='storage_network,validate,docker_storage')
    args = parser.parse_args()
    roles = args.roles.split(',')
    workdir = tempfile.mkdtemp(prefix='hp-rerun-')
    ansible = Ansible(workdir)
    results = netns_roles(ansible, workdir, args.repeat, roles)
    if 'docker_storage' in roles:
        results.append(docker_storage(ansible, workdir, args.repeat))
    os.makedirs(os.path.join(ROOT, 'bench', 'results'), exist_ok=True)
    with open(os.path.join(ROOT, 'bench', 'results', 'rerun_cost.json'), 'w', encoding='utf-8') as handle:
        json.dump(results, handle, indent=2)
    print('\n| Role | Tasks | Idempotent run (s) | No-op, same tasks (s) | Ratio |\n|---|---|---|---|---|')
    for item in results:
        cells = (item['role'], item['tasks'], item['role_median_s'], item['noop_median_s'], item['ratio'])
        print('| %s | %d | %.2f | %.2f | %.2f |' % cells)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
