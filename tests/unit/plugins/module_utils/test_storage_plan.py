# SPDX-License-Identifier: GPL-3.0-or-later
"""The docker_storage role's plan (pure), fed what docker_storage_info reported on a real engine
(tests/unit/roles/fixtures: a private dockerd 20.10 on overlay2 over a loop ext4, running with one running
and two stopped containers, then stopped)."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _storage_plan as plan
from ansible_collections.hostprep.container_host.plugins.module_utils._lvm import dm_path

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'roles', 'fixtures')
DATA_ROOT = '/tmp/rec/mnt/docker'


def recorded(name: str) -> dict:
    with open(os.path.join(FIXTURES, 'storage_info_overlay2_%s.json' % name), encoding='utf-8') as handle:
        return json.load(handle)['storage']


def settings(**extra) -> dict:
    values = {
        'backend': 'overlay2', 'vg': 'docker', 'thinpool': 'thinpool', 'thin_volume_name': 'dockerdata',
        'data_root': DATA_ROOT, 'options': [], 'loopback_data_size': '100G', 'loopback_metadata_size': '2G',
        'image_archive_dir': '/srv/archive/', 'daemon_config': '/etc/docker/daemon.json', 'fstab': '/etc/fstab',
        'containerd_config': '/etc/containerd/config.toml', 'containerd_drop_in': '/etc/containerd/conf.d/50.toml',
        'btrfs_mount_point': '/mnt/docker-btrfs', 'btrfs_device': '/dev/vdc', 'devices': ['/dev/vdb'],
        'reset': False, 'preserve_images': False,
    }
    values.update(extra)
    return values


def test_target_of_the_recorded_engine():
    storage = recorded('running')
    target = plan.target(settings(), storage)
    assert target['driver'] == 'overlay2' and target['kind'] == 'none'
    assert target['engine_version'] == '20.10.24'
    assert target['old_data_root'] == DATA_ROOT
    # the private engine's data root is a bind mount of the ext4 (/dev/loop0[/docker])
    assert target['root_mounted'] and target['root_fstype'] == 'ext4' and not target['thin_in_place']
    assert target['config'] == {'storage-driver': 'overlay2', 'storage-opts': [], 'data-root': DATA_ROOT}
    assert target['archive'] == '/srv/archive/docker-storage-images.tar'
    assert target['journal_files'] == ['/etc/docker/daemon.json', '/etc/fstab']
    assert target['mount_roots'] == []


def test_stopped_engine_tells_the_version_from_the_binary_and_no_mount_at_the_data_root():
    target = plan.target(settings(), recorded('stopped'))
    assert target['engine_version'] == '20.10.24'
    assert not target['root_mounted'] and target['root_fstype'] is None


@pytest.mark.parametrize('backend, driver, kind, opts', [
    ('overlay2_thin', 'overlay2', 'thinpool', []),
    ('btrfs', 'btrfs', 'btrfs', []),
    ('vfs', 'vfs', 'none', []),
    ('devicemapper_direct', 'devicemapper', 'thinpool',
     ['dm.use_deferred_removal=true', 'dm.use_deferred_deletion=true', 'dm.thinpooldev=/dev/mapper/my--vg-thin--pool']),
    ('devicemapper_loop', 'devicemapper', 'none', ['dm.loopdatasize=100G', 'dm.loopmetadatasize=2G']),
    ('containerd_devmapper', 'devmapper', 'thinpool', []),
])
def test_each_backend(backend, driver, kind, opts):
    target = plan.target(settings(backend=backend, vg='my-vg', thinpool='thin-pool', options=['x=1']), recorded('running'))
    assert (target['driver'], target['kind']) == (driver, kind)
    assert target['config']['storage-opts'] == opts + ['x=1']
    assert target['thinpool_name'] == 'my--vg-thin--pool'
    assert ('features' in target['config']) == (backend == 'containerd_devmapper')
    assert (len(target['journal_files']) == 4) == (backend == 'containerd_devmapper')
    assert target['mount_roots'] == (['/mnt/docker-btrfs'] if backend == 'btrfs' else [])
    assert target['devices'] == {'btrfs': ['/dev/vdc'], 'thinpool': ['/dev/vdb'], 'none': []}[kind]
    assert target['vg'] == ('my-vg' if kind == 'thinpool' else None)


def test_device_mapper_names_have_one_home():
    target = plan.target(settings(vg='vg-a', thin_volume_name='data-1'), {})
    assert target['thin_device'] == dm_path('vg-a', 'data-1') == '/dev/mapper/vg--a-data--1'


@pytest.mark.parametrize('wanted, before, written', [
    ('/var/lib/docker', '/var/lib/docker', False),   # the default, unchanged: not written
    ('/var/lib/docker', None, False),                # nothing known: not written
    ('/var/lib/docker', '/srv/docker', True),        # moved back to the default: written
    ('/srv/docker', '/srv/docker', True),            # not the default: always written
])
def test_data_root_is_written_when_it_is_not_the_default_or_moves(wanted, before, written):
    config = plan.target(settings(data_root=wanted), {'data_root': before})['config']
    assert ('data-root' in config) == written


def test_thin_lv_in_place_is_not_a_switch():
    storage = dict(recorded('running'), backing_fs={'target': DATA_ROOT, 'source': '/dev/mapper/docker-dockerdata',
                                                    'fstype': 'xfs'})
    s = settings(backend='overlay2_thin')
    target = plan.target(s, storage)
    assert target['thin_in_place']
    assert not plan.decision(s, storage, target, False, True)['switch']
    other = dict(storage, backing_fs={'target': DATA_ROOT, 'source': '/dev/loop0', 'fstype': 'ext4'})
    target = plan.target(s, other)
    assert plan.decision(s, other, target, False, True)['switch']


@pytest.mark.parametrize('case, extra, config_changed, storage_changed, expect', [
    ('nothing to do', {}, False, False, dict(pending=False, switch=False, save_images=False)),
    ('options only', {'options': ['overlay2.size=1G']}, True, False, dict(pending=True, switch=False, save_images=False)),
    ('to vfs, images refused later', {'backend': 'vfs'}, True, False, dict(pending=True, switch=True, save_images=False)),
    ('to vfs, images kept', {'backend': 'vfs', 'preserve_images': True}, True, False,
     dict(pending=True, switch=True, save_images=True)),
    ('btrfs mounted onto the same driver dir', {'backend': 'btrfs', 'preserve_images': True}, True, True,
     dict(pending=True, switch=True, save_images=True)),
    ('a new data root', {'data_root': '/srv/docker', 'preserve_images': True}, True, False,
     dict(pending=True, switch=True, save_images=True)),
    ('a reset never saves', {'reset': True, 'preserve_images': True}, False, False,
     dict(pending=True, switch=True, save_images=False)),
])
def test_decision_on_the_recorded_engine(case, extra, config_changed, storage_changed, expect):
    storage = recorded('running')
    s = settings(**extra)
    found = plan.decision(s, storage, plan.target(s, storage), config_changed, storage_changed)
    assert {key: found[key] for key in expect} == expect, case
    assert (found['images'], found['running'], found['reachable']) == (1, 1, True)


def test_decision_on_the_stopped_engine():
    storage = recorded('stopped')
    s = settings(backend='vfs', preserve_images=True)
    found = plan.decision(s, storage, plan.target(s, storage), True, False)
    # the image count comes from the store on disk; the engine cannot save them (checked by the role)
    assert found == dict(pending=True, storage_changed=False, switch=True, images=1, running=0, reachable=False,
                         save_images=True)


def test_no_engine_at_all():
    s = settings()
    target = plan.target(s, None)
    assert target['engine_version'] == '' and target['old_data_root'] == DATA_ROOT
    assert plan.decision(s, None, target, True, False)['switch'] is False
