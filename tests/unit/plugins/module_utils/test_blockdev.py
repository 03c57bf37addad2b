# SPDX-License-Identifier: GPL-3.0-or-later
"""_blockdev: the parsers and the in-use decision, fed output recorded on
this host (tests/unit/fixtures/blockdev: a loop device with a GPT, its first
partition ext4 and mounted, its second used as swap; tests/unit/fixtures/lvm:
loop devices blank, mounted, ext4, xfs, PV). The probe itself runs for real in
tests/integration/test_guards_devices.py."""

from __future__ import annotations

import os

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _blockdev
from ansible_collections.hostprep.container_host.plugins.module_utils import _mounts

HERE = os.path.dirname(__file__)
FIXTURES = os.path.join(HERE, '..', '..', 'fixtures', 'blockdev')
LVM_FIXTURES = os.path.join(HERE, '..', '..', 'fixtures', 'lvm')
MIB = 1024 * 1024


def fixture(name: str, where: str = FIXTURES) -> str:
    with open(os.path.join(where, name), encoding='utf-8') as handle:
        return handle.read()


NUMBERS = {'/dev/loop0': (7, 0), '/dev/loop0p1': (259, 0), '/dev/loop0p2': (259, 1), '/dev/vda': (254, 0)}


def number(path: str):
    return NUMBERS.get(path)


def fake_sysfs(tmp_path) -> str:
    """/sys/dev/block/7:0 as the kernel shows loop0 with two partitions."""
    base = tmp_path / 'loop0'
    (base / 'holders').mkdir(parents=True)
    for name, dev in (('loop0p1', '259:0'), ('loop0p2', '259:1')):
        (base / name / 'holders').mkdir(parents=True)
        (base / name / 'partition').write_text('1\n')
        (base / name / 'dev').write_text(dev + '\n')
    return str(base)


# ---- parsers ------------------------------------------------------------------------

@pytest.mark.parametrize('name, where, types', [
    ('host_wipefs_blank.json', LVM_FIXTURES, []),
    ('host_wipefs_ext4.json', LVM_FIXTURES, ['ext4']),
    ('host_wipefs_xfs.json', LVM_FIXTURES, ['xfs']),
    ('host_wipefs_pv.json', LVM_FIXTURES, ['LVM2_member']),
    ('host_wipefs_gpt.json', LVM_FIXTURES, ['gpt', 'gpt', 'PMBR']),
    ('wipefs_swap.json', FIXTURES, ['swap']),
    ('wipefs_gpt.json', FIXTURES, ['gpt', 'gpt', 'PMBR']),
])
def test_parse_wipefs(name, where, types):
    assert [s['type'] for s in _blockdev.parse_wipefs(fixture(name, where))] == types


def test_parse_wipefs_empty_output():
    assert _blockdev.parse_wipefs('') == []


def test_parse_swaps_recorded_and_escaped():
    assert _blockdev.parse_swaps(fixture('proc_swaps.txt')) == ['/dev/loop0p2']
    assert _blockdev.parse_swaps('Filename Type\n/swap\\040file file 10 0 -2\n') == ['/swap file']
    assert _blockdev.parse_swaps(None) == []


def test_parse_lsblk_flattens_partitions():
    nodes = _blockdev.parse_lsblk(fixture('lsblk_parts_mounted_swap.json'))
    assert [(n['name'], n['depth'], n['mountpoint']) for n in nodes] == [
        ('/dev/loop0', 0, None), ('/dev/loop0p1', 1, '/tmp/hpdg-exp/m'), ('/dev/loop0p2', 1, '[SWAP]')]


@pytest.mark.parametrize('sig_type, member', [
    ('LVM2_member', True), ('linux_raid_member', True), ('isw_raid_member', True), ('zfs_member', True),
    ('ext4', False), ('gpt', False), (None, False)])
def test_member_signatures(sig_type, member):
    assert _blockdev.is_member_signature(sig_type) is member


# ---- facts from the recorded tables -----------------------------------------------------

def test_partition_mount_and_swap_found_through_sysfs_findmnt_and_swaps(tmp_path):
    """lsblk without mount points (udev never saw them): findmnt's MAJ:MIN of
    the partition and /proc/swaps still find both uses of the whole disk."""
    nodes = [dict(n, mountpoint=None) for n in _blockdev.parse_lsblk(fixture('lsblk_parts_mounted_swap.json'))]
    mounts = _mounts.parse_findmnt_list(fixture('findmnt_list_partition_mounted.json'))
    swaps = _blockdev.parse_swaps(fixture('proc_swaps.txt'))
    facts = _blockdev.device_facts_from('/dev/loop0', (7, 0), nodes, swaps, mounts, fake_sysfs(tmp_path), number)
    assert facts['mounted'] == ['/dev/loop0p1 on /tmp/hpdg-exp/m']
    assert facts['swap'] == ['/dev/loop0p2']
    assert facts['partitions'] == ['loop0p1', 'loop0p2']
    assert facts['partition_rdevs'] == {'/dev/loop0p1': (259, 0), '/dev/loop0p2': (259, 1)}
    assert facts['size'] == 300 * MIB


def test_lsblk_alone_finds_both_uses():
    nodes = _blockdev.parse_lsblk(fixture('lsblk_parts_mounted_swap.json'))
    facts = _blockdev.device_facts_from('/dev/loop0', (7, 0), nodes, [], [], None, number)
    assert facts['mounted'] == ['/dev/loop0p1 on /tmp/hpdg-exp/m'] and facts['swap'] == ['/dev/loop0p2']


def test_btrfs_mount_with_an_anonymous_device_number_is_found_by_its_source():
    """findmnt shows btrfs with MAJ:MIN 0:N: the source's own number counts."""
    mounts = [_mounts.Mount('/srv', '/dev/loop0', 'btrfs', [], '/', '0:45')]
    facts = _blockdev.device_facts_from('/dev/loop0', (7, 0), [], [], mounts, None, number)
    assert facts['mounted'] == ['/dev/loop0 on /srv']


def test_findmnt_alone_finds_the_mount_by_major_minor():
    """A device mounted through another path (a by-id link) that no longer resolves."""
    mounts = [_mounts.Mount('/srv', '/dev/disk/by-id/x', 'ext4', [], '/', '7:9')]
    facts = _blockdev.device_facts_from('/dev/loop9', (7, 9), [], [], mounts, None, number)
    assert facts['mounted'] == ['/dev/disk/by-id/x on /srv']


def test_holders_of_partitions_count(tmp_path):
    sysdir = fake_sysfs(tmp_path)
    (tmp_path / 'loop0' / 'loop0p2' / 'holders' / 'md127').mkdir()
    facts = _blockdev.device_facts_from('/dev/loop0', (7, 0), [], [], [], sysdir, number)
    assert facts['holders'] == ['md127 (on /dev/loop0p2)']


# ---- the decision -----------------------------------------------------------------------

def blank(**kw):
    facts = {'path': '/dev/vdb', 'real': '/dev/vdb', 'rdev': (254, 16), 'signatures': [], 'mounted': [],
             'swap': [], 'holders': [], 'partition_signatures': {}, 'partition_rdevs': {}, 'open_by': [],
             'claimed': False}
    facts.update(kw)
    return facts


PV_OTHER = {'pv_name': '/dev/vdb', 'vg_name': 'other', 'pv_major': 254, 'pv_minor': 16}
PV_ORPHAN = {'pv_name': '/dev/vdb', 'vg_name': '', 'pv_major': 254, 'pv_minor': 16}
PV_SIG = _blockdev.parse_wipefs(fixture('host_wipefs_pv.json', LVM_FIXTURES))


@pytest.mark.parametrize('facts, pvs, own_vg, words', [
    (blank(), None, None, []),
    (blank(signatures=_blockdev.parse_wipefs(fixture('host_wipefs_ext4.json', LVM_FIXTURES))), None, None, []),
    (blank(mounted=['/dev/vdb1 on /srv']), None, None, ['mounted (/dev/vdb1 on /srv)']),
    (blank(swap=['/dev/vdb2']), None, None, ['used as swap (/dev/vdb2)']),
    (blank(holders=['dm-3']), None, None, ['held by dm-3 (device-mapper, md or another layer on top of it)']),
    (blank(signatures=PV_SIG), None, None, ['/dev/vdb is an LVM physical volume (LVM2_member signature; pvremove /dev/vdb)']),
    (blank(signatures=PV_SIG), [], None, ['/dev/vdb is an LVM physical volume (LVM2_member signature, not listed by pvs;'
                                          ' pvremove /dev/vdb)']),
    (blank(signatures=PV_SIG), [PV_OTHER], None,
     ['/dev/vdb is an LVM physical volume of volume group other (vgreduce other /dev/vdb, then pvremove /dev/vdb)']),
    (blank(signatures=PV_SIG), [PV_OTHER], 'docker', ['/dev/vdb is an LVM physical volume of volume group other']),
    (blank(signatures=PV_SIG), [PV_ORPHAN], None, ['/dev/vdb is an LVM physical volume (in no volume group']),
    (blank(signatures=PV_SIG), [PV_ORPHAN], 'docker', []),
    (blank(partition_signatures={'/dev/vdb1': [{'type': 'linux_raid_member'}]},
           partition_rdevs={'/dev/vdb1': (254, 17)}), None, None, ['/dev/vdb1 is an md/RAID member (linux_raid_member)']),
    (blank(open_by=['sleep (pid 9) has /dev/vdb open']), None, None, ['open by a process: sleep (pid 9) has /dev/vdb open']),
    (blank(claimed=True), None, None, ['claimed by the kernel or another program']),
    (blank(claimed=True, mounted=['/dev/vdb on /srv']), None, None, ['mounted (/dev/vdb on /srv)']),
])
def test_uses(facts, pvs, own_vg, words):
    found = _blockdev.uses(facts, pvs, own_vg)
    assert len(found) == len(words), found
    for text, fragment in zip(found, words):
        assert text.startswith(fragment), (text, fragment)


def test_in_use_problem_names_every_use_and_the_option_that_does_not_override():
    msg = _blockdev.in_use_problem(blank(mounted=['/dev/vdb1 on /srv'], swap=['/dev/vdb2']), 'force=true')
    assert msg == ('device /dev/vdb is in use: mounted (/dev/vdb1 on /srv); used as swap (/dev/vdb2); stop that use '
                   'first (force=true does not override this). Nothing was changed')
    assert _blockdev.in_use_problem(blank(), 'force=true') is None
