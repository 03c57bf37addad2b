# SPDX-License-Identifier: GPL-3.0-or-later
"""The docker_storage role against a real engine (Debian 12's dockerd 20.10).

The engines, their fixtures and the converge helper are in storage_role.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess

from ansible_collections.hostprep.container_host.plugins.module_utils._common import read_bytes
from tests.lab import BIN
from tests.lab.dockerd import import_busybox, raw_loop_device, unmount_all
from tests.lab.playbook import PlaybookRun, arguments, environment, records_of
from storage_role import (PLAYBOOK, RESET_PLAYBOOK, blkid_type, converge, engines, findmnt, fs,  # noqa: F401 pylint: disable=unused-import
                          inventory, workdir)


def test_overlay2_on_ext4_keeps_images(ansible, inventory, engines, fs):
    engine = engines(os.path.join(fs['ext4'], 'ovl-ext4', 'docker'))
    with contextlib.closing(engine.client()) as client:
        import_busybox(client)
    images = engine.image_ids()
    converge(ansible, inventory, engine, 'overlay2')
    info = engine.info()
    assert info['Driver'] == 'overlay2'
    assert info['DockerRootDir'] == engine.data_root
    assert dict(info['DriverStatus'])['Backing Filesystem'] == 'extfs'
    assert engine.image_ids() == images
    config = json.loads(read_bytes(engine.daemon_json))
    assert config['storage-driver'] == 'overlay2' and config['log-level'] == 'info'


def test_overlay2_on_xfs(ansible, inventory, engines, fs):
    engine = engines(os.path.join(fs['xfs'], 'ovl-xfs', 'docker'))
    converge(ansible, inventory, engine, 'overlay2')
    info = engine.info()
    assert info['Driver'] == 'overlay2'
    status = dict(info['DriverStatus'])
    assert status['Backing Filesystem'] == 'xfs' and status['Supports d_type'] == 'true'


def test_vfs(ansible, inventory, engines, fs):
    engine = engines(os.path.join(fs['xfs'], 'vfs', 'docker'))
    converge(ansible, inventory, engine, 'vfs')
    assert engine.info()['Driver'] == 'vfs'
    with contextlib.closing(engine.client()) as client:
        image = import_busybox(client)
        out = client.containers.run(image, ['sh', '-c', 'echo vfs-ok'], network_mode='none', remove=True)
    assert out.strip() == b'vfs-ok'


def test_switch_overlay2_to_btrfs_preserves_images(ansible, inventory, engines, fs, workdir):
    engine = engines(os.path.join(fs['ext4'], 'to-btrfs', 'docker'))
    with contextlib.closing(engine.client()) as client:
        import_busybox(client)
        client.images.get('hostprep-busybox:latest').tag('hostprep-busybox', 'second')
    images = engine.image_ids()
    assert engine.info()['Driver'] == 'overlay2'
    mount_point = os.path.join(engine.dir, 'btrfs')
    with raw_loop_device(workdir) as device:
        try:
            variables = engine.vars('btrfs', docker_storage_btrfs_device=device,
                                    docker_storage_btrfs_mount_point=mount_point,
                                    docker_storage_preserve_images=True,
                                    docker_storage_image_archive_dir=engine.archive_dir)
            first = ansible.playbook(PLAYBOOK, inventory, variables)
            assert first.rc == 0 and not first.failed, first.stdout[-6000:]
            assert first.result('Save the images of the old storage')['changed']
            loaded = first.result('Load the saved images into the new storage')
            assert loaded['changed'], loaded
            second = ansible.playbook(PLAYBOOK, inventory, variables)
            assert second.rc == 0 and second.changed == 0, second.stdout[-4000:]

            info = engine.info()
            assert info['Driver'] == 'btrfs' and info['DockerRootDir'] == engine.data_root
            assert engine.image_ids() == images
            with contextlib.closing(engine.client()) as client:
                tags = client.images.get('hostprep-busybox:latest').tags
                out = client.containers.run('hostprep-busybox:second', ['sh', '-c', 'echo btrfs-ok'],
                                            network_mode='none', remove=True)
            assert sorted(tags) == ['hostprep-busybox:latest', 'hostprep-busybox:second']
            assert out.strip() == b'btrfs-ok'
            assert blkid_type(device) == 'btrfs'
            assert findmnt(engine.data_root)['fstype'] == 'btrfs'
            fstab = read_bytes(engine.fstab).decode()
            assert ' %s btrfs ' % mount_point in fstab and '%s %s none bind' % (mount_point, engine.data_root) in fstab
            kept = [name for name in os.listdir(os.path.dirname(engine.data_root))
                    if name.startswith('docker.hostprep-overlay2-')]
            assert len(kept) == 1, 'the old overlay2 data root is kept aside'
            assert os.path.exists(os.path.join(engine.archive_dir, 'docker-storage-images.tar'))
        finally:
            engine.stop()
            unmount_all(engine.data_root)
            unmount_all(mount_point)


def test_refusals_change_nothing(ansible, inventory, engines, fs, workdir):
    """Running container, switch without preserve_images, devicemapper on a
    kernel without device-mapper, reset without force: each refused before
    anything changes (daemon.json bytes, engine pid, images, device, fstab)."""
    engine = engines(os.path.join(fs['ext4'], 'refuse', 'docker'))
    with contextlib.closing(engine.client()) as client:
        import_busybox(client)
        container = client.containers.run('hostprep-busybox:latest', ['sh', '-c', 'while true; do sleep 1; done'],
                                          network_mode='none', detach=True)
    images = engine.image_ids()

    def state():
        return read_bytes(engine.daemon_json), engine.pid(), engine.image_ids(), read_bytes(engine.fstab)

    before = state()

    def refused(backend: str, expect: list[str], **extra):
        run = ansible.playbook(PLAYBOOK, inventory, engine.vars(backend, **extra))
        assert run.rc != 0 and run.failed, run.stdout[-3000:]
        msg = run.failed[-1]['result'].get('msg', '')
        for text in expect:
            assert text in msg, msg
        assert 'Nothing was changed' in msg
        assert state() == before
        return msg

    refused('vfs', ['1 container(s) are running', 'docker_storage_stop_containers: true'],
            docker_storage_preserve_images=True, docker_storage_image_archive_dir=engine.archive_dir)
    with contextlib.closing(engine.client()) as client:
        assert client.containers.get(container.id).status == 'running'
        client.containers.get(container.id).stop(timeout=1)

    with raw_loop_device(workdir) as device:
        refused('btrfs', ['hides its 1 image(s)', 'docker_storage_preserve_images: true'],
                docker_storage_btrfs_device=device, docker_storage_btrfs_mount_point=os.path.join(engine.dir, 'b'))
        assert blkid_type(device) == ''
    assert not os.path.exists(os.path.join(engine.dir, 'b'))

    refused('devicemapper_loop', ['needs device-mapper', 'this kernel has none', 'use overlay2 or btrfs'])
    refused('overlay2', ['docker_storage_reset_force: true'], docker_storage_reset=True)
    assert engine.image_ids() == images

    run = ansible.playbook(RESET_PLAYBOOK, inventory, engine.vars('devicemapper_loop'))
    assert run.rc != 0 and run.failed
    assert 'reset_loopback_confirm=yes-destroy-all-images' in run.failed[-1]['result']['msg']
    assert state() == before


def test_failed_start_is_rolled_back(ansible, inventory, engines, fs):
    """overlay2.size on ext4 (no project quota), written with validation off:
    dockerd refuses to start; the old daemon.json comes back, the engine runs
    on it again, and the role fails with dockerd's own error."""
    engine = engines(os.path.join(fs['ext4'], 'rollback', 'docker'))
    with contextlib.closing(engine.client()) as client:
        import_busybox(client)
    images = engine.image_ids()
    before = read_bytes(engine.daemon_json)
    old_pid = engine.pid()
    run = ansible.playbook(PLAYBOOK, inventory, engine.vars('overlay2', docker_storage_options=['overlay2.size=64M'],
                                                            docker_storage_validate=False))
    assert run.rc != 0 and run.failed, run.stdout[-4000:]
    msg = run.failed[-1]['result']['msg']
    assert 'Start the engine (command) failed (backend overlay2)' in msg, msg
    assert 'overlay2.size' in msg or 'quota' in msg.lower(), msg
    assert 'Restored: put back %s as it was' % engine.daemon_json in msg
    assert 'The engine runs again on its old configuration (driver overlay2' in msg
    assert read_bytes(engine.daemon_json) == before
    assert engine.pid() and engine.pid() != old_pid
    assert engine.info()['Driver'] == 'overlay2'
    assert engine.image_ids() == images


@contextlib.contextmanager
def own_mount_namespace(workdir: str, engine):
    """A mount namespace of the case's own, kept by a bind of /proc/PID/ns/mnt, with the engine restarted in it.

    This lab's root mount is private (no systemd), and the other tests on the machine start namespaces all the
    time (ip netns exec, unshare, containers): each new one keeps a copy of every mount of the host's namespace,
    so a btrfs mounted there for a few seconds stays busy after the role unmounts it, and cannot be wiped. In a
    namespace of its own, what the role and the engine mount stays out of the host's namespace."""
    holder = os.path.join(workdir, 'mntns-' + engine.name)
    open(holder, 'w', encoding='utf-8').close()
    engine.stop()  # first: the namespace would keep a copy of what the running engine has mounted
    subprocess.run(['unshare', '--mount=' + holder, '--propagation', 'private', 'true'], check=True)
    subprocess.run(['nsenter', '--mount=' + holder, '--'] + engine.start_cmd, check=True, capture_output=True)
    try:
        yield ['nsenter', '--mount=' + holder, '--']
    finally:
        engine.stop()
        subprocess.run(['umount', holder], check=False)
        os.unlink(holder)


def playbook_in(prefix: list, ansible, path: str, inventory: str, variables: dict) -> PlaybookRun:
    """ansible-playbook run through a command prefix (nsenter), its task records read as the lab's runner does."""
    log = os.path.join(ansible.workdir, 'results-%s.jsonl' % os.path.basename(path))
    args = arguments(path, inventory, variables, False, True, None)
    proc = subprocess.run(prefix + [os.path.join(BIN, 'ansible-playbook')] + args, env=environment(log, 5),
                          capture_output=True, text=True, check=False)
    return PlaybookRun(proc.returncode, proc.stdout + proc.stderr, records_of(log))


def wipefs(device: str) -> list:
    out = subprocess.run(['wipefs', '-J', device], capture_output=True, text=True, check=True).stdout
    return json.loads(out)['signatures'] if out.strip() else []


def test_failed_btrfs_switch_wipes_the_filesystem_it_made(ansible, inventory, engines, fs, workdir):
    """mkfs.btrfs runs on a blank device, then dockerd rejects a btrfs option: the rollback wipes the filesystem
    the journal noted as this change's own (its UUID), so wipefs and blkid find the device blank, as before."""
    engine = engines(os.path.join(fs['ext4'], 'wipe-btrfs', 'docker'))
    mount_point = os.path.join(engine.dir, 'btrfs')
    with raw_loop_device(workdir) as device:
        try:
            assert wipefs(device) == [] and blkid_type(device) == ''
            with own_mount_namespace(workdir, engine) as prefix:
                run = playbook_in(prefix, ansible, PLAYBOOK, inventory, engine.vars(
                    'btrfs', docker_storage_btrfs_device=device, docker_storage_btrfs_mount_point=mount_point,
                    docker_storage_options=['btrfs.hp_no_such_option=1'], docker_storage_validate=False))
                assert engine.info()['Driver'] == 'overlay2'
            assert run.rc != 0 and run.failed, run.stdout[-4000:]
            msg = run.failed[-1]['result']['msg']
            assert 'Start the engine (command) failed (backend btrfs)' in msg, msg
            assert 'wiped btrfs (UUID ' in msg and 'from %s, which was blank before this change' % device in msg, msg
            assert 'Not undone' not in msg, msg
            assert wipefs(device) == [] and blkid_type(device) == ''
        finally:
            engine.stop()
            unmount_all(engine.data_root)
            unmount_all(mount_point)


def test_failed_btrfs_switch_names_what_it_cannot_undo(ansible, inventory, engines, fs, workdir):
    """With docker_storage_btrfs_force the device carried ext4 before: the old filesystem cannot come back, so the
    new btrfs is left and named instead of wiped."""
    engine = engines(os.path.join(fs['ext4'], 'keep-btrfs', 'docker'))
    mount_point = os.path.join(engine.dir, 'btrfs')
    with raw_loop_device(workdir) as device:
        try:
            subprocess.run(['mkfs.ext4', '-q', '-F', device], check=True)
            run = ansible.playbook(PLAYBOOK, inventory, engine.vars(
                'btrfs', docker_storage_btrfs_device=device, docker_storage_btrfs_mount_point=mount_point,
                docker_storage_btrfs_force=True, docker_storage_options=['btrfs.hp_no_such_option=1'],
                docker_storage_validate=False))
            assert run.rc != 0 and run.failed, run.stdout[-4000:]
            msg = run.failed[-1]['result']['msg']
            assert 'Not undone, left as it is: btrfs (UUID ' in msg, msg
            assert 'made by this change over ext4, which cannot be brought back' in msg, msg
            assert blkid_type(device) == 'btrfs'
            assert engine.info()['Driver'] == 'overlay2'
        finally:
            engine.stop()
            unmount_all(engine.data_root)
            unmount_all(mount_point)


def private_facts_task(name: str) -> dict:
    return {'name': name, 'ansible.builtin.debug': {'msg': (
        "{{ hostvars[inventory_hostname] | dict2items | selectattr('key', 'match', '__docker_storage_')"
        " | rejectattr('value', 'none') | map(attribute='key') | list }}")}}


def test_two_runs_in_one_play_share_no_facts(ansible, inventory, engines, fs, workdir):
    """The role twice in one play with other vars (engine A to vfs with its images saved and loaded as async jobs,
    then engine B kept on overlay2, its driver written to daemon.json): no role-private fact is left between or
    after the runs, and each run plans on its own."""
    first = engines(os.path.join(fs['ext4'], 'two-a', 'docker'))
    second = engines(os.path.join(fs['xfs'], 'two-b', 'docker'))
    with contextlib.closing(first.client()) as client:
        import_busybox(client)
    images = first.image_ids()
    role = {'name': 'hostprep.container_host.docker_storage'}
    # the first run also saves and loads its images as async jobs (issue 11: long tasks)
    first_vars = first.vars('vfs', docker_storage_preserve_images=True, docker_storage_image_archive_dir=first.archive_dir,
                            docker_storage_image_archive_async=300, docker_storage_image_archive_poll=1)
    play = [{'name': 'Two runs of the role', 'hosts': 'all', 'gather_facts': False, 'tasks': [
        {'name': 'First run', 'ansible.builtin.include_role': role, 'vars': first_vars},
        private_facts_task('Private facts after the first run'),
        {'name': 'Second run', 'ansible.builtin.include_role': role, 'vars': second.vars('overlay2')},
        private_facts_task('Private facts after the second run'),
    ]}]
    path = os.path.join(workdir, 'two-runs.yml')
    with open(path, 'w', encoding='utf-8') as handle:
        json.dump(play, handle)
    run = ansible.playbook(path, inventory)
    assert run.rc == 0 and not run.failed, run.stdout[-6000:]
    assert run.result('Private facts after the first run')['msg'] == []
    assert run.result('Private facts after the second run')['msg'] == []
    plans = [r['result']['msg'] for r in run.results('Report the plan')]
    assert len(plans) == 2 and 'driver or data root switch' in plans[0] and 'no switch' in plans[1], plans
    for task in ('Save the images of the old storage', 'Load the saved images into the new storage'):
        done = run.results(task)[0]['result']  # the first run's
        assert done['changed'] and done.get('ansible_job_id') and done.get('finished') == 1, done
    assert first.info()['Driver'] == 'vfs' and first.image_ids() == images
    assert second.info()['Driver'] == 'overlay2'
    assert json.loads(read_bytes(second.daemon_json))['storage-driver'] == 'overlay2'


def test_reset_entry_point(ansible, inventory, engines, fs, workdir):
    """The role's "reset" entry point (what playbooks/reset_loopback.yml runs): refused without the confirmation,
    nothing changed in check mode, then the images and containers are gone, the named volume stays, and the
    engine runs again on its driver."""
    engine = engines(os.path.join(fs['ext4'], 'reset-entry', 'docker'))
    with contextlib.closing(engine.client()) as client:
        image = import_busybox(client)
        client.volumes.create('hp-reset-keep')
        client.containers.create(image, ['true'], network_mode='none')
    images = engine.image_ids()

    def reset(check: bool = False, **extra):
        play = [{'name': 'Reset', 'hosts': 'all', 'gather_facts': False, 'tasks': [
            {'name': 'Reset through the entry point',
             'ansible.builtin.include_role': {'name': 'hostprep.container_host.docker_storage', 'tasks_from': 'reset'},
             'vars': engine.vars('overlay2', **extra)}]}]
        path = os.path.join(workdir, 'reset-%s.yml' % engine.name)
        with open(path, 'w', encoding='utf-8') as handle:
            json.dump(play, handle)
        return ansible.playbook(path, inventory, check=check)

    refused = reset()
    assert refused.rc != 0 and 'docker_storage_reset_force: true' in refused.failed[-1]['result']['msg']
    checked = reset(check=True, docker_storage_reset_force=True)
    assert checked.rc == 0 and engine.image_ids() == images, checked.stdout[-4000:]
    done = reset(docker_storage_reset_force=True)
    assert done.rc == 0 and not done.failed, done.stdout[-4000:]
    assert engine.image_ids() == [] and engine.info()['Driver'] == 'overlay2'
    with contextlib.closing(engine.client()) as client:
        assert client.containers.list(all=True) == []
        assert 'hp-reset-keep' in [volume.name for volume in client.volumes.list()]
