# SPDX-License-Identifier: GPL-3.0-or-later
"""docker_cow_benchmark against real engines (Debian 12's dockerd 20.10).

Four private dockerd (tests/lab/dockerd.py), each with its data root
on its own loop-mounted filesystem: btrfs (driver btrfs), XFS and ext4
(driver overlay2) and ext4 (driver vfs). Every module run is a real
ansible-playbook process; what is left on the engines is read back with the
Docker SDK. An interrupted run is made by SIGKILLing dockerd in the middle of
a run; the next run must remove what the first one left.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest
import yaml

from conftest import workdir_fixture
from tests.lab.dockerd import PrivateDockerd, engines_on_loop_filesystems

MODULE = 'hostprep.container_host.docker_cow_benchmark'
LABEL = 'io.hostprep.cow-benchmark'
BACKENDS = {
    # name: (filesystem, storage driver)
    'btrfs': ('btrfs', 'btrfs'),
    'overlay2-xfs': ('xfs', 'overlay2'),
    'overlay2-ext4': ('ext4', 'overlay2'),
    'vfs': ('ext4', 'vfs'),
}


workdir = workdir_fixture('hp-cow', ('dockerd', 'containerd', 'runc', 'losetup', 'findmnt', 'mkfs.xfs', 'mkfs.btrfs',
                                     'mkfs.ext4', 'btrfs', '/bin/busybox'))


@pytest.fixture(scope='module')
def engines(workdir):
    """One private engine per backend, each on its own filesystem; plus a
    tiny one (64 MiB ext4) for the free-space refusal."""
    specs = {name: (fstype, driver, 320) for name, (fstype, driver) in BACKENDS.items()}
    with engines_on_loop_filesystems(workdir, dict(specs, tiny=('ext4', 'overlay2', 64))) as started:
        yield started


def labelled(engine: PrivateDockerd) -> tuple[list, list]:
    client = engine.client
    return (client.containers.list(all=True, filters={'label': LABEL}),
            client.images.list(all=True, filters={'label': LABEL}))


def engine_state(engine: PrivateDockerd) -> tuple[list[str], list[str]]:
    client = engine.client
    return (sorted(c.id for c in client.containers.list(all=True)), sorted(i.id for i in client.images.list(all=True)))


def write_play(ansible, tasks: list[dict], hosts: str = 'all') -> str:
    path = os.path.join(ansible.workdir, 'cow-%s.yml' % uuid.uuid4().hex[:8])
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump([{'name': 'cow benchmark', 'hosts': hosts, 'gather_facts': False, 'tasks': tasks}], handle)
    return path


def test_check_mode_runs_nothing(ansible, engines):
    engine = engines['btrfs']
    before = engine_state(engine)
    res = ansible.module(MODULE, {'docker_host': engine.base_url, 'count': 2}, check=True)
    assert not res['failed'], res
    assert res['check_mode'] is True and res['changed'] is False
    assert 'did not run' in res['msg'] and 'oneshot, commit, run_from_commit' in res['msg']
    assert res['leftovers_found']['total'] == 0
    assert res['plan']['space']['required'] < res['plan']['space']['free']
    assert 'operations' not in res
    assert engine_state(engine) == before


def test_all_backends_complete_with_plausible_figures(ansible, engines):
    """All three scenarios, count 3, on the four backends in one playbook
    (one inventory host per engine)."""
    count = 2
    inventory = ansible.inventory({name: {'engine': engines[name].base_url} for name in BACKENDS})
    play = write_play(ansible, [{'name': 'bench', MODULE: {'docker_host': '{{ engine }}', 'count': count, 'sleep_seconds': 120}}])
    run = ansible.playbook(play, inventory, forks=4)
    assert run.rc == 0, run.stdout[-4000:]
    results = {name: run.result('bench', host=name) for name in BACKENDS}
    for name, res in results.items():
        fstype, driver = BACKENDS[name]
        assert res['engine']['driver'] == driver, (name, res['engine'])
        assert res['filesystem']['fstype'] == fstype
        assert res['image']['imported'] is True
        assert res['changed'] is False
        assert [op['scenario'] for op in res['operations']] == ['oneshot'] * count + ['commit'] * count + \
            ['run_from_commit'] * count
        for scenario in ('oneshot', 'commit', 'run_from_commit'):
            stats = res['scenarios'][scenario]
            assert stats['count'] == count
            assert 0 < stats['seconds']['min'] <= stats['seconds']['median'] <= stats['seconds']['max'] < 60
            assert stats['seconds']['first'] == res['operations'][[op['scenario'] for op in res['operations']]
                                                                  .index(scenario)]['seconds']
        # every oneshot container wrote 64 KiB: disk use grew by at least that much in total
        assert res['scenarios']['oneshot']['fs_growth']['total'] >= count * 65536, (name, res['scenarios']['oneshot'])
        memory = res['memory']
        assert memory['running'] == count
        assert memory['after']['shim_count'] == count and memory['after']['shims_rss'] > 0
        assert memory['after']['dockerd_rss'] > 0 and memory['after']['containerd_rss'] > 0
        assert memory['after']['mem_available'] > 0
        assert res['cleanup']['errors'] == [] and res['cleanup']['containers'] == 2 * count
        assert res['cleanup']['images'] == count + 1
        assert res['seconds']['operations'] < res['seconds']['benchmark']
        assert labelled(engines[name]) == ([], []), name
    # the backend's own counters where it has them
    assert results['btrfs']['counters'] == 'btrfs'
    assert results['btrfs']['scenarios']['oneshot']['data_growth']['total'] >= count * 65536
    assert results['btrfs']['scenarios']['oneshot']['metadata_growth'] is not None
    assert results['vfs']['counters'] == 'none'
    assert results['vfs']['operations'][0]['data_growth'] is None
    # vfs copies the whole image for every container; btrfs snapshots it
    busybox = os.path.getsize('/bin/busybox')
    vfs = results['vfs']['scenarios']['oneshot']['fs_growth']['median']
    btrfs = results['btrfs']['scenarios']['oneshot']['fs_growth']['median']
    assert vfs >= busybox, results['vfs']['scenarios']['oneshot']
    assert btrfs < vfs / 2, (btrfs, vfs)
    for name in ('overlay2-xfs', 'overlay2-ext4'):
        assert results[name]['scenarios']['oneshot']['fs_growth']['median'] < vfs, name


def test_interrupted_run_is_cleaned_up_by_the_next(ansible, engines):
    """SIGKILL dockerd while a run is under way; restart it; the next run
    removes what the first one left and reports how many."""
    engine = engines['overlay2-ext4']
    inventory = ansible.inventory({'victim': {'engine': engine.base_url}})
    play = write_play(ansible, [{'name': 'bench', MODULE: {'docker_host': '{{ engine }}', 'count': 8, 'timeout': 20}}])
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(run=ansible.playbook(play, inventory)))
    thread.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            containers, images = labelled(engine)
            if len(containers) >= 3:
                break
            if not thread.is_alive():
                pytest.fail('the run ended before it could be interrupted:\n%s' % box['run'].stdout[-3000:])
            time.sleep(0.2)
        else:
            pytest.fail('the benchmark made no containers within 90 s')
        engine.proc.kill()
        engine.proc.wait(timeout=20)
    finally:
        thread.join(timeout=180)
    first = box['run'].result('bench', host='victim')
    assert box['run'].rc != 0
    assert 'benchmark failed' in first['msg'] or 'does not answer' in first['msg'], first['msg']
    assert first['cleanup']['errors'], first['cleanup']
    assert 'next run removes them' in first['cleanup']['note']

    # as a service manager would: end what the killed dockerd left running
    # (its containerd and shims), then start the engine again
    engine.stop()
    engine.start(timeout=120)
    containers, images = labelled(engine)
    left = len(containers) + len(images)
    assert len(containers) >= 3 and len(images) >= 1, (containers, images)
    assert {c.labels[LABEL] for c in containers} == {first['run_id']}

    res = ansible.module(MODULE, {'docker_host': engine.base_url, 'count': 1, 'scenarios': ['oneshot']})
    assert not res['failed'], res
    assert res['changed'] is True
    assert res['leftovers_removed']['total'] == left
    assert res['leftovers_removed']['runs'] == [first['run_id']]
    assert res['scenarios']['oneshot']['count'] == 1
    assert labelled(engine) == ([], [])


def test_bad_input_fails_clearly_and_changes_nothing(ansible, engines):
    engine = engines['btrfs']
    tiny = engines['tiny']
    before, tiny_before = engine_state(engine), engine_state(tiny)
    base = {'docker_host': engine.base_url, 'count': 1}
    cases = {
        'count zero': (dict(base, count=0), ['count must be between 1 and 1000']),
        'count negative': (dict(base, count=-1), ['count must be between 1 and 1000', '-1']),
        'write_size lots': (dict(base, write_size='lots'), ['write_size', "'lots' is not a size"]),
        'unreachable engine': (dict(base, docker_host='unix:///tmp/hp-no-such-engine.sock'),
                               ['unix:///tmp/hp-no-such-engine.sock', 'does not answer']),
        'no busybox, no image': (dict(base, busybox='/nonexistent/busybox'),
                                 ['/nonexistent/busybox does not exist', 'busybox-static', 'image']),
        'dynamic busybox': (dict(base, busybox='/bin/ls'), ['dynamically linked']),
        'missing image': (dict(base, image='hostprep-no-such-image:1'),
                          ['image hostprep-no-such-image:1 is not on the engine']),
        'too little space': ({'docker_host': tiny.base_url, 'count': 10},
                             ['free, but the run needs about', '30 operations', 'write_size 64.0 KiB']),
    }
    tasks = [{'name': name, MODULE: args, 'ignore_errors': True} for name, (args, dummy) in cases.items()]
    run = ansible.playbook(write_play(ansible, tasks), ansible.inventory({'lab': {}}))
    for name, (dummy, words) in cases.items():
        res = run.result(name)
        assert run.results(name)[-1]['status'] == 'failed', (name, res)
        for word in words:
            assert word in res['msg'], (name, word, res['msg'])
    assert engine_state(engine) == before
    assert engine_state(tiny) == tiny_before
