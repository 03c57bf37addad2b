# SPDX-License-Identifier: GPL-3.0-or-later
"""Copy-on-write benchmark: docker_cow_benchmark against the classic shell loop.

For each backend this machine can run (btrfs; overlay2 on XFS; overlay2 on
ext4; vfs on ext4), on a fresh loop filesystem with a private dockerd:

1. the module through ansible-playbook (count N, 64K, all three scenarios);
2. on the same engine, right after, the classic procedure as a bash loop with
   the docker CLI: ``docker run ... dd``, ``docker commit``,
   ``docker run -d ... sleep``, timing each command and reading ``docker
   info`` and ``df`` after each, as the original evaluation did.

Reports per-operation times of both and their ratio, the module's own
overhead (benchmark wall time minus the operations minus the measurements
it takes after each), and the per-backend table in the shape of the classic
evaluation. Writes Markdown and raw JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from tests.lab import ROOT
from tests.lab.dockerd import PrivateDockerd, loop_filesystem
from tests.lab.playbook import Ansible

from ansible_collections.hostprep.container_host.plugins.module_utils._cow_benchmark import busybox_tar
from ansible_collections.hostprep.container_host.plugins.module_utils._sizes import format_size

BACKENDS = [('btrfs', 'btrfs', 'btrfs'), ('overlay2 on XFS', 'xfs', 'overlay2'),
            ('overlay2 on ext4', 'ext4', 'overlay2'), ('vfs on ext4', 'ext4', 'vfs')]

SHELL_LOOP = r'''
set -eu
D="docker -H $DOCKER_HOST_URL"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
used() { sync -f "$DATA_ROOT"; df -B1 --output=used "$DATA_ROOT" | tail -1 | tr -d ' '; }
$D import "$ROOTFS_TAR" cli-busybox:latest >/dev/null
df -k "$DATA_ROOT" >/dev/null; $D info >/dev/null
echo "base 0 0 $(used)"
for CIDX in $(seq 1 "$COUNT"); do
  s=$(now); $D run --network none --name "cli_busybox${CIDX}" cli-busybox:latest dd if=/dev/zero of=/data1 bs=64k count=1 2>/dev/null; e=$(now)
  $D info >/dev/null; echo "oneshot $CIDX $(secs "$s" "$e") $(used)"
done
for CIDX in $(seq 1 "$COUNT"); do
  s=$(now); $D commit "cli_busybox${CIDX}" "cli_busybox${CIDX}_run" >/dev/null; e=$(now)
  $D info >/dev/null; echo "commit $CIDX $(secs "$s" "$e") $(used)"
done
for CIDX in $(seq 1 "$COUNT"); do
  s=$(now); $D run --network none --name "cli_busybox${CIDX}_sleep" --detach=true "cli_busybox${CIDX}_run" sleep 180 >/dev/null; e=$(now)
  $D info >/dev/null; echo "run_from_commit $CIDX $(secs "$s" "$e") $(used)"
done
'''


def run_module(workdir: str, engine: PrivateDockerd, count: int) -> dict:
    """The module through ansible-playbook (one task); its result and the playbook's wall time."""
    start = time.monotonic()
    result = Ansible(workdir).module('hostprep.container_host.docker_cow_benchmark', {
        'docker_host': engine.base_url, 'count': count, 'write_size': '64K'})
    wall = time.monotonic() - start
    if result['failed']:
        raise RuntimeError('module run failed: %s' % result.get('msg'))
    result['playbook_wall'] = wall
    return result


def run_shell(workdir: str, engine: PrivateDockerd, count: int) -> dict:
    tar = os.path.join(workdir, 'rootfs.tar')
    with open(tar, 'wb') as handle:
        handle.write(busybox_tar('/bin/busybox'))
    env = dict(os.environ, DOCKER_HOST_URL=engine.base_url, DATA_ROOT=engine.data_root, COUNT=str(count),
               ROOTFS_TAR=tar)
    start = time.monotonic()
    proc = subprocess.run(['bash', '-c', SHELL_LOOP], env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError('shell loop failed: %s' % proc.stderr[-2000:])
    ops = []
    last = None
    for line in proc.stdout.split('\n'):
        parts = line.split()
        if len(parts) != 4:
            continue
        scenario, index, seconds, used = parts[0], int(parts[1]), float(parts[2]), int(parts[3])
        if scenario != 'base':
            ops.append({'scenario': scenario, 'index': index, 'seconds': seconds, 'fs_growth': used - last})
        last = used
    # clean up as the classic notes say one must
    client = engine.client
    for cont in client.containers.list(all=True):
        cont.remove(force=True)
    for image in sorted(client.images.list(), key=lambda i: i.attrs['Created'], reverse=True):
        client.images.remove(image.id, force=True)
    return {'operations': ops, 'wall': wall}


def median(ops: list[dict], scenario: str, key: str = 'seconds') -> float:
    return statistics.median(op[key] for op in ops if op['scenario'] == scenario)


def first(ops: list[dict], scenario: str, key: str = 'seconds') -> float:
    return [op[key] for op in ops if op['scenario'] == scenario][0]


def bench(count: int, size_mb: int) -> list[dict]:
    rows = []
    for label, fstype, driver in BACKENDS:
        workdir = tempfile.mkdtemp(prefix='hp-cowbench-')
        try:
            with loop_filesystem(workdir, fstype, size_mb) as mount:
                with PrivateDockerd(workdir, data_root=os.path.join(mount, 'docker'), storage_driver=driver) as engine:
                    print('==> %s: module' % label, flush=True)
                    module = run_module(workdir, engine, count)
                    print('==> %s: shell loop with the docker CLI' % label, flush=True)
                    shell = run_shell(workdir, engine, count)
            rows.append({'backend': label, 'fstype': fstype, 'driver': driver, 'module': module, 'shell': shell})
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return rows


def kib(value: float | None) -> str:
    return format_size(value) if value is not None else 'n/a'


def report(rows: list[dict], meta: dict) -> str:
    count = meta['count']
    lines = ['### Copy-on-write benchmark (%s, %s)' % (meta['date'], meta['machine']), '',
             'Module `docker_cow_benchmark` (Docker SDK) against the classic shell loop with the docker CLI, one after '
             'the other on the same private engine; count %d, 64 KiB per container; medians per operation.' % count, '',
             '| backend | scenario | module s | CLI loop s | CLI / module |', '|---|---|---|---|---|']
    for row in rows:
        mod, cli = row['module']['operations'], row['shell']['operations']
        for scenario in ('oneshot', 'commit', 'run_from_commit'):
            m, c = median(mod, scenario), median(cli, scenario)
            lines.append('| %s | %s | %.3f | %.3f | %.2f |' % (row['backend'], scenario, m, c, c / m))
    lines += ['', 'Module wall time and its own overhead (benchmark time minus the operations minus the sync, df and '
              'counter readings after each operation):', '',
              '| backend | ansible-playbook wall s | module total s | benchmark s | operations s | measurements s | '
              'overhead s | overhead % | CLI loop wall s |', '|---|---|---|---|---|---|---|---|---|']
    for row in rows:
        sec = row['module']['seconds']
        lines.append('| %s | %.1f | %.1f | %.1f | %.1f | %.2f | %.2f | %.1f | %.1f |' % (
            row['backend'], row['module']['playbook_wall'], sec['total'], sec['benchmark'], sec['operations'],
            sec['measurements'], sec['overhead'], sec['overhead_percent'], row['shell']['wall']))
    lines += ['', 'Per backend, in the shape of the classic evaluation (module figures; disk = `df` after a sync; '
              'first operation in brackets):', '',
              '| backend | start s/container | commit s | detached start s | disk/container | disk/commit | '
              'disk/detached | backend data/metadata per container | memory per detached container |',
              '|---|---|---|---|---|---|---|---|---|']
    for row in rows:
        res = row['module']
        sc = res['scenarios']
        counters = 'n/a'
        if sc['oneshot']['data_growth']:
            counters = '%s / %s (%s)' % (kib(sc['oneshot']['data_growth']['median']),
                                         kib((sc['oneshot']['metadata_growth'] or {}).get('median')), res['counters'])
        mem = res['memory'] or {}
        lines.append('| %s | %.2f (%.2f) | %.2f (%.2f) | %.2f (%.2f) | %s (%s) | %s (%s) | %s (%s) | %s | %s |' % (
            row['backend'], sc['oneshot']['seconds']['median'], sc['oneshot']['seconds']['first'],
            sc['commit']['seconds']['median'], sc['commit']['seconds']['first'],
            sc['run_from_commit']['seconds']['median'], sc['run_from_commit']['seconds']['first'],
            kib(sc['oneshot']['fs_growth']['median']), kib(sc['oneshot']['fs_growth']['first']),
            kib(sc['commit']['fs_growth']['median']), kib(sc['commit']['fs_growth']['first']),
            kib(sc['run_from_commit']['fs_growth']['median']), kib(sc['run_from_commit']['fs_growth']['first']),
            counters, kib(mem.get('mem_available_drop_per_container'))))
    lines += ['', 'The classic shell loop\'s own disk figures (df after a sync, median per operation):', '',
              '| backend | disk/container | disk/commit | disk/detached |', '|---|---|---|---|']
    for row in rows:
        cli = row['shell']['operations']
        lines.append('| %s | %s | %s | %s |' % (row['backend'], kib(median(cli, 'oneshot', 'fs_growth')),
                                                kib(median(cli, 'commit', 'fs_growth')),
                                                kib(median(cli, 'run_from_commit', 'fs_growth'))))
    return '\n'.join(lines) + '\n'


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--count', type=int, default=10)
    parser.add_argument('--size-mb', type=int, default=1024)
    args = parser.parse_args()
    for tool in ('docker', 'dockerd', 'awk', 'btrfs'):
        if not shutil.which(tool):
            print('missing %s' % tool, file=sys.stderr)
            return 2
    rows = bench(args.count, args.size_mb)
    machine = (platform.node(), os.cpu_count(), platform.release())
    meta = {'date': datetime.date.today().isoformat(), 'count': args.count,
            'machine': '%s, %d cores, kernel %s, loop-backed filesystems' % machine}
    text = report(rows, meta)
    out = os.path.join(ROOT, 'bench', 'results')
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'cow_benchmark.json'), 'w', encoding='utf-8') as handle:
        json.dump({'meta': meta, 'rows': rows}, handle, indent=2)
    with open(os.path.join(out, 'cow_benchmark.md'), 'w', encoding='utf-8') as handle:
        handle.write(text)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
