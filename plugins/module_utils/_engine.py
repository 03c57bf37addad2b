# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Facts about the Docker engine on a host, private to hostprep.container_host.

Which dockerd is installed and what it can do (storage drivers, ``--validate``,
the containerd image store), and what the filesystem under a data root offers
(type, mount options, d_type). Parsers are pure functions fed the text that
``dockerd --version`` and ``findmnt -J`` print; the functions that run
commands take the AnsibleModule and go through ``_common.run``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import stat
import struct
import tempfile
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils import _mounts
from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    HostprepError,
    run,
)

Version = t.Tuple[int, int, int]

DEFAULT_DATA_ROOT = '/var/lib/docker'
CONTAINERD_ROOT = '/var/lib/containerd'
DOCKERD_SEARCH_DIRS = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin']

# Graph drivers of Engine 20.10 (Debian 12's docker.io).
GRAPH_DRIVERS_20_10 = ('overlay2', 'fuse-overlayfs', 'btrfs', 'zfs', 'vfs',
                       'devicemapper', 'aufs', 'overlay')
# Engine 23 deprecated these: it no longer picks them itself, but still runs
# them when daemon.json names them.
DEPRECATED_DRIVERS = ('devicemapper', 'aufs', 'overlay')
# containerd snapshotters the engine accepts as storage-driver when it uses
# the containerd image store (Engine 24+ opt-in, 29+ default).
SNAPSHOTTERS = ('overlayfs', 'native', 'btrfs', 'zfs', 'devmapper', 'fuse-overlayfs', 'stargz')

# Filesystems overlay2 refuses to sit on (moby daemon/graphdriver/overlay2).
OVERLAY2_BAD_BACKING = ('aufs', 'ecryptfs', 'nfs', 'nfs4', 'overlay', 'zfs')

_VERSION_RE = re.compile(r'\bversion\s+v?(\d+)\.(\d+)(?:\.(\d+))?', re.IGNORECASE)


def parse_dockerd_version(text: str) -> Version:
    """``Docker version 20.10.24+dfsg1, build 5d6db84`` -> (20, 10, 24)."""
    match = _VERSION_RE.search(text or '')
    if not match:
        raise HostprepError('cannot read the engine version from "dockerd --version" output: %r'
                            % (text or '').strip()[:200])
    return (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))


def version_string(version: Version) -> str:
    return '%d.%d.%d' % version


def has_validate(version: Version) -> bool:
    """``dockerd --validate`` exists from Engine 23.0 on."""
    return version >= (23, 0, 0)


def uses_containerd_store(version: Version, config: dict[str, t.Any]) -> bool:
    """Whether the engine keeps images in containerd (storage-driver then
    names a snapshotter). Opt-in through features.containerd-snapshotter on
    Engine 24-28; the default from Engine 29 unless switched off or a graph
    driver is named explicitly."""
    features = config.get('features') if isinstance(config.get('features'), dict) else {}
    flag = features.get('containerd-snapshotter')
    if version < (24, 0, 0):
        return False
    if flag is not None:
        return bool(flag)
    if version >= (29, 0, 0):
        driver = config.get('storage-driver')
        # A graph driver named explicitly keeps the classic image store.
        return not (driver and driver in GRAPH_DRIVERS_20_10)
    return False


def storage_drivers(version: Version, containerd_store: bool = False) -> dict[str, str]:
    """Storage drivers this engine has: name -> 'supported' | 'deprecated'."""
    if containerd_store:
        drivers = {name: 'supported' for name in SNAPSHOTTERS}
        # The engine maps the classic name to containerd's overlayfs snapshotter.
        drivers['overlay2'] = 'supported'
        return drivers
    drivers = {name: 'supported' for name in GRAPH_DRIVERS_20_10}
    if version >= (23, 0, 0):
        for name in DEPRECATED_DRIVERS:
            drivers[name] = 'deprecated'
    if version >= (24, 0, 0):
        drivers.pop('aufs', None)
        drivers.pop('overlay', None)
    if version >= (25, 0, 0):
        drivers.pop('devicemapper', None)
    return drivers


def removed_driver_advice(driver: str, version: Version) -> str:
    """What to use instead of a driver this engine no longer has."""
    if driver == 'devicemapper':
        return ('Engine %s removed devicemapper (gone since 25.0); use overlay2 on XFS '
                '(for example on a thin LV formatted XFS with ftype=1 and project quota) '
                'or containerd\'s devmapper snapshotter instead' % version_string(version))
    if driver in ('aufs', 'overlay'):
        return 'Engine %s removed %s (gone since 24.0); use overlay2 instead' % (version_string(version), driver)
    return 'use one of the drivers this engine has'


class EngineFacts:
    """What the collection knows about one dockerd binary."""

    def __init__(self, path: str, version: Version) -> None:
        self.path = path
        self.version = version

    @property
    def has_validate(self) -> bool:
        return has_validate(self.version)

    def as_dict(self) -> dict[str, t.Any]:
        return {'path': self.path, 'version': version_string(self.version),
                'has_validate': self.has_validate}


def find_dockerd(module: t.Any, dockerd_path: str | None = None) -> str | None:
    """Path of dockerd: the given one (must exist) or the first on PATH."""
    if dockerd_path:
        if not (os.path.isfile(dockerd_path) and os.access(dockerd_path, os.X_OK)):
            raise HostprepError('dockerd_path %s is not an executable file; point it at the dockerd '
                                'binary or leave it unset to search PATH' % dockerd_path)
        return dockerd_path
    return module.get_bin_path('dockerd', required=False, opt_dirs=DOCKERD_SEARCH_DIRS)


def engine_facts(module: t.Any, dockerd_path: str | None = None) -> EngineFacts | None:
    """Find dockerd and read its version; None when no engine is installed."""
    path = find_dockerd(module, dockerd_path)
    if not path:
        return None
    dummy_rc, out, dummy_err = run(module, [path, '--version'])
    return EngineFacts(path, parse_dockerd_version(out))


def validate_config_file(module: t.Any, engine: EngineFacts, config_path: str) -> str | None:
    """Run ``dockerd --validate --config-file PATH``; return dockerd's error
    text or None when the engine accepts the file."""
    rc, out, err = run(module, [engine.path, '--validate', '--config-file', config_path], check_rc=False)
    if rc == 0:
        return None
    return (err or out).strip() or 'dockerd --validate failed with exit status %d' % rc


# ---- filesystems under the data root ---------------------------------------

def nearest_existing(path: str) -> str:
    """The path itself or its closest ancestor that exists (findmnt -T and
    statfs need an existing path; a data root may not exist yet)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def parse_findmnt(text: str) -> dict[str, t.Any]:
    """The one filesystem ``findmnt -J -T PATH -o TARGET,SOURCE,FSTYPE,OPTIONS``
    reports (read by _mounts.parse_findmnt_list), with options split into a
    list and the source as findmnt prints it (``/dev/sda1[/sub]`` for a bind
    mount)."""
    filesystems = _mounts.parse_findmnt_list(text)
    if not filesystems:
        raise HostprepError('findmnt reported no filesystem')
    mount = filesystems[-1]
    return {
        'target': mount.target,
        'source': mount.source if mount.fsroot in ('', '/') else '%s[%s]' % (mount.source, mount.fsroot),
        'fstype': mount.fstype,
        'options': list(mount.options),
    }


def has_project_quota(mount: dict[str, t.Any]) -> bool:
    """XFS mounted with project quota: the kernel shows prjquota (from the
    pquota/prjquota mount options) in the mount options."""
    opts = set(mount.get('options') or [])
    return mount.get('fstype') == 'xfs' and bool(opts & {'prjquota', 'pquota', 'pqnoenforce'})


def mount_facts(module: t.Any, path: str) -> dict[str, t.Any]:
    """Filesystem that holds path (or its nearest existing ancestor)."""
    existing = nearest_existing(path)
    findmnt = module.get_bin_path('findmnt', required=True)
    dummy_rc, out, dummy_err = run(module, [findmnt, '-J', '-T', existing, '-o', 'TARGET,SOURCE,FSTYPE,OPTIONS'])
    facts = parse_findmnt(out)
    facts['path'] = path
    facts['checked_path'] = existing
    return facts


# d_type: overlay2 needs a filesystem that fills in the file type of directory
# entries (XFS made with ftype=0 does not). Python hides d_type, so read the
# entries with getdents64, as dockerd's own fsutils.SupportsDType does.
DT_UNKNOWN = 0
_DIRENT_HEADER = struct.Struct('=QqHB')


def parse_dirents(buf: bytes) -> list[tuple[str, int]]:
    """(name, d_type) pairs from a buffer of struct linux_dirent64."""
    entries = []
    offset = 0
    while offset + _DIRENT_HEADER.size <= len(buf):
        dummy_ino, dummy_off, reclen, dtype = _DIRENT_HEADER.unpack_from(buf, offset)
        if reclen == 0:
            break
        raw = buf[offset + _DIRENT_HEADER.size:offset + reclen]
        name = raw.split(b'\0', 1)[0].decode('utf-8', 'surrogateescape')
        entries.append((name, dtype))
        offset += reclen
    return entries


def read_dirents(path: str) -> list[tuple[str, int]]:
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
    getdents64 = libc.getdents64
    getdents64.restype = ctypes.c_ssize_t
    getdents64.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        entries: list[tuple[str, int]] = []
        buf = ctypes.create_string_buffer(32768)
        while True:
            size = getdents64(fd, buf, len(buf))
            if size < 0:
                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), path)
            if size == 0:
                return entries
            entries.extend(parse_dirents(buf.raw[:size]))
    finally:
        os.close(fd)


def dtype_from_entries(entries: list[tuple[str, int]]) -> bool | None:
    """True/False when the entries tell (``.`` and ``..`` never do: XFS always
    types them), None when there is nothing but them."""
    real = [dtype for name, dtype in entries if name not in ('.', '..')]
    if not real:
        return None
    return all(dtype != DT_UNKNOWN for dtype in real)


def supports_dtype(path: str) -> bool:
    """Whether the filesystem under path reports d_type. Reads the entries of
    the nearest existing directory; when it is empty, makes a throw-away
    directory with one file in it there and removes it again."""
    directory = nearest_existing(path)
    if not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    verdict = dtype_from_entries(read_dirents(directory))
    if verdict is not None:
        return verdict
    probe = tempfile.mkdtemp(prefix='.hostprep-dtype-', dir=directory)
    try:
        os.mkdir(os.path.join(probe, 'd'))
        verdict = dtype_from_entries(read_dirents(probe))
        return bool(verdict)
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def is_block_device(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False
