# SPDX-License-Identifier: GPL-3.0-or-later
"""link_mtu on stacked links (macvlan, VXLAN, bridges; bonds and VLANs where
the kernel has them) in a namespace of their own, through real
ansible-playbook runs: the order of the changes, the links touched for a
requested one, refusals, and the rollback of a whole stack."""

from __future__ import annotations

import os

import pytest
from pyroute2 import NetNS

from tests.lab.stack_lab import StackLab

MODULE = 'hostprep.container_host.link_mtu'
START = {'a0': 1500, 'mv': 1500, 'bra': 1500, 'vx4': 1450, 'vx6': 1430, 'brp': 1500, 'p1': 1500, 'p2': 1500}


@pytest.fixture(scope='module')
def stk():
    lab = StackLab('hps%d' % (os.getpid() % 1000))
    try:
        yield lab.up()
    finally:
        lab.down()


def mtus(stk) -> dict[str, int]:
    with NetNS(stk['host_ns']) as ns:
        return {m.get_attr('IFLA_IFNAME'): m.get_attr('IFLA_MTU') for m in ns.get_links()}


@pytest.fixture(autouse=True)
def restore(stk):
    """Every test starts from START and leaves the stack so (top links first when lowering)."""
    yield
    with NetNS(stk['host_ns']) as ns:
        for name in ('bra', 'mv', 'vx4', 'vx6', 'brp', 'p1', 'p2', 'a0'):
            index = ns.link_lookup(ifname=name)[0]
            if ns.link('get', index=index)[0].get_attr('IFLA_MTU') > START[name]:
                ns.link('set', index=index, mtu=START[name])
        for name in ('a0', 'p1', 'p2', 'brp', 'mv', 'bra', 'vx4', 'vx6'):
            ns.link('set', index=ns.link_lookup(ifname=name)[0], mtu=START[name])


def four_steps(ansible, stk, args, expect):
    start = mtus(stk)
    checked = ansible.module(MODULE, dict(args, netns=stk['host_ns']), check=True)
    assert not checked.get('failed'), checked.get('msg')
    assert checked['changed'] is True and mtus(stk) == start, 'check mode changed the kernel'
    applied = ansible.module(MODULE, dict(args, netns=stk['host_ns']))
    assert not applied.get('failed'), applied.get('msg')
    assert applied['changed'] is True
    again = ansible.module(MODULE, dict(args, netns=stk['host_ns']))
    assert not again.get('failed'), again.get('msg')
    assert again['changed'] is False
    now = mtus(stk)
    assert {name: now[name] for name in expect} == expect
    return checked, applied


def touched(result) -> dict[str, str | None]:
    return {entry['ifname']: entry['stacked'] for entry in result['links']}


def test_raise_a_bridge_over_a_macvlan_raises_parents_first(ansible, stk):
    checked, applied = four_steps(ansible, stk, {'links': [{'name': 'bra'}], 'mtu': 9000},
                                  {'a0': 9000, 'mv': 9000, 'bra': 9000, 'vx4': 1450})
    assert touched(applied) == {'bra': None, 'mv': 'port of bridge bra', 'a0': 'parent of macvlan mv'}
    assert checked['links'] == applied['links']
    # the kernel refuses mv above a0 (vlan_dev_change_mtu, macvlan_change_mtu): the run raised a0 first
    assert applied['diff'][0] == {'before': {'bra': 1500, 'mv': 1500, 'a0': 1500},
                                  'after': {'bra': 9000, 'mv': 9000, 'a0': 9000}}


def test_raise_a_bridge_raises_every_port(ansible, stk):
    dummy, applied = four_steps(ansible, stk, {'links': [{'name': 'brp'}], 'mtu': 9000},
                                {'brp': 9000, 'p1': 9000, 'p2': 9000})
    assert touched(applied) == {'brp': None, 'p1': 'port of bridge brp', 'p2': 'port of bridge brp'}


def test_overlay_raises_its_underlay_by_the_encapsulation_overhead(ansible, stk):
    dummy, applied = four_steps(ansible, stk, {'links': [{'name': 'vx4', 'mtu': 8950}, {'name': 'vx6', 'mtu': 8930}]},
                                {'vx4': 8950, 'vx6': 8930, 'a0': 9000, 'mv': 1500})
    assert touched(applied)['a0'] == 'parent of vxlan vx4 + 50 bytes of vxlan encapsulation'


def test_lower_a_parent_lowers_what_it_carries_first(ansible, stk):
    dummy, applied = four_steps(ansible, stk, {'links': [{'name': 'a0'}], 'mtu': 1400},
                                {'a0': 1400, 'mv': 1400, 'bra': 1400, 'vx4': 1350, 'vx6': 1330})
    assert touched(applied)['vx6'] == 'carried by a0, which goes down to 1400'


@pytest.mark.parametrize('links, words', [
    ([{'name': 'vx4', 'mtu': 9000}, {'name': 'a0', 'mtu': 9000}],
     'needs link a0 (parent of vxlan vx4 + 50 bytes of vxlan encapsulation) at MTU 9050, but the links option asks 9000'),
    ([{'name': 'vx4', 'mtu': 65500}], 'MTU 65550 is above max_mtu 65535 of link a0 (name=a0, parent of vxlan vx4'),
    ([{'name': 'a0', 'mtu': 1400}, {'name': 'mv', 'mtu': 1500}],
     'link a0 at MTU 1400 needs link mv (carried by a0, which goes down to 1400) at MTU 1400, but the links option asks 1500'),
])
def test_contradictions_are_refused_and_nothing_changes(ansible, stk, links, words):
    before = mtus(stk)
    result = ansible.module(MODULE, {'links': links, 'netns': stk['host_ns']})
    assert result.get('failed') and words in result['msg'], result.get('msg')
    assert mtus(stk) == before


def test_a_failed_verification_rolls_back_the_whole_stack(ansible, stk):
    """a0's far end stays at 1500 (a switch without jumbo frames): the 9000-byte probe vanishes, and every
    link of the stack goes back, the top ones first."""
    before = mtus(stk)
    result = ansible.module(MODULE, {'links': [{'name': 'bra'}], 'mtu': 9000, 'netns': stk['host_ns'],
                                     'verify_targets': [stk['far_v4']], 'verify_timeout': 1})
    assert result.get('failed') and result['rolled_back'] is True, result.get('msg')
    assert 'Rolled back: bra to 1500, mv to 1500, a0 to 1500' in result['msg']
    assert mtus(stk) == before
