# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of _persist: parsers and renderers for NetworkManager (nmcli -t),
systemd-networkd and ifupdown, and detection under a config_root."""

from __future__ import annotations

import os
import shutil

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _persist
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'unit', 'fixtures', 'link')
NM_UUID = '9d9c4a1e-0b37-4b1c-8c53-3f1a2d54e7b0'


def text(name):
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return handle.read()


# --- networkd ----------------------------------------------------------------

def test_parse_networkd_state_configured():
    state = _persist.parse_networkd_state(text('networkd_state_configured'))
    assert state['NETWORK_FILE'] == '/etc/systemd/network/20-storage.network'
    assert state['NETWORK_FILE_DROPINS'] == ''
    assert state['ADMIN_STATE'] == 'configured'
    assert state['ADDRESSES'] == '198.18.1.2/24 fd42:1ab:0:1::2/64'


def test_parse_networkd_state_unmanaged():
    state = _persist.parse_networkd_state(text('networkd_state_unmanaged'))
    assert state['ADMIN_STATE'] == 'unmanaged' and 'NETWORK_FILE' not in state


def test_networkd_dropin():
    assert _persist.render_networkd_dropin(9000) == (
        '# Managed by hostprep.container_host.link_mtu\n[Link]\nMTUBytes=9000\n')
    assert _persist.networkd_dropin_path('/tmp/root', '/usr/lib/systemd/network/99-default.network') == \
        '/tmp/root/etc/systemd/network/99-default.network.d/90-hostprep-mtu.conf'


# --- NetworkManager ------------------------------------------------------------

@pytest.mark.parametrize('line, fields', [
    ('eth0:ethernet:connected:3c36', ['eth0', 'ethernet', 'connected', '3c36']),
    ('eth2:ethernet:unmanaged:', ['eth2', 'ethernet', 'unmanaged', '']),
    (r'a\:b:x\\y:z', ['a:b', 'x\\y', 'z']),
])
def test_split_terse(line, fields):
    assert _persist.split_terse(line) == fields


def test_parse_nm_devices_and_who_is_managed():
    devices = _persist.parse_nm_devices(text('nmcli_device_status.txt'))
    assert devices['eth1'] == {'type': 'ethernet', 'state': 'connected', 'uuid': NM_UUID}
    managed = {name for name, dev in devices.items() if _persist.nm_manages(dev)}
    # unmanaged, disconnected (no connection) and externally connected devices are not NM's to persist
    assert managed == {'eth0', 'eth1'}
    assert not _persist.nm_manages(None)


def test_parse_nm_devices_rejects_other_fields():
    with pytest.raises(HostprepError, match='unexpected nmcli device status line'):
        _persist.parse_nm_devices('eth0:ethernet:connected\n')


def test_parse_nm_connection():
    conn = _persist.parse_nm_connection(text('nmcli_connection_eth1.txt'))
    assert conn['connection.type'] == '802-3-ethernet'
    assert conn['IP6.ADDRESS[1]'] == 'fe80::388e:b4ff:feea:8ee/64'
    prop = _persist.nm_mtu_property(conn, NM_UUID)
    assert prop == '802-3-ethernet.mtu'
    assert _persist.nm_mtu_value(conn[prop]) is None


@pytest.mark.parametrize('value, expected', [('auto', None), ('0', None), ('', None), ('9000', 9000)])
def test_nm_mtu_value(value, expected):
    assert _persist.nm_mtu_value(value) == expected


def test_nm_mtu_property_unknown_type():
    with pytest.raises(HostprepError, match="type 'gsm', which link_mtu cannot persist"):
        _persist.nm_mtu_property({'connection.type': 'gsm'}, 'u')


class FakeNmcli:
    """nmcli answering from the recorded outputs; records modify calls."""

    def __init__(self, running=True, conn_text=None):
        self.running = running
        self.conn_text = conn_text or text('nmcli_connection_eth1.txt')
        self.calls = []

    def __call__(self, args, check_rc=True):
        self.calls.append(args)
        if args[1:] == ['-t', '-f', 'RUNNING', 'general']:
            return (0, 'running\n', '') if self.running else (8, '', 'Error: NetworkManager is not running.\n')
        if args[1:] == ['-t', '-f', 'DEVICE,TYPE,STATE,CON-UUID', 'device', 'status']:
            return 0, text('nmcli_device_status.txt'), ''
        if args[1:4] == ['-t', 'connection', 'show']:
            return 0, self.conn_text, ''
        if args[1:3] == ['connection', 'modify']:
            return 0, '', ''
        raise AssertionError('unexpected command %r' % (args,))


def test_networkmanager_plan_and_apply(tmp_path):
    nmcli = FakeNmcli()
    persister = _persist.Persister(str(tmp_path), run=nmcli, write=None, which=lambda n: '/usr/bin/nmcli')
    assert persister.detect('eth1', 3) == 'networkmanager'
    plan = persister.plan('networkmanager', 'eth1', 3, 9000)
    assert plan.changed and plan.before == 'auto\n' and plan.after == '9000\n'
    assert NM_UUID in plan.path and '802-3-ethernet.mtu' in plan.path
    plan.apply()
    assert nmcli.calls[-1] == ['/usr/bin/nmcli', 'connection', 'modify', NM_UUID, '802-3-ethernet.mtu', '9000']


def test_networkmanager_plan_unchanged():
    conn = text('nmcli_connection_eth1.txt').replace('802-3-ethernet.mtu:auto', '802-3-ethernet.mtu:9000')
    persister = _persist.Persister('/', run=FakeNmcli(conn_text=conn), write=None, which=lambda n: '/usr/bin/nmcli')
    plan = persister.plan('networkmanager', 'eth1', 3, 9000)
    assert not plan.changed and plan.apply is None


@pytest.mark.parametrize('device, words', [
    ('eth2', 'device state: unmanaged'),
    ('docker0', 'device state: connected (externally)'),
    ('wlp3s0', 'device state: disconnected'),
])
def test_networkmanager_plan_refuses_devices_it_does_not_own(device, words):
    persister = _persist.Persister('/', run=FakeNmcli(), write=None, which=lambda n: '/usr/bin/nmcli')
    with pytest.raises(HostprepError, match='NetworkManager has no active connection of its own on %s' % device) as err:
        persister.plan('networkmanager', device, 3, 9000)
    assert words in err.value.msg


def test_networkmanager_not_running():
    persister = _persist.Persister('/', run=FakeNmcli(running=False), write=None, which=lambda n: '/usr/bin/nmcli')
    with pytest.raises(HostprepError, match='nmcli is missing or NetworkManager is not running'):
        persister.plan('networkmanager', 'eth1', 3, 9000)


# --- ifupdown -------------------------------------------------------------------

def test_set_ifupdown_mtu_replaces_existing_line_only():
    before = text('ifupdown/etc/network/interfaces')
    after = _persist.set_ifupdown_mtu(before, 'eth0', 9000)
    assert after == before.replace('\tmtu 1500\n', '\tmtu 9000\n')
    assert _persist.ifupdown_current_mtu(after, 'eth0') == 9000
    assert _persist.set_ifupdown_mtu(after, 'eth0', 9000) == after


def test_set_ifupdown_mtu_adds_line_after_last_option():
    before = text('ifupdown/etc/network/interfaces.d/storage')
    after = _persist.set_ifupdown_mtu(before, 'eth1', 9000)
    assert after == before.replace('    address 198.18.9.2/24\n', '    address 198.18.9.2/24\n    mtu 9000\n')
    assert _persist.set_ifupdown_mtu(after, 'eth1', 9000) == after
    assert _persist.set_ifupdown_mtu(after, 'eth1', 1500) == before.replace(
        '    address 198.18.9.2/24\n', '    address 198.18.9.2/24\n    mtu 1500\n')


def test_set_ifupdown_mtu_prefers_inet_and_handles_missing_newline():
    before = 'iface eth3 inet6 auto\niface eth3 inet dhcp'
    assert _persist.set_ifupdown_mtu(before, 'eth3', 9000) == 'iface eth3 inet6 auto\niface eth3 inet dhcp\n    mtu 9000\n'


def test_set_ifupdown_mtu_updates_every_stanza_that_has_one():
    before = 'iface e inet static\n  address 198.18.1.2/24\n  mtu 1500  # old\niface e inet6 static\n  mtu 1500\n'
    assert _persist.set_ifupdown_mtu(before, 'e', 9000) == before.replace('mtu 1500', 'mtu 9000')


def test_set_ifupdown_mtu_without_stanza():
    assert _persist.set_ifupdown_mtu(text('ifupdown/etc/network/interfaces'), 'eth1', 9000) is None
    # "eth0" is not "eth0.100", and auto/allow lines are no stanzas
    assert _persist.set_ifupdown_mtu('auto eth0\niface eth0.100 inet manual\n', 'eth0', 9000) is None


def test_ifupdown_sources():
    assert _persist.ifupdown_sources(text('ifupdown/etc/network/interfaces')) == [
        (4, 'source', '/etc/network/interfaces.d/*')]


# --- detection and plans under a config_root ---------------------------------------

@pytest.fixture
def root(tmp_path):
    shutil.copytree(os.path.join(FIXTURES, 'ifupdown'), str(tmp_path), dirs_exist_ok=True)
    return tmp_path


def no_nmcli(name):
    return None


def written_to(store):
    def write(path, content):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(content)
        store.append(path)
    return write


def test_ifupdown_plan_follows_source_glob(root):
    store = []
    persister = _persist.Persister(str(root), run=None, write=written_to(store), which=no_nmcli)
    assert persister.detect('eth1', 7) == 'ifupdown'
    plan = persister.plan('ifupdown', 'eth1', 7, 9000)
    assert plan.path == str(root / 'etc/network/interfaces.d/storage') and plan.changed
    plan.apply()
    assert store == [plan.path] and '    mtu 9000\n' in (root / 'etc/network/interfaces.d/storage').read_text()
    assert not persister.plan('ifupdown', 'eth1', 7, 9000).changed


def test_ifupdown_source_directory(root):
    (root / 'etc/network/interfaces').write_text('source-directory interfaces.d\n')
    (root / 'etc/network/interfaces.d/skip.conf').write_text('iface eth1 inet manual\n')
    persister = _persist.Persister(str(root), run=None, write=None, which=no_nmcli)
    assert persister.ifupdown_files() == [str(root / 'etc/network/interfaces'),
                                          str(root / 'etc/network/interfaces.d/storage')]


def test_networkd_detected_before_ifupdown(root):
    links = root / 'run/systemd/netif/links'
    links.mkdir(parents=True)
    (links / '7').write_text(text('networkd_state_configured'))
    store = []
    persister = _persist.Persister(str(root), run=None, write=written_to(store), which=no_nmcli)
    assert persister.detect('eth1', 7) == 'networkd'
    plan = persister.plan('networkd', 'eth1', 7, 9000)
    assert plan.path == str(root / 'etc/systemd/network/20-storage.network.d/90-hostprep-mtu.conf')
    assert plan.before == '' and plan.after.endswith('[Link]\nMTUBytes=9000\n')
    plan.apply()
    assert not persister.plan('networkd', 'eth1', 7, 9000).changed
    assert persister.plan('networkd', 'eth1', 7, 1500).changed


def test_networkd_unmanaged_link_fails_with_advice(root):
    links = root / 'run/systemd/netif/links'
    links.mkdir(parents=True)
    (links / '7').write_text(text('networkd_state_unmanaged'))
    persister = _persist.Persister(str(root), run=None, write=None, which=no_nmcli)
    with pytest.raises(HostprepError, match='systemd-networkd does not manage link eth1.*has no NETWORK_FILE.*'
                                            'add a .network file matching eth1'):
        persister.plan('networkd', 'eth1', 7, 9000)


def test_ifupdown_without_stanza_fails(root):
    persister = _persist.Persister(str(root), run=None, write=None, which=no_nmcli)
    with pytest.raises(HostprepError, match='no "iface eth5 inet\\|inet6 ..." stanza in .*interfaces, .*storage'):
        persister.plan('ifupdown', 'eth5', 9, 9000)


def test_auto_lists_what_it_checked(tmp_path):
    persister = _persist.Persister(str(tmp_path), run=FakeNmcli(running=False), write=None,
                                   which=lambda n: '/usr/bin/nmcli')
    with pytest.raises(HostprepError) as err:
        persister.detect('eth1', 7)
    msg = err.value.msg
    assert 'no network stack manages link eth1' in msg
    assert 'NetworkManager: nmcli missing or NetworkManager not running' in msg
    assert 'networkd: %s does not exist' % (tmp_path / 'run/systemd/netif/links/7') in msg
    assert 'ifupdown: no "iface eth1" stanza' in msg and 'Use persist=none' in msg


def test_auto_skips_networkmanager_that_does_not_manage_the_device(root):
    persister = _persist.Persister(str(root), run=FakeNmcli(), write=None, which=lambda n: '/usr/bin/nmcli')
    assert persister.detect('eth2', 9) == 'ifupdown'   # NM: unmanaged; stanza in interfaces.d/storage


# --- config_root: nothing read or written outside it -----------------------------------

@pytest.mark.parametrize('line', [
    'source ../../../../../../../etc/network/interfaces.d/*',
    'source /../../../../../../../../etc/hostname',
    'source-directory ../../../../../../../../etc/network',
])
def test_ifupdown_source_outside_config_root_is_refused(root, line):
    (root / 'etc/network/interfaces').write_text('auto lo\n%s\n' % line)
    persister = _persist.Persister(str(root), run=None, write=None, which=no_nmcli)
    with pytest.raises(HostprepError) as err:
        persister.plan('ifupdown', 'eth1', 7, 9000)
    kind, arg = line.split()
    assert '"%s %s" (%s line 2) leads to' % (kind, arg, root / 'etc/network/interfaces') in err.value.msg
    assert 'outside config_root %s' % root in err.value.msg


def test_ifupdown_file_linked_outside_config_root_is_refused(root, tmp_path_factory):
    outside = tmp_path_factory.mktemp('outside') / 'storage'
    outside.write_text('iface eth1 inet manual\n')
    (root / 'etc/network/interfaces.d/storage').unlink()
    os.symlink(str(outside), str(root / 'etc/network/interfaces.d/storage'))
    persister = _persist.Persister(str(root), run=None, write=None, which=no_nmcli)
    with pytest.raises(HostprepError, match='file .*storage, read through "source /etc/network/interfaces.d/\\*" '
                                            '\\(.*interfaces line 4\\), leads to %s, outside config_root' % outside):
        persister.detect('eth1', 7)
    assert outside.read_text() == 'iface eth1 inet manual\n'


def test_ifupdown_link_inside_config_root_is_written_through(root):
    storage = root / 'etc/network/interfaces.d/storage'
    real = root / 'etc/network/storage.real'
    storage.rename(real)
    os.symlink('../storage.real', str(storage))
    store = []
    plan = _persist.Persister(str(root), run=None, write=written_to(store), which=no_nmcli).plan('ifupdown', 'eth1', 7, 9000)
    plan.apply()
    assert store == [str(real)] and os.path.islink(str(storage)) and 'mtu 9000' in real.read_text()


def test_networkd_state_file_linked_outside_is_refused(root, tmp_path_factory):
    outside = tmp_path_factory.mktemp('outside') / '7'
    outside.write_text(text('networkd_state_configured'))
    links = root / 'run/systemd/netif/links'
    links.mkdir(parents=True)
    os.symlink(str(outside), str(links / '7'))
    with pytest.raises(HostprepError, match='systemd-networkd link state file .* outside config_root'):
        _persist.Persister(str(root), run=None, write=None, which=no_nmcli).plan('networkd', 'eth1', 7, 9000)


@pytest.mark.parametrize('config_root, words', [('', 'config_root is empty'), ('  ', 'config_root is empty'),
                                                (None, 'config_root is empty'), ('etc', 'not an absolute path')])
def test_config_root_must_be_given_and_absolute(config_root, words):
    with pytest.raises(HostprepError, match=words):
        _persist.Persister(config_root, run=None, write=None, which=no_nmcli)


def test_networkd_plan_undo_removes_the_dropin_and_its_directory(root):
    links = root / 'run/systemd/netif/links'
    links.mkdir(parents=True)
    (links / '7').write_text(text('networkd_state_configured'))
    plan = _persist.Persister(str(root), run=None, write=written_to([]), which=no_nmcli).plan('networkd', 'eth1', 7, 9000)
    plan.apply()
    assert os.path.exists(plan.path)
    plan.undo()
    assert not (root / 'etc/systemd').exists()


def test_ifupdown_plan_undo_writes_the_old_text_back(root):
    storage = root / 'etc/network/interfaces.d/storage'
    before = storage.read_text()
    plan = _persist.Persister(str(root), run=None, write=written_to([]), which=no_nmcli).plan('ifupdown', 'eth1', 7, 9000)
    plan.apply()
    assert storage.read_text() != before
    plan.undo()
    assert storage.read_text() == before


def test_failed_write_leaves_no_directory_behind(root):
    links = root / 'run/systemd/netif/links'
    links.mkdir(parents=True)
    (links / '7').write_text(text('networkd_state_configured'))

    def write(path, content):
        raise PermissionError(1, 'Operation not permitted', path)
    plan = _persist.Persister(str(root), run=None, write=write, which=no_nmcli).plan('networkd', 'eth1', 7, 9000)
    with pytest.raises(PermissionError):
        plan.apply()
    assert not (root / 'etc/systemd').exists()


def test_missing_dirs():
    assert _persist.missing_dirs('/') == []
    assert _persist.missing_dirs('/proc/hostprep-none/a') == ['/proc/hostprep-none', '/proc/hostprep-none/a']


def test_two_stanzas_of_one_file_chain_their_plans(root):
    storage = root / 'etc/network/interfaces.d/storage'
    original = storage.read_text() + 'iface eth3 inet manual\n'
    storage.write_text(original)
    persister = _persist.Persister(str(root), run=None, write=written_to([]), which=no_nmcli)
    first = persister.plan('ifupdown', 'eth1', 7, 9000)
    second = persister.plan('ifupdown', 'eth3', 8, 4000)
    assert second.before == first.after
    first.apply()
    second.apply()
    text = storage.read_text()
    assert 'mtu 9000' in text and text.endswith('iface eth3 inet manual\n    mtu 4000\n')
    second.undo()
    first.undo()
    assert storage.read_text() == original


def networkd_root(root, states):
    links = root / 'run/systemd/netif/links'
    links.mkdir(parents=True)
    for ifindex, network in states.items():
        (links / str(ifindex)).write_text('NETWORK_FILE=/etc/systemd/network/%s\n' % network)
    return _persist.Persister(str(root), run=None, write=written_to([]), which=no_nmcli)


def test_networkd_refuses_a_network_file_shared_with_a_link_not_changed(root):
    persister = networkd_root(root, {7: '20-storage.network', 8: '20-storage.network', 9: '10-other.network'})
    persister.wanted = {7: 9000}
    with pytest.raises(HostprepError, match='the .network file /etc/systemd/network/20-storage.network that manages '
                                            'link eth1 also manages the links with interface index 8'):
        persister.plan('networkd', 'eth1', 7, 9000)


def test_networkd_shared_file_with_the_same_mtu_plans_one_dropin(root):
    persister = networkd_root(root, {7: '20-storage.network', 8: '20-storage.network'})
    persister.wanted = {7: 9000, 8: 9000}
    first = persister.plan('networkd', 'eth1', 7, 9000)
    second = persister.plan('networkd', 'eth2', 8, 9000)
    assert first.changed and not second.changed and first.path == second.path


def test_ifupdown_file_that_is_not_text_is_refused(root):
    (root / 'etc/network/interfaces.d/storage').write_bytes(b'iface eth1 inet manual\n\xff\xfe\n')
    with pytest.raises(HostprepError, match='storage is not UTF-8 text'):
        _persist.Persister(str(root), run=None, write=None, which=no_nmcli).plan('ifupdown', 'eth1', 7, 9000)
