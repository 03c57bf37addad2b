# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The records of the fleet report (action plugin hostprep.container_host.fleet_report),
on the controller; private to this collection.

``record``: check one host's result ({"result": ..., "limits": {...}}),
compare it with the limits, store it as ``DIR/runs/HOST/TIMESTAMP.json``
(keeping the last KEEP runs of the host) and return the violations. A result
that cannot be used (a string where a number belongs, a missing key, another
shape, not JSON) is stored as it came, its limits are not checked, and the
answer says what is wrong with it. A host whose benchmark failed sends
``failed`` (the message) and an empty benchmark: it is a run, shown as failed.

``load_runs``: every usable run of every host, oldest first, and the run
files not used (not JSON, truncated, another shape, a link, in another host's
directory), each named: one host never stops the report. Records written by
the earlier ``roles/validate/files/fleet_report.py`` read the same.
``_fleet_view`` turns them into the report.

What a host sends is data, never a path or markup: host names become
directory names only through ``safe_name`` (collision-free, no '..', '/' or
NUL), timestamps only when they match ``STAMP_RE``; every file is created in a
directory opened without following links (``Dir``), under an unpredictable
temporary name and renamed atomically; every string is escaped where it is
written (``md`` for Markdown, ``esc`` for HTML and SVG).
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import html
import json
import math
import os
import re
import secrets
import stat
import typing as t
import unicodedata
import urllib.parse

from ansible_collections.hostprep.container_host.plugins.module_utils import _sizes as _SIZES

# A run's timestamp as the role writes it, and a run file's name.
STAMP_RE = re.compile(r'^\d{8}T\d{6}Z$')
RUN_RE = re.compile(r'^(\d{8}T\d{6}Z)(?:-([1-9]\d{0,5}))?\.json$')
# The largest run record read or stored: a count-1000 benchmark is below 2 MiB.
MAX_RECORD_BYTES = 16 * 1024 * 1024
# Host directory names longer than this keep a readable head and end in '~' and a SHA-256.
NAME_MAX = 120
# The largest magnitude of a figure the report reads.
MAX_FIGURE = 1e18
SAFE_BYTES = frozenset(b'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-')

# metric key -> (title, unit, scenario, field, statistic)
METRICS: list[dict[str, t.Any]] = [
    {'key': 'start_seconds', 'title': 'Start a container and run it to exit (oneshot)', 'unit': 's',
     'path': ('oneshot', 'seconds')},
    {'key': 'commit_seconds', 'title': 'Commit a container to an image', 'unit': 's',
     'path': ('commit', 'seconds')},
    {'key': 'detached_start_seconds', 'title': 'Start a detached container from a commit', 'unit': 's',
     'path': ('run_from_commit', 'seconds')},
    {'key': 'disk_per_container', 'title': 'Disk used per oneshot container (df after sync)', 'unit': 'B',
     'path': ('oneshot', 'fs_growth')},
    {'key': 'disk_per_commit', 'title': 'Disk used per commit (df after sync)', 'unit': 'B',
     'path': ('commit', 'fs_growth')},
    {'key': 'disk_per_detached_container', 'title': 'Disk used per detached container (df after sync)', 'unit': 'B',
     'path': ('run_from_commit', 'fs_growth')},
    {'key': 'data_per_container', 'title': 'Backend data per oneshot container (engine counters)', 'unit': 'B',
     'path': ('oneshot', 'data_growth')},
    {'key': 'metadata_per_container', 'title': 'Backend metadata per oneshot container (engine counters)', 'unit': 'B',
     'path': ('oneshot', 'metadata_growth')},
    {'key': 'memory_per_container', 'title': 'Memory per detached container (MemAvailable drop)', 'unit': 'B',
     'path': ('memory', 'mem_available_drop_per_container')},
]

# limit name -> (metric keys it bounds, unit)
LIMITS: dict[str, tuple[tuple[str, ...], str]] = {
    'max_start_seconds': (('start_seconds',), 's'),
    'max_detached_start_seconds': (('detached_start_seconds',), 's'),
    'max_commit_seconds': (('commit_seconds',), 's'),
    'max_disk_per_container': (('disk_per_container', 'disk_per_detached_container'), 'B'),
    'max_disk_per_commit': (('disk_per_commit',), 'B'),
    'max_memory_per_container': (('memory_per_container',), 'B'),
}

# The statistics of one metric the report reads, and the DriverStatus pairs backend() reads.
STAT_KEYS = ('median', 'min', 'max', 'first', 'rest_median')
DRIVER_STATUS_KEYS = ('Data loop file', 'Pool Name', 'driver-type')


class ReportError(Exception):
    """What stops a record or the report, said for the operator."""


class Unusable(Exception):
    """What makes one run file or input unusable (the report goes on without it)."""


def is_number(value: t.Any) -> bool:
    """A finite JSON number (not true/false, not NaN or Infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_figure(value: t.Any) -> bool:
    """A number the report can draw: finite and within +-MAX_FIGURE (an
    axis beyond 1.8e308 does not fit a float; 1e18 bytes is an exabyte)."""
    return is_number(value) and abs(value) <= MAX_FIGURE


def to_number(value: t.Any, unit: str) -> float | None:
    """A limit as given by the operator: None/'' -> None; sizes may carry a
    binary suffix (64K, 1.5M). NaN, infinite and negative limits are refused
    (a NaN limit would silently pass every value)."""
    if value is None or str(value).strip().lower() in ('', 'none', 'null'):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif unit == 'B':
        number = float(_SIZES.parse_size(str(value)))
    else:
        number = float(str(value))
    if not math.isfinite(number) or number < 0:
        raise ValueError('%r is not a limit: limits are finite and not negative' % (value,))
    return number


# ---- names and text from hosts -----------------------------------------------

def safe_name(host: str) -> str:
    """The directory name of a host under runs/: the name itself when it is
    made of letters, digits, '_', '.' and '-' and does not start with '.';
    otherwise every other byte (UTF-8) as %XX, a leading '.' too. So '..',
    '/', NUL and hidden names never reach the file system, and two hosts
    never share a directory (the mapping is one to one; host_of reverses it).
    A name longer than NAME_MAX keeps a readable head and ends in '~' and
    the SHA-256 of the host name ('~' is escaped everywhere else)."""
    raw = host.encode('utf-8', 'surrogatepass')
    name = ''.join(chr(byte) if byte in SAFE_BYTES and not (index == 0 and byte == 0x2e) else '%%%02X' % byte
                   for index, byte in enumerate(raw))
    if len(name) > NAME_MAX:
        head = name[:NAME_MAX - 65]
        cut = head.rfind('%', len(head) - 2)
        name = (head[:cut] if cut >= 0 else head) + '~' + hashlib.sha256(raw).hexdigest()
    return name


def host_of(name: str) -> str:
    """The host a directory name under runs/ stands for (a shortened name
    gives its head and '...'), for messages."""
    head, mark, dummy = name.partition('~')
    return urllib.parse.unquote(head, errors='surrogatepass') + ('...' if mark else '')


# Control, format (bidi overrides, zero-width), surrogate and line/paragraph separator characters.
HIDDEN_CATEGORIES = frozenset(('Cc', 'Cf', 'Cs', 'Zl', 'Zp'))


def visible(text: t.Any) -> str:
    """Text with every invisible or reordering character shown as \\xNN or
    \\uNNNN, so a host name cannot hide, break a line or reverse what
    follows it (and lone surrogates cannot break the UTF-8 report)."""
    return ''.join(ch if unicodedata.category(ch) not in HIDDEN_CATEGORIES
                   else ('\\x%02x' % ord(ch) if ord(ch) < 0x100 else '\\u%04x' % ord(ch)) for ch in str(text))


_MARKDOWN = str.maketrans(dict({c: '\\' + c for c in '\\`*_[]|~$!#'}, **{'<': '&lt;', '>': '&gt;', '&': '&amp;'}))


def md(text: t.Any) -> str:
    """Text for one Markdown table cell, heading or list item: inline markup
    (code, emphasis, links, images, table pipes, math) escaped, HTML as
    entities, line breaks shown (see visible)."""
    return visible(text).translate(_MARKDOWN)


def esc(text: t.Any) -> str:
    """Text for HTML and SVG, element content and attribute values alike."""
    return html.escape(visible(text), quote=True)


def quoted(text: str, most: int = 40) -> str:
    """A string in JSON quotes (control characters escaped), cut at most characters."""
    return json.dumps(text[:most]) + ('...' if len(text) > most else '')


def sample(value: t.Any) -> str:
    """A value as JSON names it, with a short quoted sample, for messages."""
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'a boolean'
    if isinstance(value, (int, float)):
        return 'the number %s' % value
    if isinstance(value, str):
        return 'the string %s' % quoted(value)
    if isinstance(value, list):
        return 'an array'
    if isinstance(value, dict):
        return 'an object'
    return 'a %s' % type(value).__name__


# ---- the shape of a run ------------------------------------------------------

_KINDS: dict[str, tuple[str, t.Callable[[t.Any], bool]]] = {
    'object': ('an object', lambda v: isinstance(v, dict)),
    'array': ('an array', lambda v: isinstance(v, list)),
    'string': ('a string', lambda v: isinstance(v, str)),
    'number': ('a finite number within +-1e18', is_figure),
    'boolean': ('true or false', lambda v: isinstance(v, bool)),
}


def _field(found: list[str], parent: t.Any, key: str, path: str, kind: str, required: bool = False,
           null: bool = True) -> t.Any:
    """parent[key] when it is of the kind (null allowed unless null=False),
    else None with what is wrong appended to found."""
    where = '%s.%s' % (path, key) if path else key
    if not isinstance(parent, dict) or key not in parent:
        if required:
            found.append('%s is missing' % where)
        return None
    value = parent[key]
    if value is None and null:
        return None
    article, test = _KINDS[kind]
    if not test(value):
        found.append('%s is %s, not %s' % (where, sample(value), article))
        return None
    return value


def _benchmark_problems(found: list[str], bench: dict[str, t.Any]) -> None:
    engine = _field(found, bench, 'engine', 'benchmark', 'object')
    _field(found, engine, 'driver', 'benchmark.engine', 'string')
    _field(found, engine, 'version', 'benchmark.engine', 'string')
    status = _field(found, engine, 'driver_status', 'benchmark.engine', 'object')
    for key in DRIVER_STATUS_KEYS:
        _field(found, status, key, 'benchmark.engine.driver_status', 'string')
    _field(found, _field(found, bench, 'filesystem', 'benchmark', 'object'), 'fstype', 'benchmark.filesystem', 'string')
    scenarios = _field(found, bench, 'scenarios', 'benchmark', 'object')
    memory = _field(found, bench, 'memory', 'benchmark', 'object')
    for metric in METRICS:
        first, second = metric['path']
        if first == 'memory':
            _field(found, memory, second, 'benchmark.memory', 'number')
            continue
        where = 'benchmark.scenarios.%s' % first
        stat_ = _field(found, _field(found, scenarios, first, 'benchmark.scenarios', 'object'), second, where, 'object')
        for key in STAT_KEYS:
            _field(found, stat_, key, '%s.%s' % (where, second), 'number')


def _objects(found: list[str], items: list[t.Any] | None, path: str) -> t.Iterator[tuple[str, dict[str, t.Any]]]:
    """(path[i], item) for the objects of an array; anything else is named in found."""
    for index, item in enumerate(items or []):
        where = '%s[%d]' % (path, index)
        if isinstance(item, dict):
            yield where, item
        else:
            found.append('%s is %s, not an object' % (where, sample(item)))


def problems_of(run: t.Any, stored: bool = True) -> list[str]:
    """What keeps a run (as a host sends it, or stored with its violations)
    out of the report: every field the report reads must be of its kind.
    Empty when the run can be used."""
    if not isinstance(run, dict):
        return ['the record is %s, not an object' % sample(run)]
    found: list[str] = []
    host = _field(found, run, 'host', '', 'string', required=True, null=False)
    if host == '':
        found.append('host is empty')
    stamp = _field(found, run, 'timestamp', '', 'string', required=True, null=False)
    if stamp is not None and not STAMP_RE.match(stamp):
        found.append('timestamp is %s, not of the form YYYYMMDDTHHMMSSZ' % sample(stamp))
    bench = _field(found, run, 'benchmark', '', 'object', required=True, null=False)
    _field(found, run, 'failed', '', 'string')
    if bench is not None:
        _benchmark_problems(found, bench)
    for where, target in _objects(found, _field(found, run, 'pmtu', '', 'array', required=True, null=False), 'pmtu'):
        _field(found, target, 'target', where, 'string', required=True, null=False)
        for key in ('reachable', 'expected_mtu_ok'):
            _field(found, target, key, where, 'boolean')
        for key in ('path_mtu', 'expected_mtu'):
            _field(found, target, key, where, 'number')
        _field(found, target, 'limiting_hop', where, 'string')
    if stored:
        for where, item in _objects(found, _field(found, run, 'violations', '', 'array', required=True, null=False),
                                    'violations'):
            _field(found, item, 'msg', where, 'string', required=True, null=False)
    return list(dict.fromkeys(found))


def parse_run(data: bytes) -> t.Any:
    """A run file's or input's bytes as JSON; Unusable says why not."""
    if not data.strip():
        raise Unusable('empty')
    try:
        return json.loads(data.decode('utf-8'))
    except UnicodeDecodeError as exc:
        raise Unusable('not UTF-8 text (%s)' % exc.reason) from None
    except json.JSONDecodeError as exc:
        raise Unusable('not JSON, or cut short (%s)' % exc) from None
    except RecursionError:
        raise Unusable('JSON nested too deeply') from None


def summary_of(problems: list[str], most: int = 3) -> str:
    text = '; '.join(problems[:most])
    return text + (' (and %d more)' % (len(problems) - most) if len(problems) > most else '')


# ---- figures from one run ----------------------------------------------------

def stat_of(result: dict[str, t.Any], path: tuple[str, str]) -> dict[str, t.Any] | None:
    bench = result.get('benchmark') or {}
    first, second = path
    if first == 'memory':
        memory = bench.get('memory') or {}
        value = memory.get(second)
        return None if value is None else {'median': value, 'min': value, 'max': value, 'first': None}
    scenario = (bench.get('scenarios') or {}).get(first) or {}
    return scenario.get(second)


def figures(result: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    out = {}
    for metric in METRICS:
        stat_ = stat_of(result, metric['path'])
        if stat_ and stat_.get('median') is not None:
            out[metric['key']] = stat_
    return out


def backend(result: dict[str, t.Any]) -> str:
    """The storage under the engine, as an operator names it: the driver on
    the data root's filesystem, except where the layers live elsewhere
    (devicemapper's thin pool or loop files, containerd's snapshotter)."""
    bench = result.get('benchmark') or {}
    engine = bench.get('engine') or {}
    if not engine.get('driver'):
        return 'benchmark failed' if result.get('failed') else 'not measured'
    driver = engine['driver']
    fstype = (bench.get('filesystem') or {}).get('fstype') or '?'
    status = engine.get('driver_status') or {}
    if driver == 'devicemapper' and status.get('Data loop file'):
        return 'devicemapper loop-lvm (files on %s)' % fstype
    if driver == 'devicemapper' and status.get('Pool Name'):
        return 'devicemapper thin pool %s' % status['Pool Name']
    if status.get('driver-type') == 'io.containerd.snapshotter.v1':
        return 'containerd %s snapshotter' % driver
    return '%s on %s' % (driver, fstype)


def engine_version(result: dict[str, t.Any]) -> str:
    """The engine's version as it reports it ('' when not known: records
    written before the version was read, or no benchmark)."""
    return ((result.get('benchmark') or {}).get('engine') or {}).get('version') or ''


def parse_limits(limits: t.Any) -> dict[str, float | None]:
    """The operator's limits as numbers; ValueError names a bad one."""
    if limits is None:
        limits = {}
    if not isinstance(limits, dict):
        raise ValueError('limits is %s, not an object' % sample(limits))
    parsed = {}
    for name, (dummy, unit) in LIMITS.items():
        try:
            parsed[name] = to_number(limits.get(name), unit)
        except ValueError as exc:
            raise ValueError('limit %s: %s' % (name, exc)) from None
    return parsed


def violations(result: dict[str, t.Any], limits: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """Every limit a measured median exceeds, and path MTUs below the
    expected one (result must have passed problems_of)."""
    found = []
    figs = figures(result)
    host = result.get('host')
    for name, limit in parse_limits(limits).items():
        keys, unit = LIMITS[name]
        if limit is None:
            continue
        for key in keys:
            stat_ = figs.get(key)
            if stat_ is None:
                continue
            value = stat_['median']
            if value > limit:
                metric = next(m for m in METRICS if m['key'] == key)
                found.append({'host': host, 'metric': key, 'limit_name': name, 'limit': limit, 'value': value,
                              'unit': unit, 'msg': 'host %s: %s (median) is %s, above the limit %s=%s'
                              % (host, metric['title'].lower(), fmt(value, unit), name, fmt(limit, unit))})
    expected = limits.get('expected_mtu')
    for target in result.get('pmtu') or []:
        if target.get('expected_mtu_ok'):
            continue
        if not target.get('reachable'):
            msg = 'host %s: path MTU to %s: target does not answer (expected %s)' % (host, target.get('target'),
                                                                                     target.get('expected_mtu', expected))
        else:
            msg = 'host %s: path MTU to %s is %s, below the limit expected_mtu=%s%s' % (
                host, target.get('target'), target.get('path_mtu'), target.get('expected_mtu', expected),
                ' (limited at %s)' % target['limiting_hop'] if target.get('limiting_hop') else '')
        found.append({'host': host, 'metric': 'path_mtu:%s' % target.get('target'), 'limit_name': 'expected_mtu',
                      'limit': target.get('expected_mtu', expected), 'value': target.get('path_mtu'), 'unit': 'bytes',
                      'msg': msg})
    return found


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return 'n/a'
    if unit == 's':
        return '%.3f s' % value if abs(value) < 10 else '%.1f s' % value
    if unit == 'B':
        return _SIZES.format_size(value)
    return '%s %s' % (value, unit)


# ---- storage -----------------------------------------------------------------

class Dir:
    """A directory of the report opened once; everything in it is created,
    read and removed relative to that handle, never through a path, so a
    link planted below the report directory is never followed. Files are
    written to an unpredictable temporary name (O_EXCL, no link followed),
    synced and renamed over the destination (a link there is replaced, not
    written through). The report directory itself may be a link: the
    operator chose it."""

    _DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def top(cls, path: str, create: bool) -> Dir:
        if create:
            os.makedirs(path, exist_ok=True)
        return cls(path, os.open(path, cls._DIR_FLAGS))

    def sub(self, name: str, create: bool) -> Dir:
        path = os.path.join(self.path, name)
        if create:
            try:
                os.mkdir(name, 0o755, dir_fd=self.fd)
            except FileExistsError:
                pass
        try:
            return Dir(path, os.open(name, self._DIR_FLAGS | os.O_NOFOLLOW, dir_fd=self.fd))
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ReportError('%s is a symbolic link or not a directory; the report does not follow it: '
                                  'move it away' % path) from None
            raise

    def __enter__(self) -> Dir:
        return self

    def __exit__(self, *exc_info: t.Any) -> None:
        os.close(self.fd)

    def names(self) -> list[str]:
        return os.listdir(self.fd)

    def is_file(self, name: str) -> bool:
        return stat.S_ISREG(os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode)

    def read(self, name: str, limit: int = MAX_RECORD_BYTES) -> bytes:
        """A regular file's bytes; Unusable for a link, a FIFO, a device
        (never opened) or a file larger than limit."""
        try:
            mode = os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                raise Unusable('a symbolic link, not followed')
            if not stat.S_ISREG(mode):
                raise Unusable('not a regular file')
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.fd)
            with os.fdopen(fd, 'rb') as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    raise Unusable('not a regular file')
                data = handle.read(limit + 1)
        except OSError as exc:
            raise Unusable('cannot be read (%s)' % (exc.strerror or exc)) from None
        if len(data) > limit:
            raise Unusable('larger than %s, the most a run record may have' % _SIZES.format_size(limit))
        return data

    def write(self, name: str, data: bytes, mode: int = 0o644, replace: bool = True) -> str:
        """Write name through a temporary file and an atomic rename; with
        replace=False an existing name is kept and FileExistsError raised.
        Returns the path written; a failure leaves no temporary file and the
        earlier file as it was (ReportError names the file and the cause)."""
        path = os.path.join(self.path, name)
        tmp = None
        try:
            while tmp is None:
                candidate = '.tmp-%s' % secrets.token_hex(8)
                try:
                    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                                 dir_fd=self.fd)
                except FileExistsError:
                    continue
                tmp = candidate
            with os.fdopen(fd, 'wb') as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if replace:
                os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            else:
                os.link(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
        except FileExistsError:
            raise
        except OSError as exc:
            raise ReportError('cannot write %s: %s' % (path, exc.strerror or exc)) from None
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp, dir_fd=self.fd)
                except OSError:
                    pass
        return path

    def remove(self, name: str) -> None:
        os.unlink(name, dir_fd=self.fd)


def run_key(name: str) -> tuple[str, int]:
    """A run file's place in time: its timestamp, then its serial."""
    match = RUN_RE.match(name)
    return (match.group(1), int(match.group(2) or 0)) if match else ('', 0)


def now_stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')


def store_run(root: str, host: str, stamp: str, data: bytes, keep: int) -> tuple[str, list[str]]:
    """Store one run as DIR/runs/HOST/STAMP[-N].json (never over an earlier
    one) and prune the host's oldest runs beyond keep (never the new one).
    Returns the path written and the names pruned."""
    if not STAMP_RE.match(stamp):
        raise ValueError('timestamp %s is not of the form YYYYMMDDTHHMMSSZ' % sample(stamp))
    with Dir.top(root, create=True) as top, top.sub('runs', create=True) as base, \
            base.sub(safe_name(host), create=True) as runs:
        taken = set(runs.names())
        for serial in range(10 ** 6):
            name = '%s-%d.json' % (stamp, serial) if serial else '%s.json' % stamp
            if name in taken:
                continue
            try:
                path = runs.write(name, data, mode=0o600, replace=False)
                break
            except FileExistsError:
                continue
        else:
            raise ReportError('%s holds a million runs of %s; remove some' % (runs.path, stamp))
        pruned: list[str] = []
        if keep > 0:
            older = sorted((n for n in runs.names() if n != name and RUN_RE.match(n) and runs.is_file(n)), key=run_key)
            for old in older[:max(0, len(older) + 1 - keep)]:
                runs.remove(old)
                pruned.append(old)
    return path, pruned


def to_json_bytes(data: t.Any) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode('utf-8')


def record(root: str, payload: t.Any, keep: int, host: str | None = None) -> dict[str, t.Any]:
    """Check and store one host's result (payload {"result": ..., "limits":
    ...}); host (the inventory name, authoritative when given) or the
    result's own host names the directory. A result that cannot be used is
    stored as it came, with used=false and its problems; its limits are not
    checked. Bad limits (the operator's) raise ValueError, nothing stored."""
    limits = payload.get('limits') if isinstance(payload, dict) else None
    parse_limits(limits)
    limits = limits or {}
    result = payload['result'] if isinstance(payload, dict) and 'result' in payload else payload
    problems = problems_of(result, stored=False)
    named = result.get('host') if isinstance(result, dict) else None
    host = host if host is not None else named
    if not isinstance(host, str) or not host:
        raise ValueError('the result names no host (%s); the role passes --host' % (problems[0] if problems else 'host'))
    if isinstance(named, str) and named and named != host:
        problems.append('host is %s, but the result was sent for host %s' % (sample(named), quoted(host)))
    stamp = result.get('timestamp') if isinstance(result, dict) else None
    stamp = stamp if isinstance(stamp, str) and STAMP_RE.match(stamp) else now_stamp()
    if problems:
        found: list[dict[str, t.Any]] = []
        name = None
        data = dict(result, limits=limits, violations=found) if isinstance(result, dict) else result
    else:
        found = violations(result, limits)
        name = backend(result)
        data = dict(result, backend=name, violations=found, limits=limits)
    path, pruned = store_run(root, host, stamp, to_json_bytes(data), keep)
    return recorded(host, path, pruned, problems, found, name)


def recorded(host: str, path: str, pruned: list[str], problems: list[str], found: list[dict[str, t.Any]],
             name: str | None) -> dict[str, t.Any]:
    """What record prints: the violations, where the run lies, and for a
    result that cannot be used, what is wrong with it (msg)."""
    out = {'host': host, 'file': path, 'pruned': pruned, 'violations': found, 'backend': name,
           'used': not problems, 'problems': problems}
    if problems:
        out['msg'] = ('host %s: its result is not used in the fleet report and its limits were not checked (%s): %s'
                      % (host, path, summary_of(problems)))
    return out


def record_input(root: str, raw: bytes, keep: int, host: str | None = None) -> dict[str, t.Any]:
    """record() for a result given as JSON text: text that is not JSON is
    stored as it came (the report then names it) when host is known."""
    if len(raw) > MAX_RECORD_BYTES:
        raise ReportError('the result of host %s is larger than %s; nothing stored' % (host, _SIZES.format_size(MAX_RECORD_BYTES)))
    try:
        payload = parse_run(raw)
    except Unusable as exc:
        if not host:
            raise ValueError('the input is %s, and names no host' % exc) from None
        problems = ['the result is %s' % exc]
        path, pruned = store_run(root, host, now_stamp(), raw, keep)
        return recorded(host, path, pruned, problems, [], None)
    return record(root, payload, keep, host)


def load_runs(root: str) -> tuple[dict[str, list[dict[str, t.Any]]], list[dict[str, t.Any]]]:
    """host -> usable runs (oldest first), and every run file not used:
    {host, file, problem}."""
    runs: dict[str, list[dict[str, t.Any]]] = {}
    not_used: list[dict[str, t.Any]] = []

    def skip(host: str | None, path: str, problem: str) -> None:
        not_used.append({'host': host, 'file': path, 'problem': problem,
                         'msg': '%s%s not used in the fleet report: %s' % ('host %s: ' % host if host else '', path, problem)})

    if not os.path.lexists(os.path.join(root, 'runs')):
        return runs, not_used
    with Dir.top(root, create=False) as top:
        try:
            base = top.sub('runs', create=False)
        except ReportError as exc:
            skip(None, os.path.join(root, 'runs'), str(exc))
            return runs, not_used
        with base:
            for entry in sorted(base.names()):
                if entry.startswith('.'):
                    continue
                host = host_of(entry)
                try:
                    directory = base.sub(entry, create=False)
                except ReportError as exc:
                    skip(host, os.path.join(base.path, entry), str(exc))
                    continue
                with directory:
                    host_runs = load_host_runs(directory, entry, lambda path, problem, h=host: skip(h, path, problem))
                if host_runs:
                    runs[host_runs[-1]['host']] = host_runs
    return runs, not_used


def load_host_runs(directory: Dir, entry: str, skip: t.Callable[[str, str], None]) -> list[dict[str, t.Any]]:
    """The usable runs in one host directory, oldest first; skip(path, problem) for the others."""
    host_runs = []
    names = [n for n in directory.names() if n.endswith('.json') and not n.startswith('.')]
    for name in sorted(names, key=lambda n: (run_key(n), n)):
        path = os.path.join(directory.path, name)
        if not RUN_RE.match(name):
            skip(path, 'the file name is not TIMESTAMP.json')
            continue
        try:
            run = parse_run(directory.read(name))
        except Unusable as exc:
            skip(path, str(exc))
            continue
        problems = problems_of(run)
        if not problems and safe_name(run['host']) != entry:
            problems = ['host is %s, but the file lies in the directory of host %s' % (sample(run['host']),
                                                                                       quoted(host_of(entry)))]
        if problems:
            skip(path, summary_of(problems))
        else:
            host_runs.append(run)
    return host_runs
