# SPDX-License-Identifier: GPL-3.0-or-later
"""docker_storage_reset resets only a data root it can prove is Docker's (issue 10).

Against a real data root: a private dockerd 20.10 (overlay2 on a
loop-mounted ext4) gets an image, a volume and two containers and is
stopped; the module learns the configured data root from a systemd drop-in
holding that dockerd's command line (flags_sources), or from a daemon.json.

- The bad-input table: every case runs twice in ONE playbook, in check mode
  and for real, both must be refused with the same message, changed false,
  no traceback, and the files (byte for byte) and mounts of everything the
  cases touch are the same before and after.
- Shapes an operator expects to work: a symbolic link to the data root, a
  data root that is the root of its own filesystem (lost+found kept); check
  mode plans exactly what the real run removes.
- A real fault: chattr +i on one file deep inside overlay2/, so deletion
  fails halfway: changed true, the message lists what was removed and what is
  left; after chattr -i the reset finishes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest

from tests.lab import hoststate
from conftest import workdir_fixture
from tests.lab.dockerd import PrivateDockerd, loop_filesystem
from test_docker_storage_reset import args as base_args, populate

MODULE = 'hostprep.container_host.docker_storage_reset'
# Directories of a Docker data root, as Engine 20.10 and 26 made them (see
# tests/unit/fixtures/docker/data_root_layouts.json).
DOCKER_DIRS = ('buildkit', 'containerd', 'containers', 'image', 'network', 'overlay2', 'plugins', 'runtimes',
               'swarm', 'tmp', 'volumes')


def make_docker_layout(root: str, extra_files: bool = True) -> str:
    for name in DOCKER_DIRS:
        os.makedirs(os.path.join(root, name), exist_ok=True)
    if extra_files:
        with open(os.path.join(root, 'engine-id'), 'w', encoding='utf-8') as handle:
            handle.write(uuid.uuid4().hex)
        os.makedirs(os.path.join(root, 'overlay2', 'abc', 'diff'), exist_ok=True)
        with open(os.path.join(root, 'overlay2', 'abc', 'diff', 'layer'), 'wb') as handle:
            handle.write(b'L' * 20000)
    return root


def write(path: str, text: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(text)
    return path


def mount(*args: str) -> None:
    subprocess.run(['mount'] + list(args), check=True, capture_output=True)


workdir = workdir_fixture('hp-grst', ('dockerd', 'containerd', 'runc', 'losetup', 'mkfs.ext4', 'busybox', 'chattr', 'lsattr',
                                      'findmnt'),
                          lambda path: subprocess.run(['chattr', '-R', '-i', path], capture_output=True, check=False))


@pytest.fixture(scope='module')
def fs(workdir):
    """A loop-mounted ext4 for the data root (4 KiB blocks: 640 MB)."""
    with loop_filesystem(workdir, 'ext4', size_mb=640) as mountpoint:
        yield mountpoint


@pytest.fixture(scope='module')
def engine(workdir, fs):
    """A stopped engine whose data root has content."""
    dockerd = PrivateDockerd(workdir, data_root=os.path.join(fs, 'docker'), storage_driver='overlay2')
    try:
        dockerd.start()
        populate(dockerd, 'hp-grst')
    finally:
        dockerd.stop()
    yield dockerd
    dockerd.stop()


def configured(workdir: str, dockerd: PrivateDockerd, config_root: str, **extra) -> dict:
    """Arguments for a case whose engine is configured, through a daemon.json
    of its own, with config_root (also the data_root given, unless extra
    names another)."""
    config = write(os.path.join(workdir, 'cfg-%s' % uuid.uuid4().hex[:6], 'daemon.json'),
                   json.dumps({'data-root': config_root}))
    return base_args(dockerd, **dict({'data_root': config_root, 'daemon_config': config, 'flags_sources': []}, **extra))


# ---- the bad-input table ---------------------------------------------------------
# name -> (builder of the case's arguments, the fragments the message must hold)

def case_home_like(w, d):
    """The reported case: image/ beside Documents/ and .ssh/, force=true."""
    root = os.path.join(w, 'home-like')
    os.makedirs(os.path.join(root, 'image'))
    write(os.path.join(root, 'Documents', 'thesis.txt'), 'years of work\n')
    write(os.path.join(root, '.ssh', 'id_ed25519'), 'secret\n')
    return configured(w, d, root)


def case_not_configured(w, d):
    """The private engine's real data root, but the engine is configured with another."""
    other = make_docker_layout(os.path.join(w, 'other-root'))
    return configured(w, d, other, data_root=d.data_root)


def case_default_config(w, d):
    """No daemon.json, no flags: the configured data root is /var/lib/docker."""
    return base_args(d, flags_sources=[])


def case_symlink_elsewhere(w, d):
    """A link to the real data root while the engine is configured with another directory."""
    link = os.path.join(w, 'link-to-root')
    os.symlink(d.data_root, link)
    other = make_docker_layout(os.path.join(w, 'configured-root'))
    return configured(w, d, other, data_root=link)


def case_root(w, d):
    """daemon.json data-root "/" (a templated value that came out empty)."""
    return configured(w, d, '/')


def case_symlink_to_etc(w, d):
    link = os.path.join(w, 'etc-link')
    os.symlink('/etc', link)
    return configured(w, d, link)


def case_file(w, d):
    path = write(os.path.join(w, 'a-file'), 'not a directory\n')
    return configured(w, d, path)


def case_missing(w, d):
    return configured(w, d, os.path.join(w, 'nowhere', 'docker'))


def case_relative(w, d):
    """A relative path (a variable that lost its prefix) is not looked up from wherever the module runs."""
    return base_args(d, data_root='lib/docker')


def case_linked_entry(w, d):
    root = make_docker_layout(os.path.join(w, 'linked-entry'))
    shutil.rmtree(os.path.join(root, 'overlay2'))
    target = make_docker_layout(os.path.join(w, 'fast-disk'))
    os.symlink(os.path.join(target, 'overlay2'), os.path.join(root, 'overlay2'))
    return configured(w, d, root)


def case_lost_found_not_root(w, d):
    root = make_docker_layout(os.path.join(w, 'lf-dir'))
    os.makedirs(os.path.join(root, 'lost+found'))
    return configured(w, d, root)


def case_wrong_kind(w, d):
    root = make_docker_layout(os.path.join(w, 'wrong-kind'))
    shutil.rmtree(os.path.join(root, 'image'))
    write(os.path.join(root, 'image'), 'a file named like the image store\n')
    return configured(w, d, root)


def case_mounted_below(w, d):
    root = make_docker_layout(os.path.join(w, 'mounted-below'))
    mount('-t', 'tmpfs', '-o', 'size=1m', 'hp-grst-tmpfs', os.path.join(root, 'tmp'))
    return configured(w, d, root)


def case_volumes_mounted_wiped(w, d):
    """volumes/ on a filesystem of its own is kept with keep_volumes=true, but not to be emptied."""
    root = make_docker_layout(os.path.join(w, 'volumes-mounted'))
    mount('-t', 'tmpfs', '-o', 'size=1m', 'hp-grst-tmpfs', os.path.join(root, 'volumes'))
    write(os.path.join(root, 'volumes', 'v1', '_data', 'f'), 'volume data\n')
    return configured(w, d, root, keep_volumes=False)


def case_mounted_twice(w, d):
    """One filesystem in Docker's layout, mounted twice: the reset would empty the other mount point."""
    # the image beside the cases: the kernel writes to it on its own (ext4's journal)
    image = os.path.join(os.path.dirname(w), 'twice.img')
    with open(image, 'wb') as handle:
        handle.truncate(64 * 1024 * 1024)
    subprocess.run(['mkfs.ext4', '-q', '-F', image], check=True, capture_output=True)
    device = subprocess.run(['losetup', '--find', '--show', image], check=True, capture_output=True,
                            text=True).stdout.strip()
    first, second = os.path.join(w, 'twice-a'), os.path.join(w, 'twice-b')
    os.makedirs(first)
    os.makedirs(second)
    mount(device, first)
    mount(device, second)
    subprocess.run(['losetup', '-d', device], check=False, capture_output=True)  # freed with the last umount
    make_docker_layout(first)
    return configured(w, d, first)


def case_broken_daemon_json(w, d):
    config = write(os.path.join(w, 'broken', 'daemon.json'), '{"data-root": ')
    return base_args(d, daemon_config=config, flags_sources=[])


def case_set_twice(w, d):
    config = write(os.path.join(w, 'twice-cfg', 'daemon.json'), json.dumps({'data-root': '/srv/other'}))
    return base_args(d, daemon_config=config)


def case_config_file_flag(w, d):
    """dockerd's --config-file names a daemon.json whose data-root is another directory."""
    other = make_docker_layout(os.path.join(w, 'by-config-file'))
    config = write(os.path.join(w, 'cf', 'real.json'), json.dumps({'data-root': other}))
    unit = write(os.path.join(w, 'cf', 'docker.service'),
                 '[Service]\nExecStart=/usr/sbin/dockerd -H fd:// --config-file %s\n' % config)
    return base_args(d, flags_sources=[unit])


def case_no_force(w, d):
    return base_args(d, force=False)


def case_bad_size(w, d):
    return base_args(d, data_size='lots')


CASES = {
    'home-like directory': (case_home_like, ['holds 2 entries that Docker does not make: .ssh (directory), '
                                             'Documents (directory)', 'Move them out of']),
    'not the configured root': (case_not_configured, ["is not the engine's data root", 'data-root in ']),
    'default configuration': (case_default_config, ['configured to use /var/lib/docker (the default']),
    'symlink, not configured': (case_symlink_elsewhere, ["is not the engine's data root"]),
    'data-root /': (case_root, ['data_root / is a system directory']),
    'symlink to /etc': (case_symlink_to_etc, ['(/etc) is a system directory']),
    'a file': (case_file, ['is not a directory']),
    'missing': (case_missing, ['does not exist']),
    'relative path': (case_relative, ['data_root lib/docker is not an absolute path']),
    'symlinked entry': (case_linked_entry, ['symbolic links (overlay2 -> ', 'only the links']),
    'lost+found, not a filesystem root': (case_lost_found_not_root, ['Docker does not make: lost+found (directory)']),
    'entry of the wrong kind': (case_wrong_kind, ['image (file; Docker makes a directory)']),
    'filesystem mounted below': (case_mounted_below, ['has filesystems mounted below it', '/tmp)']),
    'volumes mounted, keep_volumes=false': (case_volumes_mounted_wiped, ['has filesystems mounted below it',
                                                                         'volumes-mounted/volumes)']),
    'filesystem mounted twice': (case_mounted_twice, ['shows the same files as ', 'twice-b', 'unmount']),
    'broken daemon.json': (case_broken_daemon_json, ['cannot tell which data root the engine is configured with']),
    'data root set twice': (case_set_twice, ['data root is set twice: /srv/other in ', 'flag --data-root']),
    '--config-file flag': (case_config_file_flag, ["is not the engine's data root", 'real.json']),
    'no force': (case_no_force, ['would remove 2 containers, 2 images, 0 volumes', 'set force=true']),
    'bad size': (case_bad_size, ["data_size 'lots' is not a size"]),
}


@pytest.fixture(scope='module')
def table(ansible, engine, workdir):
    """Every case in check mode and for real in ONE playbook; the state of
    everything the cases touch before and after."""
    cases_dir = os.path.join(workdir, 'cases')
    os.makedirs(cases_dir)
    try:
        built = {name: build(cases_dir, engine) for name, (build, dummy) in CASES.items()}
        paths = (cases_dir, engine.data_root)
        before = (hoststate.files(*paths), hoststate.mounts(workdir))
        tasks = []
        for name, args in built.items():
            tasks += [('%s (check)' % name, args, True), ('%s (run)' % name, args, False)]
        results = ansible.module_tasks(MODULE, tasks)
        after = (hoststate.files(*paths), hoststate.mounts(workdir))
        yield results, before, after
    finally:
        for target in [m[0] for m in hoststate.mounts(cases_dir)][::-1]:
            subprocess.run(['umount', target], capture_output=True, check=False)


@pytest.mark.parametrize('name', list(CASES))
def test_bad_input_refused(table, name):
    results, before, after = table
    fragments = CASES[name][1]
    messages = []
    for mode in ('check', 'run'):
        result = results['%s (%s)' % (name, mode)]
        assert result['failed'] and result.get('changed') is False, (mode, result)
        assert 'Traceback' not in json.dumps(result), result
        for fragment in fragments:
            assert fragment in result['msg'], (mode, fragment, result['msg'])
        messages.append(result['msg'])
    assert messages[0] == messages[1], 'check mode and the real run disagree'


def test_bad_input_changed_nothing(table):
    dummy, before, after = table
    hoststate.assert_unchanged(before[0], after[0], 'files')
    hoststate.assert_unchanged(before[1], after[1], 'mounts')


# ---- shapes that must work ----------------------------------------------------------

def test_symlinked_and_filesystem_root_data_roots(ansible, engine, workdir):
    """A link to the data root (dockerd resolves it; the link stays), a data
    root that is its filesystem's root (lost+found stays) and one whose
    volumes/ is a filesystem of its own (kept, untouched); check mode plans
    what the real run removes."""
    target = make_docker_layout(os.path.join(workdir, 'link-target'))
    link = os.path.join(workdir, 'docker-link')
    os.symlink(target, link)
    volumes_own = make_docker_layout(os.path.join(workdir, 'volumes-own'))
    with loop_filesystem(workdir, 'ext4', size_mb=64) as own, loop_filesystem(workdir, 'ext4', size_mb=64) as vols:
        make_docker_layout(own)
        assert os.path.isdir(os.path.join(own, 'lost+found'))
        write(os.path.join(vols, 'v1', '_data', 'f'), 'volume data\n')
        mount('--bind', vols, os.path.join(volumes_own, 'volumes'))
        try:
            volumes_before = hoststate.files(vols)
            cases = {'link': configured(workdir, engine, link, loopback=False),
                     'own fs': configured(workdir, engine, own, loopback=False, keep_volumes=False),
                     'volumes mounted': configured(workdir, engine, volumes_own, loopback=False)}
            tasks = []
            for name, args in cases.items():
                tasks += [('%s (check)' % name, args, True), ('%s (run)' % name, args, False),
                          ('%s (again)' % name, args, False)]
            results = ansible.module_tasks(MODULE, tasks)
            own_left = sorted(os.listdir(own))
            volumes_left = sorted(os.listdir(volumes_own))
            hoststate.assert_unchanged(volumes_before, hoststate.files(vols), 'the kept volumes filesystem')
        finally:
            subprocess.run(['umount', os.path.join(volumes_own, 'volumes')], check=True)
    for name in cases:
        checked, run, again = (results['%s (%s)' % (name, mode)] for mode in ('check', 'run', 'again'))
        assert not checked['failed'] and checked['changed'], checked
        assert not run['failed'] and run['changed'], run
        assert checked['removed'] == run['removed'], 'check mode and the real run disagree'
        assert not again['failed'] and not again['changed'], again
    assert os.path.islink(link) and sorted(os.listdir(target)) == ['volumes']
    assert results['link (run)']['configured_data_root']['path'] == link
    assert own_left == ['lost+found']
    assert volumes_left == ['volumes']
    assert results['own fs (run)']['kept'] == [os.path.join(own, 'lost+found')]
    assert os.path.join(own, 'lost+found') not in results['own fs (check)']['removed']['paths']


# ---- a real fault: deletion fails halfway ---------------------------------------------

def deep_file(root: str) -> str:
    """A regular file deep inside overlay2/ (a layer's file)."""
    for dirpath, dummy_dirs, names in sorted(os.walk(os.path.join(root, 'overlay2'))):
        for name in sorted(names):
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path) and '/diff/' in path:
                return path
    raise AssertionError('no layer file under %s/overlay2' % root)


def test_fails_halfway_reports_what_went(ansible, engine, table):
    root = engine.data_root
    stuck = deep_file(root)
    subprocess.run(['chattr', '+i', stuck], check=True)
    try:
        planned = ansible.module(MODULE, base_args(engine), check=True)
        assert not planned['failed'] and planned['changed'], planned
        failed = ansible.module(MODULE, base_args(engine))
        left = sorted(os.listdir(root))
    finally:
        subprocess.run(['chattr', '-i', stuck], check=True)
    assert failed['failed'] and failed['changed'] is True, failed
    assert 'Traceback' not in json.dumps(failed), failed
    overlay2 = os.path.join(root, 'overlay2')
    msg = failed['msg']
    assert 'removing %s failed: %s: Operation not permitted' % (overlay2, stuck) in msg, msg
    assert 'Changed before the failure: removed %s' % os.path.join(root, 'buildkit') in msg, msg
    for name in ('containers', 'image', 'network'):
        assert 'removed %s' % os.path.join(root, name) in msg, msg
    assert 'files and directories of %s' % overlay2 in msg and 'not touched: %s' % os.path.join(root, 'plugins') in msg
    # the plan, the report and the disk agree
    paths = planned['removed']['paths']
    index = paths.index(overlay2)
    assert failed['partly_removed'] == overlay2
    assert failed['removed_paths'] == paths[:index] and failed['not_removed'] == paths[index + 1:]
    assert sorted(failed['changes_made'])[0].startswith('removed')
    assert left == sorted(['overlay2', 'volumes'] + [os.path.basename(p) for p in paths[index + 1:]])
    # the cause fixed, the reset finishes
    again = ansible.module(MODULE, base_args(engine))
    assert not again['failed'] and again['changed'], again
    assert sorted(os.listdir(root)) == ['devicemapper', 'volumes']
