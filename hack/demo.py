# SPDX-License-Identifier: GPL-3.0-or-later
"""`make demo-netns`: converge the storage network of a disposable netns lab (the quick demo; `make demo` uses a VM).

1. builds the lab (tests/lab/netns_lab.py) with the host's storage NIC at 1500;
2. runs playbooks/storage_network.yml in verify-only mode (drift report);
3. converges (MTU 9000, PMTUD sysctls, persisted with ifupdown under a demo root);
4. runs again (nothing changes), verifies every lab path and prints the
   report, including the paths that cannot carry 9000 and the hop that
   limits them;
5.-7. sets up Docker storage backends on three private engines and runs the
   copy-on-write benchmark on them: the fleet report (hack/demo_docker.py);
then tears everything down (--keep leaves the network lab up).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from hack import demo_docker
from tests.lab import ROOT, playbook
from tests.lab.netns_lab import Lab, python_in


def banner(text: str) -> None:
    print('\n\033[1m==== %s\033[0m' % text, flush=True)


def run_playbook(workdir: str, inventory: str, extra: dict, label: str) -> playbook.PlaybookRun:
    return playbook.run('storage_network.yml', inventory, os.path.join(workdir, 'results-%s.jsonl' % label), extra,
                        show=True)


def report_table(records: list[dict]) -> str:
    rows = ['| host | target | reachable | path MTU | expected | limiting hop | probes | seconds | verdict |',
            '|---|---|---|---|---|---|---|---|---|']
    for rec in records:
        if not rec['task'].endswith('Measure the path MTU to the storage targets'):
            continue
        for t in rec['result'].get('targets', []):
            rows.append('| %s | %s | %s | %s | %s | %s | %s | %.3f | %s |' % (
                rec['host'], t['target'], t['reachable'], t['path_mtu'], t['expected_mtu'],
                t['limiting_hop'] or '-', t['probes'], t['seconds'],
                'OK' if t['expected_mtu_ok'] else 'MISMATCH'))
    return '\n'.join(rows)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--prefix', default='hpdemo')
    parser.add_argument('--keep', action='store_true', help='leave the lab up')
    parser.add_argument('--network-only', action='store_true', help='only the storage network part')
    args = parser.parse_args()
    if os.geteuid() != 0:
        print('make demo needs root: it builds network namespaces', file=sys.stderr)
        return 1
    workdir = os.path.join(ROOT, '.build', 'demo')
    root = os.path.join(workdir, 'root')
    os.makedirs(os.path.join(root, 'etc', 'network'), exist_ok=True)
    with open(os.path.join(root, 'etc', 'network', 'interfaces'), 'w', encoding='utf-8') as handle:
        handle.write('# demo host: the storage NIC\nauto eth0\niface eth0 inet static\n'
                     '    address 198.18.1.2/24\n    gateway 198.18.1.1\n')
    lab = Lab(args.prefix, host_mtu=1500)
    banner('building the lab: namespaces %s-*' % args.prefix)
    info = lab.up()
    t = info['targets']
    inventory = os.path.join(workdir, 'inventory.yml')
    with open(inventory, 'w', encoding='utf-8') as handle:
        json.dump({'storage_hosts': {'hosts': {'storage-host-1': {
            'ansible_connection': 'local', 'ansible_become': False,
            'ansible_python_interpreter': python_in(info['host_ns'], workdir),
            'storage_network_netns': info['host_ns'],
            'storage_network_persist': 'ifupdown',
            'storage_network_config_root': root,
            'storage_network_sysctl_file': os.path.join(root, 'etc', 'sysctl.d', '90-hostprep-pmtud.conf'),
            'storage_network_links': [{'target': t['t9000']['v4']}],
            'storage_network_safety_targets': [info['router_v4']],
        }}}}, handle, indent=2)
    good = [t['t9000']['v4'], t['t9000']['v6']]
    every = good + [t[n][fam] for n in ('t4000', 't1500', 'tblack') for fam in ('v4', 'v6')]
    try:
        banner('1. verify only: what would change (host NIC still at 1500)')
        run_playbook(workdir, inventory, {'storage_network_verify_only': True, 'storage_network_targets': good,
                                          'storage_network_fail_on_mismatch': False}, 'drift')
        banner('2. converge: MTU 9000, PMTUD sysctls, persisted (ifupdown under %s)' % root)
        first = run_playbook(workdir, inventory, {'storage_network_targets': good}, 'converge')
        if first.rc != 0:
            print('converge failed', file=sys.stderr)
            return first.rc
        banner('3. second run: nothing changes')
        second = run_playbook(workdir, inventory, {'storage_network_targets': good}, 'again')
        changed = second.changed
        print('second run: %d changed, %.1f s (first run %.1f s)' % (changed, second.seconds, first.seconds))
        banner('4. verify every lab path at 9000 (mismatches are expected and reported)')
        verify = {'storage_network_verify_only': True, 'storage_network_targets': every}
        records = run_playbook(workdir, inventory, verify, 'verify').records
        table = report_table(records)
        fail = [r for r in records if r['status'] == 'failed']
        with open(os.path.join(workdir, 'report.md'), 'w', encoding='utf-8') as handle:
            handle.write('# Storage network report\n\n' + table + '\n')
        banner('report (also in %s)' % os.path.join(workdir, 'report.md'))
        print(table)
        if fail:
            print('\nthe role failed as it should, saying:\n  ' + fail[-1]['result'].get('msg', ''))
        print('\npersisted: %s' % os.path.join(root, 'etc', 'network', 'interfaces'))
        with open(os.path.join(root, 'etc', 'network', 'interfaces'), encoding='utf-8') as handle:
            print(handle.read())
        if changed:
            return 1
        if args.network_only:
            return 0
        return demo_docker.run(banner, info)
    finally:
        if args.keep:
            print('lab left up: make demo-down DEMO_PREFIX=%s' % args.prefix)
        else:
            lab.down()


if __name__ == '__main__':
    sys.exit(main())
