# SPDX-License-Identifier: GPL-3.0-or-later
"""Run `molecule test -s SCENARIO`, streaming its output, and print how long
each action (create, converge, idempotence, verify, destroy, ...) took.

    molecule_run.py SCENARIO [--timings FILE] [-- extra molecule test arguments]

The timings are also appended as one JSON line to FILE (default
.build/vm-timings.jsonl), so docs/benchmarks.md can quote them. Exits with
molecule's return code.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..'))
# "INFO     btrfs ➜ converge: Executing" / "... converge: Executed: Successful"
ACTION = re.compile(r'\b(?P<scenario>[\w.-]+) \S+ (?P<action>[a-z_]+): (?P<what>Executing|Executed: (?P<how>\w+))')
ANSI = re.compile(r'\x1b\[[0-9;]*m')


def action_times(events: list[tuple[float, str, str, str | None]]) -> list[dict]:
    """(time, action, 'Executing'|'Executed', outcome) -> one row per run of an action."""
    rows, started = [], {}
    for stamp, action, what, how in events:
        if what == 'Executing':
            started[action] = stamp
        elif action in started:
            rows.append({'action': action, 'seconds': round(stamp - started.pop(action), 1), 'outcome': how})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('scenario')
    parser.add_argument('--timings', default=os.path.join(ROOT, '.build', 'vm-timings.jsonl'))
    parser.add_argument('extra', nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    extra = args.extra[1:] if args.extra[:1] == ['--'] else args.extra
    molecule = os.path.join(os.path.dirname(sys.executable), 'molecule')
    cmd = [molecule, 'test', '-s', args.scenario] + extra
    events = []
    start = time.monotonic()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT) as proc:
        for raw in proc.stdout:
            line = raw.decode(errors='replace')
            sys.stdout.write(line)
            sys.stdout.flush()
            match = ACTION.search(ANSI.sub('', line))
            if match and match.group('scenario') == args.scenario:
                events.append((time.monotonic(), match.group('action'), match.group('what').split(':')[0],
                               match.group('how')))
        rc = proc.wait()
    total = round(time.monotonic() - start, 1)
    rows = action_times(events)
    print('==> %s: %s' % (args.scenario, ', '.join('%s %.0f s' % (r['action'], r['seconds']) for r in rows)
                          + ' (total %.0f s, rc %d)' % (total, rc)), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.timings)), exist_ok=True)
    with open(args.timings, 'a', encoding='utf-8') as handle:
        handle.write(json.dumps({'scenario': args.scenario, 'date': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
                                 'rc': rc, 'total_seconds': total, 'actions': rows}) + '\n')
    return rc


if __name__ == '__main__':
    sys.exit(main())
