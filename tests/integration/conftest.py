# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration-test harness: a real netns lab and real ansible-playbook runs.

Nothing here mocks the kernel. A missing prerequisite (root, ip netns, a
tool) fails the run: these tests never skip themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'lab'))

from netns_lab import Lab  # noqa: E402  pylint: disable=wrong-import-position

BIN = os.path.dirname(sys.executable)
LINKROOT = os.path.join(ROOT, '.build', 'link')


def require(condition: bool, what: str) -> None:
    """A missing prerequisite is a failure, never a skip."""
    if not condition:
        pytest.fail('prerequisite missing: %s (make test installs it; run as root)' % what, pytrace=False)


@pytest.fixture(scope='session', autouse=True)
def prerequisites():
    require(os.geteuid() == 0, 'root')
    for tool in ('ip', 'ping', 'tracepath'):
        require(shutil.which(tool) is not None, tool)
    require(shutil.which('ansible-playbook', path=BIN) is not None, 'ansible-playbook in the venv')


@pytest.fixture(scope='session')
def lab(prerequisites):
    """The storage-network lab, built once for the session."""
    netlab = Lab('hpt%d' % (os.getpid() % 1000), fleet=3)
    info = netlab.up()
    info['lab'] = netlab
    yield info
    netlab.down()


class PlaybookRun:
    def __init__(self, rc: int, stdout: str, records: list[dict]) -> None:
        self.rc = rc
        self.stdout = stdout
        self.records = records

    def results(self, task: str | None = None, host: str | None = None) -> list[dict]:
        # role tasks are recorded as "ROLE : name"
        return [r for r in self.records
                if (task is None or r['task'] == task or r['task'].endswith(' : ' + task))
                and (host is None or r['host'] == host)]

    def result(self, task: str, host: str | None = None) -> dict:
        found = self.results(task, host)
        assert found, 'task %r did not run:\n%s' % (task, self.stdout[-4000:])
        return found[-1]['result']

    @property
    def changed(self) -> int:
        return sum(1 for r in self.records if r['status'] == 'changed')

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r['status'] == 'failed'
                and not r['result'].get('_ansible_ignore_errors')]


class Ansible:
    """Runs real ansible-playbook processes against a local inventory."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir

    def inventory(self, hosts: dict[str, dict] | None = None) -> str:
        hosts = hosts or {'localhost': {}}
        inv = {'all': {'hosts': {}, 'vars': {
            'ansible_connection': 'local',
            'ansible_python_interpreter': sys.executable,
        }}}
        for name, hostvars in hosts.items():
            inv['all']['hosts'][name] = hostvars
        path = os.path.join(self.workdir, 'inventory-%s.yml' % uuid.uuid4().hex[:8])
        with open(path, 'w', encoding='utf-8') as handle:
            yaml.safe_dump(inv, handle)
        return path

    def _command(self, path: str, inventory: str | None, extra_vars: dict | None, check: bool, diff: bool,
                 forks: int, extra_args: list | None) -> tuple[list[str], dict[str, str], str]:
        log = os.path.join(self.workdir, 'results-%s.jsonl' % uuid.uuid4().hex[:8])
        env = dict(os.environ)
        env.update({
            'ANSIBLE_COLLECTIONS_PATH': LINKROOT,
            'ANSIBLE_COLLECTIONS_SCAN_SYS_PATH': 'false',
            'ANSIBLE_CALLBACK_PLUGINS': os.path.join(HERE, 'callback_plugins'),
            'ANSIBLE_CALLBACKS_ENABLED': 'hostprep_results',
            'ANSIBLE_HOST_KEY_CHECKING': 'false',
            'ANSIBLE_RETRY_FILES_ENABLED': 'false',
            'ANSIBLE_NOCOLOR': '1',
            'ANSIBLE_FORKS': str(forks),
            'HOSTPREP_RESULT_LOG': log,
        })
        cmd = [os.path.join(BIN, 'ansible-playbook'), '-i', inventory or self.inventory(), path]
        if extra_vars:
            cmd += ['-e', json.dumps(extra_vars)]
        if check:
            cmd.append('--check')
        if diff:
            cmd.append('--diff')
        cmd += extra_args or []
        return cmd, env, log

    def playbook(self, path: str, inventory: str | None = None, extra_vars: dict | None = None,
                 check: bool = False, diff: bool = True, forks: int = 5, extra_args: list | None = None) -> PlaybookRun:
        cmd, env, log = self._command(path, inventory, extra_vars, check, diff, forks, extra_args)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        records = []
        if os.path.exists(log):
            with open(log, encoding='utf-8') as handle:
                records = [json.loads(line) for line in handle if line.strip()]
        return PlaybookRun(proc.returncode, proc.stdout + proc.stderr, records)

    def spawn(self, path: str, inventory: str | None = None, extra_vars: dict | None = None) -> subprocess.Popen:
        """Start ansible-playbook in its own process group, for tests that kill the controller mid-run."""
        cmd, env, dummy_log = self._command(path, inventory, extra_vars, False, False, 5, None)
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def module_tasks(self, module: str, tasks, inventory: str | None = None) -> dict[str, dict]:
        """Several calls of one module in ONE ansible-playbook run (every
        start costs seconds): tasks is {name: args} or [(name, args, check_mode)].
        Each task may fail; returns name -> result, with 'failed' set from the
        task's status (ansible-core 2.19 leaves it out of the recorded result)."""
        if isinstance(tasks, dict):
            tasks = [(name, args, False) for name, args in tasks.items()]
        play = [{
            'name': '%s under test' % module,
            'hosts': 'all',
            'gather_facts': False,
            'tasks': [{'name': name, module: args, 'check_mode': check, 'ignore_errors': True}
                      for name, args, check in tasks],
        }]
        path = os.path.join(self.workdir, 'play-%s.yml' % uuid.uuid4().hex[:8])
        with open(path, 'w', encoding='utf-8') as handle:
            yaml.safe_dump(play, handle)
        run = self.playbook(path, inventory=inventory)
        results = {}
        for name, dummy_args, dummy_check in tasks:
            found = run.results(name)
            assert found, 'task %r did not run (rc %d):\n%s' % (name, run.rc, run.stdout[-4000:])
            results[name] = dict(found[-1]['result'], failed=found[-1]['status'] == 'failed')
        return results

    def module(self, name: str, args: dict, check: bool = False, inventory: str | None = None) -> dict:
        """Run one module in a one-task playbook; return its result (failed or not)."""
        return self.module_tasks(name, [('module under test', args, check)], inventory=inventory)['module under test']


@pytest.fixture(scope='session')
def ansible(prerequisites):
    workdir = tempfile.mkdtemp(prefix='hostprep-it-')
    yield Ansible(workdir)
    shutil.rmtree(workdir, ignore_errors=True)
