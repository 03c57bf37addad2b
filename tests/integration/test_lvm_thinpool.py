# SPDX-License-Identifier: GPL-3.0-or-later
"""lvm_thinpool on this host, for real, where no device-mapper is needed.

This kernel has no device-mapper: lvcreate cannot run here (the full layout
runs in the VM lab: tests/integration/vm/lvm_thinpool.yml). What runs here
for real, on loop devices: every refusal, through ansible-playbook, with the
device bytes, signatures and LVM state compared before and after; the
module's own device-mapper preflight (check mode and a real run on a clean
device change nothing, and wipe_signatures erases nothing before it); and
the rollback: pvcreate and vgcreate do work without device-mapper, so the
plan runs against real LVM until lvcreate fails, and the rollback must leave
the device blank again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest
import yaml

from ansible_collections.hostprep.container_host.plugins.module_utils import _blockdev
from ansible_collections.hostprep.container_host.plugins.module_utils import _mounts
from ansible_collections.hostprep.container_host.plugins.module_utils import _thinpool as tp
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError

from conftest import require

ENV = dict(os.environ, LANG='C', LC_ALL='C', LVM_SUPPRESS_FD_WARNINGS='1')
MODULE = 'hostprep.container_host.lvm_thinpool'
PREFIX = 'hplvmt%s' % uuid.uuid4().hex[:4]


def sh(args, check=True, data=None):
    proc = subprocess.run(args, capture_output=True, text=True, env=ENV, input=data, check=False)
    if check and proc.returncode != 0:
        raise AssertionError('%s failed: %s' % (args, proc.stderr))
    return proc


@pytest.fixture(scope='module')
def work():
    for tool in ('pvcreate', 'vgcreate', 'wipefs', 'lsblk', 'findmnt', 'sfdisk', 'losetup', 'mkfs.xfs', 'mkfs.ext4'):
        require(shutil.which(tool) is not None, '%s (apt-get install lvm2 fdisk util-linux xfsprogs)' % tool)
    path = tempfile.mkdtemp(prefix=PREFIX + '-')
    state = {'dir': path, 'loops': [], 'mounts': [], 'vgs': []}
    yield state
    for mnt in state['mounts']:
        sh(['umount', mnt], check=False)
    for vg in state['vgs']:
        sh(['vgremove', '-y', vg], check=False)
    for loop in state['loops']:
        sh(['pvremove', '-y', loop], check=False)
        sh(['losetup', '-d', loop], check=False)
    shutil.rmtree(path, ignore_errors=True)


def loop(work, size_mb, partscan=False):
    image = os.path.join(work['dir'], '%s-%d.img' % (uuid.uuid4().hex[:6], size_mb))
    with open(image, 'wb') as handle:
        handle.truncate(size_mb * 1024 * 1024)
    dev = sh(['losetup', '--find', '--show'] + (['-P'] if partscan else []) + [image]).stdout.strip()
    work['loops'].append(dev)
    return dev, image


def snapshot(devices, image_files=(), profile_dir=None):
    """Everything a refused run must leave as it was."""
    state = {
        'pvs': sh(['pvs', '--reportformat', 'json', '-o', 'pv_name,vg_name']).stdout,
        'vgs': sh(['vgs', '--reportformat', 'json', '-o', 'vg_name,pv_count,lv_count']).stdout,
    }
    for dev in devices:
        state['wipefs ' + dev] = sh(['wipefs', '-J', dev]).stdout if os.path.exists(dev) else None
    for path in image_files:
        with open(path, 'rb') as handle:
            state['sha256 ' + path] = hashlib.sha256(handle.read()).hexdigest()
    if profile_dir:
        state['profiles'] = sorted(os.listdir(profile_dir)) if os.path.isdir(profile_dir) else None
    return state


def run_refused(ansible, args, message, devices=(), images=(), check=False):
    profile_dir = args.setdefault('profile_dir', os.path.join(tempfile.gettempdir(), PREFIX + '-profiles'))
    before = snapshot(devices, images, profile_dir)
    result = ansible.module(MODULE, args, check=check)
    assert result['failed'], result
    assert message in result['msg'], result['msg']
    assert not result['changed']
    assert snapshot(devices, images, profile_dir) == before
    return result


# ---- refusals, each with nothing changed ----------------------------------------

def refusal_cases(work):
    """(name, args, message) for every refusal, with the devices they need."""
    cases = [('nonexistent', {'devices': ['/dev/%s-no-such-disk' % PREFIX]},
              'device /dev/%s-no-such-disk does not exist' % PREFIX)]
    dev, image = loop(work, 64)
    cases.append(('regular file', {'devices': [image]}, 'is not a block device but a regular file'))
    for fstype in ('ext4', 'xfs'):
        dev, image = loop(work, 320)
        sh(['mkfs.%s' % fstype, '-q'] + (['-F'] if fstype == 'ext4' else ['-f']) + [dev])
        cases.append((fstype, {'devices': [dev]}, 'device %s carries signatures %s' % (dev, fstype)))
    dev, image = loop(work, 450, partscan=True)
    sh(['sfdisk', '-q', dev], data='label: gpt\n,100M\n,\n')
    cases.append(('partition table', {'devices': [dev]}, 'carries signatures PMBR, gpt'))
    dev, image = loop(work, 64)
    sh(['mkfs.ext4', '-q', '-F', dev])
    mnt = os.path.join(work['dir'], 'mnt-' + uuid.uuid4().hex[:6])
    os.mkdir(mnt)
    sh(['mount', dev, mnt])
    work['mounts'].append(mnt)
    work['mounted_image'] = image  # ext4 writes to it while mounted (lazy init, umount): compare its signatures only
    cases.append(('mounted, even with wipe_signatures', {'devices': [dev], 'wipe_signatures': True},
                  'device %s is in use: mounted (%s on %s)' % (dev, dev, mnt)))
    dev, image = loop(work, 4)
    cases.append(('too small for a PV', {'devices': [dev]}, 'is too small: 4 MiB; a PV needs at least 5 MiB'))
    dev, image = loop(work, 200)
    cases.append(('too small for the layout', {'devices': [dev]},
                  'needs at least 100 free extents (400 MiB'))
    dev, image = loop(work, 64)
    other = PREFIX + 'other'
    sh(['pvcreate', '-q', dev])
    sh(['vgcreate', '-q', other, dev])
    work['vgs'].append(other)
    cases.append(('PV of another VG, even with wipe_signatures', {'devices': [dev], 'wipe_signatures': True},
                  'is an LVM physical volume of volume group %s (vgreduce %s' % (other, other)))
    dev, image = loop(work, 64)
    for name, args, message in [
            ('bad VG name', {'vg': 'bad vg'}, "VG name 'bad vg' is invalid"),
            ('reserved VG name', {'vg': 'snapshotx'}, 'reserved by LVM'),
            ('percent over 100', {'data_percent': 150}, 'data_percent=150 is out of range'),
            ('data + metadata over 100', {'data_percent': 95, 'metadata_percent': 6}, 'add up to 101%'),
            ('bad chunk size', {'chunk_size': '1000K'}, 'chunk_size 1000K is invalid')]:
        cases.append((name, dict(args, devices=[dev]), message))
    return cases


def test_refusals_change_nothing(ansible, work):
    """Every refusal in one playbook run (each its own task): the error names
    the object and says what to do; devices, image bytes, LVM and the
    profile directory are as they were."""
    profile_dir = os.path.join(work['dir'], 'profiles')
    cases = refusal_cases(work)
    devices = sorted(set(d for dummy, args, dummy_msg in cases for d in args['devices'] if d.startswith('/dev/loop')))
    images = [os.path.join(work['dir'], name) for name in sorted(os.listdir(work['dir']))
              if name.endswith('.img') and os.path.join(work['dir'], name) != work['mounted_image']]
    tasks = [{'name': 'case %d' % i, MODULE: dict({'vg': PREFIX, 'profile_dir': profile_dir}, **args),
              'ignore_errors': True} for i, (dummy, args, dummy_msg) in enumerate(cases)]
    path = os.path.join(work['dir'], 'refusals.yml')
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump([{'name': 'refusals', 'hosts': 'all', 'gather_facts': False, 'tasks': tasks}], handle)
    before = snapshot(devices, images, profile_dir)
    try:
        run = ansible.playbook(path)
    finally:
        for mnt in list(work['mounts']):
            sh(['umount', mnt], check=False)
            work['mounts'].remove(mnt)
    problems = []
    for i, (name, dummy, message) in enumerate(cases):
        records = run.results('case %d' % i)
        if not records or records[-1]['status'] != 'failed':
            problems.append('%s: not refused: %r' % (name, records and records[-1]['result']))
        elif message not in records[-1]['result'].get('msg', ''):
            problems.append('%s: %r lacks %r' % (name, records[-1]['result'].get('msg'), message))
        elif records[-1]['result'].get('changed'):
            problems.append('%s: reported changed' % name)
    assert not problems, '\n'.join(problems)
    assert snapshot(devices, images, profile_dir) == before


# ---- the device-mapper preflight on a clean device ----------------------------------

def test_no_device_mapper_fails_before_any_change(ansible, work):
    """Check mode and a real run on a clean device: the preflight refuses,
    after every other check passed, before the first command."""
    dev, image = loop(work, 500)
    for check in (True, False):
        result = run_refused(ansible, {'vg': PREFIX, 'devices': [dev]},
                             'device-mapper is not available in this kernel', [dev], [image], check=check)
        assert 'Nothing was changed' in result['msg']


def test_wipe_signatures_erases_nothing_before_the_preflight(ansible, work):
    dev, image = loop(work, 500)
    sh(['mkfs.xfs', '-q', '-f', dev])
    run_refused(ansible, {'vg': PREFIX, 'devices': [dev], 'wipe_signatures': True},
                'device-mapper is not available', [dev], [image])
    assert json.loads(sh(['wipefs', '-J', dev]).stdout)['signatures'][0]['type'] == 'xfs'


def test_absent_of_nothing_is_no_change(ansible):
    profile_dir = os.path.join(tempfile.gettempdir(), PREFIX + '-profiles')
    for check in (True, False):
        result = ansible.module(MODULE, {'vg': PREFIX + 'none', 'state': 'absent', 'profile_dir': profile_dir},
                                check=check)
        assert not result['failed'], result
        assert not result['changed'] and result['commands'] == [] and result['pool'] is None


# ---- real PV/VG steps and the rollback --------------------------------------------

def host_run(args, check_rc=True):
    """The runner _common.run gives modules, for in-process use."""
    proc = sh(list(args), check=False)
    if check_rc and proc.returncode != 0:
        raise HostprepError('%s failed with exit status %d: %s' % (args[0], proc.returncode, proc.stderr.strip()),
                            cmd=args, rc=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)
    return proc.returncode, proc.stdout, proc.stderr


def test_plan_runs_pvcreate_vgcreate_for_real_then_rolls_back(work):
    """The plan from real reports, applied with real LVM: pvcreate and
    vgcreate succeed here, lvcreate fails (no device-mapper), and the
    rollback removes VG and PV label and restores the profile directory."""
    dev, image = loop(work, 500)
    vg = PREFIX + 'rb'
    profile_dir = os.path.join(work['dir'], 'profiles')
    params = tp.check_params(dict(vg=vg, devices=[dev], pool='thinpool', data_percent=None, data_size=None,
                                  metadata_percent=None, metadata_size=None, chunk_size='512K',
                                  profile='docker-thinpool', profile_dir=profile_dir, autoextend_threshold=80,
                                  autoextend_percent=20, thin_volume=None, wipe_signatures=False, state='present'))
    state = tp.read_state(host_run, vg)
    mounts = _mounts.parse_findmnt_list(sh(['findmnt', '-J', '-l', '-o', _mounts.FINDMNT_COLUMNS]).stdout)
    facts = _blockdev.probe(host_run, dev, mounts)
    assert facts['block'] and facts['size'] == 500 * 1024 * 1024 and facts['signatures'] == []
    plan = tp.plan_present(params, state, [facts], None)
    assert plan['after']['vg']['size'] == (500 - 1) // 4 * 4 * 1024 * 1024

    seen = {}

    def spy(args, check_rc=True):
        if args[0] == 'lvcreate':  # what pvcreate and vgcreate made, seen by LVM itself
            seen['vg'] = tp.read_state(host_run, vg)['vg']
        return host_run(args, check_rc)

    def write(path, content):
        if content is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'w', encoding='utf-8') as handle:
                handle.write(content)
    work['vgs'].append(vg)
    with pytest.raises(HostprepError) as exc:
        tp.apply(spy, None, plan['steps'], write)
    assert 'could not create data LV %s/thinpool' % vg in exc.value.msg
    assert 'rolled back the 3 change(s)' in exc.value.msg
    # the real VG existed, with the extents the plan predicted
    assert seen['vg']['vg_extent_count'] * seen['vg']['vg_extent_size'] == plan['after']['vg']['size']
    # and is gone again, with the PV label and the profile
    assert tp.read_state(host_run, vg)['vg'] is None
    assert json.loads(sh(['wipefs', '-J', dev]).stdout)['signatures'] == []
    assert os.listdir(profile_dir) == []
