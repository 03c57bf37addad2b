# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""daemon.json handling, private to hostprep.container_host.

Read, merge and compare the Docker daemon configuration as data; check the
storage keys against the engine and the filesystem under the data root; find
keys that dockerd is also given as command-line flags (it refuses to start
then). Everything but ``manage()`` is a pure function.
"""

from __future__ import annotations

import contextlib
import copy
import glob
import json
import os
import re
import shlex
import shutil
import stat
import tempfile
import time
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    Changes,
    Differences,
    HostprepError,
    atomic_write,
    changes_of,
)
from ansible_collections.hostprep.container_host.plugins.module_utils import _engine

DEFAULT_PATH = '/etc/docker/daemon.json'
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

# ---- what dockerd accepts ---------------------------------------------------

# Keys Engine 20.10.24 accepts in daemon.json, measured: dockerd was started
# with a file holding candidate keys and reported the ones it does not know
# (tests/unit/fixtures/docker/dockerd_20.10.24_unknown_keys_error.txt).
# Engines from 23.0 on check their own keys with ``dockerd --validate``.
KNOWN_KEYS_20_10 = frozenset('''
add-runtime allow-nondistributable-artifacts api-cors-header authorization-plugin
authorization-plugins bip bridge builder cgroup-parent cluster-advertise cluster-store
cluster-store-opts containerd containerd-namespace containerd-plugins-namespace
cpu-rt-period cpu-rt-runtime cri-containerd data-root debug default-address-pool
default-address-pools default-cgroupns-mode default-gateway default-gateway-v6
default-ipc-mode default-runtime default-shm-size default-ulimit default-ulimits
deprecated-key-path dns dns-opt dns-opts dns-search exec-opt exec-opts exec-root
experimental features fixed-cidr fixed-cidr-v6 graph group host host-gateway-ip hosts
icc init init-path insecure-registries insecure-registry ip ip-forward ip-masq
ip6tables iptables ipv6 label labels live-restore log-driver log-level log-opt log-opts
max-concurrent-downloads max-concurrent-uploads max-download-attempts metrics-addr mtu
network-control-plane-mtu network-diagnostic-port no-new-privileges node-generic-resource
node-generic-resources oom-score-adjust pidfile raw-logs registry-mirror registry-mirrors
restart rootless runtimes seccomp-profile selinux-enabled shutdown-timeout storage-driver
storage-opt storage-opts swarm-default-advertise-addr tls tlscacert tlscert tlskey
tlsverify userland-proxy userland-proxy-path userns-remap
'''.split())

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

# storage-opts each graph driver knows (moby daemon/graphdriver/*).
DRIVER_OPTIONS: dict[str, frozenset[str] | None] = {
    'overlay2': frozenset(['overlay2.size', 'overlay2.override_kernel_check']),
    'overlay': frozenset(['overlay.override_kernel_check']),
    'btrfs': frozenset(['btrfs.min_space']),
    'zfs': frozenset(['zfs.fsname']),
    'vfs': frozenset(['size']),
    'devicemapper': frozenset('''
        dm.basesize dm.blkdiscard dm.blocksize dm.datadev dm.directlvm_device
        dm.directlvm_device_force dm.fs dm.libdm_log_level dm.loopdatasize
        dm.loopmetadatasize dm.metadatadev dm.min_free_space dm.mkfsarg dm.mountopt
        dm.override_udev_sync_check dm.thinp_autoextend_percent
        dm.thinp_autoextend_threshold dm.thinp_metapercent dm.thinp_percent
        dm.thinpooldev dm.use_deferred_deletion dm.use_deferred_removal
        dm.xfs_nospace_max_retries'''.split()),
    'aufs': None,
    'fuse-overlayfs': None,
}
OPTION_PREFIX = {'overlay2': 'overlay2.', 'overlay': 'overlay.', 'btrfs': 'btrfs.', 'zfs': 'zfs.',
                 'devicemapper': 'dm.', 'aufs': 'aufs.', 'fuse-overlayfs': 'fuse-overlayfs.'}
SIZE_OPTIONS = frozenset(['overlay2.size', 'size', 'dm.basesize', 'dm.loopdatasize',
                          'dm.loopmetadatasize', 'btrfs.min_space'])
# docker/go-units RAMInBytes
_SIZE_RE = re.compile(r'^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$')


class ConfigProblem(HostprepError):
    """daemon.json cannot be used as it is."""


# ---- the file itself ----------------------------------------------------------

#: daemon.json files are a few KiB; a bigger file is not one, and would be
#: read whole into the result and the diff
MAX_CONFIG_BYTES = 1024 * 1024
#: unit and environment files scanned for dockerd flags are a few KiB too
MAX_SOURCE_BYTES = 1024 * 1024


def config_file(path: str) -> tuple[str, os.stat_result | None]:
    """The file path names, following symbolic links (a write goes through
    them, keeping them), and its stat (None when it does not exist yet).

    Refuses, naming path, what cannot be a daemon configuration file: a
    relative path, a directory, a dangling link or a link loop, something
    that is not a regular file (a FIFO or a device would block or never end),
    a file with other hard links (an atomic write would leave them with the
    old content) and a file beyond MAX_CONFIG_BYTES."""
    if not path or not os.path.isabs(path):
        raise ConfigProblem('path %r is not an absolute path; give the full path of the daemon configuration file, '
                            'for example /etc/docker/daemon.json' % (path,), path=path)
    if path.endswith('/'):
        raise ConfigProblem('path %s ends in /, so it names a directory; give the path of the daemon configuration '
                            'file' % path, path=path)
    real = os.path.realpath(path)
    link = ''
    try:
        if os.path.islink(path):
            link = ' (a symbolic link to %s)' % real
            info = os.stat(path)
        else:
            info = os.lstat(path)
    except FileNotFoundError:
        if link:
            raise ConfigProblem('path %s is a symbolic link to %s, which does not exist; fix the link or remove it '
                                '(the module writes through a link and keeps it); nothing was changed'
                                % (path, real), path=path, link_target=real) from None
        return path, None
    except NotADirectoryError:
        raise ConfigProblem('path %s cannot exist: a directory above it is a file; give the path of the daemon '
                            'configuration file' % path, path=path) from None
    except OSError as exc:
        raise ConfigProblem('path %s%s cannot be followed: %s; fix the link; nothing was changed'
                            % (path, link, exc.strerror), path=path) from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigProblem('path %s%s is a directory; give the path of the daemon configuration file' % (path, link),
                            path=path)
    if not stat.S_ISREG(info.st_mode):
        raise ConfigProblem('path %s%s is not a regular file (it is a %s); give the path of the daemon configuration '
                            'file' % (path, link, _file_kind(info.st_mode)), path=path)
    if info.st_nlink > 1:
        raise ConfigProblem('%s%s has %d hard links: an atomic write replaces one name and leaves the others with '
                            'the old content; make it a single file (or a symbolic link) first; nothing was changed'
                            % (path, link, info.st_nlink), path=path)
    if info.st_size > MAX_CONFIG_BYTES:
        raise ConfigProblem('%s%s is %d bytes: daemon.json files are a few KiB and this module reads at most %d; '
                            'check that path names the daemon configuration file; nothing was read or changed'
                            % (path, link, info.st_size, MAX_CONFIG_BYTES), path=path, size=info.st_size)
    return (real if link else path), info


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, 'FIFO'), (stat.S_ISCHR, 'character device'), (stat.S_ISBLK, 'block device'),
                       (stat.S_ISSOCK, 'socket')):
        if test(mode):
            return name
    return 'special file'


def read_bounded(path: str, limit: int) -> bytes | None:
    """At most limit + 1 bytes of a regular file (None when it does not exist)."""
    try:
        with open(path, 'rb') as handle:
            return handle.read(limit + 1)
    except FileNotFoundError:
        return None


def read_config(path: str) -> tuple[str, str | None]:
    """(the file a write goes to, its text or None when there is none yet):
    config_file's refusals, and a file that grew past the limit or is not
    UTF-8 is refused too, naming path."""
    real, info = config_file(path)
    if info is None:
        return real, None
    data = read_bounded(real, MAX_CONFIG_BYTES)
    if data is None:
        return real, None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigProblem('%s is more than %d bytes: daemon.json files are a few KiB; check that path names the '
                            'daemon configuration file; nothing was changed' % (path, MAX_CONFIG_BYTES), path=path)
    try:
        return real, data.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise ConfigProblem('%s is not UTF-8 text (byte 0x%02x at offset %d); dockerd reads daemon.json as UTF-8 '
                            'JSON: fix or remove the file, nothing was changed'
                            % (path, data[exc.start], exc.start), path=path) from None


def write_config(module: t.Any, path: str, real: str, text: str, backup: bool, changes: Changes) -> str | None:
    """Write text to real (the file path names, through a symbolic link),
    atomically, with an optional backup beside path. A failure undoes what it
    made (the backup, new directories) and says whether the old file is still
    byte for byte as it was. Returns the backup file."""
    before = read_bounded(real, MAX_CONFIG_BYTES)
    missing = []
    parent = os.path.dirname(real)
    while parent and not os.path.lexists(parent):
        missing.insert(0, parent)
        parent = os.path.dirname(parent)
    backup_file = None
    try:
        for directory in missing:
            os.mkdir(directory, 0o755)
            changes.made('created directory %s' % directory)
        if backup and before is not None:
            backup_file = _backup(real, '%s.%s.%s' % (path, os.getpid(), time.strftime('%Y-%m-%d@%H:%M:%S~')))
            changes.made('made the backup %s' % backup_file)
        atomic_write(module, real, text, mode=0o644)
    except Exception as exc:  # pylint: disable=broad-except
        reason = _reason(exc)
        if backup_file:
            _undo(changes, lambda: os.unlink(backup_file), 'removed the backup %s' % backup_file)
        for directory in reversed(missing):
            _undo(changes, lambda d=directory: os.rmdir(d), 'removed directory %s' % directory)
        now = read_bounded(real, MAX_CONFIG_BYTES)
        if before is None:
            state = 'was not created' if now is None else 'was left behind: check it'
        else:
            state = 'is as it was, byte for byte' if now == before else 'may have changed: check it and its backup'
        changes.fully_restored = now == before and len(changes.undone) == len(changes.done)
        raise HostprepError('could not write %s%s: %s; %s %s' % (
            path, ' (through the link to %s)' % real if real != path else '', reason, path, state),
            path=path) from exc
    changes.made('wrote %s' % (real if real == path else '%s (through the link %s)' % (real, path)))
    return backup_file


def _backup(real: str, backup_file: str) -> str:
    """A copy of real with its mode, times and owner (not its chattr flags: an
    immutable copy could not be removed when the write fails); a partial copy
    (a full filesystem) is removed."""
    try:
        shutil.copy2(real, backup_file)
        info = os.stat(real)
        os.chown(backup_file, info.st_uid, info.st_gid)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(backup_file)
        raise
    return backup_file


def _reason(exc: BaseException) -> str:
    """What went wrong, from an OSError or from the bare Exception ansible's
    atomic_move raises with the OSError as its cause."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    cause = exc.__cause__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return str(exc) or type(exc).__name__


def _undo(changes: Changes, action: t.Callable[[], None], what: str) -> None:
    try:
        action()
    except OSError:
        return
    changes.restored(what)


# ---- reading and comparing ----------------------------------------------------

def parse_config(text: str | None, path: str,
                 refuse_duplicates: bool = False) -> tuple[dict[str, t.Any] | None, list[str]]:
    """The file's data (None when it does not exist) and warnings.

    An empty file counts as no keys (dockerd itself refuses it: "EOF").
    Anything that is not a JSON object is refused, with the line and column
    where the JSON breaks, and so are NaN and Infinity (dockerd's JSON has
    none) and nesting too deep to read. A key set twice in one object is a
    warning (dockerd uses the last value), or a refusal with
    refuse_duplicates (a rewrite would silently drop the other values)."""
    warnings: list[str] = []
    if text is None:
        return None, warnings
    if not text.strip():
        warnings.append('%s is empty; dockerd refuses an empty file, it will be written as a JSON object' % path)
        return {}, warnings
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, t.Any]]) -> dict[str, t.Any]:
        seen: dict[str, t.Any] = {}
        for key, value in items:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    def no_constant(name: str) -> t.Any:
        raise ValueError('%s is not JSON (dockerd refuses it)' % name)

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=no_constant)
    except ValueError as exc:
        line = getattr(exc, 'lineno', None)
        col = getattr(exc, 'colno', None)
        where = ' at line %s column %s' % (line, col) if line else ''
        raise ConfigProblem(
            '%s is not valid JSON%s: %s; fix or remove the file, nothing was changed'
            % (path, where, getattr(exc, 'msg', str(exc))), path=path, line=line, column=col) from None
    except RecursionError:
        raise ConfigProblem('%s nests lists or objects too deeply to be read; it is no daemon configuration: fix or '
                            'remove the file, nothing was changed' % path, path=path) from None
    if not isinstance(data, dict):
        raise ConfigProblem('%s holds a JSON %s, not an object of daemon settings; fix or remove the '
                            'file, nothing was changed' % (path, _json_kind(data)), path=path)
    if duplicates:
        keys = ', '.join(sorted(set(duplicates)))
        if refuse_duplicates:
            raise ConfigProblem('%s sets %s more than once: dockerd uses the last value, and rewriting the file would '
                                'silently drop the others; remove the duplicates so the file says what dockerd does, '
                                'nothing was changed' % (path, keys), path=path, duplicates=sorted(set(duplicates)))
        warnings.append('%s sets %s more than once; dockerd uses the last value, and so does this module' % (path, keys))
    return data, warnings


def _json_kind(data: t.Any) -> str:
    """The JSON name of a value's type (list, string, number, ...)."""
    if isinstance(data, list):
        return 'list'
    if isinstance(data, str):
        return 'string'
    if isinstance(data, bool):
        return 'boolean'
    if data is None:
        return 'null'
    return 'number'


def canonical(value: t.Any) -> str:
    """JSON text that is equal for equal data (key order and whitespace do
    not count, but true and 1 differ, as they do for dockerd)."""
    return json.dumps(value, sort_keys=True, separators=(',', ':'), ensure_ascii=False)


def same(a: t.Any, b: t.Any) -> bool:
    return canonical(a) == canonical(b)


def merge(current: dict[str, t.Any], wanted: dict[str, t.Any], recursive: bool = True) -> dict[str, t.Any]:
    """current with wanted's keys set; with recursive, objects are merged key
    by key (lists and scalars are always replaced whole)."""
    result = copy.deepcopy(current)
    for key, value in wanted.items():
        if recursive and isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value, recursive=True)
        else:
            result[key] = copy.deepcopy(value)
    return result


def remove(current: dict[str, t.Any], config: dict[str, t.Any] | None,
           keys: list[str] | None) -> dict[str, t.Any]:
    """current without the given keys, whatever their values. In config, a
    non-empty object value names keys inside that object instead."""
    result = copy.deepcopy(current)
    for key in keys or []:
        result.pop(key, None)
    for key, value in (config or {}).items():
        if key not in result:
            continue
        if isinstance(value, dict) and value and isinstance(result[key], dict):
            result[key] = remove(result[key], value, None)
        else:
            del result[key]
    return result


def render(data: dict[str, t.Any]) -> str:
    """daemon.json text; NaN and Infinity raise ValueError (dockerd refuses them)."""
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + '\n'


def unknown_keys(config: dict[str, t.Any]) -> list[str]:
    """Top-level keys Engine 20.10 does not accept."""
    return sorted(key for key in config if key not in KNOWN_KEYS_20_10)


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


# ---- storage keys -------------------------------------------------------------

class Probe:
    """What storage checks need to know about the host (tests pass their own)."""

    def mount(self, path: str) -> dict[str, t.Any]:
        """findmnt facts of the filesystem holding path."""
        raise NotImplementedError

    def dtype(self, path: str) -> bool:
        """Whether that filesystem fills in d_type."""
        raise NotImplementedError

    def is_block(self, path: str) -> bool:
        """Whether path is a block device."""
        raise NotImplementedError


def parse_storage_opts(value: t.Any) -> tuple[list[tuple[str, str]], list[str]]:
    """[(lowercased key, value)] from storage-opts, and problems."""
    if value is None:
        return [], []
    if not isinstance(value, list):
        return [], ['storage-opts must be a list of "key=value" strings, not %s' % type(value).__name__]
    opts = []
    problems = []
    for item in value:
        if not isinstance(item, str) or '=' not in item:
            problems.append('storage-opts entry %r is not a "key=value" string' % (item,))
            continue
        key, dummy, val = item.partition('=')
        opts.append((key.strip().lower(), val.strip()))
    return opts, problems


def driver_of_option(key: str) -> str | None:
    if key == 'size':
        return 'vfs'
    for driver, prefix in OPTION_PREFIX.items():
        if key.startswith(prefix):
            return driver
    return None


def data_root_of(config: dict[str, t.Any], flags: list[FlagUse] | None = None) -> str:
    for key in ('data-root', 'graph'):
        if isinstance(config.get(key), str) and config[key]:
            return config[key]
    for use in flags or []:
        if use.flag in ('data-root', 'graph') and use.value:
            return use.value
    return _engine.DEFAULT_DATA_ROOT


def _where(mount: dict[str, t.Any]) -> str:
    return '%s (%s mounted at %s)' % (mount.get('fstype'), mount.get('source'), mount.get('target'))


def check_storage(config: dict[str, t.Any], version: _engine.Version, probe: Probe,
                  data_root: str) -> tuple[list[str], list[str]]:
    """Problems (refuse) and warnings for the storage keys of config on an
    engine of this version, with the data root on the filesystem probe sees."""
    problems: list[str] = []
    warnings: list[str] = []
    driver = config.get('storage-driver')
    opts, opt_problems = parse_storage_opts(config.get('storage-opts'))
    problems.extend(opt_problems)
    if driver is not None and not isinstance(driver, str):
        return problems + ['storage-driver must be a string, not %s' % type(driver).__name__], warnings
    if not driver and not opts:
        return problems, warnings
    vstr = _engine.version_string(version)
    containerd_store = _engine.uses_containerd_store(version, config)
    drivers = _engine.storage_drivers(version, containerd_store)

    if driver:
        if driver not in drivers:
            if containerd_store and driver == 'devicemapper':
                problems.append('storage-driver devicemapper is not a containerd snapshotter; with the containerd '
                                'image store use storage-driver devmapper with containerd\'s devmapper snapshotter '
                                '(see hostprep.container_host.containerd_snapshotter), or overlay2 on XFS')
            elif driver in _engine.GRAPH_DRIVERS_20_10 and not containerd_store:
                problems.append('storage-driver %s is not available on Engine %s: %s'
                                % (driver, vstr, _engine.removed_driver_advice(driver, version)))
            else:
                problems.append('storage-driver %s is unknown to Engine %s; it has: %s'
                                % (driver, vstr, ', '.join(sorted(drivers))))
            return problems, warnings
        if drivers[driver] == 'deprecated':
            warnings.append('storage-driver %s is deprecated on Engine %s and will be removed; plan a move '
                            'to overlay2' % (driver, vstr))
    if containerd_store:
        if opts:
            warnings.append('storage-opts are not used by containerd snapshotters (the engine uses the containerd '
                            'image store); configure the snapshotter in containerd\'s config instead')
        if driver == 'btrfs':
            root = os.path.join(_engine.CONTAINERD_ROOT, 'io.containerd.snapshotter.v1.btrfs')
            mount = probe.mount(root)
            if mount.get('fstype') != 'btrfs':
                problems.append('storage-driver btrfs needs containerd\'s snapshotter root %s on btrfs, but it is on '
                                '%s; mount a btrfs filesystem there first' % (root, _where(mount)))
        return problems, warnings

    effective = driver
    if not effective:
        owners = sorted({driver_of_option(key) or '?' for key, dummy in opts})
        if len(owners) != 1 or owners[0] == '?':
            problems.append('storage-opts %s do not all belong to one storage driver; set storage-driver and give '
                            'only its options' % ', '.join(key for key, dummy in opts))
            return problems, warnings
        effective = owners[0]
        warnings.append('storage-opts are for %s but storage-driver is not set; dockerd applies them to the driver '
                        'it picks itself, so set storage-driver %s' % (effective, effective))

    known = DRIVER_OPTIONS.get(effective)
    prefix = OPTION_PREFIX.get(effective)
    for key, value in opts:
        owner = driver_of_option(key)
        if owner and owner != effective:
            problems.append('storage-opts entry %s belongs to %s, not to storage-driver %s; remove it'
                            % (key, owner, effective))
        elif known is not None and key not in known:
            problems.append('storage-driver %s has no option %s; it knows: %s'
                            % (effective, key, ', '.join(sorted(known))))
        elif known is None and prefix and not key.startswith(prefix):
            problems.append('storage-opts entry %s is not an option of storage-driver %s' % (key, effective))
        elif key in SIZE_OPTIONS and not _SIZE_RE.match(value):
            problems.append('storage-opts %s=%s is not a size (examples: 10G, 512M, 20GB)' % (key, value))
    if problems:
        return problems, warnings

    values = dict(opts)
    if effective in ('btrfs', 'zfs'):
        mount = probe.mount(data_root)
        if mount.get('fstype') != effective:
            problems.append('storage-driver %s needs the data root %s on %s, but it is on %s; put a %s filesystem '
                            'there first (for btrfs: hostprep.container_host.btrfs_data_root) or choose another '
                            'driver' % (effective, data_root, effective, _where(mount), effective))
    elif effective in ('overlay2', 'overlay'):
        mount = probe.mount(data_root)
        if mount.get('fstype') in _engine.OVERLAY2_BAD_BACKING:
            problems.append('storage-driver %s cannot use the data root %s on %s; put the data root on xfs or ext4'
                            % (effective, data_root, _where(mount)))
        elif not probe.dtype(data_root):
            problems.append('storage-driver %s needs d_type support, and the filesystem under the data root %s, '
                            '%s, has none (XFS made with ftype=0); reformat it with mkfs.xfs -n ftype=1'
                            % (effective, data_root, _where(mount)))
        if 'overlay2.size' in values and not _engine.has_project_quota(mount):
            problems.append('storage-opts overlay2.size needs the data root %s on XFS mounted with project quota '
                            '(pquota), but it is on %s with options %s; mount an XFS filesystem with -o pquota '
                            'there or drop overlay2.size'
                            % (data_root, _where(mount), ','.join(mount.get('options') or [])))
    elif effective == 'vfs' and 'size' in values:
        mount = probe.mount(data_root)
        if not _engine.has_project_quota(mount):
            problems.append('storage-opts size for vfs needs the data root %s on XFS mounted with project quota '
                            '(pquota), but it is on %s; drop size or mount XFS with -o pquota there'
                            % (data_root, _where(mount)))
    elif effective == 'devicemapper':
        for key in ('dm.thinpooldev', 'dm.directlvm_device', 'dm.datadev', 'dm.metadatadev'):
            if key not in values:
                continue
            device = values[key]
            if key == 'dm.thinpooldev' and not device.startswith('/'):
                device = '/dev/mapper/' + device
            if not probe.is_block(device):
                what = ('an existing thin pool under /dev/mapper; create it first (see '
                        'hostprep.container_host.lvm_thinpool)' if key == 'dm.thinpooldev'
                        else 'an existing block device')
                problems.append('storage-opts %s=%s: %s is not a block device; it must name %s'
                                % (key, values[key], device, what))
        if 'dm.thinpooldev' not in values and 'dm.directlvm_device' not in values:
            warnings.append('devicemapper without dm.thinpooldev or dm.directlvm_device runs in loop-lvm mode, '
                            'which is slow and not meant for production')
    return problems, warnings


# ---- the module's work --------------------------------------------------------

class HostProbe(Probe):
    """The real host, for check_storage."""

    def __init__(self, module: t.Any) -> None:
        self.module = module

    def mount(self, path: str) -> dict[str, t.Any]:
        return _engine.mount_facts(self.module, path)

    def dtype(self, path: str) -> bool:
        return _engine.supports_dtype(path)

    def is_block(self, path: str) -> bool:
        return _engine.is_block_device(path)


def wanted_config(current: dict[str, t.Any], params: dict[str, t.Any]) -> dict[str, t.Any]:
    if params['state'] == 'present':
        return merge(current, params.get('config') or {}, recursive=params.get('recursive', True))
    return remove(current, params.get('config'), params.get('keys'))


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


#: the name _containerd.py imports
_read_sources = read_sources


def manage(module: t.Any) -> dict[str, t.Any]:
    """Compute, check and (outside check mode) write daemon.json."""
    params = module.params
    path = params['path']
    warnings: list[str] = []
    if params['state'] == 'present' and params.get('keys'):
        raise HostprepError('keys is only used with state=absent; to set keys give them in config')
    real, text = read_config(path)
    current, parse_warnings = parse_config(text, path, refuse_duplicates=True)
    warnings.extend(parse_warnings)
    before = current if current is not None else {}
    after = wanted_config(before, params)
    try:
        render(after)
    except (TypeError, ValueError) as exc:
        raise HostprepError('config cannot be written as JSON (dockerd reads JSON without NaN or Infinity): %s; '
                            'nothing was changed' % exc) from exc

    keys = Differences()
    for key in list(before) + [key for key in after if key not in before]:
        keys.add(key, canonical(before[key]) if key in before else None,
                 canonical(after[key]) if key in after else None)
    # Written when the data differs, when present creates a missing file, and
    # when the file is empty (dockerd refuses an empty file).
    changed = (keys.changed
               or (current is None and params['state'] == 'present')
               or (text is not None and not text.strip()))

    flag_uses = scan_flag_sources(read_sources(params['flags_sources'], warnings))
    conflicts = find_conflicts(after, flag_uses)
    engine = None
    if changed:
        if conflicts and params['state'] == 'present':
            raise HostprepError(conflict_message(path, conflicts),
                                conflicts=[use.as_dict() for use in conflicts])
        if params['validate']:
            engine = _engine.engine_facts(module, params.get('dockerd_path'))
            if engine is None:
                raise HostprepError('no dockerd found to validate %s against; install the Docker engine first, '
                                    'set dockerd_path, or set validate=false' % path)
            problems, storage_warnings = check_storage(after, engine.version, HostProbe(module),
                                                       data_root_of(after, flag_uses))
            warnings.extend(storage_warnings)
            if engine.has_validate:
                error = _validate_with_dockerd(module, engine, path, after)
                if error:
                    problems.append('dockerd %s --validate refuses the result: %s'
                                    % (_engine.version_string(engine.version), error))
            elif engine.version[:2] == (20, 10):
                unknown = unknown_keys(after)
                if unknown:
                    problems.append('Engine %s does not know the key%s %s; check the spelling (the keys are '
                                    'listed in the dockerd reference)' % (_engine.version_string(engine.version),
                                                                          's' if len(unknown) > 1 else '',
                                                                          ', '.join(unknown)))
            if problems:
                raise HostprepError('%s not changed: %s' % (path, '; '.join(problems)),
                                    problems=problems, engine=engine.as_dict())
    for use in conflicts:
        if not changed or params['state'] == 'absent':
            warnings.append('%s is also set as dockerd flag --%s in %s; dockerd refuses to start until one of '
                            'them goes' % (use.key, use.flag, use.where()))
    config_file_flags = [use for use in flag_uses if use.flag == 'config-file' and use.value]
    for use in config_file_flags:
        if os.path.abspath(use.value) != os.path.abspath(path):
            warnings.append('dockerd is started with --config-file %s (%s), not %s'
                            % (use.value, use.where(), path))

    backup_file = None
    if changed and not module.check_mode:
        backup_file = write_config(module, path, real, render(after), params['backup'], changes_of(module))

    result: dict[str, t.Any] = {
        'changed': changed,
        'restart_required': changed,
        'path': path,
        'config': after,
        'backup_file': backup_file,
        'changed_keys': keys.changed_items(),
        'diff': {'before': before if current is not None else {}, 'after': after,
                 'before_header': path, 'after_header': path},
        'flags': [use.as_dict() for use in flag_uses],
    }
    if engine is not None:
        result['engine'] = engine.as_dict()
    for warning in warnings:
        module.warn(warning)
    return result


def _validate_with_dockerd(module: t.Any, engine: _engine.EngineFacts, path: str,
                           config: dict[str, t.Any]) -> str | None:
    fd, tmp = tempfile.mkstemp(prefix='hostprep-daemon-', suffix='.json')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(render(config))
        return _engine.validate_config_file(module, engine, tmp)
    finally:
        os.unlink(tmp)
