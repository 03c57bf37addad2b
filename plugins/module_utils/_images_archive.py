# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Save every image of an engine to one tar archive and load it back.

Private to hostprep.container_host. Used by the docker_images_archive module
(and so by the docker_storage role) to carry images across a storage driver
switch: the images of the old driver become invisible to the engine once it
runs on the new one, so they are saved first (``docker save`` of all of them
into one archive, shared layers stored once) and loaded after.

The archive is what ``GET /images/get?names=...`` returns; its
``manifest.json`` lists the image config of every image, whose digest is the
image ID, so the image IDs an archive holds are read without unpacking it.
An engine with the containerd image store (``features.containerd-snapshotter``)
lists images by the digest of their manifest instead, which a graph-driver
archive does not record: there an image is recognised by its layers (the
``rootfs.diff_ids`` of its config, ``RootFS.Layers`` of the engine) and tags.
Pure functions here parse API answers and manifests; the functions that talk
to the engine take a Docker SDK client.
"""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError
from ansible_collections.hostprep.container_host.plugins.module_utils._engine import nearest_existing

NO_TAG = '<none>:<none>'


# ---- pure logic ---------------------------------------------------------------

def image_entries(images: list[dict[str, t.Any]], include_dangling: bool = True) -> list[dict[str, t.Any]]:
    """{id, tags} of each image in a ``GET /images/json`` answer, sorted by ID.

    Untagged images are kept when include_dangling (they are saved by ID)."""
    entries = []
    for image in images:
        tags = sorted(tag for tag in (image.get('RepoTags') or []) if tag and tag != NO_TAG)
        if not tags and not include_dangling:
            continue
        entries.append({'id': image['Id'], 'tags': tags})
    return sorted(entries, key=lambda entry: entry['id'])


def save_names(entries: list[dict[str, t.Any]]) -> list[str]:
    """Names to ask the engine for: every tag (so tags come back on load),
    and the ID of each untagged image."""
    names: list[str] = []
    for entry in entries:
        names.extend(entry['tags'] or [entry['id']])
    return names


def _digest(config: str) -> str:
    """The image ID from a manifest's Config entry: ``<hex>.json`` (Engine
    < 25) or ``blobs/sha256/<hex>`` (the OCI layout of Engine 25 and later)."""
    name = config.rsplit('/', 1)[-1]
    if name.endswith('.json'):
        name = name[:-len('.json')]
    return 'sha256:' + name


def manifest_entries(manifest: list[dict[str, t.Any]],
                     configs: dict[str, dict[str, t.Any]] | None = None) -> list[dict[str, t.Any]]:
    """{id, tags} of each image a ``manifest.json`` of an image archive lists,
    with ``layers`` (its config's ``rootfs.diff_ids``) where configs, the
    parsed config files by their path in the archive, has the image's config."""
    found: dict[str, set[str]] = {}
    layers: dict[str, list[str]] = {}
    for item in manifest:
        config = item.get('Config')
        if not isinstance(config, str) or not config:
            raise HostprepError('manifest.json entry without Config: %r' % (item,))
        found.setdefault(_digest(config), set()).update(item.get('RepoTags') or [])
        diff_ids = ((configs or {}).get(config) or {}).get('rootfs', {}).get('diff_ids')
        if isinstance(diff_ids, list):
            layers[_digest(config)] = diff_ids
    entries = []
    for image_id, tags in sorted(found.items()):
        entry: dict[str, t.Any] = {'id': image_id, 'tags': sorted(tags)}
        if image_id in layers:
            entry['layers'] = layers[image_id]
        entries.append(entry)
    return entries


def same_image(one: dict[str, t.Any], other: dict[str, t.Any]) -> bool:
    """The same ID, or (across image stores, where IDs differ) the same layers."""
    return one['id'] == other['id'] or (bool(one.get('layers')) and one.get('layers') == other.get('layers'))


def missing_images(wanted: list[dict[str, t.Any]], present: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """Entries of wanted that present lacks: no image with the same ID (or the
    same layers), or not every one of its tags on such an image."""
    missing = []
    for entry in wanted:
        same = [other for other in present if same_image(entry, other)]
        tags = {tag for other in same for tag in other['tags']}
        if not same or any(tag not in tags for tag in entry['tags']):
            missing.append(entry)
    return missing


def public(entries: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """The entries as the module returns them: ID and tags."""
    return [{'id': entry['id'], 'tags': entry['tags']} for entry in entries]


def is_under(path: str, root: str) -> bool:
    path = os.path.realpath(path)
    root = os.path.realpath(root)
    return path == root or path.startswith(root.rstrip('/') + '/')


def location_problem(archive: str, data_root: str, archive_dev: int, data_root_dev: int) -> str | None:
    """Why an archive may not be written at this place, or None.

    It must not sit under the data root nor on the filesystem that holds it:
    a driver switch may wipe, reformat or mount over that filesystem."""
    if is_under(archive, data_root):
        return ('image archive %s is under the data root %s, which the storage change may replace; put it on '
                'another filesystem (for example a directory under /srv or a mounted backup disk)'
                % (archive, data_root))
    if archive_dev == data_root_dev:
        return ('image archive %s is on the same filesystem as the data root %s, which the storage change may '
                'wipe or reformat; put it on another filesystem' % (archive, data_root))
    return None


def human_size(size: int) -> str:
    value = float(size)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if value < 1024 or unit == 'TiB':
            return '%.1f %s' % (value, unit) if unit != 'B' else '%d B' % size
        value /= 1024
    return '%d B' % size  # pragma: no cover


def load_errors(messages: t.Iterable[dict[str, t.Any]]) -> list[str]:
    """Error texts in the JSON progress stream of ``POST /images/load``."""
    errors = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        if message.get('error') or message.get('errorDetail'):
            detail = message.get('errorDetail') or {}
            errors.append(str(message.get('error') or detail.get('message')))
    return errors


# ---- archive file ---------------------------------------------------------------

def read_archive(path: str) -> list[dict[str, t.Any]] | None:
    """The images an archive holds, or None when there is no file."""
    if not os.path.exists(path):
        return None
    try:
        with tarfile.open(path, 'r:') as tar:
            member = tar.extractfile('manifest.json')
            if member is None:
                raise KeyError('manifest.json')
            manifest = json.load(member)
    except (tarfile.TarError, KeyError, ValueError, OSError) as exc:
        raise HostprepError('%s is not an image archive made by docker save (no readable manifest.json: %s); '
                            'remove it or choose another path' % (path, exc)) from exc
    if not isinstance(manifest, list):
        raise HostprepError('%s: manifest.json is not a list; remove the file or choose another path' % path)
    return manifest_entries(manifest, read_configs(path, manifest))


def read_configs(path: str, manifest: list[dict[str, t.Any]]) -> dict[str, dict[str, t.Any]]:
    """The image config files the manifest names, parsed; unreadable ones are
    left out (the image is then known by its ID only)."""
    configs = {}
    with tarfile.open(path, 'r:') as tar:
        for item in manifest:
            name = item.get('Config') if isinstance(item, dict) else None
            if not isinstance(name, str) or name in configs:
                continue
            try:
                member = tar.extractfile(name)
                data = json.load(member) if member is not None else None
            except (KeyError, ValueError, tarfile.TarError):
                data = None
            if isinstance(data, dict):
                configs[name] = data
    return configs


def check_location(archive: str, data_root: str) -> None:
    """Refuse an archive place on the data root's filesystem (see location_problem)."""
    directory = os.path.dirname(os.path.abspath(archive))
    problem = location_problem(archive, data_root, os.stat(nearest_existing(directory)).st_dev,
                               os.stat(nearest_existing(data_root)).st_dev)
    if problem:
        raise HostprepError(problem, path=archive, data_root=data_root)


def check_space(archive: str, needed: int) -> None:
    directory = nearest_existing(os.path.dirname(os.path.abspath(archive)))
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    if needed > free:
        raise HostprepError('image archive %s needs about %s but only %s are free on the filesystem of %s; free '
                            'space there or choose another directory' % (archive, human_size(needed),
                                                                         human_size(free), directory),
                            needed=needed, free=free)


# ---- the engine -------------------------------------------------------------------

def engine_images(client: t.Any, include_dangling: bool = True) -> list[dict[str, t.Any]]:
    """The engine's images with their layers (``RootFS.Layers`` of each)."""
    entries = image_entries(client.api.images(), include_dangling=include_dangling)
    for entry in entries:
        layers = ((client.api.inspect_image(entry['id']) or {}).get('RootFS') or {}).get('Layers')
        if isinstance(layers, list):
            entry['layers'] = layers
    return entries


def layers_size(client: t.Any) -> int:
    """Bytes of all layers (shared ones once), the size of a full archive."""
    return int(client.api.df().get('LayersSize') or 0)


def save(client: t.Any, names: list[str], path: str, chunk_size: int = 1024 * 1024) -> int:
    """Write the named images to path atomically; return its size."""
    api = client.api
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        # One request for all names: layers shared by several images are
        # written once (the SDK's get_image() takes a single name).
        response = api.get(api._url('/images/get'), params=[('names', name) for name in names],  # pylint: disable=protected-access
                           stream=True)
        api._raise_for_status(response)  # pylint: disable=protected-access
        with os.fdopen(fd, 'wb') as handle:
            for chunk in response.iter_content(chunk_size):
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return os.path.getsize(path)


def load(client: t.Any, path: str) -> None:
    with open(path, 'rb') as handle:
        errors = load_errors(client.api.load_image(handle))
    if errors:
        raise HostprepError('the engine refused to load %s: %s' % (path, '; '.join(errors)), path=path)


def manage(client: t.Any, params: dict[str, t.Any], check_mode: bool) -> dict[str, t.Any]:
    """Save (state=saved) or load (state=loaded) the images; the module's work."""
    path = params['path']
    present = engine_images(client, include_dangling=params['include_dangling'])
    archived = read_archive(path)
    result: dict[str, t.Any] = {'changed': False, 'path': path}
    if params['state'] == 'saved':
        data_root = params.get('data_root') or client.api.info().get('DockerRootDir')
        if os.path.isdir(path):
            raise HostprepError('path %s is a directory; give the path of the archive file to write' % path)
        check_location(path, data_root)
        # The archive must hold exactly the engine's images (by ID, or by layers across image stores).
        changed = archived is None or bool(missing_images(present, archived)) or bool(missing_images(archived, present))
        if changed and present and not check_mode:
            check_space(path, layers_size(client))
            save(client, save_names(present), path)
            archived = read_archive(path)
            still_missing = missing_images(present, archived or [])
            if still_missing:
                raise HostprepError('%s lacks images after saving: %s' % (
                    path, ', '.join(entry['id'] for entry in still_missing)), path=path)
        result.update(changed=changed and bool(present), images=public(present), data_root=data_root,
                      diff={'before': {'archive': [e['id'] for e in archived or []]},
                            'after': {'archive': [e['id'] for e in present]}})
    else:
        if archived is None:
            raise HostprepError('image archive %s does not exist; save the images first (state=saved)' % path,
                                path=path)
        missing = missing_images(archived, present)
        before_ids = [entry['id'] for entry in present]
        if missing and not check_mode:
            load(client, path)
            present = engine_images(client, include_dangling=True)
            still_missing = missing_images(archived, present)
            if still_missing:
                raise HostprepError('the engine does not list %s after loading %s' % (
                    ', '.join(entry['id'] for entry in still_missing), path), path=path)
        result.update(changed=bool(missing), images=public(archived), loaded=public(missing),
                      diff={'before': {'engine': before_ids},
                            'after': {'engine': sorted(set(before_ids) | {e['id'] for e in archived})}})
    result['size'] = os.path.getsize(path) if os.path.exists(path) else 0
    return result
