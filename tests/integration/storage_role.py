# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by the docker_storage role tests: private engines the role manages, their fixtures.

The docker_storage role against a real engine (Debian 12's dockerd 20.10).

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
from dockerd import loop_filesystem, read_bytes, unmount_all

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
            'docker_storage_journal_dir': os.path.join(self.dir, 'journal'),
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


def blkid_type(device: str) -> str:
    proc = subprocess.run(['blkid', '-p', '-o', 'value', '-s', 'TYPE', device], capture_output=True, text=True,
                          check=False)
    return proc.stdout.strip()


def findmnt(path: str) -> dict:
    out = subprocess.run(['findmnt', '-J', '-T', path, '-o', 'TARGET,SOURCE,FSTYPE'], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)['filesystems'][-1]
