# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Storage keys of daemon.json checked against the engine and the host,
private to hostprep.container_host.

Whether storage-driver and storage-opts suit an engine version and the
filesystem under the data root (d_type, project quota, btrfs, thin pools).
``check_storage()`` and its parts are pure: what they need to know about
the host comes through a ``Probe``. ``HostProbe`` is the real host's (it
runs findmnt and reads the file system); the tests pass recorded ones.
"""

from __future__ import annotations

import os
import re
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils import _engine
from ansible_collections.hostprep.container_host.plugins.module_utils._dockerd_flags import FlagUse

# storage-opts each graph driver knows (moby daemon/graphdriver/*).
DRIVER_OPTIONS: dict[str, frozenset[str] | None] = {
    'overlay2': frozenset(['overlay2.size', 'overlay2.override_kernel_check']),
    'overlay': frozenset(['overlay.override_kernel_check']),
    'btrfs': frozenset(['btrfs.min_space']),
    'zfs': frozenset(['zfs.fsname']),
    'vfs': frozenset(['size']),
    'devicemapper': frozenset('''
        dm.basesize dm.blkdiscard dm.blocksize dm.datadev dm.directlvm_device
        dm.directlvm_device_force dm.fs dm.libdm_log_level dm.loopdatasize
        dm.loopmetadatasize dm.metadatadev dm.min_free_space dm.mkfsarg dm.mountopt
        dm.override_udev_sync_check dm.thinp_autoextend_percent
        dm.thinp_autoextend_threshold dm.thinp_metapercent dm.thinp_percent
        dm.thinpooldev dm.use_deferred_deletion dm.use_deferred_removal
        dm.xfs_nospace_max_retries'''.split()),
    'aufs': None,
    'fuse-overlayfs': None,
}
OPTION_PREFIX = {'overlay2': 'overlay2.', 'overlay': 'overlay.', 'btrfs': 'btrfs.', 'zfs': 'zfs.',
                 'devicemapper': 'dm.', 'aufs': 'aufs.', 'fuse-overlayfs': 'fuse-overlayfs.'}
SIZE_OPTIONS = frozenset(['overlay2.size', 'size', 'dm.basesize', 'dm.loopdatasize',
                          'dm.loopmetadatasize', 'btrfs.min_space'])
# docker/go-units RAMInBytes
_SIZE_RE = re.compile(r'^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$')


class Probe:
    """What storage checks need to know about the host (tests pass their own)."""

    def mount(self, path: str) -> dict[str, t.Any]:
        """findmnt facts of the filesystem holding path."""
        raise NotImplementedError

    def dtype(self, path: str) -> bool:
        """Whether that filesystem fills in d_type."""
        raise NotImplementedError

    def is_block(self, path: str) -> bool:
        """Whether path is a block device."""
        raise NotImplementedError


def parse_storage_opts(value: t.Any) -> tuple[list[tuple[str, str]], list[str]]:
    """[(lowercased key, value)] from storage-opts, and problems."""
    if value is None:
        return [], []
    if not isinstance(value, list):
        return [], ['storage-opts must be a list of "key=value" strings, not %s' % type(value).__name__]
    opts = []
    problems = []
    for item in value:
        if not isinstance(item, str) or '=' not in item:
            problems.append('storage-opts entry %r is not a "key=value" string' % (item,))
            continue
        key, dummy, val = item.partition('=')
        opts.append((key.strip().lower(), val.strip()))
    return opts, problems


def driver_of_option(key: str) -> str | None:
    if key == 'size':
        return 'vfs'
    for driver, prefix in OPTION_PREFIX.items():
        if key.startswith(prefix):
            return driver
    return None


def data_root_of(config: dict[str, t.Any], flags: list[FlagUse] | None = None) -> str:
    for key in ('data-root', 'graph'):
        if isinstance(config.get(key), str) and config[key]:
            return config[key]
    for use in flags or []:
        if use.flag in ('data-root', 'graph') and use.value:
            return use.value
    return _engine.DEFAULT_DATA_ROOT


#: keys whose value is a directory or file dockerd uses as given: an empty
#: (templated) or relative value would put the engine's data somewhere else
PATH_KEYS = ('data-root', 'graph', 'exec-root', 'pidfile')


def path_key_problems(config: dict[str, t.Any], keys: t.Iterable[str]) -> list[str]:
    """Refusals for the given keys of config that must be absolute paths. Pure."""
    problems = []
    for key in keys:
        if key not in PATH_KEYS or key not in config:
            continue
        value = config[key]
        if not isinstance(value, str) or not value.strip():
            problems.append('%s is %r: a templated path probably came out empty; give an absolute path' % (key, value))
        elif not os.path.isabs(value):
            problems.append('%s %s is not an absolute path; dockerd would take it relative to its working directory: '
                            'give an absolute path' % (key, value))
    return problems


def _where(mount: dict[str, t.Any]) -> str:
    return '%s (%s mounted at %s)' % (mount.get('fstype'), mount.get('source'), mount.get('target'))


def check_storage(config: dict[str, t.Any], version: _engine.Version, probe: Probe,
                  data_root: str) -> tuple[list[str], list[str]]:
    """Problems (refuse) and warnings for the storage keys of config on an
    engine of this version, with the data root on the filesystem probe sees.

    In order: storage-opts as written, storage-driver against the engine's
    drivers, the containerd image store's own rules, the driver the options
    belong to, each option, then the filesystem and devices on the host."""
    warnings: list[str] = []
    driver = config.get('storage-driver')
    opts, problems = parse_storage_opts(config.get('storage-opts'))
    if driver is not None and not isinstance(driver, str):
        return problems + ['storage-driver must be a string, not %s' % type(driver).__name__], warnings
    if not driver and not opts:
        return problems, warnings
    containerd_store = _engine.uses_containerd_store(version, config)
    if driver:
        problem = driver_problem(driver, version, containerd_store, warnings)
        if problem:
            return problems + [problem], warnings
    if containerd_store:
        return problems + containerd_store_problems(driver, opts, probe, warnings), warnings
    effective = driver or driver_of_options(opts, problems, warnings)
    if effective is None:
        return problems, warnings
    problems.extend(option_problems(effective, opts))
    if problems:
        return problems, warnings
    return host_problems(effective, dict(opts), probe, data_root, warnings), warnings


def driver_problem(driver: str, version: _engine.Version, containerd_store: bool, warnings: list[str]) -> str | None:
    """Why the engine has no such storage driver (None when it has; a deprecated one is a warning)."""
    vstr = _engine.version_string(version)
    drivers = _engine.storage_drivers(version, containerd_store)
    if driver in drivers:
        if drivers[driver] == 'deprecated':
            warnings.append('storage-driver %s is deprecated on Engine %s and will be removed; plan a move '
                            'to overlay2' % (driver, vstr))
        return None
    if containerd_store and driver == 'devicemapper':
        return ('storage-driver devicemapper is not a containerd snapshotter; with the containerd '
                'image store use storage-driver devmapper with containerd\'s devmapper snapshotter '
                '(see hostprep.container_host.containerd_snapshotter), or overlay2 on XFS')
    if driver in _engine.GRAPH_DRIVERS_20_10 and not containerd_store:
        return ('storage-driver %s is not available on Engine %s: %s'
                % (driver, vstr, _engine.removed_driver_advice(driver, version)))
    return 'storage-driver %s is unknown to Engine %s; it has: %s' % (driver, vstr, ', '.join(sorted(drivers)))


def containerd_store_problems(driver: str | None, opts: list[tuple[str, str]], probe: Probe,
                              warnings: list[str]) -> list[str]:
    """With the containerd image store, storage-opts go unused and btrfs needs containerd's snapshotter root on
    btrfs."""
    if opts:
        warnings.append('storage-opts are not used by containerd snapshotters (the engine uses the containerd '
                        'image store); configure the snapshotter in containerd\'s config instead')
    if driver != 'btrfs':
        return []
    root = os.path.join(_engine.CONTAINERD_ROOT, 'io.containerd.snapshotter.v1.btrfs')
    mount = probe.mount(root)
    if mount.get('fstype') == 'btrfs':
        return []
    return ['storage-driver btrfs needs containerd\'s snapshotter root %s on btrfs, but it is on %s; mount a btrfs '
            'filesystem there first' % (root, _where(mount))]


def driver_of_options(opts: list[tuple[str, str]], problems: list[str], warnings: list[str]) -> str | None:
    """Without storage-driver: the one driver all the options belong to (a warning to set it), else a problem
    and None."""
    owners = sorted({driver_of_option(key) or '?' for key, dummy in opts})
    if len(owners) != 1 or owners[0] == '?':
        problems.append('storage-opts %s do not all belong to one storage driver; set storage-driver and give '
                        'only its options' % ', '.join(key for key, dummy in opts))
        return None
    warnings.append('storage-opts are for %s but storage-driver is not set; dockerd applies them to the driver '
                    'it picks itself, so set storage-driver %s' % (owners[0], owners[0]))
    return owners[0]


def option_problems(effective: str, opts: list[tuple[str, str]]) -> list[str]:
    """Options of another driver, options the driver does not know, sizes that are no sizes."""
    problems = []
    known = DRIVER_OPTIONS.get(effective)
    prefix = OPTION_PREFIX.get(effective)
    for key, value in opts:
        owner = driver_of_option(key)
        if owner and owner != effective:
            problems.append('storage-opts entry %s belongs to %s, not to storage-driver %s; remove it'
                            % (key, owner, effective))
        elif known is not None and key not in known:
            problems.append('storage-driver %s has no option %s; it knows: %s'
                            % (effective, key, ', '.join(sorted(known))))
        elif known is None and prefix and not key.startswith(prefix):
            problems.append('storage-opts entry %s is not an option of storage-driver %s' % (key, effective))
        elif key in SIZE_OPTIONS and not _SIZE_RE.match(value):
            problems.append('storage-opts %s=%s is not a size (examples: 10G, 512M, 20GB)' % (key, value))
    return problems


def host_problems(effective: str, values: dict[str, str], probe: Probe, data_root: str,
                  warnings: list[str]) -> list[str]:
    """What the host must have for the driver: the filesystem under the data root, or devicemapper's devices."""
    if effective == 'devicemapper':
        return devicemapper_problems(values, probe, warnings)
    problems = []
    if effective in ('btrfs', 'zfs'):
        mount = probe.mount(data_root)
        if mount.get('fstype') != effective:
            problems.append('storage-driver %s needs the data root %s on %s, but it is on %s; put a %s filesystem '
                            'there first (for btrfs: hostprep.container_host.btrfs_data_root) or choose another '
                            'driver' % (effective, data_root, effective, _where(mount), effective))
    elif effective in ('overlay2', 'overlay'):
        mount = probe.mount(data_root)
        if mount.get('fstype') in _engine.OVERLAY2_BAD_BACKING:
            problems.append('storage-driver %s cannot use the data root %s on %s; put the data root on xfs or ext4'
                            % (effective, data_root, _where(mount)))
        elif not probe.dtype(data_root):
            problems.append('storage-driver %s needs d_type support, and the filesystem under the data root %s, '
                            '%s, has none (XFS made with ftype=0); reformat it with mkfs.xfs -n ftype=1'
                            % (effective, data_root, _where(mount)))
        if 'overlay2.size' in values and not _engine.has_project_quota(mount):
            problems.append('storage-opts overlay2.size needs the data root %s on XFS mounted with project quota '
                            '(pquota), but it is on %s with options %s; mount an XFS filesystem with -o pquota '
                            'there or drop overlay2.size'
                            % (data_root, _where(mount), ','.join(mount.get('options') or [])))
    elif effective == 'vfs' and 'size' in values:
        mount = probe.mount(data_root)
        if not _engine.has_project_quota(mount):
            problems.append('storage-opts size for vfs needs the data root %s on XFS mounted with project quota '
                            '(pquota), but it is on %s; drop size or mount XFS with -o pquota there'
                            % (data_root, _where(mount)))
    return problems


def devicemapper_problems(values: dict[str, str], probe: Probe, warnings: list[str]) -> list[str]:
    """Every device devicemapper is given must be a block device; without a thin pool it runs loop-lvm."""
    problems = []
    for key in ('dm.thinpooldev', 'dm.directlvm_device', 'dm.datadev', 'dm.metadatadev'):
        if key not in values:
            continue
        device = values[key]
        if key == 'dm.thinpooldev' and not device.startswith('/'):
            device = '/dev/mapper/' + device
        if not probe.is_block(device):
            what = ('an existing thin pool under /dev/mapper; create it first (see '
                    'hostprep.container_host.lvm_thinpool)' if key == 'dm.thinpooldev'
                    else 'an existing block device')
            problems.append('storage-opts %s=%s: %s is not a block device; it must name %s'
                            % (key, values[key], device, what))
    if 'dm.thinpooldev' not in values and 'dm.directlvm_device' not in values:
        warnings.append('devicemapper without dm.thinpooldev or dm.directlvm_device runs in loop-lvm mode, '
                        'which is slow and not meant for production')
    return problems


class HostProbe(Probe):
    """The real host, for check_storage."""

    def __init__(self, module: t.Any) -> None:
        self.module = module

    def mount(self, path: str) -> dict[str, t.Any]:
        return _engine.mount_facts(self.module, path)

    def dtype(self, path: str) -> bool:
        return _engine.supports_dtype(path)

    def is_block(self, path: str) -> bool:
        return _engine.is_block_device(path)
