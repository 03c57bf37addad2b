# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Memory of the host and of the container engine's processes, from /proc.

Private to hostprep.container_host. Parsers are pure functions fed the text
of /proc/meminfo, /proc/PID/status and /proc/net/unix; the readers take a
``proc`` root so tests can point them at recorded copies.

The engine is found by its API socket, not by name: several dockerd may run
on one host (private test engines, rootless ones), and the one the benchmark
talks to is the process that holds the listening unix socket.
"""

from __future__ import annotations

import os
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._processes import (
    CGROUP_ROOT,
    cgroup_file,
    cmdline,
    read_limit,
)

PROC = '/proc'


def parse_meminfo(text: str) -> dict[str, int]:
    """``MemAvailable:  123 kB`` lines -> {'MemAvailable': 125952, ...} in bytes."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(':')
        if not sep:
            continue
        parts = rest.split()
        if not parts or not parts[0].isdigit():
            continue
        factor = 1024 if len(parts) > 1 and parts[1].lower() == 'kb' else 1
        values[key.strip()] = int(parts[0]) * factor
    return values


def parse_status(text: str) -> dict[str, t.Any]:
    """Name, PPid and VmRSS (bytes; 0 for kernel threads) from /proc/PID/status."""
    fields = parse_meminfo(text)
    name = ''
    for line in text.splitlines():
        if line.startswith('Name:'):
            name = line.split(':', 1)[1].strip()
            break
    return {'name': name, 'ppid': fields.get('PPid', 0), 'rss': fields.get('VmRSS', 0)}


def parse_unix_sockets(text: str) -> dict[str, list[int]]:
    """/proc/net/unix -> {path: [inode, ...]} of sockets that have a path."""
    sockets: dict[str, list[int]] = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 8:
            continue
        try:
            inode = int(parts[6])
        except ValueError:
            continue
        sockets.setdefault(parts[7], []).append(inode)
    return sockets


def _read(path: str) -> str | None:
    try:
        with open(path, 'r', encoding='utf-8', errors='replace') as handle:
            return handle.read()
    except OSError:
        return None


def mem_available(proc: str = PROC) -> int | None:
    text = _read(os.path.join(proc, 'meminfo'))
    if text is None:
        return None
    return parse_meminfo(text).get('MemAvailable')


def pids(proc: str = PROC) -> list[int]:
    return sorted(int(entry) for entry in os.listdir(proc) if entry.isdigit())


def status(pid: int, proc: str = PROC) -> dict[str, t.Any] | None:
    text = _read(os.path.join(proc, str(pid), 'status'))
    return parse_status(text) if text is not None else None


def socket_owners(path: str, proc: str = PROC) -> list[int]:
    """Pids of the processes holding a unix socket bound to path (the
    listener of an API socket)."""
    text = _read(os.path.join(proc, 'net', 'unix'))
    if text is None:
        return []
    inodes = set(parse_unix_sockets(text).get(path, []))
    if not inodes:
        return []
    wanted = {'socket:[%d]' % inode for inode in inodes}
    owners = []
    for pid in pids(proc):
        fd_dir = os.path.join(proc, str(pid), 'fd')
        try:
            entries = os.listdir(fd_dir)
        except OSError:
            continue
        for entry in entries:
            try:
                if os.readlink(os.path.join(fd_dir, entry)) in wanted:
                    owners.append(pid)
                    break
            except OSError:
                continue
    return owners


def flag_value(args: list[str], flag: str) -> str | None:
    """Value of ``--flag VALUE`` or ``--flag=VALUE`` in a command line."""
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(flag + '='):
            return arg.split('=', 1)[1]
    return None


def engine_processes(socket_path: str, container_ids: t.Iterable[str] = (),
                     proc: str = PROC) -> dict[str, t.Any] | None:
    """Pids of the engine behind a unix API socket: dockerd (the socket's
    owner), its containerd (a child named containerd, else the listener of
    the socket named by ``--containerd``, else /run/containerd/containerd.sock)
    and the containerd shims of the given containers (their ``-id``).
    None when no process on this host holds the socket."""
    owners = socket_owners(socket_path, proc)
    dockerd = [pid for pid in owners if (status(pid, proc) or {}).get('name') == 'dockerd'] or owners
    if not dockerd:
        return None
    dockerd_pid = dockerd[0]
    table = {pid: status(pid, proc) for pid in pids(proc)}
    table = {pid: st for pid, st in table.items() if st is not None}
    containerd = [pid for pid, st in table.items() if st['name'] == 'containerd' and st['ppid'] == dockerd_pid]
    if not containerd:
        address = flag_value(cmdline(dockerd_pid, proc), '--containerd') or '/run/containerd/containerd.sock'
        containerd = socket_owners(address, proc)
    wanted = set(container_ids)
    shims = []
    if wanted:
        for pid, st in table.items():
            if not st['name'].startswith('containerd-shim'):
                continue
            if flag_value(cmdline(pid, proc), '-id') in wanted:
                shims.append(pid)
    return {'dockerd': [dockerd_pid], 'containerd': containerd[:1], 'shims': sorted(shims)}


def rss_of(pid_list: t.Iterable[int], proc: str = PROC) -> int:
    total = 0
    for pid in pid_list:
        st = status(pid, proc)
        if st:
            total += st['rss']
    return total


def snapshot(socket_path: str | None, container_ids: t.Iterable[str] = (),
             proc: str = PROC) -> dict[str, t.Any]:
    """MemAvailable and the resident memory of dockerd, containerd and the
    shims of the given containers, in bytes. Process figures are None when
    the engine is not a local unix socket (or not found)."""
    result: dict[str, t.Any] = {'mem_available': mem_available(proc), 'dockerd_rss': None,
                                'containerd_rss': None, 'shims_rss': None, 'shim_count': None}
    if not socket_path:
        return result
    found = engine_processes(socket_path, container_ids, proc)
    if found is None:
        return result
    result['dockerd_rss'] = rss_of(found['dockerd'], proc)
    result['containerd_rss'] = rss_of(found['containerd'], proc) if found['containerd'] else None
    result['shims_rss'] = rss_of(found['shims'], proc)
    result['shim_count'] = len(found['shims'])
    return result


# cgroup v1 reports "no limit" as the largest page-aligned 63-bit number
_NO_LIMIT = 1 << 62


def cgroup_memory(pid: int, proc: str = PROC, root: str = CGROUP_ROOT) -> dict[str, t.Any] | None:
    """Limit and usage (bytes) of the memory cgroup that holds pid (v1
    memory.limit_in_bytes/usage_in_bytes, v2 memory.max/current); None when
    the cgroup has no limit."""
    for limit_name, usage_name in (('memory.limit_in_bytes', 'memory.usage_in_bytes'), ('memory.max', 'memory.current')):
        path = cgroup_file(pid, 'memory', limit_name, proc, root)
        if path is None:
            continue
        limit = read_limit(path)
        if limit is None or limit >= _NO_LIMIT:
            return None
        usage = read_limit(os.path.join(os.path.dirname(path), usage_name)) or 0
        return {'cgroup': os.path.dirname(path), 'limit': limit, 'usage': usage}
    return None
