# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Processes from /proc, private to hostprep.container_host.

One reader of process command lines for every module that looks at running
processes (the engine's memory, whether an engine uses a data root), and the
limits on starting more of them (kernel.pid_max, kernel.threads-max, a
cgroup's pids.max). Readers take ``proc`` (and cgroup) roots so tests can
point them at recorded copies; parsers are pure.
"""

from __future__ import annotations

import os
import typing as t

PROC = '/proc'


def parse_cmdline(raw: bytes) -> list[str]:
    """The NUL-separated arguments of /proc/PID/cmdline; bytes that are not
    UTF-8 are kept as surrogate escapes, so paths compare as the kernel has them."""
    return [part.decode('utf-8', 'surrogateescape') for part in raw.split(b'\0') if part]


def cmdline(pid: int, proc: str = PROC) -> list[str]:
    """The arguments of a process; empty for a zombie, a kernel thread or a
    process that is gone."""
    try:
        with open(os.path.join(proc, str(pid), 'cmdline'), 'rb') as handle:
            return parse_cmdline(handle.read())
    except OSError:
        return []


# ---- how many more processes the host and a process's cgroup take ----------------

CGROUP_ROOT = '/sys/fs/cgroup'


def parse_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup -> {controller: path}; the cgroup v2 line
    (``0::/path``) under the key ''."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(':', 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(',') if parts[1] else ['']:
            found[controller] = parts[2]
    return found


def parse_loadavg_tasks(text: str) -> int | None:
    """The number of tasks (threads) that exist, the total of the fourth
    field of /proc/loadavg (``runnable/total``)."""
    fields = text.split()
    if len(fields) < 4 or '/' not in fields[3]:
        return None
    total = fields[3].split('/', 1)[1]
    return int(total) if total.isdigit() else None


def read_limit(path: str) -> int | None:
    """An integer from a /proc/sys or cgroup file; None when missing or
    ``max`` (no limit)."""
    try:
        with open(path, encoding='ascii') as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def cgroup_file(pid: int, controller: str, name: str, proc: str = PROC, root: str = CGROUP_ROOT) -> str | None:
    """The file ``name`` of the cgroup that holds pid for a controller:
    under the controller's v1 hierarchy when it is mounted there, else in
    the unified (v2) hierarchy; None when neither has the file."""
    try:
        with open(os.path.join(proc, str(pid), 'cgroup'), encoding='utf-8') as handle:
            groups = parse_cgroup(handle.read())
    except OSError:
        return None
    candidates = []
    if controller in groups:
        candidates.append(os.path.join(root, controller, groups[controller].lstrip('/'), name))
    if '' in groups:
        candidates.append(os.path.join(root, groups[''].lstrip('/'), name))
        candidates.append(os.path.join(root, 'unified', groups[''].lstrip('/'), name))
    for path in candidates:
        if os.path.exists(path):
            return path
    return None


def task_limits(pid: int | None, proc: str = PROC, root: str = CGROUP_ROOT) -> dict[str, t.Any]:
    """Tasks (processes and threads) in use and the limits on more:
    kernel.pid_max and kernel.threads-max for the whole host, and pids.max
    of the cgroup that holds pid (the engine's containerd, whose cgroup the
    shims of new containers join). Limits are None where there is none."""
    facts: dict[str, t.Any] = {'tasks': None, 'pid_max': read_limit(os.path.join(proc, 'sys/kernel/pid_max')),
                               'threads_max': read_limit(os.path.join(proc, 'sys/kernel/threads-max')),
                               'cgroup_pids_max': None, 'cgroup_pids_current': None, 'cgroup': None}
    try:
        with open(os.path.join(proc, 'loadavg'), encoding='ascii') as handle:
            facts['tasks'] = parse_loadavg_tasks(handle.read())
    except OSError:
        pass
    if pid is not None:
        limit = cgroup_file(pid, 'pids', 'pids.max', proc, root)
        if limit is not None:
            facts['cgroup'] = os.path.dirname(limit)
            facts['cgroup_pids_max'] = read_limit(limit)
            facts['cgroup_pids_current'] = read_limit(os.path.join(os.path.dirname(limit), 'pids.current'))
    return facts
