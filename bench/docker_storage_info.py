# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of docker_storage_info against a private dockerd (on demand).

A private dockerd (overlay2 on a loop-mounted ext4, tests/lab/dockerd.py) is filled step by step to 0, 100 and 1000 images plus as many
containers (created, not started). Images are made cheaply: one
``docker load`` of an archive holding N image configs that share busybox's
one layer. At each step, with 3 repetitions and the median taken:

- the module itself (its Python process, as Ansible runs it on the host);
- the module through ansible-playbook (one task);
- the manual way: ``docker info`` and ``docker system df`` (two CLI calls).

Prints a Markdown table, the growth of the time per object from one step
to the next (at most linear means a ratio of the per-object cost near 1 or
below), and writes the figures to bench/results/.

    .venv/bin/python -m bench.docker_storage_info [--counts 0,100,1000] [--reps 3]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

from tests.lab import LINKROOT, ROOT
from tests.lab.dockerd import PrivateDockerd, loop_filesystem
from tests.lab.playbook import Ansible

from ansible_collections.hostprep.container_host.plugins.module_utils._cow_benchmark import busybox_tar

MODULE_FILE = os.path.join(ROOT, 'plugins', 'modules', 'docker_storage_info.py')
# the module runs as its own process, importing its module_utils from the collection
ENV = dict(os.environ, PYTHONPATH=LINKROOT)
APPLETS = ('sh', 'true', 'echo', 'cat', 'ls')


def busybox_layer() -> bytes:
    return busybox_tar(shutil.which('busybox') or '/bin/busybox', APPLETS)


def image_archive(path: str, first: int, count: int) -> None:
    """A ``docker save`` archive of count images (distinct configs, one
    shared layer), tagged hostprep-bench:FIRST..FIRST+count-1."""
    layer = busybox_layer()
    diff_id = 'sha256:' + hashlib.sha256(layer).hexdigest()
    layer_dir = hashlib.sha256(layer).hexdigest()
    manifest = []
    with tarfile.open(path, 'w') as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add(layer_dir + '/layer.tar', layer)
        for number in range(first, first + count):
            config = json.dumps({
                'architecture': 'amd64', 'os': 'linux', 'created': '2024-01-01T00:00:00Z',
                'config': {'Cmd': ['sh'], 'Labels': {'hostprep.bench': str(number)}},
                'rootfs': {'type': 'layers', 'diff_ids': [diff_id]},
                'history': [{'created': '2024-01-01T00:00:00Z', 'created_by': 'hostprep bench'}],
            }, sort_keys=True).encode()
            name = hashlib.sha256(config).hexdigest() + '.json'
            add(name, config)
            manifest.append({'Config': name, 'RepoTags': ['hostprep-bench:%d' % number],
                             'Layers': [layer_dir + '/layer.tar']})
        add('manifest.json', json.dumps(manifest).encode())


def grow(engine: PrivateDockerd, workdir: str, have: int, want: int) -> float:
    """Add images and containers (created, not started) up to want each."""
    if want <= have:
        return 0.0
    start = time.monotonic()
    archive = os.path.join(workdir, 'images-%d.tar' % want)
    image_archive(archive, have, want - have)
    with open(archive, 'rb') as handle:
        engine.client.api.load_image(handle.read())
    os.unlink(archive)
    for number in range(have, want):
        engine.client.api.create_container('hostprep-bench:%d' % number, ['true'], network_disabled=True,
                                           name='hostprep-bench-%d' % number)
    return time.monotonic() - start


def timed(cmd: list[str], stdin: str | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=ENV, input=stdin)
    return time.monotonic() - start, proc


def run_module(engine: PrivateDockerd, workdir: str) -> tuple[float, dict]:
    args = os.path.join(workdir, 'args.json')
    with open(args, 'w', encoding='utf-8') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': {'docker_host': engine.base_url, 'flags_sources': [],
                                           'daemon_config': os.path.join(workdir, 'none.json'),
                                           'timeout': 600}}, handle)
    wall, proc = timed([sys.executable, MODULE_FILE, args])
    if proc.returncode != 0:
        raise RuntimeError('module failed: %s %s' % (proc.stdout[-2000:], proc.stderr[-2000:]))
    return wall, json.loads(proc.stdout)


def run_playbook(engine: PrivateDockerd, workdir: str) -> float:
    """The module as one task of an ansible-playbook run: its wall time."""
    start = time.monotonic()
    result = Ansible(workdir).module('hostprep.container_host.docker_storage_info', {
        'docker_host': engine.base_url, 'flags_sources': [], 'timeout': 600,
        'daemon_config': os.path.join(workdir, 'none.json')})
    wall = time.monotonic() - start
    if result['failed']:
        raise RuntimeError('docker_storage_info failed: %s' % result.get('msg'))
    return wall


def run_manual(engine: PrivateDockerd) -> float:
    wall = 0.0
    for cmd in (['docker', '-H', engine.base_url, 'info', '--format', '{{json .}}'],
                ['docker', '-H', engine.base_url, 'system', 'df', '--format', '{{json .}}']):
        took, proc = timed(cmd)
        if proc.returncode != 0:
            raise RuntimeError('%s failed: %s' % (' '.join(cmd), proc.stderr))
        wall += took
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--counts', default='0,100,1000', help='comma-separated object counts')
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--fs-size-mb', type=int, default=4096)
    opts = parser.parse_args()
    counts = sorted(int(c) for c in opts.counts.split(','))
    if os.geteuid() != 0:
        print('run as root: the benchmark mounts a loop filesystem and starts dockerd')
        return 1
    workdir = tempfile.mkdtemp(prefix='hp-bench-dsi-')
    rows = []
    try:
        with loop_filesystem(workdir, 'ext4', size_mb=opts.fs_size_mb) as mnt:
            engine = PrivateDockerd(workdir, data_root=os.path.join(mnt, 'docker'), storage_driver='overlay2')
            with engine:
                have = 0
                for count in counts:
                    setup = grow(engine, workdir, have, count)
                    have = max(have, count)
                    module_t, playbook_t, manual_t = [], [], []
                    facts = None
                    for dummy in range(opts.reps):
                        wall, result = run_module(engine, workdir)
                        module_t.append(wall)
                        facts = result['storage']
                        playbook_t.append(run_playbook(engine, workdir))
                        manual_t.append(run_manual(engine))
                    assert facts['images']['count'] == count and facts['containers']['count'] == count, facts
                    rows.append({'objects': count, 'setup_s': setup,
                                 'module_s': statistics.median(module_t),
                                 'playbook_s': statistics.median(playbook_t),
                                 'manual_s': statistics.median(manual_t),
                                 'raw': {'module': module_t, 'playbook': playbook_t, 'manual': manual_t}})
                    print('%d images + %d containers: module %.2f s, playbook %.2f s, manual %.2f s'
                          % (count, count, rows[-1]['module_s'], rows[-1]['playbook_s'], rows[-1]['manual_s']),
                          flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    lines = ['## docker_storage_info: time against objects present', '',
             'Private dockerd %s, overlay2 on a loop ext4, %s, Python %s; median of %d runs. N images '
             '(one shared layer) + N containers (created, not started).'
             % ('20.10', platform.node(), platform.python_version(), opts.reps), '',
             '| N images + N containers | module (s) | ansible-playbook, 1 task (s) | `docker info` + '
             '`docker system df` (s) | module / manual |',
             '|---|---|---|---|---|']
    for row in rows:
        cells = (row['objects'], row['module_s'], row['playbook_s'], row['manual_s'], row['module_s'] / row['manual_s'])
        lines.append('| %d | %.2f | %.2f | %.2f | %.2f |' % cells)
    base = rows[0]
    growth = []
    for prev, row in zip(rows, rows[1:]):
        if prev['objects'] == base['objects'] or row['objects'] == prev['objects']:
            continue
        per_prev = (prev['module_s'] - base['module_s']) / max(prev['objects'] - base['objects'], 1)
        per_row = (row['module_s'] - base['module_s']) / max(row['objects'] - base['objects'], 1)
        growth.append('time per object above N=%d: %.2f ms at N=%d, %.2f ms at N=%d; ratio %.2f '
                      '(1.0 = linear, above 1 = worse than linear)'
                      % (base['objects'], per_prev * 1000, prev['objects'], per_row * 1000, row['objects'],
                         per_row / per_prev if per_prev > 0 else float('nan')))
    if len(rows) > 1:
        last = rows[-1]
        per_object = (last['module_s'] - base['module_s']) / max(last['objects'] - base['objects'], 1) * 1000
        lines += ['', 'Module time per object (N=%d): %.2f ms (above the N=%d baseline).'
                  % (last['objects'], per_object, base['objects'])]
    lines += ['- ' + g for g in growth]
    report = '\n'.join(lines)
    print()
    print(report)
    results = os.path.join(ROOT, 'bench', 'results')
    os.makedirs(results, exist_ok=True)
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    with open(os.path.join(results, 'docker_storage_info-%s.json' % stamp), 'w', encoding='utf-8') as handle:
        json.dump({'rows': rows, 'report': report}, handle, indent=2)
    with open(os.path.join(results, 'docker_storage_info-%s.md' % stamp), 'w', encoding='utf-8') as handle:
        handle.write(report + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
