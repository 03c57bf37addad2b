# SPDX-License-Identifier: GPL-3.0-or-later
"""The validate role's copy-on-write benchmark per backend, inside lab VMs.

One fresh VM per backend (tests/lab/vm/vm.py), so no backend inherits
another's state: devicemapper loop-lvm, devicemapper direct-lvm and btrfs in
bookworm (Engine 20.10), overlay2 on a thin LV (XFS, pquota) in trixie
(Engine 26). Each VM: playbooks/docker_storage.yml, then
playbooks/validate.yml (count N) into one report directory, so the fleet
report compares the four backends side by side (one "host" per backend).
Read it against the host lab's table in docs/benchmarks.md (same benchmark,
no emulation).

    python -m bench.vm_backends [--count 5] [--only vm-btrfs,...] [--out DIR]

Takes 4 to 6 minutes per backend under TCG (22 min for all four at count 5). Needs root, qemu and the
lab images (`make vm-image VM_SUITES="bookworm trixie"`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from tests.lab import ROOT, playbook
from tests.lab.vm import vm

HERE = os.path.dirname(os.path.abspath(__file__))

DISK1 = '/dev/disk/by-id/virtio-hostprep-disk1'
CASES = [
    ('vm-devicemapper-loop', 'bookworm', 0, {'docker_storage_backend': 'devicemapper_loop'}),
    ('vm-devicemapper-direct', 'bookworm', 1, {'docker_storage_backend': 'devicemapper_direct',
                                               'docker_storage_devices': [DISK1],
                                               'validate_thinpool': 'docker/thinpool'}),
    ('vm-btrfs', 'bookworm', 1, {'docker_storage_backend': 'btrfs', 'docker_storage_btrfs_device': DISK1}),
    ('vm-overlay2-thin', 'trixie', 1, {'docker_storage_backend': 'overlay2_thin',
                                       'docker_storage_devices': [DISK1],
                                       'docker_storage_thin_volume_size': '3G',
                                       'validate_thinpool': 'docker/thinpool'}),
]
ENV = {'ANSIBLE_PIPELINING': 'true', 'ANSIBLE_HOST_KEY_CHECKING': 'false'}


def write_inventory(path: str, alias: str, state: dict, hostvars: dict) -> None:
    host = dict(hostvars, **vm.inventory_vars(state))
    with open(path, 'w', encoding='utf-8') as handle:
        json.dump({'all': {'hosts': {alias: host}}}, handle, indent=2)


def run_case(case: tuple, out: str, count: int) -> dict:
    alias, suite, disks, hostvars = case
    vmdir = os.path.join(out, 'vm-' + alias)
    row = {'host': alias, 'suite': suite, 'backend': hostvars['docker_storage_backend']}
    t0 = time.monotonic()
    with vm.booted(vmdir, '--name', alias, '--suite', suite, '--disks', str(disks), '--disk-size', '4G',
                   '--memory', '2048') as state:
        row.update(boot_s=state['boot_seconds'], accel=state['accel'], kernel=state['kernel_version'])
        inv = os.path.join(out, alias + '.json')
        write_inventory(inv, alias, state, hostvars)
        log = os.path.join(out, alias + '.jsonl')
        run = playbook.run('docker_storage.yml', inv, log, {'hostprep_hosts': 'all'}, show=True, quiet_ok=True, env=ENV)
        row['converge_s'] = run.seconds
        if run.rc:
            raise SystemExit('%s: docker_storage failed' % alias)
        run = playbook.run('validate.yml', inv, log, {
            'hostprep_hosts': 'all', 'validate_count': count, 'validate_sleep_seconds': 300,
            'validate_report_dir': os.path.join(out, 'report'), 'validate_fail_on_limits': False,
            'validate_report_title': 'Copy-on-write benchmark per backend in lab VMs (TCG)'},
            show=True, quiet_ok=True, env=ENV)
        row['validate_s'] = run.seconds
        if run.rc:
            raise SystemExit('%s: validate failed' % alias)
    row['total_s'] = time.monotonic() - t0
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--count', type=int, default=5)
    parser.add_argument('--only', default='', help='comma-separated host names of CASES')
    parser.add_argument('--out', default=os.path.join(ROOT, '.build', 'bench', 'vm_backends'))
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    only = set(filter(None, args.only.split(',')))
    rows = [run_case(case, out, args.count) for case in CASES if not only or case[0] in only]
    lines = ['# VM backends: %s, %s, %d cores, count %d, %s' % (
        time.strftime('%Y-%m-%d'), platform.node(), os.cpu_count(), args.count, rows[0]['accel'] if rows else ''),
        '', '| VM (backend) | suite | boot to SSH s | docker_storage converge s | validate s |', '|---|---|---|---|---|']
    for row in rows:
        lines.append('| %s (%s) | %s | %.0f | %.0f | %.0f |' % (
            row['host'], row['backend'], row['suite'], row['boot_s'], row['converge_s'], row['validate_s']))
    with open(os.path.join(out, 'report', 'report.md'), encoding='utf-8') as handle:
        lines += ['', handle.read()]
    text = '\n'.join(lines)
    print('\n' + text)
    with open(os.path.join(HERE, 'results', 'vm_backends.md'), 'w', encoding='utf-8') as handle:
        handle.write(text)
    with open(os.path.join(HERE, 'results', 'vm_backends.json'), 'w', encoding='utf-8') as handle:
        json.dump(rows, handle, indent=2)
    print('fleet report: %s' % os.path.join(out, 'report', 'report.html'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
