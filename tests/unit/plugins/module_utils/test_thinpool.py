# SPDX-License-Identifier: GPL-3.0-or-later
"""_thinpool: parameters, device safety, the plan and its rollback, fed
wipefs/lsblk/findmnt/pvs/vgs/lvs output recorded on this host and in the
VM lab (tests/unit/fixtures/lvm)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _blockdev
from ansible_collections.hostprep.container_host.plugins.module_utils import _lvm
from ansible_collections.hostprep.container_host.plugins.module_utils import _thinpool as tp
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'lvm')
MIB = 1024 * 1024


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return handle.read()


def params(**kw):
    base = dict(vg='docker', devices=['/dev/vdb'], pool='thinpool', data_percent=None, data_size=None,
                metadata_percent=None, metadata_size=None, chunk_size='512K', profile='docker-thinpool',
                profile_dir='/etc/lvm/profile', autoextend_threshold=80, autoextend_percent=20,
                thin_volume=None, wipe_signatures=False, state='present')
    base.update(kw)
    return base


# ---- sizes and parameters ---------------------------------------------------

def test_check_params_defaults():
    norm = tp.check_params(params())
    assert (norm['data_percent'], norm['metadata_percent'], norm['chunk_size']) == (95, 1, 512 * 1024)


@pytest.mark.parametrize('kw, message', [
    (dict(vg='bad vg'), "VG name 'bad vg' is invalid"),
    (dict(vg='snapshotvg'), 'reserved'),
    (dict(vg='-x'), "starts with '-'"),
    (dict(vg='..'), 'reserved'),
    (dict(pool='a_tdata'), 'pool name'),
    (dict(data_percent=101), 'data_percent=101 is out of range'),
    (dict(metadata_percent=0), 'metadata_percent=0 is out of range'),
    (dict(data_percent=95, metadata_percent=10), 'add up to 105%'),
    (dict(data_percent=99, metadata_percent=1), 'spare metadata LV'),
    (dict(data_percent=90, data_size='10G'), 'not both'),
    (dict(data_size='lots'), 'data_size'),
    (dict(metadata_size='1M'), 'below the 2 MiB'),
    (dict(chunk_size='100K'), 'chunk_size 100K is invalid'),
    (dict(chunk_size='2G'), 'chunk_size 2G is invalid'),
    (dict(autoextend_threshold=101), 'autoextend_threshold=101'),
    (dict(autoextend_threshold=20), 'autoextend_threshold=20'),
    (dict(devices=['/dev/vdb', '/dev/vdb']), 'twice'),
    (dict(thin_volume=dict(name='thinpool', size='1G', filesystem='xfs')), 'taken by the pool'),
    (dict(thin_volume=dict(name='data', size=None, filesystem='xfs')), 'needs a size'),
    (dict(profile_dir='relative'), 'absolute'),
])
def test_check_params_refuses(kw, message):
    with pytest.raises(HostprepError) as exc:
        tp.check_params(params(**kw))
    assert message in exc.value.msg


# ---- device safety (the probes are tested in test_blockdev.py) ---------------

def blank_device(path='/dev/vdb', size=2 * 1024 * MIB, rdev=(254, 16), **kw):
    facts = {'path': path, 'exists': True, 'real': path, 'block': True, 'kind': 'block device', 'rdev': rdev,
             'size': size, 'signatures': [], 'mounted': [], 'holders': [], 'children': [], 'partitions': []}
    facts.update(kw)
    return facts


@pytest.mark.parametrize('facts, pv, wipe, message, needs_wipe', [
    (blank_device(exists=False, block=False), None, False, 'does not exist', False),
    (blank_device(block=False, kind='regular file'), None, True, 'not a block device but a regular file', False),
    (blank_device(mounted=['/dev/vdb on /mnt']), None, True, 'in use: mounted (/dev/vdb on /mnt)', False),
    (blank_device(holders=['dm-0']), None, True, 'in use: held by dm-0', False),
    (blank_device(swap=['/dev/vdb']), None, True, 'in use: used as swap (/dev/vdb)', False),
    (blank_device(open_by=['python3 (pid 7) has /dev/vdb open']), None, True, 'open by a process: python3 (pid 7)', False),
    (blank_device(claimed=True), None, True, 'an exclusive open fails', False),
    (blank_device(signatures=[{'type': 'linux_raid_member'}]), None, True,
     '/dev/vdb is an md/RAID member (linux_raid_member)', False),
    (blank_device(signatures=_blockdev.parse_wipefs(fixture('host_wipefs_pv.json'))), None, True,
     '/dev/vdb is an LVM physical volume (LVM2_member signature, not listed by pvs', False),
    (blank_device(size=4 * MIB), None, False, 'too small: 4 MiB; a PV needs at least 5 MiB', False),
    (blank_device(), {'vg_name': 'other', 'pv_name': '/dev/vdb'}, True,
     'is an LVM physical volume of volume group other (vgreduce other /dev/vdb', False),
    (blank_device(signatures=_blockdev.parse_wipefs(fixture('host_wipefs_ext4.json'))), None, False,
     'carries signatures ext4', False),
    (blank_device(signatures=_blockdev.parse_wipefs(fixture('host_wipefs_gpt.json'))), None, False,
     'signatures PMBR, gpt', False),
    (blank_device(signatures=_blockdev.parse_wipefs(fixture('host_wipefs_xfs.json'))), None, True, None, True),
    (blank_device(signatures=_blockdev.parse_wipefs(fixture('host_wipefs_pv.json'))), {'vg_name': '', 'pv_name': '/dev/vdb'},
     False, None, False),
    (blank_device(), None, False, None, False),
])
def test_device_problem(facts, pv, wipe, message, needs_wipe):
    error, wipe_needed = tp.device_problem(facts, pv, 'docker', wipe, 5 * MIB)
    if message is None:
        assert error is None
    else:
        assert message in error
    assert wipe_needed is needs_wipe


# ---- plans --------------------------------------------------------------------

def host_state(pvs='host_pvs_vg_two_pvs.json', vg=None, lvs=None):
    return {'pvs': _lvm.parse_report(fixture(pvs), 'pv') if pvs else [],
            'vg': _lvm.parse_report(fixture(vg), 'vg')[0] if vg else None,
            'lvs': _lvm.parse_report(fixture(lvs), 'lv') if lvs else []}


def test_plan_new_layout_on_a_blank_disk():
    p = tp.check_params(params())
    plan = tp.plan_present(p, host_state(pvs=None), [blank_device()], None)
    cmds = [s.argv for s in plan['steps'] if s.argv]
    extents = (2048 - 1) // 4
    assert cmds == [
        ['pvcreate', '/dev/vdb'],
        ['vgcreate', 'docker', '/dev/vdb'],
        ['lvcreate', '--wipesignatures', 'y', '-y', '-n', 'thinpool', 'docker', '-l', str(extents * 95 // 100)],
        ['lvcreate', '--wipesignatures', 'y', '-y', '-n', 'thinpoolmeta', 'docker', '-l', str(extents // 100)],
        ['lvconvert', '-y', '--zero', 'n', '-c', '512k', '--thinpool', 'docker/thinpool',
         '--poolmetadata', 'docker/thinpoolmeta'],
        ['lvchange', '--metadataprofile', 'docker-thinpool', 'docker/thinpool'],
        ['lvchange', '--monitor', 'y', 'docker/thinpool'],
    ]
    writes = [s.write for s in plan['steps'] if s.write]
    assert writes[0][0] == '/etc/lvm/profile/docker-thinpool.profile'
    assert 'thin_pool_autoextend_threshold=80' in writes[0][1]
    assert plan['after']['pool']['size'] == extents * 95 // 100 * 4 * MIB
    assert plan['pvs_added'] == ['/dev/vdb']


def test_plan_refuses_before_any_step_and_names_every_bad_device():
    p = tp.check_params(params(devices=['/dev/vdb', '/dev/vdc']))
    devices = [blank_device(signatures=[{'type': 'ext4'}]), blank_device('/dev/vdc', mounted=['/dev/vdc on /x'])]
    with pytest.raises(HostprepError) as exc:
        tp.plan_present(p, host_state(pvs=None), devices, None)
    assert '/dev/vdb carries' in exc.value.msg and '/dev/vdc is in use' in exc.value.msg


def test_plan_too_small_says_how_much():
    p = tp.check_params(params())
    with pytest.raises(HostprepError) as exc:
        tp.plan_present(p, host_state(pvs=None), [blank_device(size=200 * MIB)], None)
    msg = exc.value.msg
    assert 'too small for the thin pool' in msg and '49 extents' in msg
    assert 'needs at least 100 free extents (400 MiB' in msg
    assert exc.value.details['needed_extents'] == 100


def test_plan_absolute_sizes_too_large():
    p = tp.check_params(params(data_size='10G', metadata_size='1G'))
    with pytest.raises(HostprepError, match='needs at least 3072 free extents'):
        tp.plan_present(p, host_state(pvs=None), [blank_device()], None)


def test_plan_on_recorded_vg_without_pool():
    """The host's VG of two loop PVs (420 + 200 MiB): no PV/VG step, only the pool."""
    p = tp.check_params(params(vg='hprecvg', devices=[]))
    state = host_state(vg='host_vgs_two_pvs.json', lvs='host_lvs_empty_vg.json')
    plan = tp.plan_present(p, state, [], None)
    first = [s.argv[0] for s in plan['steps'] if s.argv]
    assert first[:2] == ['lvcreate', 'lvcreate']
    assert plan['steps'][2].argv[-1] == str(state['vg']['vg_extent_count'] // 100)


def test_plan_matches_devices_by_major_minor():
    """/dev/disk/by-id/... of a PV already in the VG: nothing to add."""
    p = tp.check_params(params(vg='hprecvg', devices=['/dev/disk/by-id/virtio-x']))
    state = host_state(vg='host_vgs_two_pvs.json', lvs='host_lvs_empty_vg.json')
    dev = blank_device('/dev/disk/by-id/virtio-x', rdev=(7, 3), signatures=[{'type': 'LVM2_member'}])
    plan = tp.plan_present(p, state, [dev], None)
    assert plan['pvs_added'] == []


def vm_state(prefix):
    return {'pvs': _lvm.parse_report(fixture(prefix + '_pvs.json'), 'pv'),
            'vg': _lvm.parse_report(fixture(prefix + '_vgs.json'), 'vg')[0],
            'lvs': _lvm.parse_report(fixture(prefix + '_lvs.json'), 'lv')}


def test_plan_on_the_recorded_pool_adds_a_thin_volume_and_puts_the_pool_right():
    """The VM's docker/thinpool as LVM reported it: a missing thin volume is created and formatted; a pool that
    lost its profile and monitoring gets both back, and nothing else changes."""
    state = vm_state('vm_docker_pool')
    pool = next(row for row in state['lvs'] if row.get('segtype') == 'thin-pool')
    pool.update(lv_profile='', seg_monitor='not monitored')
    p = tp.check_params(params(devices=[], pool=pool['lv_name'],
                               thin_volume={'name': 'data', 'size': '1G', 'filesystem': 'xfs'}))
    plan = tp.plan_present(p, state, [], tp.profile_text(80, 20))
    assert [s.argv[:2] for s in plan['steps']] == [
        ['lvchange', '--metadataprofile'], ['lvchange', '--monitor'], ['lvcreate', '-y'], ['mkfs.xfs', '-q']]
    assert plan['steps'][2].argv[-4:] == ['-T', 'docker/%s' % pool['lv_name'], '-n', 'data']
    assert plan['after']['thin_volume'] == {'name': 'data', 'size': 1024 * MIB, 'filesystem': 'xfs'}
    assert plan['after']['pool']['profile'] == 'docker-thinpool' and plan['pvs_added'] == []


def test_plan_refuses_to_format_a_thin_volume_in_use():
    state = vm_state('vm_thin_unmounted')
    thin = next(row for row in state['lvs'] if row.get('segtype') == 'thin')
    p = tp.check_params(params(vg=thin['vg_name'], devices=[], pool=thin['pool_lv'],
                               thin_volume={'name': thin['lv_name'], 'size': '1G', 'filesystem': 'xfs'}))
    with pytest.raises(HostprepError, match='in use'):
        tp.plan_present(p, state, [], None, thin_fs=None, thin_uses=['mounted at /srv'])
    with pytest.raises(HostprepError, match='carries ext4, not xfs; refusing to reformat it'):
        tp.plan_present(p, state, [], None, thin_fs='ext4')


def test_profile_compared_as_settings():
    wanted = tp.profile_text(80, 20)
    other_layout = 'activation {\n  thin_pool_autoextend_percent = 20\n  thin_pool_autoextend_threshold = 80 # x\n}\n'
    assert tp.profile_values(wanted) == tp.profile_values(other_layout)
    assert tp.profile_values(tp.profile_text(90, 20)) != tp.profile_values(wanted)
    assert tp.profile_values(None) is None


def test_min_vg_extents():
    p = tp.check_params(params())
    assert tp.min_vg_extents(p, 4 * MIB, has_spare=False) == 100
    p = tp.check_params(params(data_percent=50, metadata_percent=10))
    assert tp.min_vg_extents(p, 4 * MIB, has_spare=False) == 10


# ---- rollback -------------------------------------------------------------------

class FailAt:
    def __init__(self, fail_on: str, stderr: str) -> None:
        self.fail_on = fail_on
        self.stderr = stderr
        self.calls = []

    def __call__(self, args, check_rc=True):
        self.calls.append(list(args))
        if args[0] == self.fail_on and check_rc:
            raise HostprepError('%s failed with exit status 3: %s' % (args[0], self.stderr.strip()),
                                rc=3, stdout='', stderr=self.stderr)
        return 0, '', ''


def test_apply_rolls_back_in_reverse_when_lvcreate_fails():
    """lvcreate's real error on a kernel without device-mapper (recorded here)."""
    err = fixture('host_lvcreate_no_dm_error.txt').split('\n', 1)[1]
    p = tp.check_params(params())
    plan = tp.plan_present(p, host_state(pvs=None), [blank_device()], None)
    runner = FailAt('lvcreate', err)
    files = {}

    def write(path, content):
        files[path] = content
    with pytest.raises(HostprepError) as exc:
        tp.apply(runner, None, plan['steps'], write)
    assert 'could not create data LV docker/thinpool' in exc.value.msg
    assert 'rolled back the 3 change(s)' in exc.value.msg
    assert runner.calls[-2:] == [['vgremove', '-y', 'docker'], ['pvremove', '-y', '/dev/vdb']]
    assert files['/etc/lvm/profile/docker-thinpool.profile'] is None  # restored to "absent"
    assert exc.value.details['stderr'] == err


def test_apply_after_lvconvert_undoes_the_pool_not_its_parts():
    p = tp.check_params(params())
    plan = tp.plan_present(p, host_state(pvs=None), [blank_device()], None)
    runner = FailAt('lvchange', 'boom')
    with pytest.raises(HostprepError):
        tp.apply(runner, None, plan['steps'], lambda path, content: None)
    undo = runner.calls[runner.calls.index(['lvchange', '--metadataprofile', 'docker-thinpool', 'docker/thinpool']) + 1:]
    assert undo == [['lvremove', '-y', 'docker/thinpool'], ['vgremove', '-y', 'docker'], ['pvremove', '-y', '/dev/vdb']]


def test_dmsetup_thin_table():
    text = 'docker-254:0-1234-abc: 0 20971520 thin 254:3 5\nhpdocker-data: 0 2097152 thin 254:3 1\n'
    rows = tp.parse_dmsetup_thin_table(text)
    assert [(r['name'], r['pool']) for r in rows] == [('docker-254:0-1234-abc', '254:3'), ('hpdocker-data', '254:3')]
    assert tp.parse_dmsetup_thin_table('No devices found\n') == []
