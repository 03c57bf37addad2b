# SPDX-License-Identifier: GPL-3.0-or-later
"""docker_images_archive against a real private dockerd (Engine 20.10).

The data root sits on a loop-mounted ext4; the archive goes to the test's
work directory on the root filesystem (another filesystem). Check mode writes
and loads nothing; save and load are idempotent by image ID and tag; an
archive place on the data root's filesystem is refused with nothing written.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from conftest import require
from tests.lab.dockerd import PrivateDockerd, import_busybox, loop_filesystem

MODULE = 'hostprep.container_host.docker_images_archive'


@pytest.fixture(scope='module')
def engine():
    for tool in ('dockerd', 'containerd', 'losetup', 'mkfs.ext4', 'busybox'):
        require(shutil.which(tool) is not None, tool)
    workdir = tempfile.mkdtemp(prefix='hp-dia-')
    try:
        with loop_filesystem(workdir, 'ext4', size_mb=128) as ext4:
            with PrivateDockerd(workdir, data_root=os.path.join(ext4, 'docker')) as dockerd:
                import_busybox(dockerd.client)
                dockerd.client.images.get('hostprep-busybox:latest').tag('hostprep-busybox', 'kept')
                yield dockerd
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def ids(dockerd):
    return sorted(image.id for image in dockerd.client.images.list())


def test_save_and_load(ansible, engine):
    archive = os.path.join(tempfile.mkdtemp(prefix='hp-dia-arch-'), 'sub', 'images.tar')
    try:
        args = {'path': archive, 'state': 'saved', 'docker_host': engine.base_url}
        check = ansible.module(MODULE, args, check=True)
        assert not check['failed'] and check['changed'], check
        assert not os.path.exists(archive)
        assert check['data_root'] == engine.data_root
        saved = ansible.module(MODULE, args)
        assert not saved['failed'] and saved['changed'], saved
        assert saved['size'] == os.path.getsize(archive) > 0
        assert oct(os.stat(archive).st_mode & 0o777) == oct(0o600)
        assert [entry['tags'] for entry in saved['images']] == [['hostprep-busybox:kept', 'hostprep-busybox:latest']]
        again = ansible.module(MODULE, args)
        assert not again['failed'] and not again['changed'], again

        images = ids(engine)
        for tag in ('hostprep-busybox:latest', 'hostprep-busybox:kept'):
            engine.client.images.remove(tag)
        assert ids(engine) == []
        load = dict(args, state='loaded')
        check = ansible.module(MODULE, load, check=True)
        assert not check['failed'] and check['changed'] and len(check['loaded']) == 1, check
        assert ids(engine) == []
        loaded = ansible.module(MODULE, load)
        assert not loaded['failed'] and loaded['changed'], loaded
        assert ids(engine) == images
        assert sorted(engine.client.images.get(images[0]).tags) == ['hostprep-busybox:kept', 'hostprep-busybox:latest']
        again = ansible.module(MODULE, load)
        assert not again['failed'] and not again['changed'], again
    finally:
        shutil.rmtree(os.path.dirname(os.path.dirname(archive)), ignore_errors=True)


def test_archive_on_the_data_root_filesystem_is_refused(ansible, engine):
    inside = os.path.join(os.path.dirname(engine.data_root), 'backup', 'images.tar')
    result = ansible.module(MODULE, {'path': inside, 'docker_host': engine.base_url})
    assert result['failed']
    assert 'same filesystem as the data root %s' % engine.data_root in result['msg']
    assert not os.path.exists(os.path.dirname(inside))
    under = os.path.join(engine.data_root, 'images.tar')
    result = ansible.module(MODULE, {'path': under, 'docker_host': engine.base_url})
    assert result['failed'] and 'is under the data root' in result['msg']
    assert not os.path.exists(under)


def test_load_of_a_missing_archive_and_an_unreachable_engine(ansible, engine):
    result = ansible.module(MODULE, {'path': '/nonexistent/hp-images.tar', 'state': 'loaded',
                                     'docker_host': engine.base_url})
    assert result['failed'] and 'does not exist; save the images first' in result['msg']
    result = ansible.module(MODULE, {'path': '/tmp/hp-none.tar', 'docker_host': 'unix:///tmp/hp-no-engine.sock'})
    assert result['failed'] and 'start dockerd or set docker_host' in result['msg']
    assert not os.path.exists('/tmp/hp-none.tar')
