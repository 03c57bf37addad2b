# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration-test fixtures: a real netns lab, real ansible-playbook runs, a work directory
and loop filesystems per test module. The helpers themselves live in the lab package (tests/lab/).

Nothing here mocks the kernel. A missing prerequisite (root, ip netns, a
tool) fails the run: these tests never skip themselves.

A test module makes its ``workdir`` and ``fs`` fixtures with ``workdir_fixture``
and ``filesystems_fixture``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import typing as t

import pytest

from tests.lab import BIN, ROOT  # noqa: F401  pylint: disable=unused-import
from tests.lab.dockerd import PrivateDockerd, import_busybox, loop_filesystem, unmount_all
from tests.lab.netns_lab import Lab
from tests.lab.playbook import Ansible


def require(condition: bool, what: str) -> None:
    """A missing prerequisite is a failure, never a skip."""
    if not condition:
        pytest.fail('prerequisite missing: %s (make test installs it; run as root)' % what, pytrace=False)


@pytest.fixture(scope='session', autouse=True)
def prerequisites():
    require(os.geteuid() == 0, 'root')
    for tool in ('ip', 'ping', 'tracepath'):
        require(shutil.which(tool) is not None, tool)
    require(shutil.which('ansible-playbook', path=BIN) is not None, 'ansible-playbook in the venv')


@pytest.fixture(scope='session')
def lab(prerequisites):
    """The storage-network lab, built once for the session."""
    netlab = Lab('hpt%d' % (os.getpid() % 1000), fleet=3)
    info = netlab.up()
    info['lab'] = netlab
    yield info
    netlab.down()


@pytest.fixture(scope='session')
def ansible(prerequisites):
    workdir = tempfile.mkdtemp(prefix='hostprep-it-')
    yield Ansible(workdir)
    shutil.rmtree(workdir, ignore_errors=True)


def workdir_fixture(prefix: str, tools: tuple[str, ...] = (), before_removal: t.Callable[[str], t.Any] | None = None):
    """A test module's ``workdir`` fixture (``workdir = workdir_fixture('hp-x', TOOLS)``):
    its own directory, made after the tools (a name on PATH, or an absolute path) are
    found; what is mounted under it is unmounted and the directory removed at the end
    (after before_removal(path), when given)."""

    @pytest.fixture(scope='module', name='workdir')
    def fixture():
        for tool in tools:
            require(os.path.isfile(tool) if os.path.isabs(tool) else shutil.which(tool) is not None, tool)
        path = tempfile.mkdtemp(prefix=prefix + '-')
        yield path
        if before_removal:
            before_removal(path)
        unmount_all(path)
        shutil.rmtree(path, ignore_errors=True)
    return fixture


def filesystems_fixture(**sizes: int | None):
    """A test module's ``fs`` fixture (``fs = filesystems_fixture(ext4=256, xfs=None)``): each
    fstype on a loop device under workdir, size in MB (None: the smallest the fstype allows),
    shared by the module's cases (each uses its own directory on them), torn down in all cases."""

    @pytest.fixture(scope='module', name='fs')
    def fixture(workdir):
        with contextlib.ExitStack() as stack:
            yield {fstype: stack.enter_context(loop_filesystem(workdir, fstype, size_mb=size))
                   for fstype, size in sizes.items()}
    return fixture


def busybox_engine_fixture(ext4_mb: int):
    """A test module's ``engine`` fixture (``engine = busybox_engine_fixture(160)``): a private dockerd
    whose data root is on a loop ext4 of its own (ext4_mb) under workdir, with the busybox image."""

    @pytest.fixture(scope='module', name='engine')
    def fixture(workdir):
        with loop_filesystem(workdir, 'ext4', size_mb=ext4_mb) as ext4:
            with PrivateDockerd(workdir, data_root=os.path.join(ext4, 'docker')) as dockerd:
                import_busybox(dockerd.client)
                yield dockerd
    return fixture


@pytest.fixture(scope='module')
def btrfs(workdir):
    """One loop-backed btrfs under the module's workdir."""
    with loop_filesystem(workdir, 'btrfs') as mountpoint:
        yield mountpoint


@pytest.fixture(scope='module')
def engine26(workdir):
    """Stands in for Engine 26's dockerd binary (this host has 20.10, which has no
    containerd image store): prints its version line."""
    path = os.path.join(workdir, 'dockerd-26')
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write("#!/bin/sh\necho 'Docker version 26.1.5+dfsg1, build a72d7cd'\n")
    os.chmod(path, 0o755)
    return path
