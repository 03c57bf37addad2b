# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the path-MTU engine: the search against simulated paths, and
the error-queue and packet parsers against bytes recorded in the netns lab
(tests/unit/fixtures/pmtu/record.py wrote recorded.json)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import random
import socket

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _pmtu
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError
from ansible_collections.hostprep.container_host.plugins.module_utils._pmtu import (
    MIN_MTU,
    OUTCOMES,
    REACH_MTU,
    ProbeResult,
    search_path_mtu,
)

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'pmtu')
with open(os.path.join(FIXTURES, 'recorded.json'), encoding='utf-8') as _handle:
    RECORDED = {case['name']: case for case in json.load(_handle)['cases']}

TIMEOUT = 1.0
RTT = 0.0002


# ---------------------------------------------------------------------------
# a simulated path
# ---------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Hop:
    """A link on the way to the target and the router in front of it."""

    router: str
    mtu: int
    icmp: bool = True            # False: a black hole
    burst: float = 6.0           # Linux: 6 ICMP errors at once ...
    rate: float = 1.0            # ... then 1 per second
    tokens: float | None = None  # None: a full bucket
    bogus_mtu: int | None = None  # what the error says instead of the MTU
    _last: float = 0.0

    def allow(self, now: float) -> bool:
        if self.tokens is None:
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self._last) * self.rate)
        self._last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Path:
    """Answers probes as a real path would, on a virtual clock."""

    def __init__(self, hops: list[Hop], local_mtu: int = 9000, reachable: bool = True,
                 unreachable_from: str | None = None, lose: set[int] | None = None) -> None:
        self.hops = hops
        self.local_mtu = local_mtu
        self.reachable = reachable
        self.unreachable_from = unreachable_from
        self.lose = lose or set()      # probe numbers (1-based) that get lost
        self.clock = Clock()
        self.sent: list[int] = []

    def __call__(self, size: int) -> ProbeResult:
        self.sent.append(size)
        if size > self.local_mtu:
            return ProbeResult('local_too_big', size, mtu=self.local_mtu, hop='local')
        if len(self.sent) in self.lose:
            return self._timeout(size)
        for hop in self.hops:
            if size > hop.mtu:
                if hop.icmp and hop.allow(self.clock.now):
                    self.clock.now += RTT
                    mtu = hop.mtu if hop.bogus_mtu is None else hop.bogus_mtu
                    return ProbeResult('too_big', size, mtu=mtu, hop=hop.router, rtt=RTT)
                return self._timeout(size)
        if self.unreachable_from:
            self.clock.now += RTT
            return ProbeResult('unreachable', size, hop=self.unreachable_from, rtt=RTT)
        if not self.reachable:
            return self._timeout(size)
        self.clock.now += RTT
        return ProbeResult('reply', size, rtt=RTT)

    def _timeout(self, size: int) -> ProbeResult:
        self.clock.now += TIMEOUT
        return ProbeResult('timeout', size)


def search(path: Path, expected: int = 9000, family: int = 4, **kwargs):
    report = search_path_mtu(path, expected, MIN_MTU[family], REACH_MTU[family], clock=path.clock, **kwargs)
    assert max(path.sent) <= expected, 'never probe above expected_mtu'
    assert [p.size for p in report.probe_log] == path.sent
    return report


def outcomes(report) -> list[tuple[int, str]]:
    return [(p.size, p.outcome) for p in report.probe_log]


# ---------------------------------------------------------------------------
# the search
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('family', [4, 6])
def test_clean_9000_path_costs_one_probe(family):
    report = search(Path([Hop('r1', 9000)]), family=family)
    assert (report.reachable, report.path_mtu, report.expected_mtu_ok, report.limiting_hop) == (True, 9000, True, None)
    assert report.probes == 1
    assert report.to_dict()['probe_log'] == [{'size': 9000, 'outcome': 'reply', 'mtu': None, 'hop': None,
                                              'rtt_ms': 0.2}]


@pytest.mark.parametrize('family,router', [(4, '198.18.1.1'), (6, 'fd42:1ab:0:1::1')])
def test_frag_needed_jumps_straight_to_the_hop_mtu(family, router):
    report = search(Path([Hop(router, 9000), Hop(router, 1500)]), family=family)
    assert (report.reachable, report.path_mtu, report.expected_mtu_ok) == (True, 1500, False)
    assert report.limiting_hop == router
    assert outcomes(report) == [(9000, 'too_big'), (1500, 'reply')]


@pytest.mark.parametrize('family', [4, 6])
def test_two_hops_4000_then_1500(family):
    report = search(Path([Hop('r1', 9000), Hop('r2', 4000), Hop('r3', 1500)]), family=family)
    assert report.path_mtu == 1500
    assert report.limiting_hop == 'r3'
    assert outcomes(report) == [(9000, 'too_big'), (4000, 'too_big'), (1500, 'reply')]


@pytest.mark.parametrize('family', [4, 6])
def test_4000_hop(family):
    report = search(Path([Hop('r1', 9000), Hop('r2', 4000)]), family=family)
    assert (report.path_mtu, report.limiting_hop, report.probes) == (4000, 'r2', 2)


@pytest.mark.parametrize('family', [4, 6])
@pytest.mark.parametrize('mtu', [1500, 1504, 1280, 1400, 3000, 8999, 4352])
def test_black_hole_is_searched_not_scanned(family, mtu):
    path = Path([Hop('r1', 9000), Hop('switch', mtu, icmp=False)])
    report = search(path, family=family)
    assert (report.reachable, report.path_mtu, report.expected_mtu_ok, report.limiting_hop) == (True, mtu, False, None)
    # every timed-out size was retried once
    timeouts = [p.size for p in report.probe_log if p.outcome == 'timeout']
    assert all(timeouts.count(size) == 2 for size in timeouts)
    # a search, not a scan: few failures, and few probes overall
    assert len(timeouts) <= 2 * (math.log2(9000 - REACH_MTU[family]) + 2)
    assert report.probes <= 60
    # reachability was confirmed with a small probe right after the first failure
    assert report.probe_log[2].size == REACH_MTU[family]


def test_black_hole_at_1500_costs_two_failures():
    report = search(Path([Hop('r1', 9000), Hop('switch', 1500, icmp=False)]))
    failed = sorted({p.size for p in report.probe_log if p.outcome == 'timeout'})
    assert failed == [1501, 9000]
    assert report.seconds == pytest.approx(4 * TIMEOUT, abs=0.1)


def test_black_hole_behind_a_router_that_sends_frag_needed():
    path = Path([Hop('r1', 4000), Hop('switch', 1500, icmp=False)])
    report = search(path)
    assert (report.path_mtu, report.limiting_hop) == (1500, None)
    assert outcomes(report)[:3] == [(9000, 'too_big'), (4000, 'timeout'), (4000, 'timeout')]


@pytest.mark.parametrize('family,router', [(4, '198.18.1.1'), (6, 'fd42:1ab:0:1::1')])
def test_unreachable_by_icmp(family, router):
    report = search(Path([Hop(router, 9000)], unreachable_from=router), family=family)
    assert (report.reachable, report.path_mtu, report.expected_mtu_ok, report.limiting_hop) == (False, None, False, None)
    assert [p.size for p in report.probe_log] == [9000, REACH_MTU[family]]
    assert report.probe_log[0].hop == router


def test_unreachable_silently_ipv4_tries_576_then_68():
    report = search(Path([Hop('r1', 9000)], reachable=False))
    assert report.reachable is False and report.path_mtu is None
    assert [p.size for p in report.probe_log] == [9000, 9000, 576, 576, 68, 68]


def test_unreachable_silently_ipv6_tries_1280():
    report = search(Path([Hop('r1', 9000)], reachable=False), family=6)
    assert report.reachable is False
    assert [p.size for p in report.probe_log] == [9000, 9000, 1280, 1280]


def test_expected_at_the_minimum_unreachable():
    report = search(Path([Hop('r1', 9000)], reachable=False), expected=1280, family=6)
    assert report.reachable is False
    assert [p.size for p in report.probe_log] == [1280, 1280]


def test_rate_limited_frag_needed_is_retried():
    # the router's token bucket is empty: its first error is suppressed, and a
    # second later (after the timeout) it has a token again
    path = Path([Hop('r1', 1500, tokens=0.0)])
    report = search(path)
    assert outcomes(report) == [(9000, 'timeout'), (9000, 'too_big'), (1500, 'reply')]
    assert (report.path_mtu, report.limiting_hop) == (1500, 'r1')


def test_rate_limited_two_hops():
    path = Path([Hop('r1', 4000, tokens=0.0), Hop('r2', 1500, tokens=0.0)])
    report = search(path)
    assert (report.path_mtu, report.limiting_hop) == (1500, 'r2')
    assert report.probes <= 6


def test_router_that_never_answers_in_time_degrades_to_a_search():
    # rate 0: a router whose bucket never refills is a black hole
    path = Path([Hop('r1', 1500, tokens=0.0, rate=0.0)])
    report = search(path)
    assert (report.path_mtu, report.limiting_hop) == (1500, None)


def test_a_burst_of_errors_beyond_the_bucket():
    # two routers; the second limits, its bucket runs dry during the search
    path = Path([Hop('r1', 9000), Hop('r2', 2000, tokens=1.0, rate=0.1)])
    report = search(path, plateaus=())
    assert report.path_mtu == 2000


def test_local_link_smaller_than_expected():
    report = search(Path([Hop('r1', 9000)], local_mtu=1500))
    assert outcomes(report) == [(9000, 'local_too_big'), (1500, 'reply')]
    assert report.limiting_hop == 'local'


def test_expected_below_path_mtu_is_not_exceeded():
    report = search(Path([Hop('r1', 9000)]), expected=1500)
    assert (report.path_mtu, report.expected_mtu_ok, report.probes) == (1500, True, 1)


def test_lost_reply_is_retried():
    report = search(Path([Hop('r1', 9000)], lose={1}))
    assert outcomes(report) == [(9000, 'timeout'), (9000, 'reply')]
    assert report.path_mtu == 9000 and report.expected_mtu_ok


@pytest.mark.parametrize('bogus', [0, 9000, 20000, 40])
def test_frag_needed_without_a_usable_mtu(bogus):
    # RFC 792 routers say 0; broken ones say something impossible
    path = Path([Hop('r1', 9000), Hop('old', 1500, bogus_mtu=bogus or None)])
    report = search(path)
    assert report.path_mtu == 1500
    # the router that refused exactly path_mtu + 1 is the limiting hop
    assert report.limiting_hop == 'old'


def test_retries_zero_concludes_on_first_timeout():
    report = search(Path([Hop('r1', 9000), Hop('s', 1500, icmp=False)]), retries=0)
    assert report.path_mtu == 1500
    assert outcomes(report).count((9000, 'timeout')) == 1


def test_pure_bisection_without_plateaus():
    report = search(Path([Hop('r1', 9000), Hop('s', 1500, icmp=False)]), plateaus=())
    assert report.path_mtu == 1500


@pytest.mark.parametrize('seed', range(40))
def test_random_paths(seed):
    rng = random.Random(seed)
    family = rng.choice([4, 6])
    hops = [Hop('h%d' % i, rng.randint(MIN_MTU[family], 9200), icmp=rng.random() < 0.6,
                tokens=rng.choice([None, 0.0, 1.0])) for i in range(rng.randint(1, 4))]
    expected = rng.choice([1500, 4000, 9000, 9216])
    path = Path(hops, local_mtu=rng.choice([9000, 9216, 1500]))
    report = search(path, expected=expected, family=family)
    real = min([h.mtu for h in hops] + [path.local_mtu])
    assert report.reachable
    assert report.path_mtu == min(real, expected)
    assert report.expected_mtu_ok == (real >= expected)
    timeouts = sum(1 for p in report.probe_log if p.outcome == 'timeout')
    assert timeouts <= 2 * (math.log2(expected) + 3)


# ---------------------------------------------------------------------------
# parsers, fed bytes recorded in the lab
# ---------------------------------------------------------------------------

ERRQUEUE_CASES = [name for name, case in sorted(RECORDED.items()) if case['recorded'][0]['kind'] == 'errqueue']
REPLY_CASES = [name for name, case in sorted(RECORDED.items()) if case['recorded'][0]['kind'] == 'data']


def test_fixture_covers_every_kind():
    assert {RECORDED[n]['outcome'] for n in ERRQUEUE_CASES} == {'too_big', 'local_too_big', 'unreachable'}
    assert {RECORDED[n]['family'] for n in ERRQUEUE_CASES} == {4, 6}
    assert {RECORDED[n]['family'] for n in REPLY_CASES} == {4, 6}


@pytest.mark.parametrize('name,origin,ee_type,ee_code,info,offender', [
    ('v4_frag_needed_r1', 2, 3, 4, 1500, '198.18.1.1'),
    ('v4_frag_needed_r2', 2, 3, 4, 4000, '198.18.4.2'),
    ('v4_local_emsgsize', 1, 0, 0, 9000, None),
    ('v4_net_unreachable', 2, 3, 0, 0, '198.18.1.1'),
    ('v6_packet_too_big_r1', 3, 2, 0, 1500, 'fd42:1ab:0:1::1'),
    ('v6_packet_too_big_r2', 3, 2, 0, 4000, 'fd42:1ab:0:4::2'),
    ('v6_local_emsgsize', 1, 0, 0, 9000, None),
    ('v6_no_route', 3, 1, 0, 0, 'fd42:1ab:0:1::1'),
])
def test_parse_extended_err(name, origin, ee_type, ee_code, info, offender):
    entry = RECORDED[name]['recorded'][0]
    err = _pmtu.parse_extended_err(bytes.fromhex(entry['cmsg']))
    assert (err.origin, err.type, err.code, err.info, err.offender) == (origin, ee_type, ee_code, info, offender)
    expected_errno = {'too_big': 90, 'local_too_big': 90, 'unreachable': None}[RECORDED[name]['outcome']]
    if expected_errno:
        assert err.errno == expected_errno  # EMSGSIZE
    else:
        assert err.errno in (101, 113)  # ENETUNREACH, EHOSTUNREACH


@pytest.mark.parametrize('name', ERRQUEUE_CASES)
def test_classify_recorded_error(name):
    case = RECORDED[name]
    err = _pmtu.parse_extended_err(bytes.fromhex(case['recorded'][0]['cmsg']))
    result = _pmtu.classify_error(case['family'], err, case['size'])
    assert (result.outcome, result.mtu, result.hop) == (case['outcome'], case['mtu'], case['hop'])


@pytest.mark.parametrize('name', [n for n in ERRQUEUE_CASES if 'local' not in n])
def test_quoted_probe_in_error_matches_what_was_sent(name):
    case = RECORDED[name]
    payload = bytes.fromhex(case['recorded'][0]['payload'])
    echo = _pmtu.parse_icmp(payload)
    request = 8 if case['family'] == 4 else 128
    assert (echo.type, echo.ident, echo.seq, echo.token.hex()) == (request, case['ident'], case['seq'], case['token'])
    prober = fake_prober(case)
    assert prober._ours(echo, case['seq'], bytes.fromhex(case['token']), reply=False)
    assert not prober._ours(echo, case['seq'] + 1, bytes.fromhex(case['token']), reply=False)
    assert not prober._ours(echo, case['seq'], bytes.fromhex(case['token']), reply=True)


@pytest.mark.parametrize('name', [n for n in ERRQUEUE_CASES if 'local' in n])
def test_local_error_quotes_nothing(name):
    assert RECORDED[name]['recorded'][0]['payload'] == ''
    assert _pmtu.parse_icmp(b'') is None


@pytest.mark.parametrize('name', REPLY_CASES)
def test_parse_recorded_echo_reply(name):
    case = RECORDED[name]
    data = bytes.fromhex(case['recorded'][0]['packet'])
    v4 = case['family'] == 4
    # IPv4 raw sockets see the IP header, IPv6 raw sockets do not
    assert len(data) == (case['size'] if v4 else case['size'] - 40)
    echo = _pmtu.parse_icmp(data, ip_header=v4)
    assert (echo.type, echo.code) == ((0, 0) if v4 else (129, 0))
    assert (echo.ident, echo.seq, echo.token.hex()) == (case['ident'], case['seq'], case['token'])
    prober = fake_prober(case)
    assert prober._ours(echo, case['seq'], bytes.fromhex(case['token']), reply=True)
    assert not prober._ours(echo, case['seq'], os.urandom(8), reply=True)
    other = fake_prober(case, ident=(case['ident'] + 1) & 0xffff)
    assert not other._ours(echo, case['seq'], bytes.fromhex(case['token']), reply=True)


def test_recorded_v4_reply_source_is_the_target():
    data = bytes.fromhex(RECORDED['v4_reply_1500']['recorded'][0]['packet'])
    assert socket.inet_ntoa(data[12:16]) == RECORDED['v4_reply_1500']['target']


def fake_prober(case, ident=None):
    prober = object.__new__(_pmtu.Prober)
    prober.family = case['family']
    prober.ident = case['ident'] if ident is None else ident
    return prober


def test_parse_icmp_rejects_short_and_non_ipv4():
    assert _pmtu.parse_icmp(b'\x08\x00\x00') is None
    assert _pmtu.parse_icmp(b'\x60' + b'\x00' * 60, ip_header=True) is None
    assert _pmtu.parse_icmp(b'\x45' + b'\x00' * 22, ip_header=True) is None


def test_parse_extended_err_too_short():
    with pytest.raises(ValueError):
        _pmtu.parse_extended_err(b'\x00' * 8)


@pytest.mark.parametrize('family,size', [(4, 68), (4, 1500), (4, 9001), (6, 1280), (6, 9000)])
def test_build_echo(family, size):
    token = bytes(range(8))
    packet = _pmtu.build_echo(family, 0x1234, 7, token, size)
    assert len(packet) == size - (20 if family == 4 else 40)
    echo = _pmtu.parse_icmp(packet)
    assert (echo.type, echo.ident, echo.seq, echo.token) == ((8 if family == 4 else 128), 0x1234, 7, token)
    if family == 4:
        assert _pmtu.icmp_checksum(packet) == 0


def test_build_echo_too_small():
    with pytest.raises(ValueError):
        _pmtu.build_echo(4, 1, 1, bytes(8), 30)


def test_checksum_rfc1071_example():
    # RFC 1071 section 3: the one's complement sum of these words is ddf2
    assert _pmtu.icmp_checksum(bytes.fromhex('0001f203f4f5f6f7')) == 0xffff - 0xddf2


@pytest.mark.parametrize('ee,outcome', [
    (_pmtu.ExtendedError(90, 2, 3, 4, 0, 0, '192.0.2.1'), ('too_big', None, '192.0.2.1')),
    (_pmtu.ExtendedError(113, 2, 3, 1, 0, 0, '192.0.2.1'), ('unreachable', None, '192.0.2.1')),
    (_pmtu.ExtendedError(113, 2, 11, 0, 0, 0, '192.0.2.1'), ('unreachable', None, '192.0.2.1')),
    (_pmtu.ExtendedError(71, 2, 12, 0, 0, 0, '192.0.2.1'), ('error', None, '192.0.2.1')),
    (_pmtu.ExtendedError(113, 3, 3, 0, 0, 0, '2001:db8::1'), ('unreachable', None, '2001:db8::1')),
    (_pmtu.ExtendedError(71, 3, 4, 0, 0, 0, '2001:db8::1'), ('error', None, '2001:db8::1')),
    (_pmtu.ExtendedError(105, 1, 0, 0, 0, 0, None), ('error', None, 'local')),
])
def test_classify_other_errors(ee, outcome):
    result = _pmtu.classify_error(4, ee, 1500)
    assert (result.outcome, result.mtu, result.hop) == outcome


# ---------------------------------------------------------------------------
# input checks and the concurrent runner
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('target,family,address', [
    ('198.18.3.10', 4, '198.18.3.10'),
    ('fd42:1ab:0:3::a', 6, 'fd42:1ab:0:3::a'),
    (' 198.18.3.10 ', 4, '198.18.3.10'),
    ('fe80::1%lo', 6, 'fe80::1'),
    ('::ffff:198.18.3.10', 4, '198.18.3.10'),
])
def test_parse_target(target, family, address):
    got_family, sockaddr = _pmtu.parse_target(target)
    assert (got_family, sockaddr[0]) == (family, address)
    if target.endswith('%lo'):
        assert sockaddr[3] == socket.if_nametoindex('lo')


def test_probe_keeps_its_interface():
    # link_mtu imports probe(target, size, timeout) -> ProbeResult
    assert list(inspect.signature(_pmtu.probe).parameters) == ['target', 'size', 'timeout']
    assert set(OUTCOMES) == {'reply', 'too_big', 'local_too_big', 'timeout', 'unreachable', 'error'}
    assert [f.name for f in dataclasses.fields(ProbeResult)][:5] == ['outcome', 'size', 'mtu', 'hop', 'rtt']


@pytest.mark.parametrize('target', ['storage01.example', 'not-an-ip', '198.18.3', '198.18.3.300', 'fd42::1::2',
                                    'localhost'])
def test_parse_target_rejects_names_and_garbage(target):
    with pytest.raises(HostprepError) as info:
        _pmtu.parse_target(target)
    assert repr(target) in info.value.msg
    assert 'does not resolve names' in info.value.msg


@pytest.mark.parametrize('target,words', [
    ('', "target '' is empty"),
    ('  ', "target '  ' is empty"),
    (None, "target '' is empty"),
    ('198.18.3.0/24', 'is a network, not an address'),
    ('198.18.3.10%eth0', 'only IPv6 addresses take'),
    ('fe80::1%', 'empty interface name'),
])
def test_parse_address_says_what_is_wrong(target, words):
    with pytest.raises(HostprepError) as info:
        _pmtu.parse_address(target)
    assert words in info.value.msg


@pytest.mark.parametrize('target,words', [
    ('0.0.0.0', 'unspecified address 0.0.0.0'),
    ('::', 'unspecified address ::'),
    ('0.1.2.3', '0.0.0.0/8'),
    ('127.0.0.1', 'loopback address'),
    ('127.9.9.9', 'loopback address'),
    ('::1', 'loopback address'),
    ('::ffff:127.0.0.1', 'loopback address'),
    ('224.0.0.1', 'multicast'),
    ('ff02::1', 'multicast'),
    ('255.255.255.255', 'the broadcast address'),
    ('fe80::1', 'link-local address without its interface'),
])
def test_refusal_by_address(target, words):
    why = _pmtu.refusal(_pmtu.parse_address(target))
    assert why and words in why and repr(target) in why


@pytest.mark.parametrize('target,allowed', [('127.0.0.1', True), ('::1', True), ('198.18.3.10', False),
                                            ('fe80::1%lo', False), ('fd42:1ab:0:3::a', False)])
def test_refusal_lets_peers_and_asked_for_loopback_through(target, allowed):
    addr = _pmtu.parse_address(target)
    assert _pmtu.refusal(addr, allow_loopback=allowed) is None
    if allowed:
        assert 'allow_loopback=true' in _pmtu.refusal(addr)


def test_plan_targets_dedupes_after_parsing():
    targets = ['198.18.3.10', ' 198.18.3.10', '::ffff:198.18.3.10', 'FD42:1AB:0:3::A', 'fd42:1ab:0:3:0:0:0:a',
               'fe80::1%lo', 'fe80::1%eth0']
    addresses, duplicates = _pmtu.plan_targets(targets, 9000)
    assert [a.given for a in addresses] == ['198.18.3.10', 'FD42:1AB:0:3::A', 'fe80::1%lo', 'fe80::1%eth0']
    assert [a.family for a in addresses] == [4, 6, 6, 6]
    assert duplicates == [{'target': ' 198.18.3.10', 'same_as': '198.18.3.10'},
                          {'target': '::ffff:198.18.3.10', 'same_as': '198.18.3.10'},
                          {'target': 'fd42:1ab:0:3:0:0:0:a', 'same_as': 'FD42:1AB:0:3::A'}]


def test_plan_targets_names_every_refused_target_at_once():
    with pytest.raises(HostprepError) as info:
        _pmtu.plan_targets(['198.18.3.10', '0.0.0.0', '', 'nas.example', '::1'], 9000)
    msg = info.value.msg
    assert msg.startswith('4 targets cannot be probed')
    for words in ("'0.0.0.0' is the unspecified", "target '' is empty", "'nas.example' is not an IPv4",
                  "'::1' is a loopback"):
        assert words in msg


@pytest.mark.parametrize('targets,expected,words', [
    ([], 9000, 'targets is empty'),
    (['198.18.3.10', 'fd42:1ab:0:3::a'], 1000, 'target fd42:1ab:0:3::a is IPv6'),
])
def test_plan_targets_errors(targets, expected, words):
    with pytest.raises(HostprepError) as info:
        _pmtu.plan_targets(targets, expected)
    assert words in info.value.msg


@pytest.mark.parametrize('expected,timeout,concurrency,words', [
    (40, 1.0, 32, 'expected_mtu 40 is out of range'),
    (65536, 1.0, 32, 'expected_mtu 65536 is out of range'),
    (9000, 0.0, 32, 'timeout 0.0 is out of range'),
    (9000, 0.001, 32, 'timeout 0.001 is out of range'),
    (9000, 61.0, 32, 'timeout 61.0 is out of range'),
    (9000, float('nan'), 32, 'timeout nan is out of range'),
    (9000, 1.0, 0, 'concurrency 0 is out of range: give 1 to 256'),
    (9000, 1.0, 100000, 'concurrency 100000 is out of range: give 1 to 256'),
])
def test_check_options(expected, timeout, concurrency, words):
    with pytest.raises(HostprepError) as info:
        _pmtu.check_options(expected, timeout, concurrency)
    assert words in info.value.msg


def test_check_options_accepts_the_bounds():
    _pmtu.check_options(68, 0.01, 1)
    _pmtu.check_options(65535, 60.0, 256)


@pytest.mark.parametrize('route,allowed,words', [
    (_pmtu.Route(_pmtu.RTN_BROADCAST, 'eth1', '198.51.100.2/24 on eth1'), False,
     "'198.51.100.255' is a broadcast address of this host's subnet (198.51.100.2/24 on eth1)"),
    (_pmtu.Route(_pmtu.RTN_BROADCAST, 'eth1', '198.51.100.2/24 on eth1'), True, 'broadcast'),
    (_pmtu.Route(_pmtu.RTN_MULTICAST, 'eth1'), False, 'routed as multicast (on eth1)'),
    (_pmtu.Route(_pmtu.RTN_LOCAL, 'lo', '198.51.100.255/32 on eth9'), False,
     'is an address of this host (198.51.100.255/32 on eth9)'),
    (_pmtu.Route(_pmtu.RTN_LOCAL, 'lo'), True, None),
    (_pmtu.Route(1, 'eth0'), False, None),
    (None, False, None),
])
def test_route_refusal(route, allowed, words):
    why = _pmtu.route_refusal(_pmtu.parse_address('198.51.100.255'), route, allow_loopback=allowed)
    if words is None:
        assert why is None
    else:
        assert words in why


def test_check_routes_names_every_target():
    routes = {'198.18.1.255': _pmtu.Route(_pmtu.RTN_BROADCAST, 'eth0', '198.18.1.2/24 on eth0'),
              '198.18.1.2': _pmtu.Route(_pmtu.RTN_LOCAL, 'lo', '198.18.1.2/24 on eth0'),
              '198.18.2.10': _pmtu.Route(1, 'eth0')}
    addresses, dummy = _pmtu.plan_targets(list(routes), 9000)
    with pytest.raises(HostprepError) as info:
        _pmtu.check_routes(addresses, route_of=lambda addr: routes[addr.given])
    assert info.value.msg.startswith('2 targets cannot be probed')
    _pmtu.check_routes(addresses[2:], route_of=lambda addr: routes[addr.given])


class FakeProber:
    """A Prober stand-in that answers from a simulated path."""

    PATHS = {
        '198.18.2.10': lambda: Path([Hop('r1', 9000)]),
        '198.18.3.10': lambda: Path([Hop('r1', 9000), Hop('198.18.1.1', 1500)]),
        'fd42:1ab:0:6::a': lambda: Path([Hop('r1', 9000), Hop('sw', 1500, icmp=False)]),
        '198.18.7.10': lambda: Path([Hop('r1', 9000)], unreachable_from='198.18.1.1'),
    }

    def __init__(self, target):
        self.family = _pmtu.parse_target(target)[0]
        self.path = self.PATHS[target]()
        self.closed = False

    def probe(self, size, timeout):
        assert timeout == 0.5
        return self.path(size)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.closed = True


def test_measure_all_keeps_order_and_reports_each_target():
    targets = ['198.18.7.10', '198.18.3.10', 'fd42:1ab:0:6::a', '198.18.2.10']
    results = _pmtu.measure_all(targets, 9000, 0.5, 2, prober_factory=FakeProber)
    assert [r['target'] for r in results] == targets
    assert [(r['family'], r['reachable'], r['path_mtu'], r['expected_mtu_ok'], r['limiting_hop']) for r in results] == [
        (4, False, None, False, None),
        (4, True, 1500, False, '198.18.1.1'),
        (6, True, 1500, False, None),
        (4, True, 9000, True, None),
    ]
    assert set(results[0]) == {'target', 'family', 'reachable', 'path_mtu', 'expected_mtu', 'expected_mtu_ok',
                               'limiting_hop', 'probes', 'probe_log', 'seconds'}
    assert results[1]['probe_log'][0] == {'size': 9000, 'outcome': 'too_big', 'mtu': 1500, 'hop': '198.18.1.1',
                                          'rtt_ms': 0.2}


def test_measure_when_the_socket_cannot_be_opened():
    def no_ipv6(target):
        raise OSError(97, 'Address family not supported by protocol')
    with pytest.raises(HostprepError) as info:
        _pmtu.measure('fd42:1ab:0:3::a', 9000, 1.0, prober_factory=no_ipv6)
    assert 'fd42:1ab:0:3::a' in info.value.msg and 'IPv6' in info.value.msg


def test_measure_without_raw_socket_permission():
    def denied(target):
        raise PermissionError(1, 'Operation not permitted')
    with pytest.raises(HostprepError) as info:
        _pmtu.measure('198.18.3.10', 9000, 1.0, prober_factory=denied)
    assert 'CAP_NET_RAW' in info.value.msg and '198.18.3.10' in info.value.msg
