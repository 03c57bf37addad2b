# SPDX-License-Identifier: GPL-3.0-or-later
"""docker_storage_reset logic on a data root rebuilt from the listing of a
real one (dockerd 20.10.24, overlay2, stopped; recorded into
tests/unit/fixtures/containerd/docker_20.10.24_overlay2_data_root.json), the
recorded command line of that dockerd and a recorded mountinfo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _engine_use
from ansible_collections.hostprep.container_host.plugins.module_utils import _mounts
from ansible_collections.hostprep.container_host.plugins.module_utils import _reset
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'containerd')
G = 1024 ** 3


def fixture_bytes(name: str) -> bytes:
    with open(os.path.join(FIXTURES, name), 'rb') as handle:
        return handle.read()


def build_data_root(base: str) -> str:
    """The recorded data root, with files of their recorded sizes (the block
    device node volumes/backingFsBlockDev becomes an empty file)."""
    listing = json.loads(fixture_bytes('docker_20.10.24_overlay2_data_root.json'))
    root = os.path.join(base, 'docker')
    os.makedirs(root)
    for entry in listing['entries']:
        path = os.path.join(root, entry['path'])
        if entry['type'] == 'dir':
            os.makedirs(path, exist_ok=True)
        elif entry['type'] == 'link':
            os.symlink(entry['target'], path)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'wb') as handle:
                handle.write(b'x' * entry.get('size', 0))
    return root


class FakeModule:
    def __init__(self, check_mode: bool = False, **params) -> None:
        self.check_mode = check_mode
        self.params = {'data_root': None, 'force': True, 'keep_volumes': True, 'loopback': True,
                       'data_size': '100G', 'metadata_size': '2G', 'docker_host': None,
                       'pidfile': '/nonexistent/docker.pid', 'timeout': 2}
        self.params.update(params)

    def get_bin_path(self, name, required=False):
        return shutil.which(name)

    def run_command(self, args, check_rc=False, environ_update=None, data=None):
        proc = subprocess.run(args, capture_output=True, text=True, check=False,
                              env=dict(os.environ, **(environ_update or {})))
        return proc.returncode, proc.stdout, proc.stderr


def listing(root: str) -> list[tuple[str, int, int]]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            found.append((os.path.relpath(path, root), st.st_size, st.st_mode))
    return sorted(found)


@pytest.mark.parametrize('value, expected', [
    ('100G', 100 * G), ('2G', 2 * G), ('2GiB', 2 * G), ('2gb', 2 * G), ('512M', 512 * 1024 ** 2),
    ('1.5G', int(1.5 * G)), ('4096', 4096), (4096, 4096), ('1T', 1024 * G),
])
def test_parse_size(value, expected):
    assert _reset.parse_size(value, 'data_size') == expected


@pytest.mark.parametrize('value', ['', 'lots', '-1G', '0', '10X', 0])
def test_parse_size_refuses(value):
    with pytest.raises(HostprepError, match='data_size'):
        _reset.parse_size(value, 'data_size')


def test_recorded_data_root_is_one(tmp_path):
    root = build_data_root(str(tmp_path))
    entries = sorted(os.listdir(root))
    assert _reset.path_problem(root, root, True, entries, os.listdir(os.path.join(root, 'volumes'))) is None
    assert _reset.count_containers(root) == 2
    assert _reset.count_images(root) == 1
    assert _reset.count_volumes(root) == 1


@pytest.mark.parametrize('path', ['/', '/var', '/var/lib', '/usr', '/etc', '/home'])
def test_system_directories_refused(path):
    problem = _reset.path_problem(path, path, True, ['lib', 'etc'], [])
    assert problem and 'system directory' in problem and path in problem


def test_symlink_to_system_directory_refused(tmp_path):
    link = str(tmp_path / 'docker')
    os.symlink('/var', link)
    problem = _reset.path_problem(link, os.path.realpath(link), True, ['lib'], [])
    assert 'system directory' in problem and '(/var)' in problem


def test_missing_and_file_refused(tmp_path):
    missing = str(tmp_path / 'nope')
    assert 'does not exist' in _reset.path_problem(missing, missing, False, [], [])
    afile = tmp_path / 'file'
    afile.write_text('x')
    assert 'is not a directory' in _reset.path_problem(str(afile), str(afile), False, [], [])


def test_other_directory_refused(tmp_path):
    problem = _reset.path_problem(str(tmp_path), str(tmp_path), True, ['Documents', 'photos', 'volumes'], [])
    assert 'does not look like a Docker data root' in problem and 'Documents' in problem


@pytest.mark.parametrize('entries, volume_entries', [
    ([], []),                                          # empty: nothing to remove
    (['volumes'], ['metadata.db', 'hpdata']),          # reset, no loopback
    (['devicemapper', 'volumes'], ['metadata.db']),    # reset with loopback
    (['devicemapper'], []),                            # reset, volumes removed
    (['vfs', 'tmp'], []),                              # a driver directory is enough
])
def test_reset_shapes_accepted(tmp_path, entries, volume_entries):
    assert _reset.path_problem(str(tmp_path), str(tmp_path), True, entries, volume_entries) is None


def test_mounts_below_recorded():
    mounts = _mounts.parse_findmnt_list(fixture_bytes('findmnt_list_submount.json').decode())
    assert _reset.mounts_below('/srv/hp-fm/data root', mounts) == ['/srv/hp-fm/data root/overlay2/x']
    assert _reset.mounts_below('/srv/hp-fm/data root/overlay2/x', mounts) == []
    assert _reset.mounts_below('/srv/other', mounts) == []


def test_recorded_dockerd_is_found_by_its_data_root(tmp_path):
    """The shared process scan (btrfs_data_root uses it too) on the recorded
    command line, and the pidfile check."""
    argv = _engine_use.parse_cmdline(fixture_bytes('dockerd_20.10.24_cmdline.bin'))
    assert _engine_use.is_dockerd(argv)
    processes = [(4242, 'dockerd', argv)]
    assert _engine_use.engines_using(['/srv/docker-test'], processes, read=lambda path: None)
    assert not _engine_use.engines_using(['/var/lib/docker'], processes, read=lambda path: None)
    proc = str(tmp_path / 'proc')
    os.makedirs(os.path.join(proc, '4242'))
    with open(os.path.join(proc, '4242', 'cmdline'), 'wb') as handle:
        handle.write(fixture_bytes('dockerd_20.10.24_cmdline.bin'))
    stat_path = os.path.join(proc, '4242', 'stat')
    with open(stat_path, 'w', encoding='utf-8') as handle:
        handle.write('4242 (dockerd) S 1 4242 4242 0 -1\n')
    pidfile = tmp_path / 'docker.pid'
    pidfile.write_text('4242\n')
    assert _engine_use.pidfile_dockerd(str(pidfile), proc=proc) == 4242
    with open(stat_path, 'w', encoding='utf-8') as handle:
        handle.write('4242 (dockerd) Z 1 4242 4242 0 -1\n')
    assert _engine_use.pidfile_dockerd(str(pidfile), proc=proc) is None
    assert _engine_use.pidfile_dockerd(str(tmp_path / 'none.pid'), proc=proc) is None


def test_allocated_bytes_counts_hard_links_once(tmp_path):
    data = tmp_path / 'a'
    data.write_bytes(b'y' * 65536)
    os.link(str(data), str(tmp_path / 'b'))
    one = _reset.allocated_bytes([str(data)])
    both = _reset.allocated_bytes([str(tmp_path / 'a'), str(tmp_path / 'b')])
    assert one >= 65536 and both == one


def test_reset_check_apply_again(tmp_path):
    root = build_data_root(str(tmp_path))
    host = 'unix://%s' % (tmp_path / 'none.sock')
    before = listing(root)

    checked = _reset.reset(FakeModule(check_mode=True, data_root=root, docker_host=host))
    assert checked['changed']
    assert checked['removed']['containers'] == 2 and checked['removed']['images'] == 1
    assert checked['removed']['volumes'] == 0 and checked['removed']['bytes'] > 0
    assert os.path.join(root, 'volumes') not in checked['removed']['paths']
    assert listing(root) == before, 'check mode changed the data root'

    applied = _reset.reset(FakeModule(data_root=root, docker_host=host))
    assert applied['changed'] and applied['removed'] == checked['removed']
    assert sorted(os.listdir(root)) == ['devicemapper', 'volumes']
    assert os.path.exists(os.path.join(root, 'volumes', 'hpdata', '_data', 'f'))
    for item in applied['loopback_files']:
        st = os.stat(item['path'])
        assert st.st_blocks == 0 and st.st_size == item['size']
    assert [item['size'] for item in applied['loopback_files']] == [100 * G, 2 * G]
    assert applied['reclaimed_bytes'] == applied['removed']['bytes']

    again = _reset.reset(FakeModule(data_root=root, docker_host=host))
    assert not again['changed'] and again['removed']['paths'] == [] and again['reclaimed_bytes'] == 0

    # other sizes: the loopback files are made again
    resized = _reset.reset(FakeModule(data_root=root, docker_host=host, data_size='1G'))
    assert resized['changed'] and os.stat(os.path.join(root, 'devicemapper/devicemapper/data')).st_size == G

    # volumes too, no loopback: an empty directory that is reset already
    wiped = _reset.reset(FakeModule(data_root=root, docker_host=host, keep_volumes=False, loopback=False))
    assert wiped['changed'] and wiped['removed']['volumes'] == 1 and os.listdir(root) == []
    assert not _reset.reset(FakeModule(data_root=root, docker_host=host, keep_volumes=False,
                                       loopback=False))['changed']


def test_used_loopback_file_is_reset(tmp_path):
    root = build_data_root(str(tmp_path))
    host = 'unix://%s' % (tmp_path / 'none.sock')
    _reset.reset(FakeModule(data_root=root, docker_host=host))
    with open(os.path.join(root, 'devicemapper/devicemapper/data'), 'r+b') as handle:
        handle.write(b'z' * 8192)
    again = _reset.reset(FakeModule(data_root=root, docker_host=host))
    assert again['changed'] and again['removed']['bytes'] >= 8192
    assert os.stat(os.path.join(root, 'devicemapper/devicemapper/data')).st_blocks == 0


def test_no_force_says_what_would_go(tmp_path):
    root = build_data_root(str(tmp_path))
    before = listing(root)
    with pytest.raises(HostprepError) as info:
        _reset.reset(FakeModule(data_root=root, docker_host='unix://%s' % (tmp_path / 'x.sock'), force=False))
    assert 'would remove 2 containers, 1 images, 0 volumes' in info.value.msg
    assert 'force=true' in info.value.msg and 'containers' in info.value.details['removed']
    assert listing(root) == before
