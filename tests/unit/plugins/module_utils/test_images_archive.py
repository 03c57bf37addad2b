# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic of _images_archive, fed answers recorded from Debian 12's
dockerd 20.10.24 (tests/unit/fixtures/images_archive): GET /images/json with
a tagged and an untagged image, the manifest.json of a saved archive, and
the progress stream of POST /images/load."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _images_archive as ia
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'images_archive')
BUSYBOX = 'sha256:646a931fd22d2a866f93b83d57505b1582ccc594bbcc8756e547861b461718d2'
UNTAGGED = 'sha256:73697b394ba59cc952fc9db82ee1bc1b99103d111d0ba8d48ff4a498caf63e61'


def load(name):
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return json.load(handle)


def test_image_entries_from_recorded_list():
    entries = ia.image_entries(load('images_20.10.json'))
    assert entries == [{'id': BUSYBOX, 'tags': ['hostprep-busybox:latest', 'hostprep-busybox:v2']},
                       {'id': UNTAGGED, 'tags': []}]
    assert ia.image_entries(load('images_20.10.json'), include_dangling=False) == entries[:1]


def test_save_names_use_tags_and_ids_of_untagged():
    names = ia.save_names(ia.image_entries(load('images_20.10.json')))
    assert names == ['hostprep-busybox:latest', 'hostprep-busybox:v2', UNTAGGED]


def test_manifest_entries_match_the_engine_list():
    manifest = load('manifest_20.10.json')
    assert ia.manifest_entries(manifest) == ia.image_entries(load('images_20.10.json'))


@pytest.mark.parametrize('config, expected', [
    ('646a931fd22d.json', 'sha256:646a931fd22d'),
    ('blobs/sha256/646a931fd22d', 'sha256:646a931fd22d'),  # OCI layout of Engine 25+
])
def test_digest_of_both_archive_layouts(config, expected):
    assert ia.manifest_entries([{'Config': config, 'RepoTags': None}]) == [{'id': expected, 'tags': []}]


def test_manifest_without_config_is_refused():
    with pytest.raises(HostprepError, match='without Config'):
        ia.manifest_entries([{'RepoTags': ['x:y']}])


def test_missing_images_by_id_and_tag():
    present = ia.image_entries(load('images_20.10.json'))
    assert ia.missing_images(present, present) == []
    retagged = [{'id': BUSYBOX, 'tags': ['hostprep-busybox:latest']}, {'id': UNTAGGED, 'tags': []}]
    assert ia.missing_images(present, retagged) == [present[0]]
    assert ia.missing_images(present, []) == present


@pytest.mark.parametrize('archive, data_root, adev, ddev, expect', [
    ('/srv/backup/a.tar', '/var/lib/docker', 1, 2, None),
    ('/var/lib/docker/a.tar', '/var/lib/docker', 2, 2, 'is under the data root'),
    ('/var/lib/docker/sub/a.tar', '/var/lib/docker', 3, 2, 'is under the data root'),
    ('/var/backups/a.tar', '/var/lib/docker', 2, 2, 'same filesystem as the data root'),
    ('/var/lib/docker2/a.tar', '/var/lib/docker', 5, 2, None),
])
def test_location_problem(archive, data_root, adev, ddev, expect):
    problem = ia.location_problem(archive, data_root, adev, ddev)
    if expect is None:
        assert problem is None
    else:
        assert expect in problem and archive in problem


def test_load_errors_from_recorded_streams():
    assert ia.load_errors(load('load_stream_20.10.json')) == []
    assert ia.load_errors(load('load_error_20.10.json')) == [
        'Error processing tar file(exit status 1): unexpected EOF']


def _archive(tmp_path, members):
    path = tmp_path / 'images.tar'
    with tarfile.open(path, 'w') as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_read_archive(tmp_path):
    assert ia.read_archive(str(tmp_path / 'none.tar')) is None
    manifest = json.dumps(load('manifest_20.10.json')).encode()
    assert [e['id'] for e in ia.read_archive(_archive(tmp_path, {'manifest.json': manifest}))] == [BUSYBOX, UNTAGGED]


def test_read_archive_refuses_other_files(tmp_path):
    with pytest.raises(HostprepError, match='not an image archive made by docker save'):
        ia.read_archive(_archive(tmp_path, {'hello.txt': b'hi'}))
    bad = tmp_path / 'plain.tar'
    bad.write_text('not a tar')
    with pytest.raises(HostprepError, match='remove it or choose another path'):
        ia.read_archive(str(bad))


def test_made_here_needs_the_marker(tmp_path):
    manifest = json.dumps(load('manifest_20.10.json')).encode()
    foreign = _archive(tmp_path, {'manifest.json': manifest})
    assert ia.made_here(foreign) is False
    ours = tmp_path / 'ours'
    ours.mkdir()
    marked = _archive(ours, {'manifest.json': manifest, ia.MARKER: ia.marker_bytes(['busybox:latest'])})
    assert ia.made_here(marked) is True
    assert json.loads(ia.marker_bytes(['a:1']))['written_by'] == 'hostprep.container_host.docker_images_archive'


def test_check_location_on_this_host(tmp_path):
    root = tmp_path / 'root'
    root.mkdir()
    with pytest.raises(HostprepError, match='same filesystem'):
        ia.check_location(str(tmp_path / 'archive' / 'a.tar'), str(root))
    with pytest.raises(HostprepError, match='under the data root'):
        ia.check_location(str(root / 'a.tar'), str(root))


def test_same_image_across_image_stores():
    """A graph-driver archive loaded into the containerd image store: the
    engine lists the image by its manifest digest, so the config digest of
    the archive never matches; the layers and tags do."""
    layers = ['sha256:1f1d0e6f8ab5'.ljust(71, '0')]
    archived = [{'id': BUSYBOX, 'tags': ['hostprep/busybox:vm'], 'layers': layers}]
    in_containerd = [{'id': 'sha256:' + 'c' * 64, 'tags': ['hostprep/busybox:vm'], 'layers': layers}]
    assert ia.missing_images(archived, in_containerd) == []
    assert ia.missing_images(in_containerd, archived) == []
    untagged_elsewhere = [{'id': 'sha256:' + 'c' * 64, 'tags': [], 'layers': layers}]
    assert ia.missing_images(archived, untagged_elsewhere) == archived
    other_layers = [{'id': 'sha256:' + 'c' * 64, 'tags': ['hostprep/busybox:vm'], 'layers': layers + layers}]
    assert ia.missing_images(archived, other_layers) == archived
    # without layers on either side only the ID counts
    assert ia.missing_images([{'id': BUSYBOX, 'tags': []}], [{'id': 'sha256:' + 'c' * 64, 'tags': []}])
    assert ia.public(archived) == [{'id': BUSYBOX, 'tags': ['hostprep/busybox:vm']}]


def test_read_archive_reads_the_layers_of_each_config(tmp_path):
    manifest = load('manifest_20.10.json')
    configs = {item['Config']: json.dumps({'rootfs': {'type': 'layers', 'diff_ids': ['sha256:%d' % n]}}).encode()
               for n, item in enumerate(manifest)}
    entries = ia.read_archive(_archive(tmp_path, dict(configs, **{'manifest.json': json.dumps(manifest).encode()})))
    assert [e['id'] for e in entries] == [BUSYBOX, UNTAGGED]
    assert all(len(e['layers']) == 1 for e in entries)
