# SPDX-License-Identifier: GPL-3.0-or-later
"""What a rollback removes of the storage a change created, with ownership proof (pure plan_created).

Signatures are what ``wipefs -J`` printed on this host (tests/unit/fixtures/btrfs, tests/unit/fixtures/lvm);
the VG is the recorded ``vgs`` report of the VM lab's thin pool, its LVs the recorded ``lvs`` rows of that
pool with LV UUIDs added (the recording did not ask for lv_uuid)."""

from __future__ import annotations

import os

from ansible_collections.hostprep.container_host.plugins.module_utils import _blockdev, _journal, _lvm

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures')
DEV = '/dev/loop7'


def text(*parts: str) -> str:
    with open(os.path.join(FIXTURES, *parts), encoding='utf-8') as handle:
        return handle.read()


def sigs(*parts: str) -> list[dict]:
    return _journal.signatures_of(_blockdev.parse_wipefs(text(*parts)))


BLANK = sigs('btrfs', 'wipefs_empty.json')
BTRFS = sigs('btrfs', 'wipefs_btrfs.json')
EXT4 = sigs('btrfs', 'wipefs_ext4.json')
PV = sigs('lvm', 'host_wipefs_pv.json')


def pool_vg(with_thin: bool = True) -> dict:
    vgs = _lvm.parse_report(text('lvm', 'vm_docker_pool_vgs.json'), 'vg')
    lvs = _lvm.parse_report(text('lvm', 'vm_docker_pool_lvs.json'), 'lv')
    for number, row in enumerate(lvs):
        row['lv_uuid'] = 'LVUUID-%d' % number
    if with_thin:
        lvs.append({'lv_name': 'dockerdata', 'lv_uuid': 'LVUUID-thin', 'segtype': 'thin', 'pool_lv': 'thinpool'})
    return _journal.vg_state(vgs, lvs)


def storage(devices: dict, vg=None) -> dict:
    return {'devices': devices, 'vg': vg}


def test_recorded_signatures_and_vg():
    assert BLANK == [] and BTRFS[0]['type'] == 'btrfs' and BTRFS[0]['uuid']
    assert PV == [{'type': 'LVM2_member', 'uuid': 'RsU5tH-j6ni-pRFy-icUn-uHgj-t8Jp-ZhQILZ'}]
    vg = pool_vg()
    assert vg['name'] == 'docker' and vg['uuid'] == 'EmfVJs-He70-V13O-2FfS-j31R-wZZi-tAaWBy'
    # hidden LVs ([lvol0_pmspare], [thinpool_tdata], [thinpool_tmeta]) go with their pool and VG
    assert [lv['name'] for lv in vg['lvs']] == ['thinpool', 'dockerdata']
    assert _journal.vg_state([], []) is None


def test_btrfs_made_on_a_blank_device_is_wiped():
    plan = _journal.plan_created(storage({DEV: BLANK}), storage({DEV: BTRFS}), storage({DEV: BTRFS}))
    assert [step['argv'] for step in plan['remove']] == [['wipefs', '-a', DEV]]
    assert 'which was blank before this change' in plan['remove'][0]['words'] and plan['left'] == []


def test_nothing_new_nothing_done():
    assert _journal.plan_created(storage({DEV: EXT4}), storage({DEV: EXT4}), storage({DEV: EXT4})) == \
        {'remove': [], 'left': []}
    # the device went away (wipefs failed): nothing to wipe
    assert _journal.plan_created(storage({DEV: BLANK}), storage({DEV: BTRFS}), storage({DEV: None})) == \
        {'remove': [], 'left': []}


def test_btrfs_over_an_old_filesystem_is_named_not_wiped():
    plan = _journal.plan_created(storage({DEV: EXT4}), storage({DEV: BTRFS}), storage({DEV: BTRFS}))
    assert plan['remove'] == []
    assert 'made by this change over ext4, which cannot be brought back' in plan['left'][0]


def test_a_uuid_other_than_the_noted_one_is_left():
    other = [dict(BTRFS[0], uuid='00000000-1111-2222-3333-444444444444')]
    plan = _journal.plan_created(storage({DEV: BLANK}), storage({DEV: BTRFS}), storage({DEV: other}))
    assert plan['remove'] == [] and 'is not what the change noted' in plan['left'][0]


def test_an_interrupted_change_that_never_noted_its_storage_proves_nothing():
    plan = _journal.plan_created(storage({DEV: BLANK}), None, storage({DEV: BTRFS}))
    assert plan['remove'] == [] and 'did not note as its own' in plan['left'][0]


def test_thin_pool_vg_and_pv_made_by_the_change_go_in_order():
    vg = pool_vg()
    plan = _journal.plan_created(storage({DEV: BLANK}), storage({DEV: PV}, vg), storage({DEV: PV}, vg))
    assert [step['argv'] for step in plan['remove']] == [
        ['lvremove', '-y', 'docker/dockerdata'], ['lvremove', '-y', 'docker/thinpool'],
        ['vgremove', '-y', 'docker'], ['pvremove', '-y', DEV]]
    assert plan['left'] == []


def test_lvs_of_others_keep_the_vg_and_its_pv():
    noted = pool_vg(with_thin=False)
    now = pool_vg()  # someone created dockerdata after the change noted its storage
    plan = _journal.plan_created(storage({DEV: BLANK}), storage({DEV: PV}, noted), storage({DEV: PV}, now))
    assert [step['argv'] for step in plan['remove']] == [['lvremove', '-y', 'docker/thinpool']]
    assert any('holds LVs it did not make (dockerdata)' in words for words in plan['left'])
    assert any('a PV of a VG that stays' in words for words in plan['left'])


def test_an_existing_vg_keeps_what_it_had():
    before = pool_vg(with_thin=False)
    after = pool_vg()
    plan = _journal.plan_created(storage({DEV: PV}, before), storage({DEV: PV}, after), storage({DEV: PV}, after))
    assert [step['argv'] for step in plan['remove']] == [['lvremove', '-y', 'docker/dockerdata']]
    assert plan['left'] == []


def test_a_vg_replaced_since_the_note_is_not_touched():
    after = pool_vg()
    now = dict(after, uuid='another-vg-uuid')
    plan = _journal.plan_created(storage({DEV: BLANK}), storage({DEV: PV}, after), storage({DEV: PV}, now))
    assert plan['remove'] == []
    assert any('this change did not note it as its own' in words for words in plan['left'])


class Changes:
    def __init__(self):
        self.undone = []

    def restored(self, what):
        self.undone.append(what)


def test_a_device_busy_for_a_moment_is_tried_again_and_a_failure_names_the_rest():
    answers = [(1, '', 'wipefs: error: /dev/loop7: probing initialization failed: Device or resource busy'), (0, '', '')]
    calls = []

    def runner(argv, check_rc=True):
        calls.append(argv)
        return answers.pop(0) if answers else (5, '', 'Cannot remove: in use')

    plan = _journal.plan_created(storage({DEV: BLANK, '/dev/loop8': BLANK, '/dev/loop9': BLANK}),
                                 storage({DEV: BTRFS, '/dev/loop8': PV, '/dev/loop9': PV}),
                                 storage({DEV: BTRFS, '/dev/loop8': PV, '/dev/loop9': PV}))
    changes = Changes()
    left = _journal.remove_created(runner, plan, changes, sleep=lambda seconds: None)
    assert changes.undone == ['wiped btrfs (UUID %s) from %s, which was blank before this change' % (BTRFS[0]['uuid'], DEV)]
    pv = 'LVM2_member (UUID %s)' % PV[0]['uuid']
    assert left == ['%s from /dev/loop8, which was blank before this change (pvremove -y /dev/loop8: failed, Cannot remove: '
                    'in use; run it by hand)' % pv,
                    '%s from /dev/loop9, which was blank before this change (pvremove -y /dev/loop9: not tried; run it by '
                    'hand)' % pv]
    assert calls == [['wipefs', '-a', DEV], ['wipefs', '-a', DEV], ['pvremove', '-y', '/dev/loop8']]
