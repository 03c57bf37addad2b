# SPDX-License-Identifier: GPL-3.0-or-later
"""btrfs_data_root logic: device signatures, the plan and its refusals,
where the layers live, running engines and fstab entries, fed output
recorded from loop devices on Debian 12 (tests/unit/fixtures/btrfs)."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _blockdev
from ansible_collections.hostprep.container_host.plugins.module_utils import _btrfs
from ansible_collections.hostprep.container_host.plugins.module_utils import _engine_use
from ansible_collections.hostprep.container_host.plugins.module_utils import _fstab
from ansible_collections.hostprep.container_host.plugins.module_utils import _mounts
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'btrfs')
GiB = 1024 ** 3
BTRFS_UUID = 'ae7ae609-a51b-4fd5-b429-ba6a7e12fd85'


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return handle.read()


def device(kind: str, path: str | None = None, size: int = GiB) -> _btrfs.DeviceFacts:
    blkid = _btrfs.parse_blkid_export(fixture('blkid_%s.txt' % kind))
    return _btrfs.DeviceFacts(path or blkid.get('DEVNAME', '/dev/loop2'), size, blkid,
                              _blockdev.parse_wipefs(fixture('wipefs_%s.json' % kind)))


def same(a: str, b: str) -> bool:
    return a.startswith('/dev/') and a == b


def table(name: str = 'findmnt_list.json') -> list[_mounts.Mount]:
    return _mounts.parse_findmnt_list(fixture(name))


def plan(dev, mounts=(), mount_point='/tmp/rec/m', target='/tmp/rec/new', listing=None, is_dir=True,
         engines=(), **params):
    return _btrfs.plan(dev, list(mounts), mount_point, target, listing, is_dir, params, list(engines), same)


# ---- signatures ------------------------------------------------------------------

def test_blkid_and_wipefs_parsing():
    empty = device('empty', '/dev/loop2')
    assert empty.blkid == {} and empty.signatures == [] and empty.is_empty
    ext4 = device('ext4')
    assert ext4.fstype == 'ext4' and not ext4.is_empty and not ext4.is_btrfs
    assert ext4.describe_signatures() == 'ext4 at offset 0x438'
    btrfs = device('btrfs')
    assert btrfs.is_btrfs and btrfs.uuid == BTRFS_UUID and btrfs.label == 'hpdata'
    assert btrfs.signatures == [{'type': 'btrfs', 'offset': '0x10040', 'uuid': BTRFS_UUID, 'label': 'hpdata'}]
    gpt = device('gpt')
    assert gpt.fstype == 'gpt' and not gpt.is_empty
    assert gpt.describe_signatures() == 'gpt at offset 0x200, gpt at offset 0x3fffe00, PMBR at offset 0x1fe'
    assert _blockdev.parse_wipefs('') == []


def test_minimum_size_is_the_one_mkfs_reports():
    assert 'minimum size for each btrfs device is %d' % _btrfs.BTRFS_MIN_BYTES in fixture('mkfs_btrfs_too_small.txt')


# ---- the plan -----------------------------------------------------------------------

def test_empty_device_is_formatted_mounted_and_bound():
    result = plan(device('empty'))
    assert (result.wipe, result.format, result.mount, result.bind, result.migrate) == (False, True, True, True, False)
    assert result.changes_mounts and result.fsroot == '/'


def test_everything_in_place_is_no_change():
    result = plan(device('btrfs'), table(), mount_point='/tmp/rec/m', target='/tmp/rec/d', listing=['image'])
    assert not result.changes_mounts
    # also while an engine runs
    result = plan(device('btrfs'), table(), mount_point='/tmp/rec/m', target='/tmp/rec/d',
                  engines=['dockerd (pid 1) with root /tmp/rec/d'])
    assert not result.changes_mounts


@pytest.mark.parametrize('kind, signature', [('ext4', 'ext4 at offset 0x438'), ('gpt', 'PMBR at offset 0x1fe')])
def test_foreign_signature_needs_force(kind, signature):
    with pytest.raises(HostprepError) as info:
        plan(device(kind))
    assert 'carries a signature' in info.value.msg and signature in info.value.msg and 'force=true' in info.value.msg
    forced = plan(device(kind), force=True)
    assert forced.wipe and forced.format


def test_existing_btrfs_is_kept_even_with_force_and_label_mismatch_warns():
    result = plan(device('btrfs'), force=True, label='other')
    assert not result.format and not result.wipe and result.mount and result.bind
    assert "labelled 'hpdata', not 'other'" in result.warnings[0]


def test_mounted_device_is_never_formatted():
    mounts = table('findmnt_stacked.json')  # /dev/loop3 (ext4) is mounted at /tmp/rec/xe
    with pytest.raises(HostprepError, match=r'device /dev/loop3 is in use: mounted \(/dev/loop3 on /tmp/rec/xe\); '
                       r'stop that use first \(force=true does not override this\)\. Nothing was changed'):
        plan(device('ext4'), mounts, mount_point='/tmp/rec/new-mp', force=True)


@pytest.mark.parametrize('kind', ['empty', 'ext4', 'gpt'])
def test_device_in_use_is_refused_before_force_is_considered(kind):
    """_blockdev.uses() found something: refused with or without force, and
    the message names the use, not the signature."""
    dev = device(kind)
    dev.uses = ['used as swap (/dev/loop2p2)', 'open by a process: sleep (pid 42) has /dev/loop2 open']
    for force in (False, True):
        with pytest.raises(HostprepError) as info:
            plan(dev, force=force)
        assert 'is in use: used as swap (/dev/loop2p2); open by a process: sleep (pid 42)' in info.value.msg
        assert info.value.details['uses'] == dev.uses


def test_existing_btrfs_in_use_is_not_formatted_so_not_refused():
    dev = device('btrfs')
    dev.uses = ['mounted (/dev/loop2 on /tmp/rec/m)']
    assert not plan(dev).format


def test_too_small_device():
    with pytest.raises(HostprepError, match='device /dev/loop2 is too small for btrfs: 67108864 bytes'):
        plan(device('empty', '/dev/loop2', size=64 * 1024 * 1024))


def test_mount_point_with_another_filesystem_is_refused():
    with pytest.raises(HostprepError) as info:
        plan(device('btrfs'), table('findmnt_stacked.json'), mount_point='/tmp/rec/xe')
    assert info.value.msg.startswith('mount_point /tmp/rec/xe already has /dev/loop3 (ext4) mounted on it, '
                                     'not device /dev/loop4')


@pytest.mark.parametrize('target, shown', [
    ('/tmp/rec/d3', 'hp-tmpfs (tmpfs)'),         # a tmpfs stacked over a good bind mount
    ('/tmp/rec/d2', '/dev/loop4[/sub] (btrfs)'),  # the right device, but a subdirectory of it
])
def test_data_root_with_something_else_mounted_is_refused(target, shown):
    with pytest.raises(HostprepError) as info:
        plan(device('btrfs'), table('findmnt_stacked.json'), target=target)
    assert 'data root %s already has %s mounted on it' % (target, shown) in info.value.msg


def test_subvolume_mount_and_its_bind():
    mounts = table()
    result = plan(device('btrfs'), mounts, mount_point='/tmp/rec/sv', target='/tmp/rec/new',
                  mount_options=['subvol=@docker'])
    assert result.fsroot == '/@docker' and not result.mount and result.bind
    assert _btrfs.expected_fsroot(['noatime', 'subvol=/@docker/']) == '/@docker'
    assert _btrfs.expected_fsroot([]) == '/'


def test_non_empty_data_root_needs_migrate():
    with pytest.raises(HostprepError) as info:
        plan(device('empty'), listing=['image', 'volumes', 'containers', 'a', 'b', 'c'])
    assert ('data root /tmp/rec/new is not empty (a, b, c, containers, image, ...); pass migrate=true'
            in info.value.msg)
    assert plan(device('empty'), listing=['image'], migrate=True).migrate
    assert not plan(device('empty'), listing=[], migrate=True).migrate
    with pytest.raises(HostprepError, match='exists and is not a directory'):
        plan(device('empty'), listing=['new'], is_dir=False)


def test_running_engine_blocks_changes_first():
    engines = ['the engine answering at unix:///run/docker.sock (data root /tmp/rec/new)']
    with pytest.raises(HostprepError) as info:
        # the ext4 signature would be refused too: the engine is named first
        plan(device('ext4'), engines=engines)
    assert info.value.msg.startswith('the container engine is running: the engine answering at')
    assert info.value.details['engines'] == engines


@pytest.mark.parametrize('mount_point, target, message', [
    ('/var/lib/docker/btrfs', '/var/lib/docker', 'must be separate directories'),
    ('/mnt/x', '/mnt/x/docker', 'must be separate directories'),
    ('/mnt/x', '/mnt/x/', 'must be separate directories'),
    ('relative', '/var/lib/docker', 'mount_point relative is not an absolute path'),
    ('/mnt/x', '/', 'data_root cannot be /'),
])
def test_bad_paths(mount_point, target, message):
    with pytest.raises(HostprepError, match=message):
        plan(device('empty'), mount_point=mount_point, target=target)


# ---- where the layers live -------------------------------------------------------------

@pytest.mark.parametrize('version, config, expected', [
    ((20, 10, 24), {}, ('/var/lib/docker', False)),
    ((20, 10, 24), {'data-root': '/srv/docker'}, ('/srv/docker', False)),
    ((20, 10, 24), {'features': {'containerd-snapshotter': True}}, ('/var/lib/docker', False)),
    ((24, 0, 7), {'features': {'containerd-snapshotter': True}}, (_btrfs.SNAPSHOTTER_ROOT, True)),
    ((26, 1, 5), {}, ('/var/lib/docker', False)),
    ((29, 0, 0), {}, (_btrfs.SNAPSHOTTER_ROOT, True)),
    ((29, 0, 0), {'storage-driver': 'btrfs'}, ('/var/lib/docker', False)),
    (None, {'features': {'containerd-snapshotter': True}}, (_btrfs.SNAPSHOTTER_ROOT, True)),
    (None, {}, ('/var/lib/docker', False)),
])
def test_layer_root(version, config, expected):
    assert _btrfs.layer_root(version, config) == expected
    assert _btrfs.SNAPSHOTTER_ROOT == '/var/lib/containerd/io.containerd.snapshotter.v1.btrfs'


def test_layer_root_from_dockerd_flags():
    from ansible_collections.hostprep.container_host.plugins.module_utils._daemon_config import parse_flags
    flags = parse_flags(['--data-root', '/srv/d', '-H', 'fd://'])
    assert _btrfs.layer_root((20, 10, 24), {}, flags) == ('/srv/d', False)


# ---- running engines -------------------------------------------------------------------

FILES = {
    '/etc/docker/daemon.json': json.dumps({'data-root': '/srv/docker'}),
    '/tmp/hpd/daemon.json': json.dumps({'data-root': '/tmp/rec/d'}),
    '/tmp/hpd/containerd/containerd.toml': 'version = 2\nroot = "/tmp/rec/d/containerd/daemon"\n[grpc]\n  address = "x"\n',
}


def read(path: str) -> str | None:
    return FILES.get(path)


@pytest.mark.parametrize('argv, root', [
    (['/usr/sbin/dockerd', '--data-root', '/tmp/rec/d', '--exec-root', '/tmp/hpd'], '/tmp/rec/d'),
    (['/usr/sbin/dockerd', '--data-root=/tmp/rec/d'], '/tmp/rec/d'),
    (['/usr/sbin/dockerd', '-H', 'fd://', '--containerd=/run/containerd/containerd.sock'], '/srv/docker'),
    (['dockerd', '--config-file', '/tmp/hpd/daemon.json'], '/tmp/rec/d'),
    (['dockerd', '--config-file', '/nowhere.json'], '/var/lib/docker'),
])
def test_dockerd_data_root(argv, root):
    assert _engine_use.dockerd_data_root(argv, read) == root


@pytest.mark.parametrize('argv, root', [
    (['containerd', '--config', '/tmp/hpd/containerd/containerd.toml', '--log-level', 'info'],
     '/tmp/rec/d/containerd/daemon'),
    (['/usr/bin/containerd', '--root', '/srv/containerd'], '/srv/containerd'),
    (['/usr/bin/containerd'], '/var/lib/containerd'),
])
def test_containerd_root(argv, root):
    assert _engine_use.containerd_root(argv, read) == root


def test_engines_using():
    processes = [
        (10, 'dockerd', ['/usr/sbin/dockerd', '--data-root', '/tmp/rec/d']),
        (11, 'containerd', ['containerd', '--config', '/tmp/hpd/containerd/containerd.toml']),
        (12, 'dockerd', ['/usr/sbin/dockerd', '--data-root', '/tmp/other']),
        (13, 'containerd', ['/usr/bin/containerd']),
        (14, 'bash', ['bash', '/tmp/rec/d']),
    ]
    assert _engine_use.engines_using(['/tmp/rec/d', '/tmp/rec/m'], processes, read) == [
        'dockerd (pid 10) with root /tmp/rec/d',
        'containerd (pid 11) with root /tmp/rec/d/containerd/daemon']
    assert _engine_use.engines_using([_btrfs.SNAPSHOTTER_ROOT], processes, read) == [
        'containerd (pid 13) with root /var/lib/containerd']


def test_engine_info_from_api_answers():
    answers = {'/_ping': (200, b'OK'),
               '/info': (200, json.dumps({'DockerRootDir': '/var/lib/docker', 'Driver': 'btrfs',
                                          'ServerVersion': '20.10.24+dfsg1'}).encode())}
    assert _engine_use.engine_info(answers.get, 'unix:///x.sock') == {
        'docker_host': 'unix:///x.sock', 'data_root': '/var/lib/docker', 'driver': 'btrfs',
        'version': '20.10.24+dfsg1'}
    assert _engine_use.engine_info(lambda url: (503, b''), 'unix:///x.sock') is None


def test_ping_engine_without_a_listener(tmp_path):
    assert _engine_use.ping_engine('unix://%s/none.sock' % tmp_path, timeout=1) is None


# ---- fstab entries ------------------------------------------------------------------------

@pytest.mark.parametrize('spec, refers', [
    ('UUID=%s' % BTRFS_UUID, True),
    ('UUID=%s' % BTRFS_UUID.upper(), True),
    ('UUID="%s"' % BTRFS_UUID, True),
    ('LABEL=hpdata', True),
    ('LABEL=other', False),
    ('UUID=0a1b2c3d-0000-4000-8000-000000000001', False),
    ('/dev/loop4', True),
    ('/dev/loop3', False),
    ('PARTUUID=1234', False),
])
def test_source_refers_to(spec, refers):
    assert _btrfs.source_refers_to(spec, device('btrfs'), same) is refers


def test_wanted_entries_new_and_kept_spelling():
    dev = device('btrfs')
    entries, compare = _btrfs.wanted_entries(dev, dev.uuid, '/mnt/docker-btrfs', '/var/lib/docker', [],
                                             _fstab.Fstab(fixture('fstab_debian12')), same)
    assert [e.render() for e in entries] == [
        'UUID=%s /mnt/docker-btrfs btrfs defaults 0 0' % BTRFS_UUID,
        '/mnt/docker-btrfs /var/lib/docker none bind,x-systemd.requires-mounts-for=/mnt/docker-btrfs 0 0']
    current = 'LABEL=hpdata /mnt/docker-btrfs btrfs noatime 0 0\n/mnt/docker-btrfs/ /var/lib/docker none ' \
              'bind,x-systemd.requires-mounts-for=/mnt/docker-btrfs 0 0\n'
    entries, compare = _btrfs.wanted_entries(dev, dev.uuid, '/mnt/docker-btrfs', '/var/lib/docker', ['noatime'],
                                             _fstab.Fstab(current), same)
    assert entries[0].source == 'LABEL=hpdata'
    assert _fstab.ensure_entries(current, entries, compare) == (current, False)
    # another device's entry for the mount point is replaced
    other = 'UUID=0a1b2c3d-0000-4000-8000-000000000001 /mnt/docker-btrfs btrfs noatime 0 0\n'
    entries, compare = _btrfs.wanted_entries(dev, dev.uuid, '/mnt/docker-btrfs', '/var/lib/docker', ['noatime'],
                                             _fstab.Fstab(other), same)
    new, changed = _fstab.ensure_entries(other, entries, compare)
    assert changed and new.startswith('UUID=%s /mnt/docker-btrfs btrfs noatime 0 0\n' % BTRFS_UUID)


def test_mount_point_with_space_in_the_systemd_option():
    dev = device('btrfs')
    entries, dummy = _btrfs.wanted_entries(dev, dev.uuid, '/mnt/my btrfs', '/var/lib/docker', [], _fstab.Fstab(''),
                                           same)
    assert entries[1].render() == ('/mnt/my\\040btrfs /var/lib/docker none '
                                   'bind,x-systemd.requires-mounts-for=/mnt/my\\134040btrfs 0 0')


# ---- migration size ---------------------------------------------------------------------------

def test_tree_size_counts_hard_links_once(tmp_path):
    (tmp_path / 'a').write_bytes(b'x' * 1000)
    os.link(tmp_path / 'a', tmp_path / 'b')
    (tmp_path / 'dir').mkdir()
    (tmp_path / 'dir' / 'c').write_bytes(b'y' * 10)
    os.symlink('a', tmp_path / 'link')
    os.symlink('dir', tmp_path / 'dirlink')
    assert _btrfs.tree_size(str(tmp_path)) == {'files': 4, 'bytes': 1010}
