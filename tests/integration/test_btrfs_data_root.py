# SPDX-License-Identifier: GPL-3.0-or-later
"""btrfs_data_root against the real kernel and a real dockerd 20.10.

Loop devices made with truncate + losetup stand in for disks; mount points,
data roots and the fstab file live in a temporary directory (never the real
/etc/fstab). Every run goes through a real ansible-playbook; what the module
did is checked with findmnt -J and blkid, and a private dockerd
(tests/lab/dockerd.py) runs a container on the result with the btrfs
storage driver. Refusals must leave the device, the mounts and fstab as they
were. Mounts and loop devices are removed in all cases.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import struct
import subprocess
import uuid

from conftest import workdir_fixture
from tests.lab.dockerd import PrivateDockerd, import_busybox, unmount_all

MODULE = 'hostprep.container_host.btrfs_data_root'
FSTAB = ('# /etc/fstab: static file system information.\n'
         '#\n'
         '# <file system> <mount point>   <type>  <options>       <dump>  <pass>\n'
         'UUID=0a1b2c3d-0000-4000-8000-000000000001 /               ext4    errors=remount-ro 0       1\n'
         '/dev/sr0        /media/cdrom0   udf,iso9660 user,noauto     0       0\n'
         '\n'
         'tmpfs\t/run/hp\\040space\ttmpfs\tdefaults,size=1m\t0\t0\n')


workdir = workdir_fixture('hp-bdr', ('dockerd', 'containerd', 'losetup', 'findmnt', 'blkid', 'wipefs', 'mkfs.btrfs',
                                     'mkfs.ext4', 'busybox', 'cp'))


@contextlib.contextmanager
def loop_device(workdir: str, size_mb: int = 300, mkfs: list[str] | None = None):
    """An unformatted (or mkfs-formatted) loop device; on exit everything
    mounted under workdir is unmounted and the device detached."""
    image = os.path.join(workdir, 'dev-%s.img' % uuid.uuid4().hex[:6])
    with open(image, 'wb') as handle:
        handle.truncate(size_mb * 1024 * 1024)
    device = None
    try:
        if mkfs:
            subprocess.run(mkfs + [image], check=True, capture_output=True)
        device = subprocess.run(['losetup', '--find', '--show', image], check=True, capture_output=True,
                                text=True).stdout.strip()
        yield device
    finally:
        unmount_all(workdir, include_roots=False)
        if device:
            subprocess.run(['losetup', '-d', device], capture_output=True, check=False)
        os.unlink(image)


def case_dir(workdir: str, name: str) -> dict[str, str]:
    base = os.path.join(workdir, name)
    os.makedirs(base)
    fstab = os.path.join(base, 'fstab')
    with open(fstab, 'w', encoding='utf-8') as handle:
        handle.write(FSTAB)
    return {'base': base, 'mount_point': os.path.join(base, 'mnt'), 'data_root': os.path.join(base, 'docker'),
            'fstab': fstab, 'docker_host': 'unix://%s/none.sock' % base}


def blkid(device: str) -> dict[str, str]:
    proc = subprocess.run(['blkid', '-p', '-o', 'export', device], capture_output=True, text=True, check=False)
    assert proc.returncode in (0, 2), proc.stderr
    return dict(line.split('=', 1) for line in proc.stdout.splitlines() if '=' in line)


def findmnt(target: str) -> list[dict]:
    proc = subprocess.run(['findmnt', '-J', '--mountpoint', target, '-o', 'TARGET,SOURCE,FSTYPE,OPTIONS,FSROOT'],
                          capture_output=True, text=True, check=False)
    if proc.returncode == 1 and not proc.stdout.strip():
        return []
    return json.loads(proc.stdout)['filesystems']


def mounts_under(path: str) -> list[str]:
    with open('/proc/self/mountinfo', encoding='utf-8') as handle:
        return sorted(line.split()[4] for line in handle if line.split()[4].startswith(path))


def read_bytes(path: str) -> bytes:
    with open(path, 'rb') as handle:
        return handle.read()


def snapshot(case: dict[str, str], device: str | None) -> tuple:
    """Everything a refusal must leave alone."""
    return (read_bytes(case['fstab']), mounts_under(case['base']),
            blkid(device) if device and os.path.exists(device) else None,
            sorted(os.listdir(case['base'])))


def args_for(case: dict[str, str], device: str, **extra) -> dict:
    args = {'device': device, 'mount_point': case['mount_point'], 'data_root': case['data_root'],
            'fstab': case['fstab'], 'docker_host': case['docker_host']}
    args.update(extra)
    return args


def test_fresh_device_then_real_dockerd_runs_on_btrfs(ansible, workdir):
    case = case_dir(workdir, 'fresh')
    with loop_device(workdir) as device:
        args = args_for(case, device, label='hpdocker', mount_options=['noatime'])
        before = snapshot(case, device)
        assert before[2] == {}, 'the new loop device must carry no signature'

        checked = ansible.module(MODULE, args, check=True)
        assert not checked['failed'], checked
        assert checked['changed'] and checked['formatted'] and checked['fstab_changed'], checked
        assert [m['changed'] for m in checked['mounts']] == [True, True]
        assert snapshot(case, device) == before, 'check mode changed something'
        assert blkid(device) == {}
        diff_after = checked['diff'][0]['after']
        assert diff_after.startswith(FSTAB) and 'x-systemd.requires-mounts-for=%s' % case['mount_point'] in diff_after

        applied = ansible.module(MODULE, args)
        assert not applied['failed'], applied
        assert applied['changed'] and applied['formatted'] and applied['fstab_changed'], applied
        info = blkid(device)
        assert info['TYPE'] == 'btrfs' and info['LABEL'] == 'hpdocker'
        assert applied['device']['uuid'] == info['UUID']
        (btrfs_mount,) = findmnt(case['mount_point'])
        assert btrfs_mount['source'] == device and btrfs_mount['fstype'] == 'btrfs'
        assert 'noatime' in btrfs_mount['options'].split(',')
        (bind_mount,) = findmnt(case['data_root'])
        assert bind_mount['fstype'] == 'btrfs' and bind_mount['fsroot'] == '/'
        assert bind_mount['source'] == device
        assert os.stat(case['mount_point']).st_dev == os.stat(case['data_root']).st_dev
        fstab = read_bytes(case['fstab']).decode()
        assert fstab == FSTAB + ('UUID=%s %s btrfs noatime 0 0\n%s %s none bind,x-systemd.requires-mounts-for=%s 0 0\n'
                                 % (info['UUID'], case['mount_point'], case['mount_point'], case['data_root'],
                                    case['mount_point']))
        assert [m['kernel']['fstype'] for m in applied['mounts']] == ['btrfs', 'btrfs']

        again = ansible.module(MODULE, args)
        assert not again['failed'], again
        assert not again['changed'] and not again['formatted'] and not again['fstab_changed'], again
        assert [m['changed'] for m in again['mounts']] == [False, False]
        assert again['migrated'] is None
        assert read_bytes(case['fstab']).decode() == fstab
        assert len(findmnt(case['data_root'])) == 1, 'a second bind mount was stacked'

        engine = PrivateDockerd(case['base'], data_root=case['data_root'], storage_driver='btrfs')
        with engine:
            docker_info = engine.info()
            assert docker_info['Driver'] == 'btrfs'
            assert docker_info['DockerRootDir'] == case['data_root']
            image = import_busybox(engine.client)
            out = engine.client.containers.run(image, ['sh', '-c', 'echo on-btrfs'], network_mode='none',
                                               remove=True)
            assert out.strip() == b'on-btrfs'
            # The layers live on the btrfs filesystem itself.
            assert 'btrfs' in os.listdir(case['mount_point'])
            # Nothing to do is fine while the engine runs, and it is recognised.
            running = ansible.module(MODULE, dict(args, docker_host=engine.base_url))
            assert not running['failed'] and not running['changed'], running
        unmount_all(case['data_root'])
        unmount_all(case['mount_point'])


ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20


def posix_acl(entries: list[tuple[int, int, int]]) -> bytes:
    """The system.posix_acl_access xattr value (version 2)."""
    return struct.pack('<I', 2) + b''.join(struct.pack('<HHI', tag, perm, ident) for tag, perm, ident in entries)


def make_tree(root: str) -> None:
    os.makedirs(os.path.join(root, 'image', 'layers'))
    os.makedirs(os.path.join(root, 'sticky'))
    with open(os.path.join(root, 'image', 'layers', 'a'), 'wb') as handle:
        handle.write(os.urandom(70000))
    os.link(os.path.join(root, 'image', 'layers', 'a'), os.path.join(root, 'image', 'hardlink-to-a'))
    with open(os.path.join(root, 'secret'), 'w', encoding='utf-8') as handle:
        handle.write('x' * 100)
    os.chown(os.path.join(root, 'secret'), 1234, 5678)
    os.chmod(os.path.join(root, 'secret'), 0o4640)
    os.chmod(os.path.join(root, 'sticky'), 0o1777)
    os.chown(os.path.join(root, 'sticky'), 4321, 0)
    os.symlink('image/layers/a', os.path.join(root, 'link'))
    os.mkfifo(os.path.join(root, 'fifo'), 0o600)
    os.setxattr(os.path.join(root, 'image', 'layers', 'a'), 'user.hostprep', b'kept')
    os.setxattr(os.path.join(root, 'image'), 'trusted.overlay.opaque', b'y')
    acl = posix_acl([(ACL_USER_OBJ, 6, 0xFFFFFFFF), (ACL_USER, 6, 1234), (ACL_GROUP_OBJ, 4, 0xFFFFFFFF),
                     (ACL_MASK, 6, 0xFFFFFFFF), (ACL_OTHER, 0, 0xFFFFFFFF)])
    os.setxattr(os.path.join(root, 'secret'), 'system.posix_acl_access', acl)
    os.chmod(root, 0o710)


def describe_tree(root: str) -> dict[str, tuple]:
    """Everything migration must keep, by relative path; hard links as the
    group of paths that share an inode."""
    found = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames + (['.'] if dirpath == root else []):
            path = os.path.normpath(os.path.join(dirpath, name))
            rel = os.path.relpath(path, root)
            info = os.lstat(path)
            xattrs = {}
            if not stat.S_ISLNK(info.st_mode) and not stat.S_ISFIFO(info.st_mode):
                xattrs = {key: os.getxattr(path, key) for key in sorted(os.listxattr(path))}
            found[rel] = (stat.filemode(info.st_mode), info.st_uid, info.st_gid,
                          info.st_size if stat.S_ISREG(info.st_mode) else None,
                          info.st_mtime_ns if not stat.S_ISDIR(info.st_mode) else None, info.st_nlink
                          if not stat.S_ISDIR(info.st_mode) else None,
                          os.readlink(path) if stat.S_ISLNK(info.st_mode) else None, xattrs)
            if stat.S_ISREG(info.st_mode):
                inodes.setdefault(info.st_ino, []).append(rel)
    found['hard link groups'] = tuple(sorted(tuple(sorted(group)) for group in inodes.values() if len(group) > 1))
    return found


def test_migrate_keeps_owners_modes_xattrs_acls_and_hard_links(ansible, workdir):
    case = case_dir(workdir, 'migrate')
    make_tree(case['data_root'])
    expected = describe_tree(case['data_root'])
    assert expected['hard link groups'] == (('image/hardlink-to-a', 'image/layers/a'),)
    assert 'system.posix_acl_access' in expected['secret'][-1]
    with loop_device(workdir) as device:
        args = args_for(case, device, migrate=True)
        before = snapshot(case, device)
        checked = ansible.module(MODULE, args, check=True)
        assert not checked['failed'] and checked['changed'], checked
        # a, secret, link, fifo; the hard link counts once
        assert checked['migrated'] == {'files': 4, 'bytes': 70100}, checked['migrated']
        assert snapshot(case, device) == before and describe_tree(case['data_root']) == expected

        applied = ansible.module(MODULE, args)
        assert not applied['failed'] and applied['changed'], applied
        assert applied['migrated'] == {'files': 4, 'bytes': 70100}
        (bind_mount,) = findmnt(case['data_root'])
        assert bind_mount['fstype'] == 'btrfs' and bind_mount['source'] == device
        assert describe_tree(case['data_root']) == expected, 'the copy differs from the original'

        again = ansible.module(MODULE, args)
        assert not again['failed'] and not again['changed'] and again['migrated'] is None, again

        # The old content stays underneath the bind mount, as the docs say.
        unmount_all(case['data_root'])
        assert describe_tree(case['data_root']) == expected


def expect_refusals(ansible, workdir, cases: dict[str, tuple], watch: list[tuple],
                    check_too: tuple[str, ...] = ()) -> dict[str, dict]:
    """cases: name -> (args, message fragments). Each is refused (those in
    check_too also in check mode), and nothing in watch (case, device)
    changes."""
    before = [snapshot(case, device) for case, device in watch]
    tasks = [(name + ' check', args, True) for name, (args, dummy) in cases.items() if name in check_too]
    tasks += [(name, args, False) for name, (args, dummy) in cases.items()]
    results = ansible.module_tasks(MODULE, tasks)
    for task, dummy_args, dummy_check in tasks:
        result = results[task]
        assert result['failed'] and not result.get('changed'), (task, result)
        for fragment in cases[task.replace(' check', '')][1]:
            assert fragment in result['msg'], (task, fragment, result['msg'])
    assert [snapshot(case, device) for case, device in watch] == before, 'a refused run changed something'
    return results


def test_refusals_change_nothing(ansible, workdir):
    with loop_device(workdir, mkfs=['mkfs.ext4', '-q', '-F']) as ext4, loop_device(workdir) as empty, \
            loop_device(workdir, size_mb=64) as small:
        cases = {name: case_dir(workdir, 'refuse-' + name)
                 for name in ('ext4', 'nonempty', 'mounted', 'missing', 'file', 'nested', 'small', 'detected')}
        os.makedirs(cases['nonempty']['data_root'])
        with open(os.path.join(cases['nonempty']['data_root'], 'repository.json'), 'w', encoding='utf-8') as handle:
            handle.write('{}')
        os.makedirs(cases['mounted']['data_root'])
        # data_root left out: detected from daemon.json's data-root
        detected = cases['detected']
        os.makedirs(detected['data_root'])
        with open(os.path.join(detected['data_root'], 'engine-id'), 'w', encoding='utf-8') as handle:
            handle.write('x')
        daemon_json = os.path.join(detected['base'], 'daemon.json')
        with open(daemon_json, 'w', encoding='utf-8') as handle:
            json.dump({'data-root': detected['data_root'], 'storage-driver': 'overlay2'}, handle)
        detected_args = args_for(detected, empty, daemon_config=daemon_json)
        del detected_args['data_root']
        subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'hp-bdr-tmpfs', cases['mounted']['data_root']],
                       check=True)
        image = os.path.join(cases['file']['base'], 'disk.img')
        with open(image, 'wb') as handle:
            handle.truncate(200 * 1024 * 1024)
        missing = '/dev/hp-bdr-does-not-exist'
        nested = cases['nested']
        expect_refusals(ansible, workdir, {
            'ext4': (args_for(cases['ext4'], ext4),
                     ['device %s carries a signature (ext4 at offset 0x438)' % ext4, 'force=true']),
            'nonempty': (args_for(cases['nonempty'], empty),
                         ['data root %s is not empty (repository.json)' % cases['nonempty']['data_root'],
                          'migrate=true']),
            'mounted': (args_for(cases['mounted'], empty),
                        ['data root %s already has hp-bdr-tmpfs (tmpfs) mounted on it' % cases['mounted']['data_root'],
                         'unmount it first']),
            'missing': (args_for(cases['missing'], missing), ['device %s does not exist' % missing]),
            'file': (args_for(cases['file'], image),
                     ['device %s is a regular file, not a block device' % image, 'losetup --find --show']),
            'nested': (args_for(nested, empty, mount_point=nested['data_root'] + '/sub'),
                       ['must be separate directories']),
            'small': (args_for(cases['small'], small), ['device %s is too small for btrfs' % small]),
            'detected': (detected_args, ['data root %s is not empty (engine-id)' % detected['data_root']]),
        }, [(cases['ext4'], ext4), (cases['nonempty'], empty), (cases['mounted'], empty),
            (cases['missing'], None), (cases['file'], None), (nested, empty), (cases['small'], small),
            (detected, empty)],
            check_too=('ext4', 'nonempty', 'mounted'))
        assert blkid(empty) == {} and blkid(small) == {}
        unmount_all(cases['mounted']['data_root'])

        # force formats the ext4 device and leaves no ext4 signature behind;
        # the existing btrfs is then kept, force or not.
        uuid_before = blkid(ext4)['UUID']
        forced = ansible.module_tasks(MODULE, [('force', args_for(cases['ext4'], ext4, force=True), False),
                                               ('again', args_for(cases['ext4'], ext4, force=True), False)])
        assert not forced['force']['failed'] and forced['force']['formatted'], forced['force']
        assert [sig['type'] for sig in forced['force']['device']['signatures']] == ['btrfs']
        assert blkid(ext4)['TYPE'] == 'btrfs' and blkid(ext4)['UUID'] != uuid_before
        again = forced['again']
        assert not again['failed'] and not again['changed'] and not again['formatted'], again


def test_refused_while_dockerd_runs(ansible, workdir):
    case = case_dir(workdir, 'running')
    engine = PrivateDockerd(case['base'], data_root=case['data_root'], storage_driver='vfs')
    with engine, loop_device(workdir) as device:
        results = expect_refusals(ansible, workdir, {
            # found through the API at docker_host ...
            'api': (args_for(case, device, docker_host=engine.base_url),
                    ['the container engine is running: the engine answering at %s (data root %s)'
                     % (engine.base_url, case['data_root']), 'stop it']),
            # ... and as a dockerd process using the data root when docker_host says nothing
            'process': (args_for(case, device, migrate=True),
                        ['the container engine is running: dockerd (pid %d) with root %s'
                         % (engine.proc.pid, case['data_root'])]),
        }, [(case, device)], check_too=('api',))
        assert 'engine answering' not in results['process']['msg']
        assert blkid(device) == {}
