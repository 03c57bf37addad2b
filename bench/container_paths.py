# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: verify N containers' paths against the host's (issue 15).

On tests/lab/container_net_lab.py (a 1500 uplink, a 1450 path to the target)
with a private dockerd in the lab's host namespace:

1. the host's own path MTU to the target (probes, seconds);
2. for N running containers on the default bridge, each container's path
   probed from its own namespace with container_path_mtu_info's code
   (probes and seconds in all, and per container);
3. one container_path_mtu_info run through ansible-playbook with a
   short-lived container (what the validate role pays per host).

Run as root from the collection root: ``.venv/bin/python -m bench.container_paths [--counts 1 10 50]``.
Prints a Markdown report and writes it with the raw figures to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from tests.lab import LINKROOT, ROOT
from tests.lab.container_net_lab import ContainerNetLab, import_sleeper
from tests.lab.netns_lab import python_in
from tests.lab.playbook import Ansible

# runs inside the lab's host namespace: the host's probe, then every container's
SNIPPET = r'''
import json, sys, time
import docker
from ansible_collections.hostprep.container_host.plugins.module_utils import _container_probe, _pmtu
host, target, names = sys.argv[1], sys.argv[2], sys.argv[3:]
start = time.monotonic()
ref = _pmtu.measure(target, 1500, 1.0)
out = {'host': {'path_mtu': ref['path_mtu'], 'probes': ref['probes'], 'seconds': time.monotonic() - start}}
client = docker.DockerClient(base_url=host, version='auto')
start = time.monotonic()
params = {'targets': [target], 'expected_mtu': None, 'timeout': 1.0, 'concurrency': 32}
runs = [_container_probe.probe_from(client.containers.get(n), params, lambda m: None) for n in names]
out['containers'] = {'count': len(runs), 'seconds': time.monotonic() - start,
                     'probes': sum(r['targets'][0]['probes'] for r in runs),
                     'path_mtus': sorted({r['targets'][0]['path_mtu'] for r in runs}),
                     'failing': sum(1 for r in runs if not r['all_ok'])}
print(json.dumps(out))
'''


def verify_n(lab: ContainerNetLab, dockerd, count: int, target: str) -> dict:
    names = []
    for index in range(count):
        name = 'bench-%03d' % index
        dockerd.client.containers.run('hostprep-sleeper:latest', ['sleep', '600'], name=name, detach=True)
        names.append(name)
    try:
        proc = subprocess.run(['ip', 'netns', 'exec', lab.host, sys.executable, '-c', SNIPPET, dockerd.base_url,
                               target] + names, capture_output=True, text=True, check=True,
                              env=dict(os.environ, PYTHONPATH=LINKROOT))
        return json.loads(proc.stdout)
    finally:
        for name in names:
            dockerd.client.containers.get(name).remove(force=True)


def module_run(lab: ContainerNetLab, dockerd, target: str, workdir: str) -> float:
    ansible = Ansible(workdir)
    inventory = ansible.inventory({'dh': {'ansible_python_interpreter': python_in(lab.host, workdir)}})
    start = time.monotonic()
    result = ansible.module('hostprep.container_host.container_path_mtu_info',
                            {'docker_host': dockerd.base_url, 'network': 'bridge', 'image': 'hostprep-sleeper:latest',
                             'targets': [target]}, inventory=inventory)
    assert 'all_ok' in result, result.get('msg')
    return time.monotonic() - start


def report(results: dict) -> str:
    lines = ['| containers | host probes | host s | container probes | container s | s per container | path MTUs | failing |',
             '|---|---|---|---|---|---|---|---|']
    for row in results['rows']:
        c = row['containers']
        lines.append('| %d | %d | %.3f | %d | %.3f | %.3f | %s | %d |' % (
            c['count'], row['host']['probes'], row['host']['seconds'], c['probes'], c['seconds'],
            c['seconds'] / c['count'], c['path_mtus'], c['failing']))
    lines.append('')
    lines.append('One `container_path_mtu_info` run through ansible-playbook with a short-lived container: %.1f s.'
                 % results['module_seconds'])
    return '\n'.join(lines) + '\n'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--counts', type=int, nargs='+', default=[1, 10, 50])
    args = parser.parse_args()
    lab = ContainerNetLab('hpb%d' % (os.getpid() % 1000))
    info = lab.up()
    try:
        with tempfile.TemporaryDirectory(prefix='hp-bench-cpaths-') as workdir:
            with lab.engine(workdir, None) as dockerd:
                import_sleeper(dockerd.client)
                rows = [verify_n(lab, dockerd, n, info['target_v4']) for n in args.counts]
                results = {'rows': rows, 'module_seconds': module_run(lab, dockerd, info['target_v4'], workdir)}
    finally:
        lab.down()
    text = report(results)
    print(text)
    os.makedirs(os.path.join(ROOT, 'bench', 'results'), exist_ok=True)
    with open(os.path.join(ROOT, 'bench', 'results', 'container_paths.json'), 'w', encoding='utf-8') as handle:
        json.dump(results, handle, indent=1)
    with open(os.path.join(ROOT, 'bench', 'results', 'container_paths.md'), 'w', encoding='utf-8') as handle:
        handle.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
