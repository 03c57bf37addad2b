# SPDX-License-Identifier: GPL-3.0-or-later
"""A container host behind a path narrower than its uplink, in namespaces.

::

    PREFIX-dh (docker host)          PREFIX-dr (router)             PREFIX-dt (storage target)
    eth0 198.18.60.2 ==1500== eth0 198.18.60.1   eth1 198.18.61.1 ==1450== eth0 198.18.61.10
    docker0 and user networks in 172.28.0.0/14 (no NAT: the router routes them back)

A private dockerd runs with only its network namespace in PREFIX-dh
(``nsenter --net``: ``ip netns exec`` would remount /sys and hide the
cgroups), so its bridges, veths and containers stay inside the lab. The
router answers a packet above 1450 with "fragmentation needed".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from pyroute2 import netns

from tests.lab.dockerd import PrivateDockerd

TARGET_V4 = '198.18.61.10'
CONTAINER_NETS = '172.28.0.0/14'


def _ip(nsname: str, *args: str) -> None:
    subprocess.run(['ip', '-n', nsname, *args], capture_output=True, text=True, check=True)


def _sysctl(nsname: str, key: str, value: str) -> None:
    subprocess.run(['ip', 'netns', 'exec', nsname, 'sysctl', '-qw', '%s=%s' % (key, value)], check=True)


class NetnsDockerd(PrivateDockerd):
    """A PrivateDockerd in a network namespace, with a default bridge of its own there."""

    def __init__(self, workdir: str, nsname: str, bip: str, **kwargs) -> None:
        super().__init__(workdir, **kwargs)
        self.nsname = nsname
        self.bip = bip

    def flags(self) -> list[str]:
        args = [a for a in super().flags() if a != '--bridge=none']
        return ['nsenter', '--net=/var/run/netns/%s' % self.nsname] + args + ['--bip', self.bip]


class ContainerNetLab:
    """Build and tear down the three namespaces (names start with prefix)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.host, self.router, self.target = ('%s-%s' % (prefix, r) for r in ('dh', 'dr', 'dt'))

    def _veth(self, ns_a: str, ns_b: str, mtu: int) -> None:
        tmp_a, tmp_b = '%sx' % self.prefix, '%sy' % self.prefix
        subprocess.run(['ip', 'link', 'add', tmp_a, 'type', 'veth', 'peer', 'name', tmp_b], check=True)
        for tmp, nsname, final in ((tmp_a, ns_a, 'eth0' if ns_a != self.router else 'eth1'), (tmp_b, ns_b, 'eth0')):
            subprocess.run(['ip', 'link', 'set', tmp, 'netns', nsname], check=True)
            _ip(nsname, 'link', 'set', tmp, 'name', final, 'mtu', str(mtu), 'up')

    def up(self) -> dict:
        self.down()
        for name in (self.host, self.router, self.target):
            netns.create(name)
            _ip(name, 'link', 'set', 'lo', 'up')
        self._veth(self.host, self.router, 1500)
        self._veth(self.router, self.target, 1450)
        _ip(self.host, 'addr', 'add', '198.18.60.2/24', 'dev', 'eth0')
        _ip(self.router, 'addr', 'add', '198.18.60.1/24', 'dev', 'eth0')
        _ip(self.router, 'addr', 'add', '198.18.61.1/24', 'dev', 'eth1')
        _ip(self.target, 'addr', 'add', TARGET_V4 + '/24', 'dev', 'eth0')
        _ip(self.host, 'route', 'add', 'default', 'via', '198.18.60.1')
        _ip(self.router, 'route', 'add', CONTAINER_NETS, 'via', '198.18.60.2')
        _ip(self.target, 'route', 'add', 'default', 'via', '198.18.61.1')
        for name in (self.host, self.router):
            _sysctl(name, 'net.ipv4.ip_forward', '1')
        subprocess.run(['ip', 'netns', 'exec', self.host, 'ping', '-c', '1', '-W', '2', TARGET_V4],
                       capture_output=True, check=True)
        return {'host_ns': self.host, 'target_v4': TARGET_V4, 'path_mtu': 1450, 'uplink_mtu': 1500}

    def engine(self, workdir: str, daemon_json: str | None, bip: str = '172.29.0.1/24') -> NetnsDockerd:
        return NetnsDockerd(workdir, self.host, bip, config_file=daemon_json)

    def down(self) -> None:
        existing = set(netns.listnetns())
        for name in (self.host, self.router, self.target):
            if name in existing:
                netns.remove(name)


def import_sleeper(client, name: str = 'hostprep-sleeper:latest') -> str:
    """A local image from the static busybox with sh and sleep (the short-lived probe container's needs)."""
    from ansible_collections.hostprep.container_host.plugins.module_utils._cow_benchmark import (  # pylint: disable=import-outside-toplevel
        APPLETS, busybox_tar)
    with tempfile.TemporaryDirectory(prefix='hp-sleeper-') as tmp:
        path = os.path.join(tmp, 'rootfs.tar')
        with open(path, 'wb') as handle:
            handle.write(busybox_tar(shutil.which('busybox') or '/bin/busybox', APPLETS))
        repository, dummy, tag = name.partition(':')
        client.api.import_image_from_file(path, repository=repository, tag=tag or 'latest')
    return name
