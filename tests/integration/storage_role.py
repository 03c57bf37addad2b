# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by the docker_storage role tests: private engines the role manages, their fixtures.

The docker_storage role against a real engine (Debian 12's dockerd 20.10).

Every case runs playbooks/docker_storage.yml through ansible-playbook on a
private dockerd that the ROLE stops and starts itself, through the command
service manager: tests/lab/private_dockerd.py is its start and
stop command (as an init script would be). Data roots live in directories on
loop-backed ext4, XFS and btrfs filesystems; the image archive goes to the
test's work directory on the root filesystem, which is another filesystem.

What the engine reports (Docker SDK info(), image IDs), the bytes of
daemon.json and the kernel's mount table are the evidence; refusals must leave
all of them as they were.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import ROOT, filesystems_fixture, workdir_fixture
from tests.lab.dockerd import unmount_all

from ansible_collections.hostprep.container_host.plugins.module_utils._common import read_bytes
from tests.lab.private_dockerd import Engine

PLAYBOOK = os.path.join(ROOT, 'playbooks', 'docker_storage.yml')
RESET_PLAYBOOK = os.path.join(ROOT, 'playbooks', 'reset_loopback.yml')

workdir = workdir_fixture('hp-dsr', ('dockerd', 'containerd', 'runc', 'losetup', 'findmnt', 'mkfs.xfs', 'mkfs.btrfs',
                                     'mkfs.ext4', 'busybox', 'docker', 'blkid'))
# ext4 and XFS (ftype=1)
fs = filesystems_fixture(ext4=256, xfs=None)


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
