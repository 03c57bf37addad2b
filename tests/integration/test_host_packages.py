# SPDX-License-Identifier: GPL-3.0-or-later
"""roles/host_packages on this host (Debian 12), in check mode only: nothing is installed here.

What the role plans is exactly what dpkg lacks, and dpkg's database and the apt lists are as before;
an interpreter that is not the distribution's python3 (this venv) gets no distribution Python
packages; the roles' switch skips it; an unknown feature is refused by the argument spec. The
installs themselves run offline in the VM lab (molecule/prerequisites).
"""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from tests.lab import ROOT

VARS = os.path.join(ROOT, 'roles', 'host_packages', 'vars', 'main.yml')
INSTALL = 'Install the missing packages (Debian family)'


def dpkg_state() -> str:
    """Every package dpkg knows, with its status and version, and the apt lists' times."""
    out = subprocess.run(['dpkg-query', '--show', '--showformat=${Package} ${db:Status-Status} ${Version}\\n'],
                         capture_output=True, text=True, check=True).stdout
    lists = '/var/lib/apt/lists'
    return out + repr(sorted((name, os.stat(os.path.join(lists, name)).st_mtime_ns) for name in os.listdir(lists)))


def debian_names(features: list[str]) -> list[str]:
    with open(VARS, encoding='utf-8') as handle:
        names = yaml.safe_load(handle)['__host_packages_names']['Debian']
    return sorted({name for feature in features for name in names[feature] or []})


def playbook(ansible, tasks: list[dict]) -> str:
    path = os.path.join(ansible.workdir, 'host_packages.yml')
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump([{'name': 'host_packages', 'hosts': 'all', 'gather_facts': False, 'tasks': tasks}], handle)
    return path


def include(role: str, **variables) -> dict:
    return {'name': 'Include %s' % role, 'ansible.builtin.include_role': {'name': 'hostprep.container_host.' + role},
            'vars': variables}


def status(run, task: str) -> str:
    return run.results(task)[-1]['status']


def test_check_mode_plans_what_dpkg_lacks(ansible):
    features = ['docker_sdk', 'pyroute2', 'lvm_thin', 'xfs', 'ping', 'btrfs']
    names = debian_names(features)
    installed = set(subprocess.run(['dpkg-query', '--show', '--showformat=${Package} ${db:Status-Status}\\n'] + names,
                                   capture_output=True, text=True, check=False).stdout.split('\n'))
    missing = [name for name in names if '%s installed' % name not in installed]
    before = dpkg_state()
    inventory = ansible.inventory({'localhost': {'ansible_python_interpreter': '/usr/bin/python3'}})
    run = ansible.playbook(playbook(ansible, [include('host_packages', host_packages_features=features)]),
                           inventory, check=True)
    assert run.rc == 0, run.stdout[-3000:]
    result = run.result(INSTALL)
    if missing:
        assert result['changed'], result
        planned = result['diff']['prepared']
        assert all(name in planned for name in missing), (missing, planned)
    else:
        assert status(run, INSTALL) == 'skipped', result
    assert dpkg_state() == before


def test_virtualenv_switch_and_bad_input(ansible):
    """This venv's python: no python3-* packages are looked for. The switch: nothing runs. A feature the
    role does not know: the argument spec names it. dpkg's state is unchanged throughout."""
    before = dpkg_state()
    inventory = ansible.inventory({'localhost': {'ansible_python_interpreter': sys.executable}})
    run = ansible.playbook(playbook(ansible, [include('host_packages', host_packages_features=['docker_sdk', 'pyroute2'])]),
                           inventory, check=True)
    assert run.rc == 0, run.stdout[-3000:]
    assert status(run, 'Read which of the packages are installed') == 'skipped'
    assert status(run, INSTALL) == 'skipped'

    service = {'docker_storage_backend': 'overlay2_thin', 'docker_storage_install_packages': False,
               'docker_storage_service_manager': 'command', 'docker_storage_start_command': ['/bin/true'],
               'docker_storage_stop_command': ['/bin/true']}
    task = dict(include('docker_storage', **service))
    task['ansible.builtin.include_role']['tasks_from'] = 'service_manager.yml'
    run = ansible.playbook(playbook(ansible, [task]), inventory, check=True)
    assert run.rc == 0, run.stdout[-3000:]
    assert all(r['status'] == 'skipped' for r in run.records if 'host_packages' in r['task']), run.stdout[-3000:]

    run = ansible.playbook(playbook(ansible, [include('host_packages', host_packages_features=['zfs'])]), inventory)
    assert run.rc != 0 and run.failed
    msg = run.failed[-1]['result']['msg']
    assert 'host_packages_features' in msg and 'zfs' in msg, msg
    assert dpkg_state() == before
