# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of _container_net (container networks against their path) and
_container_probe's pure parts, fed the network inspect answers recorded from
a real Engine 20.10 (tests/unit/fixtures/container_net/networks.json: daemon.json
mtu 1450, user networks with and without the MTU option, overlay networks of a
one-node swarm, one of them encrypted)."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _container_net as cn
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError
from ansible_collections.hostprep.container_host.plugins.module_utils._container_probe import judge_probing

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'unit', 'fixtures', 'container_net')


@pytest.fixture(scope='module')
def recorded():
    with open(os.path.join(FIXTURES, 'networks.json'), encoding='utf-8') as handle:
        return json.load(handle)


def no_links(name):
    return None


def judged(recorded, path_mtu, via='eth0'):
    return {n['name']: n for n in cn.survey(recorded['networks'], path_mtu, via, no_links)['networks']}


@pytest.mark.parametrize('underlay, ipv6, encrypted, expected', [
    (1500, False, False, 1450), (9000, False, False, 8950), (1500, True, False, 1430),
    (1500, False, True, 1424), (9000, False, True, 8924), (1450, False, False, 1400),
])
def test_overlay_mtu(underlay, ipv6, encrypted, expected):
    assert cn.overlay_mtu(underlay, ipv6, encrypted) == expected
    assert cn.overlay_mtu(cn.wire_size('overlay', expected, ipv6, encrypted), ipv6, encrypted) == expected


def test_wire_size_is_the_smallest_underlay():
    for mtu in (1400, 1401, 1402, 1403, 8924):
        under = cn.wire_size('overlay', mtu, encrypted=True)
        assert cn.overlay_mtu(under, encrypted=True) >= mtu > cn.overlay_mtu(under - 1, encrypted=True)
    assert cn.wire_size('bridge', 1450) == 1450


def test_recorded_networks_and_their_mtu(recorded):
    nets = judged(recorded, 1500)
    assert (nets['bridge']['mtu'], nets['bridge']['default_bridge'], nets['bridge']['bridge']) == (1450, True, 'docker0')
    assert (nets['fits']['mtu'], nets['fits']['mtu_source']) == (1450, 'option com.docker.network.driver.mtu')
    assert (nets['toobig']['mtu'], nets['toobig']['mtu_source'], nets['toobig']['containers']) == (1500, 'driver default', 1)
    assert nets['toobig']['bridge'] == 'br-' + nets['toobig']['id'][:12]
    assert (nets['ovl']['mtu'], nets['ovl']['wire_mtu']) == (1450, 1500)
    assert (nets['ovlsec']['mtu'], nets['ovlsec']['encrypted'], nets['ovlsec']['wire_mtu']) == (1424, True, 1500)
    assert nets['host']['status'] == nets['none']['status'] == 'not_judged'


def test_a_1450_path_flags_what_is_above_it(recorded):
    result = cn.survey(recorded['networks'], 1450, 'eth0', no_links)
    assert sorted(result['above_path']) == ['ingress', 'ovl', 'ovlsec', 'toobig'] and not result['all_fit']
    nets = {n['name']: n for n in result['networks']}
    assert nets['bridge']['status'] == nets['fits']['status'] == 'fits'
    assert nets['ovl']['fitting_mtu'] == 1400 and nets['ovlsec']['fitting_mtu'] == 1372
    assert 'recreating it with -o com.docker.network.driver.mtu=1450 after its 1 container(s) are detached; this ' \
        'collection never recreates a network' in nets['toobig']['problem']
    assert '1500 bytes on the underlay, but the path through eth0 carries 1450' in nets['ovl']['problem']


def test_a_jumbo_path_fits_everything_with_room(recorded):
    nets = judged(recorded, 9000)
    assert {n['status'] for n in nets.values()} == {'below_path', 'not_judged'}


def test_the_default_bridge_is_fixed_in_daemon_json(recorded):
    nets = judged(recorded, 1400)
    assert 'set mtu 1400 in daemon.json (storage_network_container_mtu) and restart the engine' in nets['bridge']['problem']


def test_macvlan_takes_its_parent_link():
    attrs = {'Name': 'mv', 'Driver': 'macvlan', 'Options': {'parent': 'eth1'}}
    entry = cn.judge(attrs, 1500, 'eth0', lambda name: 9000 if name == 'eth1' else None)
    assert (entry['mtu'], entry['mtu_source'], entry['status']) == (9000, 'parent link eth1', 'above_path')


def test_no_path_judges_nothing(recorded):
    assert {n['status'] for n in judged(recorded, None).values()} == {'not_judged'}


@pytest.mark.parametrize('version, keys', [
    ((20, 10, 24), {'mtu': 1450}),
    ((24, 0, 0), {'mtu': 1450, 'default-network-opts': {'bridge': {'com.docker.network.driver.mtu': '1450'}}}),
    (None, {'mtu': 1450}),
])
def test_daemon_keys(version, keys):
    assert cn.daemon_keys(version, 1450) == keys


def test_daemon_keys_refuses_a_bad_mtu():
    with pytest.raises(HostprepError, match='container network MTU 40 is out of range'):
        cn.daemon_keys((26, 1, 5), 40)


@pytest.mark.parametrize('text, expected', [('20.10.24+dfsg1', (20, 10, 24)), ('26.1.5', (26, 1, 5)),
                                            ('28.5', (28, 5, 0)), ('dev', None)])
def test_engine_version(text, expected, recorded):
    assert cn.engine_version(text) == expected
    assert cn.engine_version(recorded['engine_version']) == (20, 10, 24)


def test_judge_probing():
    assert judge_probing('1', 1)['ok'] and judge_probing('0', None)['ok']
    bad = judge_probing('0', 1)
    assert not bad['ok'] and '--sysctl net.ipv4.tcp_mtu_probing=1' in bad['problem']


@pytest.mark.parametrize('options, mtu, wire', [
    ({}, 1450, 1500), ({'com.docker.network.driver.mtu': '1400'}, 1350, 1400),
    ({'com.docker.network.driver.mtu': '9000'}, 8950, 9000), ({'encrypted': ''}, 1424, 1500),
])
def test_an_overlay_option_is_its_underlay_mtu(options, mtu, wire):
    """libnetwork's maxMTU(): measured with a one-node swarm, option 1400 gives the container's eth0 1350."""
    entry = cn.judge({'Name': 'o', 'Driver': 'overlay', 'Options': options}, 1450, 'eth0', no_links)
    assert (entry['mtu'], entry['wire_mtu']) == (mtu, wire)
    if entry['status'] == 'above_path':
        assert 'recreating it with -o com.docker.network.driver.mtu=1450' in entry['problem']
