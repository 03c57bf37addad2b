# SPDX-License-Identifier: GPL-3.0-or-later
"""The VM lab's faults, for real (run by `make test-vm` before the scenarios,
after the images are built): a missing qemu or debootstrap is named with
what to run; a VM that does not answer within its timeout fails with its
console's last lines and leaves no process, overlay or disk behind; `down`
succeeds when nothing runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.lab.vm import vm

HERE = os.path.dirname(os.path.abspath(__file__))
VM_DIR = os.path.join(HERE, '..', 'lab', 'vm')

VM = os.path.join(VM_DIR, 'vm.py')
BUILD = os.path.join(VM_DIR, 'build_image.py')


def run(cmd: list[str], env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                          env=dict(os.environ, **(env or {})))


@pytest.fixture(name='workdir')
def fixture_workdir(tmp_path):
    path = str(tmp_path / 'vm')
    yield path
    run([sys.executable, VM, 'down', '--purge', '--workdir', path])


def nothing_left(workdir: str) -> None:
    assert not [p for p in vm.lab_processes() if workdir in p[1]], vm.lab_processes()
    assert vm.leftover_files([os.path.dirname(workdir)]) == []


def test_missing_qemu_is_named(workdir):
    res = run([sys.executable, VM, 'up', '--workdir', workdir, '--accel', 'tcg'],
              env={'HOSTPREP_VM_QEMU': '/nonexistent/qemu-system-x86_64'})
    assert res.returncode != 0
    assert '/nonexistent/qemu-system-x86_64 or qemu-img is missing' in res.stderr
    assert 'make vm-image' in res.stderr
    nothing_left(workdir)


def test_missing_debootstrap_is_named(tmp_path):
    """An empty cache and no debootstrap on PATH: the builder says what is
    missing and how to get it, before it changes anything."""
    cache = tmp_path / 'cache'
    res = run([sys.executable, BUILD, '--suite', 'bookworm', '--cache', str(cache)], env={'PATH': '/usr/bin:/bin'})
    assert res.returncode != 0
    assert 'debootstrap is missing' in res.stderr and 'make vm-image' in res.stderr
    assert not cache.exists() or not any(cache.iterdir())


def test_boot_timeout_shows_the_console_and_cleans_up(workdir):
    """Under emulation no VM reaches SSH in 12 s: up fails with the console's
    last lines (the kernel has printed by then) and removes what it made."""
    res = run([sys.executable, VM, 'up', '--workdir', workdir, '--accel', 'tcg', '--disks', '2', '--disk-size', '1G',
               '--timeout', '12'])
    assert res.returncode == 1, res.stderr
    assert 'did not answer on ssh' in res.stderr and 'last 30 console lines' in res.stderr
    console = res.stderr.split('last 30 console lines', 1)[1]
    assert re.search(r'\[ *\d+\.\d+\] ', console), console  # the kernel's own lines
    nothing_left(workdir)
    assert os.path.exists(os.path.join(workdir, 'console.log'))  # kept for a look


def test_down_when_nothing_runs(tmp_path):
    res = run([sys.executable, VM, 'down', '--workdir', str(tmp_path / 'never-booted')])
    assert res.returncode == 0 and 'nothing to stop' in res.stderr
