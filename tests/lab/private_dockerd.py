# SPDX-License-Identifier: GPL-3.0-or-later
"""A private dockerd that the role stops and starts by command, the way an init script would.

The docker_storage role's integration tests, its benchmark and the netns demo
hand these commands to the role as docker_storage_start_command /
docker_storage_stop_command (service manager ``command``): the role restarts
the engine itself, so the engine must be started and stopped by a command,
not by the test. ``Engine`` makes one such engine (its directory, daemon.json,
fstab and commands) and the role variables that point at it.

    python tests/lab/private_dockerd.py start --name ID --state DIR --config FILE [--timeout S]
    python tests/lab/private_dockerd.py stop  --name ID --state DIR

Everything is private: exec root /tmp/hps-ID, socket /tmp/hps-ID.sock (unix
socket paths are limited to 108 bytes), pid file and log (appended) in DIR.
The data root and storage driver come from the config file, which the role
writes. ``start`` returns once the API answers, like systemd's Type=notify;
when dockerd exits first it prints dockerd's own log lines of this start to
stderr and exits 1. ``stop`` ends dockerd by its pid, then the containerd and
shims it started (found by the private exec root), and unmounts what they
left under the exec root and inside the data root (not the data root's own
mount: that may be a bind mount the role made).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import docker

if __package__:
    from .dockerd import DOCKERD, _pids_using, _wait_gone, end_processes, unmount_all
else:  # run as the role's start or stop command: python tests/lab/private_dockerd.py (Engine is not used)
    from dockerd import DOCKERD, _pids_using, _wait_gone, end_processes, unmount_all

SCRIPT = os.path.abspath(__file__)


def paths(args: argparse.Namespace) -> dict[str, str]:
    return {
        'exec_root': '/tmp/hps-%s' % args.name,
        'socket': '/tmp/hps-%s.sock' % args.name,
        'pidfile': os.path.join(args.state, 'dockerd.pid'),
        'log': os.path.join(args.state, 'dockerd.log'),
    }


def running_pid(pidfile: str) -> int | None:
    try:
        with open(pidfile, encoding='utf-8') as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    return pid if os.path.exists('/proc/%d' % pid) and not _wait_gone(pid, 0) else None


def answers(socket: str) -> bool:
    if not os.path.exists(socket):
        return False
    try:
        client = docker.DockerClient(base_url='unix://' + socket, timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # pylint: disable=broad-except
        return False


def start(args: argparse.Namespace) -> int:
    p = paths(args)
    os.makedirs(args.state, exist_ok=True)
    if running_pid(p['pidfile']) and answers(p['socket']):
        return 0
    offset = os.path.getsize(p['log']) if os.path.exists(p['log']) else 0
    cmd = [DOCKERD, '--config-file', args.config, '--exec-root', p['exec_root'], '--host', 'unix://' + p['socket'],
           '--pidfile', p['pidfile'], '--iptables=false', '--bridge=none']
    with open(p['log'], 'ab') as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    end = time.monotonic() + args.timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            with open(p['log'], encoding='utf-8', errors='replace') as handle:
                handle.seek(offset)
                sys.stderr.write(handle.read()[-4000:])
            sys.stderr.write('dockerd exited with status %d\n' % proc.returncode)
            cleanup(p, None)
            return 1
        if answers(p['socket']):
            return 0
        time.sleep(0.1)
    sys.stderr.write('dockerd did not answer on %s within %d s\n' % (p['socket'], args.timeout))
    return 1


def cleanup(p: dict[str, str], data_root: str | None) -> None:
    # containerd and its shims name files under the exec root's containerd
    # directory; match that, not the bare exec root, which also appears in
    # the command lines of ansible-playbook and this script.
    end_processes(_pids_using(os.path.join(p['exec_root'], 'containerd')))
    unmount_all(p['exec_root'])
    if data_root:
        unmount_all(data_root, include_roots=False)
    subprocess.run(['rm', '-rf', p['exec_root']], check=False)
    for path in (p['socket'], p['pidfile']):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def stop(args: argparse.Namespace) -> int:
    p = paths(args)
    pid = running_pid(p['pidfile'])
    if pid:
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, 30):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10)
    data_root = None
    if args.config and os.path.exists(args.config):
        with contextlib.suppress(ValueError, OSError):
            with open(args.config, encoding='utf-8') as handle:
                data_root = json.load(handle).get('data-root')
    cleanup(p, data_root)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('action', choices=['start', 'stop'])
    parser.add_argument('--name', required=True)
    parser.add_argument('--state', required=True)
    parser.add_argument('--config')
    parser.add_argument('--timeout', type=int, default=40)
    args = parser.parse_args()
    if args.action == 'start':
        if not args.config:
            parser.error('start needs --config')
        return start(args)
    return stop(args)


class Engine:
    """One private engine, managed by the role through this file's start and stop commands."""

    def __init__(self, workdir: str, data_root: str, config: dict | None = None, name: str | None = None) -> None:
        self.name = uuid.uuid4().hex[:8]
        self.dir = os.path.join(workdir, name or 'case-' + self.name)
        self.state = os.path.join(self.dir, 'state')
        os.makedirs(self.state)
        self.data_root = data_root
        self.daemon_json = os.path.join(self.dir, 'daemon.json')
        self.fstab = os.path.join(self.dir, 'fstab')
        self.archive_dir = os.path.join(self.dir, 'archive')
        with open(self.daemon_json, 'w', encoding='utf-8') as handle:
            json.dump(dict({'data-root': data_root, 'log-level': 'info'}, **(config or {})), handle, indent=2)
        with open(self.fstab, 'w', encoding='utf-8') as handle:
            handle.write('# private fstab of %s\n' % (name or 'test %s' % self.name))
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
        # Imported here, as dockerd.import_busybox does: the start/stop command runs without the collection.
        from ansible_collections.hostprep.container_host.plugins.module_utils._common import read_bytes  # pylint: disable=import-outside-toplevel
        text = read_bytes(os.path.join(self.state, 'dockerd.pid'))
        return int(text) if text else None

    def vars(self, backend: str, **extra) -> dict:
        """The docker_storage role's variables for this engine."""
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


if __name__ == '__main__':
    sys.exit(main())
