# SPDX-License-Identifier: GPL-3.0-or-later
"""The docker_storage role against a real engine (Debian 12's dockerd 20.10).

The engines, their fixtures and the converge helper are in storage_role.py.
"""

from __future__ import annotations

import contextlib
import json
import os

from ansible_collections.hostprep.container_host.plugins.module_utils._common import read_bytes
from tests.lab.dockerd import import_busybox, raw_loop_device, unmount_all
from storage_role import (PLAYBOOK, RESET_PLAYBOOK, blkid_type, converge, engines, findmnt, fs,  # noqa: F401 pylint: disable=unused-import
                          inventory, workdir)


def test_overlay2_on_ext4_keeps_images(ansible, inventory, engines, fs):
    engine = engines(os.path.join(fs['ext4'], 'ovl-ext4', 'docker'))
    with contextlib.closing(engine.client()) as client:
        import_busybox(client)
    images = engine.image_ids()
    converge(ansible, inventory, engine, 'overlay2')
    info = engine.info()
    assert info['Driver'] == 'overlay2'
    assert info['DockerRootDir'] == engine.data_root
    assert dict(info['DriverStatus'])['Backing Filesystem'] == 'extfs'
    assert engine.image_ids() == images
    config = json.loads(read_bytes(engine.daemon_json))
    assert config['storage-driver'] == 'overlay2' and config['log-level'] == 'info'


def test_overlay2_on_xfs(ansible, inventory, engines, fs):
    engine = engines(os.path.join(fs['xfs'], 'ovl-xfs', 'docker'))
    converge(ansible, inventory, engine, 'overlay2')
    info = engine.info()
    assert info['Driver'] == 'overlay2'
    status = dict(info['DriverStatus'])
    assert status['Backing Filesystem'] == 'xfs' and status['Supports d_type'] == 'true'


def test_vfs(ansible, inventory, engines, fs):
    engine = engines(os.path.join(fs['xfs'], 'vfs', 'docker'))
    converge(ansible, inventory, engine, 'vfs')
    assert engine.info()['Driver'] == 'vfs'
    with contextlib.closing(engine.client()) as client:
        image = import_busybox(client)
        out = client.containers.run(image, ['sh', '-c', 'echo vfs-ok'], network_mode='none', remove=True)
    assert out.strip() == b'vfs-ok'


def test_switch_overlay2_to_btrfs_preserves_images(ansible, inventory, engines, fs, workdir):
    engine = engines(os.path.join(fs['ext4'], 'to-btrfs', 'docker'))
    with contextlib.closing(engine.client()) as client:
        import_busybox(client)
        client.images.get('hostprep-busybox:latest').tag('hostprep-busybox', 'second')
    images = engine.image_ids()
    assert engine.info()['Driver'] == 'overlay2'
    mount_point = os.path.join(engine.dir, 'btrfs')
    with raw_loop_device(workdir) as device:
        try:
            variables = engine.vars('btrfs', docker_storage_btrfs_device=device,
                                    docker_storage_btrfs_mount_point=mount_point,
                                    docker_storage_preserve_images=True,
                                    docker_storage_image_archive_dir=engine.archive_dir)
            first = ansible.playbook(PLAYBOOK, inventory, variables)
            assert first.rc == 0 and not first.failed, first.stdout[-6000:]
            assert first.result('Save the images of the old storage')['changed']
            loaded = first.result('Load the saved images into the new storage')
            assert loaded['changed'], loaded
            second = ansible.playbook(PLAYBOOK, inventory, variables)
            assert second.rc == 0 and second.changed == 0, second.stdout[-4000:]

            info = engine.info()
            assert info['Driver'] == 'btrfs' and info['DockerRootDir'] == engine.data_root
            assert engine.image_ids() == images
            with contextlib.closing(engine.client()) as client:
                tags = client.images.get('hostprep-busybox:latest').tags
                out = client.containers.run('hostprep-busybox:second', ['sh', '-c', 'echo btrfs-ok'],
                                            network_mode='none', remove=True)
            assert sorted(tags) == ['hostprep-busybox:latest', 'hostprep-busybox:second']
            assert out.strip() == b'btrfs-ok'
            assert blkid_type(device) == 'btrfs'
            assert findmnt(engine.data_root)['fstype'] == 'btrfs'
            fstab = read_bytes(engine.fstab).decode()
            assert ' %s btrfs ' % mount_point in fstab and '%s %s none bind' % (mount_point, engine.data_root) in fstab
            kept = [name for name in os.listdir(os.path.dirname(engine.data_root))
                    if name.startswith('docker.hostprep-overlay2-')]
            assert len(kept) == 1, 'the old overlay2 data root is kept aside'
            assert os.path.exists(os.path.join(engine.archive_dir, 'docker-storage-images.tar'))
        finally:
            engine.stop()
            unmount_all(engine.data_root)
            unmount_all(mount_point)


def test_refusals_change_nothing(ansible, inventory, engines, fs, workdir):
    """Running container, switch without preserve_images, devicemapper on a
    kernel without device-mapper, reset without force: each refused before
    anything changes (daemon.json bytes, engine pid, images, device, fstab)."""
    engine = engines(os.path.join(fs['ext4'], 'refuse', 'docker'))
    with contextlib.closing(engine.client()) as client:
        import_busybox(client)
        container = client.containers.run('hostprep-busybox:latest', ['sh', '-c', 'while true; do sleep 1; done'],
                                          network_mode='none', detach=True)
    images = engine.image_ids()

    def state():
        return read_bytes(engine.daemon_json), engine.pid(), engine.image_ids(), read_bytes(engine.fstab)

    before = state()

    def refused(backend: str, expect: list[str], **extra):
        run = ansible.playbook(PLAYBOOK, inventory, engine.vars(backend, **extra))
        assert run.rc != 0 and run.failed, run.stdout[-3000:]
        msg = run.failed[-1]['result'].get('msg', '')
        for text in expect:
            assert text in msg, msg
        assert 'Nothing was changed' in msg
        assert state() == before
        return msg

    refused('vfs', ['1 container(s) are running', 'docker_storage_stop_containers: true'],
            docker_storage_preserve_images=True, docker_storage_image_archive_dir=engine.archive_dir)
    with contextlib.closing(engine.client()) as client:
        assert client.containers.get(container.id).status == 'running'
        client.containers.get(container.id).stop(timeout=1)

    with raw_loop_device(workdir) as device:
        refused('btrfs', ['hides its 1 image(s)', 'docker_storage_preserve_images: true'],
                docker_storage_btrfs_device=device, docker_storage_btrfs_mount_point=os.path.join(engine.dir, 'b'))
        assert blkid_type(device) == ''
    assert not os.path.exists(os.path.join(engine.dir, 'b'))

    refused('devicemapper_loop', ['needs device-mapper', 'this kernel has none', 'use overlay2 or btrfs'])
    refused('overlay2', ['docker_storage_reset_force: true'], docker_storage_reset=True)
    assert engine.image_ids() == images

    run = ansible.playbook(RESET_PLAYBOOK, inventory, engine.vars('devicemapper_loop'))
    assert run.rc != 0 and run.failed
    assert 'reset_loopback_confirm=yes-destroy-all-images' in run.failed[-1]['result']['msg']
    assert state() == before


def test_failed_start_is_rolled_back(ansible, inventory, engines, fs):
    """overlay2.size on ext4 (no project quota), written with validation off:
    dockerd refuses to start; the old daemon.json comes back, the engine runs
    on it again, and the role fails with dockerd's own error."""
    engine = engines(os.path.join(fs['ext4'], 'rollback', 'docker'))
    with contextlib.closing(engine.client()) as client:
        import_busybox(client)
    images = engine.image_ids()
    before = read_bytes(engine.daemon_json)
    old_pid = engine.pid()
    run = ansible.playbook(PLAYBOOK, inventory, engine.vars('overlay2', docker_storage_options=['overlay2.size=64M'],
                                                            docker_storage_validate=False))
    assert run.rc != 0 and run.failed, run.stdout[-4000:]
    msg = run.failed[-1]['result']['msg']
    assert 'Start the engine (command) failed (backend overlay2)' in msg, msg
    assert 'overlay2.size' in msg or 'quota' in msg.lower(), msg
    assert 'Restored: put back %s as it was' % engine.daemon_json in msg
    assert 'The engine runs again on its old configuration (driver overlay2' in msg
    assert read_bytes(engine.daemon_json) == before
    assert engine.pid() and engine.pid() != old_pid
    assert engine.info()['Driver'] == 'overlay2'
    assert engine.image_ids() == images
