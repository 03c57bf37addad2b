# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of the docker_storage role: converge and second-run wall time per backend.

On this machine, with a real private dockerd that the role stops and starts
through the command service manager (tests/lab/private_dockerd.py),
for each of:
  overlay2 on XFS, overlay2 on ext4 (data root on a loop-backed filesystem;
  the engine starts without storage-driver, so converge writes daemon.json
  and restarts it), vfs (a driver switch on an engine without images), and
  btrfs (overlay2 on ext4 with one image switched to btrfs on a fresh loop
  device, images preserved through an archive on the root filesystem).
Each case: converge (ansible-playbook playbooks/docker_storage.yml), then the
second run, which must report 0 changed. Prints a Markdown table and writes the
raw figures to bench/results/docker_storage_role.json.

    .venv/bin/python -m bench.docker_storage_role [--repeat N]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

# The engine and the playbook runner are the ones the integration tests use.
from tests.lab import ROOT
from tests.lab.dockerd import import_busybox, loop_filesystem, raw_loop_device, unmount_all
from tests.lab.playbook import Ansible
from tests.lab.private_dockerd import Engine

PLAYBOOK = os.path.join(ROOT, 'playbooks', 'docker_storage.yml')

CASES = [
    ('overlay2 on xfs', 'xfs', 'overlay2'),
    ('overlay2 on ext4', 'ext4', 'overlay2'),
    ('vfs', 'xfs', 'vfs'),
    ('btrfs (switch from overlay2, images preserved)', 'ext4', 'btrfs'),
]


def run_case(ansible: Ansible, inventory: str, workdir: str, fstype: str, backend: str) -> dict:
    with contextlib.ExitStack() as stack:
        mount = stack.enter_context(loop_filesystem(workdir, fstype, size_mb=320 if fstype == 'xfs' else 256))
        engine = Engine(workdir, os.path.join(mount, 'docker')).start()
        stack.callback(lambda: (engine.stop(), unmount_all(engine.data_root), unmount_all(engine.dir)))
        extra: dict = {}
        if backend == 'btrfs':
            with contextlib.closing(engine.client()) as client:
                import_busybox(client)
            extra = {'docker_storage_btrfs_device': stack.enter_context(raw_loop_device(workdir)),
                     'docker_storage_btrfs_mount_point': os.path.join(engine.dir, 'btrfs'),
                     'docker_storage_preserve_images': True,
                     'docker_storage_image_archive_dir': engine.archive_dir}
            # the raw device is detached after the engine stopped and the mounts went
            stack.callback(lambda: (engine.stop(), unmount_all(engine.data_root), unmount_all(engine.dir)))
        variables = engine.vars(backend, **extra)
        figures = {}
        for label in ('converge', 'second'):
            start = time.monotonic()
            run = ansible.playbook(PLAYBOOK, inventory, variables, diff=False)
            figures[label] = round(time.monotonic() - start, 2)
            if run.rc != 0:
                raise RuntimeError('%s %s failed:\n%s' % (backend, label, run.stdout[-3000:]))
            figures[label + '_changed'] = run.changed
        figures['driver'] = engine.info()['Driver']
        return figures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--repeat', type=int, default=1)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix='hp-bench-dsr-')
    ansible = Ansible(workdir)
    inventory = ansible.inventory({'localhost': {'ansible_become': False}})
    results = []
    try:
        for name, fstype, backend in CASES:
            runs = [run_case(ansible, inventory, workdir, fstype, backend) for dummy in range(args.repeat)]
            results.append({'case': name, 'backend': backend, 'fstype': fstype, 'runs': runs,
                            'converge_median': statistics.median(r['converge'] for r in runs),
                            'second_median': statistics.median(r['second'] for r in runs)})
            print('%-50s converge %6.1f s  second %6.1f s (changed %d)' % (
                name, results[-1]['converge_median'], results[-1]['second_median'], runs[-1]['second_changed']),
                flush=True)
    finally:
        unmount_all(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
    load = os.getloadavg()
    print('\n| Backend | Converge (s) | Second run (s) | Changed on second run | Driver reported |')
    print('|---|---|---|---|---|')
    for item in results:
        print('| %s | %.1f | %.1f | %d | %s |' % (item['case'], item['converge_median'], item['second_median'],
                                                  item['runs'][-1]['second_changed'], item['runs'][-1]['driver']))
    print('\n%s, %d cores, load average %.1f at the end, %d run(s) per case (median).'
          % (platform.platform(), os.cpu_count() or 0, load[0], args.repeat))
    os.makedirs(os.path.join(ROOT, 'bench', 'results'), exist_ok=True)
    with open(os.path.join(ROOT, 'bench', 'results', 'docker_storage_role.json'), 'w', encoding='utf-8') as handle:
        json.dump({'when': datetime.datetime.now(datetime.timezone.utc).isoformat(), 'load': load,
                   'results': results}, handle, indent=2)
    return 0 if all(item['runs'][-1]['second_changed'] == 0 for item in results) else 1


if __name__ == '__main__':
    sys.exit(main())
