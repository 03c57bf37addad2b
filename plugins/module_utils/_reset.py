# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The devicemapper loopback reset, private to hostprep.container_host.

The classic recipe (stop docker, wipe the data root, recreate sparse loopback
files, start docker) as checked steps: the path must be a Docker data root and
no dockerd may use it; what would go is counted from the data root's own files
(containers/*/config.v2.json, image/<driver>/imagedb/content/sha256/*,
volumes/*) and its allocated bytes; named volumes stay unless asked otherwise.
The functions that look at a directory tree take the path, the rest are pure.
"""

from __future__ import annotations

import os
import shutil
import stat
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    Differences,
    HostprepError,
)
from ansible_collections.hostprep.container_host.plugins.module_utils import _engine
from ansible_collections.hostprep.container_host.plugins.module_utils import _engine_use
from ansible_collections.hostprep.container_host.plugins.module_utils import _mounts
from ansible_collections.hostprep.container_host.plugins.module_utils import _sizes

LOOPBACK_DIR = os.path.join('devicemapper', 'devicemapper')

# Directories that are never a data root: wiping them would wipe the system.
PROTECTED = frozenset([
    '/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/libx32', '/media', '/mnt',
    '/opt', '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/usr/bin', '/usr/lib',
    '/usr/local', '/usr/sbin', '/usr/share', '/var', '/var/lib', '/var/log', '/var/tmp', '/var/cache',
    '/var/run', '/var/lib/containerd',
])
# Entries of a data root that only dockerd makes: the storage drivers' homes
# and the image and container stores.
DRIVER_DIRS = frozenset(_engine.GRAPH_DRIVERS_20_10)
MARKERS = frozenset(['image', 'containers']) | DRIVER_DIRS


def parse_size(value: t.Any, name: str) -> int:
    """Bytes from 100G, 2GiB, 512M, 1048576 (binary units, as dockerd's
    dm.loopdatasize reads them)."""
    try:
        size = _sizes.parse_size(value)
    except ValueError as exc:
        raise HostprepError('%s %r is not a size; write it like 100G, 2G, 512M or a number of bytes'
                            % (name, value)) from exc
    if size <= 0:
        raise HostprepError('%s %r must be larger than 0' % (name, value))
    return size


# ---- is this a data root, and may it be wiped -------------------------------

def path_problem(data_root: str, real: str, is_dir: bool, entries: list[str],
                 volume_entries: list[str]) -> str | None:
    """Why this path must not be reset (None when it may). entries are the
    names in the directory, volume_entries the names in its volumes/."""
    if real in PROTECTED or data_root.rstrip('/') in PROTECTED or not data_root.strip('/'):
        return ('data_root %s%s is a system directory, not a Docker data root; give the path of the data root '
                '(for example /var/lib/docker); nothing was changed'
                % (data_root, ' (%s)' % real if real != data_root else ''))
    if not os.path.lexists(data_root):
        return ('data_root %s does not exist; give the path of the Docker data root (daemon.json data-root, '
                'default /var/lib/docker); nothing was changed' % data_root)
    if not is_dir:
        return ('data_root %s is not a directory; give the path of the Docker data root (daemon.json data-root, '
                'default /var/lib/docker); nothing was changed' % data_root)
    if not entries:
        return None
    if set(entries) & MARKERS:
        return None
    # What a reset leaves behind: volumes/ (with dockerd's metadata.db) and
    # the devicemapper loopback files.
    if set(entries) <= {'volumes', 'devicemapper'} and ('metadata.db' in volume_entries or 'volumes' not in entries):
        return None
    return ('data_root %s does not look like a Docker data root: it has no image/, containers/ or storage driver '
            'directory (%s), only %s; check that the path is right (daemon.json data-root); nothing was changed'
            % (data_root, ', '.join(sorted(DRIVER_DIRS)), ', '.join(sorted(entries)[:10])))


def mounts_below(real: str, mounts: list[_mounts.Mount]) -> list[str]:
    """Mount points strictly below real."""
    return sorted({mount.target for mount in mounts
                   if _mounts.is_within(mount.target, real) and os.path.normpath(mount.target) != real})


# ---- what is in it ------------------------------------------------------------

def count_containers(root: str) -> int:
    base = os.path.join(root, 'containers')
    return sum(1 for name in _listdir(base) if os.path.isfile(os.path.join(base, name, 'config.v2.json')))


def count_images(root: str) -> int:
    """Image configs of every graph driver the data root has image stores for."""
    base = os.path.join(root, 'image')
    total = 0
    for driver in _listdir(base):
        content = os.path.join(base, driver, 'imagedb', 'content', 'sha256')
        total += sum(1 for name in _listdir(content) if os.path.isfile(os.path.join(content, name)))
    return total


def count_volumes(root: str) -> int:
    base = os.path.join(root, 'volumes')
    return sum(1 for name in _listdir(base)
               if os.path.isdir(os.path.join(base, name)) and not os.path.islink(os.path.join(base, name)))


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def allocated_bytes(paths: list[str], seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes allocated on disk (st_blocks * 512) under the paths, symlinks
    not followed, each inode counted once (hard links)."""
    seen = set() if seen is None else seen
    total = 0
    stack = list(paths)
    while stack:
        path = stack.pop()
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        key = (st.st_dev, st.st_ino)
        if key not in seen:
            seen.add(key)
            total += st.st_blocks * 512
        if stat.S_ISDIR(st.st_mode):
            try:
                with os.scandir(path) as entries:
                    stack.extend(entry.path for entry in entries)
            except OSError:
                continue
    return total


def loopback_state(root: str) -> dict[str, t.Any]:
    """The devicemapper directory's files: relative path -> (size, blocks)."""
    found: dict[str, t.Any] = {}
    base = os.path.join(root, 'devicemapper')
    if os.path.isdir(base) and not os.path.islink(base):
        found['devicemapper'] = 'dir'
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            found[rel] = (st.st_size, st.st_blocks) if stat.S_ISREG(st.st_mode) else 'dir' if stat.S_ISDIR(st.st_mode) else 'other'
    return found


def wanted_loopback(data_size: int, metadata_size: int) -> dict[str, t.Any]:
    return {
        'devicemapper': 'dir',
        LOOPBACK_DIR: 'dir',
        os.path.join(LOOPBACK_DIR, 'data'): (data_size, 0),
        os.path.join(LOOPBACK_DIR, 'metadata'): (metadata_size, 0),
    }


def plan(entries: list[str], keep_volumes: bool, loopback_ok: bool) -> tuple[list[str], list[str]]:
    """(top-level entries to remove, entries kept)."""
    keep = set()
    if keep_volumes:
        keep.add('volumes')
    if loopback_ok:
        keep.add('devicemapper')
    return [name for name in entries if name not in keep], [name for name in entries if name in keep]


# ---- the module's work --------------------------------------------------------

def reset(module: t.Any) -> dict[str, t.Any]:
    params = module.params
    data_root = params['data_root']
    keep_volumes = params['keep_volumes']
    loopback = params['loopback']
    data_size = parse_size(params['data_size'], 'data_size')
    metadata_size = parse_size(params['metadata_size'], 'metadata_size')

    real = os.path.realpath(data_root)
    is_dir = os.path.isdir(real)
    entries = _listdir(real) if is_dir else []
    problem = path_problem(data_root, real, is_dir, entries, _listdir(os.path.join(real, 'volumes')))
    if problem:
        raise HostprepError(problem, data_root=data_root)
    submounts = mounts_below(real, _mounts.read_mounts(module))
    if submounts:
        raise HostprepError('data_root %s has filesystems mounted below it (%s); a stopped dockerd leaves none, so '
                            'something else uses them: unmount them first; nothing was changed'
                            % (data_root, ', '.join(submounts[:5])), mounts=submounts)

    wanted = wanted_loopback(data_size, metadata_size)
    current_loop = loopback_state(real)
    loopback_ok = loopback and current_loop == wanted
    remove, kept = plan(entries, keep_volumes, loopback_ok)
    remove_paths = [os.path.join(real, name) for name in remove]
    removed = {
        'containers': count_containers(real) if 'containers' in remove else 0,
        'images': count_images(real) if 'image' in remove else 0,
        'volumes': count_volumes(real) if 'volumes' in remove else 0,
        'bytes': allocated_bytes(remove_paths),
        'paths': remove_paths,
    }
    create = loopback and not loopback_ok
    changed = bool(remove) or create
    loop_files = []
    if loopback:
        for name, size in (('data', data_size), ('metadata', metadata_size)):
            loop_files.append({'path': os.path.join(real, LOOPBACK_DIR, name), 'size': size, 'allocated': 0})

    # dockerd (and the containerd it started under the data root) by their
    # command lines, the pidfile, and the socket: shared with btrfs_data_root.
    users = _engine_use.engines_using([real], _engine_use.read_processes())
    pid = _engine_use.pidfile_dockerd(params['pidfile'])
    answers = _engine_use.ping_engine(params['docker_host'], params['timeout'])
    if users or pid or answers:
        why = list(users)
        if pid:
            why.append('the pidfile %s names the running dockerd pid %d' % (params['pidfile'], pid))
        if answers:
            why.append('an engine answers on %s' % params['docker_host'])
        raise HostprepError('dockerd must be stopped before data_root %s is reset, and it runs (%s); stop it (systemctl '
                            'stop docker.socket docker) and run again; nothing was changed'
                            % (data_root, '; '.join(why)), users=users, removed=removed)

    if not params['force']:
        raise HostprepError(
            'docker_storage_reset would remove %d containers, %d images, %d volumes and %d bytes under %s (%s)%s; '
            'set force=true to reset it; nothing was changed'
            % (removed['containers'], removed['images'], removed['volumes'], removed['bytes'], data_root,
               ', '.join(remove) or 'nothing',
               ' and create sparse loopback files of %d and %d bytes' % (data_size, metadata_size) if create else ''),
            removed=removed, would_change=changed)

    diff = Differences()
    diff.add('entries', sorted(entries), sorted(kept + (['devicemapper'] if create and 'devicemapper' not in kept else [])))
    if loopback:
        diff.add('loopback', {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(current_loop.items())},
                 {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(wanted.items())})

    reclaimed = removed['bytes']
    if changed and not module.check_mode:
        for path in remove_paths:
            _remove(path)
        if create:
            loop_files = create_loopback(real, data_size, metadata_size)
        reclaimed = removed['bytes'] - sum(item['allocated'] for item in loop_files)
    elif loopback and not create:
        loop_files = []
        for rel, value in sorted(current_loop.items()):
            if isinstance(value, tuple):
                loop_files.append({'path': os.path.join(real, rel), 'size': value[0], 'allocated': value[1] * 512})
    return {
        'changed': changed,
        'data_root': data_root,
        'removed': removed,
        'reclaimed_bytes': reclaimed,
        'loopback_files': loop_files,
        'kept': [os.path.join(real, name) for name in kept],
        'diff': diff.diff(header=data_root),
    }


def _remove(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except OSError as exc:
        raise HostprepError('removing %s failed: %s; the data root is partly reset, fix the cause and run again'
                            % (path, exc), path=path) from exc


def create_loopback(root: str, data_size: int, metadata_size: int) -> list[dict[str, t.Any]]:
    """Sparse data and metadata files (mode 0600, in 0700 directories, as
    dockerd makes them)."""
    directory = os.path.join(root, LOOPBACK_DIR)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(os.path.join(root, 'devicemapper'), 0o700)
    os.chmod(directory, 0o700)
    made = []
    for name, size in (('data', data_size), ('metadata', metadata_size)):
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        st = os.lstat(path)
        made.append({'path': path, 'size': st.st_size, 'allocated': st.st_blocks * 512})
    return made
