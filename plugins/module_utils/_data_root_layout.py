# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What dockerd keeps at the top of its data root, private to hostprep.container_host.

One table for every module that looks at a data root: docker_storage_reset
proves with it that a directory is Docker's before deleting it,
docker_storage_info finds the storage driver by its directory.

Measured: the top-level entries of private dockerd data roots (an image
imported, a named volume, a container run and one created, the engine
stopped), recorded in tests/unit/fixtures/docker/data_root_layouts.json:
Engine 20.10.24 (Debian 12 docker.io) with overlay2, vfs and btrfs, and
Engine 26.1.5 (Debian 13 docker.io) with overlay2, vfs, btrfs and the
containerd image store (overlayfs snapshotter). The entries no engine here
makes (the other drivers' homes, tmp-old, builder) are from moby's source:
daemon/graphdriver (driver homes), daemon.prepareTempDir (tmp-old), the
pre-20.10 builder cache.
"""

from __future__ import annotations

import os
import stat
import typing as t

DIRECTORY = 'directory'
FILE = 'file'

# The graph drivers' directories dockerd looks for under the data root when
# no driver is configured (moby daemon/graphdriver: scanPriorDrivers).
DRIVER_DIRS = ('overlay2', 'btrfs', 'devicemapper', 'zfs', 'vfs', 'fuse-overlayfs', 'aufs', 'overlay')
# devicemapper's loop-lvm files (moby daemon/graphdriver/devmapper).
LOOPBACK_DIR = os.path.join('devicemapper', 'devicemapper')

# name -> (kind, what it is and which engines make it)
ENTRIES: dict[str, tuple[str, str]] = {
    'buildkit': (DIRECTORY, 'BuildKit state and build cache (20.10, 26 measured)'),
    'containerd': (DIRECTORY, 'root of the containerd dockerd starts itself; with the containerd image store '
                              'also the images (20.10, 26 measured)'),
    'containers': (DIRECTORY, 'one directory per container (20.10, 26 measured)'),
    'engine-id': (FILE, 'the engine\'s ID (26 measured; 20.10 keeps it in key.json)'),
    'image': (DIRECTORY, 'image store of the graph drivers (20.10, 26 measured; not with the containerd image store)'),
    'network': (DIRECTORY, 'network/files/local-kv.db (20.10, 26 measured)'),
    'plugins': (DIRECTORY, 'managed plugins (20.10, 26 measured)'),
    'rootfs': (DIRECTORY, 'containers\' root filesystems with the containerd image store (26 measured)'),
    'runtimes': (DIRECTORY, 'runtime wrappers (20.10, 26 measured)'),
    'swarm': (DIRECTORY, 'swarm state (20.10, 26 measured)'),
    'tmp': (DIRECTORY, 'temporary files (20.10, 26 measured)'),
    'tmp-old': (DIRECTORY, 'the previous tmp, renamed at start and removed in the background (moby '
                           'daemon.prepareTempDir); left when dockerd stopped before it was gone'),
    'trust': (DIRECTORY, 'content trust keys (20.10 measured; 26 makes none)'),
    'volumes': (DIRECTORY, 'named and anonymous volumes and their metadata.db (20.10, 26 measured)'),
    'builder': (DIRECTORY, 'the classic builder\'s cache of engines before 20.10, left by upgrades'),
}
ENTRIES.update((name, (DIRECTORY, 'home of the %s storage driver' % name)) for name in DRIVER_DIRS)

# Entries of the filesystem itself, found when the data root is the root of
# its own filesystem (a dedicated disk or LV mounted there): never removed.
FILESYSTEM_ENTRIES = frozenset(['lost+found'])


def kind_of(mode: int) -> str:
    """'directory', 'file', 'symbolic link' or 'special file' from st_mode."""
    if stat.S_ISLNK(mode):
        return 'symbolic link'
    if stat.S_ISDIR(mode):
        return DIRECTORY
    if stat.S_ISREG(mode):
        return FILE
    return 'special file'


def read_entries(path: str) -> dict[str, str]:
    """The top-level entries of a directory: name -> kind (links not followed)."""
    found: dict[str, str] = {}
    with os.scandir(path) as entries:
        for entry in entries:
            found[entry.name] = kind_of(entry.stat(follow_symlinks=False).st_mode)
    return found


def foreign_entries(entries: dict[str, str], filesystem_root: bool) -> list[str]:
    """Entries dockerd does not make, described ('Documents (directory)',
    'image (file; Docker makes a directory)'). Symbolic links to an entry of
    the right name are Docker's (an operator may move volumes/ elsewhere);
    lost+found counts only at the root of a filesystem."""
    found = []
    for name, kind in sorted(entries.items()):
        if name in FILESYSTEM_ENTRIES and filesystem_root:
            continue
        wanted = ENTRIES.get(name)
        if wanted is None:
            found.append('%s (%s)' % (name, kind))
        elif kind != wanted[0] and kind != 'symbolic link':
            found.append('%s (%s; Docker makes a %s)' % (name, kind, wanted[0]))
    return found


def kept_entries(entries: t.Iterable[str], filesystem_root: bool) -> list[str]:
    """Entries of the filesystem that stay whatever is reset."""
    return sorted(name for name in entries if filesystem_root and name in FILESYSTEM_ENTRIES)
