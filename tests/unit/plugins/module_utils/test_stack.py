# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of _stack (stacked links: what moves with a link, and in what
order), fed the netlink dump recorded from tests/lab/stack_lab.py
(tests/unit/fixtures/link/links_stack.json)."""

from __future__ import annotations

import copy
import json
import os

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _link, _stack
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'unit', 'fixtures', 'link')


@pytest.fixture
def msgs():
    with open(os.path.join(FIXTURES, 'links_stack.json'), encoding='utf-8') as handle:
        return json.load(handle)


@pytest.fixture
def links(msgs):
    return _link.links_from_msgs(msgs)


def idx(links, name):
    return next(link.ifindex for link in links if link.ifname == name)


def plan(links, **wanted):
    """[(ifname, mtu, why)] in apply order for wanted ifname=MTU."""
    return [(link.ifname, mtu, why) for link, mtu, why in _stack.expand({idx(links, n): m for n, m in wanted.items()},
                                                                        links)]


def bond_stack(msgs):
    """The recorded lab with p1 and p2 turned into members of a bond (brp as the bond) and mv into a VLAN:
    this kernel has no bonding or 802.1Q driver, so these messages are the recorded ones with the kind
    changed (the attributes a bond member and a VLAN carry, IFLA_MASTER and IFLA_LINK, are already there)."""
    msgs = copy.deepcopy(msgs)
    for msg in msgs:
        info = _link.nl_attr(msg, 'IFLA_LINKINFO')
        name = _link.nl_attr(msg, 'IFLA_IFNAME')
        if name in ('brp', 'mv'):
            for item in info['attrs']:
                if item[0] == 'IFLA_INFO_KIND':
                    item[1] = 'bond' if name == 'brp' else 'vlan'
    return _link.links_from_msgs(msgs)


def test_recorded_stack_is_read(links):
    by = {link.ifname: link for link in links}
    assert (by['mv'].kind, by['mv'].parent, by['mv'].master) == ('macvlan', by['a0'].ifindex, by['bra'].ifindex)
    assert (by['vx4'].parent, by['vx4'].overhead) == (by['a0'].ifindex, 50)
    assert (by['vx6'].parent, by['vx6'].overhead) == (by['a0'].ifindex, 70)
    assert by['vx4'].mtu == 1450 and by['vx6'].mtu == 1430  # the kernel's own 1500 - 50 and 1500 - 70
    assert by['a0'].kind == 'veth' and by['a0'].parent is None  # a veth's IFLA_LINK is its peer, no parent
    assert by['p1'].master == by['brp'].ifindex


def test_raise_goes_bottom_up(links):
    assert plan(links, bra=9000) == [('a0', 9000, 'parent of macvlan mv'), ('mv', 9000, 'port of bridge bra'),
                                     ('bra', 9000, None)]


def test_raise_a_bridge_raises_its_ports(links):
    assert sorted(plan(links, brp=9000)) == [('brp', 9000, None), ('p1', 9000, 'port of bridge brp'),
                                             ('p2', 9000, 'port of bridge brp')]
    assert plan(links, brp=9000)[-1][0] == 'brp'


def test_raise_an_overlay_adds_the_encapsulation(links):
    assert plan(links, vx6=9000)[0] == ('a0', 9070, 'parent of vxlan vx6 + 70 bytes of vxlan encapsulation')


def test_lower_goes_top_down(links):
    order = plan(links, a0=1400)
    assert order[-1] == ('a0', 1400, None)
    assert order.index(('bra', 1400, 'carried by mv, which goes down to 1400')) < order.index(
        ('mv', 1400, 'carried by a0, which goes down to 1400'))
    assert ('vx4', 1350, 'carried by a0, which goes down to 1400') in order
    assert ('vx6', 1330, 'carried by a0, which goes down to 1400') in order


def test_a_link_that_fits_is_left_alone(links):
    assert [name for name, _mtu, _why in plan(links, a0=1600)] == ['a0']
    assert plan(links, vx4=1450) == [('vx4', 1450, None)]


def test_child_above_an_explicit_parent_is_refused(links):
    with pytest.raises(HostprepError, match='needs link a0 .* at MTU 9050, but the links option asks 9000'):
        plan(links, vx4=9000, a0=9000)
    assert plan(links, vx4=8950, a0=9000)[0] == ('a0', 9000, None)


def test_parent_lowered_below_an_explicit_child_is_refused(links):
    with pytest.raises(HostprepError, match='needs link mv .* at MTU 1400, but the links option asks 1500'):
        plan(links, a0=1400, mv=1500)


def test_bond_members_follow_the_bond_both_ways(msgs):
    links = bond_stack(msgs)
    assert plan(links, brp=9000)[-1] == ('brp', 9000, None)
    assert sorted(plan(links, brp=9000)[:2]) == [('p1', 9000, 'member of bond brp'), ('p2', 9000, 'member of bond brp')]
    down = plan(links, brp=1400)
    assert down[0] == ('brp', 1400, None)
    assert sorted(down[1:]) == [('p1', 1400, 'member of bond brp'), ('p2', 1400, 'member of bond brp')]


def test_a_bond_member_alone_is_refused(msgs):
    with pytest.raises(HostprepError, match='link p1 is a member of bond brp.*select brp instead'):
        plan(bond_stack(msgs), p1=9000)


def test_vlan_on_a_bond_member_chain(msgs):
    links = bond_stack(msgs)
    assert plan(links, bra=9000) == [('a0', 9000, 'parent of vlan mv'), ('mv', 9000, 'port of bridge bra'),
                                     ('bra', 9000, None)]


def test_link_stack_validates_what_the_members_cannot_carry(msgs):
    links = bond_stack(msgs)
    for link in links:
        if link.ifname == 'p2':
            link.max_mtu = 4000  # a member whose driver stops at 4000
    planned = [_link.Planned(request=_link.Request('name', 'brp', 9000), link=next(l for l in links if l.ifname == 'brp'))]
    with pytest.raises(HostprepError, match='MTU 9000 is above max_mtu 4000 of link p2 .*member of bond brp'):
        _link.stack(planned, links)


def test_link_stack_orders_changes_and_lists_requested_first(links):
    bra = next(l for l in links if l.ifname == 'bra')
    everything, changes = _link.stack([_link.Planned(request=_link.Request('name', 'bra', 9000), link=bra)], links)
    assert [p.link.ifname for p in everything] == ['bra', 'a0', 'mv']
    assert [p.link.ifname for p in changes] == ['a0', 'mv', 'bra']
    assert everything[1].request.stacked == 'parent of macvlan mv'
