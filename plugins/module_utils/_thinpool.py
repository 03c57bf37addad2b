# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Docker's direct-lvm thin pool, private to hostprep.container_host.

Three stages, so nothing changes before every check passed:

1. ``check_params``: pure checks of names, sizes and percentages.
2. ``read_state`` and ``_blockdev.probe``: read-only commands (pvs/vgs/lvs JSON,
   ``wipefs -J``, ``lsblk -J``, ``findmnt -J``, sysfs) turned into plain data.
3. ``plan_present`` / ``plan_absent``: pure functions from that data to a list
   of Steps (argument lists with their undo) and the predicted layout.

``apply`` runs the steps and, when one fails, undoes the steps this run made
in reverse order (a half-built VG is worse than none).
"""

from __future__ import annotations

import os
import re
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._blockdev import (
    in_use_problem,
    parse_wipefs,
    probe,
    pv_row_for,
    refusal,
    uses,
)
from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    Changes,
    HostprepError,
    atomic_write,
    changes_of,
    read_text,
)
from ansible_collections.hostprep.container_host.plugins.module_utils._mounts import read_mounts
from ansible_collections.hostprep.container_host.plugins.module_utils._lvm import (
    as_runner,
    dm_name,
    dm_path,
    find_lv,
    is_thin_pool,
    lv_is_open,
    lvm_report,
    name_problem,
)
from ansible_collections.hostprep.container_host.plugins.module_utils._sizes import format_size, size_option

KIB = 1024
MIB = 1024 ** 2
GIB = 1024 ** 3
# LVM's defaults (lvm.conf allocation/physical_extent_size, pvcreate
# --dataalignment): used to predict the VG of devices that are not PVs yet.
DEFAULT_EXTENT = 4 * MIB
DEFAULT_PE_START = 1 * MIB
THIN_META_MIN = 2 * MIB          # lvconvert refuses a smaller metadata LV
CHUNK_MIN = 64 * KIB             # thin-pool chunk: 64 KiB .. 1 GiB, multiple of 64 KiB
CHUNK_MAX = 1 * GIB


def human(size: int | None) -> str:
    """Bytes as the messages of this module say them: "4 MiB", "1.50 GiB", "unknown"."""
    return format_size(size, decimals=None, unknown='unknown')


# ---- stage 1: parameters ------------------------------------------------------

def check_params(p: dict[str, t.Any]) -> dict[str, t.Any]:
    """Validate the module parameters; return the normalized ones (sizes in
    bytes, defaults for the percentages). Raises HostprepError on the first
    problem, before anything is read or changed."""
    norm = dict(p)
    problem = name_problem(p['vg'], 'VG')
    if problem:
        raise HostprepError('VG name %r is invalid: %s; choose a name like "docker"' % (p['vg'], problem))
    for key in ('pool', 'profile'):
        problem = name_problem(p[key], 'LV')
        if problem:
            raise HostprepError('%s name %r is invalid: %s' % (key, p[key], problem))
    meta_name = p['pool'] + 'meta'
    problem = name_problem(meta_name, 'LV')
    if problem:
        raise HostprepError('pool name %r gives the metadata LV name %r, which is invalid: %s'
                            % (p['pool'], meta_name, problem))
    devices = p.get('devices') or []
    if len(set(devices)) != len(devices):
        raise HostprepError('devices lists a device twice: %s' % ', '.join(devices))
    if p.get('data_size') is not None and p.get('data_percent') is not None:
        raise HostprepError('give data_percent or data_size, not both')
    if p.get('metadata_size') is not None and p.get('metadata_percent') is not None:
        raise HostprepError('give metadata_percent or metadata_size, not both')
    if p.get('data_size') is None and p.get('data_percent') is None:
        norm['data_percent'] = 95
    if p.get('metadata_size') is None and p.get('metadata_percent') is None:
        norm['metadata_percent'] = 1
    for key in ('data_percent', 'metadata_percent'):
        value = norm.get(key)
        if value is not None and not 0 < value <= 100:
            raise HostprepError('%s=%s is out of range: a percentage of the VG must be above 0 and at most 100'
                                % (key, value))
    if norm.get('data_percent') is not None and norm.get('metadata_percent') is not None:
        total = norm['data_percent'] + norm['metadata_percent']
        if total > 100:
            raise HostprepError('data_percent=%s and metadata_percent=%s add up to %s%% of the VG; '
                                'they must leave room: at most 100 together (Docker uses 95 and 1)'
                                % (norm['data_percent'], norm['metadata_percent'], total))
        if norm['data_percent'] + 2 * norm['metadata_percent'] > 100:
            raise HostprepError('data_percent=%s leaves no room for LVM\'s spare metadata LV (as large as the '
                                'metadata LV, used for repairs): data_percent + 2 x metadata_percent must be '
                                'at most 100' % norm['data_percent'])
    # A number without a unit is in the unit LVM reads it in: MiB for -L, KiB for -c.
    for key, unit in (('data_size', 'MiB'), ('metadata_size', 'MiB'), ('chunk_size', 'KiB')):
        if p.get(key) is not None:
            norm[key] = size_option(key, p[key], default_unit=unit)
    if norm.get('metadata_size') is not None and norm['metadata_size'] < THIN_META_MIN:
        raise HostprepError('metadata_size %s is below the 2 MiB LVM needs for thin-pool metadata'
                            % human(norm['metadata_size']))
    chunk = norm['chunk_size']
    if chunk < CHUNK_MIN or chunk > CHUNK_MAX or chunk % CHUNK_MIN:
        raise HostprepError('chunk_size %s is invalid: a thin-pool chunk is a multiple of 64 KiB between '
                            '64 KiB and 1 GiB (Docker uses 512K)' % p['chunk_size'])
    if not 50 <= p['autoextend_threshold'] <= 100:
        raise HostprepError('autoextend_threshold=%s is out of range: give 50 to 100 (LVM treats lower values as 50; '
                            '100 turns autoextend off)' % p['autoextend_threshold'])
    if p['autoextend_percent'] < 0:
        raise HostprepError('autoextend_percent=%s is out of range: give 0 or more' % p['autoextend_percent'])
    thin = p.get('thin_volume')
    if thin:
        problem = name_problem(thin['name'], 'LV')
        if problem:
            raise HostprepError('thin_volume name %r is invalid: %s' % (thin['name'], problem))
        if thin['name'] in (p['pool'], meta_name):
            raise HostprepError('thin_volume name %r is taken by the pool' % thin['name'])
        if p.get('state') == 'present':
            if not thin.get('size'):
                raise HostprepError('thin_volume needs a size, like 20G')
            norm['thin_volume'] = dict(thin, size=size_option('thin_volume size', thin['size'], default_unit='MiB'))
    if not os.path.isabs(p['profile_dir']):
        raise HostprepError('profile_dir must be an absolute path, not %r' % p['profile_dir'])
    return norm


# ---- stage 2: what the host has ---------------------------------------------

def read_state(run: t.Any, vg: str) -> dict[str, t.Any]:
    """PVs of the host, the VG (or None) and all LVs of it (hidden ones too)."""
    pvs = lvm_report(run, 'pv', [])
    vgs = lvm_report(run, 'vg', ['--select', 'vg_name=%s' % vg])
    lvs = lvm_report(run, 'lv', ['-a', '--select', 'vg_name=%s' % vg]) if vgs else []
    return {'pvs': pvs, 'vg': vgs[0] if vgs else None, 'lvs': lvs}


def pv_for(pvs: list[dict[str, t.Any]], facts: dict[str, t.Any]) -> dict[str, t.Any] | None:
    """The PV row of a device, matched by major:minor (paths differ: by-id links)."""
    if not facts.get('rdev'):
        return None
    return pv_row_for(pvs, facts['rdev'], [facts.get('real'), facts.get('path')])


# ---- stage 3: the plan ------------------------------------------------------

class Step:
    """One change: an argument list (or a profile file write) and its undo."""

    def __init__(self, what: str, argv: list[str] | None = None, undo: list[str] | None = None,
                 drop_undos: int = 0, write: tuple[str, str | None] | None = None) -> None:
        self.what = what
        self.argv = argv
        self.undo = undo
        self.drop_undos = drop_undos  # lvconvert turns two LVs into one pool
        self.write = write            # (path, content or None to remove)

    def as_dict(self) -> dict[str, t.Any]:
        verb = 'write' if self.write and self.write[1] is not None else 'remove'
        return {'what': self.what, 'cmd': self.argv or [verb, self.write[0] if self.write else '']}


def profile_text(threshold: int, percent: int) -> str:
    return ('# Managed by hostprep.container_host.lvm_thinpool: autoextend of Docker\'s thin pool.\n'
            'activation {\n'
            '\tthin_pool_autoextend_threshold=%d\n'
            '\tthin_pool_autoextend_percent=%d\n'
            '}\n' % (threshold, percent))


_PROFILE_KEY_RE = re.compile(r'^\s*([a-z_]+)\s*=\s*(\S+?)\s*$')


def profile_values(text: str | None) -> dict[str, str] | None:
    """key=value settings of an LVM profile, comments and layout ignored."""
    if text is None:
        return None
    values = {}
    for line in text.splitlines():
        line = line.split('#', 1)[0]
        match = _PROFILE_KEY_RE.match(line)
        if match:
            values[match.group(1)] = match.group(2).strip('"')
    return values


def extents_of_new_pv(size: int, extent: int) -> int:
    return max(0, (size - DEFAULT_PE_START) // extent)


def percent_extents(percent: float, count: int) -> int:
    """What ``-l N%VG`` gives: floor, as lvm2 computes it."""
    return int(percent * count // 100)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def needed_extents(p: dict[str, t.Any], extent: int) -> tuple[int, int]:
    """(data, metadata) extent minimums: metadata at least 2 MiB, data at
    least one chunk."""
    return max(1, _ceil_div(p['chunk_size'], extent)), max(1, _ceil_div(THIN_META_MIN, extent))


def min_vg_extents(p: dict[str, t.Any], extent: int, has_spare: bool) -> int:
    """The smallest VG (in extents) the requested layout fits in."""
    dmin, mmin = needed_extents(p, extent)
    data_abs = _ceil_div(p['data_size'], extent) if p.get('data_size') is not None else None
    meta_abs = _ceil_div(p['metadata_size'], extent) if p.get('metadata_size') is not None else None
    count = 1
    while count < 1 << 40:
        data = data_abs if data_abs is not None else percent_extents(p['data_percent'], count)
        meta = meta_abs if meta_abs is not None else percent_extents(p['metadata_percent'], count)
        if data >= dmin and meta >= mmin and data + meta * (1 if has_spare else 2) <= count:
            return count
        # jump ahead when absolute sizes dominate
        count = max(count + 1, (data_abs or 0) + (meta_abs or 0) * (1 if has_spare else 2)) if (
            data_abs is not None and meta_abs is not None) else count + 1
    return count


def layout(state: dict[str, t.Any], p: dict[str, t.Any], profile_content: str | None) -> dict[str, t.Any]:
    """The layout as the diff shows it."""
    vg = state.get('vg')
    pool = find_lv(state.get('lvs') or [], p['vg'], p['pool'])
    thin_name = (p.get('thin_volume') or {}).get('name')
    thin = find_lv(state.get('lvs') or [], p['vg'], thin_name) if thin_name else None
    return {
        'vg': None if not vg else {
            'name': vg['vg_name'], 'size': vg.get('vg_size'), 'extent_size': vg.get('vg_extent_size'),
            'pvs': sorted(r['pv_name'] for r in state.get('pvs') or [] if r.get('vg_name') == p['vg'])},
        'pool': None if not pool else {
            'name': pool['lv_name'], 'segtype': pool.get('segtype'), 'size': pool.get('lv_size'),
            'metadata_size': pool.get('lv_metadata_size'), 'chunk_size': pool.get('chunk_size'),
            'profile': pool.get('lv_profile') or None, 'monitor': pool.get('seg_monitor') or None},
        'thin_volume': None if not thin else {'name': thin['lv_name'], 'size': thin.get('lv_size'),
                                              'filesystem': state.get('thin_fs')},
        'profile': profile_content,
    }


def device_problem(facts: dict[str, t.Any], pv: dict[str, t.Any] | None, vg: str, wipe: bool,
                   min_size: int, pvs: list[dict[str, t.Any]] | None = None) -> tuple[str | None, bool]:
    """(error, needs_wipefs) for a device that is not yet a PV of vg. A device
    in use (_blockdev.uses: mounted, swap, holders, a PV of another VG, a RAID
    member, open by a process) is refused whatever wipe_signatures says."""
    path = facts['path']
    if not facts['exists']:
        return ('device %s does not exist; check the path (ls -l /dev/disk/by-id/ lists the disks)' % path, False)
    if not facts['block']:
        return ('%s is not a block device but a %s; give a disk or partition (for a file, set up a loop device '
                'with losetup first)' % (path, facts['kind']), False)
    problem = in_use_problem(facts, 'wipe_signatures=true', pvs if pvs is not None else [pv] if pv else [], own_vg=vg)
    if problem:
        return (problem, False)
    if facts['size'] is not None and facts['size'] < min_size:
        return ('device %s is too small: %s; a PV needs at least %s (1 MiB of LVM metadata and one %s extent)'
                % (path, human(facts['size']), human(min_size), human(min_size - DEFAULT_PE_START)), False)
    if pv is not None:
        return (None, False)  # an orphan PV: ready for vgcreate/vgextend
    sigs = [s['type'] for s in facts['signatures']]
    parts = facts.get('partitions') or []
    if sigs or parts:
        what = []
        if sigs:
            what.append('signatures %s' % ', '.join(sorted(set(sigs))))
        if parts:
            what.append('partitions %s' % ', '.join(parts))
        if not wipe:
            return ('device %s carries %s; refusing to destroy it. Pass wipe_signatures=true to erase them '
                    '(wipefs --all) and use the device anyway' % (path, ' and '.join(what)), False)
        return (None, True)
    return (None, False)


def plan_present(p: dict[str, t.Any], state: dict[str, t.Any], devices: list[dict[str, t.Any]],
                 profile_now: str | None, thin_fs: str | None = None,
                 thin_uses: list[str] | None = None) -> dict[str, t.Any]:
    """Steps that bring the host to the requested layout, and its prediction.
    devices: _blockdev.probe() facts in O(devices) order; thin_fs and
    thin_uses: the signature and the uses (_blockdev.uses) of an existing thin
    volume. Raises HostprepError on anything that makes the layout impossible,
    before any step: the devices, the VG's size, the pool's name, then
    growing the pool and the thin volume."""
    vg_name, pool_name = p['vg'], p['pool']
    vg = state.get('vg')
    lvs = state.get('lvs') or []
    extent = vg['vg_extent_size'] if vg else DEFAULT_EXTENT
    pvs = screen_devices(p, state, devices, extent)
    if vg is None and not pvs['new']:
        raise HostprepError('volume group %s does not exist; give devices to create it from' % vg_name)
    total = (vg['vg_extent_count'] if vg else 0) + pvs['extents']
    free = (vg['vg_free_count'] if vg else 0) + pvs['extents']
    pool = existing_pool(lvs, vg_name, pool_name)
    sizes = pool_extents(p, lvs, extent, total, free, pool)
    steps = vg_steps(vg_name, vg, pvs)
    profile_step, profile_after = profile_plan(p, profile_now)
    steps.extend(profile_step)
    warnings: list[str] = []
    if pool is None:
        pool_steps, predicted_pool, used = new_pool(p, sizes, extent)
    else:
        pool_steps, predicted_pool, used = grown_pool(p, pool, sizes, extent, free, warnings)
    steps.extend(pool_steps)
    thin_steps, predicted_thin = thin_volume_plan(p, lvs, extent, thin_fs, thin_uses, warnings)
    steps.extend(thin_steps)
    after_vg = {'name': vg_name, 'size': total * extent, 'extent_size': extent,
                'pvs': sorted(set([r['pv_name'] for r in state['pvs'] if r.get('vg_name') == vg_name] + pvs['new']))}
    after = {'vg': after_vg, 'pool': dict(predicted_pool, name=pool_name), 'thin_volume': predicted_thin,
             'profile': profile_after}
    return {'steps': steps, 'warnings': warnings, 'after': after, 'pvs_added': pvs['new'],
            'free_extents_after': free - used}


def screen_devices(p: dict[str, t.Any], state: dict[str, t.Any], devices: list[dict[str, t.Any]],
                   extent: int) -> dict[str, t.Any]:
    """The devices to add to the VG ('new'), those to wipe and to pvcreate, and the extents they add; every
    device that cannot be used is named in one HostprepError."""
    found: dict[str, t.Any] = {'new': [], 'wipe': [], 'pvcreate': [], 'extents': 0}
    errors: list[str] = []
    for facts in devices:
        pv = pv_for(state['pvs'], facts)
        if pv is not None and pv.get('vg_name') == p['vg']:
            continue  # already ours
        error, needs_wipe = device_problem(facts, pv, p['vg'], p['wipe_signatures'], DEFAULT_PE_START + extent,
                                           state['pvs'])
        if error:
            errors.append(error)
            continue
        dev = facts['real']
        if needs_wipe:
            found['wipe'].append(dev)
        if pv is None:
            found['pvcreate'].append(dev)
            found['extents'] += extents_of_new_pv(facts['size'] or 0, extent)
        else:
            found['extents'] += (pv.get('pv_size') or 0) // extent
        found['new'].append(dev)
    if errors:
        raise HostprepError('; '.join(errors), devices=[d['path'] for d in devices])
    return found


def existing_pool(lvs: list[dict[str, t.Any]], vg_name: str, pool_name: str) -> dict[str, t.Any] | None:
    """The thin pool of that name, None when there is none; an LV of that name that is no thin pool, or a
    metadata LV left without its pool, is refused."""
    pool = find_lv(lvs, vg_name, pool_name)
    meta_name = pool_name + 'meta'
    if pool is not None and not is_thin_pool(pool):
        raise HostprepError('%s/%s exists but is not a thin pool (segment type %s); remove or rename it, or choose '
                            'another pool name' % (vg_name, pool_name, pool.get('segtype')))
    if pool is None and find_lv(lvs, vg_name, meta_name):
        raise HostprepError('%s/%s exists (left over from an interrupted set-up?) and no thin pool %s/%s; '
                            'remove it (lvremove %s/%s) or choose another pool name'
                            % (vg_name, meta_name, vg_name, pool_name, vg_name, meta_name))
    return pool


def pool_extents(p: dict[str, t.Any], lvs: list[dict[str, t.Any]], extent: int, total: int, free: int,
                 pool: dict[str, t.Any] | None) -> dict[str, t.Any]:
    """Data and metadata extents wanted, and whether LVM's spare metadata LV exists; a new pool that does not
    fit in the VG is refused, saying how much is missing."""
    has_spare = any((row.get('lv_name') or '').endswith('_pmspare]') or (row.get('lv_name') or '').endswith('_pmspare')
                    for row in lvs)
    dmin, mmin = needed_extents(p, extent)
    data = (_ceil_div(p['data_size'], extent) if p.get('data_size') is not None
            else percent_extents(p['data_percent'], total))
    meta = (_ceil_div(p['metadata_size'], extent) if p.get('metadata_size') is not None
            else percent_extents(p['metadata_percent'], total))
    if pool is None and (data < dmin or meta < mmin or data + meta * (1 if has_spare else 2) > free):
        need = min_vg_extents(p, extent, has_spare)
        used = total - free
        raise HostprepError(
            'the devices are too small for the thin pool: volume group %s would have %d extents of %s (%s), '
            '%d of them free; %s needs at least %d free extents (%s, data LV, metadata LV and LVM\'s spare '
            'metadata LV). Add devices with at least %s more, or give smaller sizes'
            % (p['vg'], total, human(extent), human(total * extent), free, size_words(p), need,
               human(need * extent), human(max(extent, (need + used - total) * extent))),
            vg_extents=total, free_extents=free, needed_extents=need)
    return {'data': data, 'meta': meta, 'has_spare': has_spare}


def vg_steps(vg_name: str, vg: dict[str, t.Any] | None, pvs: dict[str, t.Any]) -> list[Step]:
    steps = [Step('erase signatures of %s' % dev, ['wipefs', '--all', dev]) for dev in pvs['wipe']]
    steps.extend(Step('initialize %s as PV' % dev, ['pvcreate', dev], ['pvremove', '-y', dev]) for dev in pvs['pvcreate'])
    if vg is None:
        steps.append(Step('create VG %s' % vg_name, ['vgcreate', vg_name] + pvs['new'], ['vgremove', '-y', vg_name]))
    elif pvs['new']:
        steps.append(Step('add %s to VG %s' % (', '.join(pvs['new']), vg_name), ['vgextend', vg_name] + pvs['new'],
                          ['vgreduce', vg_name] + pvs['new']))
    return steps


def profile_plan(p: dict[str, t.Any], profile_now: str | None) -> tuple[list[Step], str | None]:
    """The step writing the LVM profile when its values differ, and the profile's text afterwards."""
    profile_path = os.path.join(p['profile_dir'], p['profile'] + '.profile')
    wanted = profile_text(p['autoextend_threshold'], p['autoextend_percent'])
    if profile_values(profile_now) == profile_values(wanted):
        return [], profile_now
    return [Step('write LVM profile %s' % profile_path, write=(profile_path, wanted))], wanted


def new_pool(p: dict[str, t.Any], sizes: dict[str, t.Any], extent: int) -> tuple[list[Step], dict[str, t.Any], int]:
    """Docker's recipe: data and metadata LVs, converted to a thin pool, the profile attached, monitored. Returns
    the steps, the pool predicted and the extents used."""
    vg_name, pool_name = p['vg'], p['pool']
    meta_name = pool_name + 'meta'
    full = '%s/%s' % (vg_name, pool_name)
    data, meta = sizes['data'], sizes['meta']
    steps = [
        Step('create data LV %s' % full,
             ['lvcreate', '--wipesignatures', 'y', '-y', '-n', pool_name, vg_name, '-l', str(data)],
             ['lvremove', '-y', full]),
        Step('create metadata LV %s/%s' % (vg_name, meta_name),
             ['lvcreate', '--wipesignatures', 'y', '-y', '-n', meta_name, vg_name, '-l', str(meta)],
             ['lvremove', '-y', '%s/%s' % (vg_name, meta_name)]),
        Step('convert %s to a thin pool' % full,
             ['lvconvert', '-y', '--zero', 'n', '-c', '%dk' % (p['chunk_size'] // KIB),
              '--thinpool', full, '--poolmetadata', '%s/%s' % (vg_name, meta_name)],
             ['lvremove', '-y', full], drop_undos=2),
        Step('attach profile %s' % p['profile'], ['lvchange', '--metadataprofile', p['profile'], full]),
        Step('monitor %s' % full, ['lvchange', '--monitor', 'y', full]),
    ]
    predicted = {'size': data * extent, 'metadata_size': meta * extent, 'chunk_size': p['chunk_size'],
                 'profile': p['profile'], 'monitor': 'monitored', 'segtype': 'thin-pool'}
    return steps, predicted, data + meta * (1 if sizes['has_spare'] else 2)


def grown_pool(p: dict[str, t.Any], pool: dict[str, t.Any], sizes: dict[str, t.Any], extent: int, free: int,
               warnings: list[str]) -> tuple[list[Step], dict[str, t.Any], int]:
    """An existing pool grown to the sizes asked (never shrunk), with its profile, activation and monitoring
    put right. Returns the steps, the pool predicted and the extents used."""
    full = '%s/%s' % (p['vg'], p['pool'])
    data, meta = sizes['data'], sizes['meta']
    current_data = (pool.get('lv_size') or 0) // extent
    current_meta = (pool.get('lv_metadata_size') or 0) // extent
    size, meta_size = pool.get('lv_size'), pool.get('lv_metadata_size')
    if pool.get('chunk_size') and pool['chunk_size'] != p['chunk_size']:
        warnings.append('thin pool %s has chunk size %s, not %s; a chunk size cannot change after creation, '
                        'so it is left as it is' % (full, human(pool['chunk_size']), human(p['chunk_size'])))
    grow_data = data - current_data if data > current_data else 0
    grow_meta = meta - current_meta if meta > current_meta else 0
    # growing metadata grows the spare too
    if grow_data + grow_meta * 2 > free:
        raise HostprepError('growing thin pool %s to %s data and %s metadata needs %d free extents, VG %s has %d; '
                            'add a device or give smaller sizes'
                            % (full, human(data * extent), human(meta * extent), grow_data + 2 * grow_meta,
                               p['vg'], free))
    steps = []
    if grow_data:
        steps.append(Step('grow %s to %s' % (full, human(data * extent)), ['lvextend', '-l', str(data), full]))
        size = data * extent
    if grow_meta:
        steps.append(Step('grow metadata of %s to %s' % (full, human(meta * extent)),
                          ['lvextend', '--poolmetadatasize', '%db' % (meta * extent), full]))
        meta_size = meta * extent
    if data < current_data or meta < current_meta:
        warnings.append('thin pool %s is larger than requested (%s data, %s metadata); thin pools do not shrink, '
                        'so it is left as it is' % (full, human(pool.get('lv_size')),
                                                    human(pool.get('lv_metadata_size'))))
    steps.extend(pool_state_steps(p, pool, full))
    predicted = {'size': size, 'metadata_size': meta_size, 'chunk_size': pool.get('chunk_size'),
                 'profile': p['profile'], 'monitor': 'monitored', 'segtype': 'thin-pool'}
    return steps, predicted, grow_data + 2 * grow_meta


def pool_state_steps(p: dict[str, t.Any], pool: dict[str, t.Any], full: str) -> list[Step]:
    """Profile attached, active, monitored: the steps an existing pool lacks."""
    steps = []
    if (pool.get('lv_profile') or '') != p['profile']:
        steps.append(Step('attach profile %s' % p['profile'], ['lvchange', '--metadataprofile', p['profile'], full]))
    if not (pool.get('lv_active') or '').startswith('active'):
        steps.append(Step('activate %s' % full, ['lvchange', '-ay', full]))
    if pool.get('seg_monitor') != 'monitored':
        steps.append(Step('monitor %s' % full, ['lvchange', '--monitor', 'y', full]))
    return steps


def thin_volume_plan(p: dict[str, t.Any], lvs: list[dict[str, t.Any]], extent: int, thin_fs: str | None,
                     thin_uses: list[str] | None, warnings: list[str]) -> tuple[list[Step], dict[str, t.Any] | None]:
    """The thin volume: created (and formatted) when missing; an existing one is never resized or reformatted,
    only formatted when it carries nothing and nothing uses it."""
    thin = p.get('thin_volume')
    if not thin:
        return [], None
    vg_name, pool_name = p['vg'], p['pool']
    row = find_lv(lvs, vg_name, thin['name'])
    thin_path = dm_path(vg_name, thin['name'])
    fs = thin.get('filesystem') or 'none'
    mkfs = Step('make XFS on %s' % thin_path, ['mkfs.xfs', '-q', '-m', 'crc=1', '-n', 'ftype=1', thin_path])
    if row is None:
        steps = [Step('create thin volume %s/%s' % (vg_name, thin['name']),
                      ['lvcreate', '-y', '-V', '%db' % thin['size'], '-T', '%s/%s' % (vg_name, pool_name),
                       '-n', thin['name']],
                      ['lvremove', '-y', '%s/%s' % (vg_name, thin['name'])])]
        if fs == 'xfs':
            steps.append(mkfs)
        return steps, {'name': thin['name'], 'size': _ceil_div(thin['size'], extent) * extent,
                       'filesystem': fs if fs != 'none' else None}
    if row.get('segtype') != 'thin' or row.get('pool_lv') != pool_name:
        raise HostprepError('%s/%s exists but is not a thin volume of pool %s (segment type %s, pool %s); '
                            'choose another thin_volume name'
                            % (vg_name, thin['name'], pool_name, row.get('segtype'), row.get('pool_lv') or '-'))
    if row.get('lv_size') != _ceil_div(thin['size'], extent) * extent:
        sizes = (vg_name, thin['name'], human(row.get('lv_size')), human(thin['size']))
        warnings.append('thin volume %s/%s is %s, not %s; it is not resized (grow it with lvextend and '
                        'xfs_growfs while mounted)' % sizes)
    steps = []
    if fs == 'xfs' and not thin_fs:
        if thin_uses:  # no signature, yet something uses it raw: mkfs would destroy that
            raise HostprepError(refusal(thin_path, thin_uses), uses=thin_uses)
        steps.append(mkfs)
    elif fs == 'xfs' and thin_fs != 'xfs':
        raise HostprepError('thin volume %s carries %s, not xfs; refusing to reformat it: remove the thin '
                            'volume or choose another name' % (thin_path, thin_fs))
    return steps, {'name': thin['name'], 'size': row.get('lv_size'), 'filesystem': fs if fs != 'none' else thin_fs}


def size_words(p: dict[str, t.Any]) -> str:
    data = ('data_size=%s' % human(p['data_size']) if p.get('data_size') is not None
            else 'data_percent=%s' % p['data_percent'])
    meta = ('metadata_size=%s' % human(p['metadata_size']) if p.get('metadata_size') is not None
            else 'metadata_percent=%s' % p['metadata_percent'])
    return '%s with %s' % (data, meta)


def parse_dmsetup_thin_table(text: str) -> list[dict[str, t.Any]]:
    """``dmsetup table --target thin`` lines: NAME: START LEN thin POOL_MAJ:MIN DEV_ID."""
    rows = []
    for line in (text or '').splitlines():
        name, sep, rest = line.partition(': ')
        fields = rest.split()
        if sep and len(fields) >= 5 and fields[2] == 'thin':
            rows.append({'name': name, 'pool': fields[3], 'device_id': fields[4]})
    return rows


def plan_absent(p: dict[str, t.Any], state: dict[str, t.Any], devices: list[dict[str, t.Any]],
                profile_now: str | None, profile_users: list[str], foreign_thin: list[str]) -> dict[str, t.Any]:
    """Steps that remove the pool (and the VG and PV labels when nothing else
    is left in it and every PV of it is listed in O(devices))."""
    vg_name, pool_name = p['vg'], p['pool']
    full = '%s/%s' % (vg_name, pool_name)
    lvs = state.get('lvs') or []
    pool = find_lv(lvs, vg_name, pool_name)
    steps: list[Step] = []
    removed: list[str] = []
    if pool is not None:
        if not is_thin_pool(pool):
            raise HostprepError('%s exists but is not a thin pool (segment type %s); refusing to remove it'
                                % (full, pool.get('segtype')))
        thins = [row for row in lvs if row.get('pool_lv') == pool_name and row.get('segtype') == 'thin']
        busy = [row['lv_name'] for row in thins if lv_is_open(row)]
        # LVM reports the pool open while any thin LV of it is active, mounted
        # or not: only an open pool without active thin LVs is busy by itself.
        if lv_is_open(pool) and not any(row.get('lv_active') == 'active' for row in thins):
            busy.insert(0, pool_name)
        if busy or foreign_thin:
            raise HostprepError(
                'thin pool %s is in use (open: %s); stop docker (and unmount the thin volumes) first, then run '
                'again. Removing a pool destroys every image and container in it'
                % (full, ', '.join(busy + ['device-mapper thin device %s' % n for n in foreign_thin])),
                in_use=busy + foreign_thin)
        used = pool.get('data_percent') or 0
        if not thins and used > 0 and not p.get('remove_data'):
            # Docker's devicemapper keeps its images and containers in thin
            # devices LVM does not manage: with deferred removal they are
            # neither LVs nor active, yet removing the pool destroys them.
            raise HostprepError(
                'thin pool %s holds data (%.2f%% used) of thin devices LVM does not manage, such as the images and '
                'containers of Docker\'s devicemapper driver; removing it destroys them. Stop docker and, if that '
                'data may go, run again with remove_data=true' % (full, used), data_percent=used)
        for row in thins:
            steps.append(Step('remove thin volume %s/%s' % (vg_name, row['lv_name']),
                              ['lvremove', '-y', '%s/%s' % (vg_name, row['lv_name'])]))
            removed.append('%s/%s' % (vg_name, row['lv_name']))
        steps.append(Step('remove thin pool %s' % full, ['lvremove', '-y', full]))
        removed.append(full)
    vg = state.get('vg')
    if vg is not None and devices:
        mine = {(row.get('pv_major'), row.get('pv_minor')): row['pv_name'] for row in state['pvs']
                if row.get('vg_name') == vg_name}
        listed = {d['rdev'] for d in devices if d.get('rdev')}
        gone = {row['lv_name'] for row in lvs if row.get('pool_lv') == pool_name} | {pool_name}
        others = [row['lv_name'] for row in lvs if row['lv_name'] not in gone
                  and not (row['lv_name'].startswith('[') or row.get('lv_name', '').endswith('_pmspare'))]
        if not others and mine and set(mine) <= listed:
            steps.append(Step('remove VG %s' % vg_name, ['vgremove', '-y', vg_name]))
            steps.append(Step('remove PV labels', ['pvremove', '-y'] + sorted(mine.values())))
            removed.append(vg_name)
            removed.extend(sorted(mine.values()))
    profile_path = os.path.join(p['profile_dir'], p['profile'] + '.profile')
    users = [u for u in profile_users if u != full]
    if profile_now is not None and not users:
        steps.append(Step('remove LVM profile %s' % profile_path, write=(profile_path, None)))
        removed.append(profile_path)
    return {'steps': steps, 'removed': removed, 'warnings': [], 'after': None}


# ---- applying ---------------------------------------------------------------

def apply(run: t.Any, module: t.Any, steps: list[Step],
          write_file: t.Callable[[str, str | None], None], changes: Changes | None = None) -> list[list[str]]:
    """Run the steps; on a failure (a command, or an OSError of a profile
    write: a read-only or immutable directory) undo what this run did, in
    reverse, and raise HostprepError saying what failed and what was rolled
    back. changes records each step made and each undo, so the failure
    reports changed=true unless every change was undone."""
    runner = as_runner(run)
    changes = changes if changes is not None else Changes()
    done: list[list[str]] = []
    undo: list[tuple[str, t.Callable[[], t.Any]]] = []
    irreversible = False  # a step without an undo (wipefs, lvchange, mkfs, lvremove)
    for step in steps:
        try:
            if step.write:
                path, content = step.write
                old = read_text(path)
                write_file(path, content)
                undo.append(('put back %s' % path, lambda path=path, old=old: write_file(path, old)))
            else:
                runner(step.argv)
                if step.drop_undos:
                    del undo[-step.drop_undos:]
                if step.undo:
                    undo.append(('undid: %s (%s)' % (step.what, ' '.join(step.undo)),
                                 lambda argv=step.undo: runner(argv)))
                else:
                    irreversible = True
            changes.made(step.what)
            done.append(step.as_dict()['cmd'])
        except (HostprepError, OSError) as exc:
            rollback_errors, undone = [], []
            for what, action in reversed(undo):
                try:
                    action()
                    undone.append(what)
                except (HostprepError, OSError) as err:
                    rollback_errors.append(err.msg if isinstance(err, HostprepError) else str(err))
            for index, what in enumerate(undone):
                changes.restored(what, complete=index == len(undone) - 1 and not rollback_errors and not irreversible)
            error = exc.msg if isinstance(exc, HostprepError) else '%s (%s)' % (exc.strerror or exc, exc.filename or '')
            msg = 'could not %s: %s' % (step.what, error)
            if undo:
                msg += ('; rolled back the %d change(s) this run made' % len(undo) if not rollback_errors
                        else '; rolling back failed too: %s' % '; '.join(rollback_errors))
            details = exc.details if isinstance(exc, HostprepError) else {}
            raise HostprepError(msg, commands=done, failed_command=step.argv or step.as_dict()['cmd'],
                                rollback_errors=rollback_errors,
                                **{k: v for k, v in details.items() if k in ('rc', 'stdout', 'stderr')})
    return done


# ---- the module -------------------------------------------------------------

LV_TOOLS = ('lvcreate', 'lvconvert', 'lvchange', 'lvextend', 'mkfs.xfs')


def check_device_mapper(run: t.Any) -> None:
    """Fail before any change when the kernel cannot run a thin pool:
    pvcreate and vgcreate only write metadata and work without
    device-mapper, lvcreate does not (and would leave a half-built VG)."""
    runner = as_runner(run)
    rc, out, err = runner(['dmsetup', 'version'], check_rc=False)
    if rc != 0 or 'Driver version' not in out:
        lines = [line.strip() for line in (err or out).splitlines() if line.strip()]
        raise HostprepError('device-mapper is not available in this kernel (dmsetup version: %s); LVM thin pools '
                            'need it: load it (modprobe dm-thin-pool) or use a kernel that has it. Nothing was changed'
                            % ('; '.join(lines[:2]) or 'exit status %d' % rc))
    dummy_rc, out, dummy_err = runner(['dmsetup', 'targets'])
    if not re.search(r'^thin-pool\s', out, re.MULTILINE):
        rc, dummy_out, err = runner(['modprobe', '-n', 'dm-thin-pool'], check_rc=False)
        if rc != 0:
            raise HostprepError('the device-mapper thin-pool target is not loaded and modprobe cannot find '
                                'dm-thin-pool (%s); install the kernel modules of the running kernel. Nothing was '
                                'changed' % (err.strip() or 'exit status %d' % rc))


def _result_pool(row: dict[str, t.Any] | None, vg: str) -> dict[str, t.Any] | None:
    if not row:
        return None
    return {
        'vg': vg, 'name': row['lv_name'], 'device': row.get('lv_dm_path') or dm_path(vg, row['lv_name']),
        'lv_path': row.get('lv_path') or '/dev/%s/%s' % (vg, row['lv_name']),
        'size': row.get('lv_size'), 'data_percent': row.get('data_percent'),
        'metadata_percent': row.get('metadata_percent'), 'chunk_size': row.get('chunk_size'),
        'metadata_size': row.get('lv_metadata_size'), 'profile': row.get('lv_profile') or None,
        'monitored': row.get('seg_monitor') == 'monitored',
    }


def _predicted_pool(after: dict[str, t.Any], vg: str) -> dict[str, t.Any]:
    pool = after['pool']
    return {'vg': vg, 'name': pool['name'], 'device': dm_path(vg, pool['name']),
            'lv_path': '/dev/%s/%s' % (vg, pool['name']), 'size': pool.get('size'), 'data_percent': None,
            'metadata_percent': None, 'chunk_size': pool.get('chunk_size'),
            'metadata_size': pool.get('metadata_size'), 'profile': pool.get('profile'), 'monitored': True}


def _thin_fs(run: t.Any, state: dict[str, t.Any], p: dict[str, t.Any]) -> str | None:
    thin = p.get('thin_volume')
    if not thin:
        return None
    row = find_lv(state['lvs'], p['vg'], thin['name'])
    if not row or not (row.get('lv_active') or '').startswith('active'):
        return None
    dummy_rc, out, dummy_err = as_runner(run)(['wipefs', '-J', row.get('lv_dm_path') or dm_path(p['vg'], thin['name'])])
    sigs = parse_wipefs(out)
    return sigs[0]['type'] if sigs else None


def _thin_uses(module: t.Any, state: dict[str, t.Any], p: dict[str, t.Any]) -> list[str]:
    """The uses of an existing, active thin volume without a filesystem, which
    the plan would format (mounted, open by a process, held...)."""
    thin = p.get('thin_volume')
    row = find_lv(state['lvs'], p['vg'], thin['name']) if thin else None
    if not row or state.get('thin_fs') or not (row.get('lv_active') or '').startswith('active'):
        return []
    path = row.get('lv_dm_path') or dm_path(p['vg'], thin['name'])
    return uses(probe(as_runner(module), path, read_mounts(module)))


def _foreign_thin_devices(run: t.Any, state: dict[str, t.Any], p: dict[str, t.Any]) -> list[str]:
    """Active device-mapper thin devices on the pool that LVM does not know
    (Docker's devicemapper driver makes them)."""
    pool = find_lv(state['lvs'], p['vg'], p['pool'])
    if not pool or not (pool.get('lv_active') or '').startswith('active'):
        return []
    runner = as_runner(run)
    rc, out, dummy_err = runner(['dmsetup', 'info', '-c', '--noheadings', '--separator', ':',
                                 '-o', 'name,major,minor'], check_rc=False)
    if rc != 0:
        return []
    base = dm_name(p['vg'], p['pool'])
    pool_devs = set()
    for line in out.splitlines():
        parts = line.strip().split(':')
        if len(parts) == 3 and parts[0] in (base, base + '-tpool'):
            pool_devs.add('%s:%s' % (parts[1], parts[2]))
    rc, out, dummy_err = runner(['dmsetup', 'table', '--target', 'thin'], check_rc=False)
    if rc != 0:
        return []
    lvm_names = {dm_name(p['vg'], row['lv_name']) for row in state['lvs']}
    return [row['name'] for row in parse_dmsetup_thin_table(out)
            if row['pool'] in pool_devs and row['name'] not in lvm_names]


def _profile_users(run: t.Any, profile: str) -> list[str]:
    users = ['%s/%s' % (r['vg_name'], r['lv_name']) for r in lvm_report(run, 'lv', ['-a', '-o', 'vg_name,lv_name,lv_profile'])
             if r.get('lv_profile') == profile]
    users += [r['vg_name'] for r in lvm_report(run, 'vg', ['-o', 'vg_name,vg_profile']) if r.get('vg_profile') == profile]
    return users


def manage(module: t.Any) -> dict[str, t.Any]:
    """The whole task: check, read, plan, apply (or predict), report."""
    p = check_params(module.params)
    runner = as_runner(module)
    state = read_state(runner, p['vg'])
    profile_path = os.path.join(p['profile_dir'], p['profile'] + '.profile')
    profile_now = read_text(profile_path)
    devices: list[dict[str, t.Any]] = []
    if p.get('devices'):
        mounts = read_mounts(module)
        devices = [probe(runner, path, mounts) for path in p['devices']]
    state['thin_fs'] = _thin_fs(runner, state, p)
    before = layout(state, p, profile_now)
    if p['state'] == 'present':
        plan = plan_present(p, state, devices, profile_now, state['thin_fs'], _thin_uses(module, state, p))
    else:
        if devices:
            missing = [d['path'] for d in devices if not d['block']]
            if missing:
                raise HostprepError('device %s does not exist or is not a block device; list the PVs of VG %s'
                                    % (', '.join(missing), p['vg']))
        plan = plan_absent(p, state, devices, profile_now, _profile_users(runner, p['profile']),
                           _foreign_thin_devices(runner, state, p))
    steps: list[Step] = plan['steps']
    missing_tools = sorted(set(s.argv[0] for s in steps if s.argv and not module.get_bin_path(
        s.argv[0], opt_dirs=['/sbin', '/usr/sbin'])))
    if missing_tools:
        raise HostprepError('%s not found; install them (lvm2, xfsprogs, util-linux). Nothing was changed'
                            % ', '.join(missing_tools))
    if p['state'] == 'present' and any(s.argv and s.argv[0] in LV_TOOLS for s in steps):
        check_device_mapper(runner)

    warnings = list(plan['warnings'])
    result: dict[str, t.Any] = {'changed': bool(steps), 'pvs_added': plan.get('pvs_added', []),
                                'removed': plan.get('removed', []), 'pool': None, 'thin_volume': None}
    final_state = state
    if not steps:
        result['commands'] = []
        after = before
    elif module.check_mode:
        result['commands'] = [s.as_dict()['cmd'] for s in steps]
        after = plan['after'] if p['state'] == 'present' else predicted_absent(before, plan, p)
    else:
        def write_file(path: str, content: str | None) -> None:
            if content is None:
                if os.path.exists(path):
                    os.unlink(path)
            else:
                atomic_write(module, path, content, mode=0o644)
        result['commands'] = apply(runner, module, steps, write_file, changes_of(module))
        final_state = read_state(runner, p['vg'])
        final_state['thin_fs'] = _thin_fs(runner, final_state, p)
        after = layout(final_state, p, read_text(profile_path))
    if p['state'] == 'present':
        if module.check_mode and steps:
            result['pool'] = _predicted_pool(after, p['vg'])
            thin = after.get('thin_volume')
            result['thin_volume'] = None if not thin else {
                'name': thin['name'], 'device': dm_path(p['vg'], thin['name']), 'size': thin['size'],
                'filesystem': thin['filesystem']}
        else:
            pool_row = find_lv(final_state['lvs'], p['vg'], p['pool'])
            result['pool'] = _result_pool(pool_row, p['vg'])
            if pool_row and pool_row.get('seg_monitor') != 'monitored':
                warnings.append('thin pool %s/%s is not monitored (seg_monitor: %r): autoextend needs dmeventd; '
                                'install and start it (package dmeventd, lvm2-monitor.service)'
                                % (p['vg'], p['pool'], pool_row.get('seg_monitor')))
            thin_name = (p.get('thin_volume') or {}).get('name')
            row = find_lv(final_state['lvs'], p['vg'], thin_name) if thin_name else None
            result['thin_volume'] = None if not row else {
                'name': row['lv_name'], 'device': row.get('lv_dm_path') or dm_path(p['vg'], row['lv_name']),
                'size': row.get('lv_size'), 'filesystem': final_state.get('thin_fs')}
    for warning in warnings:
        module.warn(warning)
    result['diff'] = {'before': before, 'after': after}
    return result


def predicted_absent(before: dict[str, t.Any], plan: dict[str, t.Any], p: dict[str, t.Any]) -> dict[str, t.Any]:
    after = dict(before)
    if '%s/%s' % (p['vg'], p['pool']) in plan['removed']:
        after['pool'] = None
        after['thin_volume'] = None
    if p['vg'] in plan['removed']:
        after['vg'] = None
    if os.path.join(p['profile_dir'], p['profile'] + '.profile') in plan['removed']:
        after['profile'] = None
    return after
