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

import errno
import io
import json
import os
import stat
import tarfile
import tempfile
import time
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import Changes, HostprepError, missing_directories
from ansible_collections.hostprep.container_host.plugins.module_utils._engine import nearest_existing
from ansible_collections.hostprep.container_host.plugins.module_utils._sizes import format_size

NO_TAG = '<none>:<none>'
# The member this module appends to every archive it writes: an archive
# without it was made by someone else (docker save, another tool) and is
# never overwritten. docker load reads only what manifest.json names.
MARKER = 'hostprep-images-archive.json'


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
    if not os.path.lexists(path):
        return None
    check_regular_file(path)
    try:
        with tarfile.open(path, 'r:') as tar:
            member = tar.extractfile('manifest.json')
            if member is None:
                raise KeyError('manifest.json')
            manifest = json.load(member)
    except (tarfile.TarError, KeyError, ValueError, OSError) as exc:
        raise HostprepError('%s is not an image archive made by docker save (no readable manifest.json: %s); '
                            'it was left as it is: remove it or choose another path' % (path, exc), path=path) from exc
    if not isinstance(manifest, list):
        raise HostprepError('%s: manifest.json is not a list; it was left as it is: remove the file or choose another '
                            'path' % path, path=path)
    return manifest_entries(manifest, read_configs(path, manifest))


def check_regular_file(path: str) -> None:
    """Refuse a path that is a link, a directory or a device: the archive is a
    regular file this module writes and replaces."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise HostprepError('path %s is a symbolic link (to %s); give the archive\'s real path, nothing was changed'
                            % (path, os.readlink(path)), path=path)
    if stat.S_ISDIR(st.st_mode):
        raise HostprepError('path %s is a directory; give the path of the archive file to write, nothing was changed'
                            % path, path=path)
    if not stat.S_ISREG(st.st_mode):
        raise HostprepError('path %s is not a regular file (a device, socket or pipe); give the path of an archive '
                            'file, nothing was changed' % path, path=path)


def made_here(path: str) -> bool:
    """Whether the archive at path was written by this module (has MARKER)."""
    try:
        with tarfile.open(path, 'r:') as tar:
            tar.getmember(MARKER)
            return True
    except (KeyError, tarfile.TarError, OSError):
        return False


def marker_bytes(names: list[str]) -> bytes:
    return json.dumps({'written_by': 'hostprep.container_host.docker_images_archive', 'names': names,
                       'time': int(time.time())}, sort_keys=True).encode('utf-8')


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
    """Refuse an archive place on the data root's filesystem (see
    location_problem), or below a file that is not a directory."""
    directory = os.path.dirname(os.path.abspath(archive))
    existing = nearest_existing(directory)
    if not os.path.isdir(existing):
        raise HostprepError('the archive\'s directory %s cannot be made: %s is not a directory; choose another path, '
                            'nothing was changed' % (directory, existing), path=archive)
    if not os.path.isdir(nearest_existing(data_root)):
        raise HostprepError('data_root %s is not a directory; give the engine\'s data root or leave data_root unset, '
                            'nothing was changed' % data_root, path=archive)
    problem = location_problem(archive, data_root, os.stat(existing).st_dev,
                               os.stat(nearest_existing(data_root)).st_dev)
    if problem:
        raise HostprepError(problem, path=archive, data_root=data_root)


def make_directory(directory: str, changes: Changes) -> list[str]:
    """Create the archive's directory (mode 0700) and the missing ones above
    it; returns those created, top first, each recorded as a change."""
    missing = missing_directories(directory)
    for path in missing:
        os.mkdir(path, 0o700)
        changes.made('created directory %s' % path)
    return missing


def remove_directories(created: list[str], changes: Changes) -> None:
    """Undo make_directory (deepest first) after a failed save."""
    for path in reversed(created):
        try:
            os.rmdir(path)
            changes.restored('removed directory %s' % path, complete=path == created[0])
        except OSError:
            return


def check_space(archive: str, needed: int) -> None:
    directory = nearest_existing(os.path.dirname(os.path.abspath(archive)))
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    if needed > free:
        raise HostprepError('image archive %s needs about %s but only %s are free on the filesystem of %s; free '
                            'space there or choose another directory' % (archive, format_size(needed),
                                                                         format_size(free), directory),
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
    """Write the named images to path atomically, with the MARKER member
    appended; return its size. A failure (a full filesystem) leaves no
    partial file behind."""
    api = client.api
    directory = os.path.dirname(os.path.abspath(path))
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
        with tarfile.open(tmp, 'a') as tar:
            data = marker_bytes(names)
            info = tarfile.TarInfo(MARKER)
            info.size = len(data)
            info.mtime = int(time.time())
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
        with open(tmp, 'rb+') as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise HostprepError('the filesystem of %s filled up while saving the images (%s); the partial archive was '
                                'removed and %s is as it was: free space there or choose another directory'
                                % (directory, exc.strerror, path), path=path) from exc
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return os.path.getsize(path)


def load(client: t.Any, path: str) -> None:
    with open(path, 'rb') as handle:
        errors = load_errors(client.api.load_image(handle))
    if errors:
        raise HostprepError('the engine refused to load %s: %s' % (path, '; '.join(errors)), path=path)


def manage(client: t.Any, params: dict[str, t.Any], check_mode: bool, changes: Changes) -> dict[str, t.Any]:
    """Save (state=saved) or load (state=loaded) the images; the module's work."""
    path = params['path']
    if params['state'] == 'saved':
        return save_state(client, params, check_mode, changes)
    archived = read_archive(path)
    if archived is None:
        raise HostprepError('image archive %s does not exist; save the images first (state=saved)' % path, path=path)
    present = engine_images(client, include_dangling=params['include_dangling'])
    missing = missing_images(archived, present)
    before_ids = [entry['id'] for entry in present]
    if missing and not check_mode:
        try:
            load(client, path)
        finally:
            # a load that failed midway may have added some images: say so
            now = engine_images(client, include_dangling=True)
            new = [entry['id'] for entry in missing_images(now, present)]
            if new:
                changes.made('loaded %d image(s) into the engine: %s' % (len(new), ', '.join(new)))
        still_missing = missing_images(archived, now)
        if still_missing:
            raise HostprepError('the engine does not list %s after loading %s' % (
                ', '.join(entry['id'] for entry in still_missing), path), path=path)
    return {'changed': bool(missing), 'path': path, 'images': public(archived), 'loaded': public(missing),
            'size': os.path.getsize(path),
            'diff': {'before': {'engine': before_ids},
                     'after': {'engine': sorted(set(before_ids) | {e['id'] for e in archived})}}}


def save_state(client: t.Any, params: dict[str, t.Any], check_mode: bool, changes: Changes) -> dict[str, t.Any]:
    """The archive at path holds exactly the engine's images (by ID, or by
    layers across image stores); an archive this module did not write is
    never replaced."""
    path = params['path']
    data_root = params.get('data_root') or client.api.info().get('DockerRootDir')
    if os.path.lexists(path):
        check_regular_file(path)
    check_location(path, data_root)
    present = engine_images(client, include_dangling=params['include_dangling'])
    archived = read_archive(path)
    changed = archived is None or bool(missing_images(present, archived)) or bool(missing_images(archived, present))
    changed = changed and bool(present)
    if changed and archived is not None and not made_here(path):
        raise HostprepError('%s is an image archive that docker_images_archive did not write (it has no %s member), '
                            'and it holds other images than the engine; it was left as it is: move it away or choose '
                            'another path' % (path, MARKER), path=path)
    if changed and not check_mode:
        check_space(path, layers_size(client))
        created = make_directory(os.path.dirname(os.path.abspath(path)), changes)
        try:
            save(client, save_names(present), path)
        except BaseException:
            remove_directories(created, changes)
            raise
        changes.made('wrote %s' % path)
        archived = read_archive(path)
        still_missing = missing_images(present, archived or [])
        if still_missing:
            raise HostprepError('%s lacks images after saving: %s' % (
                path, ', '.join(entry['id'] for entry in still_missing)), path=path)
    return {'changed': changed, 'path': path, 'images': public(present), 'data_root': data_root,
            'size': os.path.getsize(path) if os.path.exists(path) else 0,
            'diff': {'before': {'archive': [e['id'] for e in archived or []]},
                     'after': {'archive': [e['id'] for e in present]}}}
