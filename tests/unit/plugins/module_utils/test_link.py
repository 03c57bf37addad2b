# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of _link: selection, validation, verification and rollback,
fed netlink dumps recorded from the real lab (tests/unit/fixtures/link)."""

from __future__ import annotations

import copy
import json
import os
import re

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _link
from ansible_collections.hostprep.container_host.plugins.module_utils._common import Changes, HostprepError
from ansible_collections.hostprep.container_host.plugins.module_utils._pmtu import ProbeResult

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'unit', 'fixtures', 'link')


def load(name):
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return json.load(handle)


@pytest.fixture
def host_links():
    return _link.links_from_msgs(load('links_host.json'), load('addrs_host.json'))


@pytest.fixture
def routes():
    return load('route_get_host.json')


def by_name(links, name):
    return next(link for link in links if link.ifname == name)


def lookup_from(routes):
    def lookup(target):
        answer = routes[target]
        if isinstance(answer, dict):
            raise HostprepError('no route to target %s (%s)' % (target, answer['message']))
        return _link.route_oif(answer, target)
    return lookup


# --- netlink messages ------------------------------------------------------

def test_links_from_recorded_dump(host_links):
    eth0 = by_name(host_links, 'eth0')
    assert (eth0.mtu, eth0.min_mtu, eth0.max_mtu) == (9000, 68, 65535)
    assert eth0.mac and len(eth0.mac) == 17 and eth0.mac == eth0.mac.lower()
    assert 'fd42:1ab:0:1::2' in eth0.ipv6
    eth1 = by_name(host_links, 'eth1')
    assert eth1.mtu == 1500 and 'fd42:1ab:0:9::2' in eth1.ipv6
    lo = by_name(host_links, 'lo')
    assert lo.min_mtu is None and lo.max_mtu is None  # the kernel reports 0: no bound


def test_links_of_router_dump():
    links = _link.links_from_msgs(load('links_r1.json'))
    assert {l.ifname for l in links} >= {'eth0', 'eth1', 'eth2', 'eth3', 'eth4'}
    assert by_name(links, 'eth2').mtu == 1500
    assert all(l.ipv6 == [] for l in links)  # no address dump given


def test_route_oif_from_recorded_answers(host_links, routes):
    eth0 = by_name(host_links, 'eth0')
    eth1 = by_name(host_links, 'eth1')
    assert _link.route_oif(routes['198.18.2.10'], '198.18.2.10') == eth0.ifindex
    assert _link.route_oif(routes['fd42:1ab:0:2::10'], 'fd42:1ab:0:2::10') == eth0.ifindex
    assert _link.route_oif(routes['198.18.9.1'], '198.18.9.1') == eth1.ifindex
    assert _link.route_oif(routes['fd42:1ab:0:9::1'], 'fd42:1ab:0:9::1') == eth1.ifindex


def test_route_oif_refuses_non_unicast_and_empty(routes):
    local = copy.deepcopy(routes['198.18.1.2'][0])
    local['type'] = 6  # RTN_BLACKHOLE
    with pytest.raises(HostprepError, match='no route to target 198.18.7.11.*type 6'):
        _link.route_oif([local], '198.18.7.11')
    with pytest.raises(HostprepError, match='no route to target 198.18.7.11'):
        _link.route_oif([], '198.18.7.11')


# --- option parsing --------------------------------------------------------

def test_parse_requests_selectors_and_mtu_override():
    reqs = _link.parse_requests([
        {'name': 'eth0', 'mac': None, 'target': None, 'mtu': None},
        {'name': None, 'mac': 'AA-BB-CC-DD-EE-0F', 'target': None, 'mtu': 1500},
        {'name': None, 'mac': None, 'target': ' fd42:1ab:0:2:0::10 ', 'mtu': None},
    ], 9000)
    assert [(r.selector, r.mtu) for r in reqs] == [
        ('name=eth0', 9000), ('mac=aa:bb:cc:dd:ee:0f', 1500), ('target=fd42:1ab:0:2::10', 9000)]


@pytest.mark.parametrize('items, mtu, message', [
    ([{'name': 'eth0', 'mac': 'aa:bb:cc:dd:ee:ff'}], 9000,
     r'links\[0\] selects a link in 2 ways \(name=eth0, mac=aa:bb:cc:dd:ee:ff\): give exactly one'),
    ([{'mtu': 9000}], None, r'links\[0\] selects no link: give exactly one of name, mac or target'),
    ([{'name': 'eth0'}], None, r'links\[0\] \(name=eth0\) has no MTU: set mtu on the item or the top-level mtu'),
    ([{'mac': 'aa:bb:cc'}], 9000, r"links\[0\]: mac 'aa:bb:cc' is not a MAC address"),
    ([{'target': 'storage.example'}], 9000,
     r"links\[0\]: target 'storage.example' is not an IP address.*not resolved"),
    ([], 9000, 'links is empty'),
])
def test_parse_requests_errors(items, mtu, message):
    with pytest.raises(HostprepError, match=message):
        _link.parse_requests(items, mtu)


def test_parse_requests_reports_every_bad_item():
    with pytest.raises(HostprepError) as err:
        _link.parse_requests([{'name': 'eth0'}, {'target': 'x'}, {'mac': 'zz'}], 9000)
    assert 'links[1]' in err.value.msg and 'links[2]' in err.value.msg


@pytest.mark.parametrize('text, expected', [
    ('52:54:00:AB:cd:01', '52:54:00:ab:cd:01'),
    ('52-54-00-ab-cd-01', '52:54:00:ab:cd:01'),
    ('52:54-00:ab:cd:01', None),
    ('5254.00ab.cd01', None),
    ('', None),
])
def test_normalize_mac(text, expected):
    assert _link.normalize_mac(text) == expected


# --- selection and validation ---------------------------------------------

def test_select_by_name_mac_and_target(host_links, routes):
    lookup = lookup_from(routes)
    eth1 = by_name(host_links, 'eth1')
    assert _link.select_link(_link.Request('name', 'eth1', 1500), host_links, lookup) is eth1
    assert _link.select_link(_link.Request('mac', eth1.mac, 1500), host_links, lookup) is eth1
    assert _link.select_link(_link.Request('target', '198.18.9.1', 1500), host_links, lookup) is eth1
    assert _link.select_link(_link.Request('target', '198.18.2.10', 1500), host_links, lookup).ifname == 'eth0'


def test_select_unknown_name_lists_links(host_links, routes):
    with pytest.raises(HostprepError, match='link eth9 does not exist; existing links: eth0, eth1, lo'):
        _link.select_link(_link.Request('name', 'eth9', 1500), host_links, lookup_from(routes))


def test_select_mac_matching_nothing(host_links, routes):
    with pytest.raises(HostprepError, match='no link has MAC address 02:00:00:00:00:99'):
        _link.select_link(_link.Request('mac', '02:00:00:00:00:99', 1500), host_links, lookup_from(routes))


def test_select_mac_matching_two_links_names_them(host_links, routes):
    # bond members share the bond's MAC: give eth1 the MAC of eth0
    links = copy.deepcopy(host_links)
    eth0 = by_name(links, 'eth0')
    by_name(links, 'eth1').mac = eth0.mac
    with pytest.raises(HostprepError, match=r'matches 2 links \(eth0, eth1\).*select the link by name'):
        _link.select_link(_link.Request('mac', eth0.mac, 1500), links, lookup_from(routes))


def test_select_target_that_is_local(host_links, routes):
    with pytest.raises(HostprepError, match='target 198.18.1.2 is a local address'):
        _link.select_link(_link.Request('target', '198.18.1.2', 1500), host_links, lookup_from(routes))


@pytest.mark.parametrize('mtu, message', [
    (65536, 'MTU 65536 is above max_mtu 65535 of link eth0 \\(name=eth0\\)'),
    (67, 'MTU 67 is below its min_mtu 68 for link eth0'),
])
def test_validate_mtu_bounds(host_links, mtu, message):
    with pytest.raises(HostprepError, match=message):
        _link.validate_mtu(by_name(host_links, 'eth0'), mtu, 'name=eth0')


def test_validate_mtu_ipv4_floor_without_driver_bounds(host_links):
    with pytest.raises(HostprepError, match='below the IPv4 minimum 68 for link lo'):
        _link.validate_mtu(by_name(host_links, 'lo'), 60, 'name=lo')


def test_validate_mtu_warns_below_ipv6_minimum(host_links):
    warnings = _link.validate_mtu(by_name(host_links, 'eth1'), 1000, 'name=eth1')
    assert len(warnings) == 1
    assert 'disables IPv6 on link eth1' in warnings[0] and 'fd42:1ab:0:9::2' in warnings[0]
    assert _link.validate_mtu(by_name(host_links, 'eth1'), 1280, 'name=eth1') == []


def test_plan_same_link_twice(host_links, routes):
    lookup = lookup_from(routes)
    reqs = [_link.Request('name', 'eth1', 9000), _link.Request('target', '198.18.9.1', 9000)]
    planned, warnings = _link.plan(reqs, host_links, lookup)
    assert warnings == [] and len(planned) == 2
    assert [p.link.ifname for p in _link.unique_changes(planned)] == ['eth1']
    reqs[1].mtu = 4000
    with pytest.raises(HostprepError, match='name=eth1 and target=198.18.9.1 both select link eth1'):
        _link.plan(reqs, host_links, lookup)


def test_plan_stops_on_first_bad_request_before_anything(host_links, routes):
    reqs = [_link.Request('name', 'eth1', 9000), _link.Request('name', 'eth0', 70000)]
    with pytest.raises(HostprepError, match='MTU 70000 is above max_mtu'):
        _link.plan(reqs, host_links, lookup_from(routes))


# --- verification ----------------------------------------------------------

class FakeProbe:
    """Answers by size: {size: ProbeResult outcome args}; records calls."""

    def __init__(self, small='reply', big='reply', big_mtu=None, hop=None):
        self.small, self.big, self.big_mtu, self.hop = small, big, big_mtu, hop
        self.calls = []

    def __call__(self, target, size, timeout):
        self.calls.append((target, size, timeout))
        if size in (84, 1280):
            return ProbeResult(self.small, size)
        return ProbeResult(self.big, size, mtu=self.big_mtu, hop=self.hop)


@pytest.mark.parametrize('big, ok, words', [
    ('reply', True, '9000-byte DF echo answered'),
    ('too_big', True, 'a router reports a smaller path MTU (too_big from 198.18.1.1 mtu 1500)'),
    ('timeout', False, 'vanished without an answer'),
    ('local_too_big', False, 'local_too_big'),
    ('error', False, 'error'),
])
def test_check_full_size(big, ok, words):
    probe = FakeProbe(big=big, big_mtu=1500 if big == 'too_big' else None,
                      hop='198.18.1.1' if big == 'too_big' else None)
    verdict = _link.check_full_size('198.18.3.10', 9000, 'eth0', probe, 0.5)
    assert verdict.reachable and verdict.full_size_ok is ok
    assert words in verdict.detail
    assert probe.calls == [('198.18.3.10', 84, 0.5), ('198.18.3.10', 9000, 0.5)]


def test_check_full_size_small_echo_lost():
    probe = FakeProbe(small='timeout')
    verdict = _link.check_full_size('fd42:1ab:0:9::1', 9000, 'eth1', probe, 1.0)
    assert not verdict.reachable and verdict.full_size_ok is False
    assert probe.calls == [('fd42:1ab:0:9::1', 1280, 1.0)]  # IPv6 has no probe below 1280


def test_probe_that_cannot_be_sent_is_an_error_outcome():
    def probe(target, size, timeout):
        raise ValueError('probe size 1000 is outside 1280..65535 for IPv6')
    verdict = _link.check_reachable('fd42:1ab:0:9::1', probe, 1.0)
    assert not verdict.reachable and 'outside 1280..65535' in verdict.detail


# --- the whole run, against a fake kernel built from the recorded dumps ----

class FakeNetlink(_link.Netlink):
    def __init__(self, links, routes, fail_on=None):
        super().__init__(None)
        self._links = links
        self._routes = routes
        self.fail_on = fail_on
        self.sets = []

    def links(self):
        return copy.deepcopy(self._links)

    def route_oif(self, target):
        return lookup_from(self._routes)(target)

    def set_mtu(self, ifindex, mtu):
        if ifindex == self.fail_on:
            raise OSError(22, 'Invalid argument')
        self.sets.append((ifindex, mtu))
        for link in self._links:
            if link.ifindex == ifindex:
                link.mtu = mtu

    def mtu_of(self, name):
        return by_name(self._links, name).mtu


def params(**kw):
    base = {'links': [{'name': 'eth1'}], 'mtu': 9000, 'persist': 'none', 'verify_targets': [],
            'verify_timeout': 0.5, 'rollback': True}
    base.update(kw)
    return base


def test_set_mtus_check_mode_changes_nothing(host_links, routes):
    nl = FakeNetlink(host_links, routes)
    probe = FakeProbe()
    result = _link.set_mtus(params(verify_targets=['198.18.9.1']), nl, None, probe, True, lambda m: None)
    assert result['changed'] and nl.sets == []
    assert result['links'][0]['mtu_before'] == 1500 and result['links'][0]['mtu_after'] == 9000
    assert result['verify'][0]['reachable'] is True and result['verify'][0]['full_size_ok'] is None
    assert [c[1] for c in probe.calls] == [84]  # only the small pre-check
    assert result['diff'][0] == {'before': {'eth1': 1500}, 'after': {'eth1': 9000}}


def test_set_mtus_apply_then_idempotent(host_links, routes):
    nl = FakeNetlink(host_links, routes)
    first = _link.set_mtus(params(), nl, None, None, False, lambda m: None)
    assert first['changed'] and nl.sets == [(by_name(host_links, 'eth1').ifindex, 9000)]
    second = _link.set_mtus(params(), nl, None, None, False, lambda m: None)
    assert not second['changed'] and len(nl.sets) == 1
    assert second['links'][0]['mtu_before'] == second['links'][0]['mtu_after'] == 9000


def test_set_mtus_verification_failure_rolls_back(host_links, routes):
    nl = FakeNetlink(host_links, routes)
    probe = FakeProbe(big='timeout')
    with pytest.raises(HostprepError) as err:
        _link.set_mtus(params(links=[{'name': 'eth1'}, {'name': 'eth0', 'mtu': 4000}],
                              verify_targets=['198.18.9.1']), nl, None, probe, False, lambda m: None)
    exc = err.value
    assert exc.details['rolled_back'] is True and exc.details['changed'] is False
    # eth0 goes down first (lowerings before raisings), so it is put back last
    assert '198.18.9.1 via eth1' in exc.msg and 'Rolled back: eth1 to 1500, eth0 to 9000' in exc.msg
    assert nl.mtu_of('eth1') == 1500 and nl.mtu_of('eth0') == 9000
    assert [l['mtu_after'] for l in exc.details['links']] == [1500, 9000]
    assert exc.details['verify'][0]['size'] == 9000 and exc.details['verify'][0]['full_size_ok'] is False


def test_set_mtus_verification_failure_without_rollback(host_links, routes):
    nl = FakeNetlink(host_links, routes)
    with pytest.raises(HostprepError, match='rollback=false, so the new MTU stays') as err:
        _link.set_mtus(params(verify_targets=['198.18.9.1'], rollback=False), nl, None,
                       FakeProbe(big='timeout'), False, lambda m: None)
    assert err.value.details['rolled_back'] is False and nl.mtu_of('eth1') == 9000


def test_set_mtus_verify_target_silent_before_change(host_links, routes):
    nl = FakeNetlink(host_links, routes)
    with pytest.raises(HostprepError, match='verify target 198.18.9.1 does not answer before the change'):
        _link.set_mtus(params(verify_targets=['198.18.9.1']), nl, None, FakeProbe(small='timeout'),
                       False, lambda m: None)
    assert nl.sets == []


def test_set_mtus_bad_verify_target(host_links, routes):
    with pytest.raises(HostprepError, match=r"verify_targets\[0\] 'peer' is not an IP address"):
        _link.set_mtus(params(verify_targets=['peer']), FakeNetlink(host_links, routes), None,
                       FakeProbe(), False, lambda m: None)


def test_set_mtus_validates_all_before_changing_any(host_links, routes):
    nl = FakeNetlink(host_links, routes)
    with pytest.raises(HostprepError, match='link eth7 does not exist'):
        _link.set_mtus(params(links=[{'name': 'eth1'}, {'name': 'eth7'}]), nl, None, None, False, lambda m: None)
    assert nl.sets == []


def test_set_mtus_warns_below_ipv6_minimum(host_links, routes):
    warnings = []
    _link.set_mtus(params(mtu=1200), FakeNetlink(host_links, routes), None, None, True, warnings.append)
    assert len(warnings) == 1 and 'IPv6' in warnings[0]


def test_apply_changes_restores_on_partial_failure(host_links, routes):
    eth0, eth1 = by_name(host_links, 'eth0'), by_name(host_links, 'eth1')
    nl = FakeNetlink(host_links, routes, fail_on=eth1.ifindex)
    planned, _warn = _link.plan([_link.Request('name', 'eth0', 4000), _link.Request('name', 'eth1', 9000)],
                                nl.links(), nl.route_oif)
    with pytest.raises(HostprepError, match='setting MTU 9000 on eth1 failed.*restored eth0 to 9000'):
        _link.apply_changes(nl, _link.unique_changes(planned))
    assert nl.sets == [(eth0.ifindex, 4000), (eth0.ifindex, 9000)]


# --- persistence and namespaces --------------------------------------------

@pytest.mark.parametrize('persist, netns, own, expected', [
    ('auto', None, True, ('auto', False)),
    ('ifupdown', 'storage', True, ('ifupdown', False)),    # the netns is the host's own namespace
    ('none', 'storage', False, ('none', False)),
    ('auto', 'storage', False, ('none', True)),
])
def test_persist_in_netns(persist, netns, own, expected):
    method, note = _link.persist_in_netns(persist, netns, own)
    assert (method, bool(note)) == expected
    if note:
        assert "persist=auto with netns=storage resolves to persist=none: the host's network configuration does " \
               'not manage links of namespace storage' in note


@pytest.mark.parametrize('persist', ['networkd', 'networkmanager', 'ifupdown'])
def test_persist_in_netns_refuses_explicit_methods(persist):
    with pytest.raises(HostprepError, match="persist=%s with netns=storage: the host's network configuration does "
                                            'not manage links of namespace storage; use persist=none' % persist):
        _link.persist_in_netns(persist, 'storage', False)


def test_set_mtus_auto_in_a_namespace_persists_nothing(host_links, routes):
    warnings = []
    result = _link.set_mtus(params(persist='auto', netns='storage'), FakeNetlink(host_links, routes), None, None,
                            False, warnings.append, own_netns=False)
    assert result['persist_method'] == 'none' and 'resolves to persist=none' in result['persist_note']
    assert result['links'][0]['persist'] == {'method': 'none', 'path': None, 'changed': False}
    assert warnings == [result['persist_note']]


class FailingPersister:
    """Plans that write into a dict; the plan of failing_ifindex raises OSError."""

    def __init__(self, failing_ifindex):
        self.failing = failing_ifindex
        self.files = {}

    def detect(self, ifname, ifindex):
        return 'ifupdown'

    def plan(self, method, ifname, ifindex, mtu):
        from ansible_collections.hostprep.container_host.plugins.module_utils._persist import PersistPlan
        path = '/root/%s' % ifname

        def apply():
            if ifindex == self.failing:
                raise PermissionError(1, 'Operation not permitted', path)
            self.files[path] = mtu
        return PersistPlan(method, path, '', 'mtu %d\n' % mtu, apply=apply, undo=lambda: self.files.pop(path))


def test_set_mtus_failed_persistence_puts_everything_back(host_links, routes):
    eth0, eth1 = by_name(host_links, 'eth0'), by_name(host_links, 'eth1')
    nl = FakeNetlink(host_links, routes)
    persister = FailingPersister(eth1.ifindex)
    record = Changes()
    with pytest.raises(HostprepError) as err:
        _link.set_mtus(params(links=[{'name': 'eth0', 'mtu': 4000}, {'name': 'eth1'}], persist='ifupdown'),
                       nl, persister, None, False, lambda m: None, record)
    msg = err.value.msg
    assert 'persisting the MTU of eth1 with ifupdown failed (/root/eth1): Operation not permitted (/root/eth1)' in msg
    assert 'The run-time MTU is restored (eth1 to 1500, eth0 to 9000)' in msg
    assert nl.mtu_of('eth0') == 9000 and nl.mtu_of('eth1') == 1500 and persister.files == {}
    assert err.value.details['rolled_back'] is True
    assert record.done == ['set the MTU of eth0 from 9000 to 4000', 'set the MTU of eth1 from 1500 to 9000',
                           'wrote the MTU into /root/eth0']
    assert record.undone == ['put back /root/eth0', 'the MTU of eth1 back to 1500', 'the MTU of eth0 back to 9000']
    assert not record.changed


def test_set_mtus_failed_persistence_of_a_file_only_change(host_links, routes):
    eth1 = by_name(host_links, 'eth1')
    record = Changes()
    with pytest.raises(HostprepError, match='persisting the MTU of eth1 with ifupdown failed .*No run-time MTU had changed'):
        _link.set_mtus(params(mtu=1500, persist='ifupdown'), FakeNetlink(host_links, routes),
                       FailingPersister(eth1.ifindex), None, False, lambda m: None, record)
    assert record.done == [] and not record.changed


@pytest.mark.parametrize('target, words', [
    ('0.0.0.0', 'is the unspecified address'),
    ('::', 'is the unspecified address'),
    ('127.0.0.1', 'is a loopback address'),
    ('::1', 'is a loopback address'),
    ('224.0.0.1', 'is a multicast address'),
    ('255.255.255.255', 'is the limited broadcast address'),
])
def test_verify_targets_that_prove_nothing_are_refused(target, words):
    with pytest.raises(HostprepError, match=r'verify_targets\[1\] %s %s' % (re.escape(target), words)):
        _link.parse_verify_targets(['198.18.9.1', target])


def test_verify_targets_once_each():
    assert _link.parse_verify_targets(['198.18.9.1', ' 198.18.9.1', 'fd42::1', 'FD42::1']) == ['198.18.9.1', 'fd42::1']


def test_own_netns_is_recognised_by_its_inode(tmp_path):
    from ansible_collections.hostprep.container_host.plugins.module_utils import _netns
    assert _netns.is_own_netns(None) and _netns.is_own_netns('/proc/self/ns/net')
    assert not _netns.is_own_netns(str(tmp_path)) and not _netns.is_own_netns('hostprep-no-such-namespace')
    for empty in ('', '  '):
        with pytest.raises(HostprepError, match='netns is empty'):
            _netns.check_netns_option(empty)


@pytest.mark.parametrize('value', [0, -1, 61, float('nan')])
def test_verify_timeout_bounds(value):
    with pytest.raises(HostprepError, match='verify_timeout .* is outside'):
        _link.check_timeout(value)


def test_verify_timeout_default_and_valid():
    assert _link.check_timeout(None) == 2.0 and _link.check_timeout(60) == 60.0


# --- stacked links: the whole run (tests/unit/fixtures/link/links_stack.json) --------

@pytest.fixture
def stack_links():
    return _link.links_from_msgs(load('links_stack.json'))


def test_set_mtus_stacked_sets_in_order_and_persists_every_touched_link(stack_links):
    nl = FakeNetlink(stack_links, {})
    persister = FailingPersister(failing_ifindex=None)
    result = _link.set_mtus(params(links=[{'name': 'bra'}], persist='ifupdown'), nl, persister, None, False,
                            lambda m: None)
    names = {link.ifindex: link.ifname for link in stack_links}
    assert [(names[i], mtu) for i, mtu in nl.sets] == [('a0', 9000), ('mv', 9000), ('bra', 9000)]
    assert persister.files == {'/root/bra': 9000, '/root/a0': 9000, '/root/mv': 9000}
    assert [(l['ifname'], l['stacked']) for l in result['links']] == [
        ('bra', None), ('a0', 'parent of macvlan mv'), ('mv', 'port of bridge bra')]


def test_set_mtus_stacked_failure_restores_the_whole_stack_top_down(stack_links):
    names = {link.ifname: link.ifindex for link in stack_links}
    nl = FakeNetlink(stack_links, {}, fail_on=names['bra'])
    record = Changes()
    with pytest.raises(HostprepError, match='setting MTU 9000 on bra failed: .*restored mv to 1500, a0 to 1500'):
        _link.set_mtus(params(links=[{'name': 'bra'}]), nl, None, None, False, lambda m: None, record)
    assert nl.mtu_of('a0') == nl.mtu_of('mv') == nl.mtu_of('bra') == 1500
    assert record.undone == ['the MTU of mv back to 1500', 'the MTU of a0 back to 1500']
