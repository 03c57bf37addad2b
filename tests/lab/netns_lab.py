# SPDX-License-Identifier: GPL-3.0-or-later
"""A disposable storage-network lab made of network namespaces and veth pairs.

Topology (every address is inside namespaces this lab creates: 198.18.0.0/15
is the benchmarking range, fd42:1ab::/32 a unique-local prefix)::

    host eth0 ----- eth0 r1 eth1 ===9000=== eth0 t9000       path MTU 9000
    (storage NIC,          eth2 ---1500--- eth0 t1500        path MTU 1500 (r1 says so)
     host_mtu)             eth3 ===9000=== eth0 r2 eth1 --4000-- eth0 t4000
                           eth4 9000 ... 1496 eth0 tblack    black hole above 1500: no ICMP
    host eth1 ----- eth0 peer (1500, a second NIC for link selection)

``tblack`` hangs on a veth whose router end says 9000 and whose far end says
1500: big frames vanish without a "fragmentation needed", as on a switch that
does not carry jumbo frames. ``fleet=N`` adds namespaces f001..fN, each with a
9000 NIC to r1, used as inventory hosts.

Run ``python3 tests/lab/netns_lab.py up PREFIX [--fleet N]`` and
``... down PREFIX``; ``... show PREFIX`` prints the lab as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from pyroute2 import IPRoute, NetNS, netns

NETNS_DIR = '/var/run/netns'


def _v4(net: int, host: int) -> str:
    return '198.18.%d.%d' % (net, host)


def _v6(net: int, host: int) -> str:
    return 'fd42:1ab:0:%x::%x' % (net, host)


def python_in(netns: str, workdir: str) -> str:
    """The path of an interpreter wrapper that runs Python inside netns: as ansible_python_interpreter, it makes
    the namespace play the managed host (its links, sysctls and /proc/self/ns/net are the module's own)."""
    path = os.path.join(workdir, 'python-in-%s' % netns)
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('#!/bin/sh\nexec ip netns exec %s %s "$@"\n' % (netns, sys.executable))
    os.chmod(path, 0o755)
    return path


def inventory_in(ansible, netns: str) -> str:
    """An inventory (written by a playbook.Ansible) whose one host runs its modules inside netns: the
    namespace plays the managed host, so a module that persists network configuration or sysctl.d
    files for its own namespace only can be tested for real without touching the host."""
    return ansible.inventory({'in-%s' % netns: {'ansible_python_interpreter': python_in(netns, ansible.workdir)}})


class Lab:
    """Build and tear down the namespaces; every name starts with prefix."""

    ROUTER_LINKS = [
        # (r1 ifname, net, r1 mtu, far ns, far ifname, far mtu)
        ('eth1', 2, 9000, 't9000', 'eth0', 9000),
        ('eth2', 3, 1500, 't1500', 'eth0', 1500),
        ('eth3', 4, 9000, 'r2', 'eth0', 9000),
        # A veth takes frames up to its MTU + 4 (room for a VLAN tag): 1496 makes the
        # black hole swallow everything above exactly 1500 bytes.
        ('eth4', 6, 9000, 'tblack', 'eth0', 1496),
    ]

    def __init__(self, prefix: str = 'hpl', host_mtu: int = 9000, fleet: int = 0) -> None:
        if len(prefix) > 8:
            raise ValueError('lab prefix %r is longer than 8 characters' % prefix)
        self.prefix = prefix
        self.host_mtu = host_mtu
        self.fleet = fleet
        self._tmp = 0

    # names -------------------------------------------------------------
    def ns(self, role: str) -> str:
        return '%s-%s' % (self.prefix, role)

    def fleet_ns(self, index: int) -> str:
        return self.ns('f%03d' % index)

    @property
    def namespaces(self) -> list[str]:
        names = ['host', 'peer', 'r1', 'r2', 't9000', 't1500', 't4000', 'tblack']
        return [self.ns(n) for n in names] + [self.fleet_ns(i) for i in range(1, self.fleet + 1)]

    # description ---------------------------------------------------------
    def describe(self) -> dict:
        """Everything a test needs to know about the lab."""
        targets = {
            't9000': {'v4': _v4(2, 10), 'v6': _v6(2, 10), 'path_mtu': 9000, 'hop_v4': None},
            't1500': {'v4': _v4(3, 10), 'v6': _v6(3, 10), 'path_mtu': 1500, 'hop_v4': _v4(1, 1)},
            't4000': {'v4': _v4(5, 10), 'v6': _v6(5, 10), 'path_mtu': 4000, 'hop_v4': _v4(4, 2)},
            'tblack': {'v4': _v4(6, 10), 'v6': _v6(6, 10), 'path_mtu': 1500, 'hop_v4': None},
        }
        return {
            'prefix': self.prefix,
            'host_ns': self.ns('host'),
            'host_nic': 'eth0',
            'host_nic_v4': _v4(1, 2),
            'second_nic': 'eth1',
            'second_nic_peer_v4': _v4(9, 1),
            'router_v4': _v4(1, 1),
            'targets': targets,
            'unused_v4': _v4(7, 10),
            'fleet': [{'name': 'f%03d' % i, 'netns': self.fleet_ns(i), 'nic': 'eth0',
                       'v4': _v4(100 + i, 2)} for i in range(1, self.fleet + 1)],
            'namespaces': self.namespaces,
        }

    # building --------------------------------------------------------------
    def _sysctl(self, nsname: str, key: str, value: str) -> None:
        subprocess.run(['ip', 'netns', 'exec', nsname, 'sysctl', '-qw', '%s=%s' % (key, value)],
                       check=True)

    def _veth(self, ns_a: str, if_a: str, mtu_a: int, ns_b: str, if_b: str, mtu_b: int) -> None:
        """A veth pair with one end in each namespace, renamed and brought up."""
        self._tmp += 1
        tmp_a = '%sa%d' % (self.prefix, self._tmp)
        tmp_b = '%sb%d' % (self.prefix, self._tmp)
        with IPRoute() as ipr:
            ipr.link('add', ifname=tmp_a, kind='veth', peer=tmp_b)
            ia = ipr.link_lookup(ifname=tmp_a)[0]
            ib = ipr.link_lookup(ifname=tmp_b)[0]
            ipr.link('set', index=ia, net_ns_fd=ns_a)
            ipr.link('set', index=ib, net_ns_fd=ns_b)
        for nsname, tmp, final, mtu in ((ns_a, tmp_a, if_a, mtu_a), (ns_b, tmp_b, if_b, mtu_b)):
            with NetNS(nsname) as nsr:
                idx = nsr.link_lookup(ifname=tmp)[0]
                nsr.link('set', index=idx, ifname=final, mtu=mtu)
                nsr.link('set', index=idx, state='up')

    def _addr(self, nsname: str, ifname: str, net: int, host: int) -> None:
        with NetNS(nsname) as nsr:
            idx = nsr.link_lookup(ifname=ifname)[0]
            nsr.addr('add', index=idx, address=_v4(net, host), prefixlen=24)
            nsr.addr('add', index=idx, address=_v6(net, host), prefixlen=64, flags=0x80)  # IFA_F_NODAD

    def _route(self, nsname: str, dst: str | None, gw4: str, gw6: str) -> None:
        with NetNS(nsname) as nsr:
            if dst is None:
                nsr.route('add', dst='0.0.0.0/0', gateway=gw4)
                nsr.route('add', dst='::/0', gateway=gw6, family=10)
            else:
                net = int(dst)
                nsr.route('add', dst='198.18.%d.0/24' % net, gateway=gw4)
                nsr.route('add', dst='fd42:1ab:0:%x::/64' % net, gateway=gw6, family=10)

    def up(self) -> dict:
        self.down()
        for name in self.namespaces:
            netns.create(name)
        for name in self.namespaces:
            with NetNS(name) as nsr:
                nsr.link('set', index=nsr.link_lookup(ifname='lo')[0], state='up')
            self._sysctl(name, 'net.ipv6.conf.all.accept_dad', '0')
            self._sysctl(name, 'net.ipv6.conf.default.accept_dad', '0')
        for router in ('r1', 'r2'):
            self._sysctl(self.ns(router), 'net.ipv4.ip_forward', '1')
            self._sysctl(self.ns(router), 'net.ipv6.conf.all.forwarding', '1')
        host, r1, r2 = self.ns('host'), self.ns('r1'), self.ns('r2')
        # host <-> r1: the storage NIC
        self._veth(host, 'eth0', self.host_mtu, r1, 'eth0', 9000)
        self._addr(host, 'eth0', 1, 2)
        self._addr(r1, 'eth0', 1, 1)
        # host <-> peer: a second NIC on another subnet
        self._veth(host, 'eth1', 1500, self.ns('peer'), 'eth0', 1500)
        self._addr(host, 'eth1', 9, 2)
        self._addr(self.ns('peer'), 'eth0', 9, 1)
        self._route(host, None, _v4(1, 1), _v6(1, 1))
        for r1_if, net, r1_mtu, far, far_if, far_mtu in self.ROUTER_LINKS:
            self._veth(r1, r1_if, r1_mtu, self.ns(far), far_if, far_mtu)
            self._addr(r1, r1_if, net, 1)
            self._addr(self.ns(far), far_if, net, 10 if far != 'r2' else 2)
            if far != 'r2':
                self._route(self.ns(far), None, _v4(net, 1), _v6(net, 1))
        # r2 <-> t4000 at 4000
        self._veth(r2, 'eth1', 4000, self.ns('t4000'), 'eth0', 4000)
        self._addr(r2, 'eth1', 5, 1)
        self._addr(self.ns('t4000'), 'eth0', 5, 10)
        self._route(r2, None, _v4(4, 1), _v6(4, 1))
        self._route(self.ns('t4000'), None, _v4(5, 1), _v6(5, 1))
        self._route(r1, '5', _v4(4, 2), _v6(4, 2))
        for i in range(1, self.fleet + 1):
            net = 100 + i
            self._veth(self.fleet_ns(i), 'eth0', 1500, r1, 'f%d' % i, 9000)
            self._addr(self.fleet_ns(i), 'eth0', net, 2)
            self._addr(r1, 'f%d' % i, net, 1)
            self._route(self.fleet_ns(i), None, _v4(net, 1), _v6(net, 1))
        self._wait_ready()
        return self.describe()

    def _wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the host answers pings from every target (neighbours, routes)."""
        deadline = time.monotonic() + timeout
        for info in self.describe()['targets'].values():
            while True:
                res = subprocess.run(['ip', 'netns', 'exec', self.ns('host'), 'ping', '-n', '-q', '-c', '1',
                                      '-W', '1', info['v4']], capture_output=True, check=False)
                if res.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError('lab target %s does not answer' % info['v4'])

    def down(self) -> None:
        existing = set(netns.listnetns())
        for name in self.namespaces:
            if name in existing:
                netns.remove(name)
        # fleet namespaces of an earlier, larger lab with the same prefix
        for name in existing:
            if name.startswith(self.prefix + '-f') and name not in self.namespaces:
                netns.remove(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('action', choices=['up', 'down', 'show'])
    parser.add_argument('prefix', nargs='?', default='hpl')
    parser.add_argument('--fleet', type=int, default=0)
    parser.add_argument('--host-mtu', type=int, default=9000)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print('the lab needs root (network namespaces)', file=sys.stderr)
        return 1
    lab = Lab(args.prefix, host_mtu=args.host_mtu, fleet=args.fleet)
    if args.action == 'up':
        print(json.dumps(lab.up(), indent=2))
    elif args.action == 'down':
        lab.down()
    else:
        print(json.dumps(lab.describe(), indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
