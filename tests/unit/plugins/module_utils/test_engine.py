# SPDX-License-Identifier: GPL-3.0-or-later
"""Engine facts: versions, drivers per engine, findmnt and d_type parsing,
fed output recorded on Debian 12 (tests/unit/fixtures/docker)."""

from __future__ import annotations

import os
import struct

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _engine
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'docker')


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return handle.read()


@pytest.mark.parametrize('text, version', [
    (None, (20, 10, 24)),  # the recorded one
    ('Docker version 26.1.5+dfsg1, build a72d7cd\n', (26, 1, 5)),
    ('Docker version 27.0.0-rc.1, build 1234567\n', (27, 0, 0)),
    ('Docker version 24.0\n', (24, 0, 0)),
])
def test_parse_dockerd_version(text, version):
    assert _engine.parse_dockerd_version(text or fixture('dockerd_version_20.10.24.txt')) == version


def test_parse_dockerd_version_refuses_garbage():
    with pytest.raises(HostprepError, match='cannot read the engine version'):
        _engine.parse_dockerd_version('command not found')


def test_validate_flag_only_from_23():
    assert not _engine.has_validate((20, 10, 24))
    assert not _engine.has_validate((22, 6, 0))
    assert _engine.has_validate((23, 0, 0))
    # Recorded: Engine 20.10 does not know the flag.
    assert 'unknown flag: --validate' in fixture('dockerd_validate_20.10.24.txt')


@pytest.mark.parametrize('version, present, absent, deprecated', [
    ((20, 10, 24), ['devicemapper', 'aufs', 'overlay', 'overlay2', 'btrfs', 'zfs', 'vfs', 'fuse-overlayfs'], [], []),
    ((23, 0, 6), ['devicemapper', 'aufs', 'overlay', 'overlay2'], [], ['devicemapper', 'aufs', 'overlay']),
    ((24, 0, 7), ['devicemapper', 'overlay2', 'btrfs'], ['aufs', 'overlay'], ['devicemapper']),
    ((25, 0, 0), ['overlay2', 'btrfs', 'zfs', 'vfs', 'fuse-overlayfs'], ['devicemapper', 'aufs', 'overlay'], []),
    ((26, 1, 5), ['overlay2'], ['devicemapper'], []),
])
def test_storage_drivers_per_engine(version, present, absent, deprecated):
    drivers = _engine.storage_drivers(version)
    for name in present:
        assert name in drivers
    for name in absent:
        assert name not in drivers
    assert sorted(n for n, s in drivers.items() if s == 'deprecated') == sorted(deprecated)


def test_containerd_store_drivers_are_snapshotters():
    drivers = _engine.storage_drivers((27, 0, 0), containerd_store=True)
    assert 'overlayfs' in drivers and 'devmapper' in drivers and 'devicemapper' not in drivers


@pytest.mark.parametrize('version, config, expected', [
    ((20, 10, 24), {'features': {'containerd-snapshotter': True}}, False),
    ((24, 0, 0), {}, False),
    ((24, 0, 0), {'features': {'containerd-snapshotter': True}}, True),
    ((29, 0, 0), {}, True),
    ((29, 0, 0), {'features': {'containerd-snapshotter': False}}, False),
    ((29, 0, 0), {'storage-driver': 'overlay2'}, False),
    ((29, 0, 0), {'storage-driver': 'overlayfs'}, True),
])
def test_uses_containerd_store(version, config, expected):
    assert _engine.uses_containerd_store(version, config) is expected


def test_removed_driver_advice():
    advice = _engine.removed_driver_advice('devicemapper', (26, 1, 5))
    assert 'overlay2 on XFS' in advice and 'devmapper snapshotter' in advice


@pytest.mark.parametrize('name, fstype, source, options, quota', [
    ('findmnt_T_btrfs.json', 'btrfs', '/dev/loop0', ['rw', 'relatime', 'discard=async', 'space_cache=v2',
                                                     'subvolid=5', 'subvol=/'], False),
    ('findmnt_T_ext4.json', 'ext4', '/dev/loop1', ['rw', 'relatime'], False),
    ('findmnt_T_xfs.json', 'xfs', '/dev/loop2', ['rw', 'relatime', 'inode64', 'logbufs=8', 'logbsize=32k',
                                                 'noquota'], False),
    ('findmnt_T_root_ext4.json', 'ext4', '/dev/vda', ['rw', 'relatime', 'discard', 'resv_strict',
                                                      'resuid=65534', 'resgid=65534'], False),
])
def test_parse_findmnt_recorded(name, fstype, source, options, quota):
    mount = _engine.parse_findmnt(fixture(name))
    assert mount['fstype'] == fstype and mount['source'] == source and mount['options'] == options
    assert _engine.has_project_quota(mount) is quota


def test_project_quota_needs_xfs_with_prjquota():
    # This kernel has no XFS quota; the kernel shows pquota as prjquota.
    mount = _engine.parse_findmnt(fixture('findmnt_T_xfs.json').replace('noquota', 'prjquota'))
    assert _engine.has_project_quota(mount)
    ext4 = _engine.parse_findmnt(fixture('findmnt_T_ext4.json').replace('relatime', 'relatime,prjquota'))
    assert not _engine.has_project_quota(ext4)


def test_parse_findmnt_empty():
    with pytest.raises(HostprepError):
        _engine.parse_findmnt('{"filesystems": []}')


def test_nearest_existing(tmp_path):
    assert _engine.nearest_existing(str(tmp_path / 'a' / 'b')) == str(tmp_path)
    assert _engine.nearest_existing(str(tmp_path)) == str(tmp_path)


def _dirent(name: str, dtype: int) -> bytes:
    raw = name.encode() + b'\0'
    reclen = (19 + len(raw) + 7) // 8 * 8
    return struct.pack('=QqHB', 1, 0, reclen, dtype) + raw.ljust(reclen - 19, b'\0')


def test_parse_dirents_and_verdict():
    buf = _dirent('.', 4) + _dirent('..', 4) + _dirent('overlay2', 4) + _dirent('file', 8)
    entries = _engine.parse_dirents(buf)
    assert entries == [('.', 4), ('..', 4), ('overlay2', 4), ('file', 8)]
    assert _engine.dtype_from_entries(entries) is True
    # XFS with ftype=0 types only . and ..
    assert _engine.dtype_from_entries([('.', 4), ('..', 4), ('x', 0)]) is False
    assert _engine.dtype_from_entries([('.', 4), ('..', 4)]) is None


def test_supports_dtype_real_directories(tmp_path):
    (tmp_path / 'sub').mkdir()
    assert _engine.supports_dtype(str(tmp_path / 'not' / 'yet'))
    empty = tmp_path / 'sub'
    assert _engine.supports_dtype(str(empty))
    assert os.listdir(str(empty)) == []  # the probe directory is gone again


def test_is_block_device(tmp_path):
    assert not _engine.is_block_device(str(tmp_path))
    assert not _engine.is_block_device('/dev/mapper/hostprep-does-not-exist')
