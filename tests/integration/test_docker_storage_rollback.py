# SPDX-License-Identifier: GPL-3.0-or-later
"""A failed or interrupted docker_storage change leaves the host as it was (issue 9).

Each case makes one step of a real storage change fail for real (dockerd
refusing an option at start, an immutable directory under the files the
change writes, the controller killed between two steps) on a private engine
that holds images, a stopped container and a named volume with content, then
compares the host before and after: daemon.json and fstab byte for byte,
the mounts at and under the data root and the btrfs mount point, the engine's
driver and data root, image IDs, containers with their state, volumes and a
volume's content read back by a new container, and no data root left aside.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils._common import read_bytes
from tests.lab.dockerd import import_busybox, loop_filesystem, raw_loop_device, unmount_all
from tests.lab.hoststate import assert_unchanged, files, mounts
from storage_role import PLAYBOOK, engines, fs, inventory, workdir  # noqa: F401 pylint: disable=unused-import


def load(engine) -> None:
    """An image, a stopped container and a named volume with content."""
    with contextlib.closing(engine.client()) as client:
        image = import_busybox(client)
        client.volumes.create('hp-keep')
        client.containers.run(image, ['sh', '-c', 'echo kept-data > /v/file'], network_mode='none', remove=True,
                              volumes={'hp-keep': {'bind': '/v', 'mode': 'rw'}})
        client.containers.create(image, ['true'], name='hp-stopped-%s' % engine.name, network_mode='none')


def state(engine, *roots: str) -> dict:
    """What must be the same after a failed change."""
    info = engine.info()
    with contextlib.closing(engine.client()) as client:
        containers = sorted((c.id, c.status, c.name) for c in client.containers.list(all=True))
        volumes = sorted(v.name for v in client.volumes.list())
        content = client.containers.run('hostprep-busybox:latest', ['cat', '/v/file'], network_mode='none', remove=True,
                                        volumes={'hp-keep': {'bind': '/v', 'mode': 'ro'}})
    parent = os.path.dirname(engine.data_root)
    return {
        'files': files(engine.daemon_json, engine.fstab),
        'mounts': mounts(engine.data_root, engine.dir),
        'driver': (info['Driver'], info['DockerRootDir']),
        'images': engine.image_ids(),
        'containers': containers,
        'volumes': volumes,
        'volume content': content,
        'beside the data root': sorted(os.listdir(parent)),
        'journal': os.path.exists(os.path.join(engine.dir, 'journal', 'journal.json')),
    }


TIMINGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), '.build',
                       'rollback-timings.jsonl')


def note_time(run, first: str, last: str) -> None:
    """How long the rollback took (from the end of task first to the end of task last), noted in
    .build/rollback-timings.jsonl, which docs/backends/README.md quotes."""
    start = [r['at'] for r in run.records if r['task'].endswith(first)]
    end = [r['at'] for r in run.records if r['task'].endswith(last)]
    if start and end:
        os.makedirs(os.path.dirname(TIMINGS), exist_ok=True)
        with open(TIMINGS, 'a', encoding='utf-8') as handle:
            handle.write(json.dumps({'test': os.environ.get('PYTEST_CURRENT_TEST', '').split(' ')[0],
                                     'restore_seconds': round(end[-1] - start[-1], 1)}) + '\n')


def failed_message(run) -> str:
    """The role's one message; notes how long the rollback took (from the failed step to the message)."""
    assert run.rc != 0 and run.failed, run.stdout[-4000:]
    note_time(run, 'Keep the error', run.failed[-1]['task'])
    return run.failed[-1]['result'].get('msg', '')


@contextlib.contextmanager
def btrfs_disk(engine, workdir):
    """A blank loop device for the btrfs cases; afterwards the engine is stopped and the data root and the btrfs
    mount point (engine.dir/btrfs) unmounted, whatever the case did."""
    with raw_loop_device(workdir) as device:
        try:
            yield device
        finally:
            engine.stop()
            unmount_all(engine.data_root)
            unmount_all(os.path.join(engine.dir, 'btrfs'))


def switch_to_btrfs(ansible, inventory, engine, device, mount_point, **extra):
    return ansible.playbook(PLAYBOOK, inventory, engine.vars(
        'btrfs', docker_storage_btrfs_device=device, docker_storage_btrfs_mount_point=mount_point,
        docker_storage_preserve_images=True, docker_storage_image_archive_dir=engine.archive_dir, **extra))


def test_overlay2_to_vfs_start_fails(ansible, inventory, engines, fs):
    """dockerd rejects a vfs option at start: daemon.json comes back byte for byte, the engine runs on overlay2."""
    engine = engines(os.path.join(fs['ext4'], 'rb-vfs', 'docker'))
    load(engine)
    before = state(engine)
    variables = engine.vars('vfs', docker_storage_options=['vfs.hp_no_such_option=1'], docker_storage_validate=False,
                            docker_storage_preserve_images=True, docker_storage_image_archive_dir=engine.archive_dir,
                            docker_storage_keep_image_archive=False)
    plan = check_run(ansible, inventory, variables)
    run = ansible.playbook(PLAYBOOK, inventory, variables)
    msg = failed_message(run)
    assert 'host localhost: Start the engine (command) failed (backend vfs)' in msg, msg
    assert 'Restored: put back %s as it was' % engine.daemon_json in msg, msg
    assert 'runs again on its old configuration (driver overlay2' in msg, msg
    assert_unchanged(before, state(engine))
    # check mode after the restored failure behaves as if the failed run never happened: the same tasks with the
    # same outcome and the same differences, and nothing changed. (The archive the failed run saved is still there,
    # see test_a_restored_failure_leaves_no_image_archive: the archive check's difference is left out.)
    assert_unchanged(plan, check_run(ansible, inventory, variables), 'the check-mode run after the failure')
    assert_unchanged(before, state(engine))


def check_run(ansible, inventory, variables: dict) -> list:
    """A check-mode run of the role: each task with its outcome and the difference it reports (but the archive's)."""
    run = ansible.playbook(PLAYBOOK, inventory, variables, check=True)
    assert run.rc == 0 and not run.failed and run.changed > 0, run.stdout[-4000:]
    return [(r['task'], r['status'], '' if 'image archive' in r['task'] else json.dumps(r['result'].get('diff'), sort_keys=True))
            for r in run.records]


def test_a_restored_failure_leaves_no_image_archive(ansible, inventory, engines, fs):
    """The stop fails after the images were saved; everything is restored, so the archive the run made must go too
    (nothing archived that is not put back)."""
    engine = engines(os.path.join(fs['ext4'], 'rb-archive-left', 'docker'))
    load(engine)
    run = ansible.playbook(PLAYBOOK, inventory, engine.vars('vfs', docker_storage_preserve_images=True,
                                                            docker_storage_image_archive_dir=engine.archive_dir,
                                                            docker_storage_keep_image_archive=False,
                                                            docker_storage_stop_command=['false']))
    msg = failed_message(run)
    assert 'Stop the engine (command) failed (backend vfs)' in msg, msg
    archive = os.path.join(engine.archive_dir, 'docker-storage-images.tar')
    assert not os.path.exists(archive), 'the restored failure left the image archive %s behind: %s' % (archive, msg)


def test_write_of_daemon_json_fails(ansible, inventory, engines, fs, workdir):
    """The directory of daemon.json is immutable: the write fails with the engine stopped; it starts again."""
    engine = engines(os.path.join(fs['ext4'], 'rb-immutable', 'docker'))
    load(engine)
    archive_dir = os.path.join(workdir, 'archive-' + engine.name)
    os.makedirs(os.path.join(engine.dir, 'journal'))  # the journal's own directory stays writable
    before = state(engine)
    old_pid = engine.pid()
    subprocess.run(['chattr', '+i', engine.dir], check=True)
    try:
        run = ansible.playbook(PLAYBOOK, inventory, engine.vars('vfs', docker_storage_preserve_images=True,
                                                                docker_storage_image_archive_dir=archive_dir))
    finally:
        subprocess.run(['chattr', '-i', engine.dir], check=True)
    msg = failed_message(run)
    assert 'Write the daemon configuration failed (backend vfs)' in msg, msg
    assert 'No file, mount or data root had been changed yet' in msg, msg
    assert engine.pid() != old_pid, 'the engine was stopped for the change and started again'
    assert_unchanged(before, state(engine))
    # and a second run, with the fault gone, behaves as if the failed run never happened
    again = ansible.playbook(PLAYBOOK, inventory, engine.vars('vfs', docker_storage_preserve_images=True,
                                                              docker_storage_image_archive_dir=engine.archive_dir))
    assert again.rc == 0 and not again.failed, again.stdout[-4000:]
    assert engine.info()['Driver'] == 'vfs'


def test_btrfs_switch_start_fails(ansible, inventory, engines, fs, workdir):
    """overlay2 to btrfs with images preserved, dockerd rejects a btrfs option: the bind mount and the btrfs
    mount go, the old data root moves back, fstab and daemon.json are as they were."""
    engine = engines(os.path.join(fs['ext4'], 'rb-btrfs', 'docker'))
    load(engine)
    mount_point = os.path.join(engine.dir, 'btrfs')  # btrfs_disk() unmounts it
    before = state(engine)
    with btrfs_disk(engine, workdir) as device:
        run = ansible.playbook(PLAYBOOK, inventory, engine.vars(
            'btrfs', docker_storage_btrfs_device=device, docker_storage_btrfs_mount_point=mount_point,
            docker_storage_preserve_images=True, docker_storage_image_archive_dir=engine.archive_dir,
            docker_storage_options=['btrfs.hp_no_such_option=1'], docker_storage_validate=False))
        msg = failed_message(run)
        assert 'Start the engine (command) failed (backend btrfs)' in msg, msg
        for text in ('unmounted %s' % engine.data_root, 'unmounted %s' % mount_point,
                     'back to %s' % engine.data_root, 'put back %s as it was' % engine.fstab,
                     'put back %s as it was' % engine.daemon_json, 'driver overlay2'):
            assert text in msg, msg
        after = state(engine)
        assert os.path.isdir(mount_point)  # made by the change, empty, not mounted
        assert_unchanged(before, after)


def test_interrupted_btrfs_switch_is_rolled_back_by_the_next_run(ansible, inventory, engines, fs, workdir):
    """The controller is killed (SIGKILL) right after the old data root was moved aside; the next run finds
    the journal, rolls the change back (and says so), then makes the change again."""
    engine = engines(os.path.join(fs['ext4'], 'rb-kill', 'docker'))
    load(engine)
    mount_point = os.path.join(engine.dir, 'btrfs')  # btrfs_disk() unmounts it
    images = engine.image_ids()
    with btrfs_disk(engine, workdir) as device:
        variables = engine.vars('btrfs', docker_storage_btrfs_device=device, docker_storage_btrfs_mount_point=mount_point,
                                docker_storage_preserve_images=True, docker_storage_image_archive_dir=engine.archive_dir)
        kill_at(ansible, inventory, variables, kill_points(engine, len(images))['data root moved aside'])
        assert os.path.exists(os.path.join(engine.dir, 'journal', 'journal.json'))

        again = ansible.playbook(PLAYBOOK, inventory, variables)
        assert again.rc == 0 and not again.failed, again.stdout[-6000:]
        note_time(again, 'Look for a storage change that an earlier run left unfinished', 'Say what the rollback restored')
        said = again.result('Say what the rollback restored')['msg']
        assert 'rolled back the unfinished change' in said and 'back to %s' % engine.data_root in said, said
        info = engine.info()
        assert (info['Driver'], info['DockerRootDir']) == ('btrfs', engine.data_root)
        assert engine.image_ids() == images
        assert not os.path.exists(os.path.join(engine.dir, 'journal', 'journal.json'))


def alive(pid: int | None) -> bool:
    return bool(pid) and os.path.exists('/proc/%d' % pid)


def answers(engine) -> bool:
    try:
        with contextlib.closing(engine.client()) as client:
            return bool(client.ping())
    except Exception:  # pylint: disable=broad-except
        return False


def kill_points(engine, images: int) -> dict:
    """The journalled steps of a storage change, each as what the host shows once the step has done its work.
    Host-observable points keep each case true to its step, whatever the role's task names are."""
    journal = os.path.join(engine.dir, 'journal', 'journal.json')
    archive = os.path.join(engine.archive_dir, 'docker-storage-images.tar')
    config, fstab = read_bytes(engine.daemon_json), read_bytes(engine.fstab)
    old_pid = engine.pid()
    parent = os.path.dirname(engine.data_root)

    def written() -> bool:
        return read_bytes(engine.daemon_json) != config

    return {
        'journal begun': lambda: os.path.exists(journal),
        'images saved': lambda: os.path.exists(archive),
        'engine stopped': lambda: not alive(old_pid),
        'daemon.json written': written,
        'engine started': lambda: written() and engine.pid() != old_pid and answers(engine),
        'images loaded': lambda: written() and answers(engine) and len(engine.image_ids()) >= images,
        'journal finished': lambda: written() and not os.path.exists(journal),
        # the steps the btrfs path adds
        'data root moved aside': lambda: any(name.startswith('docker.hostprep-') for name in os.listdir(parent)),
        'btrfs mounted at the data root': lambda: any(m[0] == engine.data_root and m[2] == 'btrfs' for m in mounts(engine.data_root)),
        'fstab written': lambda: read_bytes(engine.fstab) != fstab,
    }


# The engine's own processes, which a start command may still have as children when the controller dies.
ENGINE_PROCESSES = ('dockerd', 'containerd', 'containerd-shim', 'containerd-shim-runc-v2', 'docker-proxy', 'runc')


def tree(pid: int) -> set[int]:
    """pid and every process below it (by parent pid), the engine's own processes left out."""
    parents, names = {}, {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/stat' % entry, encoding='utf-8', errors='replace') as handle:
                    stat = handle.read()
            except OSError:
                continue
            names[int(entry)] = stat[stat.index('(') + 1:stat.rindex(')')]
            parents[int(entry)] = int(stat[stat.rindex(')') + 2:].split()[1])
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        todo += [child for child, parent in parents.items() if parent == current and child not in found
                 and names.get(child) not in ENGINE_PROCESSES]
    return found


def kill_at(ansible, inventory, variables: dict, point) -> None:
    """Run the role and SIGKILL the controller as soon as point() holds, and with it every process it started: its
    workers (ansible runs each in a session of its own, so killing the process group would leave the task in
    flight running on) and the module in flight. Fails when the run ends before the point."""
    proc = ansible.spawn(PLAYBOOK, inventory, variables)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not point():
        time.sleep(0.02)
    assert proc.poll() is None, 'the run ended before the kill point'
    stopped: set[int] = set()
    for dummy in range(3):  # stop the tree first, so that nothing in it starts another process meanwhile
        for pid in tree(proc.pid) - stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
            stopped.add(pid)
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1)


# (backend, kill point): every journalled step boundary of overlay2 -> vfs (overlay2 and vfs have the same steps),
# and those the btrfs path adds (its "data root moved aside" is test_interrupted_btrfs_switch_is_rolled_back_by_the_next_run).
KILL_CASES = [('vfs', point) for point in ('journal begun', 'images saved', 'engine stopped', 'daemon.json written',
                                           'engine started', 'images loaded', 'journal finished')]
KILL_CASES += [('btrfs', 'btrfs mounted at the data root'), ('btrfs', 'fstab written')]
# `make integration` kills at these; HOSTPREP_FAULTS=all (`make test-vm`) at every point of KILL_CASES.
CI_KILL_CASES = [('vfs', 'engine stopped'), ('vfs', 'daemon.json written')]


@pytest.mark.parametrize('backend,point', [case for case in KILL_CASES
                                           if os.environ.get('HOSTPREP_FAULTS') == 'all' or case in CI_KILL_CASES],
                         ids=lambda value: value.replace(' ', '-'))
def test_interrupted_change(ansible, inventory, engines, fs, workdir, backend, point):
    """overlay2 to `backend`, images preserved; the controller is killed once the step `point` has done its work.
    A second run in check mode names the unfinished change and changes nothing; a run of the host's own
    configuration (overlay2) rolls the change back, says so, and the host is exactly as before the first run.
    Killed after the journal was finished, the change is complete: the next run of it changes nothing."""
    engine = engines(os.path.join(fs['ext4'], 'rb-kill-%s-%s' % (backend, point.replace(' ', '-')), 'docker'),
                     {'storage-driver': 'overlay2', 'storage-opts': []})  # as the role writes overlay2
    load(engine)
    before = state(engine)
    extra = {'docker_storage_preserve_images': True, 'docker_storage_image_archive_dir': engine.archive_dir,
             'docker_storage_keep_image_archive': False}
    with (btrfs_disk(engine, workdir) if backend == 'btrfs' else contextlib.nullcontext()) as device:
        if backend == 'btrfs':
            extra.update(docker_storage_btrfs_device=device, docker_storage_btrfs_mount_point=os.path.join(engine.dir, 'btrfs'))
        target = engine.vars(backend, **extra)
        kill_at(ansible, inventory, target, kill_points(engine, len(before['images']))[point])
        if point == 'journal finished':
            again = ansible.playbook(PLAYBOOK, inventory, target)
            assert again.rc == 0 and not again.failed and again.changed == 0, again.stdout[-4000:]
            assert not again.results('Say what the rollback restored')
            assert engine.info()['Driver'] == backend and engine.image_ids() == before['images']
            return
        second_run_rolls_back(ansible, inventory, engine, before)


def second_run_rolls_back(ansible, inventory, engine, before: dict) -> None:
    """Check mode names the unfinished change and changes nothing; a real run of the host's own configuration rolls
    it back, says so, and the host is as before the killed run."""
    journal = os.path.join(engine.dir, 'journal', 'journal.json')

    def on_disk():
        return files(engine.daemon_json, engine.fstab, journal), mounts(engine.data_root, engine.dir)

    assert os.path.exists(journal), 'the killed run left no journal'
    own = engine.vars('overlay2')
    killed = on_disk()
    check = ansible.playbook(PLAYBOOK, inventory, own, check=True)
    assert check.rc == 0 and not check.failed, check.stdout[-4000:]
    said = check.result('Say that an earlier change did not finish')['msg']
    assert 'did not finish' in said and 'a real run rolls it back' in said, said
    assert check.changed > 0, 'check mode must report the rollback a real run makes as a change'
    assert_unchanged(killed, on_disk(), 'the host after the check-mode run')
    again = ansible.playbook(PLAYBOOK, inventory, own)
    assert again.rc == 0 and not again.failed, again.stdout[-6000:]
    note_time(again, 'Look for a storage change that an earlier run left unfinished', 'Say what the rollback restored')
    said = again.result('Say what the rollback restored')['msg']
    assert 'rolled back the unfinished change' in said, said
    assert_unchanged(before, state(engine))


def test_btrfs_mount_option_rejected(ansible, inventory, engines, fs, workdir):
    """btrfs is made, then its mount fails on an option btrfs rejects: the old data root moves back."""
    engine = engines(os.path.join(fs['ext4'], 'rb-btrfs-opt', 'docker'))
    load(engine)
    mount_point = os.path.join(engine.dir, 'btrfs')  # btrfs_disk() unmounts it
    before = state(engine)
    with btrfs_disk(engine, workdir) as device:
        run = switch_to_btrfs(ansible, inventory, engine, device, mount_point,
                              docker_storage_btrfs_mount_options=['hp_no_such_option'])
        msg = failed_message(run)
        assert 'Put btrfs under the data root - apply failed (backend btrfs)' in msg, msg
        assert 'back to %s' % engine.data_root in msg and 'driver overlay2' in msg, msg
        assert_unchanged(before, state(engine))


def test_btrfs_fstab_immutable(ansible, inventory, engines, fs, workdir):
    """fstab cannot be written (chattr +i): the btrfs mounts go, the old data root moves back."""
    engine = engines(os.path.join(fs['ext4'], 'rb-btrfs-fstab', 'docker'))
    load(engine)
    mount_point = os.path.join(engine.dir, 'btrfs')  # btrfs_disk() unmounts it
    before = state(engine)
    with btrfs_disk(engine, workdir) as device:
        subprocess.run(['chattr', '+i', engine.fstab], check=True)
        try:
            run = switch_to_btrfs(ansible, inventory, engine, device, mount_point)
        finally:
            subprocess.run(['chattr', '-i', engine.fstab], check=True)
        msg = failed_message(run)
        assert 'Put btrfs under the data root - apply failed (backend btrfs)' in msg, msg
        assert 'back to %s' % engine.data_root in msg and 'driver overlay2' in msg, msg
        assert_unchanged(before, state(engine))


def test_save_fails_on_a_full_filesystem(ansible, inventory, engines, fs, workdir):
    """The image archive's filesystem is full: nothing is stopped or changed, no partial archive stays."""
    engine = engines(os.path.join(fs['ext4'], 'rb-save', 'docker'))
    load(engine)
    with loop_filesystem(workdir, 'ext4', size_mb=8) as small:
        filler = os.path.join(small, 'filler')
        subprocess.run(['dd', 'if=/dev/zero', 'of=' + filler, 'bs=1M', 'count=16', 'status=none'], check=False)
        before = state(engine)
        pid = engine.pid()
        archive_dir = os.path.join(small, 'archive')
        run = ansible.playbook(PLAYBOOK, inventory, engine.vars('vfs', docker_storage_preserve_images=True,
                                                                docker_storage_image_archive_dir=archive_dir))
        msg = failed_message(run)
        assert 'Save the images of the old storage failed (backend vfs)' in msg, msg
        assert 'No file, mount or data root had been changed yet' in msg and 'was not stopped' in msg, msg
        assert engine.pid() == pid
        assert_unchanged(before, state(engine))
        assert not os.path.exists(os.path.join(archive_dir, 'docker-storage-images.tar'))


def test_stop_fails(ansible, inventory, engines, fs):
    """The stop command fails: nothing is changed and the engine keeps running on its configuration."""
    engine = engines(os.path.join(fs['ext4'], 'rb-stop', 'docker'))
    load(engine)
    before = state(engine)
    run = ansible.playbook(PLAYBOOK, inventory, engine.vars('vfs', docker_storage_preserve_images=True,
                                                            docker_storage_image_archive_dir=engine.archive_dir,
                                                            docker_storage_stop_command=['false']))
    msg = failed_message(run)
    assert 'Stop the engine (command) failed (backend vfs)' in msg, msg
    assert 'No file, mount or data root had been changed yet' in msg and 'driver overlay2' in msg, msg
    assert_unchanged(before, state(engine))


def test_reset_fails_halfway(ansible, inventory, engines, fs):
    """A reset that fails halfway (an immutable file in the data root) cannot be undone: the role says what the
    reset removed, puts daemon.json back and starts the engine again on its old configuration."""
    engine = engines(os.path.join(fs['ext4'], 'rb-reset', 'docker'))
    load(engine)
    config = files(engine.daemon_json, engine.fstab)
    stuck = os.path.join(engine.data_root, 'containers')
    subprocess.run(['chattr', '+i', stuck], check=True)
    try:
        run = ansible.playbook(PLAYBOOK, inventory, engine.vars('overlay2', docker_storage_reset=True,
                                                                docker_storage_reset_force=True))
    finally:
        subprocess.run(['chattr', '-i', stuck], check=True)
    msg = failed_message(run)
    assert "Reset the data root's storage failed (backend overlay2)" in msg, msg
    assert 'Changed before the failure: removed' in msg and 'driver overlay2' in msg, msg
    assert_unchanged(config, files(engine.daemon_json, engine.fstab))
    assert engine.info()['Driver'] == 'overlay2'


def test_engine_comes_up_on_another_driver(ansible, inventory, engines, fs):
    """The service starts dockerd with another configuration file than the one the role writes (a unit that
    points elsewhere): the engine answers on the old driver, the driver check fails, the change is rolled back."""
    engine = engines(os.path.join(fs['ext4'], 'rb-check', 'docker'))
    load(engine)
    other = os.path.join(engine.dir, 'other.json')
    with open(engine.daemon_json, 'rb') as src, open(other, 'wb') as dst:
        dst.write(src.read())
    start = [part if part != engine.daemon_json else other for part in engine.start_cmd]
    before = state(engine)
    run = ansible.playbook(PLAYBOOK, inventory, engine.vars('vfs', docker_storage_preserve_images=True,
                                                            docker_storage_image_archive_dir=engine.archive_dir,
                                                            docker_storage_start_command=start))
    msg = failed_message(run)
    assert 'Check that the engine uses the backend failed (backend vfs)' in msg, msg
    assert 'reports storage driver overlay2' in msg and 'Restored: put back %s as it was' % engine.daemon_json in msg
    assert_unchanged(before, state(engine))


def test_load_fails_on_a_damaged_archive(ansible, inventory, engines, fs, workdir):
    """The image archive is damaged between the save and the load (the service's start wrapper truncates it):
    the load into btrfs fails, and the change is rolled back to overlay2 with its images."""
    engine = engines(os.path.join(fs['ext4'], 'rb-load', 'docker'))
    load(engine)
    mount_point = os.path.join(engine.dir, 'btrfs')  # btrfs_disk() unmounts it
    archive = os.path.join(engine.archive_dir, 'docker-storage-images.tar')
    start = ['sh', '-c', '[ ! -f "$0" ] || truncate -s 4096 "$0"; exec "$@"', archive] + engine.start_cmd
    before = state(engine)
    with btrfs_disk(engine, workdir) as device:
        run = switch_to_btrfs(ansible, inventory, engine, device, mount_point, docker_storage_start_command=start)
        msg = failed_message(run)
        assert 'Load the saved images into the new storage failed (backend btrfs)' in msg, msg
        assert 'back to %s' % engine.data_root in msg and 'driver overlay2' in msg, msg
        assert_unchanged(before, state(engine))


def test_archive_cannot_be_removed(ansible, inventory, engines, fs, workdir):
    """After a complete change the archive's directory has become immutable (the service's start wrapper does it):
    the change stands, and the role names the archive left behind instead of undoing the change."""
    engine = engines(os.path.join(fs['ext4'], 'rb-archive', 'docker'))
    load(engine)
    images = engine.image_ids()
    mount_point = os.path.join(engine.dir, 'btrfs')  # btrfs_disk() unmounts it
    start = ['sh', '-c', '[ ! -d "$0" ] || chattr +i "$0"; exec "$@"', engine.archive_dir] + engine.start_cmd
    with btrfs_disk(engine, workdir) as device:
        try:
            run = switch_to_btrfs(ansible, inventory, engine, device, mount_point, docker_storage_start_command=start,
                                  docker_storage_keep_image_archive=False)
            assert run.rc == 0, run.stdout[-4000:]
            said = run.result('Name the archive that could not be removed')['msg']
            assert 'the storage change is complete (backend btrfs)' in said and 'remove it by hand' in said, said
            assert os.path.exists(os.path.join(engine.archive_dir, 'docker-storage-images.tar'))
            assert engine.info()['Driver'] == 'btrfs' and engine.image_ids() == images
            assert not os.path.exists(os.path.join(engine.dir, 'journal', 'journal.json'))
        finally:
            subprocess.run(['chattr', '-i', engine.archive_dir], check=False)


def test_dockerd_killed_while_it_starts(ansible, inventory, engines, fs, workdir):
    """dockerd is SIGKILLed as soon as it writes its pidfile on the new configuration (once: the service's
    start wrapper does it the first time only): the change is rolled back and the engine runs on overlay2."""
    engine = engines(os.path.join(fs['ext4'], 'rb-killed', 'docker'))
    load(engine)
    once = os.path.join(workdir, 'killed-' + engine.name)
    pidfile = os.path.join(engine.state, 'dockerd.pid')
    wrapper = ('pidfile=$1; shift; if [ -e "$0" ]; then exec "$@"; fi; touch "$0"; rm -f "$pidfile"; "$@" & start=$!; i=0; '
               'while [ ! -s "$pidfile" ] && [ $i -lt 300 ]; do sleep 0.02; i=$((i+1)); done; '
               '[ -s "$pidfile" ] && kill -KILL "$(cat "$pidfile")"; wait $start')
    start = ['sh', '-c', wrapper, once, pidfile] + engine.start_cmd
    before = state(engine)
    run = ansible.playbook(PLAYBOOK, inventory, engine.vars('vfs', docker_storage_preserve_images=True,
                                                            docker_storage_image_archive_dir=engine.archive_dir,
                                                            docker_storage_start_command=start))
    msg = failed_message(run)
    assert os.path.exists(once), 'the wrapper never ran'
    assert 'failed (backend vfs)' in msg and 'Restored: put back %s as it was' % engine.daemon_json in msg, msg
    assert 'runs again on its old configuration (driver overlay2' in msg, msg
    assert_unchanged(before, state(engine))
