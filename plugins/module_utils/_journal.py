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

The plan of the undo is pure (plan_restore); only apply_restore does I/O.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils import _common, _mounts
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
          backend: str, archive: str | None, now: float) -> dict[str, t.Any]:
    """Start the record of a change; refuses when an unfinished one is there."""
    existing = load(directory)
    if existing is not None:
        raise unfinished_error(directory, existing)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    record = {
        'format': FORMAT, 'backend': backend, 'data_root': data_root, 'roots': roots, 'archive': archive,
        'begun': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now)),
        'files': [snapshot_file(directory, i, path) for i, path in enumerate(dict.fromkeys(files))],
        'mounts': mounts, 'moved_aside': None, 'steps': [],
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


def fstab_targets(fstab: str) -> set[str]:
    """The mount points fstab names: only these are mounted again (the engine's own mounts come back with it)."""
    entries = (parse_line(line) for line in (read_text(fstab) or '').splitlines())
    return {os.path.normpath(entry.target) for entry in entries if entry is not None}


def restore(record: dict[str, t.Any], module: t.Any, fstab: str, changes: t.Any) -> dict[str, t.Any]:
    """Undo the recorded change as far as it is safe; returns restored and manual steps."""
    plan = _plan_now(record, module)
    if module.check_mode:
        plan['mount'] = [target for target in plan['mount'] if target in fstab_targets(fstab)]
        return {'restored': describe(plan), 'manual': plan['manual']}
    manual: list[str] = []
    for target in plan['unmount']:
        error = _mounts.unmount_quietly(module, target)
        if error:
            manual.append('unmount %s (%s)' % (target, error))
        else:
            changes.restored('unmounted %s' % target)
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
    return {'restored': list(changes.undone), 'manual': manual}


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
                                'unfinished': record is not None, 'restored': [], 'manual': []}
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
            result['journal'] = begin(directory, p['files'], p['data_root'], roots, read_mounts(module, roots),
                                      p['backend'], p['archive'], time.time())
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
