# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Persist a link's MTU with the host's network stack (link_mtu).

This module is private to hostprep.container_host: its interface may change
without notice.

Three stacks are supported: NetworkManager (through ``nmcli -t``),
systemd-networkd (a drop-in next to the .network file that manages the link)
and ifupdown (the ``mtu`` line of the link's stanza in /etc/network/interfaces
and the files it sources). Parsers and renderers are pure functions, text in
and text out; ``Persister`` holds the side effects (files under config_root,
nmcli through a runner).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import shutil
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError, read_text

METHODS = ('networkmanager', 'networkd', 'ifupdown')

NETWORKD_STATE_DIR = 'run/systemd/netif/links'
NETWORKD_CONF_DIR = 'etc/systemd/network'
NETWORKD_DROPIN = '90-hostprep-mtu.conf'
IFUPDOWN_INTERFACES = 'etc/network/interfaces'


# --------------------------------------------------------------------------
# systemd-networkd

def parse_networkd_state(text: str) -> dict[str, str]:
    """KEY=value lines of /run/systemd/netif/links/<ifindex>; quoted values
    (NETWORK_FILE_DROPINS="...") lose their quotes."""
    result = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#') or '=' not in line:
            continue
        key, value = line.split('=', 1)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        result[key.strip()] = value
    return result


def render_networkd_dropin(mtu: int) -> str:
    """The drop-in that sets the link's MTU (systemd.network(5), [Link] MTUBytes=)."""
    return ('# Managed by hostprep.container_host.link_mtu\n'
            '[Link]\n'
            'MTUBytes=%d\n' % mtu)


def networkd_dropin_path(config_root: str, network_file: str) -> str:
    """Drop-ins in /etc/systemd/network/<name>.d/ apply to <name> wherever
    it lives (/etc, /run or /usr/lib/systemd/network)."""
    return os.path.join(config_root, NETWORKD_CONF_DIR, os.path.basename(network_file) + '.d', NETWORKD_DROPIN)


# --------------------------------------------------------------------------
# NetworkManager (nmcli -t)

# The setting that carries the MTU of a connection type (nm-settings-nmcli(5)).
# Bond, bridge, team, VLAN and similar connections take it from their
# optional wired (802-3-ethernet) setting.
NM_MTU_PROPERTY = {
    '802-3-ethernet': '802-3-ethernet.mtu',
    'bond': '802-3-ethernet.mtu',
    'bridge': '802-3-ethernet.mtu',
    'team': '802-3-ethernet.mtu',
    'vlan': '802-3-ethernet.mtu',
    'macvlan': '802-3-ethernet.mtu',
    'veth': '802-3-ethernet.mtu',
    '802-11-wireless': '802-11-wireless.mtu',
    'infiniband': 'infiniband.mtu',
    'ip-tunnel': 'ip-tunnel.mtu',
    'wireguard': 'wireguard.mtu',
}


def split_terse(line: str) -> list[str]:
    """Fields of one ``nmcli -t`` line: ':' separates, '\\' escapes ':' and '\\'."""
    fields = []
    current = []
    escaped = False
    for char in line:
        if escaped:
            current.append(char)
            escaped = False
        elif char == '\\':
            escaped = True
        elif char == ':':
            fields.append(''.join(current))
            current = []
        else:
            current.append(char)
    fields.append(''.join(current))
    return fields


def parse_nm_devices(text: str) -> dict[str, dict[str, str]]:
    """``nmcli -t -f DEVICE,TYPE,STATE,CON-UUID device status`` by device."""
    result = {}
    for line in text.splitlines():
        if not line:
            continue
        fields = split_terse(line)
        if len(fields) != 4:
            raise HostprepError('unexpected nmcli device status line %r: expected DEVICE:TYPE:STATE:CON-UUID' % line)
        result[fields[0]] = {'type': fields[1], 'state': fields[2], 'uuid': fields[3]}
    return result


def nm_manages(device: dict[str, str] | None) -> bool:
    """NetworkManager manages the device with a connection of its own; a
    device it only observes ("connected (externally)", NM 1.42+) or leaves
    alone ("unmanaged") is not NetworkManager's to persist."""
    if not device:
        return False
    state = device.get('state', '')
    return state != 'unmanaged' and 'externally' not in state and bool(device.get('uuid'))


def parse_nm_connection(text: str) -> dict[str, str]:
    """``nmcli -t connection show UUID``: property:value lines. Property names
    hold no ':', so the first ':' separates, whatever the value holds."""
    result = {}
    for line in text.splitlines():
        if ':' in line:
            key, value = line.split(':', 1)
            result[key] = value
    return result


def nm_mtu_property(connection: dict[str, str], uuid: str) -> str:
    ctype = connection.get('connection.type', '')
    prop = NM_MTU_PROPERTY.get(ctype)
    if prop is None:
        raise HostprepError('NetworkManager connection %s has type %r, which link_mtu cannot persist an MTU for; '
                            'use persist=none and set the MTU in the connection yourself' % (uuid, ctype),
                            uuid=uuid)
    return prop


def nm_mtu_value(value: str | None) -> int | None:
    """nmcli shows an unset MTU as "auto" (or 0 for some settings)."""
    if value is None or value.strip() in ('', 'auto', '0'):
        return None
    return int(value.strip())


# --------------------------------------------------------------------------
# ifupdown (/etc/network/interfaces, interfaces(5))

# Keywords that start a new stanza; every other non-comment line belongs to
# the stanza above it as an option line.
IFUPDOWN_STANZA = re.compile(r'^\s*(iface|mapping|auto|allow-[^\s]+|source|source-directory|rename|'
                             r'no-auto-down|no-scripts)(\s|$)')
IFUPDOWN_IFACE = re.compile(r'^\s*iface\s+(\S+)\s+(inet6?)\s+\S+')
IFUPDOWN_MTU = re.compile(r'^(\s*)mtu(\s+)(\S+)(.*)$')
# run-parts(8) names: what source-directory reads.
RUN_PARTS_NAME = re.compile(r'^[A-Za-z0-9_-]+$')


def ifupdown_sources(text: str) -> list[tuple[int, str, str]]:
    """(line number, kind, argument) of each source / source-directory line, in order."""
    result = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if len(words) >= 2 and words[0] in ('source', 'source-directory'):
            result.append((lineno, words[0], words[1]))
    return result


@dataclasses.dataclass
class Stanza:
    family: str
    start: int          # line index of the iface line
    end: int            # index after the last option line
    mtu_line: int | None


def ifupdown_stanzas(lines: list[str], ifname: str) -> list[Stanza]:
    """The ``iface IFNAME inet|inet6 METHOD`` stanzas of a file (as lines)."""
    stanzas = []
    i = 0
    while i < len(lines):
        match = IFUPDOWN_IFACE.match(lines[i])
        if not match or match.group(1) != ifname:
            i += 1
            continue
        start = i
        end = i + 1
        mtu_line = None
        j = i + 1
        while j < len(lines) and not IFUPDOWN_STANZA.match(lines[j]):
            stripped = lines[j].strip()
            if stripped and not stripped.startswith('#'):
                end = j + 1
                if IFUPDOWN_MTU.match(lines[j]):
                    mtu_line = j
            j += 1
        stanzas.append(Stanza(family=match.group(2), start=start, end=end, mtu_line=mtu_line))
        i = j
    return stanzas


def ifupdown_current_mtu(text: str, ifname: str) -> int | None:
    lines = text.splitlines(True)
    for stanza in ifupdown_stanzas(lines, ifname):
        if stanza.mtu_line is not None:
            return int(IFUPDOWN_MTU.match(lines[stanza.mtu_line]).group(3))
    return None


def _option_indent(lines: list[str], stanza: Stanza) -> str:
    for line in lines[stanza.start + 1:stanza.end]:
        if line.strip() and not line.strip().startswith('#'):
            return line[:len(line) - len(line.lstrip())]
    return '    '


def set_ifupdown_mtu(text: str, ifname: str, mtu: int) -> str | None:
    """Text with ``mtu N`` in ifname's stanzas, everything else byte for byte;
    None when the text has no stanza for ifname.

    Every stanza of the link that has an mtu line gets the new value (inet
    and inet6 must agree); when none has one, the line is added after the
    last option of the first inet stanza (or the first stanza)."""
    lines = text.splitlines(True)
    stanzas = ifupdown_stanzas(lines, ifname)
    if not stanzas:
        return None
    with_mtu = [s for s in stanzas if s.mtu_line is not None]
    if with_mtu:
        for stanza in with_mtu:
            line = lines[stanza.mtu_line]
            body = line.rstrip('\r\n')
            ending = line[len(body):]
            match = IFUPDOWN_MTU.match(body)
            lines[stanza.mtu_line] = '%smtu%s%d%s%s' % (match.group(1), match.group(2), mtu, match.group(4), ending)
        return ''.join(lines)
    stanza = next((s for s in stanzas if s.family == 'inet'), stanzas[0])
    last = lines[stanza.end - 1]
    if not last.endswith('\n'):
        lines[stanza.end - 1] = last + '\n'
    lines.insert(stanza.end, '%smtu %d\n' % (_option_indent(lines, stanza), mtu))
    return ''.join(lines)


# --------------------------------------------------------------------------
# side effects

@dataclasses.dataclass
class PersistPlan:
    """What persisting one link's MTU changes. ``apply`` is None when nothing
    changes; ``undo`` puts back what ``apply`` changed (after a later failure)."""

    method: str
    path: str
    before: str
    after: str
    apply: t.Callable[[], None] | None = None
    undo: t.Callable[[], None] | None = None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def result(self) -> dict[str, t.Any]:
        return {'method': self.method, 'path': self.path, 'changed': self.changed}

    def diff(self) -> dict[str, str]:
        return {'before_header': self.path, 'after_header': self.path, 'before': self.before, 'after': self.after}


def check_config_root(config_root: str | None) -> str:
    """config_root as given, refused when empty (a templated value that came
    out empty would mean the host's own /) or relative (relative to what?)."""
    if config_root is None or not config_root.strip():
        raise HostprepError('config_root is empty (%r): a templated value that came out empty would persist into '
                            'the host\'s own /; give the directory, or omit config_root for /' % config_root,
                            config_root=config_root)
    if not os.path.isabs(config_root):
        raise HostprepError('config_root %s is not an absolute path; give the absolute directory the network '
                            'configuration lives under' % config_root, config_root=config_root)
    return config_root


def read_config(path: str) -> str | None:
    """A configuration file's text (None: absent); a file that is no UTF-8
    text is refused by name rather than rewritten."""
    try:
        return read_text(path)
    except UnicodeDecodeError as exc:
        raise HostprepError('%s is not UTF-8 text (byte %d: %s); link_mtu reads and rewrites only text '
                            'configuration: fix the file or use persist=none' % (path, exc.start, exc.reason),
                            path=path) from None


def missing_dirs(directory: str) -> list[str]:
    """The directories makedirs(directory) would create, outermost first."""
    missing = []
    while directory and not os.path.lexists(directory):
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return list(reversed(missing))


class Persister:
    """Detect the network stack of a link and plan the write that persists
    its MTU. run(args) runs a command (list) and returns (rc, out, err);
    write(path, text) writes a file atomically.

    Every file read or written lies under config_root once symbolic links and
    ".." are resolved: a source line or a link that leads elsewhere is refused
    and named."""

    def __init__(self, config_root: str, run: t.Callable[..., tuple[int, str, str]],
                 write: t.Callable[[str, str], None], which: t.Callable[[str], str | None] = shutil.which) -> None:
        self.config_root = check_config_root(config_root)
        self.run = run
        self.write = write
        self.which = which
        self._nm_devices: dict[str, dict[str, str]] | None = None
        # Files planned in this run and their planned text: a second plan for the
        # same file (two stanzas of one interfaces file) starts from the first.
        self._planned: dict[str, str] = {}
        # ifindex -> MTU of every link this run changes (see plan_networkd).
        self.wanted: dict[int, int] = {}

    def path(self, relative: str) -> str:
        return os.path.join(self.config_root, relative.lstrip('/'))

    def outside(self, path: str) -> bool:
        """Whether path (resolved) leaves config_root."""
        root = os.path.realpath(self.config_root)
        resolved = os.path.realpath(path)
        return resolved != root and not resolved.startswith(root.rstrip('/') + '/')

    def inside(self, path: str, what: str) -> str:
        """path resolved, or HostprepError naming what led outside config_root."""
        if self.outside(path):
            raise HostprepError('%s leads to %s, outside config_root %s; link_mtu reads and writes network '
                                'configuration only under config_root: fix the path or the link'
                                % (what, os.path.realpath(path), self.config_root), path=path)
        return os.path.realpath(path)

    # -- detection -----------------------------------------------------------
    def nm_devices(self) -> dict[str, dict[str, str]] | None:
        """Devices NetworkManager knows, or None when nmcli is missing or NM
        does not run."""
        if self._nm_devices is None:
            nmcli = self.which('nmcli')
            if not nmcli:
                return None
            rc, out, dummy = self.run([nmcli, '-t', '-f', 'RUNNING', 'general'], check_rc=False)
            if rc != 0 or out.strip() != 'running':
                return None
            dummy, out, dummy = self.run([nmcli, '-t', '-f', 'DEVICE,TYPE,STATE,CON-UUID', 'device', 'status'])
            self._nm_devices = parse_nm_devices(out)
        return self._nm_devices

    def networkd_state(self, ifindex: int) -> tuple[str, dict[str, str] | None]:
        path = self.path(os.path.join(NETWORKD_STATE_DIR, str(ifindex)))
        if not os.path.lexists(path):
            return path, None
        text = read_config(self.inside(path, 'systemd-networkd link state file %s' % path))
        return path, parse_networkd_state(text or '')

    def ifupdown_files(self) -> list[str]:
        """/etc/network/interfaces and what it sources, recursively, in order.
        A source or source-directory line that leads outside config_root is
        refused, naming the file, line and text."""
        seen: list[str] = []

        def visit(path: str, via: str) -> None:
            if path in seen or not os.path.isfile(path):
                return
            self.inside(path, via)
            seen.append(path)
            text = read_config(path) or ''
            for lineno, kind, arg in ifupdown_sources(text):
                line = '"%s %s" (%s line %d)' % (kind, arg, path, lineno)
                arg = self.path(arg) if arg.startswith('/') else os.path.join(os.path.dirname(path), arg)
                self.inside(arg if kind == 'source-directory' else os.path.dirname(arg) or '.', line)
                if kind == 'source':
                    for found in sorted(glob.glob(arg)):
                        visit(found, 'file %s, read through %s,' % (found, line))
                elif os.path.isdir(arg):
                    for name in sorted(os.listdir(arg)):
                        if RUN_PARTS_NAME.match(name):
                            visit(os.path.join(arg, name), 'file %s, read through %s,' % (name, line))

        visit(self.path(IFUPDOWN_INTERFACES), self.path(IFUPDOWN_INTERFACES))
        return seen

    def ifupdown_stanza_file(self, ifname: str) -> str | None:
        for path in self.ifupdown_files():
            if ifupdown_stanzas((read_config(path) or '').splitlines(True), ifname):
                return path
        return None

    def detect(self, ifname: str, ifindex: int) -> str:
        """persist=auto: the stack that manages this link."""
        checked = []
        devices = self.nm_devices()
        if devices is None:
            checked.append('NetworkManager: nmcli missing or NetworkManager not running')
        elif nm_manages(devices.get(ifname)):
            return 'networkmanager'
        else:
            state = (devices.get(ifname) or {}).get('state', 'unknown to it')
            checked.append('NetworkManager: runs but does not manage %s (%s)' % (ifname, state))
        path, state = self.networkd_state(ifindex)
        if state and state.get('NETWORK_FILE'):
            return 'networkd'
        checked.append('networkd: %s %s' % (path, 'has no NETWORK_FILE' if state is not None else 'does not exist'))
        if self.ifupdown_stanza_file(ifname):
            return 'ifupdown'
        checked.append('ifupdown: no "iface %s" stanza in %s' % (
            ifname, ', '.join(self.ifupdown_files()) or self.path(IFUPDOWN_INTERFACES) + ' (missing)'))
        raise HostprepError('no network stack manages link %s, so its MTU cannot be persisted; checked %s. '
                            'Use persist=none, or configure the link in NetworkManager, systemd-networkd or '
                            'ifupdown first' % (ifname, '; '.join(checked)), ifname=ifname)

    # -- plans -----------------------------------------------------------------
    def plan(self, method: str, ifname: str, ifindex: int, mtu: int) -> PersistPlan:
        if method == 'networkd':
            return self.plan_networkd(ifname, ifindex, mtu)
        if method == 'networkmanager':
            return self.plan_networkmanager(ifname, mtu)
        if method == 'ifupdown':
            return self.plan_ifupdown(ifname, mtu)
        raise HostprepError('unknown persist method %r; use one of %s' % (method, ', '.join(METHODS)))

    def text(self, path: str) -> str | None:
        """What path holds once the plans made so far are applied (None: absent)."""
        return self._planned[path] if path in self._planned else read_config(path)

    def file_plan(self, method: str, path: str, before: str | None, after: str) -> PersistPlan:
        """A plan that writes after to path; its undo writes before back, or
        removes the file and the directories the write created. Plans of one
        file chain: undone newest first, each puts back the text it found."""
        self._planned[path] = after
        plan = PersistPlan(method=method, path=path, before=before or '', after=after)
        if not plan.changed:
            return plan
        created: list[str] = []

        def apply() -> None:
            created[:] = missing_dirs(os.path.dirname(path))
            try:
                for directory in created:
                    os.mkdir(directory, 0o755)
                self.write(path, after)
            except BaseException:
                self._remove_dirs(created)
                raise

        def undo() -> None:
            if before is None:
                os.unlink(path)
                self._remove_dirs(created)
            else:
                self.write(path, before)
        plan.apply = apply
        plan.undo = undo
        return plan

    @staticmethod
    def _remove_dirs(created: list[str]) -> None:
        for directory in reversed(created):
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass

    def plan_networkd(self, ifname: str, ifindex: int, mtu: int) -> PersistPlan:
        state_path, state = self.networkd_state(ifindex)
        network_file = (state or {}).get('NETWORK_FILE')
        if not network_file:
            raise HostprepError('systemd-networkd does not manage link %s (%s %s), so no .network file can carry '
                                'its MTU; add a .network file matching %s (and run "networkctl reload"), or '
                                'choose another persist method' % (
                                    ifname, state_path, 'has no NETWORK_FILE' if state is not None else 'does not exist',
                                    ifname), ifname=ifname)
        path = networkd_dropin_path(self.config_root, network_file)
        path = self.inside(path, 'the drop-in %s for %s' % (path, network_file))
        others = [i for i in self.networkd_links_of(network_file) if i != ifindex and self.wanted.get(i) != mtu]
        if others:
            raise HostprepError('the .network file %s that manages link %s also manages the links with interface '
                                'index %s (%s), so a drop-in would give them MTU %d at the next networkd reload too; '
                                'set the same MTU on them in this run, give %s a .network file of its own, or use '
                                'persist=none' % (network_file, ifname, ', '.join(map(str, others)),
                                                  self.path(NETWORKD_STATE_DIR), mtu, ifname), ifname=ifname)
        return self.file_plan('networkd', path, self.text(path), render_networkd_dropin(mtu))

    def networkd_links_of(self, network_file: str) -> list[int]:
        """The interface indexes whose networkd state names network_file."""
        directory = self.path(NETWORKD_STATE_DIR)
        found = []
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            if name.isdigit() and not self.outside(os.path.join(directory, name)):
                state = parse_networkd_state(read_config(os.path.join(directory, name)) or '')
                if state.get('NETWORK_FILE') == network_file:
                    found.append(int(name))
        return found

    def plan_ifupdown(self, ifname: str, mtu: int) -> PersistPlan:
        path = self.ifupdown_stanza_file(ifname)
        if path is None:
            raise HostprepError('no "iface %s inet|inet6 ..." stanza in %s, so ifupdown cannot carry its MTU; add '
                                'a stanza for %s or choose another persist method' % (
                                    ifname, ', '.join(self.ifupdown_files()) or self.path(IFUPDOWN_INTERFACES),
                                    ifname), ifname=ifname)
        path = os.path.realpath(path)
        before = self.text(path) or ''
        # A symbolic link inside config_root is written through, keeping it.
        return self.file_plan('ifupdown', path, before, set_ifupdown_mtu(before, ifname, mtu))

    def plan_networkmanager(self, ifname: str, mtu: int) -> PersistPlan:
        devices = self.nm_devices()
        if devices is None:
            raise HostprepError('persist=networkmanager, but nmcli is missing or NetworkManager is not running; '
                                'choose another persist method', ifname=ifname)
        device = devices.get(ifname)
        if not nm_manages(device):
            raise HostprepError('NetworkManager has no active connection of its own on %s (device state: %s); '
                                'activate a connection on it ("nmcli device connect %s") or choose another '
                                'persist method' % (ifname, (device or {}).get('state', 'unknown'), ifname),
                                ifname=ifname)
        uuid = device['uuid']
        nmcli = self.which('nmcli')
        dummy, out, dummy = self.run([nmcli, '-t', 'connection', 'show', uuid])
        connection = parse_nm_connection(out)
        prop = nm_mtu_property(connection, uuid)
        current = nm_mtu_value(connection.get(prop))
        name = 'nmcli connection %s (%s) %s' % (uuid, connection.get('connection.id', ifname), prop)
        plan = PersistPlan(method='networkmanager', path=name,
                           before='%s\n' % ('auto' if current is None else current), after='%d\n' % mtu)
        if plan.changed:
            # The running MTU is already set, so no "nmcli device reapply".
            plan.apply = lambda: self.run([nmcli, 'connection', 'modify', uuid, prop, str(mtu)])
            plan.undo = lambda: self.run([nmcli, 'connection', 'modify', uuid, prop, str(current or 0)])
        return plan
