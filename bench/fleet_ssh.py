# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet runs over real SSH (issue 12): site.yml's storage-network play on N lab hosts.

N network namespaces of the netns lab, each with its own sshd
(tests/lab/ssh_hosts.py), reached across the storage fabric. For pipelining
off and on: the first run (every host's MTU 1500 -> 9000, PMTUD sysctls) and
the idempotent run, forks 10, site_serial 100% (one batch); wall time and time
per host. Writes bench/results/fleet_ssh.json.

    .venv/bin/python -m bench.fleet_ssh [--hosts 50] [--forks 10] [--pipelining off|on|both]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from pyroute2 import NetNS

from tests.lab import ROOT
from tests.lab.netns_lab import Lab
from tests.lab.playbook import Ansible
from tests.lab.ssh_hosts import SshHosts

SITE = os.path.join(ROOT, 'playbooks', 'site.yml')


def reset(info: dict, workdir: str) -> None:
    """Every host back to MTU 1500 and no sysctl file, so the next first run changes them."""
    for member in info['fleet']:
        with NetNS(member['netns']) as nsr:
            nsr.link('set', index=nsr.link_lookup(ifname='eth0')[0], mtu=1500)
        path = os.path.join(workdir, '%s.conf' % member['name'])
        if os.path.exists(path):
            os.unlink(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--hosts', type=int, default=50)
    parser.add_argument('--forks', type=int, default=10)
    parser.add_argument('--pipelining', choices=['off', 'on', 'both'], default='both')
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix='hp-fleet-ssh-')
    ansible = Ansible(workdir)
    lab = Lab('hpfb%d' % (os.getpid() % 1000), fleet=args.hosts)
    info = lab.up()
    results = []
    try:
        with SshHosts(info) as hosts:
            for pipelining in {'off': (False,), 'on': (True,), 'both': (False, True)}[args.pipelining]:
                reset(info, workdir)
                hostvars = {name: dict(hosts.hostvars(name, pipelining), ansible_become=False,
                                       storage_network_links=[{'name': 'eth0'}],
                                       storage_network_targets=[info['targets']['t9000']['v4']],
                                       storage_network_persist='none',
                                       storage_network_sysctl_file=os.path.join(workdir, '%s.conf' % name))
                            for name in hosts.members}
                inventory = ansible.inventory(hostvars)
                extra = {'hostprep_hosts': 'all', 'hostprep_docker_hosts': 'none_here', 'site_serial': '100%'}
                for label in ('first', 'idempotent'):
                    run = ansible.playbook(SITE, inventory, extra, diff=False, forks=args.forks)
                    if run.rc != 0:
                        raise RuntimeError('%s run failed:\n%s' % (label, run.stdout[-3000:]))
                    line = {'hosts': args.hosts, 'forks': args.forks, 'pipelining': pipelining, 'run': label,
                            'seconds': round(run.seconds, 1), 'per_host_s': round(run.seconds / args.hosts, 2),
                            'changed': run.changed, 'tasks': len(run.records)}
                    results.append(line)
                    print(json.dumps(line), flush=True)
    finally:
        lab.down()
    os.makedirs(os.path.join(ROOT, 'bench', 'results'), exist_ok=True)
    with open(os.path.join(ROOT, 'bench', 'results', 'fleet_ssh.json'), 'w', encoding='utf-8') as handle:
        json.dump(results, handle, indent=2)
    print('\n| Pipelining | Run | Hosts | Forks | Wall (s) | Per host (s) | Changed |\n|---|---|---|---|---|---|---|')
    for item in results:
        cells = ('on' if item['pipelining'] else 'off', item['run'], item['hosts'], item['forks'], item['seconds'],
                 item['per_host_s'], item['changed'])
        print('| %s | %s | %d | %d | %.1f | %.2f | %d |' % cells)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
