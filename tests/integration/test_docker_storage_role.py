# SPDX-License-Identifier: GPL-3.0-or-later
"""The docker_storage role against a real engine (Debian 12's dockerd 20.10).

Every case runs playbooks/docker_storage.yml through ansible-playbook on a
private dockerd that the ROLE stops and starts itself, through the command
service manager: tests/integration/files/private_dockerd.py is its start and
stop command (as an init script would be). Data roots live in directories on
loop-backed ext4, XFS and btrfs filesystems; the image archive goes to the
test's work directory on the root filesystem, which is another filesystem.

What the engine reports (Docker SDK info(), image IDs), the bytes of
daemon.json and the kernel's mount table are the evidence; refusals must leave
all of them as they were.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import docker
import pytest

from conftest import ROOT, require
from dockerd import import_busybox, loop_filesystem, raw_loop_device, read_bytes, unmount_all

PLAYBOOK = os.path.join(ROOT, 'playbooks', 'docker_storage.yml')
RESET_PLAYBOOK = os.path.join(ROOT, 'playbooks', 'reset_loopback.yml')
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'files', 'private_dockerd.py')


@pytest.fixture(scope='module')
def workdir():
    for tool in ('dockerd', 'containerd', 'runc', 'losetup', 'findmnt', 'mkfs.xfs', 'mkfs.btrfs', 'mkfs.ext4',
                 'busybox', 'docker', 'blkid'):
        require(shutil.which(tool) is not None, tool)
    path = tempfile.mkdtemp(prefix='hp-dsr-')
    yield path
    unmount_all(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope='module')
def fs(workdir):
    """ext4 and XFS (ftype=1) on loop devices, shared by the cases (each
    uses its own directory on them), torn down in all cases."""
    with loop_filesystem(workdir, 'ext4', size_mb=256) as ext4, loop_filesystem(workdir, 'xfs') as xfs:
        yield {'ext4': ext4, 'xfs': xfs}


class Engine:
    """One private engine, managed by the role through the start/stop script."""

    def __init__(self, workdir: str, data_root: str, config: dict | None = None) -> None:
        self.name = uuid.uuid4().hex[:8]
        self.dir = os.path.join(workdir, 'case-' + self.name)
        self.state = os.path.join(self.dir, 'state')
        os.makedirs(self.state)
        self.data_root = data_root
        self.daemon_json = os.path.join(self.dir, 'daemon.json')
        self.fstab = os.path.join(self.dir, 'fstab')
        self.archive_dir = os.path.join(self.dir, 'archive')
        with open(self.daemon_json, 'w', encoding='utf-8') as handle:
            json.dump(dict({'data-root': data_root, 'log-level': 'info'}, **(config or {})), handle, indent=2)
        with open(self.fstab, 'w', encoding='utf-8') as handle:
            handle.write('# private fstab of test %s\n' % self.name)
        self.socket = '/tmp/hps-%s.sock' % self.name
        base = [sys.executable, SCRIPT]
        self.start_cmd = base + ['start', '--name', self.name, '--state', self.state, '--config', self.daemon_json]
        self.stop_cmd = base + ['stop', '--name', self.name, '--state', self.state, '--config', self.daemon_json]

    def start(self) -> 'Engine':
        proc = subprocess.run(self.start_cmd, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        return self

    def stop(self) -> None:
        subprocess.run(self.stop_cmd, capture_output=True, text=True, check=False)

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url='unix://' + self.socket, timeout=60)

    def info(self) -> dict:
        with contextlib.closing(self.client()) as client:
            return client.info()

    def image_ids(self) -> list[str]:
        with contextlib.closing(self.client()) as client:
            return sorted(image.id for image in client.images.list())

    def pid(self) -> int | None:
        text = read_bytes(os.path.join(self.state, 'dockerd.pid'))
        return int(text) if text else None

    def vars(self, backend: str, **extra) -> dict:
        values = {
            'hostprep_hosts': 'all',
            'docker_storage_backend': backend,
            'docker_storage_service_manager': 'command',
            'docker_storage_start_command': self.start_cmd,
            'docker_storage_stop_command': self.stop_cmd,
            'docker_storage_log_file': os.path.join(self.state, 'dockerd.log'),
            'docker_storage_docker_host': 'unix://' + self.socket,
            'docker_storage_data_root': self.data_root,
            'docker_storage_daemon_config': self.daemon_json,
            'docker_storage_flags_sources': [],
            'docker_storage_fstab': self.fstab,
            'docker_storage_start_timeout': 30,
        }
        values.update(extra)
        return values


@pytest.fixture
def engines(workdir):
    """Engines a case made; stopped (and their mounts undone) in all cases."""
    made: list[Engine] = []

    def make(data_root: str, config: dict | None = None, start: bool = True) -> Engine:
        engine = Engine(workdir, data_root, config)
        made.append(engine)
        return engine.start() if start else engine

    yield make
    for engine in made:
        engine.stop()
        unmount_all(engine.data_root)
        unmount_all(engine.dir)


@pytest.fixture(scope='module')
def inventory(ansible):
    return ansible.inventory({'localhost': {'ansible_become': False}})


def converge(ansible, inventory, engine: Engine, backend: str, **extra):
    """check (changes nothing) -> apply (changed) -> again (0 changed)."""
    variables = engine.vars(backend, **extra)
    before = read_bytes(engine.daemon_json)
    pid = engine.pid()
    check = ansible.playbook(PLAYBOOK, inventory, variables, check=True)
    assert check.rc == 0 and not check.failed, check.stdout[-4000:]
    assert check.changed > 0
    assert read_bytes(engine.daemon_json) == before, 'check mode changed daemon.json'
    assert engine.pid() == pid, 'check mode restarted the engine'

    first = ansible.playbook(PLAYBOOK, inventory, variables)
    assert first.rc == 0 and not first.failed, first.stdout[-6000:]
    assert first.changed > 0
    second = ansible.playbook(PLAYBOOK, inventory, variables)
    assert second.rc == 0 and not second.failed, second.stdout[-4000:]
    assert second.changed == 0, [r['task'] for r in second.records if r['status'] == 'changed']
    return first


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


def blkid_type(device: str) -> str:
    proc = subprocess.run(['blkid', '-p', '-o', 'value', '-s', 'TYPE', device], capture_output=True, text=True,
                          check=False)
    return proc.stdout.strip()


def findmnt(path: str) -> dict:
    out = subprocess.run(['findmnt', '-J', '-T', path, '-o', 'TARGET,SOURCE,FSTYPE'], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)['filesystems'][-1]


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
    assert 'dockerd failed on the new configuration' in msg
    assert 'overlay2.size' in msg or 'quota' in msg.lower(), msg
    assert 'The previous %s is back' % engine.daemon_json in msg
    assert read_bytes(engine.daemon_json) == before
    assert engine.pid() and engine.pid() != old_pid
    assert engine.info()['Driver'] == 'overlay2'
    assert engine.image_ids() == images
