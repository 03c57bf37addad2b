# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The devicemapper loopback reset, private to hostprep.container_host.

The classic recipe (stop docker, wipe the data root, recreate sparse loopback
files, start docker) as checked steps. The path must be proven Docker's
before anything goes: it is the data root the engine is configured with
(dockerd's flags, daemon.json data-root, else /var/lib/docker; symbolic
links resolved as dockerd resolves them), every top-level entry is one
dockerd makes (_data_root_layout), no filesystem is mounted below it and no
other mount point shows its files, and no dockerd uses it. What would go is
counted from the data root's own files (containers/*/config.v2.json,
image/<driver>/imagedb/content/sha256/*, volumes/*) and its allocated bytes;
named volumes stay unless asked otherwise. A removal that fails halfway
records what went (changes_of) and says what is left. The functions that
look at a directory tree take the path, the rest are pure.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    Changes,
    Differences,
    HostprepError,
    changes_of,
)
from ansible_collections.hostprep.container_host.plugins.module_utils import _daemon_config
from ansible_collections.hostprep.container_host.plugins.module_utils._daemon_json import config_text
from ansible_collections.hostprep.container_host.plugins.module_utils._dockerd_flags import read_flags
from ansible_collections.hostprep.container_host.plugins.module_utils import _data_root_layout as _layout
from ansible_collections.hostprep.container_host.plugins.module_utils import _engine
from ansible_collections.hostprep.container_host.plugins.module_utils import _engine_use
from ansible_collections.hostprep.container_host.plugins.module_utils import _mounts
from ansible_collections.hostprep.container_host.plugins.module_utils import _sizes

LOOPBACK_DIR = _layout.LOOPBACK_DIR

# Directories that are never a data root: wiping them would wipe the system.
PROTECTED = frozenset([
    '/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/libx32', '/media', '/mnt',
    '/opt', '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/usr/bin', '/usr/lib',
    '/usr/local', '/usr/sbin', '/usr/share', '/var', '/var/lib', '/var/log', '/var/tmp', '/var/cache',
    '/var/run', '/var/lib/containerd',
])
NOTHING = 'nothing was changed'


# ---- which data root the engine is configured with -----------------------------

def configured_data_root(daemon_config: str, flags: list[_daemon_config.FlagUse],
                         read: t.Callable[[str], str | None] = config_text) -> tuple[str, str]:
    """(the data root dockerd would use, where that is set). dockerd's
    --config-file flag names the daemon.json to read; a data root set both
    as a flag and in daemon.json to different paths is refused (dockerd
    refuses to start so)."""
    for use in flags:
        if use.flag == 'config-file' and use.value:
            daemon_config = use.value
    try:
        config, dummy_warnings = _daemon_config.parse_config(read(daemon_config), daemon_config)
    except HostprepError as exc:
        raise HostprepError('cannot tell which data root the engine is configured with: %s' % exc.msg) from exc
    config = config or {}
    flagged = [use for use in flags if use.flag in ('data-root', 'graph') and use.value]
    in_config = next((config[key] for key in ('data-root', 'graph') if isinstance(config.get(key), str) and config[key]),
                     None)
    if flagged and in_config and os.path.normpath(flagged[-1].value or '') != os.path.normpath(in_config):
        raise HostprepError('the engine\'s data root is set twice: %s in %s and flag --%s %s in %s; dockerd refuses '
                            'to start so, and which one is meant cannot be told; remove one of them; %s'
                            % (in_config, daemon_config, flagged[-1].flag, flagged[-1].value, flagged[-1].where(), NOTHING))
    if in_config:
        return in_config, 'data-root in %s' % daemon_config
    if flagged:
        return flagged[-1].value or '', 'flag --%s in %s' % (flagged[-1].flag, flagged[-1].where())
    return _engine.DEFAULT_DATA_ROOT, 'the default: neither %s nor dockerd\'s flags set one' % daemon_config


# ---- is this Docker's data root, and may it be wiped ---------------------------

def system_directory_problem(data_root: str, real: str) -> str | None:
    if real in PROTECTED or data_root.rstrip('/') in PROTECTED or not data_root.strip('/'):
        return ('data_root %s%s is a system directory, not a Docker data root; give the path of the data root '
                '(for example /var/lib/docker); %s' % (data_root, ' (%s)' % real if real != data_root else '', NOTHING))
    return None


def existence_problem(data_root: str, real: str) -> str | None:
    if not os.path.isabs(data_root):
        return ('data_root %s is not an absolute path; give the absolute path of the Docker data root (daemon.json '
                'data-root, default /var/lib/docker); %s' % (data_root, NOTHING))
    if not os.path.lexists(data_root):
        return ('data_root %s does not exist; give the path of the Docker data root (daemon.json data-root, '
                'default /var/lib/docker); %s' % (data_root, NOTHING))
    if not os.path.isdir(real):
        what = 'a symbolic link to %s, which is not a directory' % real if real != data_root else 'not a directory'
        return ('data_root %s is %s; give the path of the Docker data root (daemon.json data-root, default '
                '/var/lib/docker); %s' % (data_root, what, NOTHING))
    return None


def configured_problem(data_root: str, real: str, configured: str, configured_real: str, where: str) -> str | None:
    """data_root must be the directory dockerd is configured to use (the
    same directory after symbolic links, as dockerd resolves them)."""
    if real == configured_real:
        return None
    shown = configured if configured_real == configured else '%s (%s)' % (configured, configured_real)
    given = data_root if real == data_root else '%s (%s)' % (data_root, real)
    return ('data_root %s is not the engine\'s data root: dockerd is configured to use %s (%s); give data_root: %s, '
            'or, when dockerd reads its settings from other files, name them with daemon_config and flags_sources; %s'
            % (given, shown, where, configured, NOTHING))


def layout_problem(data_root: str, entries: dict[str, str], filesystem_root: bool) -> str | None:
    """Entries dockerd does not make are refused by name: they would be
    deleted with the data root."""
    foreign = _layout.foreign_entries(entries, filesystem_root)
    if not foreign:
        return None
    shown = ', '.join(foreign[:10]) + (' and %d more' % (len(foreign) - 10) if len(foreign) > 10 else '')
    return ('data_root %s holds %s that Docker does not make: %s; the reset would delete %s with the data root. '
            'Move %s out of %s (or check that data_root is right) and run again; a Docker data root holds only %s; %s'
            % (data_root, 'an entry' if len(foreign) == 1 else '%d entries' % len(foreign), shown,
               'it' if len(foreign) == 1 else 'them', 'it' if len(foreign) == 1 else 'them', data_root,
               ', '.join(sorted(_layout.ENTRIES)), NOTHING))


def linked_problem(data_root: str, real: str, remove: list[str], entries: dict[str, str]) -> str | None:
    """A top-level entry that is a symbolic link would lose only the link:
    what it points to stays, and the reset would not be what it reports."""
    linked = [name for name in remove if entries.get(name) == 'symbolic link']
    if not linked:
        return None
    shown = ', '.join('%s -> %s' % (name, os.readlink(os.path.join(real, name))) for name in linked)
    return ('data_root %s has entries that are symbolic links (%s); the reset would remove only the links and leave '
            'what they point to. Remove the links and their targets yourself, or replace the links by the directories, '
            'and run again; %s' % (data_root, shown, NOTHING))


def mounts_below(real: str, mounts: list[_mounts.Mount]) -> list[str]:
    """Mount points strictly below real."""
    return sorted({mount.target for mount in mounts
                   if _mounts.is_within(mount.target, real) and os.path.normpath(mount.target) != real})


def holding_mount(real: str, mounts: list[_mounts.Mount]) -> _mounts.Mount | None:
    """The mount whose files one sees at real (the deepest, last stacked)."""
    found = None
    for mount in mounts:
        if _mounts.is_within(real, mount.target) and (found is None or len(mount.target) >= len(found.target)):
            found = mount
    return found


def also_shown_at(real: str, mounts: list[_mounts.Mount],
                  same_device: t.Callable[[str, str], bool] = _mounts.same_block_device) -> list[str]:
    """Other mount points that show the data root's files or a part of them
    (the same filesystem mounted twice, or the data root bound elsewhere):
    emptying the data root would empty them too. A mount that shows a
    directory above the data root (the filesystem the data root was bound
    from) is not counted: that is where the data root's files live."""
    holder = holding_mount(real, mounts)
    if holder is None:
        return []
    inside = os.path.normpath(os.path.join(holder.fsroot or '/', os.path.relpath(real, holder.target)))
    return sorted({mount.target for mount in mounts
                   if mount is not holder and not _mounts.is_within(mount.target, real)
                   and same_device(mount.source, holder.source) and _mounts.is_within(mount.fsroot or '/', inside)})


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


def tree_usage(paths: list[str], seen: set[tuple[int, int]] | None = None) -> tuple[int, int]:
    """(bytes allocated on disk (st_blocks * 512), number of files and
    directories) at and under the paths, symlinks not followed, each inode
    counted once (hard links)."""
    seen = set() if seen is None else seen
    total = count = 0
    stack = list(paths)
    while stack:
        path = stack.pop()
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        count += 1
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
    return total, count


def allocated_bytes(paths: list[str], seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes allocated on disk under the paths (see tree_usage)."""
    return tree_usage(paths, seen)[0]


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

class Proof(t.NamedTuple):
    """What prove_data_root found out about a data root."""
    real: str                    # the directory, symbolic links resolved
    entries: dict[str, str]      # its top-level entries: name -> kind
    filesystem_root: bool        # whether it is the root of its own filesystem
    configured: dict[str, str]   # the configured data root and where it is set
    mounts: list[_mounts.Mount]  # the kernel's mount table


def prove_data_root(module: t.Any, data_root: str) -> Proof:
    """Refuse data_root, naming what is wrong, unless it is the engine's
    configured data root in Docker's layout that no other mount point shows."""
    params = module.params
    real = os.path.realpath(data_root)
    problem = system_directory_problem(data_root, real) or existence_problem(data_root, real)
    if problem:
        raise HostprepError(problem, data_root=data_root)
    flags = read_flags(params['flags_sources'])
    configured, where = configured_data_root(params['daemon_config'], flags)
    configured_real = os.path.realpath(configured)
    problem = (system_directory_problem(configured, configured_real)
               or configured_problem(data_root, real, configured, configured_real, where))
    if problem:
        raise HostprepError(problem, data_root=data_root, configured_data_root=configured)
    mounts = _mounts.read_mounts(module)
    filesystem_root = any(os.path.normpath(mount.target) == real for mount in mounts)
    entries = _layout.read_entries(real)
    problem = layout_problem(data_root, entries, filesystem_root)
    if problem:
        raise HostprepError(problem, data_root=data_root, foreign=_layout.foreign_entries(entries, filesystem_root))
    elsewhere = also_shown_at(real, mounts)
    if elsewhere:
        raise HostprepError('data_root %s shows the same files as %s (the same filesystem mounted more than once); '
                            'the reset would empty %s too: unmount %s first, or give the data root a filesystem of '
                            'its own; %s' % (data_root, ', '.join(elsewhere), 'it' if len(elsewhere) == 1 else 'them',
                                             ', '.join(elsewhere), NOTHING), mounts=elsewhere)
    return Proof(real, entries, filesystem_root, {'path': configured, 'source': where}, mounts)


def refuse_mounts_below(data_root: str, real: str, mounts: list[_mounts.Mount], remove: list[str]) -> None:
    """Filesystems mounted in what would be removed (the removal would empty
    them). One mounted in a kept entry (volumes/ on a disk of its own) stays."""
    submounts = [target for target in mounts_below(real, mounts)
                 if any(_mounts.is_within(target, os.path.join(real, name)) for name in remove)]
    if submounts:
        raise HostprepError('data_root %s has filesystems mounted below it (%s); a stopped dockerd leaves none, so '
                            'something else uses them, and the reset would empty them: unmount them first; %s'
                            % (data_root, ', '.join(submounts[:5]), NOTHING), mounts=submounts)


def refuse_running(params: dict[str, t.Any], data_root: str, real: str, removed: dict[str, t.Any]) -> None:
    """dockerd (and the containerd it started under the data root) by their
    command lines, the pidfile, and the socket: shared with btrfs_data_root."""
    users = _engine_use.engines_using([real], _engine_use.read_processes())
    pid = _engine_use.pidfile_dockerd(params['pidfile'])
    answers = _engine_use.ping_engine(params['docker_host'], params['timeout'])
    if not (users or pid or answers):
        return
    why = list(users)
    if pid:
        why.append('the pidfile %s names the running dockerd pid %d' % (params['pidfile'], pid))
    if answers:
        why.append('an engine answers on %s%s' % (params['docker_host'], ' (data root %s)' % answers['data_root']
                                                  if answers.get('data_root') else ''))
    raise HostprepError('dockerd must be stopped before data_root %s is reset, and it runs (%s); stop it (systemctl '
                        'stop docker.socket docker) and run again; %s' % (data_root, '; '.join(why), NOTHING),
                        users=users, removed=removed)


def reset(module: t.Any) -> dict[str, t.Any]:
    params = module.params
    data_root = params['data_root']
    data_size = _sizes.size_option('data_size', params['data_size'])
    metadata_size = _sizes.size_option('metadata_size', params['metadata_size'])
    real, entries, filesystem_root, configured, mounts = prove_data_root(module, data_root)

    wanted = wanted_loopback(data_size, metadata_size)
    current_loop = loopback_state(real)
    loopback_ok = params['loopback'] and current_loop == wanted
    names = [name for name in sorted(entries) if name not in _layout.kept_entries(entries, filesystem_root)]
    remove, kept = plan(names, params['keep_volumes'], loopback_ok)
    problem = linked_problem(data_root, real, remove, entries)
    if problem:
        raise HostprepError(problem, data_root=data_root)
    refuse_mounts_below(data_root, real, mounts, remove)
    remove_paths = [os.path.join(real, name) for name in remove]
    seen: set[tuple[int, int]] = set()
    usage = {path: tree_usage([path], seen) for path in remove_paths}
    removed = {
        'containers': count_containers(real) if 'containers' in remove else 0,
        'images': count_images(real) if 'image' in remove else 0,
        'volumes': count_volumes(real) if 'volumes' in remove else 0,
        'bytes': sum(size for size, dummy in usage.values()),
        'paths': remove_paths,
    }
    create = params['loopback'] and not loopback_ok
    changed = bool(remove) or create
    refuse_running(params, data_root, real, removed)

    if not params['force']:
        raise HostprepError(
            'docker_storage_reset would remove %d containers, %d images, %d volumes and %d bytes under %s (%s)%s; '
            'set force=true to reset it; %s'
            % (removed['containers'], removed['images'], removed['volumes'], removed['bytes'], data_root,
               ', '.join(remove) or 'nothing',
               ' and create sparse loopback files of %d and %d bytes' % (data_size, metadata_size) if create else '',
               NOTHING),
            removed=removed, would_change=changed, configured_data_root=configured['path'])

    kept_all = sorted(kept + _layout.kept_entries(entries, filesystem_root))
    diff = Differences()
    diff.add('entries', sorted(entries), sorted(kept_all + (['devicemapper'] if create and 'devicemapper' not in kept else [])))
    if params['loopback']:
        diff.add('loopback', {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(current_loop.items())},
                 {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(wanted.items())})

    loop_files = [{'path': os.path.join(real, LOOPBACK_DIR, name), 'size': size, 'allocated': 0}
                  for name, size in (('data', data_size), ('metadata', metadata_size))] if params['loopback'] else []
    reclaimed = removed['bytes']
    if changed and not module.check_mode:
        changes = changes_of(module)
        remove_entries(data_root, remove_paths, usage, changes)
        if create:
            loop_files = create_loopback(real, data_size, metadata_size, changes)
        reclaimed = removed['bytes'] - sum(item['allocated'] for item in loop_files)
    elif params['loopback'] and not create:
        loop_files = [{'path': os.path.join(real, rel), 'size': value[0], 'allocated': value[1] * 512}
                      for rel, value in sorted(current_loop.items()) if isinstance(value, tuple)]
    return {
        'changed': changed,
        'data_root': data_root,
        'configured_data_root': configured,
        'removed': removed,
        'reclaimed_bytes': reclaimed,
        'loopback_files': loop_files,
        'kept': [os.path.join(real, name) for name in kept_all],
        'diff': diff.diff(header=data_root),
    }


def _remove_tree(path: str) -> list[tuple[str, OSError]]:
    """Remove path and everything below it (links not followed), going on
    past what cannot be removed; the paths that stayed, with their errors."""
    errors: list[tuple[str, OSError]] = []

    def note(dummy_func: t.Any, where: str, exc: t.Any) -> None:
        errors.append((where, exc if isinstance(exc, BaseException) else exc[1]))

    if os.path.isdir(path) and not os.path.islink(path):
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=note)  # pylint: disable=unexpected-keyword-arg
        else:
            shutil.rmtree(path, onerror=note)  # pylint: disable=deprecated-argument
    else:
        try:
            os.unlink(path)
        except OSError as exc:
            errors.append((path, exc))
    return errors


def remove_entries(data_root: str, paths: list[str], usage: dict[str, tuple[int, int]], changes: Changes) -> None:
    """Remove the top-level entries in order, recording each in changes. At
    the first entry that cannot be removed whole, stop and say what went,
    what is left of that entry and what was not touched."""
    for index, path in enumerate(paths):
        errors = _remove_tree(path)
        if not errors:
            changes.made('removed %s' % path)
            continue
        # The cause, not the directories above it that stayed because of it.
        causes = ['%s: %s' % (where, getattr(exc, 'strerror', None) or exc) for where, exc in errors
                  if getattr(exc, 'errno', None) not in (errno.ENOTEMPTY, errno.EEXIST)]
        causes = causes or ['%s: %s' % (where, getattr(exc, 'strerror', None) or exc) for where, exc in errors]
        left = tree_usage([path])[1]
        total = usage.get(path, (0, left))[1]
        if left < total:
            changes.made('removed %d of the %d files and directories of %s' % (total - left, total, path))
        untouched = paths[index + 1:]
        raise HostprepError(
            'removing %s failed: %s; the data root %s is partly reset: %d of %d files and directories of %s are left'
            '%s. Find what stops the removal (lsattr -d for an immutable file, a read-only or full filesystem), fix it '
            'and run the reset again: it removes what is left'
            % (path, '; '.join(causes[:3]), data_root, left, total,
               path, ', not touched: %s' % ', '.join(untouched) if untouched else ''),
            removed_paths=paths[:index], partly_removed=path, not_removed=untouched,
            errors=causes[:20])


def create_loopback(root: str, data_size: int, metadata_size: int, changes: Changes | None = None) -> list[dict[str, t.Any]]:
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
        if changes is not None:
            changes.made('created the sparse file %s' % path)
        st = os.lstat(path)
        made.append({'path': path, 'size': st.st_size, 'allocated': st.st_blocks * 512})
    return made
