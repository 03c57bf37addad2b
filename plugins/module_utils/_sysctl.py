# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Kernel parameters (sysctls): run-time values and sysctl.d files.

This module is private to hostprep.container_host: its interface may change
without notice. Users depend on the modules and roles, not on it.

Three layers, each usable on its own:

* ``ProcSys`` reads and writes run-time values through /proc/sys. A process
  that has setns()ed into a network namespace sees that namespace's
  ``net.*`` values there, which the ``sysctl`` command's output would not
  tell apart.
* ``parse_sysctl_d`` / ``effective_values`` read sysctl.d(5) files the way
  systemd-sysctl does; ``render_managed_file`` / ``plan_managed_file`` write
  a file owned by one module that holds only ``key = value`` lines.
* Rules for particular sysctls (at the end), each a pure function raising
  HostprepError with a message that names the key and value and says what
  to do.
"""

from __future__ import annotations

import os
import re
import typing as t
from dataclasses import dataclass, field

from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    Changes,
    Differences,
    HostprepError,
)

PROC_SYS = '/proc/sys'

_SWAP_SEPARATORS = str.maketrans('./', '/.')


# ---------------------------------------------------------------------------
# Keys and values
# ---------------------------------------------------------------------------

def normalize_key(key: str) -> str:
    """Return the dotted form of a sysctl key.

    sysctl.d(5): either "/" or "." may separate the parts; when the first
    separator is "/", the other "." are part of a name (an interface such as
    eth0.100), so ``net/ipv4/conf/eth0.100/mtu`` is
    ``net.ipv4.conf.eth0/100.mtu`` in dotted form.
    """
    key = key.strip()
    for char in key:
        if char == '/':
            return key.translate(_SWAP_SEPARATORS)
        if char == '.':
            break
    return key


def key_to_path(key: str, root: str = PROC_SYS) -> str:
    """The /proc/sys file of a (dotted or slashed) key."""
    return os.path.join(root, normalize_key(key).translate(_SWAP_SEPARATORS))


def normalize_value(value: t.Any) -> str:
    """A value as the kernel prints it, for comparison: tabs and runs of
    spaces (net.ipv4.tcp_rmem prints "4096\\t131072\\t6291456") become one
    space."""
    if isinstance(value, bool):
        value = int(value)
    return ' '.join(str(value).split())


# ---------------------------------------------------------------------------
# Run-time values
# ---------------------------------------------------------------------------

class ProcSys:
    """Read and write run-time sysctls through /proc/sys (the boundary the
    tests replace by pointing root at a directory of their own)."""

    def __init__(self, root: str = PROC_SYS) -> None:
        self.root = root

    def path(self, key: str) -> str:
        return key_to_path(key, self.root)

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

    def read(self, key: str) -> str:
        path = self.path(key)
        try:
            with open(path, 'r', encoding='utf-8') as handle:
                return normalize_value(handle.read())
        except FileNotFoundError:
            raise HostprepError(
                'sysctl %s does not exist on this kernel (%s not found); check the key name '
                'or load the module that provides it' % (normalize_key(key), path),
                key=normalize_key(key)) from None
        except OSError as exc:
            raise HostprepError('cannot read sysctl %s from %s: %s' % (normalize_key(key), path, exc),
                                key=normalize_key(key)) from exc

    def read_default(self, key: str, default: str) -> str:
        """The value, or default when the kernel does not have the key."""
        try:
            return self.read(key)
        except HostprepError:
            return default

    def write(self, key: str, value: t.Any) -> None:
        path = self.path(key)
        text = normalize_value(value)
        try:
            # O_WRONLY without O_CREAT: a key the kernel lacks is an error, and
            # write-only sysctls (mode 0200) cannot be opened for reading.
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, (text + '\n').encode('utf-8'))
            finally:
                os.close(fd)
        except OSError as exc:
            raise HostprepError(
                'the kernel refused %s = %s (%s): %s' % (normalize_key(key), text, path, exc),
                key=normalize_key(key), value=text) from exc


def plan_runtime(current: t.Mapping[str, t.Any], wanted: t.Mapping[str, t.Any]) -> Differences:
    """Before/after of each wanted key, compared as the kernel prints them."""
    tracker = Differences()
    for key, value in wanted.items():
        tracker.add(normalize_key(key), normalize_value(current[key]), normalize_value(value))
    return tracker


def apply_runtime(procsys: ProcSys, plan: Differences, record: Changes | None = None) -> list[str]:
    """Write the keys that differ; return them in the order written. When
    the kernel refuses one, the keys already written get their old values
    back before the error is raised. record (the run's Changes) hears of
    every write and every undo."""
    record = record if record is not None else Changes()
    written: list[str] = []
    before, after = plan.before(), plan.after()
    for key in plan.changed_items():
        try:
            procsys.write(key, after[key])
        except HostprepError:
            restore_runtime(procsys, plan, written, record)
            raise
        record.made('set %s from %s to %s' % (key, before[key], after[key]))
        written.append(key)
    return written


def restore_runtime(procsys: ProcSys, plan: Differences, written: t.Sequence[str], record: Changes,
                    complete: bool = True) -> list[str]:
    """Put back the old value of each written key, newest first; complete
    says nothing else of the run stays changed."""
    before = plan.before()
    restored = []
    for pos, key in enumerate(reversed(written), start=1):
        procsys.write(key, before[key])
        restored.append('%s back to %s' % (key, before[key]))
        record.restored(restored[-1], complete=complete and pos == len(written))
    return restored


# ---------------------------------------------------------------------------
# sysctl.d files
# ---------------------------------------------------------------------------

@dataclass
class SysctlLine:
    """One assignment of a sysctl.d file.

    ``ignore_failure`` is the "-" prefix: a failure to set the key is not an
    error. ``value`` is None for a "-key" line without "=", which systemd
    reads as "exclude this key from the glob assignments above".
    """

    key: str
    value: str | None
    ignore_failure: bool = False
    lineno: int = 0


@dataclass
class ParsedFile:
    lines: list[SysctlLine] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_sysctl_d(text: str) -> ParsedFile:
    """Parse sysctl.d(5) text as systemd-sysctl reads it.

    Blank lines and lines starting with "#" or ";" are comments; an
    assignment is ``key = value`` with optional blanks around "="; a line
    that is not an assignment is an error (systemd logs and ignores it)
    unless it is a "-key" glob exclusion.
    """
    parsed = ParsedFile()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in '#;':
            continue
        ignore_failure = line.startswith('-')
        if ignore_failure:
            line = line[1:].lstrip()
        key, sep, value = line.partition('=')
        key = key.strip()
        if not sep:
            if ignore_failure and key and ' ' not in key:
                parsed.lines.append(SysctlLine(normalize_key(key), None, True, lineno))
            else:
                parsed.errors.append('line %d is not an assignment: %s' % (lineno, raw.strip()))
            continue
        if not key or ' ' in key or '\t' in key:
            parsed.errors.append('line %d has no valid key: %s' % (lineno, raw.strip()))
            continue
        parsed.lines.append(SysctlLine(normalize_key(key), value.strip(), ignore_failure, lineno))
    return parsed


def effective_values(parsed: ParsedFile) -> dict[str, str]:
    """Key → value a file sets: the last assignment of a key wins; glob
    exclusions ("-key" without value) set nothing."""
    values: dict[str, str] = {}
    for line in parsed.lines:
        if line.value is not None:
            values.pop(line.key, None)  # keep the order of the winning line
            values[line.key] = line.value
    return values


def render_managed_file(values: t.Mapping[str, t.Any], header: t.Sequence[str]) -> str:
    """A managed file: header comment lines, then ``key = value`` sorted by key."""
    lines = ['# ' + line if line else '#' for line in header]
    lines += ['%s = %s' % (normalize_key(key), normalize_value(values[key]))
              for key in sorted(values, key=normalize_key)]
    return '\n'.join(lines) + '\n'


def check_sysctl_d_file(path: str | None, option: str = 'sysctl_file') -> str:
    """A sysctl.d file a module may write, or HostprepError naming why not:
    empty (a templated value that came out empty), relative, a symbolic link
    (a link to /dev/null masks the vendor file of the same name: writing
    through it or replacing it would both be wrong), a directory or any other
    non-regular file."""
    if path is None or not path.strip():
        raise HostprepError('%s is empty (%r): give the path of a file under /etc/sysctl.d, or set persist=false'
                            % (option, path), **{option: path})
    if not os.path.isabs(path):
        raise HostprepError('%s %s is not an absolute path: give the full path of a file under /etc/sysctl.d'
                            % (option, path), **{option: path})
    if os.path.islink(path):
        raise HostprepError('%s %s is a symbolic link to %s (a link to /dev/null masks the file of that name in '
                            '/usr/lib/sysctl.d); the module neither writes through nor replaces it: remove the link '
                            'or give another path' % (option, path, os.readlink(path)), **{option: path})
    if os.path.isdir(path):
        raise HostprepError('%s %s is a directory: give the path of a file in it, for example %s'
                            % (option, path, os.path.join(path, '90-hostprep-pmtud.conf')), **{option: path})
    if os.path.lexists(path) and not os.path.isfile(path):
        raise HostprepError('%s %s is not a regular file: give the path of a regular file under /etc/sysctl.d'
                            % (option, path), **{option: path})
    return path


# One assignment line: optional "-", the key, "=" with its blanks, the value.
_ASSIGNMENT = re.compile(r'^(?P<lead>\s*-?\s*)(?P<key>[^=\s]+)(?P<sep>\s*=\s*)(?P<value>.*?)(?P<trail>\s*)$')


def set_sysctl_values(text: str, wanted: t.Mapping[str, t.Any]) -> str:
    """text with each wanted key set, every other byte kept.

    Every assignment of a wanted key gets the new value (only the value
    changes, so its spelling, "-" prefix and blanks stay); a key the text
    does not assign is appended as ``key = value``. Comments, other keys and
    lines systemd-sysctl cannot parse are left as they are."""
    want = {normalize_key(key): normalize_value(value) for key, value in wanted.items()}
    seen = set()
    out = []
    for raw in text.splitlines(True):
        body = raw.rstrip('\r\n')
        ending = raw[len(body):]
        stripped = body.strip()
        match = None if not stripped or stripped[0] in '#;' else _ASSIGNMENT.match(body)
        key = normalize_key(match.group('key')) if match else None
        if key in want:
            seen.add(key)
            if normalize_value(match.group('value')) != want[key]:
                body = body[:match.start('value')] + want[key] + body[match.end('value'):]
        out.append(body + ending)
    missing = [key for key in sorted(want) if key not in seen]
    if missing and out and not out[-1].endswith('\n'):
        out[-1] += '\n'
    out += ['%s = %s\n' % (key, want[key]) for key in missing]
    return ''.join(out)


@dataclass
class FilePlan:
    """What a sysctl.d file holds now and will hold."""

    path: str
    before: str | None          # None: the file does not exist
    after: str
    values: dict[str, str]      # every key the file will set
    errors: list[str]           # lines of the current file systemd-sysctl cannot parse (kept as they are)

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> dict[str, str]:
        return {
            'before_header': self.path if self.before is not None else '%s (absent)' % self.path,
            'after_header': self.path,
            'before': self.before or '',
            'after': self.after,
        }


def plan_managed_file(path: str, current: str | None, wanted: t.Mapping[str, t.Any],
                      header: t.Sequence[str]) -> FilePlan:
    """The wanted values in a sysctl.d file: a new file holds the header and
    the wanted keys; an existing one gets only the wanted values changed or
    added (set_sysctl_values), so keys the module does not manage, keys an
    earlier run set and comments stay."""
    after = render_managed_file(wanted, header) if current is None else set_sysctl_values(current, wanted)
    return FilePlan(path=path, before=current, after=after, values=effective_values(parse_sysctl_d(after)),
                    errors=parse_sysctl_d(current or '').errors)


# ---------------------------------------------------------------------------
# Rules for particular sysctls
# ---------------------------------------------------------------------------

TCP_MTU_PROBING = 'net.ipv4.tcp_mtu_probing'
TCP_BASE_MSS = 'net.ipv4.tcp_base_mss'
TCP_MIN_SND_MSS = 'net.ipv4.tcp_min_snd_mss'
# The kernel's floor for tcp_min_snd_mss before it became a sysctl (5.2 and
# older kernels hard-coded TCP_MIN_SND_MSS 48).
DEFAULT_MIN_SND_MSS = 48
# 20 bytes of IPv4 header and 20 of TCP header without options.
IPV4_TCP_HEADERS = 40
# RFC 791: every IPv4 link carries 68-byte datagrams.
MIN_IPV4_MTU = 68
# The 16-bit total length of IPv4 allows no bigger datagram; it is also the
# max_mtu of veth and Ethernet devices (ETH_MAX_MTU). The kernel itself takes
# any int for tcp_base_mss (even negative ones), so the bounds are ours.
MAX_IPV4_MTU = 65535
IFF_LOOPBACK = 0x8


@dataclass
class Link:
    name: str
    mtu: int
    loopback: bool = False


def link_records(ipr: t.Any) -> list[dict[str, t.Any]]:
    """Name, MTU and flags of every link, read through a pyroute2 IPRoute
    handle in the current namespace (the boundary the tests record)."""
    return [{'ifname': msg.get_attr('IFLA_IFNAME'), 'mtu': msg.get_attr('IFLA_MTU'),
             'flags': msg['flags']} for msg in ipr.get_links()]


def links_from_records(records: t.Iterable[t.Mapping[str, t.Any]]) -> list[Link]:
    return [Link(name=str(rec['ifname']), mtu=int(rec['mtu'] or 0),
                 loopback=bool(int(rec['flags']) & IFF_LOOPBACK)) for rec in records]


def largest_mtu_link(links: t.Iterable[Link]) -> Link | None:
    """The non-loopback link with the largest MTU (first by name on a tie)."""
    candidates = sorted((link for link in links if not link.loopback), key=lambda link: (-link.mtu, link.name))
    return candidates[0] if candidates else None


def check_mtu(mtu: int) -> None:
    if mtu < MIN_IPV4_MTU:
        raise HostprepError('mtu %d is below %d, the smallest IPv4 MTU: pass the MTU of the storage '
                            'link, or leave mtu unset to use the largest link MTU' % (mtu, MIN_IPV4_MTU),
                            mtu=mtu)
    if mtu > MAX_IPV4_MTU:
        raise HostprepError('mtu %d is above %d, the largest IPv4 datagram and the largest MTU of Ethernet and '
                            'veth links: pass the MTU of the storage link, or leave mtu unset to use the largest '
                            'link MTU' % (mtu, MAX_IPV4_MTU), mtu=mtu)


def max_base_mss(mtu: int) -> int:
    """The largest MSS whose IPv4+TCP segment fits mtu."""
    return mtu - IPV4_TCP_HEADERS


def check_base_mss(value: int, floor: int, mtu: int | None, link: str | None) -> None:
    """tcp_base_mss must be at least the kernel's floor (tcp_min_snd_mss) and
    fit the MTU; link names where the MTU came from (None: the mtu option)."""
    if value < floor:
        raise HostprepError(
            'tcp_base_mss %d is below the kernel floor %s = %d: the kernel never sends smaller '
            'segments, so use at least %d' % (value, TCP_MIN_SND_MSS, floor, floor),
            key=TCP_BASE_MSS, value=value)
    limit = max_base_mss(min(mtu or MAX_IPV4_MTU, MAX_IPV4_MTU))
    if value > limit:
        if mtu is None or mtu > MAX_IPV4_MTU:
            raise HostprepError(
                'tcp_base_mss %d is above %d: no IPv4 TCP segment is bigger (%d bytes of datagram minus %d of '
                'IPv4 and TCP headers); lower tcp_base_mss' % (value, limit, MAX_IPV4_MTU, IPV4_TCP_HEADERS),
                key=TCP_BASE_MSS, value=value)
        where = 'of link %s' % link if link else '(option mtu)'
        raise HostprepError(
            'tcp_base_mss %d does not fit MTU %d %s: at most %d (the MTU minus %d bytes of IPv4 '
            'and TCP headers); lower tcp_base_mss or pass the mtu of the path it is meant for'
            % (value, mtu, where, limit, IPV4_TCP_HEADERS),
            key=TCP_BASE_MSS, value=value, mtu=mtu)


def base_mss_without_probing(value: int | None, probing: int) -> str | None:
    """The warning for a tcp_base_mss the kernel ignores, or None."""
    if value is not None and probing == 0:
        return ('tcp_base_mss %d has no effect while %s is 0: the kernel uses it only when it probes '
                'the path MTU; set tcp_mtu_probing to 1 or 2 to use it' % (value, TCP_MTU_PROBING))
    return None


def validate_pmtud(tcp_mtu_probing: int | None, tcp_base_mss: int | None, current_probing: int,
                   floor: int, mtu: int | None, links: t.Iterable[Link] | None) -> list[str]:
    """Check the pmtud values and their combination before anything changes.

    mtu is the mtu option (None: use the largest non-loopback link of
    links). Raises HostprepError; returns warnings.
    """
    warnings = []
    if tcp_mtu_probing is not None and tcp_mtu_probing not in (0, 1, 2):
        raise HostprepError('tcp_mtu_probing %d is not one of 0 (off), 1 (after a black hole is '
                            'detected) or 2 (always): pick one of them' % tcp_mtu_probing,
                            key=TCP_MTU_PROBING, value=tcp_mtu_probing)
    if mtu is not None:
        check_mtu(mtu)
    if tcp_base_mss is not None:
        link_name = None
        if mtu is None:
            link = largest_mtu_link(links or [])
            if link is None:
                warnings.append('no link other than loopback in this network namespace: tcp_base_mss %d '
                                'is not checked against an MTU; pass mtu to check it' % tcp_base_mss)
            else:
                mtu, link_name = link.mtu, link.name
        check_base_mss(tcp_base_mss, floor, mtu, link_name)
        probing = current_probing if tcp_mtu_probing is None else tcp_mtu_probing
        warning = base_mss_without_probing(tcp_base_mss, probing)
        if warning:
            warnings.append(warning)
    return warnings
