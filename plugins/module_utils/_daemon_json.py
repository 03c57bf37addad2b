# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""daemon.json as a file and as data, private to hostprep.container_host.

Read the file safely (what a path names, through symbolic links, bounded in
size, UTF-8), parse it (refusing what dockerd cannot read), merge and compare
it as data, and write it atomically through a symbolic link, keeping the
link, undoing what a failed write made. Everything but the reading and
writing functions is pure.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import stat
import time
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    Changes,
    HostprepError,
    atomic_write,
)

DEFAULT_PATH = '/etc/docker/daemon.json'

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


class ConfigProblem(HostprepError):
    """daemon.json cannot be used as it is."""


# ---- the file itself ----------------------------------------------------------

#: daemon.json files are a few KiB; a bigger file is not one, and would be
#: read whole into the result and the diff
MAX_CONFIG_BYTES = 1024 * 1024


def config_file(path: str, option: str = 'path', writing: bool = True) -> tuple[str, os.stat_result | None]:
    """The file path names, following symbolic links (a write goes through
    them, keeping them), and its stat (None when it does not exist yet).

    Refuses, naming the module's option and path, what cannot be a daemon
    configuration file: a relative path, a directory, a link loop, something
    that is not a regular file (a FIFO or a device would block or never end)
    and a file beyond MAX_CONFIG_BYTES. For writing, a dangling link and a
    file with other hard links (an atomic write would leave them with the
    old content) are refused too; for reading only, a dangling link is no
    file, as it is for dockerd."""
    if not path or not os.path.isabs(path):
        raise ConfigProblem('%s %r is not an absolute path; give the full path of the daemon configuration file, '
                            'for example /etc/docker/daemon.json' % (option, path), path=path)
    if path.endswith('/'):
        raise ConfigProblem('%s %s ends in /, so it names a directory; give the path of the daemon configuration '
                            'file' % (option, path), path=path)
    real = os.path.realpath(path)
    link = ''
    try:
        if os.path.islink(path):
            link = ' (a symbolic link to %s)' % real
            info = os.stat(path)
        else:
            info = os.lstat(path)
    except FileNotFoundError:
        if link and writing:
            raise ConfigProblem('%s %s is a symbolic link to %s, which does not exist; fix the link or remove it '
                                '(the module writes through a link and keeps it); nothing was changed'
                                % (option, path, real), path=path, link_target=real) from None
        return path, None
    except NotADirectoryError:
        raise ConfigProblem('%s %s cannot exist: a directory above it is a file; give the path of the daemon '
                            'configuration file' % (option, path), path=path) from None
    except OSError as exc:
        if not link:
            raise ConfigProblem('%s %s cannot be read: %s; nothing was changed' % (option, path, exc.strerror),
                                path=path) from None
        raise ConfigProblem('%s %s is a symbolic link to %s that cannot be followed: %s; fix the link; nothing was '
                            'changed' % (option, path, os.readlink(path), exc.strerror), path=path) from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigProblem('%s %s%s is a directory; give the path of the daemon configuration file'
                            % (option, path, link), path=path)
    if not stat.S_ISREG(info.st_mode):
        raise ConfigProblem('%s %s%s is not a regular file (it is a %s); give the path of the daemon configuration '
                            'file' % (option, path, link, _file_kind(info.st_mode)), path=path)
    if writing and info.st_nlink > 1:
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


def read_config(path: str, option: str = 'path', writing: bool = True) -> tuple[str, str | None]:
    """(the file a write goes to, its text or None when there is none yet):
    config_file's refusals, and a file that grew past the limit or is not
    UTF-8 is refused too, naming path. The text is as stored (line breaks
    not translated)."""
    real, info = config_file(path, option, writing)
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


def config_text(path: str, option: str = 'daemon_config') -> str | None:
    """daemon.json's text for a module that only reads it (None: no file): read_config's refusals as
    ConfigProblem naming the option, but a file with other hard links is fine and a dangling link is no file."""
    return read_config(path, option, writing=False)[1]


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
        reason = failure_reason(exc)
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


def failure_reason(exc: BaseException) -> str:
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
