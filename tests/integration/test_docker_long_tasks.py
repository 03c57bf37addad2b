# SPDX-License-Identifier: GPL-3.0-or-later
"""The long tasks in the background (issue 11, "Long tasks"): docker_images_archive and docker_cow_benchmark run
with ``async``/``poll`` as their EXAMPLES show, against a private dockerd, in one real ansible-playbook run:

- the image archive saved with ``async`` and ``poll`` (Ansible polls the job itself), then, the image removed,
  loaded back with ``poll: 0`` and an ``async_status`` loop;
- the benchmark started with ``poll: 0`` and waited for with an ``async_status`` loop, then run again with
  ``async`` and ``poll``.

Each result is the module's own (changed, the archive's size and images, the benchmark's figures), and the engine
holds the same images afterwards and none of the benchmark's containers.
"""

from __future__ import annotations

import os

import pytest

from conftest import workdir_fixture
from tests.lab.dockerd import PrivateDockerd, import_busybox, loop_filesystem
from tests.lab.playbook import write_yaml

ARCHIVE = 'hostprep.container_host.docker_images_archive'
COW = 'hostprep.container_host.docker_cow_benchmark'

workdir = workdir_fixture('hp-async', ('dockerd', 'containerd', 'busybox', 'losetup', 'mkfs.ext4'))


@pytest.fixture(scope='module')
def engine(workdir):
    with loop_filesystem(workdir, 'ext4', size_mb=160) as ext4:
        with PrivateDockerd(workdir, data_root=os.path.join(ext4, 'docker')) as dockerd:
            import_busybox(dockerd.client)
            yield dockerd


def wait_for(job: str, name: str) -> dict:
    return {'name': name, 'ansible.builtin.async_status': {'jid': '{{ %s.ansible_job_id }}' % job},
            'register': name.replace(' ', '_'), 'until': '%s.finished' % name.replace(' ', '_'),
            'retries': 120, 'delay': 1}


def test_archive_and_benchmark_in_the_background(ansible, engine, workdir):
    archive = os.path.join(workdir, 'archive', 'images.tar')
    images = sorted(image.id for image in engine.client.images.list())
    cow = {'docker_host': engine.base_url, 'count': 1, 'scenarios': ['oneshot'], 'sleep_seconds': 5}
    play = [{'name': 'long tasks in the background', 'hosts': 'all', 'gather_facts': False, 'tasks': [
        {'name': 'save polled', ARCHIVE: {'path': archive, 'docker_host': engine.base_url}, 'async': 300, 'poll': 1},
        {'name': 'start benchmark', COW: cow, 'async': 600, 'poll': 0, 'register': 'bench_job'},
        wait_for('bench_job', 'benchmark done'),
        {'name': 'benchmark polled', COW: cow, 'async': 600, 'poll': 2},
        {'name': 'remove the image', 'ansible.builtin.command': {
            'argv': ['docker', '-H', engine.base_url, 'rmi', 'hostprep-busybox:latest']}},
        {'name': 'start load', ARCHIVE: {'path': archive, 'state': 'loaded', 'docker_host': engine.base_url},
         'async': 300, 'poll': 0, 'register': 'load_job'},
        wait_for('load_job', 'load done'),
    ]}]
    run = ansible.playbook(write_yaml(os.path.join(workdir, 'async.yml'), play))
    assert run.rc == 0, run.stdout[-4000:]

    saved = run.result('save polled')
    assert saved['changed'] and saved['size'] == os.path.getsize(archive) > 0, saved
    assert saved['finished'] == 1 and saved['ansible_job_id'], saved
    assert [entry['tags'] for entry in saved['images']] == [['hostprep-busybox:latest']]
    started = run.result('start benchmark')
    assert started['started'] == 1 and started['finished'] == 0, started
    for name in ('benchmark done', 'benchmark polled'):
        bench = run.result(name)
        assert bench['finished'] == 1 and not bench.get('failed'), (name, bench)
        oneshot = bench['scenarios']['oneshot']
        assert oneshot['seconds']['median'] > 0 and oneshot['count'] == 1, (name, oneshot)
    print('async_status polled the benchmark %d times' % run.result('benchmark done')['attempts'])
    loaded = run.result('load done')
    assert loaded['finished'] == 1 and not loaded.get('failed') and loaded['changed'], loaded
    assert sorted(image.id for image in engine.client.images.list()) == images
    assert not [c for c in engine.client.containers.list(all=True) if c.name.startswith('hostprep-cow')]
