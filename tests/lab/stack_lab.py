# SPDX-License-Identifier: GPL-3.0-or-later
"""Stacked links in a network namespace, for link_mtu's stacking rules.

Namespace ``PREFIX-stk`` plays the host, ``PREFIX-stf`` the switch beyond it::

    a0 (veth, 1500) ---------------------------- a0 in stf (1500: drops bigger frames)
      +-- mv (macvlan on a0)  -- port of bridge bra
      +-- vx4 (VXLAN over IPv4 on a0: 50 bytes)
      +-- vx6 (VXLAN over IPv6 on a0: 70 bytes)
    p1, p2 (veths) -- ports of bridge brp
    bond0 (active-backup over m1, m2) + bond0.100 (VLAN) + brv (bridge over the VLAN)
        only where the kernel has bonding and 802.1Q (``stacks['bond']`` says)

Addresses: 198.18.50.2/24 on a0, 198.18.50.1 on the far end (inside the
benchmarking range, only in these namespaces).
"""

from __future__ import annotations

import subprocess
import sys

from pyroute2 import netns

FAR_V4 = '198.18.50.1'


def _ip(nsname: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(['ip', '-n', nsname, *args], capture_output=True, text=True, check=check)


class StackLab:
    """Build and tear down the stacked-link namespaces (names start with prefix)."""

    def __init__(self, prefix: str = 'hps') -> None:
        self.prefix = prefix
        self.host = '%s-stk' % prefix
        self.far = '%s-stf' % prefix

    def _bond_stack(self) -> bool:
        """bond0 over m1, m2, a VLAN on it and a bridge over the VLAN; False where the kernel lacks them."""
        if _ip(self.host, 'link', 'add', 'bond0', 'type', 'bond', 'mode', 'active-backup', check=False).returncode:
            return False
        for member in ('m1', 'm2'):
            _ip(self.host, 'link', 'add', member, 'type', 'veth', 'peer', 'name', member + 'p')
            _ip(self.host, 'link', 'set', member, 'master', 'bond0')
        if _ip(self.host, 'link', 'add', 'link', 'bond0', 'name', 'bond0.100', 'type', 'vlan', 'id', '100',
               check=False).returncode:
            return False
        _ip(self.host, 'link', 'add', 'brv', 'type', 'bridge')
        _ip(self.host, 'link', 'set', 'bond0.100', 'master', 'brv')
        return True

    def up(self) -> dict:
        self.down()
        netns.create(self.host)
        netns.create(self.far)
        _ip(self.host, 'link', 'add', 'a0', 'type', 'veth', 'peer', 'name', 'a0', 'netns', self.far)
        _ip(self.host, 'link', 'add', 'link', 'a0', 'name', 'mv', 'type', 'macvlan', 'mode', 'bridge')
        _ip(self.host, 'link', 'add', 'bra', 'type', 'bridge')
        _ip(self.host, 'link', 'set', 'mv', 'master', 'bra')
        _ip(self.host, 'link', 'add', 'vx4', 'type', 'vxlan', 'id', '4', 'dstport', '4789', 'dev', 'a0')
        _ip(self.host, 'link', 'add', 'vx6', 'type', 'vxlan', 'id', '6', 'dstport', '4789', 'dev', 'a0',
            'local', 'fd42:1ab:0:50::2')
        _ip(self.host, 'link', 'add', 'brp', 'type', 'bridge')
        for port in ('p1', 'p2'):
            _ip(self.host, 'link', 'add', port, 'type', 'veth', 'peer', 'name', port + 'p')
            _ip(self.host, 'link', 'set', port, 'master', 'brp')
        bond = self._bond_stack()
        _ip(self.host, 'addr', 'add', '198.18.50.2/24', 'dev', 'a0')
        _ip(self.far, 'addr', 'add', FAR_V4 + '/24', 'dev', 'a0')
        for nsname in (self.host, self.far):
            _ip(nsname, 'link', 'set', 'lo', 'up')
            _ip(nsname, 'link', 'set', 'a0', 'up')
        subprocess.run(['ip', 'netns', 'exec', self.host, 'ping', '-c', '1', '-W', '2', FAR_V4],
                       capture_output=True, check=True)
        return self.describe(bond)

    def describe(self, bond: bool = False) -> dict:
        return {'host_ns': self.host, 'far_ns': self.far, 'far_v4': FAR_V4, 'bond': bond}

    def down(self) -> None:
        existing = set(netns.listnetns())
        for name in (self.host, self.far):
            if name in existing:
                netns.remove(name)


if __name__ == '__main__':
    LAB = StackLab(sys.argv[2] if len(sys.argv) > 2 else 'hps')
    print(LAB.up() if sys.argv[1] == 'up' else LAB.down())
