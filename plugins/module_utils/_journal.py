# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The record on the host of a storage change in progress, and its undo.

This module is private to the collection: its interface may change
without notice. Users depend on the modules and roles, not on it.

Before a storage change touches anything, `begin` copies the files it may
rewrite (daemon.json, fstab, containerd's configuration) into the journal
directory and notes the mounts at and under the data root. Steps that move
things (the old data root moved aside for btrfs) are noted as they happen.
`restore` puts every file back byte for byte (or removes it when it did not
exist), unmounts what the change mounted under the data root, moves the old
data root back and mounts again what was mounted before; `finish` removes the
record once the change is complete. A run that dies between two steps leaves
the record behind, so the next run finds it (`info`) and rolls it back.

Storage the change creates (a btrfs filesystem, LVM PVs, a VG, a thin pool
and a thin LV) is undone only with proof that this change made it: `begin`
notes the signatures (type and UUID) on the change's devices and the VG with
its LVs (UUIDs), a `step` with note_storage notes them again after the
storage step, and `restore` removes an object only when it was absent before,
noted after, and still has the noted UUID now (plan_created). A device that
was blank before gets the new signature wiped; anything else is left and
named.

The plans of the undo are pure (plan_restore, plan_created); only restore
does I/O.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils import _blockdev, _common, _lvm, _mounts
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError, read_text, run
from ansible_collections.hostprep.container_host.plugins.module_utils._fstab import parse_line

FORMAT = 'hostprep.container_host.docker_storage_journal/1'
JOURNAL = 'journal.json'


def sha256_of(path: str) -> str | None:
    """The SHA-256 of a file's bytes (following links), or None when it does not exist."""
    try:
        with open(path, 'rb') as handle:
            digest = hashlib.sha256()
            for chunk in iter(lambda: handle.read(1 << 20), b''):
                digest.update(chunk)
            return digest.hexdigest()
    except FileNotFoundError:
        return None


def journal_file(directory: str) -> str:
    return os.path.join(directory, JOURNAL)


def load(directory: str) -> dict[str, t.Any] | None:
    """The recorded change, None when there is none; refuses a file that is not ours."""
    path = journal_file(directory)
    try:
        with open(path, 'r', encoding='utf-8') as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise HostprepError('%s is not a journal of this collection (%s); look at it and remove it by hand '
                            'if no storage change is in progress' % (path, exc))
    if not isinstance(record, dict) or record.get('format') != FORMAT:
        raise HostprepError('%s is not a journal of this collection (no format %s); it was left untouched'
                            % (path, FORMAT))
    return record


def save(directory: str, record: dict[str, t.Any]) -> None:
    """Write the record atomically (temp file, fsync, rename, fsync of the directory)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = journal_file(directory) + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, journal_file(directory))
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def snapshot_file(directory: str, index: int, path: str) -> dict[str, t.Any]:
    """Copy one file into the journal; a symbolic link is followed (its target is what is restored)."""
    real = os.path.realpath(path)
    entry: dict[str, t.Any] = {'path': path, 'real_path': real, 'existed': os.path.isfile(real)}
    if os.path.lexists(real) and not os.path.isfile(real):
        raise HostprepError('%s is not a regular file; the storage change cannot keep a copy of it' % path)
    if entry['existed']:
        st = os.stat(real)
        copy = os.path.join(directory, 'file-%d' % index)
        shutil.copyfile(real, copy)
        entry.update(copy=copy, mode=st.st_mode & 0o7777, uid=st.st_uid, gid=st.st_gid, sha256=sha256_of(real))
    return entry


def unfinished_error(directory: str, record: dict[str, t.Any]) -> HostprepError:
    return HostprepError('an unfinished storage change (backend %s, begun %s) is recorded in %s; roll it back first '
                         '(phase=restored) or finish it' % (record.get('backend'), record.get('begun'),
                                                            journal_file(directory)))


def begin(directory: str, files: list[str], data_root: str, roots: list[str], mounts: list[dict[str, str]],
          backend: str, archive: str | None, now: float, storage: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
    """Start the record of a change; refuses when an unfinished one is there."""
    existing = load(directory)
    if existing is not None:
        raise unfinished_error(directory, existing)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    record = {
        'format': FORMAT, 'backend': backend, 'data_root': data_root, 'roots': roots, 'archive': archive,
        'begun': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now)),
        'files': [snapshot_file(directory, i, path) for i, path in enumerate(dict.fromkeys(files))],
        'mounts': mounts, 'moved_aside': None, 'steps': [], 'storage': storage,
    }
    save(directory, record)
    return record


def watched(path: str, roots: list[str]) -> bool:
    """Whether a mount target is at or under one of the roots the change may mount on."""
    return any(_mounts.is_within(path, root) for root in roots)


def plan_restore(record: dict[str, t.Any], mounts_now: list[dict[str, str]],
                 digests_now: dict[str, str | None], data_root_entries: list[str] | None,
                 moved_aside_exists: bool) -> dict[str, list[t.Any]]:
    """What the undo has to do, from the record and the host as it is now (pure).

    Returns unmount (targets, deepest first), move_back (bool as a list of
    one pair), files (entries to put back or remove), mount (targets), and
    manual (steps the undo cannot take safely, in words)."""
    root = record['data_root']
    roots = record.get('roots') or [root]
    before = {m['target']: m for m in record['mounts']}
    now = {m['target']: m for m in mounts_now}
    plan: dict[str, list[t.Any]] = {'unmount': [], 'move_back': [], 'files': [], 'mount': [], 'manual': []}
    for target in sorted(now, key=len, reverse=True):
        if watched(target, roots) and (target not in before or before[target].get('source') != now[target].get('source')):
            plan['unmount'].append(target)
    aside = record.get('moved_aside')
    if aside:
        if not moved_aside_exists:
            if not data_root_entries:  # with entries, the move was noted but never made
                plan['manual'].append('the old data root was moved to %s, which is gone; look for it before '
                                      'starting the engine' % aside)
        elif data_root_entries:
            plan['manual'].append('the old data root is at %s, but %s holds %s now; move them apart by hand'
                                  % (aside, root, ', '.join(sorted(data_root_entries)[:5])))
        else:
            plan['move_back'].append([aside, root])
    for entry in record['files']:
        if digests_now.get(entry['real_path']) != entry.get('sha256'):
            plan['files'].append(entry)
    for target in sorted(before, key=len):
        if watched(target, roots) and (target not in now or target in plan['unmount']):
            plan['mount'].append(target)
    return plan


def describe(plan: dict[str, list[t.Any]]) -> list[str]:
    """The plan in words, one line per action."""
    lines = ['unmounted %s' % target for target in plan['unmount']]
    lines += ['moved %s back to %s' % (pair[0], pair[1]) for pair in plan['move_back']]
    for entry in plan['files']:
        lines.append('put back %s as it was' % entry['path'] if entry['existed']
                     else 'removed %s, which did not exist before' % entry['path'])
    lines += ['mounted %s again' % target for target in plan['mount']]
    return lines


def put_back(module: t.Any, entry: dict[str, t.Any]) -> None:
    """Restore one file from its copy (mode and owner as recorded), or remove it when it did not exist."""
    real = entry['real_path']
    if not entry['existed']:
        _common.put_back(module, real, None)
        return
    with open(entry['copy'], 'rb') as handle:
        _common.put_back(module, real, handle.read())
    os.chmod(real, entry['mode'])
    os.chown(real, entry['uid'], entry['gid'])


def read_mounts(module: t.Any, roots: list[str]) -> list[dict[str, str]]:
    """The mounts at and under the roots, as the kernel lists them."""
    return [{'target': m.target, 'source': m.source, 'fstype': m.fstype}
            for m in _mounts.read_mounts(module) if watched(m.target, roots)]


def _plan_now(record: dict[str, t.Any], module: t.Any) -> dict[str, list[t.Any]]:
    root = record['data_root']
    aside = record.get('moved_aside')
    entries = os.listdir(root) if os.path.isdir(root) else None
    digests = {e['real_path']: sha256_of(e['real_path']) for e in record['files']}
    mounts = read_mounts(module, record.get('roots') or [root])
    plan = plan_restore(record, mounts, digests, entries, bool(aside) and os.path.isdir(aside))
    if root in plan['unmount'] and entries:
        # what lies under a mount at the data root shows only once it is unmounted (the role created it empty)
        plan = plan_restore(record, mounts, digests, None, bool(aside) and os.path.isdir(aside))
    return plan


# ---- storage the change created ----------------------------------------------------------

LV_FIELDS = 'lv_name,lv_uuid,segtype,pool_lv'


def signatures_of(rows: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """The identity of each signature wipefs found: its type and UUID."""
    return [{'type': row.get('type'), 'uuid': row.get('uuid')} for row in rows]


def vg_state(vg_rows: list[dict[str, t.Any]], lv_rows: list[dict[str, t.Any]]) -> dict[str, t.Any] | None:
    """The VG's UUID and its LVs (name, UUID, segment type) from vgs and lvs reports; None when there is no VG."""
    if not vg_rows:
        return None
    lvs = [{'name': row['lv_name'], 'uuid': row.get('lv_uuid'), 'segtype': row.get('segtype')}
           for row in lv_rows if row.get('lv_name') and not row['lv_name'].startswith('[')]
    return {'name': vg_rows[0].get('vg_name'), 'uuid': vg_rows[0].get('vg_uuid'), 'lvs': lvs}


def read_storage(module: t.Any, devices: list[str], vg: str | None) -> dict[str, t.Any]:
    """What is on the change's devices (wipefs -J) and in its VG (vgs, lvs) now."""
    found: dict[str, t.Any] = {'devices': {}, 'vg': None}
    for device in devices:
        rc, out, dummy_err = run(module, ['wipefs', '-J', device], check_rc=False)
        found['devices'][device] = signatures_of(_blockdev.parse_wipefs(out)) if rc == 0 else None
    if vg:
        runner = _lvm.as_runner(module)
        rc, out, dummy_err = runner(_lvm.report_command('vg', ['-o', 'vg_name,vg_uuid', vg]), check_rc=False)
        if rc == 0:
            dummy_rc, lv_out, dummy_err = runner(_lvm.report_command('lv', ['-a', '-o', LV_FIELDS, vg]), check_rc=False)
            found['vg'] = vg_state(_lvm.parse_report(out, 'vg'), _lvm.parse_report(lv_out or '{}', 'lv'))
    return found


def _uuids(signatures: list[dict[str, t.Any]] | None) -> set[tuple[t.Any, t.Any]]:
    return {(sig['type'], sig['uuid']) for sig in signatures or []}


def _created_lvs(before: dict[str, t.Any] | None, after: dict[str, t.Any] | None,
                 now: dict[str, t.Any] | None) -> tuple[list[dict[str, t.Any]], list[str]]:
    """LVs this change created that are still as it left them (thin LVs before pools), and the others named."""
    old = {lv['uuid'] for lv in (before or {}).get('lvs', [])} if before and after and before['uuid'] == after['uuid'] else set()
    ours = {lv['uuid']: lv for lv in (after or {}).get('lvs', []) if lv['uuid'] not in old}
    now_lvs = (now or {}).get('lvs', []) if now and after and now['uuid'] == after['uuid'] else []
    remove = [lv for lv in now_lvs if lv['uuid'] in ours]
    others = [lv['name'] for lv in now_lvs if lv['uuid'] not in ours and lv['uuid'] not in old]
    remove.sort(key=lambda lv: lv['segtype'] == 'thin-pool')
    return remove, others


def _remove(plan: dict[str, list[t.Any]], argv: list[str], verb: str, what: str) -> None:
    plan['remove'].append({'argv': argv, 'what': what, 'words': '%s %s' % (verb, what)})


def plan_created(before: dict[str, t.Any], after: dict[str, t.Any] | None,
                 now: dict[str, t.Any]) -> dict[str, list[t.Any]]:
    """What of the storage the change created is removed, in order, and what is left and named (pure).

    before, after and now are read_storage() results: when the change began, after its storage step
    (None when the run ended before it noted that), and now. Returns remove: [{'what', 'argv', 'words'}]
    and left: [words]."""
    plan: dict[str, list[t.Any]] = {'remove': [], 'left': []}
    vg_before, vg_now = before.get('vg'), now.get('vg')
    vg_after = (after or {}).get('vg')
    name = (vg_after or vg_now or {}).get('name')
    lvs, others = _created_lvs(vg_before, vg_after, vg_now)
    for lv in lvs:
        _remove(plan, ['lvremove', '-y', '%s/%s' % (name, lv['name'])], 'removed',
                'the %s LV %s/%s (UUID %s) this change created' % (lv['segtype'], name, lv['name'], lv['uuid']))
    vg_ours = vg_before is None and vg_after is not None and vg_now is not None and vg_now['uuid'] == vg_after['uuid']
    if vg_ours and not others:
        _remove(plan, ['vgremove', '-y', name], 'removed', 'the VG %s (UUID %s) this change created' % (name, vg_now['uuid']))
    elif vg_ours:
        plan['left'].append('the VG %s, which this change created, holds LVs it did not make (%s)' % (name, ', '.join(others)))
    elif vg_before is None and vg_now is not None:
        plan['left'].append('the VG %s (UUID %s), which was not there before; this change did not note it as its own'
                            % (name, vg_now['uuid']))
    vg_stays = vg_now is not None and not (vg_ours and not others)
    for device in sorted(now['devices']):
        _plan_device(plan, device, before['devices'].get(device), (after or {}).get('devices', {}).get(device),
                     now['devices'][device], after is not None, vg_stays)
    return plan


def _plan_device(plan: dict[str, list[t.Any]], device: str, before: list[dict[str, t.Any]] | None,
                 after: list[dict[str, t.Any]] | None, now: list[dict[str, t.Any]] | None, noted: bool,
                 vg_stays: bool) -> None:
    """Wipe what this change wrote on a device that was blank, or name what is there."""
    new_now = _uuids(now) - _uuids(before)
    if not new_now:
        return
    kinds = ', '.join('%s (UUID %s)' % pair for pair in sorted(new_now, key=str))
    pv = all(kind == 'LVM2_member' for kind, dummy in new_now)
    if not noted:
        plan['left'].append('%s on %s, which the change did not note as its own (it ended before it could); '
                            'check it and wipe it by hand if it is not wanted' % (kinds, device))
    elif not new_now <= _uuids(after):
        plan['left'].append('%s on %s, which is not what the change noted; check it and wipe it by hand if it is not '
                            'wanted' % (kinds, device))
    elif before:
        plan['left'].append('%s on %s, made by this change over %s, which cannot be brought back'
                            % (kinds, device, ', '.join(str(sig['type']) for sig in before)))
    elif pv and vg_stays:
        plan['left'].append('%s on %s, a PV of a VG that stays' % (kinds, device))
    else:
        _remove(plan, ['pvremove', '-y', device] if pv else ['wipefs', '-a', device], 'wiped',
                '%s from %s, which was blank before this change' % (kinds, device))


def fstab_targets(fstab: str) -> set[str]:
    """The mount points fstab names: only these are mounted again (the engine's own mounts come back with it)."""
    entries = (parse_line(line) for line in (read_text(fstab) or '').splitlines())
    return {os.path.normpath(entry.target) for entry in entries if entry is not None}


def created_now(record: dict[str, t.Any], module: t.Any) -> dict[str, list[t.Any]]:
    """plan_created for the storage the record noted, read now; empty when it noted none."""
    storage = record.get('storage')
    if not storage:
        return {'remove': [], 'left': []}
    now = read_storage(module, list(storage['before']['devices']), storage.get('vg'))
    return plan_created(storage['before'], storage.get('after'), now)


BUSY_TRIES = 10


def remove_created(module: t.Any, created: dict[str, list[t.Any]], changes: t.Any,
                   sleep: t.Callable[[float], t.Any] = time.sleep) -> list[str]:
    """Remove, in order, the storage this change created; returns what is left, named with the command to run.
    A device still busy just after its unmount (a probe holding it open) is tried again for a few seconds; a
    step that fails stops the ones after it. What is left here does not keep the record: the engine, the files
    and the mounts are restored either way, and the operator is told what to remove."""
    runner = _lvm.as_runner(module)
    for index, step in enumerate(created['remove']):
        for dummy_try in range(BUSY_TRIES):
            rc, dummy_out, err = runner(step['argv'], check_rc=False)
            if rc == 0 or 'busy' not in err.lower():
                break
            sleep(0.5)
        if rc != 0:
            return ['%s (%s: %s; run it by hand)' % (later['what'], ' '.join(later['argv']),
                                                     'failed, ' + err.strip() if later is step else 'not tried')
                    for later in created['remove'][index:]]
        changes.restored(step['words'])
    return []


def restore(record: dict[str, t.Any], module: t.Any, fstab: str, changes: t.Any) -> dict[str, t.Any]:
    """Undo the recorded change as far as it is safe; returns restored, manual and left."""
    plan = _plan_now(record, module)
    created = created_now(record, module)
    if module.check_mode:
        plan['mount'] = [target for target in plan['mount'] if target in fstab_targets(fstab)]
        return {'restored': describe(plan) + [step['words'] for step in created['remove']], 'manual': plan['manual'],
                'left': created['left']}
    manual: list[str] = []
    for target in plan['unmount']:
        error = _mounts.unmount_quietly(module, target)
        if error:
            manual.append('unmount %s (%s)' % (target, error))
        else:
            changes.restored('unmounted %s' % target)
    created = created_now(record, module)  # read again once nothing of it is mounted
    left = remove_created(module, created, changes) + created['left']
    plan = _plan_now(record, module)  # the data root's own content shows once the mounts are gone
    manual += [m for m in plan['manual'] if m not in manual]
    for aside, target in plan['move_back']:
        if os.path.isdir(target) and not os.path.ismount(target):
            os.rmdir(target)
        os.rename(aside, target)
        changes.restored('moved %s back to %s' % (aside, target))
    for entry in plan['files']:
        put_back(module, entry)
        changes.restored('put back %s as it was' % entry['path'] if entry['existed']
                         else 'removed %s, which did not exist before' % entry['path'])
    in_fstab = fstab_targets(fstab)  # read after fstab itself was put back
    for target in [target for target in plan['mount'] if target in in_fstab]:
        rc, dummy_out, err = run(module, ['mount', '--fstab', fstab, '--', target], check_rc=False)
        if rc != 0:
            manual.append('mount %s (mount --fstab %s failed: %s)' % (target, fstab, err.strip()))
        else:
            changes.restored('mounted %s again' % target)
    return {'restored': list(changes.undone), 'manual': manual, 'left': left}


def finish(directory: str) -> bool:
    """Remove the record of a finished (or rolled back) change: only files this collection wrote."""
    if load(directory) is None:
        return False
    names = os.listdir(directory)
    ours = [n for n in names if n == JOURNAL or n == JOURNAL + '.tmp' or n.startswith('file-')]
    for name in ours:
        os.unlink(os.path.join(directory, name))
    if len(ours) == len(names):
        try:
            os.rmdir(directory)
        except OSError:
            pass  # an empty directory of ours; its parent may not allow removing it (chattr +i)
    return True


def manage(module: t.Any, changes: t.Any) -> dict[str, t.Any]:
    """The module's task: read, begun, step, restored or finished."""
    p = module.params
    directory = p['path']
    record = load(directory)
    phase = p['phase']
    result: dict[str, t.Any] = {'changed': False, 'path': journal_file(directory), 'journal': record,
                                'unfinished': record is not None, 'restored': [], 'manual': [], 'left': []}
    if phase == 'read':
        return result
    if phase == 'begun':
        if not p['data_root']:
            raise HostprepError('phase=begun needs data_root: the data root the change is about')
        if record is not None:
            raise unfinished_error(directory, record)
        result['changed'] = True
        if not module.check_mode:
            roots = [p['data_root']] + list(p['mount_roots'])
            storage = None
            if p['devices'] or p['vg']:
                storage = {'vg': p['vg'], 'before': read_storage(module, p['devices'], p['vg']), 'after': None}
            result['journal'] = begin(directory, p['files'], p['data_root'], roots, read_mounts(module, roots),
                                      p['backend'], p['archive'], time.time(), storage)
            changes.made('recorded the change in %s' % journal_file(directory))
        return result
    if record is None:
        if phase == 'step':
            raise HostprepError('no storage change is recorded in %s; begin one first (phase=begun)'
                                % journal_file(directory))
        return result
    if phase == 'step':
        result['changed'] = True
        if not module.check_mode:
            record['steps'].append(p['step'])
            if p['moved_aside']:
                record['moved_aside'] = p['moved_aside']
            if p['note_storage'] and record.get('storage'):
                storage = record['storage']
                storage['after'] = read_storage(module, list(storage['before']['devices']), storage.get('vg'))
            save(directory, record)
        result['journal'] = record
        return result
    if phase == 'restored':
        done = restore(record, module, p['fstab'], changes)
        result.update(done)
        result['changed'] = True
        if not module.check_mode and not done['manual']:
            finish(directory)
            result['unfinished'] = False
        return result
    result['changed'] = True
    if not module.check_mode:
        finish(directory)
        result['unfinished'] = False
    return result
