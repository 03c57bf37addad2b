# SPDX-License-Identifier: GPL-3.0-or-later
"""docker_storage_reset logic on a data root rebuilt from the listing of a
real one (dockerd 20.10.24, overlay2, stopped; recorded into
tests/unit/fixtures/containerd/docker_20.10.24_overlay2_data_root.json), the
recorded command line of that dockerd, recorded findmnt output, Debian 12's
docker.service and the recorded top-level layouts of Engine 20.10 and 26
data roots (tests/unit/fixtures/docker/data_root_layouts.json)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _daemon_config
from ansible_collections.hostprep.container_host.plugins.module_utils import _data_root_layout as _layout
from ansible_collections.hostprep.container_host.plugins.module_utils import _engine_use
from ansible_collections.hostprep.container_host.plugins.module_utils import _mounts
from ansible_collections.hostprep.container_host.plugins.module_utils import _processes
from ansible_collections.hostprep.container_host.plugins.module_utils import _reset
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'containerd')
DOCKER_FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'docker')
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
                       'pidfile': '/nonexistent/docker.pid', 'timeout': 2, 'flags_sources': [],
                       'daemon_config': '/nonexistent/daemon.json'}
        self.params.update(params)
        if self.params['data_root'] and self.params['daemon_config'] == '/nonexistent/daemon.json':
            # the engine is configured with the data root under test
            config = os.path.join(os.path.dirname(self.params['data_root']), 'daemon.json')
            with open(config, 'w', encoding='utf-8') as handle:
                json.dump({'data-root': self.params['data_root']}, handle)
            self.params['daemon_config'] = config

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


def test_recorded_data_root_is_one(tmp_path):
    root = build_data_root(str(tmp_path))
    assert _reset.layout_problem(root, _layout.read_entries(root), filesystem_root=False) is None
    assert _reset.count_containers(root) == 2
    assert _reset.count_images(root) == 1
    assert _reset.count_volumes(root) == 1


def recorded_layouts() -> list[dict]:
    with open(os.path.join(DOCKER_FIXTURES, 'data_root_layouts.json'), encoding='utf-8') as handle:
        return json.load(handle)['layouts']


@pytest.mark.parametrize('layout', recorded_layouts(), ids=lambda item: '%s-%s' % (item['engine'], item['driver']))
def test_recorded_layouts_are_docker_s(layout):
    """Every entry real engines made, running or stopped, is in the table
    with its kind; both engines and all drivers recorded are covered."""
    for state in ('running', 'stopped'):
        kinds = {name: {'dir': 'directory', 'file': 'file'}[kind] for name, kind in layout[state].items()}
        assert _layout.foreign_entries(kinds, filesystem_root=False) == [], (state, kinds)


def test_recorded_layouts_cover_both_engines():
    engines = {layout['engine'].split('.')[0] for layout in recorded_layouts()}
    assert engines == {'20', '26'}
    seen = set()
    for layout in recorded_layouts():
        seen |= set(layout['stopped'])
    # engine-id (26), trust (20.10), rootfs (containerd image store) were all seen for real
    assert {'engine-id', 'trust', 'rootfs', 'overlay2', 'vfs', 'btrfs'} <= seen


@pytest.mark.parametrize('path', ['/', '/var', '/var/lib', '/usr', '/etc', '/home'])
def test_system_directories_refused(path):
    problem = _reset.system_directory_problem(path, path)
    assert problem and 'system directory' in problem and path in problem


def test_symlink_to_system_directory_refused(tmp_path):
    link = str(tmp_path / 'docker')
    os.symlink('/var', link)
    problem = _reset.system_directory_problem(link, os.path.realpath(link))
    assert 'system directory' in problem and '(/var)' in problem


def test_missing_and_file_refused(tmp_path):
    missing = str(tmp_path / 'nope')
    assert 'does not exist' in _reset.existence_problem(missing, missing)
    afile = tmp_path / 'file'
    afile.write_text('x')
    assert 'is not a directory' in _reset.existence_problem(str(afile), str(afile))
    link = tmp_path / 'link'
    os.symlink(str(afile), str(link))
    assert 'a symbolic link to %s, which is not a directory' % afile in _reset.existence_problem(str(link), str(afile))
    assert 'is not an absolute path' in _reset.existence_problem('var/lib/docker', '/root/var/lib/docker')


def test_linked_entry_refused_only_when_removed(tmp_path):
    root = tmp_path / 'docker'
    (root / 'elsewhere').mkdir(parents=True)
    os.symlink(str(root / 'elsewhere'), str(root / 'volumes'))
    entries = {'volumes': 'symbolic link', 'image': 'directory'}
    assert _reset.linked_problem(str(root), str(root), ['image'], entries) is None
    problem = _reset.linked_problem(str(root), str(root), ['image', 'volumes'], entries)
    assert 'symbolic links (volumes -> %s)' % (root / 'elsewhere') in problem and 'nothing was changed' in problem


def test_tree_usage_counts_entries_and_bytes(tmp_path):
    (tmp_path / 'd' / 'e').mkdir(parents=True)
    (tmp_path / 'd' / 'e' / 'f').write_bytes(b'z' * 8192)
    os.symlink('/etc', str(tmp_path / 'd' / 'l'))
    size, count = _reset.tree_usage([str(tmp_path / 'd')])
    assert count == 4 and size >= 8192


def test_home_like_directory_refused_by_name():
    """The reported case: one Docker-named entry no longer proves anything."""
    entries = {'image': 'directory', 'Documents': 'directory', '.ssh': 'directory', 'notes.txt': 'file'}
    problem = _reset.layout_problem('/srv/x', entries, filesystem_root=False)
    assert 'holds 3 entries that Docker does not make: .ssh (directory), Documents (directory), notes.txt (file)' in problem
    assert 'Move them out of /srv/x' in problem and 'nothing was changed' in problem


@pytest.mark.parametrize('entries, filesystem_root, foreign', [
    ({}, False, []),
    ({'volumes': 'directory', 'devicemapper': 'directory'}, False, []),        # what a reset leaves
    ({'lost+found': 'directory', 'overlay2': 'directory'}, True, []),          # a filesystem of its own
    ({'lost+found': 'directory', 'overlay2': 'directory'}, False, ['lost+found (directory)']),
    ({'image': 'file'}, False, ['image (file; Docker makes a directory)']),
    ({'engine-id': 'directory'}, False, ['engine-id (directory; Docker makes a file)']),
    ({'volumes': 'symbolic link'}, False, []),                                 # volumes moved elsewhere
    ({'backup.tar': 'file', 'tmp': 'directory'}, False, ['backup.tar (file)']),
])
def test_foreign_entries(entries, filesystem_root, foreign):
    assert _layout.foreign_entries(entries, filesystem_root) == foreign


def test_many_foreign_entries_are_counted():
    entries = {'f%02d' % i: 'file' for i in range(14)}
    problem = _reset.layout_problem('/d', entries, filesystem_root=False)
    assert 'holds 14 entries' in problem and 'and 4 more' in problem


def flags_of(files: dict[str, str]) -> list:
    return _daemon_config.scan_flag_sources(files)


def test_configured_data_root_default_with_debian_unit():
    with open(os.path.join(DOCKER_FIXTURES, 'debian12_docker.service'), encoding='utf-8') as handle:
        unit = handle.read()
    flags = flags_of({'/lib/systemd/system/docker.service': unit})
    path, where = _reset.configured_data_root('/etc/docker/daemon.json', flags, read=lambda p: None)
    assert path == '/var/lib/docker' and 'the default' in where


def test_configured_data_root_from_flags_config_and_config_file_flag():
    dropin = '[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd --data-root /srv/docker -H fd://\n'
    flags = flags_of({'/etc/systemd/system/docker.service.d/root.conf': dropin})
    path, where = _reset.configured_data_root('/etc/docker/daemon.json', flags, read=lambda p: None)
    assert path == '/srv/docker' and where == 'flag --data-root in /etc/systemd/system/docker.service.d/root.conf line 3'

    files = {'/etc/docker/daemon.json': '{"data-root": "/data/docker"}', '/etc/docker/other.json': '{"graph": "/g"}'}
    path, where = _reset.configured_data_root('/etc/docker/daemon.json', [], read=files.get)
    assert path == '/data/docker' and where == 'data-root in /etc/docker/daemon.json'
    # --config-file names the file dockerd reads
    flags = flags_of({'/etc/default/docker': 'DOCKER_OPTS="--config-file /etc/docker/other.json"\n'})
    path, where = _reset.configured_data_root('/etc/docker/daemon.json', flags, read=files.get)
    assert path == '/g' and where == 'data-root in /etc/docker/other.json'


def test_configured_data_root_refuses_conflict_and_broken_json():
    dropin = '[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd --data-root /srv/docker\n'
    flags = flags_of({'/etc/systemd/system/docker.service.d/root.conf': dropin})
    with pytest.raises(HostprepError, match='data root is set twice: /data/docker in /etc/docker/daemon.json and flag '
                                            '--data-root /srv/docker'):
        _reset.configured_data_root('/etc/docker/daemon.json', flags, read=lambda p: '{"data-root": "/data/docker"}')
    with pytest.raises(HostprepError, match='cannot tell which data root the engine is configured with'):
        _reset.configured_data_root('/etc/docker/daemon.json', [], read=lambda p: '{"data-root": ')


def test_configured_problem_names_the_configured_root():
    assert _reset.configured_problem('/var/lib/docker', '/srv/d', '/srv/d', '/srv/d', 'x') is None
    problem = _reset.configured_problem('/home/me', '/home/me', '/var/lib/docker', '/srv/d', 'the default')
    assert 'data_root /home/me is not the engine\'s data root: dockerd is configured to use /var/lib/docker (/srv/d)' \
        in problem and 'give data_root: /var/lib/docker' in problem


def test_double_mount_recorded():
    """One ext4 mounted at a and b, a/docker bound onto c."""
    mounts = _mounts.parse_findmnt_list(fixture_text('findmnt_list_double_mount.json'))

    def same(x, y):
        return x == y and x.startswith('/dev/')

    assert _reset.also_shown_at('/srv/hp-dm/a/docker', mounts, same) == ['/srv/hp-dm/c']
    assert _reset.also_shown_at('/srv/hp-dm/b/docker', mounts, same) == ['/srv/hp-dm/c']
    assert _reset.also_shown_at('/srv/hp-dm/a', mounts, same) == ['/srv/hp-dm/b', '/srv/hp-dm/c']
    # the bind mount itself: its files live in a/docker, where they were bound from
    assert _reset.also_shown_at('/srv/hp-dm/c', mounts, same) == []
    assert _reset.also_shown_at('/srv/hp-dm/a/sub', mounts, same) == []
    assert _reset.also_shown_at('/var/lib/docker', mounts, same) == []


def fixture_text(name: str) -> str:
    with open(os.path.join(DOCKER_FIXTURES, name), encoding='utf-8') as handle:
        return handle.read()


def test_mounts_below_recorded():
    mounts = _mounts.parse_findmnt_list(fixture_bytes('findmnt_list_submount.json').decode())
    assert _reset.mounts_below('/srv/hp-fm/data root', mounts) == ['/srv/hp-fm/data root/overlay2/x']
    assert _reset.mounts_below('/srv/hp-fm/data root/overlay2/x', mounts) == []
    assert _reset.mounts_below('/srv/other', mounts) == []


def test_mounts_below_only_in_what_is_removed():
    """A filesystem mounted in a kept entry (volumes/ on a disk of its own) stays; one in an entry to remove is refused."""
    mounts = _mounts.parse_findmnt_list(fixture_bytes('findmnt_list_submount.json').decode())
    _reset.refuse_mounts_below('/d', '/srv/hp-fm/data root', mounts, ['image', 'volumes'])
    with pytest.raises(HostprepError, match=r'has filesystems mounted below it \(/srv/hp-fm/data root/overlay2/x\)'):
        _reset.refuse_mounts_below('/d', '/srv/hp-fm/data root', mounts, ['image', 'overlay2'])


def test_recorded_dockerd_is_found_by_its_data_root(tmp_path):
    """The shared process scan (btrfs_data_root uses it too) on the recorded
    command line, and the pidfile check."""
    argv = _processes.parse_cmdline(fixture_bytes('dockerd_20.10.24_cmdline.bin'))
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
