# SPDX-License-Identifier: GPL-3.0-or-later
"""docker_storage_reset against a real data root of Debian 12's dockerd 20.10.

A private dockerd (tests/lab/dockerd.py) with overlay2 on a
loop-mounted ext4 gets two images, two containers and a named volume holding
a file, and is stopped; then real ansible-playbook runs check, reset, reset
again, and dockerd is started again on the same data root: no images or
containers, the volume and its file still there. The sparse loopback files
are checked on disk (this kernel has no device-mapper to use them). Every
refusal must leave the tree exactly as it was.
"""

from __future__ import annotations

import os
import shlex
import time

import pytest

from conftest import workdir_fixture
from tests.lab.dockerd import PrivateDockerd, import_busybox, loop_filesystem

MODULE = 'hostprep.container_host.docker_storage_reset'
G = 1024 ** 3


def tree(root: str) -> list[tuple]:
    """Every entry under root with its type, size and mtime: a change shows."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            found.append((os.path.relpath(path, root), st.st_mode, st.st_size, st.st_mtime_ns, st.st_blocks))
    return sorted(found)


def settled_tree(root: str, quiet: float = 2.0, limit: float = 60.0) -> list[tuple]:
    """tree(root) once a running engine has stopped writing to it.

    containerd rewrites its metadata database by itself shortly after
    containers and images change (its garbage collector runs in the
    background); a snapshot taken inside that window would blame the module
    for the engine's own write. Wait until the tree holds still for `quiet`
    seconds.
    """
    deadline = time.monotonic() + limit
    last = tree(root)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = tree(root)
        if now == last:
            return now
        last = now
    raise AssertionError('%s kept changing for %.0f s with nothing using the engine' % (root, limit))


workdir = workdir_fixture('hp-rst', ('dockerd', 'containerd', 'runc', 'losetup', 'mkfs.ext4', 'busybox'))


@pytest.fixture(scope='module')
def engine(workdir):
    """A stopped engine whose data root has content; 640 MB so mkfs.ext4
    picks 4 KiB blocks (a 100 GiB sparse file needs them)."""
    with loop_filesystem(workdir, 'ext4', size_mb=640) as fs:
        dockerd = PrivateDockerd(workdir, data_root=os.path.join(fs, 'docker'), storage_driver='overlay2')
        try:
            dockerd.start()
            populate(dockerd, 'hp-reset')
            yield dockerd
        finally:
            dockerd.stop()


def populate(dockerd: PrivateDockerd, prefix: str) -> None:
    """Two images, two containers and the named volume hpdata holding a file."""
    client = dockerd.client
    image = import_busybox(client, '%s-busybox:latest' % prefix)
    client.volumes.create('hpdata')
    client.containers.run(image, ['sh', '-c', 'echo kept > /data/f'], name='%s-writer' % prefix,
                          volumes={'hpdata': {'bind': '/data'}})
    client.containers.create(image, ['true'], name='%s-idle' % prefix).commit('%s-committed' % prefix, 'v1')
    assert len(client.images.list()) == 2 and len(client.containers.list(all=True)) == 2


def unit_file(dockerd: PrivateDockerd) -> str:
    """A systemd drop-in starting this dockerd, as flags_sources reads it:
    the module learns the configured data root from its --data-root."""
    path = os.path.join(dockerd.workdir, 'dockerd-%s.conf' % os.path.basename(dockerd.exec_root))
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('[Service]\nExecStart=\nExecStart=%s\n' % ' '.join(shlex.quote(arg) for arg in dockerd.flags()))
    return path


def args(dockerd: PrivateDockerd, **extra) -> dict:
    base = {'data_root': dockerd.data_root, 'docker_host': dockerd.base_url, 'pidfile': dockerd.pidfile,
            'force': True, 'flags_sources': [unit_file(dockerd)],
            'daemon_config': os.path.join(dockerd.workdir, 'no-daemon.json')}
    base.update(extra)
    return base


def assert_refused(result: dict, *phrases: str) -> None:
    assert result['failed'] and not result.get('changed'), result
    for phrase in phrases:
        assert phrase in result['msg'], result['msg']


def test_refused_while_dockerd_runs(ansible, engine, workdir):
    root = engine.data_root
    before = settled_tree(root)
    results = ansible.module_tasks(MODULE, {
        'running': args(engine),
        # found through /proc alone: another socket, no pidfile
        'running, proc only': args(engine, docker_host='unix:///nonexistent/none.sock', pidfile='/nonexistent/pid'),
    })
    assert_refused(results['running'], 'dockerd must be stopped', 'dockerd (pid %d)' % engine.proc.pid,
                   'the pidfile %s names the running dockerd pid %d' % (engine.pidfile, engine.proc.pid),
                   'an engine answers on %s' % engine.base_url, 'nothing was changed')
    assert 'dockerd (pid %d) with root %s' % (engine.proc.pid, engine.data_root) in results['running']['users']
    # what would go is still reported (a play can show it before stopping the engine)
    assert results['running']['removed']['containers'] == 2 and results['running']['removed']['images'] == 2
    # dockerd's own containerd keeps its root under the data root: found too
    assert any(user.startswith('containerd (pid') for user in results['running']['users'])
    assert_refused(results['running, proc only'], 'dockerd (pid %d)' % engine.proc.pid)
    assert 'answers' not in results['running, proc only']['msg']
    engine.stop()
    assert tree(root) == before, 'a refused run changed %s' % root


def test_refused_bad_input(ansible, engine, workdir):
    root = engine.data_root
    other = os.path.join(workdir, 'not-docker')
    os.makedirs(os.path.join(other, 'photos'))
    with open(os.path.join(other, 'notes.txt'), 'w', encoding='utf-8') as handle:
        handle.write('keep me\n')
    before, before_other = tree(root), tree(other)
    results = ansible.module_tasks(MODULE, {
        'no force': args(engine, force=False),
        'root': args(engine, data_root='/'),
        'var': args(engine, data_root='/var'),
        'not a data root': args(engine, data_root=other),
        'a file': args(engine, data_root=os.path.join(other, 'notes.txt')),
        'bad size': args(engine, data_size='lots'),
    })
    assert_refused(results['no force'], 'would remove 2 containers, 2 images, 0 volumes', 'set force=true')
    assert results['no force']['removed']['bytes'] > 0
    assert_refused(results['root'], 'data_root / is a system directory')
    assert_refused(results['var'], 'data_root /var is a system directory')
    assert_refused(results['not a data root'], 'is not the engine\'s data root', 'configured to use %s' % root)
    assert_refused(results['a file'], 'is not a directory')
    assert_refused(results['bad size'], "data_size 'lots' is not a size")
    assert tree(root) == before and tree(other) == before_other, 'a refused run changed something'


def test_reset_four_steps(ansible, engine):
    root = engine.data_root
    before = tree(root)
    checked = ansible.module(MODULE, args(engine), check=True)
    assert not checked['failed'] and checked['changed'], checked
    assert checked['removed']['containers'] == 2 and checked['removed']['images'] == 2
    assert checked['removed']['volumes'] == 0 and checked['removed']['bytes'] > 100 * 1024
    assert os.path.join(root, 'overlay2') in checked['removed']['paths']
    assert os.path.join(root, 'volumes') not in checked['removed']['paths']
    assert tree(root) == before, 'check mode changed the data root'

    applied = ansible.module(MODULE, args(engine))
    assert not applied['failed'] and applied['changed'], applied
    assert applied['removed'] == checked['removed']
    assert applied['reclaimed_bytes'] == applied['removed']['bytes']
    assert sorted(os.listdir(root)) == ['devicemapper', 'volumes']
    files = {item['path']: item for item in applied['loopback_files']}
    for name, size in (('data', 100 * G), ('metadata', 2 * G)):
        path = os.path.join(root, 'devicemapper', 'devicemapper', name)
        st = os.stat(path)
        assert st.st_size == size and st.st_blocks == 0 and oct(st.st_mode & 0o777) == '0o600'
        assert files[path]['size'] == size and files[path]['allocated'] == 0

    again = ansible.module(MODULE, args(engine))
    assert not again['failed'] and not again['changed'], again
    assert again['removed']['paths'] == [] and again['reclaimed_bytes'] == 0

    # verify: the engine starts on the reset data root with nothing but the volume
    engine.start()
    try:
        client = engine.client
        assert client.images.list() == [] and client.containers.list(all=True) == []
        assert [volume.name for volume in client.volumes.list()] == ['hpdata']
        image = import_busybox(client, 'hp-reset-busybox:latest')
        out = client.containers.run(image, ['cat', '/data/f'], volumes={'hpdata': {'bind': '/data'}}, remove=True)
        assert out == b'kept\n'
        assert client.info()['Driver'] == 'overlay2'
    finally:
        engine.stop()
    # the engine's own files are back, the loopback files untouched
    for name in ('data', 'metadata'):
        assert os.stat(os.path.join(root, 'devicemapper', 'devicemapper', name)).st_blocks == 0


def test_reset_volumes_too(ansible, engine, workdir):
    root = engine.data_root
    results = ansible.module_tasks(MODULE, {'wipe': args(engine, keep_volumes=False, loopback=False),
                                            'wipe again': args(engine, keep_volumes=False, loopback=False)})
    assert not results['wipe']['failed'] and results['wipe']['changed'], results['wipe']
    assert results['wipe']['removed']['volumes'] == 1 and results['wipe']['loopback_files'] == []
    assert os.listdir(root) == []
    assert not results['wipe again']['failed'] and not results['wipe again']['changed'], results['wipe again']
