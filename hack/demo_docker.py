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
import subprocess
import sys
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'integration'))

import playbook  # noqa: E402  pylint: disable=wrong-import-position
from dockerd import loop_filesystem, raw_loop_device, unmount_all  # noqa: E402  pylint: disable=wrong-import-position

SCRIPT = os.path.join(ROOT, 'tests', 'integration', 'files', 'private_dockerd.py')


class Host:
    """One demo host: a private engine the role manages by command."""

    def __init__(self, name: str, workdir: str, data_root: str, backend: str, **role_vars) -> None:
        self.name = name
        self.dir = os.path.join(workdir, name)
        self.state = os.path.join(self.dir, 'state')
        os.makedirs(self.state, exist_ok=True)
        self.ident = uuid.uuid4().hex[:8]
        self.socket = '/tmp/hps-%s.sock' % self.ident
        self.daemon_json = os.path.join(self.dir, 'daemon.json')
        self.fstab = os.path.join(self.dir, 'fstab')
        with open(self.daemon_json, 'w', encoding='utf-8') as handle:
            json.dump({'data-root': data_root, 'storage-driver': 'vfs'}, handle, indent=2)
        with open(self.fstab, 'w', encoding='utf-8') as handle:
            handle.write('# fstab of demo host %s\n' % name)
        base = [sys.executable, SCRIPT]
        common = ['--name', self.ident, '--state', self.state, '--config', self.daemon_json]
        self.start_cmd = base + ['start'] + common
        self.stop_cmd = base + ['stop'] + common
        self.hostvars = {
            'ansible_connection': 'local', 'ansible_become': False, 'ansible_python_interpreter': sys.executable,
            'docker_storage_backend': backend,
            'docker_storage_service_manager': 'command',
            'docker_storage_start_command': self.start_cmd,
            'docker_storage_stop_command': self.stop_cmd,
            'docker_storage_log_file': os.path.join(self.state, 'dockerd.log'),
            'docker_storage_docker_host': 'unix://' + self.socket,
            'docker_storage_data_root': data_root,
            'docker_storage_daemon_config': self.daemon_json,
            'docker_storage_flags_sources': [],
            'docker_storage_fstab': self.fstab,
            'docker_storage_journal_dir': os.path.join(self.dir, 'journal'),
            'docker_storage_start_timeout': 60,
            'validate_docker_host': 'unix://' + self.socket,
        }
        self.hostvars.update(role_vars)

    def start(self) -> None:
        subprocess.run(self.start_cmd, check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run(self.stop_cmd, check=False, capture_output=True)


def run(banner, lab_info: dict | None) -> int:
    workdir = os.path.join(ROOT, '.build', 'demo', 'docker')
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    report_dir = os.path.join(ROOT, '.build', 'demo', 'report')
    hosts: list[Host] = []
    try:
        with loop_filesystem(workdir, 'xfs') as xfs, loop_filesystem(workdir, 'ext4', 320) as ext4, \
                raw_loop_device(workdir, 512) as disk:
            hosts = [
                Host('docker-overlay2', workdir, os.path.join(xfs, 'docker'), 'overlay2'),
                Host('docker-btrfs', workdir, os.path.join(workdir, 'docker-btrfs', 'data'), 'btrfs',
                     docker_storage_btrfs_device=disk,
                     docker_storage_btrfs_mount_point=os.path.join(workdir, 'docker-btrfs', 'butter')),
                Host('docker-vfs', workdir, os.path.join(ext4, 'docker'), 'vfs'),
            ]
            if lab_info:
                hosts[0].hostvars.update(validate_storage_targets=[lab_info['targets']['t9000']['v4'],
                                                                   lab_info['targets']['t1500']['v4']],
                                         validate_netns=lab_info['host_ns'], validate_expected_mtu=9000)
            for host in hosts:
                host.start()
            inventory = os.path.join(workdir, 'inventory.json')
            with open(inventory, 'w', encoding='utf-8') as handle:
                json.dump({'container_hosts': {'hosts': {h.name: h.hostvars for h in hosts}}}, handle, indent=2)
            log = os.path.join(workdir, 'results.jsonl')
            banner('5. docker_storage: overlay2 on XFS, btrfs on an empty disk, vfs (engines start on vfs)')
            hosts_var = {'hostprep_hosts': 'container_hosts'}
            rc, records, first = playbook.run('docker_storage.yml', inventory, hosts_var, log, forks=3, quiet_ok=True)
            if rc != 0:
                print('docker_storage failed', file=sys.stderr)
                return rc
            banner('6. docker_storage again: nothing changes')
            rc, records, second = playbook.run('docker_storage.yml', inventory, hosts_var, log, forks=3,
                                               quiet_ok=True)
            changed = playbook.changed(records)
            print('second run: %d changed, %.1f s (first run %.1f s)' % (changed, second, first))
            final = {}
            for rec in records:  # the last docker_storage_info of each host is what the engine says now
                if rec['action'].endswith('docker_storage_info') and (rec['result'].get('storage') or {}).get('driver'):
                    final[rec['host']] = rec['result']['storage']
            for name, storage in sorted(final.items()):
                print('  %-16s driver %-9s on %-6s data root %s' % (
                    name, storage['driver'], (storage.get('backing_fs') or {}).get('fstype'), storage.get('data_root')))
            banner('7. validate: copy-on-write benchmark on every host, fleet report')
            rc, records, elapsed = playbook.run('validate.yml', inventory, {
                'hostprep_hosts': 'container_hosts', 'validate_count': 3, 'validate_sleep_seconds': 120,
                'validate_report_dir': report_dir, 'validate_fail_on_limits': False}, log, forks=3, quiet_ok=True)
            print('validate: rc %d in %.1f s' % (rc, elapsed))
            banner('fleet report')
            with open(os.path.join(report_dir, 'report.md'), encoding='utf-8') as handle:
                print(handle.read())
            print('Markdown: %s\nHTML:     %s' % (os.path.join(report_dir, 'report.md'),
                                                  os.path.join(report_dir, 'report.html')))
            return rc if rc else (0 if changed == 0 else 1)
    finally:
        for host in hosts:
            host.stop()
        unmount_all(workdir)
