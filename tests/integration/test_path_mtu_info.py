# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration tests of hostprep.container_host.path_mtu_info in the netns lab.

The module probes from the lab's host namespace through real routers (r1,
r2) that send real ICMP errors. Its answers are checked against what the
lab was built to do and, in the same run, against ping -M do and tracepath.
The module is read-only: besides the results, the tests check that it sent
exactly the probes it reports (the kernel's ICMP OutEchos counters) and
none at all when its input is bad.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.lab import LINKROOT

MODULE = 'hostprep.container_host.path_mtu_info'
NAMES = ('t9000', 't1500', 't4000', 'tblack')


def run_module(ansible, args: dict, check: bool = False) -> dict:
    """The module under test through one real ansible-playbook run."""
    return ansible.module(MODULE, args, check=check)


def v6_mirror(v4: str | None) -> str | None:
    """The lab numbers IPv6 like IPv4: 198.18.N.H is fd42:1ab:0:N::H."""
    if v4 is None:
        return None
    _a, _b, net, host = (int(x) for x in v4.split('.'))
    return 'fd42:1ab:0:%x::%x' % (net, host)


def in_ns(lab: dict, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(['ip', 'netns', 'exec', lab['host_ns'], *cmd],
                          capture_output=True, text=True, check=False, timeout=120)


def ping_ok(lab: dict, family: int, address: str, mtu: int) -> bool:
    """ping -M do with an IP packet of mtu bytes: does the reply come back?"""
    payload = mtu - (28 if family == 4 else 48)
    res = in_ns(lab, 'ping', '-%d' % family, '-n', '-M', 'do', '-c', '1', '-W', '1', '-s', str(payload), address)
    return res.returncode == 0


def tracepath_pmtu(lab: dict, address: str) -> int:
    res = in_ns(lab, 'tracepath', '-n', '-l', '9000', address)
    found = re.findall(r'pmtu (\d+)', res.stdout)
    assert found, 'tracepath %s printed no pmtu:\n%s%s' % (address, res.stdout, res.stderr)
    return int(found[-1])


def echo_counters(lab: dict) -> tuple[int, int]:
    """(ICMP OutEchos, Icmp6OutEchos) of the host namespace."""
    snmp = in_ns(lab, 'cat', '/proc/net/snmp').stdout.splitlines()
    heads, values = [line.split() for line in snmp if line.startswith('Icmp:')][:2]
    out4 = int(values[heads.index('OutEchos')])
    snmp6 = dict(line.split() for line in in_ns(lab, 'cat', '/proc/net/snmp6').stdout.splitlines() if line.strip())
    return out4, int(snmp6['Icmp6OutEchos'])


def expected_for(lab: dict, name: str, family: int) -> dict:
    info = lab['targets'][name]
    hop = info['hop_v4'] if family == 4 else v6_mirror(info['hop_v4'])
    return {'path_mtu': info['path_mtu'], 'limiting_hop': hop}


@pytest.fixture(scope='module')
def survey(lab, ansible):
    """ONE module call for all four targets over IPv4 and IPv6."""
    targets = []
    for name in NAMES:
        targets += [lab['targets'][name]['v4'], lab['targets'][name]['v6']]
    before = echo_counters(lab)
    result = run_module(ansible, {'targets': targets, 'expected_mtu': 9000, 'netns': lab['host_ns']})
    after = echo_counters(lab)
    assert not result.get('failed'), result
    by_target = {r['target']: r for r in result['targets']}
    return {'result': result, 'targets': targets, 'by_target': by_target,
            'sent': (after[0] - before[0], after[1] - before[1])}


def test_one_call_reports_every_target(survey):
    result = survey['result']
    assert result['changed'] is False
    assert [r['target'] for r in result['targets']] == survey['targets']
    assert result['all_ok'] is False
    assert result['seconds'] > 0
    # the module sent exactly the probes it reports, no more
    sent4 = sum(r['probes'] for r in result['targets'] if r['family'] == 4)
    sent6 = sum(r['probes'] for r in result['targets'] if r['family'] == 6)
    assert survey['sent'] == (sent4, sent6)
    # concurrent: the whole run is not the sum of the targets' times
    assert result['seconds'] < sum(r['seconds'] for r in result['targets'])


@pytest.mark.parametrize('family', [4, 6])
@pytest.mark.parametrize('name', NAMES)
def test_target_matches_the_lab(lab, survey, name, family):
    address = lab['targets'][name]['v%d' % family]
    got = survey['by_target'][address]
    want = expected_for(lab, name, family)
    assert got['family'] == family
    assert got['reachable'] is True
    assert got['expected_mtu'] == 9000
    assert got['path_mtu'] == want['path_mtu'], got['probe_log']
    assert got['expected_mtu_ok'] is (want['path_mtu'] == 9000)
    assert got['limiting_hop'] == want['limiting_hop'], got['probe_log']
    assert got['probes'] == len(got['probe_log'])
    assert all(p['size'] <= 9000 for p in got['probe_log'])
    if name == 't1500':
        # the frag-needed / Packet Too Big jump: no search
        assert got['probes'] <= 4, got['probe_log']
        assert got['probe_log'][0]['outcome'] == 'too_big'
    if name == 'tblack':
        # no router speaks: every failed size timed out, and was retried
        assert {p['outcome'] for p in got['probe_log']} == {'reply', 'timeout'}
        timeouts = [p['size'] for p in got['probe_log'] if p['outcome'] == 'timeout']
        assert all(timeouts.count(size) == 2 for size in timeouts)


@pytest.mark.parametrize('family', [4, 6])
@pytest.mark.parametrize('name', NAMES)
def test_target_matches_ping_and_tracepath(lab, survey, name, family):
    address = lab['targets'][name]['v%d' % family]
    mtu = survey['by_target'][address]['path_mtu']
    assert ping_ok(lab, family, address, mtu), 'ping -M do at %d to %s fails' % (mtu, address)
    if mtu < 9000:
        assert not ping_ok(lab, family, address, mtu + 1), 'ping -M do at %d to %s passes' % (mtu + 1, address)
    if name != 'tblack':
        # tracepath cannot see a black hole; ping above is the check there
        assert tracepath_pmtu(lab, address) == mtu


def test_unused_address_is_unreachable(lab, ansible):
    v6_unused = v6_mirror(lab['unused_v4'])
    result = run_module(ansible, {'targets': [lab['unused_v4'], v6_unused], 'netns': lab['host_ns']})
    assert not result.get('failed'), result
    assert result['all_ok'] is False
    for entry, address in zip(result['targets'], [lab['unused_v4'], v6_unused]):
        assert entry['target'] == address
        assert (entry['reachable'], entry['path_mtu'], entry['expected_mtu_ok'], entry['limiting_hop']) == \
            (False, None, False, None)
        # r1 has no route there and says so (a rate-limited answer may
        # first time out and come with the retry)
        answered = [p for p in entry['probe_log'] if p['outcome'] != 'timeout']
        assert answered and {p['outcome'] for p in answered} == {'unreachable'}, entry['probe_log']
        assert answered[0]['hop'] == (lab['router_v4'] if entry['family'] == 4 else v6_mirror(lab['router_v4']))
        assert entry['probes'] <= 4


def test_check_mode_runs_and_local_link_limit(lab, ansible):
    """In check mode the module still probes; above the host's own 9000
    link the kernel refuses locally and the module names "local"."""
    t9000 = lab['targets']['t9000']
    args = {'targets': [t9000['v4'], t9000['v6']], 'expected_mtu': 9216, 'netns': lab['host_ns'], 'timeout': 0.5}
    result = run_module(ansible, args, check=True)
    assert not result.get('failed'), result
    assert result['changed'] is False
    for entry in result['targets']:
        assert (entry['reachable'], entry['path_mtu'], entry['expected_mtu_ok'], entry['limiting_hop']) == \
            (True, 9000, False, 'local')
        assert [(p['size'], p['outcome'], p['mtu']) for p in entry['probe_log']] == \
            [(9216, 'local_too_big', 9000), (9000, 'reply', None)]


@pytest.mark.parametrize('args,words', [
    ({'targets': ['storage01.example.com']}, ["'storage01.example.com'", 'does not resolve names']),
    ({'targets': ['198.18.2.10', 'not-an-ip']}, ["'not-an-ip'", 'not an IPv4 or IPv6 address']),
    ({'targets': ['198.18.2.10'], 'netns': 'hostprep-no-such-ns'}, ['hostprep-no-such-ns', 'does not exist']),
    ({'targets': ['198.18.2.10'], 'expected_mtu': 40}, ['expected_mtu 40 is out of range', 'between 68 and 65535']),
    ({'targets': ['fd42:1ab:0:2::a'], 'expected_mtu': 1000}, ['fd42:1ab:0:2::a is IPv6', '1280']),
])
def test_bad_input_fails_clearly_before_any_probe(lab, ansible, args, words):
    args = dict(args)
    args.setdefault('netns', lab['host_ns'])
    before = echo_counters(lab)
    result = run_module(ansible, args)
    assert result.get('failed') is True, result
    for word in words:
        assert word in result['msg']
    assert result.get('changed') is False
    assert echo_counters(lab) == before, 'probes were sent for bad input'


PROBE_SCRIPT = """
import dataclasses, json, sys
from ansible_collections.hostprep.container_host.plugins.module_utils._pmtu import probe
cases = json.loads(sys.argv[1])
print(json.dumps([dataclasses.asdict(probe(target, size, 1.0)) for target, size in cases]))
"""


def test_exported_probe_function(lab):
    """probe(target, size, timeout), which link_mtu reuses, run in the host namespace."""
    t = lab['targets']
    r1_v6 = v6_mirror(lab['router_v4'])
    cases = [
        (t['t1500']['v4'], 1501, ('too_big', 1500, lab['router_v4'])),
        (t['t1500']['v4'], 1500, ('reply', None, None)),
        (t['t4000']['v6'], 4001, ('too_big', 4000, v6_mirror(t['t4000']['hop_v4']))),
        (t['t9000']['v6'], 9000, ('reply', None, None)),
        (t['t9000']['v4'], 9500, ('local_too_big', 9000, 'local')),
        (t['tblack']['v4'], 9000, ('timeout', None, None)),
        (lab['unused_v4'], 576, ('unreachable', None, lab['router_v4'])),
        (v6_mirror(lab['unused_v4']), 1280, ('unreachable', None, r1_v6)),
    ]
    res = in_ns(lab, 'env', 'PYTHONPATH=' + LINKROOT, sys.executable, '-c', PROBE_SCRIPT, json.dumps([c[:2] for c in cases]))
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    for (target, size, want), result in zip(cases, got):
        assert result['size'] == size
        assert (result['outcome'], result['mtu'], result['hop']) == want, (target, result)
        if result['outcome'] in ('reply', 'too_big'):
            assert 0 < result['rtt'] < 1.0
