# SPDX-License-Identifier: GPL-3.0-or-later
"""Run one of the collection's playbooks for the demos and benchmarks.

ansible-playbook runs with the collection from .build/link and the test
callback (tests/integration/callback_plugins/hostprep_results.py), which
writes every task result as one JSON line to the log; the output streams to
the terminal. Returns (rc, task records, seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def run(playbook: str, inventory: str, extra: dict | None, log: str, forks: int | None = None,
        quiet_ok: bool = False, env: dict | None = None) -> tuple[int, list[dict], float]:
    """playbook: a path, or a name under playbooks/ (site.yml)."""
    path = playbook if os.sep in playbook else os.path.join(ROOT, 'playbooks', playbook)
    full_env = dict(os.environ,
                    ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.build', 'link'),
                    ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, 'tests', 'integration', 'callback_plugins'),
                    ANSIBLE_CALLBACKS_ENABLED='hostprep_results',
                    ANSIBLE_DISPLAY_SKIPPED_HOSTS='false',
                    HOSTPREP_RESULT_LOG=log)
    if quiet_ok:
        full_env['ANSIBLE_DISPLAY_OK_HOSTS'] = 'false'
    full_env.update(env or {})
    if os.path.exists(log):
        os.unlink(log)
    args = ['-i', inventory, path] + (['-f', str(forks)] if forks else [])
    if extra:
        args += ['-e', json.dumps(extra)]
    shown = [os.path.relpath(a, ROOT) if a.startswith(ROOT + os.sep) else a for a in args]
    print('$ ansible-playbook ' + ' '.join("'%s'" % a if a.startswith('{') else a for a in shown), flush=True)
    cmd = [os.path.join(BIN, 'ansible-playbook')] + args
    start = time.monotonic()
    proc = subprocess.run(cmd, env=full_env, check=False)
    elapsed = time.monotonic() - start
    records = []
    if os.path.exists(log):
        with open(log, encoding='utf-8') as handle:
            records = [json.loads(line) for line in handle if line.strip()]
    return proc.returncode, records, elapsed


def changed(records: list[dict]) -> int:
    """How many task results reported a change."""
    return sum(1 for rec in records if rec['status'] == 'changed')
