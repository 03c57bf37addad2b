# SPDX-License-Identifier: GPL-3.0-or-later
"""Guards of the engine modules (issue 10), for real.

docker_cow_benchmark, docker_images_archive, docker_storage_info and
containerd_snapshotter get bad input, and each refusal is checked against a
fingerprint taken before and after: the files each module could touch
(byte for byte), the mounts under the test's directory and the images,
containers and volumes of one private dockerd (its data root on a loop
ext4). Every module call is a real ansible-playbook run; the cases of one
module run in one playbook.

Failures after a real change are made real: an immutable directory
(chattr +i) on a loop ext4 for containerd_snapshotter's second and third
write, a full loop ext4 for docker_images_archive's save, and a private
engine moved into a pids and a memory cgroup with low limits for the
benchmark's capacity check.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import tarfile
import uuid

import pytest

from tests.lab import hoststate
from conftest import busybox_engine_fixture, require, workdir_fixture
from tests.lab.dockerd import PrivateDockerd, loop_filesystem

COW = 'hostprep.container_host.docker_cow_benchmark'
ARCHIVE = 'hostprep.container_host.docker_images_archive'
INFO = 'hostprep.container_host.docker_storage_info'
CONTAINERD = 'hostprep.container_host.containerd_snapshotter'
PREFIX = 'hpge-%s' % uuid.uuid4().hex[:6]
MAIN_TOML = ('# containerd of the guard tests\nversion = 2\nroot = "/var/lib/containerd"\n\n'
             '[plugins]\n  [plugins."io.containerd.internal.v1.opt"]\n    path = "/var/lib/containerd/opt"\n')
DAEMON_JSON = '{\n  "log-level": "warn"\n}\n'


workdir = workdir_fixture(PREFIX, ('dockerd', 'containerd', 'losetup', 'mkfs.ext4', 'chattr', 'tune2fs', 'fallocate', 'findmnt',
                                   '/bin/busybox'))


# one private dockerd, its data root on a loop ext4, with busybox
engine = busybox_engine_fixture(320)


def engine_lists(dockerd: PrivateDockerd) -> dict:
    client = dockerd.client
    return {'images': sorted((i.id, tuple(sorted(i.tags))) for i in client.images.list(all=True)),
            'containers': sorted(c.id for c in client.containers.list(all=True)),
            'volumes': sorted(v.name for v in client.volumes.list())}


def fingerprint(dockerd: PrivateDockerd | None, workdir: str, *paths: str) -> dict:
    state = {'files': hoststate.files(*paths), 'mounts': hoststate.mounts(workdir)}
    if dockerd is not None:
        state['engine'] = engine_lists(dockerd)
    return state


def assert_clean_failure(result: dict, fragment: str) -> None:
    """Failed with the fragment in one message, no traceback."""
    assert result['failed'], result
    assert fragment in result['msg'], result['msg']
    for key in ('exception', 'module_stderr', 'module_stdout'):
        assert 'Traceback' not in str(result.get(key, '')), result


def assert_refused(result: dict, fragment: str) -> None:
    assert_clean_failure(result, fragment)
    assert result.get('changed') is False, result
    assert not result.get('changes_made'), result


@contextlib.contextmanager
def immutable(path: str):
    subprocess.run(['chattr', '+i', path], check=True)
    try:
        yield path
    finally:
        subprocess.run(['chattr', '-i', path], check=False)


# ---- the bad-input table ----------------------------------------------------------

# (module, case, arguments with {placeholders}, expected message fragment)
CASES = [
    (COW, 'count a billion', {'count': 1000000000}, 'count must be between 1 and 1000 (got 1000000000)'),
    (COW, 'count zero', {'count': 0}, 'count must be between 1 and 1000 (got 0)'),
    (COW, 'count negative', {'count': -4}, 'count must be between 1 and 1000 (got -4)'),
    (COW, 'write_size 1P', {'write_size': '1P'}, "write_size must be between 1 byte and 1.0 GiB (got '1P')"),
    (COW, 'write_size zero', {'write_size': '0'}, "write_size must be between 1 byte and 1.0 GiB (got '0')"),
    (COW, 'write_size garbage', {'write_size': 'lots'}, "write_size: 'lots' is not a size"),
    (COW, 'sleep_seconds negative', {'sleep_seconds': -5}, 'sleep_seconds must be between 1 and 86400 (got -5)'),
    (COW, 'timeout zero', {'timeout': 0}, 'timeout must be between 1 and 3600 seconds (got 0)'),
    (COW, 'image not local', {'image': PREFIX + '-absent:1'}, 'image %s-absent:1 is not on the engine' % PREFIX),
    (COW, 'image empty', {'image': ''}, 'image is empty'),
    (COW, 'data_root of another filesystem', {'data_root': '{outside}'},
     "data_root {outside} is not on the filesystem of the engine's data root {data_root}"),
    (COW, 'data_root missing', {'data_root': '{missing}'}, 'data_root {missing} is not a directory on this host'),
    (COW, 'busybox dynamic', {'busybox': '/bin/ls'}, '/bin/ls is dynamically linked'),
    (COW, 'thinpool without VG', {'thinpool': 'thinpool'}, 'thinpool thinpool must be VG/POOL'),
    (COW, 'no engine', {'docker_host': 'unix:///nonexistent/{prefix}.sock'}, 'does not answer'),
    (ARCHIVE, 'archive under the data root', {'path': '{data_root}/images.tar'}, 'is under the data root {data_root}'),
    (ARCHIVE, 'archive on the data root filesystem', {'path': '{fsroot}/{prefix}-backup/images.tar'},
     'is on the same filesystem as the data root {data_root}'),
    (ARCHIVE, 'directory below a file', {'path': '{file}/sub/images.tar'}, 'is not a directory; choose another path'),
    (ARCHIVE, 'foreign file', {'path': '{foreign_text}'}, 'is not an image archive made by docker save'),
    (ARCHIVE, 'foreign archive', {'path': '{foreign_tar}'}, 'that docker_images_archive did not write'),
    (ARCHIVE, 'symbolic link', {'path': '{link}'}, 'is a symbolic link'),
    (ARCHIVE, 'directory', {'path': '{outside}'}, 'is a directory; give the path of the archive file'),
    (ARCHIVE, 'device', {'path': '/dev/null'}, 'path /dev/null is not a regular file'),
    (ARCHIVE, 'load a missing archive', {'path': '{outside}/none.tar', 'state': 'loaded'},
     'does not exist; save the images first'),
    (ARCHIVE, 'timeout zero', {'path': '{outside}/t.tar', 'timeout': 0}, 'timeout must be at least 1 second'),
    (ARCHIVE, 'no engine', {'path': '{outside}/n.tar', 'docker_host': 'unix:///nonexistent/{prefix}.sock'},
     'start dockerd or set docker_host'),
    (INFO, 'docker_host garbage', {'docker_host': 'docker.sock'}, "docker_host 'docker.sock' is not an engine address"),
    (INFO, 'timeout zero', {'timeout': 0}, 'timeout 0 is not a number of seconds'),
    (INFO, 'data_root a file', {'data_root': '{file}'}, 'data_root {file} is not a directory'),
    (INFO, 'daemon_config a directory', {'daemon_config': '{outside}'}, 'daemon_config {outside} is a directory'),
    (CONTAINERD, 'containerd_config a directory', {'containerd_config': '{outside}'},
     'containerd_config {outside} is not a regular file'),
    (CONTAINERD, 'daemon_config a dangling link', {'daemon_config': '{dangling}'},
     'daemon_config {dangling} is a symbolic link to {outside}/none.json, which does not exist'),
    (CONTAINERD, 'drop_in not UTF-8', {'drop_in': '{latin1}'}, 'drop_in {latin1} is not UTF-8 text'),
    (CONTAINERD, 'relative root_path', {'root_path': 'snapshots'}, 'root_path snapshots must be an absolute path'),
    (CONTAINERD, 'base_image_size garbage', {'snapshotter': 'devmapper', 'pool_name': 'pool', 'base_image_size': 'big'},
     "base_image_size 'big' is not a size containerd reads"),
]


def fill(value, ctx: dict):
    if isinstance(value, str):
        return value.format(**ctx)
    return value


@pytest.fixture(scope='module')
def table(ansible, workdir, engine, engine26):
    """Runs every case, one playbook per module, between two fingerprints."""
    place = os.path.join(workdir, 'table')
    os.makedirs(os.path.join(place, 'outside'))
    ctx = {'prefix': PREFIX, 'data_root': engine.data_root, 'fsroot': os.path.dirname(engine.data_root),
           'outside': os.path.join(place, 'outside'), 'missing': os.path.join(place, 'missing'),
           'file': os.path.join(place, 'file'), 'foreign_text': os.path.join(place, 'notes.tar'),
           'foreign_tar': os.path.join(place, 'saved-by-hand.tar'), 'link': os.path.join(place, 'link'), 'dangling': os.path.join(place, 'dangling'),
           'latin1': os.path.join(place, 'latin1.toml'), 'config': os.path.join(place, 'config.toml'),
           'daemon': os.path.join(place, 'daemon.json'), 'drop_in': os.path.join(place, 'conf.d', '50-hp.toml')}
    for path, text in ((ctx['file'], 'a file\n'), (ctx['foreign_text'], 'my notes, not an archive\n'),
                       (ctx['config'], MAIN_TOML), (ctx['daemon'], DAEMON_JSON)):
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(text)
    with open(ctx['latin1'], 'wb') as handle:
        handle.write('version = 2\n# caf\xe9\n'.encode('latin-1'))
    os.symlink(ctx['daemon'], ctx['link'])
    os.symlink(os.path.join(ctx['outside'], 'none.json'), ctx['dangling'])
    # an archive as docker save writes it, of an image this engine lacks
    with tarfile.open(ctx['foreign_tar'], 'w') as tar:
        data = json.dumps([{'Config': 'a' * 64 + '.json', 'RepoTags': ['elsewhere:1'], 'Layers': []}]).encode()
        info = tarfile.TarInfo('manifest.json')
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    base = {
        COW: {'docker_host': engine.base_url, 'count': 1, 'scenarios': ['oneshot']},
        ARCHIVE: {'docker_host': engine.base_url},
        INFO: {'docker_host': engine.base_url, 'daemon_config': ctx['daemon'], 'flags_sources': []},
        CONTAINERD: {'snapshotter': 'btrfs', 'containerd_config': ctx['config'], 'drop_in': ctx['drop_in'],
                     'daemon_config': ctx['daemon'], 'dockerd_path': engine26, 'check_storage': False,
                     'root_path': os.path.join(place, 'snapshots'), 'docker_host': 'unix:///nonexistent/docker.sock'},
    }
    before = fingerprint(engine, workdir, place)
    results = {}
    for module in base:
        tasks = []
        for mod, name, args, dummy in CASES:
            if mod == module:
                call = dict(base[module])
                call.update({key: fill(value, ctx) for key, value in args.items()})
                tasks.append((name, call, False))
        for name, result in ansible.module_tasks(module, tasks).items():
            results[(module, name)] = result
    after = fingerprint(engine, workdir, place)
    return {'results': results, 'ctx': ctx, 'before': before, 'after': after}


def test_table_has_the_cases():
    assert len(CASES) >= 12
    assert len({(module, name) for module, name, dummy, dummy2 in CASES}) == len(CASES)


@pytest.mark.parametrize('module, name, args, fragment', CASES, ids=['%s: %s' % (c[0].rsplit('.', 1)[1], c[1])
                                                                     for c in CASES])
def test_bad_input_refused(table, module, name, args, fragment):
    assert_refused(table['results'][(module, name)], fill(fragment, table['ctx']))


def test_bad_input_left_everything_as_it_was(table):
    hoststate.assert_unchanged(table['before'], table['after'])


# ---- failures after a real change -----------------------------------------------

@pytest.fixture()
def ext4(workdir):
    with loop_filesystem(workdir, 'ext4', size_mb=64) as mountpoint:
        yield mountpoint


def containerd_case(root: str) -> dict:
    """main config in ROOT/main, drop-in in ROOT/conf.d, daemon.json in
    ROOT/docker: three directories that can be made immutable one by one."""
    paths = {'main_dir': os.path.join(root, 'main'), 'conf_d': os.path.join(root, 'conf.d'),
             'docker_dir': os.path.join(root, 'docker')}
    for path in paths.values():
        os.makedirs(path)
    paths.update(config=os.path.join(paths['main_dir'], 'config.toml'),
                 drop_in=os.path.join(paths['conf_d'], '50-hp.toml'),
                 daemon=os.path.join(paths['docker_dir'], 'daemon.json'))
    with open(paths['config'], 'w', encoding='utf-8') as handle:
        handle.write(MAIN_TOML)
    os.chmod(paths['config'], 0o600)
    with open(paths['daemon'], 'w', encoding='utf-8') as handle:
        handle.write(DAEMON_JSON)
    return paths


@pytest.mark.parametrize('locked, fragment, made', [
    # the first write (the drop-in) fails: nothing was changed
    ('conf_d', 'writing {drop_in} failed: Operation not permitted; nothing was changed', []),
    # the second (the main file's imports) fails after the drop-in was written
    ('main_dir', 'writing {config} failed: Operation not permitted; the files written before it were put back',
     ['created {drop_in}']),
    # the third (daemon.json) fails after both containerd files were written
    ('docker_dir', 'writing {daemon} failed: Operation not permitted; the files written before it were put back',
     ['created {drop_in}', 'wrote {config}']),
])
def test_containerd_write_failure_puts_back(ansible, workdir, ext4, engine26, locked, fragment, made):
    paths = containerd_case(os.path.join(ext4, 'case'))
    call = {'snapshotter': 'btrfs', 'containerd_config': paths['config'], 'drop_in': paths['drop_in'],
            'daemon_config': paths['daemon'], 'dockerd_path': engine26, 'check_storage': False,
            'root_path': os.path.join(ext4, 'snapshots'), 'docker_host': 'unix:///nonexistent/docker.sock'}
    before = fingerprint(None, workdir, ext4)
    with immutable(paths[locked]):
        result = ansible.module(CONTAINERD, call)
    after = fingerprint(None, workdir, ext4)
    assert_clean_failure(result, fragment.format(**paths))
    hoststate.assert_unchanged(before, after)
    assert result['changes_made'] == [m.format(**paths) for m in made], result
    restored = [m.format(**paths).replace('created ', 'removed ').replace('wrote ', 'put back ') for m in made]
    assert result['changes_restored'] == list(reversed(restored)), result
    # everything was put back: the host is as it was, and the message says so
    assert result['changed'] is False
    if made:
        assert 'Changed before the failure: %s.' % '; '.join(made).format(**paths) in result['msg']
        assert 'The host is as it was before this run.' in result['msg']
    # once the directory is writable again the same call works
    again = ansible.module(CONTAINERD, call)
    assert not again['failed'] and again['changed'], again


def many_files_tar(count: int) -> bytes:
    """A root filesystem of many one-byte files: its layer counts a few KiB
    in the engine's LayersSize, but takes a 512-byte header and a 512-byte
    block per file in an archive, so the space check passes and the save
    fills the filesystem."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w') as tar:
        for index in range(count):
            info = tarfile.TarInfo('files/%05d' % index)
            info.size = 1
            tar.addfile(info, io.BytesIO(b'x'))
    return buf.getvalue()


def test_archive_full_filesystem_removes_the_partial_archive(ansible, workdir, engine, ext4):
    device = subprocess.run(['findmnt', '-n', '-o', 'SOURCE', ext4], capture_output=True, text=True,
                            check=True).stdout.strip()
    subprocess.run(['tune2fs', '-r', '0', device], capture_output=True, check=True)  # root may not dip into a reserve
    repository = PREFIX + '-many'
    engine.client.api.import_image_from_data(many_files_tar(6000), repository=repository, tag='files')
    try:
        needed = int(engine.client.df().get('LayersSize') or 0)
        free = os.statvfs(ext4).f_bavail * os.statvfs(ext4).f_frsize
        filler = os.path.join(ext4, 'filler')
        subprocess.run(['fallocate', '-l', str(free - needed - 1024 * 1024), filler], check=True)
        archive = os.path.join(ext4, 'new-dir', 'images.tar')
        before = fingerprint(engine, workdir, ext4)
        result = ansible.module(ARCHIVE, {'path': archive, 'docker_host': engine.base_url})
        after = fingerprint(engine, workdir, ext4)
        assert_clean_failure(result, 'the filesystem of %s filled up while saving the images' % os.path.dirname(archive))
        assert 'the partial archive was removed' in result['msg']
        hoststate.assert_unchanged(before, after)
        assert result['changes_made'] == ['created directory %s' % os.path.dirname(archive)], result
        assert result['changes_restored'] == ['removed directory %s' % os.path.dirname(archive)], result
        assert result['changed'] is False
        # with room, the same call writes an archive that carries the module's mark
        os.unlink(filler)
        saved = ansible.module(ARCHIVE, {'path': archive, 'docker_host': engine.base_url})
        assert not saved['failed'] and saved['changed'], saved
        with tarfile.open(archive) as tar:
            assert 'hostprep-images-archive.json' in tar.getnames() and 'manifest.json' in tar.getnames()
    finally:
        engine.client.images.remove('%s:files' % repository)


# ---- the benchmark's capacity check against real cgroup limits --------------------

@contextlib.contextmanager
def engine_in_cgroups(dockerd: PrivateDockerd, pids_max: int, memory_limit: int):
    """Move the private dockerd and its containerd into a new pids cgroup
    and a new memory cgroup (child of this process's); put them back after."""
    pids = [dockerd.proc.pid] + [int(p) for p in subprocess.run(['pgrep', '-P', str(dockerd.proc.pid)],
                                                                capture_output=True, text=True, check=False).stdout.split()]
    own_memory = [line.split(':', 2)[2].strip() for line in open('/proc/self/cgroup', encoding='utf-8')
                  if line.split(':')[1] == 'memory'][0]
    groups = {'pids': ('/sys/fs/cgroup/pids', '/sys/fs/cgroup/pids/' + PREFIX, 'pids.max', pids_max),
              'memory': ('/sys/fs/cgroup/memory' + own_memory.rstrip('/'),
                         '/sys/fs/cgroup/memory%s/%s' % (own_memory.rstrip('/'), PREFIX),
                         'memory.limit_in_bytes', memory_limit)}
    made = []
    try:
        for parent, group, limit_file, limit in groups.values():
            require(os.path.isdir(parent), 'cgroup v1 hierarchy %s' % parent)
            os.mkdir(group)
            made.append((parent, group))
            with open(os.path.join(group, limit_file), 'w', encoding='ascii') as handle:
                handle.write(str(limit))
            for pid in pids:
                with open(os.path.join(group, 'cgroup.procs'), 'w', encoding='ascii') as handle:
                    handle.write(str(pid))
        yield groups
    finally:
        for parent, group in made:
            for pid in pids:
                with contextlib.suppress(OSError), open(os.path.join(parent, 'cgroup.procs'), 'w',
                                                        encoding='ascii') as handle:
                    handle.write(str(pid))
            os.rmdir(group)


def test_benchmark_capacity_against_the_engine_cgroups(ansible, workdir, engine):
    """10 containers need 160 tasks and 160 MiB: more than pids.max 120 and a
    150 MiB memory limit of the engine's cgroups take; 2 fit."""
    call = {'docker_host': engine.base_url, 'count': 10, 'write_size': '4K', 'sleep_seconds': 60}
    with engine_in_cgroups(engine, pids_max=120, memory_limit=150 * 1024 ** 2) as groups:
        before = fingerprint(engine, workdir, os.path.join(workdir, 'table'))
        results = ansible.module_tasks(COW, [('too many', call, False), ('too many, check mode', call, True),
                                             ('fits, check mode', dict(call, count=2), True)])
        after = fingerprint(engine, workdir, os.path.join(workdir, 'table'))
    hoststate.assert_unchanged(before, after)
    for name in ('too many', 'too many, check mode'):
        refused = results[name]
        assert_refused(refused, 'the 10 detached containers of run_from_commit would not fit on this host')
        assert "pids.max of the engine's cgroup %s is 120" % groups['pids'][1] in refused['msg']
        assert "memory: the engine's cgroup %s allows 150.0 MiB" % groups['memory'][1] in refused['msg']
        assert 'nothing was started' in refused['msg']
    fits = results['fits, check mode']
    assert not fits['failed'], fits
    assert fits['plan']['capacity']['tasks']['cgroup_pids_max'] == 120
    assert fits['plan']['capacity']['cgroup_memory']['limit'] == 150 * 1024 ** 2


def test_benchmark_runs_within_the_bounds(ansible, engine):
    """A small real run still works after the guards, and reports what it checked."""
    before = engine_lists(engine)
    result = ansible.module(COW, {'docker_host': engine.base_url, 'count': 2, 'write_size': '4K',
                                  'sleep_seconds': 30})
    assert not result['failed'], result.get('msg')
    capacity = result['plan']['capacity']
    assert capacity['mem_available'] > 0 and capacity['tasks']['pid_max'] > 0
    assert result['scenarios']['run_from_commit']['count'] == 2
    assert engine_lists(engine) == before


def test_benchmark_failure_after_removing_leftovers_reports_it(ansible, engine):
    """A leftover of a dead run is removed (a real change), then the run
    fails (the image has no dd): changed=true, and the message and
    changes_made say what was removed; the run's own objects are gone."""
    label = 'io.hostprep.cow-benchmark'
    dead_run = PREFIX + '-dead-run'
    leftover = engine.client.containers.create('hostprep-busybox:latest', ['true'], name=PREFIX + '-leftover',
                                               labels={label: dead_run, label + '.owner': 'another-boot/1/1'})
    before = engine_lists(engine)
    result = ansible.module(COW, {'docker_host': engine.base_url, 'image': 'hostprep-busybox:latest', 'count': 1,
                                  'scenarios': ['oneshot']})
    assert_clean_failure(result, 'executable file not found')
    assert result['changed'] is True, result
    made = 'removed 1 container(s) and 0 image(s) left by earlier runs (%s)' % dead_run
    assert result['changes_made'] == [made], result
    assert 'Changed before the failure: %s.' % made in result['msg']
    assert result['leftovers_removed']['containers'] == 1 and result['cleanup']['errors'] == []
    after = engine_lists(engine)
    assert after == dict(before, containers=[c for c in before['containers'] if c != leftover.id])
