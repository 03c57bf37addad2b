# SPDX-License-Identifier: GPL-3.0-or-later
"""Device guards of btrfs_data_root and lvm_thinpool, for real on loop devices.

A device in use is refused by both modules before force/wipe_signatures is
even considered, naming the use (plugins/module_utils/_blockdev.py). The uses
are made for real here:

* a loop device with a GPT (losetup -P, sfdisk), its first partition ext4
  mounted read-only (read-only: a mounted ext4 writes to its own blocks,
  which would spoil the fingerprint), its second partition swap (swapon);
* a device held open by a sleeping shell (exec 3<>DEV) and one opened with
  O_EXCL by a python process;
* an LVM PV in no VG and one in a VG (pvcreate and vgcreate work without
  device-mapper), and a partition that is a PV;
* an md v1.2 superblock (linux_raid_member; this kernel has no md driver
  and no mdadm, so the superblock is written the way mdadm writes it, and
  blkid and wipefs recognise it);
* a filesystem mounted in another mount namespace (unshare -m): findmnt here
  does not show it, the kernel's refusal of an exclusive open does.

Each refusal is checked with a fingerprint of its devices (sha256 of the
first MiB and blkid of the device and each partition, their mounts, swap and
LVM state) and of its fstab and directories, taken before and after.

Then the partial-change cases of btrfs_data_root and lvm_thinpool, made to
fail for real: a mount option btrfs rejects (after mkfs, and on an existing
btrfs), fstab in an immutable directory (chattr +i on a loop-mounted ext4),
an LVM profile directory that is immutable; and a data root under a
symlinked parent, which must succeed and be idempotent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
import uuid

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _blockdev
from ansible_collections.hostprep.container_host.plugins.module_utils import _mounts
from ansible_collections.hostprep.container_host.plugins.module_utils import _thinpool as tp
from ansible_collections.hostprep.container_host.plugins.module_utils._common import Changes, HostprepError

from tests.lab import hoststate
from conftest import require
from tests.lab.dockerd import unmount_all
from test_lvm_thinpool import host_run, sh

BTRFS = 'hostprep.container_host.btrfs_data_root'
LVM = 'hostprep.container_host.lvm_thinpool'
PREFIX = 'hpdg%s' % uuid.uuid4().hex[:4]
MIB = 1024 * 1024
FSTAB = ('# /etc/fstab of a test\n'
         'UUID=0a1b2c3d-0000-4000-8000-000000000001 /               ext4    errors=remount-ro 0       1\n'
         'tmpfs\t/run/hp\\040space\ttmpfs\tdefaults,size=1m\t0\t0\n')


class Devices:
    """Loop devices, mounts, swaps, processes, VGs and immutable directories
    of this module's tests; everything is undone in cleanup()."""

    def __init__(self, workdir: str) -> None:
        self.dir = workdir
        self.loops: list[str] = []
        self.mounts: list[str] = []
        self.swaps: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.vgs: list[str] = []
        self.pvs: list[str] = []
        self.immutable: list[str] = []

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def loop(self, size_mb: int, partitions: str | None = None, prepare=None) -> str:
        image = self.path('%s-%s.img' % (PREFIX, uuid.uuid4().hex[:6]))
        with open(image, 'wb') as handle:
            handle.truncate(size_mb * MIB)
        if prepare:
            prepare(image)
        dev = sh(['losetup', '--find', '--show'] + (['-P'] if partitions else []) + [image]).stdout.strip()
        self.loops.append(dev)
        if partitions:
            sh(['sfdisk', '-q', dev], data=partitions)
            count = partitions.count('\n') - 1
            for dummy in range(50):
                if all(os.path.exists('%sp%d' % (dev, i)) for i in range(1, count + 1)):
                    break
                sh(['partx', '-u', dev], check=False)
                time.sleep(0.1)
            require(all(os.path.exists('%sp%d' % (dev, i)) for i in range(1, count + 1)),
                    'partition nodes of %s (partx -u, devtmpfs)' % dev)
        return dev

    def mount(self, source: str, options: str | None = None, fstype: str | None = None) -> str:
        target = self.path('mnt-%s' % uuid.uuid4().hex[:6])
        os.mkdir(target)
        sh(['mount'] + (['-t', fstype] if fstype else []) + (['-o', options] if options else []) + [source, target])
        self.mounts.append(target)
        return target

    def swapon(self, dev: str) -> None:
        sh(['mkswap', '-q', dev])
        sh(['swapon', dev])
        self.swaps.append(dev)

    def hold(self, argv: list[str], ready: str | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        if ready:
            line = proc.stdout.readline()
            assert line.strip() == ready, (line, proc.stderr.read() if proc.poll() is not None else '')
        return proc

    def pv(self, dev: str, vg: str | None = None) -> None:
        sh(['pvcreate', '-q', '-y', dev])
        self.pvs.append(dev)
        if vg:
            sh(['vgcreate', '-q', vg, dev])
            self.vgs.append(vg)

    def chattr_immutable(self, path: str) -> None:
        sh(['chattr', '+i', path])
        self.immutable.append(path)

    def cleanup(self) -> None:
        for path in self.immutable:
            sh(['chattr', '-i', path], check=False)
        for proc in self.procs:
            proc.kill()
            proc.wait()
        for dev in self.swaps:
            sh(['swapoff', dev], check=False)
        for target in reversed(self.mounts):
            sh(['umount', target], check=False)
        unmount_all(self.dir, include_roots=False)
        for vg in self.vgs:
            sh(['vgremove', '-q', '-y', vg], check=False)
        for dev in self.pvs:
            sh(['pvremove', '-q', '-y', dev], check=False)
        for dev in self.loops:
            sh(['losetup', '-d', dev], check=False)


@pytest.fixture(scope='module')
def devs():
    for tool in ('losetup', 'sfdisk', 'partx', 'mkswap', 'swapon', 'swapoff', 'pvcreate', 'vgcreate', 'unshare',
                 'chattr', 'mkfs.ext4', 'mkfs.btrfs', 'blkid', 'wipefs', 'lsblk', 'findmnt'):
        require(shutil.which(tool) is not None, tool)
    workdir = tempfile.mkdtemp(prefix=PREFIX + '-')
    state = Devices(workdir)
    try:
        yield state
    finally:
        state.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


# ---- fingerprints ----------------------------------------------------------------------

def partitions_of(dev: str) -> list[str]:
    base = os.path.basename(os.path.realpath(dev))
    sysdir = '/sys/class/block/%s' % base
    return ['/dev/' + name for name in sorted(os.listdir(sysdir))
            if name.startswith(base) and os.path.exists(os.path.join(sysdir, name, 'partition'))]


def device_print(dev: str) -> dict:
    """The device and its partitions: sha256 of the first MiB, blkid, the
    mounts of their device numbers, swap and LVM's view."""
    state: dict = {}
    paths = [dev] + partitions_of(dev)
    numbers = set()
    for path in paths:
        with open(path, 'rb') as handle:
            state['%s sha256 of the first MiB' % path] = hashlib.sha256(handle.read(MIB)).hexdigest()
        proc = sh(['blkid', '-p', '-o', 'export', path], check=False)
        state['%s blkid' % path] = (proc.returncode, proc.stdout)
        info = os.stat(path)
        numbers.add('%d:%d' % (os.major(info.st_rdev), os.minor(info.st_rdev)))
    with open('/proc/self/mountinfo', encoding='utf-8') as handle:
        state['mounts'] = sorted(line.split()[4] for line in handle if line.split()[2] in numbers)
    with open('/proc/swaps', encoding='utf-8') as handle:
        state['swaps'] = sorted(line.split()[0] for line in handle if line.split()[0] in paths)
    pvs = json.loads(sh(['pvs', '--reportformat', 'json', '-o', 'pv_name,vg_name,pv_uuid']).stdout)
    state['pvs'] = sorted(str(row) for row in pvs['report'][0]['pv'] if row['pv_name'] in paths)
    return state


def case_dir(devs: Devices, name: str) -> dict[str, str]:
    base = devs.path('case-%s' % name)
    os.makedirs(base)
    fstab = os.path.join(base, 'fstab')
    with open(fstab, 'w', encoding='utf-8') as handle:
        handle.write(FSTAB)
    return {'base': base, 'fstab': fstab, 'mount_point': os.path.join(base, 'mnt'),
            'data_root': os.path.join(base, 'docker'), 'docker_host': 'unix://%s/none.sock' % base}


def btrfs_args(case: dict[str, str], device: str, **extra) -> dict:
    args = {'device': device, 'mount_point': case['mount_point'], 'data_root': case['data_root'],
            'fstab': case['fstab'], 'docker_host': case['docker_host']}
    args.update(extra)
    return args


def state_of(case: dict[str, str], devices: list[str]) -> dict:
    return {'files': hoststate.files(case['base']), 'mounts': hoststate.mounts(case['base']),
            'devices': {dev: device_print(dev) for dev in devices}}


def assert_no_traceback(result: dict) -> None:
    assert 'Traceback' not in json.dumps({k: result.get(k) for k in ('exception', 'module_stderr', 'msg')}), result
    assert 'module_stderr' not in result, result


# ---- the bad-input table: devices in use, refused even with force --------------------------

@pytest.fixture(scope='module')
def in_use(devs):
    """Every use, made for real; returns name -> device path (and the pids)."""
    made: dict = {}
    disk = devs.loop(300, partitions='label: gpt\n,100M\n,\n')
    sh(['mkfs.ext4', '-q', '-F', disk + 'p1'])
    made['mounted_at'] = devs.mount(disk + 'p1', options='ro')
    devs.swapon(disk + 'p2')
    made['disk'] = disk

    held = devs.loop(200)
    made['held_pid'] = devs.hold(['bash', '-c', 'exec 3<>%s; echo ready; exec sleep 900' % held], 'ready').pid
    made['held'] = held

    excl = devs.loop(200)
    made['excl_pid'] = devs.hold([shutil.which('python3') or 'python3', '-c',
                                  'import os, sys, time\nfd = os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL)\n'
                                  'print("ready", flush=True)\ntime.sleep(900)', excl], 'ready').pid
    made['excl'] = excl

    made['pv_orphan'] = devs.loop(200)
    devs.pv(made['pv_orphan'])
    made['pv_vg'] = devs.loop(200)
    made['other_vg'] = PREFIX + 'other'
    devs.pv(made['pv_vg'], made['other_vg'])

    made['md'] = devs.loop(200, prepare=write_md_superblock)

    nsdev = devs.loop(200)
    sh(['mkfs.ext4', '-q', '-F', nsdev])
    nsdir = devs.path('ns-mnt')
    os.mkdir(nsdir)
    devs.hold(['unshare', '-m', '--propagation', 'private', 'sh', '-c',
               'mount -o ro %s %s && echo ready && exec sleep 900' % (nsdev, nsdir)], 'ready')
    made['other_ns'] = nsdev

    part_pv = devs.loop(300, partitions='label: gpt\n,150M\n,\n')
    devs.pv(part_pv + 'p1')
    made['part_pv'] = part_pv
    return made


def md_superblock(size_sectors: int) -> bytes:
    """An md v1.2 superblock (struct mdp_superblock_1 of linux/raid/md_p.h) of
    a two-disk RAID1, with the checksum md and libblkid verify."""
    sb = bytearray(256 + 2 * 2)
    struct.pack_into('<IIII', sb, 0, 0xa92b4efc, 1, 0, 0)           # magic, major_version, feature_map
    sb[16:32] = uuid.uuid4().bytes                                   # set_uuid
    sb[32:64] = b'hostprep:guards'.ljust(32, b'\0')                  # set_name
    struct.pack_into('<QIIQII', sb, 64, int(time.time()), 1, 0, size_sectors - 2048, 1024, 2)
    struct.pack_into('<QQQ', sb, 128, 2048, size_sectors - 2048, 8)  # data_offset, data_size, super_offset
    sb[168:184] = uuid.uuid4().bytes                                 # device_uuid
    struct.pack_into('<I', sb, 220, 2)                               # max_dev
    struct.pack_into('<HH', sb, 256, 0, 1)                           # dev_roles
    csum = sum(struct.unpack_from('<I', sb, i)[0] for i in range(0, len(sb), 4) if i != 216)
    struct.pack_into('<I', sb, 216, ((csum & 0xffffffff) + (csum >> 32)) & 0xffffffff)
    return bytes(sb)


def write_md_superblock(image: str) -> None:
    with open(image, 'r+b') as handle:
        handle.seek(4096)
        handle.write(md_superblock(os.path.getsize(image) // 512))


# (name, module, args from the made uses, message fragments, devices to fingerprint, also in check mode)
TABLE = [
    ('btrfs: whole disk, a partition mounted, another swap', BTRFS, lambda u: {'device': u['disk'], 'force': True},
     lambda u: ['device %s is in use: mounted (%sp1 on %s); used as swap (%sp2)'
                % (u['disk'], u['disk'], u['mounted_at'], u['disk']), 'force=true does not override this'],
     lambda u: [u['disk']], True),
    ('btrfs: the mounted partition itself', BTRFS, lambda u: {'device': u['disk'] + 'p1', 'force': True},
     lambda u: ['device %sp1 is in use: mounted (%sp1 on %s)' % (u['disk'], u['disk'], u['mounted_at'])],
     lambda u: [u['disk']], False),
    ('btrfs: the swap partition', BTRFS, lambda u: {'device': u['disk'] + 'p2', 'force': True},
     lambda u: ['device %sp2 is in use: used as swap (%sp2)' % (u['disk'], u['disk'])], lambda u: [u['disk']], False),
    ('btrfs: held open by a sleeping shell', BTRFS, lambda u: {'device': u['held'], 'force': True},
     lambda u: ['device %s is in use: open by a process: sleep (pid %d) has %s open' % (u['held'], u['held_pid'], u['held'])],
     lambda u: [u['held']], True),
    ('btrfs: held open, blank, without force', BTRFS, lambda u: {'device': u['held']},
     lambda u: ['open by a process: sleep (pid %d)' % u['held_pid']], lambda u: [u['held']], False),
    ('btrfs: opened with O_EXCL by python', BTRFS, lambda u: {'device': u['excl'], 'force': True},
     lambda u: ['device %s is in use: open by a process: python' % u['excl'], '(pid %d) has %s open' % (u['excl_pid'], u['excl'])],
     lambda u: [u['excl']], False),
    ('btrfs: an LVM PV in no VG', BTRFS, lambda u: {'device': u['pv_orphan'], 'force': True},
     lambda u: ['%s is an LVM physical volume (in no volume group; pvremove %s)' % (u['pv_orphan'], u['pv_orphan'])],
     lambda u: [u['pv_orphan']], False),
    ('btrfs: an LVM PV of another VG', BTRFS, lambda u: {'device': u['pv_vg'], 'force': True},
     lambda u: ['%s is an LVM physical volume of volume group %s (vgreduce %s' % (u['pv_vg'], u['other_vg'], u['other_vg'])],
     lambda u: [u['pv_vg']], False),
    ('btrfs: a partition of the disk is a PV', BTRFS, lambda u: {'device': u['part_pv'], 'force': True},
     lambda u: ['device %s is in use: %sp1 is an LVM physical volume' % (u['part_pv'], u['part_pv'])],
     lambda u: [u['part_pv']], False),
    ('btrfs: an md RAID member', BTRFS, lambda u: {'device': u['md'], 'force': True},
     lambda u: ['device %s is in use: %s is an md/RAID member (linux_raid_member)' % (u['md'], u['md'])],
     lambda u: [u['md']], False),
    ('btrfs: mounted in another mount namespace', BTRFS, lambda u: {'device': u['other_ns'], 'force': True},
     lambda u: ['device %s is in use: claimed by the kernel or another program' % u['other_ns'],
                'mounted in another mount namespace'], lambda u: [u['other_ns']], False),
    ('lvm: whole disk, a partition mounted, another swap', LVM, lambda u: {'devices': [u['disk']], 'wipe_signatures': True},
     lambda u: ['device %s is in use: mounted (%sp1 on %s); used as swap (%sp2)'
                % (u['disk'], u['disk'], u['mounted_at'], u['disk']), 'wipe_signatures=true does not override this'],
     lambda u: [u['disk']], True),
    ('lvm: held open by a sleeping shell', LVM, lambda u: {'devices': [u['held']], 'wipe_signatures': True},
     lambda u: ['open by a process: sleep (pid %d) has %s open' % (u['held_pid'], u['held'])], lambda u: [u['held']], False),
    ('lvm: opened with O_EXCL by python', LVM, lambda u: {'devices': [u['excl']], 'wipe_signatures': True},
     lambda u: ['open by a process: python'], lambda u: [u['excl']], False),
    ('lvm: an md RAID member', LVM, lambda u: {'devices': [u['md']], 'wipe_signatures': True},
     lambda u: ['%s is an md/RAID member (linux_raid_member)' % u['md']], lambda u: [u['md']], False),
    ('lvm: mounted in another mount namespace', LVM, lambda u: {'devices': [u['other_ns']], 'wipe_signatures': True},
     lambda u: ['device %s is in use: claimed by the kernel' % u['other_ns']], lambda u: [u['other_ns']], False),
    ('lvm: the swap partition', LVM, lambda u: {'devices': [u['disk'] + 'p2'], 'wipe_signatures': True},
     lambda u: ['device %sp2 is in use: used as swap (%sp2)' % (u['disk'], u['disk'])], lambda u: [u['disk']], False),
]


@pytest.fixture(scope='module')
def table_results(ansible, devs, in_use):
    """All cases of the table, one ansible-playbook run per module; each
    case's devices and files fingerprinted before and after."""
    cases, before, tasks = {}, {}, {BTRFS: [], LVM: []}
    profile_dir = devs.path('profiles')
    for name, module, args, dummy_fragments, watched, check_too in TABLE:
        case = case_dir(devs, 'table-%d' % len(cases))
        full = dict(args(in_use))
        if module == BTRFS:
            full = btrfs_args(case, **full)
        else:
            full.update(vg=PREFIX + 'vg', profile_dir=profile_dir)
        cases[name] = case
        before[name] = state_of(case, watched(in_use))
        tasks[module].append((name, full, False))
        if check_too:
            tasks[module].append((name + ' (check mode)', full, True))
    before_profiles = hoststate.files(profile_dir)
    results = {}
    for module, module_tasks in tasks.items():
        results.update(ansible.module_tasks(module, module_tasks))
    after = {name: state_of(cases[name], watched(in_use)) for name, dummy, dummy_args, dummy_f, watched, dummy_c in TABLE}
    hoststate.assert_unchanged(before_profiles, hoststate.files(profile_dir), 'the profile directory')
    return results, before, after


@pytest.mark.parametrize('name, module, args, fragments, watched, check_too', TABLE, ids=[row[0] for row in TABLE])
def test_device_in_use_is_refused_and_untouched(table_results, in_use, name, module, args, fragments, watched, check_too):
    results, before, after = table_results
    for task in [name] + ([name + ' (check mode)'] if check_too else []):
        result = results[task]
        assert result['failed'], (task, result)
        assert not result.get('changed'), (task, result)
        assert_no_traceback(result)
        for fragment in fragments(in_use):
            assert fragment in result['msg'], (task, fragment, result['msg'])
    hoststate.assert_unchanged(before[name], after[name], name)


def test_the_uses_are_real(in_use):
    """The table's setup is what it claims: the kernel refuses an exclusive
    open of every device it calls claimed, and blkid sees the signatures."""
    for key in ('disk', 'excl', 'other_ns'):
        assert _blockdev.claimed_exclusively(in_use[key]), key
    assert not _blockdev.claimed_exclusively(in_use['held'])
    assert 'TYPE=linux_raid_member' in sh(['blkid', '-p', '-o', 'export', in_use['md']]).stdout
    assert 'TYPE=LVM2_member' in sh(['blkid', '-p', '-o', 'export', in_use['part_pv'] + 'p1']).stdout
    assert in_use['other_ns'] not in sh(['findmnt', '-J', '-l', '-o', 'SOURCE']).stdout


# ---- btrfs_data_root: honest results after a partial change ---------------------------------

def test_rejected_mount_option_after_mkfs_restores_fstab_and_reports_changed(ansible, devs):
    case = case_dir(devs, 'badopt-new')
    dev = devs.loop(300)
    before = {'files': hoststate.files(case['base']), 'mounts': hoststate.mounts(case['base'])}
    result = ansible.module(BTRFS, btrfs_args(case, dev, mount_options=['hp_no_such_option']))
    assert result['failed'] and result['changed'], result
    assert_no_traceback(result)
    assert result['changes_made'] == ['made a btrfs filesystem on %s (this cannot be undone)' % dev,
                                      'created directory %s' % case['mount_point']]
    assert result['changes_restored'] == ['removed directory %s' % case['mount_point']]
    assert 'mount failed' in result['msg'] or 'mount:' in result['msg'], result['msg']
    assert ('Changed before the failure: made a btrfs filesystem on %s (this cannot be undone); created directory %s. '
            'Restored: removed directory %s.' % (dev, case['mount_point'], case['mount_point'])) in result['msg']
    hoststate.assert_unchanged(before, {'files': hoststate.files(case['base']), 'mounts': hoststate.mounts(case['base'])})
    assert 'TYPE=btrfs' in sh(['blkid', '-p', '-o', 'export', dev]).stdout  # what changed, as said


def test_rejected_mount_option_on_an_existing_btrfs_changes_nothing(ansible, devs):
    case = case_dir(devs, 'badopt-existing')
    dev = devs.loop(300)
    sh(['mkfs.btrfs', '-q', dev])
    before = state_of(case, [dev])
    result = ansible.module(BTRFS, btrfs_args(case, dev, mount_options=['hp_no_such_option']))
    assert result['failed'] and not result['changed'], result
    assert_no_traceback(result)
    assert result['changes_restored'] == ['removed directory %s' % case['mount_point']]
    assert 'The host is as it was before this run.' in result['msg']
    hoststate.assert_unchanged(before, state_of(case, [dev]))


@contextlib.contextmanager
def immutable_dir(devs: Devices, name: str):
    """A directory that refuses new entries and renames (chattr +i on a
    loop-mounted ext4; tmpfs may not support the flag)."""
    dev = devs.loop(64)
    sh(['mkfs.ext4', '-q', '-F', dev])
    mnt = devs.mount(dev)
    path = os.path.join(mnt, name)
    os.mkdir(path)
    yield path
    sh(['chattr', '-i', path], check=False)


def test_fstab_in_an_immutable_directory_unmounts_and_reports_changed(ansible, devs):
    case = case_dir(devs, 'fstab-immutable')
    dev = devs.loop(300)
    with immutable_dir(devs, 'etc') as etc:
        fstab = os.path.join(etc, 'fstab')
        with open(fstab, 'w', encoding='utf-8') as handle:
            handle.write(FSTAB)
        devs.chattr_immutable(etc)
        before = {'files': hoststate.files(case['base'], etc), 'mounts': hoststate.mounts(case['base'])}
        result = ansible.module(BTRFS, btrfs_args(case, dev, fstab=fstab))
        sh(['chattr', '-i', etc])
        assert result['failed'] and result['changed'], result
        assert_no_traceback(result)
        assert 'Operation not permitted' in result['msg'] or 'Permission denied' in result['msg'], result['msg']
        assert result['changes_made'] == [
            'made a btrfs filesystem on %s (this cannot be undone)' % dev, 'created directory %s' % case['mount_point'],
            'mounted %s on %s' % (dev, case['mount_point']), 'created directory %s' % case['data_root'],
            'bind-mounted %s onto %s' % (case['mount_point'], case['data_root'])]
        assert result['changes_restored'] == [
            'unmounted %s' % case['data_root'], 'removed directory %s' % case['data_root'],
            'unmounted %s' % case['mount_point'], 'removed directory %s' % case['mount_point']]
        hoststate.assert_unchanged(before, {'files': hoststate.files(case['base'], etc),
                                            'mounts': hoststate.mounts(case['base'])})


def test_data_root_under_a_symlinked_parent_succeeds_and_is_idempotent(ansible, devs):
    case = case_dir(devs, 'symlink')
    real = os.path.join(case['base'], 'real')
    os.makedirs(os.path.join(real, 'lib'))
    os.symlink(real, os.path.join(case['base'], 'link'))
    dev = devs.loop(300)
    args = btrfs_args(case, dev, mount_point=os.path.join(case['base'], 'link', 'mnt'),
                      data_root=os.path.join(case['base'], 'link', 'lib', 'docker'))
    results = ansible.module_tasks(BTRFS, [('check', args, True), ('apply', args, False), ('again', args, False)])
    for name in ('check', 'apply'):
        assert not results[name]['failed'] and results[name]['changed'], results[name]
    again = results['again']
    assert not again['failed'] and not again['changed'] and not again['fstab_changed'], again
    assert again['data_root'] == os.path.join(real, 'lib', 'docker')
    assert again['mount_point'] == os.path.join(real, 'mnt')
    with open(case['fstab'], encoding='utf-8') as handle:
        fstab = handle.read()
    assert fstab.startswith(FSTAB)
    assert fstab[len(FSTAB):].splitlines()[1] == ('%s %s none bind,x-systemd.requires-mounts-for=%s 0 0'
                                                  % (os.path.join(real, 'mnt'), os.path.join(real, 'lib', 'docker'),
                                                      os.path.join(real, 'mnt')))
    assert [m[0] for m in hoststate.mounts(case['base'])] == [os.path.join(real, 'lib', 'docker'),
                                                              os.path.join(real, 'mnt')]
    unmount_all(case['base'], include_roots=False)


# ---- lvm_thinpool: the profile write fails --------------------------------------------------

def test_profile_removal_in_an_immutable_directory_reports_the_lvm_changes(ansible, devs):
    """state=absent for real (no device-mapper needed): vgremove and pvremove
    run, removing the profile fails; the task fails with changed=true, naming
    what was removed, and no traceback."""
    dev = devs.loop(200)
    vg = PREFIX + 'abs'
    devs.pv(dev, vg)
    with immutable_dir(devs, 'profile') as profile_dir:
        profile = os.path.join(profile_dir, 'docker-thinpool.profile')
        with open(profile, 'w', encoding='utf-8') as handle:
            handle.write(tp.profile_text(80, 20))
        devs.chattr_immutable(profile_dir)
        result = ansible.module(LVM, {'vg': vg, 'devices': [dev], 'state': 'absent', 'profile_dir': profile_dir})
        sh(['chattr', '-i', profile_dir])
        assert result['failed'] and result['changed'], result
        assert_no_traceback(result)
        assert 'could not remove LVM profile %s: Operation not permitted' % profile in result['msg'], result['msg']
        assert result['changes_made'] == ['remove VG %s' % vg, 'remove PV labels']
        assert result['changes_restored'] == []
        assert 'Changed before the failure: remove VG %s; remove PV labels.' % vg in result['msg']
        assert os.path.exists(profile)
    assert sh(['vgs', vg], check=False).returncode != 0
    assert json.loads(sh(['wipefs', '-J', dev]).stdout or '{"signatures": []}')['signatures'] == []


def test_profile_write_in_an_immutable_directory_rolls_back_pv_and_vg(devs):
    """state=present stops at the device-mapper preflight on this host, so the
    plan runs in-process against real LVM: pvcreate and vgcreate succeed, the
    profile write raises a real EPERM, the rollback removes VG and PV label and
    the Changes record says the host is as it was."""
    dev = devs.loop(500)
    vg = PREFIX + 'pw'
    with immutable_dir(devs, 'profile') as profile_dir:
        devs.chattr_immutable(profile_dir)
        params = tp.check_params(dict(vg=vg, devices=[dev], pool='thinpool', data_percent=None, data_size=None,
                                      metadata_percent=None, metadata_size=None, chunk_size='512K',
                                      profile='docker-thinpool', profile_dir=profile_dir, autoextend_threshold=80,
                                      autoextend_percent=20, thin_volume=None, wipe_signatures=False, state='present'))
        mounts = _mounts.parse_findmnt_list(sh(['findmnt', '-J', '-l', '-o', _mounts.FINDMNT_COLUMNS]).stdout)
        facts = _blockdev.probe(host_run, dev, mounts)
        plan = tp.plan_present(params, tp.read_state(host_run, vg), [facts], None)
        before = device_print(dev)

        def write(path, content):
            with open(path, 'w', encoding='utf-8') as handle:  # the real EPERM of an immutable directory
                handle.write(content or '')
        changes = Changes()
        devs.vgs.append(vg)
        with pytest.raises(HostprepError) as exc:
            tp.apply(host_run, None, plan['steps'], write, changes)
        sh(['chattr', '-i', profile_dir])
    assert ('could not write LVM profile %s/docker-thinpool.profile: Operation not permitted' % profile_dir
            in exc.value.msg), exc.value.msg
    assert 'rolled back the 2 change(s)' in exc.value.msg
    assert changes.done == ['initialize %s as PV' % dev, 'create VG %s' % vg]
    assert changes.undone == ['undid: create VG %s (vgremove -y %s)' % (vg, vg),
                              'undid: initialize %s as PV (pvremove -y %s)' % (dev, dev)]
    assert not changes.changed and changes.fully_restored
    # pvremove clears the PV label but leaves LVM's old metadata text in the
    # first MiB: the bytes differ, the signatures, mounts and LVM's view do not.
    after = device_print(dev)
    for state in (before, after):
        del state['%s sha256 of the first MiB' % dev]
    hoststate.assert_unchanged(before, after)
    assert json.loads(sh(['wipefs', '-J', dev]).stdout or '{"signatures": []}')['signatures'] == []
