# SPDX-License-Identifier: GPL-3.0-or-later
"""Mount table parsing and bind-mount recognition, fed findmnt -J output
recorded from loop-mounted btrfs with bind mounts, a subvolume mount and a
stacked tmpfs (tests/unit/fixtures/btrfs/findmnt_*.json)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _mounts

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'btrfs')


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return handle.read()


def same(a: str, b: str) -> bool:
    """Device identity without stat(): the recorded table names devices one way."""
    return a.startswith('/dev/') and a == b


@pytest.fixture
def table():
    return _mounts.parse_findmnt_list(fixture('findmnt_list.json'))


def test_parse_strips_the_bind_bracket_and_keeps_fsroot(table):
    by_target = {m.target: m for m in table}
    assert by_target['/tmp/rec/m'].as_dict() == {
        'source': '/dev/loop4', 'target': '/tmp/rec/m', 'fstype': 'btrfs', 'fsroot': '/',
        'options': ['rw', 'noatime', 'discard=async', 'space_cache=v2', 'subvolid=5', 'subvol=/']}
    assert (by_target['/tmp/rec/d2'].source, by_target['/tmp/rec/d2'].fsroot) == ('/dev/loop4', '/sub')
    assert (by_target['/tmp/rec/sv'].source, by_target['/tmp/rec/sv'].fsroot) == ('/dev/loop4', '/@docker')
    assert by_target['/tmp/rec/sv'].option_value('subvol') == '/@docker'
    assert by_target['/tmp/rec/sv'].describe() == '/dev/loop4[/@docker] (btrfs)'


@pytest.mark.parametrize('source, fsroot, expected', [
    ('/dev/loop4[/sub]', None, ('/dev/loop4', '/sub')),
    ('/dev/loop4[/sub]', '/sub', ('/dev/loop4', '/sub')),
    ('/dev/loop4', '/', ('/dev/loop4', '/')),
    ('tmpfs', None, ('tmpfs', '/')),
])
def test_split_source(source, fsroot, expected):
    assert _mounts.split_source(source, fsroot) == expected


def test_bind_mount_recognised_by_device_and_fsroot(table):
    assert _mounts.shows_same_files(_mounts.visible_at(table, '/tmp/rec/d'), '/dev/loop4', '/', same)
    assert _mounts.shows_same_files(_mounts.visible_at(table, '/tmp/rec/d/'), '/dev/loop4', '/', same)
    # a bind mount of a subdirectory, or a subvolume, shows other files
    assert not _mounts.shows_same_files(_mounts.visible_at(table, '/tmp/rec/d2'), '/dev/loop4', '/', same)
    assert not _mounts.shows_same_files(_mounts.visible_at(table, '/tmp/rec/sv'), '/dev/loop4', '/', same)
    assert _mounts.shows_same_files(_mounts.visible_at(table, '/tmp/rec/sv'), '/dev/loop4', '/@docker', same)
    assert not _mounts.shows_same_files(_mounts.visible_at(table, '/tmp/rec/d'), '/dev/loop3', '/', same)
    assert [m.target for m in _mounts.mounts_of(table, '/dev/loop4', same)] == [
        '/tmp/rec/m', '/tmp/rec/d', '/tmp/rec/d2', '/tmp/rec/d3', '/tmp/rec/sv']
    assert _mounts.visible_at(table, '/tmp/rec/nothing') is None


def test_the_last_stacked_mount_is_the_visible_one():
    table = _mounts.parse_findmnt_list(fixture('findmnt_stacked.json'))
    assert [m.fstype for m in _mounts.mounts_at(table, '/tmp/rec/d3')] == ['btrfs', 'tmpfs']
    top = _mounts.visible_at(table, '/tmp/rec/d3')
    assert top.source == 'hp-tmpfs' and top.describe() == 'hp-tmpfs (tmpfs)'
    assert not _mounts.shows_same_files(top, '/dev/loop4', '/', same)


def test_same_block_device_compares_device_numbers():
    numbers = {'/dev/loop4': 0x704, '/dev/disk/by-uuid/ae7a': 0x704, '/dev/loop3': 0x703}
    lookup = numbers.get
    assert _mounts.same_block_device('/dev/loop4', '/dev/disk/by-uuid/ae7a', lookup)
    assert not _mounts.same_block_device('/dev/loop4', '/dev/loop3', lookup)
    assert not _mounts.same_block_device('/dev/loop4', '/dev/missing', lookup)
    # sources that are no path (tmpfs, overlay) are never stat()ed
    assert not _mounts.same_block_device('tmpfs', 'tmpfs', lambda p: 1)
    # a character device is no block device
    assert _mounts.device_number('/dev/null') is None


@pytest.mark.parametrize('path, root, inside', [
    ('/var/lib/docker', '/var/lib/docker/', True),
    ('/var/lib/docker/volumes', '/var/lib/docker', True),
    ('/var/lib/docker2', '/var/lib/docker', False),
    ('/mnt', '/', True),
])
def test_is_within(path, root, inside):
    assert _mounts.is_within(path, root) is inside
