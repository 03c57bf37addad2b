# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Mount state and mount actions, private to hostprep.container_host.

The kernel's mount table comes from ``findmnt -J --list`` (one call, all
mounts). A bind mount is told from a plain mount by what the kernel reports,
not by comparing paths as text: findmnt shows a bind mount's SOURCE as the
device, with the bound directory in brackets (``/dev/loop4[/sub]``), and the
directory inside the filesystem as FSROOT. Two mounts show the same files
when their source is the same block device (compared by device number) and
their FSROOT is the same. Whole-path parsers are pure; the functions that
run commands take the AnsibleModule and go through ``_common.run``.
"""

from __future__ import annotations

import json
import os
import stat
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    HostprepError,
    run,
)
from ansible_collections.hostprep.container_host.plugins.module_utils._fstab import normpath

FINDMNT_COLUMNS = 'TARGET,SOURCE,FSTYPE,OPTIONS,FSROOT,MAJ:MIN'


class Mount:
    """One line of the kernel's mount table."""

    def __init__(self, target: str, source: str, fstype: str, options: list[str], fsroot: str,
                 majmin: str | None = None) -> None:
        self.target = target
        self.source = source
        self.fstype = fstype
        self.options = options
        self.fsroot = fsroot
        self.majmin = majmin  # MAJ:MIN as findmnt shows it (btrfs shows an anonymous 0:N)

    def option_value(self, name: str) -> str | None:
        for opt in self.options:
            key, eq, value = opt.partition('=')
            if key == name:
                return value if eq else ''
        return None

    def as_dict(self) -> dict[str, t.Any]:
        return {'source': self.source, 'target': self.target, 'fstype': self.fstype,
                'options': list(self.options), 'fsroot': self.fsroot}

    def describe(self) -> str:
        where = self.source if self.fsroot in ('', '/') else '%s[%s]' % (self.source, self.fsroot)
        return '%s (%s)' % (where, self.fstype)

    def __repr__(self) -> str:
        return 'Mount(%r)' % self.as_dict()


def split_source(source: str, fsroot: str | None) -> tuple[str, str]:
    """findmnt's SOURCE without the ``[/dir]`` it adds for bind mounts, and
    the FSROOT (from its own column, else from those brackets)."""
    source = source or ''
    inner = None
    if source.endswith(']') and '[' in source:
        source, dummy, inner = source[:-1].partition('[')
    return source, fsroot or inner or '/'


def parse_findmnt_list(text: str) -> list[Mount]:
    """Mounts from ``findmnt -J [--list] [-T PATH] -o TARGET,SOURCE,FSTYPE,OPTIONS,FSROOT,MAJ:MIN``
    (any of these columns may be left out), in the kernel's order (a later
    mount on the same target covers an earlier one). The one parser of
    findmnt's JSON in this collection."""
    data = json.loads(text or '{}')
    mounts = []
    for entry in data.get('filesystems') or []:
        source, fsroot = split_source(entry.get('source') or '', entry.get('fsroot'))
        options = [opt for opt in (entry.get('options') or '').split(',') if opt]
        mounts.append(Mount(entry.get('target') or '', source, entry.get('fstype') or '', options, fsroot,
                            entry.get('maj:min')))
    return mounts


def mounts_at(mounts: list[Mount], target: str) -> list[Mount]:
    want = normpath(target)
    return [mount for mount in mounts if normpath(mount.target) == want]


def visible_at(mounts: list[Mount], target: str) -> Mount | None:
    """The mount one sees at target (the last one stacked there), if any."""
    found = mounts_at(mounts, target)
    return found[-1] if found else None


def device_number(path: str) -> int | None:
    """st_rdev of a block device path (following symlinks), else None."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_rdev if stat.S_ISBLK(info.st_mode) else None


def same_block_device(a: str, b: str, number: t.Callable[[str], int | None] = device_number) -> bool:
    """Whether two paths name the same block device (``/dev/loop4`` and
    ``/dev/disk/by-uuid/...`` do)."""
    if not a.startswith('/') or not b.startswith('/'):
        return False  # tmpfs, overlay, proc: no device behind them
    first = number(a)
    return first is not None and first == number(b)


def shows_same_files(mount: Mount, source: str, fsroot: str,
                     same_device: t.Callable[[str, str], bool] = same_block_device) -> bool:
    """Whether mount shows the directory fsroot of the filesystem on source:
    the test for 'this bind mount is already in place'."""
    return same_device(mount.source, source) and normpath(mount.fsroot or '/') == normpath(fsroot or '/')


def mounts_of(mounts: list[Mount], device: str,
              same_device: t.Callable[[str, str], bool] = same_block_device) -> list[Mount]:
    return [mount for mount in mounts if same_device(mount.source, device)]


def resolve(path: str) -> str:
    """An absolute path as the kernel reports a mount target there: symbolic
    links followed (the part that exists), ``..`` resolved. A relative path
    is returned as given, for the caller to refuse."""
    return os.path.realpath(path) if path.startswith('/') else path


def is_within(path: str, root: str) -> bool:
    """path is root or lies below it (as paths, after normalising)."""
    path, root = normpath(path), normpath(root)
    return path == root or path.startswith(root.rstrip('/') + '/')


# ---- commands -------------------------------------------------------------------

def read_mounts(module: t.Any) -> list[Mount]:
    findmnt = module.get_bin_path('findmnt', required=True)
    dummy_rc, out, dummy_err = run(module, [findmnt, '-J', '--list', '-o', FINDMNT_COLUMNS])
    return parse_findmnt_list(out)


def mount(module: t.Any, source: str, target: str, fstype: str | None = None,
          options: list[str] | None = None) -> None:
    args = [module.get_bin_path('mount', required=True)]
    if fstype:
        args += ['-t', fstype]
    if options:
        args += ['-o', ','.join(options)]
    run(module, args + ['--', source, target])


def bind_mount(module: t.Any, source: str, target: str) -> None:
    run(module, [module.get_bin_path('mount', required=True), '--bind', '--', source, target])


def unmount(module: t.Any, target: str) -> None:
    run(module, [module.get_bin_path('umount', required=True), '--', target])


def unmount_quietly(module: t.Any, target: str) -> str | None:
    """Unmount during a rollback; returns an error text instead of raising."""
    try:
        unmount(module, target)
    except HostprepError as exc:
        return exc.msg
    return None
