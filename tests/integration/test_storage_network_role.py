# SPDX-License-Identifier: GPL-3.0-or-later
"""The storage_network role and playbook, end to end, on the netns lab.

Every run is a real ansible-playbook process; what the kernel reports is
read back with pyroute2 and /proc inside the namespaces.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from pyroute2 import NetNS

from conftest import ROOT  # pylint: disable=import-error
from tests.lab.netns_lab import python_in

PLAYBOOK = os.path.join(ROOT, 'playbooks', 'storage_network.yml')


def link_mtu(nsname: str, ifname: str) -> int:
    with NetNS(nsname) as nsr:
        return nsr.get_links(ifname=ifname)[0].get('IFLA_MTU')


def set_mtu(nsname: str, ifname: str, mtu: int) -> None:
    subprocess.run(['ip', '-n', nsname, 'link', 'set', ifname, 'mtu', str(mtu)], check=True)


def sysctl(nsname: str, key: str) -> str:
    return subprocess.run(['ip', 'netns', 'exec', nsname, 'cat', '/proc/sys/net/ipv4/' + key],
                          capture_output=True, text=True, check=True).stdout.strip()


def set_sysctl(nsname: str, key: str, value: str) -> None:
    subprocess.run(['ip', 'netns', 'exec', nsname, 'sysctl', '-qw', 'net.ipv4.%s=%s' % (key, value)], check=True)


@pytest.fixture()
def host(lab, tmp_path, ansible):
    """The lab host back at MTU 1500 and default sysctls, with its own config root."""
    ns = lab['host_ns']
    set_mtu(ns, 'eth0', 1500)
    set_sysctl(ns, 'tcp_mtu_probing', '0')
    set_sysctl(ns, 'tcp_base_mss', '1024')
    root = tmp_path / 'root'
    (root / 'etc' / 'network').mkdir(parents=True)
    (root / 'etc' / 'network' / 'interfaces').write_text(
        'auto eth0\niface eth0 inet static\n    address 198.18.1.2/24\n')
    hostvars = {
        'ansible_become': False,
        # the module runs inside the namespace, which plays the host: persisting for it is allowed
        'ansible_python_interpreter': python_in(ns, ansible.workdir),
        'storage_network_netns': ns,
        'storage_network_links': [{'target': lab['targets']['t9000']['v4']}],
        'storage_network_persist': 'ifupdown',
        'storage_network_config_root': str(root),
        'storage_network_sysctl_file': str(root / 'etc' / 'sysctl.d' / '90-hostprep-pmtud.conf'),
        'storage_network_safety_targets': [lab['router_v4']],
    }
    yield {'ns': ns, 'root': root, 'vars': hostvars}
    set_mtu(ns, 'eth0', 9000)


def inventory(ansible, hosts: dict) -> str:
    return ansible.inventory(hosts)


def test_role_converges_idempotently(lab, ansible, host):
    targets = [lab['targets']['t9000']['v4'], lab['targets']['t9000']['v6']]
    inv = ansible.inventory({'lab-host': host['vars']})
    extra = {'hostprep_hosts': 'all', 'storage_network_targets': targets}

    check = ansible.playbook(PLAYBOOK, inv, extra, check=True)
    assert check.rc == 0, check.stdout[-3000:]
    assert check.result('Set the MTU of the storage NICs')['changed'] is True
    assert check.result('Set the PMTUD sysctls')['changed'] is True
    assert link_mtu(host['ns'], 'eth0') == 1500
    assert sysctl(host['ns'], 'tcp_mtu_probing') == '0'
    assert not (host['root'] / 'etc' / 'sysctl.d' / '90-hostprep-pmtud.conf').exists()
    assert 'mtu' not in (host['root'] / 'etc' / 'network' / 'interfaces').read_text()

    first = ansible.playbook(PLAYBOOK, inv, extra)
    assert first.rc == 0, first.stdout[-3000:]
    assert first.result('Set the MTU of the storage NICs')['changed'] is True
    assert first.result('Set the PMTUD sysctls')['changed'] is True

    second = ansible.playbook(PLAYBOOK, inv, extra)
    assert second.rc == 0, second.stdout[-3000:]
    assert second.changed == 0, [r['task'] for r in second.records if r['status'] == 'changed']

    # what the kernel and the files say
    assert link_mtu(host['ns'], 'eth0') == 9000
    assert sysctl(host['ns'], 'tcp_mtu_probing') == '1'
    assert sysctl(host['ns'], 'tcp_base_mss') == '1024'
    assert 'mtu 9000' in (host['root'] / 'etc' / 'network' / 'interfaces').read_text()
    conf = (host['root'] / 'etc' / 'sysctl.d' / '90-hostprep-pmtud.conf').read_text()
    assert 'net.ipv4.tcp_mtu_probing = 1' in conf.replace('=', ' = ').replace('  ', ' ')
    report = second.result('Record the storage network report')['ansible_facts']['storage_network_report']
    assert report['all_ok'] is True
    assert {t['target']: t['path_mtu'] for t in report['targets']} == {targets[0]: 9000, targets[1]: 9000}


def test_verify_only_changes_nothing_and_reports_drift(lab, ansible, host):
    inv = ansible.inventory({'lab-host': host['vars']})
    run = ansible.playbook(PLAYBOOK, inv, {
        'hostprep_hosts': 'all', 'storage_network_verify_only': True,
        'storage_network_targets': [lab['targets']['t9000']['v4']],
        'storage_network_fail_on_mismatch': False})
    assert run.rc == 0, run.stdout[-3000:]
    report = run.result('Record the storage network report')['ansible_facts']['storage_network_report']
    assert report['links_drift'] is True and report['sysctls_drift'] is True
    assert report['verify_only'] is True
    # the NIC is at 1500, so the path cannot carry 9000: limited locally
    target = report['targets'][0]
    assert target['expected_mtu_ok'] is False and target['path_mtu'] == 1500
    assert link_mtu(host['ns'], 'eth0') == 1500
    assert sysctl(host['ns'], 'tcp_mtu_probing') == '0'
    assert not (host['root'] / 'etc' / 'sysctl.d').exists()


def test_mismatch_fails_naming_host_target_mtus_and_hop(lab, ansible, host):
    t = lab['targets']
    inv = ansible.inventory({'lab-host': host['vars']})
    run = ansible.playbook(PLAYBOOK, inv, {
        'hostprep_hosts': 'all',
        'storage_network_targets': [t['t9000']['v4'], t['t1500']['v4'], t['t4000']['v6'], t['tblack']['v4']]})
    assert run.rc != 0
    msg = run.result('Fail on targets whose path does not carry the expected MTU')['msg']
    assert 'host lab-host: target %s expected MTU 9000, found 1500, limited at %s' % (
        t['t1500']['v4'], t['t1500']['hop_v4']) in msg
    assert 'target %s expected MTU 9000, found 4000, limited at fd42:1ab:0:4::2' % t['t4000']['v6'] in msg
    assert 'target %s expected MTU 9000, found 1500, limited at an unknown hop' % t['tblack']['v4'] in msg
    assert t['t9000']['v4'] not in msg
    # the MTU change itself was made and is kept: the failure is about the path
    assert link_mtu(host['ns'], 'eth0') == 9000


def test_unreachable_target_is_named(lab, ansible, host):
    inv = ansible.inventory({'lab-host': host['vars']})
    run = ansible.playbook(PLAYBOOK, inv, {'hostprep_hosts': 'all', 'storage_network_verify_only': True,
                                           'storage_network_targets': [lab['unused_v4']]})
    assert run.rc != 0
    msg = run.result('Fail on targets whose path does not carry the expected MTU')['msg']
    assert 'host lab-host: target %s does not answer' % lab['unused_v4'] in msg
    assert link_mtu(host['ns'], 'eth0') == 1500


def test_bad_input_fails_before_any_change(lab, ansible, host):
    inv = ansible.inventory({'lab-host': dict(host['vars'], storage_network_links=[{'name': 'eth7'}])})
    run = ansible.playbook(PLAYBOOK, inv, {'hostprep_hosts': 'all',
                                           'storage_network_targets': [lab['targets']['t9000']['v4']]})
    assert run.rc != 0
    assert 'eth7' in run.result('Set the MTU of the storage NICs')['msg']
    assert link_mtu(host['ns'], 'eth0') == 1500
    assert sysctl(host['ns'], 'tcp_mtu_probing') == '0'

    run = ansible.playbook(PLAYBOOK, ansible.inventory({'lab-host': host['vars']}),
                           {'hostprep_hosts': 'all', 'storage_network_tcp_mtu_probing': 3})
    assert run.rc != 0
    assert 'storage_network_tcp_mtu_probing' in run.stdout
    assert link_mtu(host['ns'], 'eth0') == 1500


def test_fleet_of_namespaces(lab, ansible, tmp_path):
    hosts = {}
    for member in lab['fleet']:
        set_mtu(member['netns'], member['nic'], 1500)
        hosts[member['name']] = {
            'ansible_become': False,
            'storage_network_netns': member['netns'],
            'storage_network_links': [{'name': member['nic']}],
            'storage_network_targets': [lab['targets']['t9000']['v4']],
            'storage_network_persist': 'none',
            'storage_network_sysctl_file': str(tmp_path / (member['name'] + '.conf')),
        }
    inv = ansible.inventory(hosts)
    first = ansible.playbook(PLAYBOOK, inv, {'hostprep_hosts': 'all'})
    assert first.rc == 0, first.stdout[-3000:]
    second = ansible.playbook(PLAYBOOK, inv, {'hostprep_hosts': 'all'})
    assert second.rc == 0 and second.changed == 0
    for member in lab['fleet']:
        assert link_mtu(member['netns'], member['nic']) == 9000
        assert sysctl(member['netns'], 'tcp_mtu_probing') == '1'
        report = second.result('Record the storage network report', member['name'])['ansible_facts']
        assert report['storage_network_report']['all_ok'] is True
