# SPDX-License-Identifier: GPL-3.0-or-later
"""`make demo`: the whole job against a disposable VM of the lab.

1. builds or reuses the bookworm lab image (tests/lab/vm/build_image.py);
2. boots a VM from a throwaway overlay with two empty virtio disks
   (tests/lab/vm/vm.py);
3. gives it a storage NIC at MTU 1500 managed by systemd-networkd and a
   storage fabric behind it in network namespaces (the storage_network
   scenario's prepare playbook);
4. runs playbooks/site.yml: the storage network (MTU 9000 on the NIC,
   persisted by networkd, PMTUD sysctls, every path verified), then the
   Docker storage (devicemapper on an LVM thin pool on the first disk,
   Engine 20.10 started through systemd);
5. runs site.yml again: nothing changes;
6. runs playbooks/validate.yml: path MTU to the storage targets and the
   copy-on-write benchmark, then prints the fleet report and where it is;
then stops the VM and removes its overlay and disks (--keep leaves it up;
`make demo-down` stops it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from tests.lab import ROOT, playbook
from tests.lab.vm import vm

PREPARE = os.path.join(ROOT, 'molecule', 'storage_network', 'prepare.yml')
DEFAULT_WORKDIR = os.path.join(ROOT, '.build', 'demo-vm')

# What the operator would put in group_vars: the storage NIC is the one that
# routes to the storage target; docker gets a thin pool on the first disk.
GROUP_VARS = {
    'storage_network_links': [{'target': '198.18.2.10'}],
    'storage_network_mtu': 9000,
    'storage_network_persist': 'networkd',
    'storage_network_targets': ['198.18.2.10', 'fd42:1ab:0:2::10'],
    'storage_network_safety_targets': ['198.18.1.1'],
    'docker_storage_backend': 'devicemapper_direct',
    'docker_storage_devices': ['/dev/disk/by-id/virtio-hostprep-disk1'],
    'validate_storage_targets': ['198.18.2.10', 'fd42:1ab:0:2::10'],
    'validate_expected_mtu': 9000,
    'validate_thinpool': 'docker/thinpool',
}


def banner(text: str) -> None:
    print('\n\033[1m==== %s\033[0m' % text, flush=True)


def inventory(path: str, state: dict) -> None:
    host = vm.inventory_vars(state)
    groups = {name: {'hosts': {'lab-vm': {}}} for name in ('storage_hosts', 'docker_hosts', 'container_hosts')}
    with open(path, 'w', encoding='utf-8') as handle:
        json.dump({'all': {'hosts': {'lab-vm': host}, 'vars': GROUP_VARS, 'children': groups}}, handle, indent=2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--workdir', default=DEFAULT_WORKDIR)
    parser.add_argument('--suite', default='bookworm')
    parser.add_argument('--count', type=int, default=3, help='containers per benchmark scenario')
    parser.add_argument('--keep', action='store_true', help='leave the VM running at the end')
    parser.add_argument('--down', action='store_true', help='stop a kept VM and remove it, then exit')
    args = parser.parse_args()
    workdir = os.path.abspath(args.workdir)
    vmdir = os.path.join(workdir, 'vm')
    report_dir = os.path.join(workdir, 'report')
    if args.down:
        return vm.cli('down', '--purge', '--workdir', vmdir).returncode
    os.makedirs(workdir, exist_ok=True)
    env = {'ANSIBLE_PIPELINING': 'true', 'ANSIBLE_HOST_KEY_CHECKING': 'false', 'ANSIBLE_FORKS': '1'}
    timings = {}
    started = time.monotonic()
    banner('1-2. lab image (built once, then reused) and a VM with two empty disks')
    with vm.booted(vmdir, '--name', 'demo', '--suite', args.suite, '--disks', '2', '--disk-size', '4G',
                   '--memory', '1536', keep=args.keep) as state:
        timings['image and boot'] = time.monotonic() - started
        print('VM %s: Debian %s, kernel %s (%s), ssh root@127.0.0.1 -p %s -i %s, up after %s s' % (
            state['instance'], state['suite'], state['kernel_version'], state['accel'], state['port'],
            state['identity_file'], state['boot_seconds']))
        rc = converge_and_validate(workdir, state, args.count, timings, env)
        md = os.path.join(report_dir, 'report.md')
        if 'validate.yml' in timings:  # validation ran: show its report, limits exceeded or not
            banner('fleet report')
            if os.path.exists(md):
                with open(md, encoding='utf-8') as handle:
                    print(handle.read())
            print('\n'.join('%-16s %6.0f s' % item for item in timings.items()))
            print('whole demo       %6.0f s' % (time.monotonic() - started))
            print('\nfleet report:\n  Markdown: %s\n  HTML:     %s' % (md, os.path.join(report_dir, 'report.html')))
        if args.keep:
            print('\nthe VM keeps running: ssh with the line above; `make demo-down` stops it')
    return rc


def converge_and_validate(workdir: str, state: dict, count: int, timings: dict, env: dict) -> int:
    """Steps 3 to 6 against the booted VM; the return code of the first that fails."""
    inv = os.path.join(workdir, 'inventory.json')
    inventory(inv, state)
    log = os.path.join(workdir, 'results.jsonl')

    banner('3. lab: a storage NIC at MTU 1500 (systemd-networkd) and a storage fabric behind it')
    run = playbook.run(PREPARE, inv, log, show=True, quiet_ok=True, env=env)
    timings['lab fabric'] = run.seconds
    if run.rc:
        return run.rc

    banner('4. playbooks/site.yml: storage network, then Docker storage (devicemapper on a thin pool)')
    first = playbook.run('site.yml', inv, log, {'site_serial': 1}, show=True, quiet_ok=True, env=env)
    timings['site.yml'] = first.seconds
    if first.rc:
        return first.rc

    banner('5. playbooks/site.yml again: nothing changes')
    again = playbook.run('site.yml', inv, log, {'site_serial': 1}, show=True, quiet_ok=True, env=env)
    timings['site.yml again'] = again.seconds
    print('first run: %d changed in %.0f s; second run: %d changed in %.0f s' % (
        first.changed, first.seconds, again.changed, again.seconds))
    if again.rc or again.changed:
        return again.rc or 1

    banner('6. playbooks/validate.yml: path MTU and the copy-on-write benchmark, fleet report')
    run = playbook.run('validate.yml', inv, log, {
        'hostprep_hosts': 'container_hosts', 'validate_count': count, 'validate_sleep_seconds': 120,
        'validate_report_dir': os.path.join(workdir, 'report'),
        'validate_report_title': 'make demo: lab VM (Debian %s, %s)' % (state['suite'], state['accel'])},
        show=True, quiet_ok=True, env=env)
    timings['validate.yml'] = run.seconds
    return run.rc


if __name__ == '__main__':
    sys.exit(main())
