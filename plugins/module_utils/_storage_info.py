# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Storage facts of a Docker host, private to hostprep.container_host.

Two sources, merged by ``gather()``:

- the engine's API through the Docker SDK (``info()``, ``version()``,
  ``df()`` -- one call that sizes every image, container and volume, so the
  cost grows linearly with the objects -- and the dangling-image list);
- the files, which answer with dockerd stopped: daemon.json and dockerd's
  flags, the data root's filesystem (``findmnt -J``, ``os.statvfs``, d_type
  read with getdents64), the image, container and volume stores under the
  data root, devicemapper's loopback files.

Every parser is a pure function fed what the SDK or the file system returns;
tests/unit/fixtures/storage_info holds real recordings.
"""

from __future__ import annotations

import json
import os
import re
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    HostprepError,
    read_text,
)
from ansible_collections.hostprep.container_host.plugins.module_utils import _daemon_config, _engine, _lvm
from ansible_collections.hostprep.container_host.plugins.module_utils._daemon_json import config_text
from ansible_collections.hostprep.container_host.plugins.module_utils._docker_client import ENGINE_ERRORS, engine_client
from ansible_collections.hostprep.container_host.plugins.module_utils._dockerd_flags import read_flags
from ansible_collections.hostprep.container_host.plugins.module_utils._data_root_layout import DRIVER_DIRS
from ansible_collections.hostprep.container_host.plugins.module_utils._sizes import parse_engine_size

DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock'
# devicemapper's loop-lvm files (moby daemon/graphdriver/devmapper).
LOOPBACK_DIR = os.path.join('devicemapper', 'devicemapper')
CONTAINERD_DRIVER_TYPE = 'io.containerd.snapshotter.v1'


def parse_bool(value: t.Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ('true', '1', 'yes', 't'):
        return True
    if text in ('false', '0', 'no', 'f'):
        return False
    return None


# ---- the engine's API answers -------------------------------------------------

def driver_status(info: dict[str, t.Any]) -> dict[str, str]:
    """info()['DriverStatus'] (a list of [name, value] pairs, null for vfs)
    as a dict."""
    pairs = info.get('DriverStatus') or []
    return {str(pair[0]): str(pair[1]) for pair in pairs if isinstance(pair, (list, tuple)) and len(pair) == 2}


def containerd_store_from_status(status: dict[str, str]) -> bool:
    """With the containerd image store the engine reports
    ``driver-type: io.containerd.snapshotter.v1`` among the driver status."""
    return status.get('driver-type') == CONTAINERD_DRIVER_TYPE


def devicemapper_from_status(status: dict[str, str]) -> dict[str, t.Any]:
    """The devicemapper fields of Engine 20.10's DriverStatus. "Data file" and
    "Metadata file" are set (to loop devices) only in loop-lvm mode; "Data
    loop file" then names the sparse file behind it."""
    data_file = status.get('Data loop file') or status.get('Data file') or None
    metadata_file = status.get('Metadata loop file') or status.get('Metadata file') or None
    return {
        'pool_name': status.get('Pool Name') or None,
        'loopback': bool(status.get('Data file') or status.get('Data loop file')),
        'data_file': data_file,
        'metadata_file': metadata_file,
        'data_used': parse_engine_size(status.get('Data Space Used')),
        'data_total': parse_engine_size(status.get('Data Space Total')),
        'data_available': parse_engine_size(status.get('Data Space Available')),
        'metadata_used': parse_engine_size(status.get('Metadata Space Used')),
        'metadata_total': parse_engine_size(status.get('Metadata Space Total')),
        'metadata_available': parse_engine_size(status.get('Metadata Space Available')),
        'deferred_removal': parse_bool(status.get('Deferred Removal Enabled')),
        'deferred_deletion': parse_bool(status.get('Deferred Deletion Enabled')),
    }


def engine_version(text: str | None) -> str | None:
    """``20.10.24+dfsg1`` -> ``20.10.24``, the form _engine gives from
    ``dockerd --version`` when the engine is stopped."""
    if not text:
        return None
    try:
        return _engine.version_string(_engine.parse_dockerd_version('version %s' % text))
    except HostprepError:
        return text


def image_facts(df: dict[str, t.Any], dangling_ids: list[str] | None) -> dict[str, t.Any]:
    """Images as ``docker system df`` counts them: size is the layers on disk
    (shared layers once), reclaimable its formula (total minus the unique
    size of images some container uses). dangling_size is what removing the
    dangling images no container uses frees (``docker image prune``)."""
    images = df.get('Images') or []
    total = int(df.get('LayersSize') or 0)
    used = 0
    active = 0
    for image in images:
        if image.get('Containers', 0) > 0:
            active += 1
            size, shared = image.get('Size', -1), image.get('SharedSize', -1)
            if size != -1 and shared != -1:
                used += size - shared
    dangling = set(dangling_ids or [])
    dangling_size = sum(max(image.get('Size', 0) - max(image.get('SharedSize', 0), 0), 0)
                        for image in images
                        if image.get('Id') in dangling and image.get('Containers', 0) <= 0)
    return {
        'count': len(images),
        'active': active,
        'size': total,
        'reclaimable': max(total - used, 0),
        'dangling': len(dangling),
        'dangling_size': dangling_size,
    }


def container_facts(df: dict[str, t.Any]) -> dict[str, t.Any]:
    """Containers: size is their writable layers (SizeRw, left out by the
    engine when 0); reclaimable is that of the ones not running."""
    containers = df.get('Containers') or []
    running = [c for c in containers if c.get('State') == 'running']
    size = sum(max(c.get('SizeRw') or 0, 0) for c in containers)
    idle = sum(max(c.get('SizeRw') or 0, 0) for c in containers if c.get('State') != 'running')
    return {'count': len(containers), 'running': len(running), 'size': size, 'reclaimable': idle}


def volume_facts(df: dict[str, t.Any]) -> dict[str, t.Any]:
    """Volumes: UsageData.Size is -1 where the engine does not know it
    (volumes of other drivers); reclaimable is that of unused volumes."""
    volumes = df.get('Volumes') or []
    size = 0
    unused = 0
    for volume in volumes:
        usage = volume.get('UsageData') or {}
        vsize = usage.get('Size', -1)
        if vsize is None or vsize < 0:
            continue
        size += vsize
        if usage.get('RefCount', 0) == 0:
            unused += vsize
    return {'count': len(volumes), 'size': size, 'reclaimable': unused}


# ---- configuration on disk ------------------------------------------------------

def storage_opts(config: dict[str, t.Any], flags: list[_daemon_config.FlagUse]) -> dict[str, str]:
    """storage-opts of daemon.json and --storage-opt flags, key -> value."""
    opts, dummy_problems = _daemon_config.parse_storage_opts(config.get('storage-opts'))
    result = dict(opts)
    for use in flags:
        if use.key == 'storage-opts' and use.value and '=' in use.value:
            key, dummy, value = use.value.partition('=')
            result[key.strip().lower()] = value.strip()
    return result


def configured_driver(config: dict[str, t.Any], flags: list[_daemon_config.FlagUse]) -> tuple[str | None, str | None]:
    """(driver, where it is set): daemon.json, then the flags."""
    driver = config.get('storage-driver')
    if isinstance(driver, str) and driver:
        return driver, 'daemon_config'
    for use in flags:
        if use.key == 'storage-driver' and use.value:
            return use.value, 'flags'
    return None, None


def driver_from_dirs(names: list[str]) -> str | None:
    """The driver whose directory is under the data root, when exactly one is
    (dockerd then picks it again itself)."""
    found = [name for name in DRIVER_DIRS if name in names]
    return found[0] if len(found) == 1 else None


def split_dm_name(name: str) -> tuple[str, str] | None:
    """LVM's device-mapper name -> (VG, LV): one hyphen separates them, a
    hyphen inside a name is doubled (``my--vg-thin--pool`` -> my-vg, thin-pool)."""
    name = os.path.basename(name or '')
    parts = re.split(r'(?<!-)-(?!-)', name)
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0].replace('--', '-'), parts[1].replace('--', '-')


def thinpool_device(driver: str | None, opts: dict[str, str], dm_status: dict[str, t.Any] | None) -> str | None:
    """The thin pool devicemapper uses directly: dm.thinpooldev, or the
    engine's pool when it is not in loop-lvm mode."""
    if driver != 'devicemapper':
        return None
    device = opts.get('dm.thinpooldev')
    if not device and dm_status and not dm_status.get('loopback'):
        device = dm_status.get('pool_name')
    if not device:
        return None
    return device if device.startswith('/') else '/dev/mapper/' + device


# ---- files under the data root ----------------------------------------------------

def statvfs_facts(st: t.Any) -> dict[str, int]:
    """size, used and free bytes as df counts them (free is what an
    unprivileged writer gets)."""
    return {
        'size': st.f_blocks * st.f_frsize,
        'used': (st.f_blocks - st.f_bfree) * st.f_frsize,
        'free': st.f_bavail * st.f_frsize,
    }


def dtype_readonly(path: str) -> bool | None:
    """Whether the filesystem under path fills in d_type, read with
    getdents64 (_engine) without writing anything: the nearest existing
    directory, then its parents on the same filesystem, until one has an
    entry besides . and ..; None when none has."""
    directory = _engine.nearest_existing(path)
    if not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    try:
        device = os.stat(directory).st_dev
        while True:
            verdict = _engine.dtype_from_entries(_engine.read_dirents(directory))
            if verdict is not None:
                return verdict
            parent = os.path.dirname(directory)
            if parent == directory or os.stat(parent).st_dev != device:
                return None
            directory = parent
    except OSError:
        return None


def file_size(path: str) -> dict[str, t.Any] | None:
    """Apparent and allocated bytes of a (sparse) file; None when missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {'path': path, 'apparent_size': st.st_size, 'allocated_size': st.st_blocks * 512}


def loopback_files(data_root: str) -> list[dict[str, t.Any]]:
    files = []
    for name in ('data', 'metadata'):
        found = file_size(os.path.join(data_root, LOOPBACK_DIR, name))
        if found:
            files.append(found)
    return files


def devicemapper_from_files(opts: dict[str, str], files: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """devicemapper facts without the engine: the configured pool and the
    loopback files (used = allocated blocks of the sparse file, total = its
    apparent size)."""
    by_name = {os.path.basename(f['path']): f for f in files}
    pool = opts.get('dm.thinpooldev')
    loop = not pool and not opts.get('dm.directlvm_device') and bool(by_name)
    data = by_name.get('data') if loop else None
    meta = by_name.get('metadata') if loop else None
    return {
        'pool_name': os.path.basename(pool) if pool else None,
        'loopback': loop,
        'data_file': data['path'] if data else None,
        'metadata_file': meta['path'] if meta else None,
        'data_used': data['allocated_size'] if data else None,
        'data_total': data['apparent_size'] if data else None,
        'data_available': None,
        'metadata_used': meta['allocated_size'] if meta else None,
        'metadata_total': meta['apparent_size'] if meta else None,
        'metadata_available': None,
        # Unset, the engine decides (20.10 turns both on where libdm can).
        'deferred_removal': parse_bool(opts.get('dm.use_deferred_removal')),
        'deferred_deletion': parse_bool(opts.get('dm.use_deferred_deletion')),
    }


def _listdir(path: str) -> list[str] | None:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return None


def dangling_from_store(image_ids: list[str], parents: dict[str, str],
                        repositories: dict[str, t.Any]) -> list[str]:
    """Dangling images as the engine lists them: no tag or digest refers to
    them and they are no other image's parent (intermediate images are not
    listed). repositories is the store's repositories.json."""
    referenced = set()
    for refs in (repositories.get('Repositories') or {}).values():
        referenced.update(str(v).split(':', 1)[-1] for v in (refs or {}).values())
    have_children = {parent.split(':', 1)[-1] for parent in parents.values() if parent}
    return [image for image in image_ids if image not in referenced and image not in have_children]


def store_facts(data_root: str, driver: str | None) -> dict[str, t.Any]:
    """Counts read from the data root's files (dockerd may be stopped):
    images of the driver's image store, container and volume directories.
    Sizes are left to the engine (null). A data root that does not exist
    holds nothing: every count is 0."""
    if not os.path.isdir(data_root):
        return {'images': {'count': 0, 'active': 0, 'size': 0, 'reclaimable': 0, 'dangling': 0, 'dangling_size': 0},
                'containers': {'count': 0, 'running': 0, 'size': 0, 'reclaimable': 0},
                'volumes': {'count': 0, 'size': 0, 'reclaimable': 0}}
    images: dict[str, t.Any] = {'count': None, 'active': None, 'size': None, 'reclaimable': None,
                                'dangling': None, 'dangling_size': None}
    if driver:
        store = os.path.join(data_root, 'image', driver)
        ids = _listdir(os.path.join(store, 'imagedb', 'content', 'sha256'))
        if ids is not None:
            parents = {}
            for image in ids:
                parent = read_text(os.path.join(store, 'imagedb', 'metadata', 'sha256', image, 'parent'))
                if parent:
                    parents[image] = parent.strip()
            try:
                repositories = json.loads(read_text(os.path.join(store, 'repositories.json')) or '{}')
            except ValueError:
                repositories = {}
            images['count'] = len(ids)
            images['dangling'] = len(dangling_from_store(ids, parents, repositories))
    container_dirs = _listdir(os.path.join(data_root, 'containers'))
    volume_root = os.path.join(data_root, 'volumes')
    volume_dirs = _listdir(volume_root)
    volumes = None
    if volume_dirs is not None:
        volumes = len([v for v in volume_dirs if os.path.isdir(os.path.join(volume_root, v))])
    return {
        'images': images,
        'containers': {'count': len(container_dirs) if container_dirs is not None else None,
                       'running': None, 'size': None, 'reclaimable': None},
        'volumes': {'count': volumes, 'size': None, 'reclaimable': None},
    }


# ---- gathering -----------------------------------------------------------------

class Engine:
    """What gather() asks the engine; tests hand in their own."""

    def query(self) -> dict[str, t.Any]:
        """{'info', 'version', 'df', 'dangling'}; raises EngineUnreachable."""
        raise NotImplementedError


class EngineUnreachable(Exception):
    pass


class SdkEngine(Engine):
    """The engine behind docker_host, through the Docker SDK (_docker_client)."""

    def __init__(self, docker_host: str, timeout: int) -> None:
        self.docker_host = docker_host
        self.timeout = timeout

    def query(self) -> dict[str, t.Any]:
        try:
            with engine_client(self.docker_host, self.timeout) as client:
                return self._ask(client)
        except HostprepError as exc:  # nothing answers at docker_host
            raise EngineUnreachable(str(exc.__cause__ or exc.msg)) from exc

    @staticmethod
    def _ask(client: t.Any) -> dict[str, t.Any]:
        try:
            # version='auto' asked /version already: the API version it settled on is the engine's.
            answer: dict[str, t.Any] = {'info': client.info(), 'version': {'ApiVersion': client.api.api_version},
                                        'df': None, 'dangling': None, 'error': None}
        except (*ENGINE_ERRORS, OSError) as exc:
            raise EngineUnreachable(str(exc)) from exc
        try:
            # df() sizes every image, container and volume in one call.
            answer['df'] = client.df()
            answer['dangling'] = client.api.images(filters={'dangling': True}, quiet=True)
        except (*ENGINE_ERRORS, OSError) as exc:
            answer['df'] = None
            answer['error'] = str(exc)
        return answer


def _thinpool(module: t.Any, device: str, warnings: list[str]) -> dict[str, t.Any] | None:
    names = split_dm_name(device)
    if names is None:
        warnings.append('thin pool %s is not named VG-LV as LVM names its devices; its usage is not reported'
                        % device)
        return None
    vg, lv = names
    try:
        usage = _lvm.thinpool_usage(module, vg, lv)
    except HostprepError as exc:
        warnings.append('cannot read the usage of thin pool %s/%s: %s' % (vg, lv, exc.msg))
        return None
    return {'vg': vg, 'lv': lv, 'device': usage.get('device') or device,
            'data_percent': usage.get('data_percent'), 'metadata_percent': usage.get('metadata_percent'),
            'size': usage.get('size')}


DOCKER_HOST_SCHEMES = ('unix://', 'tcp://', 'http://', 'https://', 'ssh://', 'npipe://')


def check_params(params: dict[str, t.Any]) -> None:
    """Refuse options that cannot be meant, naming them and what to give."""
    host = params.get('docker_host') or ''
    if not host.startswith(DOCKER_HOST_SCHEMES):
        raise HostprepError('docker_host %r is not an engine address; give unix:///PATH/TO/docker.sock or '
                            'tcp://HOST:PORT' % host)
    if params.get('timeout') is not None and params['timeout'] <= 0:
        raise HostprepError('timeout %s is not a number of seconds; give a positive number' % params['timeout'])
    data_root = params.get('data_root')
    if data_root and os.path.exists(data_root) and not os.path.isdir(data_root):
        raise HostprepError('data_root %s is not a directory; give the engine\'s data root (for example '
                            '/var/lib/docker) or leave it unset to detect it' % data_root)
    config = params.get('daemon_config')
    if config and os.path.isdir(config):
        raise HostprepError('daemon_config %s is a directory; give the path of daemon.json' % config)


def gather(module: t.Any, engine: Engine | None) -> tuple[dict[str, t.Any], list[str]]:
    """All storage facts and warnings. engine None: files only (api=false).

    The files first (daemon.json, dockerd's flags), then the engine's answer or, without one, what the files and
    the data root say; then the filesystem under the data root, devicemapper and its thin pool, and the counts."""
    params = module.params
    check_params(params)
    warnings: list[str] = []
    config, flags = configured(params, warnings)
    api = ask_engine(engine, params['docker_host'], warnings)
    if api is not None:
        found = from_engine(api, params, config, flags, warnings)
    else:
        found = from_files(module, params, config, flags, warnings)
    found['engine']['reachable'] = api is not None if engine is not None else None
    data_root, driver, status = found['data_root'], found['driver'], found['driver_status']
    opts = storage_opts(config, flags)
    devicemapper = None
    files = loopback_files(data_root)
    if driver == 'devicemapper':
        devicemapper = devicemapper_from_status(status) if status is not None else devicemapper_from_files(opts, files)
        devicemapper['loopback_files'] = files
    device = thinpool_device(driver, opts, devicemapper)
    storage = dict(found, devicemapper=devicemapper, backing_fs=backing_facts(module, data_root, status),
                   thinpool=_thinpool(module, device, warnings) if device else None)
    storage.update(counts_of(api, params['docker_host'], data_root, driver, found['engine'], warnings))
    return storage, warnings


def configured(params: dict[str, t.Any], warnings: list[str]) -> tuple[dict[str, t.Any], list[_daemon_config.FlagUse]]:
    """daemon.json's settings (a file dockerd would refuse is a warning and counts as none) and dockerd's flags."""
    config: dict[str, t.Any] = {}
    try:
        parsed, parse_warnings = _daemon_config.parse_config(config_text(params['daemon_config']),
                                                             params['daemon_config'])
        warnings.extend(parse_warnings)
        config = parsed or {}
    except HostprepError as exc:
        warnings.append(exc.msg.replace('fix or remove the file, nothing was changed',
                                        'dockerd will not start with it; its settings are ignored here'))
    flags = read_flags(params['flags_sources'], warnings)
    for use in flags:
        if use.flag == 'config-file' and use.value and \
                os.path.abspath(use.value) != os.path.abspath(params['daemon_config']):
            warnings.append('dockerd is started with --config-file %s (%s); set daemon_config to read that file'
                            % (use.value, use.where()))
    return config, flags


def ask_engine(engine: Engine | None, docker_host: str, warnings: list[str]) -> dict[str, t.Any] | None:
    if engine is None:
        return None
    try:
        return engine.query()
    except EngineUnreachable as exc:
        warnings.append('the Docker engine at %s did not answer (%s); only file-level facts are reported'
                        % (docker_host, exc))
        return None


def _no_engine_facts() -> dict[str, t.Any]:
    return {'reachable': None, 'version': None, 'api_version': None, 'containerd_image_store': None}


def from_engine(api: dict[str, t.Any], params: dict[str, t.Any], config: dict[str, t.Any],
                flags: list[_daemon_config.FlagUse], warnings: list[str]) -> dict[str, t.Any]:
    """Engine, driver and data root as the running engine reports them."""
    info = api['info']
    status = driver_status(info)
    driver: str | None = info.get('Driver') or None
    engine_facts = _no_engine_facts()
    engine_facts.update(version=engine_version(info.get('ServerVersion') or api['version'].get('Version')),
                        api_version=api['version'].get('ApiVersion'),
                        containerd_image_store=containerd_store_from_status(status))
    data_root = params['data_root'] or info.get('DockerRootDir') or _daemon_config.data_root_of(config, flags)
    if params['data_root'] and info.get('DockerRootDir') and \
            os.path.abspath(params['data_root']) != os.path.abspath(info['DockerRootDir']):
        warnings.append('data_root %s is not the data root of the engine at %s (%s)'
                        % (params['data_root'], params['docker_host'], info['DockerRootDir']))
    return {'engine': engine_facts, 'driver': driver, 'driver_source': 'api' if driver else None,
            'driver_status': status, 'data_root': data_root}


def from_files(module: t.Any, params: dict[str, t.Any], config: dict[str, t.Any],
               flags: list[_daemon_config.FlagUse], warnings: list[str]) -> dict[str, t.Any]:
    """Engine, driver and data root without an engine's answer: the configuration, the data root's driver
    directories and the installed dockerd's version."""
    data_root = params['data_root'] or _daemon_config.data_root_of(config, flags)
    driver, driver_source = configured_driver(config, flags)
    if not driver:
        driver = driver_from_dirs(_listdir(data_root) or [])
        driver_source = 'data_root' if driver else None
    engine_facts = _no_engine_facts()
    try:
        found = _engine.engine_facts(module)
    except HostprepError as exc:
        found = None
        warnings.append(exc.msg)
    if found is not None:
        engine_facts['version'] = _engine.version_string(found.version)
        engine_facts['containerd_image_store'] = _engine.uses_containerd_store(found.version, config)
    return {'engine': engine_facts, 'driver': driver, 'driver_source': driver_source, 'driver_status': None,
            'data_root': data_root}


def backing_facts(module: t.Any, data_root: str, status: dict[str, str] | None) -> dict[str, t.Any]:
    """The filesystem under the data root: mount, space, inodes and d_type."""
    mount = _engine.mount_facts(module, data_root)
    backing = {'fstype': mount['fstype'], 'source': mount['source'], 'target': mount['target'],
               'options': mount['options']}
    backing.update(statvfs_facts(os.statvfs(mount['checked_path'])))
    dtype = dtype_readonly(data_root)
    if dtype is None and status and 'Supports d_type' in status:
        dtype = parse_bool(status['Supports d_type'])
    backing['d_type'] = dtype
    return backing


def counts_of(api: dict[str, t.Any] | None, docker_host: str, data_root: str, driver: str | None,
              engine_facts: dict[str, t.Any], warnings: list[str]) -> dict[str, t.Any]:
    """Images, containers and volumes: sized by the engine, else counted in the data root."""
    if api is not None and api['df'] is not None:
        return {'images': image_facts(api['df'], api['dangling']), 'containers': container_facts(api['df']),
                'volumes': volume_facts(api['df'])}
    if api is not None:
        warnings.append('the Docker engine at %s answered but could not size its objects (%s); the counts are '
                        'read from the data root and sizes are not reported (raise timeout?)'
                        % (docker_host, api['error']))
    # With the containerd image store the images are containerd's, not
    # in the data root's image store: leave their count to the engine.
    return store_facts(data_root, None if engine_facts['containerd_image_store'] else driver)
