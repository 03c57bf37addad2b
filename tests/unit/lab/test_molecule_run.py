# SPDX-License-Identifier: GPL-3.0-or-later
"""tests/lab/vm/molecule_run.py on molecule 26's own output, recorded from a
devicemapper_loop run whose verify failed (fixtures/molecule/)."""

import os

from tests.lab.vm import molecule_run

HERE = os.path.dirname(os.path.abspath(__file__))

FIXTURE = os.path.join(HERE, '..', 'fixtures', 'molecule', 'devicemapper_loop.log')


def events_of(lines, scenario='devicemapper_loop'):
    """One second between lines, as if molecule printed them at that pace."""
    events = []
    for second, line in enumerate(lines):
        match = molecule_run.ACTION.search(molecule_run.ANSI.sub('', line))
        if match and match.group('scenario') == scenario:
            events.append((float(second), match.group('action'), match.group('what').split(':')[0],
                           match.group('how')))
    return events


def test_actions_of_a_failed_run():
    with open(FIXTURE, encoding='utf-8') as handle:
        lines = handle.read().splitlines()
    rows = molecule_run.action_times(events_of(lines))
    assert [r['action'] for r in rows] == ['destroy', 'syntax', 'create', 'converge', 'idempotence', 'verify',
                                           'cleanup', 'destroy']
    assert all(r['seconds'] == 1.0 for r in rows)
    outcome = {r['action']: r['outcome'] for r in rows}
    assert outcome['verify'] == 'Failed' and outcome['converge'] == 'Successful'
    assert outcome['cleanup'] == 'Missing'


def test_colours_and_other_scenarios():
    lines = ['\x1b[36mINFO    \x1b[0m \x1b[32mbtrfs\x1b[0m \xe2\x9e\x9c \x1b[33mconverge\x1b[0m: \x1b[36mExecuting\x1b[0m',
             'INFO     btrfs ➜ converge: Executed: Successful',
             'INFO     other ➜ converge: Executing']
    rows = molecule_run.action_times(events_of(lines, 'btrfs'))
    assert rows == [{'action': 'converge', 'seconds': 1.0, 'outcome': 'Successful'}]
