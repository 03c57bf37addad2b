# SPDX-License-Identifier: GPL-3.0-or-later
"""hostprep.container_host.pmtud against the real kernel.

Every test gets a network namespace of its own (fresh sysctls: probing 0,
base MSS 1024) holding a veth pair eth0/far0 with MTU 1500, and a
sysctl_file in a temporary directory: the host's /etc/sysctl.d and the root
namespace's sysctls are never changed (the tests compare them before and
after).
"""

from __future__ import annotations

import os
import stat
import subprocess
import uuid

import pytest
from pyroute2 import NetNS, netns

from tests.lab.netns_lab import inventory_in

MODULE = 'hostprep.container_host.pmtud'
PROBING = 'net.ipv4.tcp_mtu_probing'
BASE_MSS = 'net.ipv4.tcp_base_mss'
HEADER = ('# Written by hostprep.container_host.pmtud: its runs set net.ipv4.tcp_mtu_probing and '
          'net.ipv4.tcp_base_mss here.\n'
          '# systemd-sysctl applies this file at boot to the root network namespace only.\n')
FIXTURES = os.path.join(os.path.dirname(__file__), '..', 'unit', 'fixtures', 'sysctl')


def run(ansible, args: dict, check: bool = False) -> dict:
    """The module under test through one real ansible-playbook run. With the
    netns of a namespace this file made, the module runs inside it, so that
    namespace is the module's own and the sysctl_file may be written (a
    sysctl.d file applies to the namespace the host's systemd-sysctl runs in)."""
    netns = args.get('netns')
    inventory = None
    if netns and netns.startswith('hpm') and os.path.exists(os.path.join('/var/run/netns', netns)):
        inventory = inventory_in(ansible, netns)
    return ansible.module(MODULE, args, check=check, inventory=inventory)


def ns_sysctl(ns: str, key: str) -> int:
    """What the kernel reports inside the namespace, read by another process."""
    out = subprocess.run(['ip', 'netns', 'exec', ns, 'cat', '/proc/sys/' + key.replace('.', '/')],
                         check=True, capture_output=True, text=True).stdout
    return int(out)


def ns_set(ns: str, key: str, value: int) -> None:
    subprocess.run(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', '%s=%d' % (key, value)], check=True)


def root_sysctls() -> dict[str, str]:
    values = {}
    for key in (PROBING, BASE_MSS):
        with open('/proc/sys/' + key.replace('.', '/'), encoding='utf-8') as handle:
            values[key] = handle.read()
    return values


@pytest.fixture
def ns():
    """A namespace with eth0 (and its peer far0) at MTU 1500, removed afterwards."""
    name = 'hpm%d%s' % (os.getpid() % 1000, uuid.uuid4().hex[:6])
    netns.create(name)
    try:
        with NetNS(name) as nsr:
            nsr.link('set', index=nsr.link_lookup(ifname='lo')[0], state='up')
            nsr.link('add', ifname='eth0', kind='veth', peer='far0')
            for ifname in ('eth0', 'far0'):
                idx = nsr.link_lookup(ifname=ifname)[0]
                nsr.link('set', index=idx, mtu=1500, state='up')
        assert (ns_sysctl(name, PROBING), ns_sysctl(name, BASE_MSS)) == (0, 1024)
        root_before = root_sysctls()
        yield name
        assert root_sysctls() == root_before, 'the root namespace sysctls changed'
    finally:
        netns.remove(name)


@pytest.fixture
def conf(tmp_path):
    return str(tmp_path / 'sysctl.d' / '90-hostprep-pmtud.conf')


def read(path: str) -> str:
    with open(path, encoding='utf-8') as handle:
        return handle.read()


def test_check_apply_idempotent_verify(ansible, ns, conf):
    args = {'netns': ns, 'tcp_mtu_probing': 1, 'tcp_base_mss': 1200, 'sysctl_file': conf}

    checked = run(ansible, args, check=True)
    assert not checked.get('failed'), checked.get('msg')
    assert checked['changed'] and checked['runtime_changed'] and checked['persist_changed']
    assert checked['runtime'] == {PROBING: {'before': 0, 'after': 1}, BASE_MSS: {'before': 1024, 'after': 1200}}
    assert checked['sysctls'] == {PROBING: 1, BASE_MSS: 1200}
    assert (ns_sysctl(ns, PROBING), ns_sysctl(ns, BASE_MSS)) == (0, 1024)
    assert not os.path.exists(conf)
    runtime_diff, file_diff = checked['diff']
    assert runtime_diff['before_header'] == 'run-time sysctls (network namespace %s)' % ns
    assert runtime_diff['before'] == 'net.ipv4.tcp_base_mss = 1024\nnet.ipv4.tcp_mtu_probing = 0\n'
    assert runtime_diff['after'] == 'net.ipv4.tcp_base_mss = 1200\nnet.ipv4.tcp_mtu_probing = 1\n'
    assert file_diff['before'] == '' and file_diff['after_header'] == conf

    applied = run(ansible, args)
    assert not applied.get('failed'), applied.get('msg')
    assert applied['changed'] and applied['runtime_changed'] and applied['persist_changed']
    assert applied['sysctl_file'] == conf and 'backup_file' not in applied

    again = run(ansible, args)
    assert not again.get('failed'), again.get('msg')
    assert not again['changed'] and not again['runtime_changed'] and not again['persist_changed']
    assert again['sysctls'] == {PROBING: 1, BASE_MSS: 1200}
    assert not again.get('warnings')

    assert (ns_sysctl(ns, PROBING), ns_sysctl(ns, BASE_MSS)) == (1, 1200)
    assert read(conf) == HEADER + 'net.ipv4.tcp_base_mss = 1200\nnet.ipv4.tcp_mtu_probing = 1\n'
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o644


def test_file_and_runtime_reported_separately(ansible, ns, conf):
    args = {'netns': ns, 'tcp_mtu_probing': 2, 'sysctl_file': conf}
    # The kernel already has the value: only the file changes.
    ns_set(ns, PROBING, 2)
    file_only = run(ansible, args)
    assert not file_only.get('failed'), file_only.get('msg')
    assert file_only['changed'] and file_only['persist_changed'] and not file_only['runtime_changed']
    assert file_only['runtime'] == {PROBING: {'before': 2, 'after': 2}}
    assert read(conf) == HEADER + 'net.ipv4.tcp_mtu_probing = 2\n'

    # The file already has the value, the kernel lost it: only run time changes.
    ns_set(ns, PROBING, 0)
    mtime = os.stat(conf).st_mtime_ns
    runtime_only = run(ansible, args)
    assert not runtime_only.get('failed'), runtime_only.get('msg')
    assert runtime_only['changed'] and runtime_only['runtime_changed'] and not runtime_only['persist_changed']
    assert ns_sysctl(ns, PROBING) == 2
    assert os.stat(conf).st_mtime_ns == mtime


def test_keeps_earlier_keys_and_makes_backup(ansible, ns, conf):
    first = run(ansible, {'netns': ns, 'tcp_mtu_probing': 1, 'tcp_base_mss': 1100, 'sysctl_file': conf})
    assert first['changed'], first.get('msg')
    old = read(conf)

    second = run(ansible, {'netns': ns, 'tcp_mtu_probing': 2, 'sysctl_file': conf, 'backup': True})
    assert not second.get('failed'), second.get('msg')
    assert second['changed'] and second['runtime_changed'] and second['persist_changed']
    assert read(conf) == HEADER + 'net.ipv4.tcp_base_mss = 1100\nnet.ipv4.tcp_mtu_probing = 2\n'
    assert second['backup_file'] != conf and read(second['backup_file']) == old
    assert second['sysctls'] == {PROBING: 2, BASE_MSS: 1100}
    assert (ns_sysctl(ns, PROBING), ns_sysctl(ns, BASE_MSS)) == (2, 1100)


def test_persist_false_touches_no_file(ansible, ns, conf):
    result = run(ansible, {'netns': ns, 'tcp_mtu_probing': 1, 'persist': False, 'sysctl_file': conf})
    assert not result.get('failed'), result.get('msg')
    assert result['changed'] and result['runtime_changed'] and not result['persist_changed']
    assert len(result['diff']) == 1
    assert ns_sysctl(ns, PROBING) == 1
    assert not os.path.exists(os.path.dirname(conf))


def test_hand_written_file_keeps_what_the_module_does_not_manage(ansible, ns, conf):
    os.makedirs(os.path.dirname(conf))
    before = read(os.path.join(FIXTURES, 'admin-90-storage-tuning.conf'))
    with open(conf, 'w', encoding='utf-8') as handle:
        handle.write(before)
    ns_set(ns, PROBING, 2)
    result = run(ansible, {'netns': ns, 'tcp_base_mss': 1100, 'sysctl_file': conf})
    assert not result.get('failed'), result.get('msg')
    assert result['persist_changed'] and result['runtime_changed']
    assert any('line 22 is not an assignment' in w and 'leaves it as it is' in w for w in result['warnings'])
    assert read(conf) == before.replace('net.ipv4.tcp_base_mss = 1024', 'net.ipv4.tcp_base_mss = 1100')


def test_base_mss_without_probing_warns(ansible, ns, conf):
    result = run(ansible, {'netns': ns, 'tcp_base_mss': 1300, 'sysctl_file': conf})
    assert not result.get('failed'), result.get('msg')
    assert result['changed']
    assert any('tcp_base_mss 1300 has no effect while net.ipv4.tcp_mtu_probing is 0' in w
               for w in result['warnings'])
    assert ns_sysctl(ns, BASE_MSS) == 1300


def test_root_namespace_check_mode_changes_nothing(ansible, conf):
    before = root_sysctls()
    other = 2 if before[PROBING].strip() != '2' else 1
    result = run(ansible, {'tcp_mtu_probing': other, 'sysctl_file': conf}, check=True)
    assert not result.get('failed'), result.get('msg')
    assert result['changed'] and result['runtime_changed']
    assert result['diff'][0]['before_header'] == 'run-time sysctls (root network namespace)'
    assert root_sysctls() == before
    assert not os.path.exists(conf)


@pytest.mark.parametrize('args, message', [
    ({'tcp_mtu_probing': 3}, 'value of tcp_mtu_probing must be one of: 0, 1, 2, got: 3'),
    ({'tcp_mtu_probing': -1}, 'value of tcp_mtu_probing must be one of: 0, 1, 2, got: -1'),
    ({'tcp_mtu_probing': 1, 'tcp_base_mss': 9000, 'mtu': 1500},
     'tcp_base_mss 9000 does not fit MTU 1500 (option mtu): at most 1460'),
    ({'tcp_mtu_probing': 1, 'tcp_base_mss': 9000},
     'tcp_base_mss 9000 does not fit MTU 1500 of link eth0: at most 1460'),
    ({'tcp_mtu_probing': 1, 'tcp_base_mss': 20},
     'tcp_base_mss 20 is below the kernel floor net.ipv4.tcp_min_snd_mss = 48'),
    ({'tcp_mtu_probing': 1, 'netns': 'hpm-no-such-namespace'},
     'network namespace hpm-no-such-namespace does not exist'),
    ({'persist': True}, 'one of the following is required: tcp_mtu_probing, tcp_base_mss'),
], ids=['probing-3', 'probing-minus-1', 'mss-vs-mtu-option', 'mss-vs-link', 'mss-below-floor',
        'missing-netns', 'nothing-to-set'])
def test_bad_input_fails_clearly_and_changes_nothing(ansible, ns, conf, args, message):
    args = dict({'netns': ns, 'sysctl_file': conf}, **args)
    result = run(ansible, args)
    assert result.get('failed'), result
    assert message in result['msg']
    assert not result.get('changed')
    assert (ns_sysctl(ns, PROBING), ns_sysctl(ns, BASE_MSS)) == (0, 1024)
    assert not os.path.exists(conf)


def test_directory_as_sysctl_file_fails_before_any_change(ansible, ns, tmp_path):
    result = run(ansible, {'netns': ns, 'tcp_mtu_probing': 1, 'sysctl_file': str(tmp_path)})
    assert result['failed'] and result['changed'] is False
    assert result['msg'].startswith('sysctl_file %s is a directory' % tmp_path)
    assert ns_sysctl(ns, PROBING) == 0
