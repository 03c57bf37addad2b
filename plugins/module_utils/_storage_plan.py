# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The docker_storage role's plan: what the target is and whether the change is a switch.

This module is private to the collection: its interface may change
without notice. Users depend on the modules and roles, not on it.

Pure functions over the role's settings (the ``docker_storage_*`` variables
without their prefix, see the role's ``vars/main.yml``) and what
``docker_storage_info`` reported before the change (its ``storage`` fact).
The role reaches them through the filters in ``plugins/filter/``:

* ``target(settings, storage)``: the driver, the backing storage kind, the
  device-mapper paths, the daemon configuration to write, the files the
  journal keeps and where the images are saved;
* ``decision(settings, storage, target, config_changed, storage_changed)``:
  whether anything changes, whether it is a switch that hides the old images,
  and whether they are saved and loaded back.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._lvm import dm_name, dm_path

# Storage driver, its default storage-opts and the backing storage (storage_<kind>.yml) of each backend.
BACKENDS: dict[str, dict[str, t.Any]] = {
    'overlay2': {'driver': 'overlay2', 'kind': 'none'},
    'overlay2_thin': {'driver': 'overlay2', 'kind': 'thinpool'},
    'btrfs': {'driver': 'btrfs', 'kind': 'btrfs'},
    'vfs': {'driver': 'vfs', 'kind': 'none'},
    'devicemapper_direct': {'driver': 'devicemapper', 'kind': 'thinpool'},
    'devicemapper_loop': {'driver': 'devicemapper', 'kind': 'none'},
    'containerd_devmapper': {'driver': 'devmapper', 'kind': 'thinpool'},
}
DEFAULT_DATA_ROOT = '/var/lib/docker'
ARCHIVE_NAME = 'docker-storage-images.tar'
_VERSION_RE = re.compile(r'^[0-9]+(\.[0-9]+)*')


def backend_options(settings: dict[str, t.Any]) -> list[str]:
    """The storage-opts a backend always has (before the user's own)."""
    backend = settings['backend']
    if backend == 'devicemapper_direct':
        return ['dm.use_deferred_removal=true', 'dm.use_deferred_deletion=true',
                'dm.thinpooldev=' + dm_path(settings['vg'], settings['thinpool'])]
    if backend == 'devicemapper_loop':
        # the sizes dockerd gives the sparse files it creates (a reset creates them at the same sizes)
        return ['dm.loopdatasize=%s' % settings['loopback_data_size'],
                'dm.loopmetadatasize=%s' % settings['loopback_metadata_size']]
    return []


def engine_version(storage: dict[str, t.Any]) -> str:
    """The engine's version as dotted numbers, '' when no engine told one."""
    found = _VERSION_RE.search(str((storage.get('engine') or {}).get('version') or ''))
    return found.group(0) if found else ''


def old_data_root(settings: dict[str, t.Any], storage: dict[str, t.Any]) -> str:
    """The data root the engine used before the change (the wanted one when nothing is known)."""
    return storage.get('data_root') or settings['data_root']


def daemon_config(settings: dict[str, t.Any], storage: dict[str, t.Any]) -> dict[str, t.Any]:
    """The storage keys of daemon.json: driver, options, and data-root where it is not the default or moves."""
    config: dict[str, t.Any] = {'storage-driver': BACKENDS[settings['backend']]['driver'],
                                'storage-opts': backend_options(settings) + list(settings['options'] or [])}
    if settings['data_root'] != DEFAULT_DATA_ROOT or old_data_root(settings, storage) != settings['data_root']:
        config['data-root'] = settings['data_root']
    if settings['backend'] == 'containerd_devmapper':
        config['features'] = {'containerd-snapshotter': True}
    return config


def archive_path(directory: str) -> str:
    return directory.rstrip('/') + '/' + ARCHIVE_NAME


def journal_files(settings: dict[str, t.Any]) -> list[str]:
    """The files a storage change may rewrite, kept by the journal before it begins."""
    files = [settings['daemon_config'], settings['fstab']]
    if settings['backend'] == 'containerd_devmapper':
        files += [settings['containerd_config'], settings['containerd_drop_in']]
    return files


def storage_devices(settings: dict[str, t.Any]) -> list[str]:
    kind = BACKENDS[settings['backend']]['kind']
    if kind == 'btrfs':
        return [settings['btrfs_device']]
    return list(settings['devices'] or []) if kind == 'thinpool' else []


def target(settings: dict[str, t.Any], storage: dict[str, t.Any] | None) -> dict[str, t.Any]:
    """Everything the role derives from its settings and the engine's storage before the change."""
    storage = storage or {}
    backend = BACKENDS[settings['backend']]
    backing = storage.get('backing_fs') or {}
    thin_device = dm_path(settings['vg'], settings['thin_volume_name'])
    root_mounted = (backing.get('target') or '') == settings['data_root']
    return {
        'backend': settings['backend'],
        'driver': backend['driver'],
        'kind': backend['kind'],
        'engine_version': engine_version(storage),
        'thinpool_name': dm_name(settings['vg'], settings['thinpool']),
        'thin_device': thin_device,
        'config': daemon_config(settings, storage),
        'old_data_root': old_data_root(settings, storage),
        # the data root was a mount point when the run began
        'root_mounted': root_mounted,
        'root_fstype': backing.get('fstype') if root_mounted else None,
        # the thin LV of overlay2_thin is already what is mounted at the data root
        'thin_in_place': root_mounted and (backing.get('source') or '') == thin_device,
        'archive': archive_path(settings['image_archive_dir']),
        'journal_files': journal_files(settings),
        'mount_roots': [settings['btrfs_mount_point']] if backend['kind'] == 'btrfs' else [],
        # the devices and the VG the backing storage may create something on (noted by the journal)
        'devices': storage_devices(settings),
        'vg': settings['vg'] if backend['kind'] == 'thinpool' else None,
    }


def is_switch(settings: dict[str, t.Any], storage: dict[str, t.Any], plan: dict[str, t.Any],
              storage_changed: bool) -> bool:
    """Whether the images of the old storage become invisible: the driver or the data root changes, other
    storage is mounted onto the data root (not when the thin LV already there only gets new options), or a reset."""
    old_driver = storage.get('driver')
    return bool(
        (old_driver not in (None, '') and old_driver != plan['driver'])
        or plan['old_data_root'] != settings['data_root']
        or (storage_changed and settings['backend'] == 'btrfs')
        or (storage_changed and settings['backend'] == 'overlay2_thin' and not plan['thin_in_place'])
        or settings['reset'])


def _count(section: t.Any, key: str) -> int:
    return int((section or {}).get(key) or 0)


def decision(settings: dict[str, t.Any], storage: dict[str, t.Any] | None, plan: dict[str, t.Any],
             config_changed: bool, storage_changed: bool) -> dict[str, t.Any]:
    """What has to change, from the target and the check-mode plans of the storage and daemon.json."""
    storage = storage or {}
    switch = is_switch(settings, storage, plan, storage_changed)
    images = _count(storage.get('images'), 'count')
    return {
        'pending': bool(config_changed or storage_changed or settings['reset']),
        'storage_changed': bool(storage_changed),
        'switch': switch,
        'images': images,
        'running': _count(storage.get('containers'), 'running'),
        'reachable': bool((storage.get('engine') or {}).get('reachable')),
        # the images are saved before the change and loaded into the new storage after it
        'save_images': bool(switch and settings['preserve_images'] and images > 0 and not settings['reset']),
    }
