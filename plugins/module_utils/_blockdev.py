# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Block devices: what is on them and what uses them, private to hostprep.container_host.

Every module that wipes or formats a device asks ``in_use_problem()`` first,
before its own ``force``/``wipe_signatures`` is even looked at: a device in
use is never destroyed, whatever the task says. The uses, for the device and
each of its partitions:

* mounted: the kernel's mount table (``findmnt -J``, matched by device
  number) and ``lsblk -J`` mount points;
* swap: ``/proc/swaps`` (the kernel's own table; its paths are compared by
  device number);
* holders: ``/sys/dev/block/MAJ:MIN/holders`` (device-mapper, md, bcache on
  top of it);
* LVM physical volume: an ``LVM2_member`` signature (``wipefs -J``), named
  with its volume group when ``pvs`` lists it;
* RAID or pool member: ``*_raid_member`` and ``zfs_member`` signatures;
* open by a process: ``/proc/PID/fd`` links that resolve to the device
  number, and the kernel refusing an exclusive open (``O_EXCL``: a mount,
  swap or holder in another mount namespace shows up only there).

Parsers and ``uses()`` are pure; ``probe()`` reads the host.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import read_text

if t.TYPE_CHECKING:
    from ansible_collections.hostprep.container_host.plugins.module_utils._mounts import Mount

Runner = t.Callable[..., t.Tuple[int, str, str]]

LSBLK_ARGS = ['lsblk', '-J', '-b', '-p', '-o', 'NAME,KNAME,TYPE,PTTYPE,FSTYPE,MOUNTPOINT,SIZE']
# Signatures of a device that belongs to something else as a whole.
MEMBER_TYPES = {'LVM2_member': 'an LVM physical volume', 'zfs_member': 'a ZFS pool member'}


# ---- parsers -------------------------------------------------------------------------

def parse_wipefs(text: str) -> list[dict[str, t.Any]]:
    """Signatures ``wipefs -J [--no-act] DEV`` found: [{type, offset, uuid, label}]
    (filesystems, RAID, partition tables with their backup copies)."""
    if not (text or '').strip():
        return []  # wipefs prints nothing at all for a blank device on some versions
    data = json.loads(text)
    return [{'type': sig.get('type'), 'offset': sig.get('offset'), 'uuid': sig.get('uuid'),
             'label': sig.get('label')} for sig in data.get('signatures') or []]


def parse_lsblk(text: str) -> list[dict[str, t.Any]]:
    """Flattened ``lsblk -J -b -p -o NAME,KNAME,TYPE,PTTYPE,FSTYPE,MOUNTPOINT,SIZE`` tree;
    each node gets 'depth' (0 for the device itself)."""
    nodes: list[dict[str, t.Any]] = []

    def walk(items: list[dict[str, t.Any]], depth: int) -> None:
        for item in items:
            node = {k: v for k, v in item.items() if k != 'children'}
            node['depth'] = depth
            nodes.append(node)
            walk(item.get('children') or [], depth + 1)
    walk(json.loads(text).get('blockdevices') or [], 0)
    return nodes


def parse_swaps(text: str | None) -> list[str]:
    """Paths in /proc/swaps (the kernel's table; spaces escaped as \\040)."""
    lines = (text or '').splitlines()[1:]
    return [line.split()[0].replace('\\040', ' ') for line in lines if line.strip()]


def is_member_signature(sig_type: str | None) -> bool:
    return bool(sig_type) and (sig_type in MEMBER_TYPES or str(sig_type).endswith('_raid_member'))


def member_words(sig_type: str) -> str:
    if sig_type in MEMBER_TYPES:
        return MEMBER_TYPES[sig_type]
    return 'an md/RAID member (%s)' % sig_type


# ---- reading the host ----------------------------------------------------------------

def device_number(path: str) -> tuple[int, int] | None:
    """(major, minor) of a block device path (following symlinks), else None."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (os.major(info.st_rdev), os.minor(info.st_rdev)) if stat.S_ISBLK(info.st_mode) else None


def sysfs_dir(rdev: tuple[int, int]) -> str:
    return os.path.realpath('/sys/dev/block/%d:%d' % rdev)


def _sysfs_list(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _majmin(text: str | None) -> tuple[int, int] | None:
    major, sep, minor = (text or '').strip().partition(':')
    return (int(major), int(minor)) if sep and major.isdigit() and minor.isdigit() else None


def device_facts_from(real: str, rdev: tuple[int, int], nodes: list[dict[str, t.Any]], swaps: list[str],
                      mounts: list[Mount], sysdir: str | None,
                      number: t.Callable[[str], tuple[int, int] | None] = device_number) -> dict[str, t.Any]:
    """Size, partitions, mounts (of the device or its partitions), swap and
    holders. Mounts come from lsblk and from findmnt by device number
    together: lsblk alone misses what udev never saw (no udev in containers
    and test hosts), and findmnt's MAJ:MIN of btrfs is an anonymous one, so
    a mount's source is also compared by its device number."""
    size = nodes[0].get('size') if nodes else None
    partitions: list[dict[str, t.Any]] = []
    holders: list[str] = []
    if sysdir:
        base = os.path.basename(sysdir)
        holders = _sysfs_list(os.path.join(sysdir, 'holders'))
        for name in _sysfs_list(sysdir):
            if name.startswith(base) and os.path.exists(os.path.join(sysdir, name, 'partition')):
                part_rdev = _majmin(read_text(os.path.join(sysdir, name, 'dev')))
                partitions.append({'path': '/dev/' + name, 'rdev': part_rdev,
                                   'holders': _sysfs_list(os.path.join(sysdir, name, 'holders'))})
    rdevs = {rdev} | {part['rdev'] for part in partitions if part['rdev']}
    mounted: list[str] = []
    for node in nodes:
        if node.get('mountpoint') and node['mountpoint'] != '[SWAP]':
            mounted.append('%s on %s' % (node.get('name'), node['mountpoint']))
    for mnt in mounts:
        source = mnt.source or ''
        if not source.startswith('/dev/'):
            continue
        if _majmin(getattr(mnt, 'majmin', None)) in rdevs or number(source) in rdevs:
            text = '%s on %s' % (source, mnt.target)
            if text not in mounted:
                mounted.append(text)
    swap = [path for path in swaps if path.startswith('/dev/') and number(path) in rdevs]
    swap += [node['name'] for node in nodes if node.get('mountpoint') == '[SWAP]' and node['name'] not in swap]
    holders += ['%s (on %s)' % (holder, part['path']) for part in partitions for holder in part['holders']]
    children = [n.get('name') for n in nodes if n['depth'] > 0]
    for part in partitions:
        if part['path'] not in children:
            children.append(part['path'])
    return {'size': size, 'mounted': mounted, 'swap': swap, 'holders': holders, 'children': children,
            'partitions': [os.path.basename(part['path']) for part in partitions],
            'partition_rdevs': {part['path']: part['rdev'] for part in partitions}}


def open_by(rdevs: t.Iterable[tuple[int, int]], proc: str = '/proc', own_pid: int | None = None) -> list[str]:
    """Processes holding one of the devices open: 'NAME (pid N) has DEV open',
    from the /proc/PID/fd links (compared by device number)."""
    wanted = set(rdevs)
    own_pid = os.getpid() if own_pid is None else own_pid
    found: list[str] = []
    for pid in sorted((p for p in _sysfs_list(proc) if p.isdigit()), key=int):
        if int(pid) == own_pid:
            continue
        fd_dir = os.path.join(proc, pid, 'fd')
        for fd in _sysfs_list(fd_dir):
            try:
                info = os.stat(os.path.join(fd_dir, fd))
                if not stat.S_ISBLK(info.st_mode) or (os.major(info.st_rdev), os.minor(info.st_rdev)) not in wanted:
                    continue
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue  # the process or the descriptor went away
            name = (read_text(os.path.join(proc, pid, 'comm')) or '?').strip()
            text = '%s (pid %s) has %s open' % (name, pid, link)
            if text not in found:
                found.append(text)
    return found


def claimed_exclusively(path: str) -> bool:
    """Whether the kernel refuses an exclusive open (O_EXCL on a block device,
    what mkfs and wipefs use): something claims the device or a partition."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_EXCL)
    except OSError as exc:
        return exc.errno == errno.EBUSY
    os.close(fd)
    return False


def probe(run: Runner, path: str, mounts: list[Mount], swaps: list[str] | None = None) -> dict[str, t.Any]:
    """Read-only facts about one device path: what it is, its signatures and
    those of its partitions, and everything ``uses()`` needs. run is a
    callable run(argv, check_rc=True) -> (rc, out, err)."""
    facts: dict[str, t.Any] = {'path': path, 'exists': os.path.lexists(path), 'real': None, 'block': False,
                               'kind': None, 'rdev': None, 'size': None, 'signatures': [], 'mounted': [],
                               'swap': [], 'holders': [], 'children': [], 'partitions': [],
                               'partition_signatures': {}, 'open_by': [], 'claimed': False}
    if not facts['exists']:
        return facts
    real = os.path.realpath(path)
    facts['real'] = real
    try:
        info = os.stat(real)
    except OSError as exc:
        facts['exists'] = False
        facts['error'] = str(exc)
        return facts
    facts['block'] = stat.S_ISBLK(info.st_mode)
    facts['kind'] = ('block device' if facts['block'] else 'directory' if stat.S_ISDIR(info.st_mode)
                     else 'regular file' if stat.S_ISREG(info.st_mode) else 'character device'
                     if stat.S_ISCHR(info.st_mode) else 'special file')
    if not facts['block']:
        return facts
    facts['rdev'] = (os.major(info.st_rdev), os.minor(info.st_rdev))
    if swaps is None:
        swaps = parse_swaps(read_text('/proc/swaps'))
    dummy_rc, out, dummy_err = run(LSBLK_ARGS + [real])
    nodes = parse_lsblk(out)
    facts.update(device_facts_from(real, facts['rdev'], nodes, swaps, mounts, sysfs_dir(facts['rdev'])))
    dummy_rc, out, dummy_err = run(['wipefs', '-J', real])
    facts['signatures'] = parse_wipefs(out)
    for part, part_rdev in facts['partition_rdevs'].items():
        if part_rdev and device_number(part) == part_rdev:
            rc, out, dummy_err = run(['wipefs', '-J', part], check_rc=False)
            facts['partition_signatures'][part] = parse_wipefs(out) if rc == 0 else []
    rdevs = [facts['rdev']] + [r for r in facts['partition_rdevs'].values() if r]
    facts['open_by'] = open_by(rdevs)
    facts['claimed'] = claimed_exclusively(real)
    return facts


# ---- the decision --------------------------------------------------------------------

def pv_row_for(pvs: list[dict[str, t.Any]], rdev: tuple[int, int] | None, paths: t.Iterable[str]) -> dict[str, t.Any] | None:
    """The ``pvs`` report row of a device, matched by major:minor (paths differ: by-id links)."""
    if rdev:
        for row in pvs:
            if (row.get('pv_major'), row.get('pv_minor')) == tuple(rdev):
                return row
    names = set(p for p in paths if p)
    for row in pvs:
        if row.get('pv_name') in names:
            return row
    return None


def uses(facts: dict[str, t.Any], pvs: list[dict[str, t.Any]] | None = None,
         own_vg: str | None = None) -> list[str]:
    """Every use of the device (or of its partitions) found by probe(), as
    words for a message; empty when nothing uses it.

    pvs: rows of ``pvs`` when LVM is installed, to name a PV's volume group.
    own_vg: the volume group the caller builds; a PV of it, or a PV in no VG,
    is then not a use (lvm_thinpool adds such PVs itself)."""
    found: list[str] = []
    if facts.get('mounted'):
        found.append('mounted (%s)' % ', '.join(facts['mounted']))
    if facts.get('swap'):
        found.append('used as swap (%s)' % ', '.join(facts['swap']))
    if facts.get('holders'):
        found.append('held by %s (device-mapper, md or another layer on top of it)' % ', '.join(facts['holders']))
    members = [(facts.get('real') or facts['path'], facts.get('rdev'), facts.get('signatures') or [])]
    members += [(part, facts.get('partition_rdevs', {}).get(part), sigs)
                for part, sigs in sorted((facts.get('partition_signatures') or {}).items())]
    for dev, rdev, sigs in members:
        types = set(s['type'] for s in sigs if is_member_signature(s['type']))
        row = pv_row_for(pvs, rdev, [dev] if dev != facts.get('real') else [dev, facts.get('path')]) if pvs else None
        if row is not None or 'LVM2_member' in types:
            types.discard('LVM2_member')
            vg = (row or {}).get('vg_name') or ''
            if own_vg is not None and row is not None and vg in ('', own_vg):
                pass  # a PV of the caller's VG, or one in no VG, is what lvm_thinpool builds on
            elif vg:
                found.append('%s is an LVM physical volume of volume group %s (vgreduce %s %s, then pvremove %s)'
                             % (dev, vg, vg, dev, dev))
            elif row is not None:
                found.append('%s is an LVM physical volume (in no volume group; pvremove %s)' % (dev, dev))
            else:
                found.append('%s is an LVM physical volume (LVM2_member signature%s; pvremove %s)'
                             % (dev, ', not listed by pvs' if pvs is not None else '', dev))
        for sig_type in sorted(types):
            found.append('%s is %s' % (dev, member_words(sig_type)))
    if facts.get('open_by'):
        found.append('open by a process: %s' % ', '.join(facts['open_by']))
    if facts.get('claimed') and not (facts.get('mounted') or facts.get('swap') or facts.get('holders')
                                     or facts.get('open_by')):
        found.append('claimed by the kernel or another program (an exclusive open fails with "device busy": '
                     'mounted in another mount namespace, swap, RAID or device-mapper)')
    return found


def refusal(path: str, found: list[str], override: str | None = None) -> str:
    """The message refusing a device with the uses found. override names the
    option that does not override it (force=true, wipe_signatures=true)."""
    return ('device %s is in use: %s; stop that use first%s. Nothing was changed'
            % (path, '; '.join(found), ' (%s does not override this)' % override if override else ''))


def in_use_problem(facts: dict[str, t.Any], override: str, pvs: list[dict[str, t.Any]] | None = None,
                   own_vg: str | None = None) -> str | None:
    """The refusal for a device in use (see uses()), or None."""
    found = uses(facts, pvs, own_vg)
    return refusal(facts['path'], found, override) if found else None
