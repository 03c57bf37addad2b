# SPDX-License-Identifier: GPL-3.0-or-later
"""The one way the tests, benchmarks and demos run ansible-playbook.

ansible-playbook runs with the collection from .build/link and the callback
of callback_plugins/hostprep_results.py, which writes every task result as a
JSON line to a log; ``run`` reads them back into a ``PlaybookRun``. The tests
capture the output (``Ansible``: inventories, one-module plays); the demos
and benchmarks can stream it to the terminal (``show=True``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import yaml

from . import BIN, LINKROOT, ROOT

CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'callback_plugins')


class PlaybookRun:
    """What one ansible-playbook run did: rc, its output (when captured), the task records and its wall time."""

    def __init__(self, rc: int, stdout: str, records: list[dict], seconds: float = 0.0) -> None:
        self.rc = rc
        self.stdout = stdout
        self.records = records
        self.seconds = seconds

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


def environment(log: str, forks: int | None = None, show: bool = False, quiet_ok: bool = False,
                env: dict | None = None) -> dict[str, str]:
    """ansible-playbook's environment: the collection, the results callback writing to log."""
    full = dict(os.environ,
                ANSIBLE_COLLECTIONS_PATH=LINKROOT,
                ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false',
                ANSIBLE_CALLBACK_PLUGINS=CALLBACKS,
                ANSIBLE_CALLBACKS_ENABLED='hostprep_results',
                ANSIBLE_HOST_KEY_CHECKING='false',
                ANSIBLE_RETRY_FILES_ENABLED='false',
                HOSTPREP_RESULT_LOG=log)
    if forks:
        full['ANSIBLE_FORKS'] = str(forks)
    if show:
        full['ANSIBLE_DISPLAY_SKIPPED_HOSTS'] = 'false'
        if quiet_ok:
            full['ANSIBLE_DISPLAY_OK_HOSTS'] = 'false'
    else:
        full['ANSIBLE_NOCOLOR'] = '1'
    full.update(env or {})
    return full


def arguments(playbook: str, inventory: str, extra_vars: dict | None = None, check: bool = False,
              diff: bool = False, extra_args: list | None = None) -> list[str]:
    """ansible-playbook's arguments; playbook is a path or a name under playbooks/ (site.yml)."""
    path = playbook if os.sep in playbook else os.path.join(ROOT, 'playbooks', playbook)
    args = ['-i', inventory, path]
    if extra_vars:
        args += ['-e', json.dumps(extra_vars)]
    if check:
        args.append('--check')
    if diff:
        args.append('--diff')
    return args + list(extra_args or [])


def records_of(log: str) -> list[dict]:
    """The task records the callback wrote to log."""
    if not os.path.exists(log):
        return []
    with open(log, encoding='utf-8') as handle:
        return [json.loads(line) for line in handle if line.strip()]


def show_command(args: list[str]) -> None:
    shown = [os.path.relpath(a, ROOT) if a.startswith(ROOT + os.sep) else a for a in args]
    print('$ ansible-playbook ' + ' '.join("'%s'" % a if a.startswith('{') else a for a in shown), flush=True)


def run(playbook: str, inventory: str, log: str, extra_vars: dict | None = None, check: bool = False,
        diff: bool = False, forks: int | None = None, extra_args: list | None = None, show: bool = False,
        quiet_ok: bool = False, env: dict | None = None) -> PlaybookRun:
    """Run ansible-playbook and read its task records. show streams the output to
    the terminal (after the command line) instead of capturing it; quiet_ok then
    leaves out the hosts' ok results."""
    args = arguments(playbook, inventory, extra_vars, check, diff, extra_args)
    full_env = environment(log, forks, show, quiet_ok, env)
    if os.path.exists(log):
        os.unlink(log)
    if show:
        show_command(args)
    start = time.monotonic()
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook')] + args, env=full_env, capture_output=not show,
                          text=True, check=False)
    seconds = time.monotonic() - start
    return PlaybookRun(proc.returncode, '' if show else proc.stdout + proc.stderr, records_of(log), seconds)


def write_yaml(path: str, data) -> str:
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump(data, handle)
    return path


def local_host(**hostvars) -> dict:
    """An inventory host that runs on this machine with this Python."""
    return dict({'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}, **hostvars)


class Ansible:
    """Runs real ansible-playbook processes against local inventories written in workdir."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir

    def _path(self, what: str, suffix: str) -> str:
        return os.path.join(self.workdir, '%s-%s.%s' % (what, uuid.uuid4().hex[:8], suffix))

    def inventory(self, hosts: dict[str, dict] | None = None) -> str:
        hosts = hosts or {'localhost': {}}
        inv = {'all': {'hosts': dict(hosts), 'vars': local_host()}}
        return write_yaml(self._path('inventory', 'yml'), inv)

    def playbook(self, path: str, inventory: str | None = None, extra_vars: dict | None = None,
                 check: bool = False, diff: bool = True, forks: int = 5, extra_args: list | None = None) -> PlaybookRun:
        return run(path, inventory or self.inventory(), self._path('results', 'jsonl'), extra_vars, check, diff,
                   forks, extra_args)

    def spawn(self, path: str, inventory: str | None = None, extra_vars: dict | None = None) -> subprocess.Popen:
        """Start ansible-playbook in its own process group, for tests that kill the controller mid-run."""
        args = arguments(path, inventory or self.inventory(), extra_vars)
        env = environment(self._path('results', 'jsonl'), forks=5)
        return subprocess.Popen([os.path.join(BIN, 'ansible-playbook')] + args, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)

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
        run_ = self.playbook(write_yaml(self._path('play', 'yml'), play), inventory=inventory)
        results = {}
        for name, dummy_args, dummy_check in tasks:
            found = run_.results(name)
            assert found, 'task %r did not run (rc %d):\n%s' % (name, run_.rc, run_.stdout[-4000:])
            results[name] = dict(found[-1]['result'], failed=found[-1]['status'] == 'failed')
        return results

    def module(self, name: str, args: dict, check: bool = False, inventory: str | None = None) -> dict:
        """Run one module in a one-task playbook; return its result (failed or not)."""
        return self.module_tasks(name, [('module under test', args, check)], inventory=inventory)['module under test']
