# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of the storage-network modules and role on the netns lab.

Measures, in one run on this machine:
1. probes and wall time to find the path MTU of the lab's 1500-limited path,
   path_mtu_info's engine against `tracepath -n -l 9000` on the same path
   (packets counted on the host NIC for both);
2. path_mtu_info through ansible-playbook on 1, 8 and 32 targets;
3. the role's first and second (no-change) run;
4. the role over 1, 10 and 50 lab hosts (one namespace per inventory host).

Prints a Markdown report and writes it with the raw figures to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from pyroute2 import NetNS

from tests.lab import LINKROOT, ROOT, playbook
from tests.lab.netns_lab import Lab
from tests.lab.playbook import local_host, write_yaml

PY = sys.executable
# the probe process imports the collection's path-MTU engine
ENV = dict(os.environ, PYTHONPATH=LINKROOT)

PROBE_SNIPPET = r'''
import json, sys, time
from ansible_collections.hostprep.container_host.plugins.module_utils import _pmtu
start = time.monotonic()
rep = _pmtu.measure(sys.argv[1], int(sys.argv[2]), timeout=1.0)
rep['inner_seconds'] = time.monotonic() - start
print(json.dumps(rep))
'''


def tx_packets(nsname: str, ifname: str) -> int:
    with NetNS(nsname) as nsr:
        link = nsr.get_links(ifname=ifname)[0]
        return link.get('IFLA_STATS64')['tx_packets']


def timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=ENV)
    return time.monotonic() - start, proc


def bench_vs_tracepath(info: dict, reps: int) -> dict:
    ns = info['host_ns']
    target = info['targets']['t1500']['v4']
    rows = {'module_engine': [], 'tracepath': []}
    with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as handle:
        handle.write(PROBE_SNIPPET)
        snippet = handle.name
    for dummy in range(reps):
        before = tx_packets(ns, 'eth0')
        wall, proc = timed(['ip', 'netns', 'exec', ns, PY, snippet, target, '9000'])
        sent = tx_packets(ns, 'eth0') - before
        rep = json.loads(proc.stdout)
        rows['module_engine'].append({'wall': wall, 'inner': rep['inner_seconds'], 'packets': sent,
                                      'probes': rep['probes'], 'path_mtu': rep['path_mtu']})
        before = tx_packets(ns, 'eth0')
        wall, proc = timed(['ip', 'netns', 'exec', ns, 'tracepath', '-n', '-l', '9000', target])
        sent = tx_packets(ns, 'eth0') - before
        pmtu = int(proc.stdout.rsplit('pmtu', 1)[1].split()[0])
        rows['tracepath'].append({'wall': wall, 'packets': sent, 'path_mtu': pmtu})
    os.unlink(snippet)
    return rows


def run_playbook(workdir: str, inventory: dict, path: str, extra: dict | None = None,
                 forks: int = 10) -> dict:
    inv = write_yaml(os.path.join(workdir, 'inv-%d.yml' % time.monotonic_ns()), inventory)
    log = os.path.join(workdir, 'log-%d.jsonl' % time.monotonic_ns())
    run = playbook.run(path, inv, log, extra, forks=forks)
    if run.rc != 0:
        print(run.stdout[-5000:], file=sys.stderr)
    return {'wall': run.seconds, 'rc': run.rc, 'records': run.records, 'changed': run.changed}


def bench_targets(workdir: str, lab: Lab, info: dict, reps: int) -> dict:
    # 32 targets: 8 addresses on each of the four target namespaces.
    targets = []
    for name in ('t9000', 't1500', 't4000', 'tblack'):
        base = info['targets'][name]['v4'].rsplit('.', 1)[0]
        for host in range(10, 18):
            addr = '%s.%d' % (base, host)
            if host != 10:
                subprocess.run(['ip', '-n', lab.ns(name), 'addr', 'add', addr + '/24', 'dev', 'eth0'], check=False)
            targets.append(addr)
    # interleave so 8 targets cover every path kind
    order = [targets[i + 8 * k] for i in range(8) for k in range(4)]
    play = write_yaml(os.path.join(workdir, 'pmtu.yml'), [{
        'name': 'path MTU', 'hosts': 'all', 'gather_facts': False,
        'tasks': [{'name': 'probe', 'hostprep.container_host.path_mtu_info': {
            'targets': '{{ bench_targets }}', 'expected_mtu': 9000, 'netns': info['host_ns'], 'timeout': 1.0}}]}])
    out = {}
    for count in (1, 8, 32):
        runs = []
        for dummy in range(reps):
            res = run_playbook(workdir, {'all': {'hosts': {'lab': local_host(ansible_become=False)}}}, play,
                               {'bench_targets': order[:count]})
            module = [r for r in res['records'] if r['task'] == 'probe'][0]['result']
            runs.append({'wall': res['wall'], 'module_seconds': module['seconds'],
                         'serial_seconds': sum(t['seconds'] for t in module['targets']),
                         'probes': sum(t['probes'] for t in module['targets'])})
        out[count] = runs
    return out


def role_inventory(info: dict, workdir: str, hosts: list[dict]) -> dict:
    inv = {'storage_hosts': {'hosts': {}}}
    for host in hosts:
        inv['storage_hosts']['hosts'][host['name']] = local_host(
            ansible_become=False, storage_network_netns=host['netns'],
            storage_network_links=[{'name': host['nic']}],
            storage_network_targets=[info['targets']['t9000']['v4']],
            storage_network_persist='none',
            storage_network_sysctl_file=os.path.join(workdir, 'sysctl', host['name'] + '.conf'))
    return inv


def bench_role_and_fleet(workdir: str, info: dict, sizes: list[int]) -> dict:
    path = os.path.join(ROOT, 'playbooks', 'storage_network.yml')
    out = {}
    for size in sizes:
        hosts = info['fleet'][:size]
        inv = role_inventory(info, workdir, hosts)
        first = run_playbook(workdir, inv, path, forks=10)
        second = run_playbook(workdir, inv, path, forks=10)
        out[size] = {'first': first['wall'], 'first_rc': first['rc'], 'first_changed': first['changed'],
                     'second': second['wall'], 'second_rc': second['rc'], 'second_changed': second['changed']}
        # back to 1500 so the next size starts from the same state
        for host in hosts:
            subprocess.run(['ip', '-n', host['netns'], 'link', 'set', 'eth0', 'mtu', '1500'], check=True)
    return out


def med(values: list[float]) -> float:
    return statistics.median(values)


def report(res: dict, meta: dict) -> str:
    lines = ['### Storage network (%s, %s)' % (meta['date'], meta['machine']), '']
    mod, tp = res['tracepath']['module_engine'], res['tracepath']['tracepath']
    search, trace = med([r['inner'] for r in mod]), med([r['wall'] for r in tp])
    lines += ['Path MTU of the lab path limited to 1500 by a router (%d runs, median):' % len(mod), '',
              '| tool | path MTU found | packets sent | seconds |', '|---|---|---|---|',
              '| path_mtu_info search (in-process, as the module runs it) | %d | %d | %.4f |' % (
                  mod[0]['path_mtu'], med([r['packets'] for r in mod]), search),
              '| path_mtu_info engine as its own process (Python start included) | %d | %d | %.3f |' % (
                  mod[0]['path_mtu'], med([r['packets'] for r in mod]), med([r['wall'] for r in mod])),
              '| tracepath -n -l 9000 (process) | %d | %d | %.4f |' % (
                  tp[0]['path_mtu'], med([r['packets'] for r in tp]), trace),
              '', 'tracepath / path_mtu_info search: %.1fx the time, %.1fx the packets.' % (
                  trace / search, med([r['packets'] for r in tp]) / max(1, med([r['packets'] for r in mod])))]
    lines += ['', 'path_mtu_info through ansible-playbook; the targets mix 9000, 4000, 1500 and black-hole paths '
              '(a black hole costs about 4 s of timed-out probes). Serial = the sum of each target\'s own search '
              'time, what probing one after the other would cost:', '',
              '| targets | probes | module s | serial s | module / serial | playbook wall s |',
              '|---|---|---|---|---|---|']
    for count, runs in res['targets'].items():
        ms, ser = med([r['module_seconds'] for r in runs]), med([r['serial_seconds'] for r in runs])
        row = (count, med([r['probes'] for r in runs]), ms, ser, ms / ser, med([r['wall'] for r in runs]))
        lines.append('| %s | %d | %.3f | %.3f | %.2f | %.2f |' % row)
    lines += ['', 'Role `storage_network` (forks 10; one namespace per inventory host; 3 modules per host):', '',
              '| hosts | first run s | s per host | changed | second run s | s per host | changed |',
              '|---|---|---|---|---|---|---|']
    for size, row in res['fleet'].items():
        lines.append('| %s | %.1f | %.2f | %d | %.1f | %.2f | %d |' % (
            size, row['first'], row['first'] / int(size), row['first_changed'],
            row['second'], row['second'] / int(size), row['second_changed']))
    return '\n'.join(lines) + '\n'


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--reps', type=int, default=5)
    parser.add_argument('--fleet', default='1,10,50')
    args = parser.parse_args()
    sizes = [int(s) for s in args.fleet.split(',')]
    lab = Lab('hpb', fleet=max(sizes))
    info = lab.up()
    workdir = tempfile.mkdtemp(prefix='hostprep-bench-')
    try:
        res = {'tracepath': bench_vs_tracepath(info, args.reps),
               'targets': {str(k): v for k, v in bench_targets(workdir, lab, info, 3).items()},
               'fleet': {str(k): v for k, v in bench_role_and_fleet(workdir, info, sizes).items()}}
    finally:
        lab.down()
    machine = (platform.node(), os.cpu_count(), platform.python_version(), platform.release())
    meta = {'date': datetime.date.today().isoformat(),
            'machine': '%s, %d cores, Python %s, kernel %s' % machine}
    text = report(res, meta)
    os.makedirs(os.path.join(ROOT, 'bench', 'results'), exist_ok=True)
    with open(os.path.join(ROOT, 'bench', 'results', 'storage_network.json'), 'w', encoding='utf-8') as handle:
        json.dump({'meta': meta, 'results': res}, handle, indent=2)
    with open(os.path.join(ROOT, 'bench', 'results', 'storage_network.md'), 'w', encoding='utf-8') as handle:
        handle.write(text)
    print(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
