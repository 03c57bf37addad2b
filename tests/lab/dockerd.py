# SPDX-License-Identifier: GPL-3.0-or-later
"""A real, private dockerd for integration tests, and loop-backed filesystems.

``PrivateDockerd`` starts Debian's dockerd with everything of its own: data
root, exec root, socket under /tmp, pid file, no iptables and no bridge, so
it never touches the host's engine or network. It is ready when the Docker
SDK's ping answers. ``stop()`` ends it by pid, ends the containerd and shims
it started (found by its private exec root), and unmounts whatever it left
under its directories -- also when the start failed.

``loop_filesystem()`` makes a sparse image, formats it, attaches it to a loop
device and mounts it; on exit it unmounts everything under the mount point,
detaches the loop device and removes the image.

Nothing here skips: a missing tool fails the test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import typing as t
import uuid

import docker

DOCKERD = '/usr/sbin/dockerd'


class DockerdFailed(Exception):
    """dockerd exited or never answered; carries its log."""

    def __init__(self, msg: str, log: str) -> None:
        super().__init__('%s\n--- dockerd log (tail) ---\n%s' % (msg, log[-4000:]))
        self.log = log


def _mounts_under(*roots: str) -> list[str]:
    """Mount points at or below the given directories, deepest first."""
    found = []
    real_roots = [os.path.realpath(r) for r in roots if r]
    with open('/proc/self/mountinfo', encoding='utf-8') as handle:
        for line in handle:
            target = line.split()[4].encode().decode('unicode_escape')
            for root in real_roots:
                if target == root or target.startswith(root.rstrip('/') + '/'):
                    found.append(target)
    return sorted(set(found), key=lambda p: (-p.count('/'), p))


def unmount_all(*roots: str, include_roots: bool = True) -> None:
    for dummy in range(3):
        targets = [m for m in _mounts_under(*roots)
                   if include_roots or os.path.realpath(m) not in [os.path.realpath(r) for r in roots]]
        if not targets:
            return
        for target in targets:
            if subprocess.run(['umount', target], capture_output=True, check=False).returncode != 0:
                subprocess.run(['umount', '-l', target], capture_output=True, check=False)


ENGINE_PROGRAMS = ('dockerd', 'containerd', 'runc', 'docker-proxy', 'docker-init')


def _pids_using(path: str) -> list[int]:
    """Engine processes (dockerd, its containerd, shims, runc) whose command
    line names our private directory. Other processes that merely mention the
    path (ansible-playbook with it in its extra vars) are left alone."""
    pids = []
    needle = path.encode()
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as handle:
                argv = handle.read().split(b'\0')
        except OSError:
            continue
        program = os.path.basename(argv[0].decode('utf-8', 'replace'))
        if program.startswith(ENGINE_PROGRAMS) and any(needle in arg for arg in argv):
            pids.append(int(entry))
    return pids


def _wait_gone(pid: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not os.path.exists('/proc/%d' % pid):
            return True
        try:
            with open('/proc/%d/stat' % pid, encoding='utf-8') as handle:
                if handle.read().split(') ', 1)[1].startswith('Z'):
                    return True
        except (OSError, IndexError):
            return True
        time.sleep(0.05)
    return False


def end_processes(pids: list[int]) -> None:
    """SIGTERM each process, SIGKILL what is still there after 10 s."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, 10):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)


def stop_popen(proc: subprocess.Popen | None) -> None:
    """End a child started with Popen: SIGTERM, then SIGKILL after 20 s."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def raw_loop_device(workdir: str, size_mb: int = 256) -> t.Iterator[str]:
    """An empty (never formatted) loop device, detached and removed afterwards."""
    image = os.path.join(workdir, 'raw-%s.img' % uuid.uuid4().hex[:6])
    with open(image, 'wb') as handle:
        handle.truncate(size_mb * 1024 * 1024)
    device = subprocess.run(['losetup', '--find', '--show', image], check=True, capture_output=True,
                            text=True).stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(['losetup', '-d', device], capture_output=True, check=False)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(image)


class PrivateDockerd:
    """One dockerd with its own directories; use as a context manager."""

    def __init__(self, workdir: str, data_root: str | None = None, storage_driver: str | None = None,
                 config_file: str | None = None, extra_args: list[str] | None = None,
                 pass_data_root: bool = True, dockerd: str = DOCKERD) -> None:
        ident = uuid.uuid4().hex[:8]
        self.workdir = workdir
        self.data_root = data_root or os.path.join(workdir, 'data-root-%s' % ident)
        # Unix socket paths are limited to 108 bytes, containerd's included,
        # so the exec root and socket live directly under /tmp.
        self.exec_root = '/tmp/hpd-%s' % ident
        self.socket = '/tmp/hpd-%s.sock' % ident
        self.pidfile = os.path.join(workdir, 'dockerd-%s.pid' % ident)
        self.logfile = os.path.join(workdir, 'dockerd-%s.log' % ident)
        self.storage_driver = storage_driver
        self.config_file = config_file
        self.extra_args = list(extra_args or [])
        self.pass_data_root = pass_data_root
        self.dockerd = dockerd
        self.proc: subprocess.Popen | None = None
        self._client: docker.DockerClient | None = None

    @property
    def base_url(self) -> str:
        return 'unix://' + self.socket

    def flags(self) -> list[str]:
        """The command line, also usable as a fake ExecStart in tests."""
        args = [self.dockerd]
        if self.pass_data_root:
            args += ['--data-root', self.data_root]
        args += ['--exec-root', self.exec_root, '--host', self.base_url, '--pidfile', self.pidfile,
                 '--iptables=false', '--bridge=none']
        if self.storage_driver:
            args += ['--storage-driver', self.storage_driver]
        if self.config_file:
            args += ['--config-file', self.config_file]
        return args + self.extra_args

    def log(self) -> str:
        try:
            with open(self.logfile, encoding='utf-8', errors='replace') as handle:
                return handle.read()
        except FileNotFoundError:
            return ''

    def start(self, timeout: float = 30.0) -> 'PrivateDockerd':
        os.makedirs(self.data_root, exist_ok=True)
        with open(self.logfile, 'ab') as log:
            self.proc = subprocess.Popen(self.flags(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                log_text = self.log()
                self.stop()
                raise DockerdFailed('dockerd exited with status %s before answering' % rc, log_text)
            if os.path.exists(self.socket):
                try:
                    client = docker.DockerClient(base_url=self.base_url, timeout=5)
                    if client.ping():
                        self._client = client
                        return self
                except Exception:  # pylint: disable=broad-except
                    pass
            if time.monotonic() > end:
                log_text = self.log()
                self.stop()
                raise DockerdFailed('dockerd did not answer on %s within %.0f s' % (self.socket, timeout), log_text)
            time.sleep(0.1)

    @property
    def client(self) -> docker.DockerClient:
        assert self._client is not None, 'dockerd is not running'
        return self._client

    def info(self) -> dict[str, t.Any]:
        return self.client.info()

    def stop(self) -> None:
        """End dockerd, its containerd and shims, unmount what they left."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        stop_popen(self.proc)
        end_processes(_pids_using(self.exec_root))
        unmount_all(self.exec_root)
        # Keep the data root's own mount (a test's filesystem) but not what
        # dockerd mounted inside it or onto it.
        unmount_all(self.data_root)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        for path in (self.socket, self.pidfile):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def __enter__(self) -> 'PrivateDockerd':
        return self.start()

    def __exit__(self, *exc: t.Any) -> None:
        self.stop()


def import_busybox(client: docker.DockerClient, name: str = 'hostprep-busybox:latest') -> str:
    """A local image from Debian's static busybox, no registry needed."""
    # Imported here, not at the top: the role's start/stop script imports
    # this file without the collection on sys.path.
    from ansible_collections.hostprep.container_host.plugins.module_utils._cow_benchmark import busybox_tar
    busybox = shutil.which('busybox') or '/bin/busybox'
    with tempfile.TemporaryDirectory(prefix='hp-busybox-') as tmp:
        tar_path = os.path.join(tmp, 'rootfs.tar')
        with open(tar_path, 'wb') as handle:
            handle.write(busybox_tar(busybox, ('sh', 'true', 'echo', 'cat', 'ls', 'df', 'stat')))
        repository, dummy, tag = name.partition(':')
        client.api.import_image_from_file(tar_path, repository=repository, tag=tag or 'latest')
    return name


MKFS = {
    'xfs': ['mkfs.xfs', '-q', '-f', '-m', 'crc=1', '-n', 'ftype=1'],
    'btrfs': ['mkfs.btrfs', '-q', '-f'],
    'ext4': ['mkfs.ext4', '-q', '-F'],
}
# mkfs.xfs refuses filesystems under 300 MiB; btrfs wants about 114 MiB.
MIN_SIZE_MB = {'xfs': 320, 'btrfs': 256, 'ext4': 64}


@contextlib.contextmanager
def loop_filesystem(workdir: str, fstype: str, size_mb: int | None = None,
                    mount_options: str | None = None) -> t.Iterator[str]:
    """A fresh filesystem on a loop device, mounted under workdir."""
    ident = uuid.uuid4().hex[:6]
    image = os.path.join(workdir, '%s-%s.img' % (fstype, ident))
    mountpoint = os.path.join(workdir, '%s-%s' % (fstype, ident))
    device = None
    mounted = False
    try:
        with open(image, 'wb') as handle:
            handle.truncate((size_mb or MIN_SIZE_MB[fstype]) * 1024 * 1024)
        subprocess.run(MKFS[fstype] + [image], check=True, capture_output=True)
        device = subprocess.run(['losetup', '--find', '--show', image], check=True,
                                capture_output=True, text=True).stdout.strip()
        os.makedirs(mountpoint)
        cmd = ['mount', '-t', fstype] + (['-o', mount_options] if mount_options else []) + [device, mountpoint]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError('%s failed: %s' % (' '.join(cmd), proc.stderr.strip()))
        mounted = True
        yield mountpoint
    finally:
        if mounted:
            unmount_all(mountpoint)
        if device:
            subprocess.run(['losetup', '-d', device], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            os.rmdir(mountpoint)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(image)


@contextlib.contextmanager
def engines_on_loop_filesystems(workdir: str, engines: dict[str, tuple[str, str | None, int | None]]
                                ) -> t.Iterator[dict[str, PrivateDockerd]]:
    """One started PrivateDockerd per name (name -> (fstype, storage driver, size in MB or None)), its
    directory workdir/name and its data root on a loop filesystem of its own; all stopped, then
    unmounted, at the end."""
    started: dict[str, PrivateDockerd] = {}
    with contextlib.ExitStack() as stack:
        try:
            for name, (fstype, driver, size_mb) in engines.items():
                mount = stack.enter_context(loop_filesystem(workdir, fstype, size_mb))
                case = os.path.join(workdir, name)
                os.makedirs(case)
                started[name] = PrivateDockerd(case, data_root=os.path.join(mount, 'docker'),
                                               storage_driver=driver).start()
            yield started
        finally:
            for engine in started.values():
                engine.stop()
