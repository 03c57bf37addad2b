# SPDX-License-Identifier: GPL-3.0-or-later
"""hostprep.container_host.link_mtu against the real kernel in the netns lab,
through real ansible-playbook runs."""

from __future__ import annotations

import os

import pytest
from pyroute2 import NetNS

from tests.lab.netns_lab import inventory_in

MODULE = 'hostprep.container_host.link_mtu'


def run(ansible, args: dict, check: bool = False) -> dict:
    """The module under test through one real ansible-playbook run. A run that
    persists runs inside its netns, which is then the module's own namespace:
    persistence is refused for any other (test_guards_network.py)."""
    inventory = None
    if args.get('persist', 'none') != 'none' and args.get('netns'):
        inventory = inventory_in(ansible, args['netns'])
    return ansible.module(MODULE, args, check=check, inventory=inventory)


def kernel(lab) -> dict[str, dict]:
    """ifname -> {mtu, ifindex, mac} as the host namespace's kernel reports them."""
    with NetNS(lab['host_ns']) as ns:
        return {m.get_attr('IFLA_IFNAME'): {'mtu': m.get_attr('IFLA_MTU'), 'ifindex': m['index'],
                                            'mac': m.get_attr('IFLA_ADDRESS')}
                for m in ns.get_links()}


def mtus(lab) -> dict[str, int]:
    return {name: info['mtu'] for name, info in kernel(lab).items()}


@pytest.fixture(autouse=True)
def restore_mtus(lab):
    """Every test starts from the lab's MTUs (eth0 9000, eth1 1500) and leaves them so."""
    with NetNS(lab['host_ns']) as ns:
        for ifname, mtu in (('eth0', 9000), ('eth1', 1500)):
            ns.link('set', index=ns.link_lookup(ifname=ifname)[0], mtu=mtu)
    yield
    with NetNS(lab['host_ns']) as ns:
        for ifname, mtu in (('eth0', 9000), ('eth1', 1500)):
            ns.link('set', index=ns.link_lookup(ifname=ifname)[0], mtu=mtu)


def four_steps(ansible, lab, args, expect, after_check=None):
    """check -> apply -> apply again -> kernel; expect maps ifname -> MTU.
    after_check() asserts that check mode wrote nothing else."""
    start = mtus(lab)
    checked = run(ansible, args, check=True)
    assert not checked.get('failed'), checked.get('msg')
    assert checked['changed'] is True
    assert mtus(lab) == start, 'check mode changed the kernel'
    if after_check:
        after_check()
    applied = run(ansible, args)
    assert not applied.get('failed'), applied.get('msg')
    assert applied['changed'] is True
    again = run(ansible, args)
    assert not again.get('failed'), again.get('msg')
    assert again['changed'] is False
    now = mtus(lab)
    for ifname, mtu in expect.items():
        assert now[ifname] == mtu
    return checked, applied, again


def test_select_by_name(ansible, lab):
    checked, applied, again = four_steps(
        ansible, lab, {'links': [{'name': 'eth1'}], 'mtu': 4000, 'netns': lab['host_ns']}, {'eth1': 4000, 'eth0': 9000})
    entry = applied['links'][0]
    assert entry['selector'] == 'name=eth1' and entry['ifname'] == 'eth1'
    assert (entry['mtu_before'], entry['mtu_after'], entry['changed']) == (1500, 4000, True)
    assert (entry['min_mtu'], entry['max_mtu']) == (68, 65535)
    assert entry['ifindex'] == kernel(lab)['eth1']['ifindex']
    assert checked['links'][0]['mtu_after'] == 4000
    assert applied['diff'][0] == {'before': {'eth1': 1500}, 'after': {'eth1': 4000}}
    assert again['links'][0]['mtu_before'] == 4000 and applied['persist_method'] == 'none'


def test_select_by_mac(ansible, lab):
    mac = kernel(lab)['eth1']['mac']
    dummy, applied, dummy2 = four_steps(
        ansible, lab, {'links': [{'mac': mac.upper()}], 'mtu': 1400, 'netns': lab['host_ns']}, {'eth1': 1400})
    assert applied['links'][0]['selector'] == 'mac=%s' % mac and applied['links'][0]['mac'] == mac


@pytest.mark.parametrize('which, ifname, mtu', [('t9000', 'eth0', 8000), ('peer', 'eth1', 1450)])
def test_select_by_target(ansible, lab, which, ifname, mtu):
    target = lab['targets']['t9000']['v4'] if which == 't9000' else lab['second_nic_peer_v4']
    dummy, applied, dummy2 = four_steps(
        ansible, lab, {'links': [{'target': target}], 'mtu': mtu, 'netns': lab['host_ns']}, {ifname: mtu})
    assert applied['links'][0]['selector'] == 'target=%s' % target
    assert applied['links'][0]['ifname'] == ifname


def test_select_by_ipv6_target(ansible, lab):
    four_steps(ansible, lab, {'links': [{'target': lab['targets']['t9000']['v6']}], 'mtu': 7000,
                              'netns': lab['host_ns']}, {'eth0': 7000, 'eth1': 1500})


def test_several_links_in_one_call(ansible, lab):
    args = {'links': [{'name': 'eth0', 'mtu': 4000}, {'target': lab['second_nic_peer_v4']}],
            'mtu': 1400, 'netns': lab['host_ns']}
    dummy, applied, dummy2 = four_steps(ansible, lab, args, {'eth0': 4000, 'eth1': 1400})
    assert [(l['ifname'], l['mtu_after']) for l in applied['links']] == [('eth0', 4000), ('eth1', 1400)]


def test_verify_passes_with_reply_and_frag_needed(ansible, lab):
    t9000, t1500 = lab['targets']['t9000']['v4'], lab['targets']['t1500']['v4']
    args = {'links': [{'name': 'eth0'}], 'mtu': 4000, 'netns': lab['host_ns'],
            'verify_targets': [t9000, t1500, lab['targets']['t9000']['v6']]}
    dummy, applied, dummy2 = four_steps(ansible, lab, args, {'eth0': 4000})
    verify = {v['target']: v for v in applied['verify']}
    assert all(v['reachable'] and v['full_size_ok'] and v['size'] == 4000 for v in verify.values())
    assert 'answered' in verify[t9000]['detail']
    assert 'router reports a smaller path MTU' in verify[t1500]['detail']  # r1's frag-needed counts
    assert applied['rolled_back'] is False


def test_rollback_when_big_frames_vanish(ansible, lab):
    peer = lab['second_nic_peer_v4']
    result = run(ansible, {'links': [{'name': 'eth1'}], 'mtu': 9000, 'netns': lab['host_ns'],
                           'verify_targets': [peer], 'verify_timeout': 1.0})
    assert result.get('failed') is True
    assert result['rolled_back'] is True and result['changed'] is False
    assert peer in result['msg'] and 'eth1' in result['msg'] and 'Rolled back: eth1 to 1500' in result['msg']
    assert result['verify'][0]['reachable'] is True and result['verify'][0]['full_size_ok'] is False
    assert result['links'][0]['mtu_after'] == 1500
    assert mtus(lab)['eth1'] == 1500


def test_no_rollback_leaves_the_change(ansible, lab):
    result = run(ansible, {'links': [{'name': 'eth1'}], 'mtu': 9000, 'netns': lab['host_ns'],
                           'verify_targets': [lab['second_nic_peer_v4']], 'rollback': False,
                           'verify_timeout': 1.0})
    assert result.get('failed') is True and result['rolled_back'] is False
    assert 'rollback=false' in result['msg'] and mtus(lab)['eth1'] == 9000


@pytest.fixture
def duplicate_mac(lab):
    """A veth pair in the host namespace, one end carrying eth1's MAC (as a bond member would)."""
    mac = kernel(lab)['eth1']['mac']
    with NetNS(lab['host_ns']) as ns:
        ns.link('add', ifname='dupa', kind='veth', peer='dupb')
        ns.link('set', index=ns.link_lookup(ifname='dupa')[0], address=mac)
    yield mac
    with NetNS(lab['host_ns']) as ns:
        ns.link('del', index=ns.link_lookup(ifname='dupa')[0])


@pytest.fixture
def unreachable_route(lab):
    """An 'unreachable' route for the lab's unused address, so the kernel has no route to it."""
    dst = lab['unused_v4']
    with NetNS(lab['host_ns']) as ns:
        ns.route('add', dst=dst + '/32', type='unreachable')
    yield dst
    with NetNS(lab['host_ns']) as ns:
        ns.route('del', dst=dst + '/32', type='unreachable')


BAD = {
    'unknown name': ({'links': [{'name': 'eth1'}, {'name': 'eth9'}]},
                     ['link eth9 does not exist', 'existing links: eth0, eth1, lo']),
    'above max_mtu': ({'links': [{'name': 'eth1'}, {'name': 'eth0', 'mtu': 70000}]},
                      ['MTU 70000 is above max_mtu 65535 of link eth0']),
    'below min': ({'links': [{'name': 'eth1', 'mtu': 60}]}, ['MTU 60 is below its min_mtu 68 for link eth1']),
    'mac matches nothing': ({'links': [{'name': 'eth1'}, {'mac': '02:00:5e:00:53:99'}]},
                            ['no link has MAC address 02:00:5e:00:53:99']),
    'two selectors': ({'links': [{'name': 'eth1', 'target': '198.18.9.1'}]},
                      ['links[0] selects a link in 2 ways', 'give exactly one of name, mac or target']),
    'target not an address': ({'links': [{'name': 'eth1'}, {'target': 'storage.example'}]},
                              ["target 'storage.example' is not an IP address"]),
    'no mtu': ({'links': [{'name': 'eth1'}], 'mtu': None}, ['has no MTU']),
    'missing netns': ({'netns': 'hostprep-no-such-ns'},
                      ['network namespace hostprep-no-such-ns does not exist', 'ip netns add']),
    'verify target silent before': ({'verify_targets': ['UNUSED']},
                                    ['verify target UNUSED does not answer before the change', 'nothing was changed']),
}


@pytest.mark.parametrize('case', sorted(BAD))
def test_bad_input_changes_nothing(ansible, lab, case):
    args, words = BAD[case]
    full = {'links': [{'name': 'eth1'}], 'mtu': 4000, 'netns': lab['host_ns']}
    full.update(args)
    if full['mtu'] is None:
        del full['mtu']
    unused = lab['unused_v4']
    full['verify_targets'] = [unused if t == 'UNUSED' else t for t in full.get('verify_targets', [])]
    before = mtus(lab)
    result = run(ansible, full)
    assert result.get('failed') is True
    for word in words:
        assert word.replace('UNUSED', unused) in result['msg']
    assert mtus(lab) == before


def test_mac_matching_two_links(ansible, lab, duplicate_mac):
    before = mtus(lab)
    result = run(ansible, {'links': [{'mac': duplicate_mac}], 'mtu': 4000, 'netns': lab['host_ns']})
    assert result.get('failed') is True
    assert 'matches 2 links (dupa, eth1)' in result['msg'] and 'select the link by name' in result['msg']
    assert mtus(lab) == before


def test_target_without_route(ansible, lab, unreachable_route):
    before = mtus(lab)
    result = run(ansible, {'links': [{'name': 'eth1'}, {'target': unreachable_route}], 'mtu': 4000,
                           'netns': lab['host_ns']})
    assert result.get('failed') is True
    assert 'no route to target %s' % unreachable_route in result['msg']
    assert mtus(lab) == before


# --- persistence under a config_root ---------------------------------------------

INTERFACES = """\
# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).

source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

allow-hotplug eth0
iface eth0 inet static
\taddress 198.18.1.2/24
\tgateway 198.18.1.1
"""

STORAGE = """\
# storage NIC
auto eth1
iface eth1 inet static
    address 198.18.9.2/24

iface eth1 inet6 static
    address fd42:1ab:0:9::2/64
"""


def test_persist_ifupdown(ansible, lab, tmp_path):
    (tmp_path / 'etc/network/interfaces.d').mkdir(parents=True)
    (tmp_path / 'etc/network/interfaces').write_text(INTERFACES)
    storage = tmp_path / 'etc/network/interfaces.d/storage'
    storage.write_text(STORAGE)
    args = {'links': [{'name': 'eth1'}], 'mtu': 4000, 'netns': lab['host_ns'], 'persist': 'auto',
            'config_root': str(tmp_path)}

    def untouched():
        assert storage.read_text() == STORAGE
    checked, applied, again = four_steps(ansible, lab, args, {'eth1': 4000}, untouched)
    assert checked['persist_method'] == 'ifupdown'
    assert applied['links'][0]['persist'] == {'method': 'ifupdown', 'path': str(storage), 'changed': True}
    assert again['links'][0]['persist']['changed'] is False
    expected = STORAGE.replace('    address 198.18.9.2/24\n', '    address 198.18.9.2/24\n    mtu 4000\n', 1)
    assert storage.read_text() == expected
    assert (tmp_path / 'etc/network/interfaces').read_text() == INTERFACES
    assert applied['diff'][1]['before'] == STORAGE and applied['diff'][1]['after'] == expected
    assert again['persist_method'] == 'ifupdown'


def test_persist_ifupdown_check_mode_writes_nothing(ansible, lab, tmp_path):
    (tmp_path / 'etc/network').mkdir(parents=True)
    (tmp_path / 'etc/network/interfaces').write_text(STORAGE)
    result = run(ansible, {'links': [{'name': 'eth1'}], 'mtu': 4000, 'netns': lab['host_ns'],
                           'persist': 'ifupdown', 'config_root': str(tmp_path)}, check=True)
    assert result['changed'] and result['links'][0]['persist']['changed'] is True
    assert (tmp_path / 'etc/network/interfaces').read_text() == STORAGE and mtus(lab)['eth1'] == 1500


def test_persist_networkd(ansible, lab, tmp_path):
    ifindex = kernel(lab)['eth1']['ifindex']
    state = tmp_path / 'run/systemd/netif/links'
    state.mkdir(parents=True)
    (state / str(ifindex)).write_text(
        '# This is private data. Do not parse.\nADMIN_STATE=configured\nOPER_STATE=routable\n'
        'NETWORK_FILE=/etc/systemd/network/20-storage.network\nNETWORK_FILE_DROPINS=""\n')
    args = {'links': [{'target': lab['second_nic_peer_v4']}], 'mtu': 1400, 'netns': lab['host_ns'],
            'persist': 'networkd', 'config_root': str(tmp_path)}
    dropin = tmp_path / 'etc/systemd/network/20-storage.network.d/90-hostprep-mtu.conf'

    def untouched():
        assert not os.path.exists(str(dropin))
    checked, applied, again = four_steps(ansible, lab, args, {'eth1': 1400}, untouched)
    assert dropin.read_text() == '# Managed by hostprep.container_host.link_mtu\n[Link]\nMTUBytes=1400\n'
    assert applied['persist_method'] == 'networkd'
    assert applied['links'][0]['persist'] == {'method': 'networkd', 'path': str(dropin), 'changed': True}
    assert again['links'][0]['persist']['changed'] is False
    assert checked['diff'][1]['after_header'] == str(dropin)


def test_persist_networkd_unmanaged_link_changes_nothing(ansible, lab, tmp_path):
    ifindex = kernel(lab)['eth1']['ifindex']
    state = tmp_path / 'run/systemd/netif/links'
    state.mkdir(parents=True)
    (state / str(ifindex)).write_text('# This is private data. Do not parse.\nADMIN_STATE=unmanaged\n')
    result = run(ansible, {'links': [{'name': 'eth1'}], 'mtu': 4000, 'netns': lab['host_ns'],
                           'persist': 'networkd', 'config_root': str(tmp_path)})
    assert result.get('failed') is True and 'systemd-networkd does not manage link eth1' in result['msg']
    assert mtus(lab)['eth1'] == 1500 and not (tmp_path / 'etc').exists()


def test_persist_auto_with_nothing_to_persist_with(ansible, lab, tmp_path):
    result = run(ansible, {'links': [{'name': 'eth1'}], 'mtu': 4000, 'netns': lab['host_ns'],
                           'persist': 'auto', 'config_root': str(tmp_path)})
    assert result.get('failed') is True
    assert 'no network stack manages link eth1' in result['msg'] and 'ifupdown' in result['msg']
    assert mtus(lab)['eth1'] == 1500


def test_persist_waits_for_verification(ansible, lab, tmp_path):
    (tmp_path / 'etc/network').mkdir(parents=True)
    (tmp_path / 'etc/network/interfaces').write_text(STORAGE)
    result = run(ansible, {'links': [{'name': 'eth1'}], 'mtu': 9000, 'netns': lab['host_ns'],
                           'persist': 'ifupdown', 'config_root': str(tmp_path),
                           'verify_targets': [lab['second_nic_peer_v4']], 'verify_timeout': 1.0})
    assert result.get('failed') is True and result['rolled_back'] is True
    assert (tmp_path / 'etc/network/interfaces').read_text() == STORAGE and mtus(lab)['eth1'] == 1500
