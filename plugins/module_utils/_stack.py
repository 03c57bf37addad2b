# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Stacked links for link_mtu: which link carries which, and in what order
their MTUs change (private to hostprep.container_host).

A storage NIC is often a VLAN on a bond, or a bridge over them. The kernel
refuses a VLAN, macvlan or VXLAN above what its parent carries
(vlan_dev_change_mtu, macvlan_change_mtu, vxlan_change_mtu), sets every bond
member to the bond's MTU (bond_change_mtu), and a bridge sends frames as big
as its own MTU out of every port. So:

* raising a link raises its parents first (bond members, bond, VLAN, bridge);
* lowering a link lowers the links it carries first (bridge, VLAN, bond);
* a bond's members always end at the bond's MTU;
* a link another requested link depends on is never set below what that
  link needs: two requests that contradict each other are refused.

Everything here is pure: links in, an ordered list of (link, MTU, why) out.
"""

from __future__ import annotations

import dataclasses
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError

# Kinds whose IFLA_LINK names the link under them (a veth's IFLA_LINK is its
# peer, which is no parent). See rtnetlink(7) and ip-link(8).
PARENT_KINDS = ('vlan', 'macvlan', 'macvtap', 'ipvlan', 'ipvtap', 'macsec')
# Bytes an encapsulation adds in front of the inner frame, from the kernel's
# headroom macros (include/net/vxlan.h VXLAN_HEADROOM, VXLAN6_HEADROOM;
# include/net/geneve.h GENEVE_IPV4_HLEN, GENEVE_IPV6_HLEN): outer IP header,
# UDP 8, the tunnel header 8 and the inner Ethernet header 14.
ENCAP_OVERHEAD = {('vxlan', 4): 50, ('vxlan', 6): 70, ('geneve', 4): 50, ('geneve', 6): 70}
MAX_ROUNDS = 64


@dataclasses.dataclass
class Lower:
    """One link under another: ifindex, the bytes the upper adds, and how they relate."""

    ifindex: int
    overhead: int
    relation: str  # 'parent', 'member' (bond), 'port' (bridge)


def lowers_of(link: t.Any, links: t.Sequence[t.Any]) -> list[Lower]:
    """The links directly under link in this namespace."""
    result = []
    if link.parent is not None and link.parent != link.ifindex:
        result.append(Lower(link.parent, link.overhead, 'parent'))
    if link.kind in ('bond', 'bridge', 'team'):
        relation = 'port' if link.kind == 'bridge' else 'member'
        result.extend(Lower(o.ifindex, 0, relation) for o in links if o.master == link.ifindex)
    return result


def uppers_of(link: t.Any, links: t.Sequence[t.Any]) -> list[tuple[t.Any, Lower]]:
    """The links directly over link: (upper, the Lower entry that names link)."""
    result = []
    for other in links:
        for lower in lowers_of(other, links):
            if lower.ifindex == link.ifindex:
                result.append((other, lower))
    return result


def depth(link: t.Any, by_index: dict[int, t.Any], seen: frozenset = frozenset()) -> int:
    """0 for a link with nothing under it, else one more than its deepest lower."""
    if link.ifindex in seen:
        return 0
    lowers = [by_index[lo.ifindex] for lo in lowers_of(link, list(by_index.values())) if lo.ifindex in by_index]
    return 1 + max((depth(lo, by_index, seen | {link.ifindex}) for lo in lowers), default=-1)


def _describe(upper: t.Any, lower: Lower) -> str:
    if lower.relation == 'member':
        return 'member of %s %s' % (upper.kind, upper.ifname)
    if lower.relation == 'port':
        return 'port of bridge %s' % upper.ifname
    extra = ' + %d bytes of %s encapsulation' % (lower.overhead, upper.kind) if lower.overhead else ''
    return 'parent of %s %s%s' % (upper.kind or 'link', upper.ifname, extra)


class _Expansion:
    """The MTU every touched link ends at, grown from the requested ones."""

    def __init__(self, wanted: dict[int, int], links: t.Sequence[t.Any]) -> None:
        self.links = list(links)
        self.by_index = {link.ifindex: link for link in self.links}
        self.requested = dict(wanted)
        self.final = dict(wanted)
        self.why: dict[int, str] = {}

    def mtu(self, ifindex: int) -> int:
        return self.final.get(ifindex, self.by_index[ifindex].mtu)

    def _set(self, ifindex: int, mtu: int, why: str, needed_by: str) -> bool:
        link = self.by_index[ifindex]
        if ifindex in self.requested and self.requested[ifindex] != mtu:
            raise HostprepError('%s needs link %s (%s) at MTU %d, but the links option asks %d for it; a link never '
                                'carries less than the links stacked on it: raise %s, or lower %s as well'
                                % (needed_by, link.ifname, why, mtu, self.requested[ifindex], link.ifname, needed_by),
                                ifname=link.ifname)
        if self.mtu(ifindex) == mtu:
            return False
        self.final[ifindex] = mtu
        self.why.setdefault(ifindex, why)
        return True

    def _step(self, link: t.Any) -> list[int]:
        """Fix the neighbours of link for its final MTU; returns the ifindexes that moved."""
        mtu = self.mtu(link.ifindex)
        moved = []
        for lower in lowers_of(link, self.links):
            if lower.ifindex not in self.by_index:
                continue
            need = mtu + lower.overhead
            have = self.mtu(lower.ifindex)
            # the kernel gives a bond's new MTU to every member; an unchanged bond leaves them be
            follow = lower.relation == 'member' and have != mtu and mtu != link.mtu
            if follow or (lower.relation != 'member' and have < need):
                target = mtu if lower.relation == 'member' else need
                if self._set(lower.ifindex, target, _describe(link, lower),
                             'link %s at MTU %d' % (link.ifname, mtu)):
                    moved.append(lower.ifindex)
        for upper, lower in uppers_of(link, self.links):
            limit = mtu - lower.overhead
            if lower.relation != 'member' and self.mtu(upper.ifindex) > limit:
                why = 'carried by %s, which goes down to %d' % (link.ifname, mtu)
                if self._set(upper.ifindex, limit, why, 'link %s at MTU %d' % (link.ifname, mtu)):
                    moved.append(upper.ifindex)
        return moved

    def run(self) -> None:
        queue = list(self.final)
        for _round in range(MAX_ROUNDS * max(1, len(self.links))):
            if not queue:
                return
            queue.extend(self._step(self.by_index[queue.pop(0)]))
        raise HostprepError('the requested MTUs do not settle over the stacked links (%s); give each stack one MTU'
                            % ', '.join(self.by_index[i].ifname for i in self.final))


def check_member(link: t.Any, by_index: dict[int, t.Any]) -> None:
    """A bond or team member follows its master: selecting it alone is refused."""
    master = by_index.get(link.master) if link.master else None
    if master is not None and master.kind in ('bond', 'team'):
        raise HostprepError('link %s is a member of %s %s, whose MTU the kernel gives to every member; select %s '
                            'instead' % (link.ifname, master.kind, master.ifname, master.ifname), ifname=link.ifname)


def expand(wanted: dict[int, int], links: t.Sequence[t.Any]) -> list[tuple[t.Any, int, str | None]]:
    """Every link whose MTU changes for the wanted {ifindex: MTU}, in the
    order that never puts a link above one under it: lowerings from the top
    of each stack down, then raisings from the bottom up. Each entry is
    (link, new MTU, why it is touched; None for a requested link)."""
    expansion = _Expansion(wanted, links)
    for ifindex in wanted:
        check_member(expansion.by_index[ifindex], expansion.by_index)
    expansion.run()
    by_index = expansion.by_index
    entries = [(by_index[i], mtu, expansion.why.get(i)) for i, mtu in expansion.final.items()]
    down = [e for e in entries if e[1] < e[0].mtu]
    up = [e for e in entries if e[1] > e[0].mtu]
    same = [e for e in entries if e[1] == e[0].mtu]
    down.sort(key=lambda e: -depth(e[0], by_index))
    up.sort(key=lambda e: depth(e[0], by_index))
    return down + up + same
