# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""dockerd's command-line flags, private to hostprep.container_host.

Find the flags dockerd is started with in systemd units, drop-ins and
environment files, map them to the daemon.json keys they set, and find keys
set in both places (dockerd refuses to start then). ``expand_sources()``,
``read_sources()`` and ``read_flags()`` look at the file system; the
parsers and the conflict checks are pure functions.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._daemon_json import read_bounded

DEFAULT_FLAGS_SOURCES = [
    '/lib/systemd/system/docker.service',
    '/usr/lib/systemd/system/docker.service',
    '/etc/systemd/system/docker.service',
    '/run/systemd/system/docker.service',
    '/lib/systemd/system/docker.service.d/*.conf',
    '/usr/lib/systemd/system/docker.service.d/*.conf',
    '/etc/systemd/system/docker.service.d/*.conf',
    '/run/systemd/system/docker.service.d/*.conf',
    '/etc/default/docker',
    '/etc/sysconfig/docker*',
]

#: unit and environment files scanned for dockerd flags are a few KiB
MAX_SOURCE_BYTES = 1024 * 1024

# Flags whose daemon.json key has another name (dockerd's NamedOption values),
# measured with dockerd 20.10.24 (tests/unit/fixtures/docker/*conflict*).
NAMED_FLAGS = {
    'add-runtime': 'runtimes',
    'allow-nondistributable-artifacts': 'allow-nondistributable-artifacts',
    'authorization-plugin': 'authorization-plugins',
    'cluster-store-opt': 'cluster-store-opts',
    'default-address-pool': 'default-address-pools',
    'default-ulimit': 'default-ulimits',
    'dns': 'dns',
    'dns-opt': 'dns-opts',
    'dns-search': 'dns-search',
    'exec-opt': 'exec-opts',
    'host': 'hosts',
    'insecure-registry': 'insecure-registries',
    'label': 'labels',
    'log-opt': 'log-opts',
    'node-generic-resource': 'node-generic-resources',
    'registry-mirror': 'registry-mirrors',
    'storage-opt': 'storage-opts',
}
SHORT_FLAGS = {'D': 'debug', 'G': 'group', 'H': 'host', 'b': 'bridge', 'g': 'graph',
               'l': 'log-level', 'p': 'pidfile', 's': 'storage-driver', 'h': 'help', 'v': 'version'}
BOOL_FLAGS = frozenset('''
cri-containerd debug experimental help icc init ip-forward ip-masq ip6tables iptables ipv6
live-restore no-new-privileges raw-logs rootless selinux-enabled tls tlsverify
userland-proxy validate version
'''.split())
# Keys dockerd merges from both places instead of refusing (skipDuplicates).
SKIP_DUPLICATES = frozenset(['runtimes'])
# Flags that are not daemon.json directives.
NOT_DIRECTIVES = frozenset(['config-file', 'help', 'version', 'validate'])

# ---- dockerd command-line flags ---------------------------------------------


class FlagUse:
    """One dockerd flag found in a unit or environment file."""

    def __init__(self, flag: str, value: str | None, source: str, line: int) -> None:
        self.flag = flag
        self.value = value
        self.source = source
        self.line = line

    @property
    def key(self) -> str | None:
        """The daemon.json key this flag sets (None for flags that are not directives)."""
        if self.flag in NOT_DIRECTIVES:
            return None
        return NAMED_FLAGS.get(self.flag, self.flag)

    def where(self) -> str:
        return '%s line %d' % (self.source, self.line)

    def as_dict(self) -> dict[str, t.Any]:
        return {'flag': '--' + self.flag, 'value': self.value, 'key': self.key,
                'source': self.source, 'line': self.line}

    def __repr__(self) -> str:
        return 'FlagUse(%r, %r, %r, %d)' % (self.flag, self.value, self.source, self.line)


def parse_flags(args: list[str], source: str = '', line: int = 0) -> list[FlagUse]:
    """dockerd flags in an argument list (arguments that are not flags, such
    as the binary or expanded $VARIABLES, are skipped)."""
    found: list[FlagUse] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg.startswith('--') and len(arg) > 2:
            name, eq, value = arg[2:].partition('=')
            if not eq:
                value = None
                if name not in BOOL_FLAGS and i < len(args) and not args[i].startswith('-'):
                    value = args[i]
                    i += 1
            found.append(FlagUse(name, value, source, line))
        elif arg.startswith('-') and len(arg) > 1 and arg[1] != '-':
            letters = arg[1:]
            # -Ds: booleans may be grouped; the first letter taking a value ends the group.
            for pos, letter in enumerate(letters):
                name = SHORT_FLAGS.get(letter)
                if name is None:
                    break
                if name in BOOL_FLAGS:
                    found.append(FlagUse(name, None, source, line))
                    continue
                value = letters[pos + 1:].lstrip('=') or None
                if value is None and i < len(args) and not args[i].startswith('-'):
                    value = args[i]
                    i += 1
                found.append(FlagUse(name, value, source, line))
                break
    return found


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=False)
    except ValueError:
        return text.split()


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined, comments dropped."""
    lines: list[tuple[int, str]] = []
    pending = ''
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped[0] in '#;'):
            continue
        if not pending:
            start = number
        if stripped.endswith('\\'):
            pending += stripped[:-1] + ' '
            continue
        lines.append((start, pending + stripped))
        pending = ''
    if pending:
        lines.append((start, pending))
    return lines


def _assignment_flags(assignment: str, source: str, line: int) -> list[FlagUse]:
    """Flags in the value of NAME=VALUE (an environment variable that a unit
    passes to dockerd, like DOCKER_OPTS)."""
    name, eq, value = assignment.partition('=')
    if not eq or not re.match(r'^[A-Za-z_][A-Za-z0-9_]*$', name.strip()):
        return []
    return parse_flags(_split(value), source, line)


def scan_unit(text: str, source: str, exec_start: list[FlagUse] | None = None,
              full_unit: bool = True) -> tuple[list[FlagUse], list[FlagUse]]:
    """dockerd flags of a systemd unit or drop-in: (ExecStart flags,
    Environment= flags). An empty ``ExecStart=`` resets the earlier ones, and
    a full unit replaces an earlier unit of the same name."""
    current = [] if full_unit or exec_start is None else list(exec_start)
    env: list[FlagUse] = []
    section = ''
    for number, line in _logical_lines(text):
        if line.startswith('[') and line.endswith(']'):
            section = line[1:-1]
            continue
        if section != 'Service':
            continue
        key, eq, value = line.partition('=')
        if not eq:
            continue
        key = key.strip()
        value = value.strip()
        if key == 'ExecStart':
            if not value:
                current = []
                continue
            args = _split(value)
            if args:
                args[0] = args[0].lstrip('-@:+!')
            if args and 'dockerd' in os.path.basename(args[0]):
                current.extend(parse_flags(args[1:], source, number))
        elif key == 'Environment':
            for assignment in _split(value):
                env.extend(_assignment_flags(assignment, source, number))
    return current, env


def scan_env(text: str, source: str) -> list[FlagUse]:
    """dockerd flags in a shell-style environment file (/etc/default/docker,
    /etc/sysconfig/docker*)."""
    found: list[FlagUse] = []
    for number, line in _logical_lines(text):
        for word in _split(line):
            if word != 'export':
                found.extend(_assignment_flags(word, source, number))
    return found


def expand_sources(patterns: list[str]) -> list[str]:
    files: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        for path in matches:
            if os.path.isfile(path) and path not in files and not path.endswith(('~', '.rpmsave', '.rpmnew', '.dpkg-old', '.dpkg-dist')):
                files.append(path)
    return files


def scan_flag_sources(files: dict[str, str]) -> list[FlagUse]:
    """dockerd flags in the given files (path -> text, in order). Unit files
    (a [Service] section) give ExecStart/Environment flags, others are read
    as environment files."""
    exec_start: list[FlagUse] = []
    env: list[FlagUse] = []
    for path, text in files.items():
        if re.search(r'^\s*\[Service\]\s*$', text, re.MULTILINE):
            exec_start, unit_env = scan_unit(text, path, exec_start, full_unit=path.endswith('.service'))
            env.extend(unit_env)
        else:
            env.extend(scan_env(text, path))
    return exec_start + env


def find_conflicts(config: dict[str, t.Any], uses: list[FlagUse]) -> list[FlagUse]:
    """Flags that set a key the configuration sets too (dockerd refuses to
    start with a directive in both places)."""
    return [use for use in uses
            if use.key and use.key in config and use.key not in SKIP_DUPLICATES]


def conflict_message(path: str, conflicts: list[FlagUse]) -> str:
    parts = ['%s (flag --%s in %s)' % (use.key, use.flag, use.where()) for use in conflicts]
    return ('%s would set %s, which dockerd is also given as command-line flag%s; dockerd refuses '
            'to start when a directive is in both places. Remove the flag from that file (then run '
            'systemctl daemon-reload) or leave the key out of daemon.json; nothing was changed'
            % (path, ', '.join(parts), 's' if len(parts) > 1 else ''))


def read_sources(patterns: list[str], warnings: list[str] | None = None) -> dict[str, str]:
    """The text of every unit or environment file the patterns name (see
    expand_sources). A file beyond MAX_SOURCE_BYTES is skipped with a
    warning; bytes that are not UTF-8 are read as U+FFFD (flags are ASCII)."""
    files: dict[str, str] = {}
    for path in expand_sources(patterns):
        data = read_bounded(path, MAX_SOURCE_BYTES)
        if data is None:
            continue
        if len(data) > MAX_SOURCE_BYTES:
            if warnings is not None:
                warnings.append('%s is more than %d bytes, not a unit or environment file: not scanned for dockerd '
                                'flags' % (path, MAX_SOURCE_BYTES))
            continue
        files[path] = data.decode('utf-8', errors='replace')
    return files


def read_flags(patterns: list[str], warnings: list[str] | None = None) -> list[FlagUse]:
    """The dockerd flags set in the unit and environment files the patterns name (read_sources, then
    scan_flag_sources)."""
    return scan_flag_sources(read_sources(patterns, warnings))
