# SPDX-License-Identifier: GPL-3.0-or-later
"""_lvm and _thinpool fed LVM JSON recorded inside a bookworm VM of the lab
(molecule/devicemapper_direct/record.yml, tests/unit/fixtures/lvm/vm_*.json):

* vm_docker_pool_*: the engine's thin pool docker/thinpool on one 4 GiB
  virtio disk (/dev/vdb, 254:16), made by the docker_storage role
  (devicemapper_direct), with images in it and dockerd running;
* vm_spare_*: lsblk and wipefs of the second, blank disk (/dev/vdc, 254:32);
* vm_docker_grown_*: after lvm_thinpool added /dev/vdc (the VM ran
  pvcreate, vgextend, lvextend -l 1943, lvextend --poolmetadatasize 83886080b);
* vm_thin_unmounted_*: tests/integration/vm/lvm_thinpool.yml's VG hpdocker on
  two disks with an active, unmounted thin LV dockerdata.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _blockdev
from ansible_collections.hostprep.container_host.plugins.module_utils import _lvm
from ansible_collections.hostprep.container_host.plugins.module_utils import _thinpool as tp
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'lvm')
MIB = 1024 * 1024
EXTENT = 4 * MIB
DISK1 = '/dev/disk/by-id/virtio-hostprep-disk1'
DISK2 = '/dev/disk/by-id/virtio-hostprep-disk2'


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return handle.read()


def state(step: str, vg: str = 'docker') -> dict:
    """read_state()'s answer, from the three reports of one recorded step."""
    vgs = [row for row in _lvm.parse_report(fixture('vm_%s_vgs.json' % step), 'vg') if row['vg_name'] == vg]
    return {'pvs': _lvm.parse_report(fixture('vm_%s_pvs.json' % step), 'pv'),
            'vg': vgs[0] if vgs else None,
            'lvs': [row for row in _lvm.parse_report(fixture('vm_%s_lvs.json' % step), 'lv')
                    if row['vg_name'] == vg]}


def params(**kw) -> dict:
    base = dict(vg='docker', devices=[DISK1], pool='thinpool', data_percent=None, data_size=None,
                metadata_percent=None, metadata_size=None, chunk_size='512K', profile='docker-thinpool',
                profile_dir='/etc/lvm/profile', autoextend_threshold=80, autoextend_percent=20,
                thin_volume=None, wipe_signatures=False, state='present')
    base.update(kw)
    return tp.check_params(base)


def disk1() -> dict:
    """_blockdev.probe() of the by-id link of the PV (LVM2_member, no fs)."""
    return {'path': DISK1, 'exists': True, 'real': '/dev/vdb', 'block': True, 'kind': 'block device',
            'rdev': (254, 16), 'size': 4 * 1024 * MIB, 'signatures': [{'type': 'LVM2_member'}], 'mounted': [],
            'holders': ['dm-0', 'dm-1'], 'children': [], 'partitions': []}


def disk2() -> dict:
    """_blockdev.probe() of the blank spare disk, from its recorded lsblk and wipefs."""
    nodes = _blockdev.parse_lsblk(fixture('vm_spare_lsblk.json'))
    facts = {'path': DISK2, 'exists': True, 'real': '/dev/vdc', 'block': True, 'kind': 'block device',
             'rdev': (254, 32), 'signatures': _blockdev.parse_wipefs(fixture('vm_spare_wipefs.json'))}
    facts.update(_blockdev.device_facts_from('/dev/vdc', (254, 32), nodes, [], [], None))
    return facts


PROFILE = tp.profile_text(80, 20)


# ---- the reports as the parsers read them -----------------------------------------

def test_recorded_pool_row_is_typed():
    pool = _lvm.find_lv(state('docker_pool')['lvs'], 'docker', 'thinpool')
    assert _lvm.is_thin_pool(pool)
    assert pool['lv_size'] == 971 * EXTENT              # 95 % of 1023 extents, floored
    assert pool['lv_metadata_size'] == 10 * EXTENT      # 1 % of 1023
    assert pool['chunk_size'] == 512 * 1024
    assert (pool['data_percent'], pool['metadata_percent']) == (2.06, 10.11)
    assert pool['lv_profile'] == 'docker-thinpool' and pool['seg_monitor'] == 'monitored'
    assert pool['thin_count'] == 0                     # Docker's thin devices are not LVs
    assert pool['lv_dm_path'] == _lvm.dm_path('docker', 'thinpool')
    assert not _lvm.lv_is_open(pool)                   # dockerd does not hold the pool while idle
    hidden = _lvm.find_lv(state('docker_pool')['lvs'], 'docker', '[thinpool_tdata]')
    assert hidden['data_percent'] is None and _lvm.lv_is_open(hidden)


def test_recorded_reports_use_the_module_fields():
    for kind, name in (('pv', 'pvs'), ('vg', 'vgs'), ('lv', 'lvs')):
        data = json.loads(fixture('vm_docker_pool_%s.json' % name))
        assert list(data['report'][0][kind][0]) == _lvm.REPORT_FIELDS[kind]


def test_pv_found_by_major_minor_through_the_by_id_link():
    pv = tp.pv_for(state('docker_pool')['pvs'], disk1())
    assert (pv['pv_name'], pv['vg_name']) == ('/dev/vdb', 'docker')
    assert tp.pv_for(state('docker_pool')['pvs'], disk2()) is None


# ---- plans on the recorded VG ------------------------------------------------------

def test_existing_pool_plans_no_commands():
    plan = tp.plan_present(params(), state('docker_pool'), [disk1()], PROFILE)
    assert plan['steps'] == [] and plan['warnings'] == [] and plan['pvs_added'] == []
    assert plan['after']['pool']['size'] == 971 * EXTENT
    assert plan['after']['vg']['pvs'] == ['/dev/vdb']


def test_existing_pool_with_another_profile_file_rewrites_only_the_profile():
    plan = tp.plan_present(params(), state('docker_pool'), [disk1()], tp.profile_text(90, 20))
    assert [s.as_dict()['cmd'] for s in plan['steps']] == [['write', '/etc/lvm/profile/docker-thinpool.profile']]


def test_growth_plan_is_what_the_vm_ran_and_predicts_the_grown_pool():
    spare = disk2()
    assert spare['size'] == 4 * 1024 * MIB and spare['signatures'] == [] and spare['mounted'] == []
    plan = tp.plan_present(params(devices=[DISK1, DISK2]), state('docker_pool'), [disk1(), spare], PROFILE)
    assert [s.argv for s in plan['steps']] == [
        ['pvcreate', '/dev/vdc'],
        ['vgextend', 'docker', '/dev/vdc'],
        ['lvextend', '-l', '1943', 'docker/thinpool'],
        ['lvextend', '--poolmetadatasize', '83886080b', 'docker/thinpool'],
    ]
    assert plan['pvs_added'] == ['/dev/vdc']
    grown = state('docker_grown')
    pool = _lvm.find_lv(grown['lvs'], 'docker', 'thinpool')
    assert plan['after']['pool']['size'] == pool['lv_size']
    assert plan['after']['pool']['metadata_size'] == pool['lv_metadata_size']
    assert plan['after']['vg']['size'] == grown['vg']['vg_size']
    assert plan['free_extents_after'] == grown['vg']['vg_free_count'] == 63


def test_grown_pool_plans_no_commands():
    plan = tp.plan_present(params(devices=[DISK1, DISK2]), state('docker_grown'),
                           [disk1(), dict(disk2(), signatures=[{'type': 'LVM2_member'}])], PROFILE)
    assert plan['steps'] == [] and plan['pvs_added'] == []


def test_shrinking_the_grown_pool_is_a_warning_not_a_step():
    plan = tp.plan_present(params(devices=[DISK1, DISK2], data_percent=50), state('docker_grown'),
                           [disk1(), dict(disk2(), signatures=[{'type': 'LVM2_member'}])], PROFILE)
    assert plan['steps'] == []
    assert 'do not shrink' in plan['warnings'][0]


# ---- absent -------------------------------------------------------------------------

def test_plan_absent_refuses_a_pool_holding_docker_data_without_remove_data():
    # Found in the VM: with deferred removal Docker's thin devices are neither
    # LVs nor active, yet the pool holds every image and container.
    with pytest.raises(HostprepError) as exc:
        tp.plan_absent(params(state='absent'), state('docker_pool'), [disk1()], PROFILE, ['docker/thinpool'], [])
    assert 'docker/thinpool holds data (2.06% used)' in exc.value.msg and 'remove_data=true' in exc.value.msg


def test_plan_absent_removes_pool_vg_pv_labels_and_profile():
    plan = tp.plan_absent(params(state='absent', remove_data=True), state('docker_pool'), [disk1()], PROFILE,
                          ['docker/thinpool'], [])
    assert [s.as_dict()['cmd'] for s in plan['steps']] == [
        ['lvremove', '-y', 'docker/thinpool'],
        ['vgremove', '-y', 'docker'],
        ['pvremove', '-y', '/dev/vdb'],
        ['remove', '/etc/lvm/profile/docker-thinpool.profile'],
    ]
    assert plan['removed'] == ['docker/thinpool', 'docker', '/dev/vdb', '/etc/lvm/profile/docker-thinpool.profile']


def test_plan_absent_keeps_the_vg_when_a_pv_is_not_listed():
    plan = tp.plan_absent(params(state='absent', devices=[DISK1, DISK2], remove_data=True), state('docker_grown'),
                          [disk1()], PROFILE, [], [])
    assert [s.argv for s in plan['steps'] if s.argv] == [['lvremove', '-y', 'docker/thinpool']]


def test_plan_absent_refuses_while_docker_thin_devices_are_active():
    with pytest.raises(HostprepError) as exc:
        tp.plan_absent(params(state='absent'), state('docker_pool'), [disk1()], PROFILE, [],
                       ['docker-254:1-131090-base'])
    assert 'docker/thinpool is in use' in exc.value.msg and 'docker-254:1-131090-base' in exc.value.msg


def test_plan_absent_with_an_active_unmounted_thin_volume_removes_it():
    # LVM shows the pool open while its thin LV is active, mounted or not;
    # that alone must not make the pool count as busy.
    plan = tp.plan_absent(params(state='absent', vg='hpdocker', devices=[]), state('thin_unmounted', 'hpdocker'),
                          [], None, [], [])
    assert [s.argv for s in plan['steps'] if s.argv] == [['lvremove', '-y', 'hpdocker/dockerdata'],
                                                         ['lvremove', '-y', 'hpdocker/thinpool']]


def test_plan_absent_without_pool_or_vg_is_empty():
    plan = tp.plan_absent(params(state='absent', vg='gone'), {'pvs': state('docker_pool')['pvs'], 'vg': None,
                                                              'lvs': []}, [disk1()], None, [], [])
    assert plan['steps'] == [] and plan['removed'] == []


# ---- thinpool_usage -----------------------------------------------------------------

class Recorded:
    """run(argv) answering with one recorded report, remembering the argv."""

    def __init__(self, name: str) -> None:
        self.text = fixture(name)
        self.calls: list[list[str]] = []

    def __call__(self, argv, check_rc=True):
        self.calls.append(list(argv))
        return 0, self.text, ''


def test_thinpool_usage_on_the_recorded_pool():
    run = Recorded('vm_docker_pool_lvs.json')
    usage = _lvm.thinpool_usage(run, 'docker', 'thinpool')
    assert usage == {'data_percent': 2.06, 'metadata_percent': 10.11, 'size': 971 * EXTENT,
                     'device': '/dev/mapper/docker-thinpool'}
    assert run.calls == [['lvs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o',
                          ','.join(_lvm.REPORT_FIELDS['lv']), '--select', 'vg_name=docker && lv_name=thinpool']]


def test_thinpool_usage_on_the_grown_pool():
    usage = _lvm.thinpool_usage(Recorded('vm_docker_grown_lvs.json'), 'docker', 'thinpool')
    assert (usage['size'], usage['data_percent']) == (1943 * EXTENT, 1.03)


@pytest.mark.parametrize('vg, lv, message', [
    ('hpdocker', 'dockerdata', 'hpdocker/dockerdata is not a thin pool (segment type thin)'),
    ('hpdocker', 'nothere', 'thin pool hpdocker/nothere does not exist'),
    ('hpdocker', 'thinpool_tdata', "LV name 'thinpool_tdata' is invalid"),
])
def test_thinpool_usage_refuses(vg, lv, message):
    with pytest.raises(HostprepError, match=re.escape(message)):
        _lvm.thinpool_usage(Recorded('vm_thin_unmounted_lvs.json'), vg, lv)


def test_thin_volume_of_the_recorded_pool_is_recognised():
    lvs = state('thin_unmounted', vg='hpdocker')['lvs']
    thin = _lvm.find_lv(lvs, 'hpdocker', 'dockerdata')
    assert (thin['segtype'], thin['pool_lv'], thin['lv_size']) == ('thin', 'thinpool', 1024 * MIB)
    assert not _lvm.lv_is_open(thin)
    assert _lvm.find_lv(lvs, 'hpdocker', 'thinpool')['thin_count'] == 1


def test_plan_present_refuses_to_format_a_thin_volume_in_use():
    """The recorded active thin LV hpdocker/dockerdata: without a filesystem
    the plan would run mkfs.xfs on it, unless something uses it raw."""
    p = params(vg='hpdocker', devices=[], thin_volume=dict(name='dockerdata', size='1G', filesystem='xfs'))
    current = state('thin_unmounted', 'hpdocker')
    plan = tp.plan_present(p, current, [], PROFILE, None, [])
    assert [s.argv[0] for s in plan['steps'] if s.argv and s.argv[0] == 'mkfs.xfs'] == ['mkfs.xfs']
    with pytest.raises(HostprepError) as exc:
        tp.plan_present(p, current, [], PROFILE, None, ['open by a process: qemu (pid 7) has /dev/dm-3 open'])
    assert exc.value.msg == ('device /dev/mapper/hpdocker-dockerdata is in use: open by a process: qemu (pid 7) has '
                             '/dev/dm-3 open; stop that use first. Nothing was changed')
