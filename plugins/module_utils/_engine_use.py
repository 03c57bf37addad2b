# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Is an engine using these paths? Private to hostprep.container_host.

One answer for every module that must not touch a data root while dockerd
(or containerd) uses it: the engine's API socket (/_ping, /info), its
pidfile, and the processes in /proc whose data root holds or lies inside
the paths. Zombies do not count: their command line is empty.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError, read_text
from ansible_collections.hostprep.container_host.plugins.module_utils import _daemon_config
from ansible_collections.hostprep.container_host.plugins.module_utils._daemon_json import config_text
from ansible_collections.hostprep.container_host.plugins.module_utils import _docker_client
from ansible_collections.hostprep.container_host.plugins.module_utils import _engine
from ansible_collections.hostprep.container_host.plugins.module_utils import _mounts
from ansible_collections.hostprep.container_host.plugins.module_utils._processes import cmdline

PING_TIMEOUT = 5


def is_dockerd(argv: list[str]) -> bool:
    return bool(argv) and os.path.basename(argv[0]) == 'dockerd'


def alive(pid: int, proc: str) -> bool:
    """A process that exists and is not a zombie."""
    try:
        with open(os.path.join(proc, str(pid), 'stat'), encoding='utf-8') as handle:
            return handle.read().rsplit(') ', 1)[1][:1] not in ('Z', 'X')
    except (OSError, IndexError):
        return False


def pidfile_dockerd(pidfile: str, proc: str = '/proc') -> int | None:
    """The pid in dockerd's pidfile when that process is a live dockerd."""
    text = read_text(pidfile)
    if not text or not text.strip().isdigit():
        return None
    pid = int(text.strip())
    if alive(pid, proc) and is_dockerd(cmdline(pid, proc)):
        return pid
    return None


# ---- is an engine using it? ------------------------------------------------------

def read_processes(proc_root: str = '/proc') -> list[tuple[int, str, list[str]]]:
    """(pid, comm, argv) of every live process that can be read."""
    found = []
    for entry in os.listdir(proc_root):
        if not entry.isdigit() or not alive(int(entry), proc_root):
            continue
        try:
            with open(os.path.join(proc_root, entry, 'comm'), encoding='utf-8', errors='replace') as handle:
                comm = handle.read().strip()
        except OSError:
            continue
        found.append((int(entry), comm, cmdline(int(entry), proc_root)))
    return found


def dockerd_data_root(argv: list[str], read: t.Callable[[str], str | None] = config_text) -> str:
    """The data root of a running dockerd: its --data-root flag, else
    data-root in its --config-file (default /etc/docker/daemon.json), else
    /var/lib/docker."""
    flags = _daemon_config.parse_flags(argv[1:])
    config_path = _daemon_config.DEFAULT_PATH
    for use in flags:
        if use.flag in ('data-root', 'graph') and use.value:
            return use.value  # dockerd refuses a directive given both ways, so the flag is it
        if use.flag == 'config-file' and use.value:
            config_path = use.value
    try:
        config, dummy = _daemon_config.parse_config(read(config_path), config_path)
    except HostprepError:
        config = None
    return _daemon_config.data_root_of(config or {}, flags)


_TOML_ROOT = re.compile(r'^\s*root\s*=\s*["\']([^"\']+)["\']', re.MULTILINE)


def containerd_root(argv: list[str], read: t.Callable[[str], str | None] = read_text) -> str:
    """containerd's root: --root, else top-level ``root`` of its --config
    (default /etc/containerd/config.toml), else /var/lib/containerd."""
    config_path = '/etc/containerd/config.toml'
    args = argv[1:]
    for i, arg in enumerate(args):
        name, eq, value = arg.partition('=')
        if not eq:
            value = args[i + 1] if i + 1 < len(args) else ''
        if name == '--root' and value:
            return value
        if name in ('--config', '-c') and value:
            config_path = value
    text = read(config_path) or ''
    top = re.split(r'^\s*\[', text, maxsplit=1, flags=re.MULTILINE)[0]
    match = _TOML_ROOT.search(top)
    return match.group(1) if match else _engine.CONTAINERD_ROOT


def engines_using(paths: list[str], processes: list[tuple[int, str, list[str]]],
                  read: t.Callable[[str], str | None] = read_text) -> list[str]:
    """Running dockerd (or containerd) processes whose data root holds, or
    lies inside, one of paths."""
    users = []
    for pid, comm, argv in processes:
        if comm == 'dockerd' or is_dockerd(argv):
            root = dockerd_data_root(argv, read)
            what = 'dockerd'
        elif comm == 'containerd' or (argv and os.path.basename(argv[0]) == 'containerd'):
            root = containerd_root(argv, read)
            what = 'containerd'
        else:
            continue
        for wanted in paths:
            if _mounts.is_within(wanted, root) or _mounts.is_within(root, wanted):
                users.append('%s (pid %d) with root %s' % (what, pid, root))
                break
    return users


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the engine's unix socket (what the Docker SDK does, without
    importing it: the SDK costs more than a second of start-up per run)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__('localhost', timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def engine_info(client_get: t.Callable[[str], tuple[int, bytes]], docker_host: str) -> dict[str, t.Any] | None:
    status, body = client_get('/_ping')
    if status != 200:
        return None
    answer: dict[str, t.Any] = {'docker_host': docker_host, 'data_root': None, 'driver': None, 'version': None}
    status, body = client_get('/info')
    if status == 200:
        try:
            info = json.loads(body.decode('utf-8', 'replace'))
            answer.update(data_root=info.get('DockerRootDir'), driver=info.get('Driver'),
                          version=info.get('ServerVersion'))
        except ValueError:
            pass
    return answer


def ping_engine(docker_host: str, timeout: float = PING_TIMEOUT) -> dict[str, t.Any] | None:
    """The engine answering at docker_host (its /_ping, then /info for the
    data root), or None when nothing answers. unix:// sockets are asked
    directly; other addresses (tcp://, ssh://) through the Docker SDK when it
    is installed."""
    if docker_host.startswith('unix://'):
        path = docker_host[len('unix://'):]

        def get(url: str) -> tuple[int, bytes]:
            conn = UnixHTTPConnection(path, timeout)
            try:
                conn.request('GET', url)
                response = conn.getresponse()
                return response.status, response.read()
            finally:
                conn.close()

        try:
            return engine_info(get, docker_host)
        except (OSError, http.client.HTTPException):
            return None
    # A broken SDK must not pass for "no engine answers": the caller would go on as if none ran.
    problem = _docker_client.sdk_problem()
    if problem:
        raise HostprepError('docker_host %s is not a unix socket; asking an engine there whether it runs needs the '
                            'Docker SDK for Python, and %s; or give the unix socket' % (docker_host, problem))
    try:
        with _docker_client.engine_client(docker_host, timeout, low_level=True) as client:
            if not client.ping():
                return None
            info = client.info()
    except (HostprepError, OSError, *_docker_client.ENGINE_ERRORS):  # nothing answers there
        return None
    return {'docker_host': docker_host, 'data_root': info.get('DockerRootDir'), 'driver': info.get('Driver'),
            'version': info.get('ServerVersion')}
