# SPDX-License-Identifier: GPL-3.0-or-later
"""The Docker half of `make demo-netns`: set up storage backends, then measure them.

Three local "hosts", each a private dockerd (own data root, exec root and
socket) that the docker_storage role stops and starts itself through the
command service manager, the way an init script would:

- docker-overlay2: data root on a loop-backed XFS (ftype=1), converged from
  vfs to overlay2;
- docker-btrfs: an empty loop block device that the role formats btrfs,
  mounts and bind-mounts onto the data root, then switches the driver;
- docker-vfs: vfs on loop-backed ext4, for comparison.

The role runs twice (the second run changes nothing), then the validate role
runs the copy-on-write benchmark on all three (and the path-MTU verification
on the storage network lab when one is up) and writes the fleet report.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

from tests.lab import ROOT, playbook
from tests.lab.dockerd import loop_filesystem, raw_loop_device, unmount_all
from tests.lab.playbook import local_host
from tests.lab.private_dockerd import Engine


def host(engines: list[Engine], workdir: str, name: str, data_root: str, backend: str, **role_vars) -> dict:
    """One demo host's variables; its private engine (to start on vfs), which the role manages by command, goes to engines."""
    engine = Engine(workdir, data_root, {'storage-driver': 'vfs'}, name=name)
    engines.append(engine)
    role_vars = engine.vars(backend, docker_storage_start_timeout=60, validate_docker_host='unix://' + engine.socket,
                            **role_vars)
    del role_vars['hostprep_hosts']  # the playbook runs say which group
    return local_host(ansible_become=False, **role_vars)


def run(banner, lab_info: dict | None) -> int:
    workdir = os.path.join(ROOT, '.build', 'demo', 'docker')
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    report_dir = os.path.join(ROOT, '.build', 'demo', 'report')
    engines: list[Engine] = []
    try:
        with loop_filesystem(workdir, 'xfs') as xfs, loop_filesystem(workdir, 'ext4', 320) as ext4, \
                raw_loop_device(workdir, 512) as disk:
            hosts = {
                'docker-overlay2': host(engines, workdir, 'docker-overlay2', os.path.join(xfs, 'docker'), 'overlay2'),
                'docker-btrfs': host(engines, workdir, 'docker-btrfs', os.path.join(workdir, 'docker-btrfs', 'data'), 'btrfs',
                                     docker_storage_btrfs_device=disk,
                                     docker_storage_btrfs_mount_point=os.path.join(workdir, 'docker-btrfs', 'butter')),
                'docker-vfs': host(engines, workdir, 'docker-vfs', os.path.join(ext4, 'docker'), 'vfs'),
            }
            if lab_info:
                hosts['docker-overlay2'].update(validate_storage_targets=[lab_info['targets']['t9000']['v4'],
                                                                          lab_info['targets']['t1500']['v4']],
                                                validate_netns=lab_info['host_ns'], validate_expected_mtu=9000)
            for engine in engines:
                engine.start()
            inventory = os.path.join(workdir, 'inventory.json')
            with open(inventory, 'w', encoding='utf-8') as handle:
                json.dump({'container_hosts': {'hosts': hosts}}, handle, indent=2)
            log = os.path.join(workdir, 'results.jsonl')
            banner('5. docker_storage: overlay2 on XFS, btrfs on an empty disk, vfs (engines start on vfs)')
            hosts_var = {'hostprep_hosts': 'container_hosts'}
            first = playbook.run('docker_storage.yml', inventory, log, hosts_var, forks=3, show=True, quiet_ok=True)
            if first.rc != 0:
                print('docker_storage failed', file=sys.stderr)
                return first.rc
            banner('6. docker_storage again: nothing changes')
            second = playbook.run('docker_storage.yml', inventory, log, hosts_var, forks=3, show=True, quiet_ok=True)
            changed = second.changed
            print('second run: %d changed, %.1f s (first run %.1f s)' % (changed, second.seconds, first.seconds))
            final = {}
            for rec in second.records:  # the last docker_storage_info of each host is what the engine says now
                if rec['action'].endswith('docker_storage_info') and (rec['result'].get('storage') or {}).get('driver'):
                    final[rec['host']] = rec['result']['storage']
            for name, storage in sorted(final.items()):
                print('  %-16s driver %-9s on %-6s data root %s' % (
                    name, storage['driver'], (storage.get('backing_fs') or {}).get('fstype'), storage.get('data_root')))
            banner('7. validate: copy-on-write benchmark on every host, fleet report')
            validate = playbook.run('validate.yml', inventory, log, {
                'hostprep_hosts': 'container_hosts', 'validate_count': 3, 'validate_sleep_seconds': 120,
                'validate_report_dir': report_dir, 'validate_fail_on_limits': False}, forks=3, show=True, quiet_ok=True)
            rc = validate.rc
            print('validate: rc %d in %.1f s' % (rc, validate.seconds))
            banner('fleet report')
            with open(os.path.join(report_dir, 'report.md'), encoding='utf-8') as handle:
                print(handle.read())
            print('Markdown: %s\nHTML:     %s' % (os.path.join(report_dir, 'report.md'),
                                                  os.path.join(report_dir, 'report.html')))
            return rc if rc else (0 if changed == 0 else 1)
    finally:
        for engine in engines:
            engine.stop()
        unmount_all(workdir)
