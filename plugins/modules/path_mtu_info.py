#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: path_mtu_info
short_description: Measure the path MTU to storage peers with Don't-Fragment ICMP probes
version_added: 0.1.0
description:
  - For each target address (IPv4 or IPv6), sends an ICMP echo request with the Don't-Fragment bit set
    whose IP packet is O(expected_mtu) bytes long (an ICMP payload of O(expected_mtu) minus 28 bytes for
    IPv4, minus 48 bytes for IPv6), as C(ping -M do -s) does.
  - When that probe fails, searches for the real path MTU instead of trying every size. A router's
    ICMP "fragmentation needed" (ICMPv4 type 3 code 4) or "Packet Too Big" (ICMPv6 type 2) answer names
    the MTU of its next hop, and the module probes exactly that size next. A path that drops big packets
    silently (a PMTUD black hole) is searched between the largest size known to pass and the smallest known
    to fail, trying common MTUs first, and every timed-out probe is retried once, since routers rate-limit
    their ICMP errors.
  - A small probe (576 bytes for IPv4, 1280 for IPv6, then the 68-byte IPv4 minimum) tells an unreachable
    target from a black hole.
  - Probes are sent from raw sockets, one per target, and the targets are probed concurrently. The
    kernel's cached path MTU is ignored (C(IP_PMTUDISC_PROBE)), so every probe really goes on the wire.
  - The module never sends a packet bigger than O(expected_mtu), so the RV(targets[].path_mtu) it reports
    is the smaller of the real path MTU and O(expected_mtu).
  - Read-only; it changes nothing, so it runs in check mode too.
author:
  - hostprep.container_host maintainers (@hostprep)
extends_documentation_fragment:
  - hostprep.container_host.attributes.info_module
  - hostprep.container_host.attributes.actiongroup_storage_network_and_validate
attributes:
  check_mode:
    description: The module only sends probes and changes nothing; it runs in check mode as well.
  platform:
    description: Linux only (raw sockets with C(IP_RECVERR), network namespaces).
options:
  targets:
    description:
      - The addresses to probe, as IPv4 or IPv6 address literals (for example V(198.18.3.10) or
        V(fd42:1ab:0:3::a)). A link-local IPv6 address takes its interface as C(%ifname).
      - Names are not resolved (a name may resolve to another network than the storage one); a target that is not
        an address literal fails the module before any probe.
      - Refused before any probe, and all named in one message, are an empty target (a templated value that came
        out empty), the unspecified address (V(0.0.0.0), V(::)), loopback addresses and addresses of the host itself
        (unless O(allow_loopback=true)), multicast addresses, the broadcast address V(255.255.255.255), the
        broadcast address of a subnet of the host (as C(ip route get) reports it in the namespace probed from),
        and an IPv6 link-local address without its interface.
      - A target that names the same address as an earlier one (V(198.18.3.10) and V(::ffff:198.18.3.10)) is
        probed once, listed in RV(duplicates) and named in a warning.
    type: list
    elements: str
    required: true
  expected_mtu:
    description:
      - The MTU the storage network should carry end to end, in bytes (the whole IP packet).
      - Between V(68) and V(65535); IPv6 targets need at least V(1280).
    type: int
    default: 9000
  netns:
    description:
      - Name of a network namespace (as made by C(ip netns add), under C(/var/run/netns)) or path of a
        namespace file to probe from. The namespace must exist.
    type: str
  timeout:
    description:
      - Seconds to wait for the answer to each probe, from V(0.01) to V(60).
    type: float
    default: 1.0
  concurrency:
    description:
      - How many targets are probed at the same time, each from its own thread and raw socket, from V(1) to V(256).
    type: int
    default: 32
  allow_loopback:
    description:
      - Probe loopback addresses (V(127.0.0.1), V(::1)) and addresses of the host itself, which answer over the
        loopback interface and say nothing about the storage network.
      - By default such a target is refused, since it usually means a templated address that points at the
        wrong host.
    type: bool
    default: false
requirements:
  - root or C(CAP_NET_RAW) (raw ICMP sockets)
  - pyroute2 (the route lookup that tells broadcast and local targets, and O(netns))
notes:
  - The results match C(ping -M do -s PAYLOAD) and C(tracepath -n -l 9000) on the same path, except
    that tracepath cannot see a black hole.
  - Routers answering a probe that is too big make the kernel cache the lower path MTU for that target
    (for about ten minutes), as any PMTU discovery does.
seealso:
  - name: ip(7)
    description: C(IP_MTU_DISCOVER), C(IP_RECVERR) and the error queue the probes read.
    link: https://man7.org/linux/man-pages/man7/ip.7.html
  - name: RFC 1191
    description: Path MTU Discovery for IPv4.
    link: https://www.rfc-editor.org/rfc/rfc1191
  - name: RFC 8201
    description: Path MTU Discovery for IPv6.
    link: https://www.rfc-editor.org/rfc/rfc8201
'''

EXAMPLES = r'''
- name: Check that jumbo frames reach every storage peer
  hostprep.container_host.path_mtu_info:
    targets:
      - 198.18.2.10
      - fd42:1ab:0:2::a
    expected_mtu: 9000
  register: pmtu

- name: Stop when a path does not carry 9000 bytes
  ansible.builtin.assert:
    that: pmtu.all_ok
    fail_msg: >-
      {{ pmtu.targets | rejectattr('expected_mtu_ok') | map(attribute='target') | join(', ') }}
      do not carry jumbo frames

- name: Probe from inside a network namespace, with a shorter timeout
  hostprep.container_host.path_mtu_info:
    netns: storage
    targets: "{{ groups['storage'] | map('extract', hostvars, 'storage_ip') | list }}"
    expected_mtu: 9000
    timeout: 0.5
'''

RETURN = r'''
targets:
  description: One entry per distinct target, in the order of O(targets) (see RV(duplicates)).
  returned: success
  type: list
  elements: dict
  contains:
    target:
      description: The target as given.
      type: str
      sample: 198.18.3.10
    family:
      description: The IP version, V(4) or V(6).
      type: int
      sample: 4
    reachable:
      description: Whether the target answered any probe.
      type: bool
      sample: true
    path_mtu:
      description:
        - The largest IP packet, in bytes, that reached the target and came back with Don't-Fragment set,
          never more than O(expected_mtu).
        - V(null) when the target is unreachable.
      type: int
      sample: 1500
    expected_mtu:
      description: The O(expected_mtu) the path was checked against.
      type: int
      sample: 9000
    expected_mtu_ok:
      description: Whether the target is reachable and the path carries O(expected_mtu).
      type: bool
      sample: false
    limiting_hop:
      description:
        - The address of the router that reported the path MTU in an ICMP error, V(local) when the host's
          own link is the limit.
        - V(null) when the path carries O(expected_mtu), or when the limit is silent (a black hole).
      type: str
      sample: 198.18.1.1
    probes:
      description: How many probes were sent, retries included.
      type: int
      sample: 2
    probe_log:
      description: Every probe in the order sent.
      type: list
      elements: dict
      contains:
        size:
          description: The size of the IP packet.
          type: int
        outcome:
          description:
            - V(reply) (echo reply received), V(too_big) (a router said the packet does not fit),
              V(local_too_big) (the host's own link is smaller), V(timeout) (no answer),
              V(unreachable) (ICMP destination unreachable, or no route), V(error) (anything else).
          type: str
        mtu:
          description: The MTU named by V(too_big) or V(local_too_big), otherwise V(null).
          type: int
        hop:
          description: Who sent the ICMP error (V(local) for the host itself), otherwise V(null).
          type: str
        rtt_ms:
          description: Round-trip time in milliseconds; V(null) after a timeout.
          type: float
      sample:
        - {size: 9000, outcome: too_big, mtu: 1500, hop: 198.18.1.1, rtt_ms: 0.21}
        - {size: 1500, outcome: reply, mtu: null, hop: null, rtt_ms: 0.13}
    seconds:
      description: How long probing this target took.
      type: float
      sample: 0.004
duplicates:
  description: Targets that name the same address as an earlier target, which were probed once.
  returned: success
  type: list
  elements: dict
  contains:
    target:
      description: The duplicate as given.
      type: str
      sample: ::ffff:198.18.3.10
    same_as:
      description: The earlier target it repeats, whose entry in RV(targets) holds the result.
      type: str
      sample: 198.18.3.10
all_ok:
  description: Whether every target is reachable and carries O(expected_mtu).
  returned: success
  type: bool
  sample: false
seconds:
  description: How long the whole run took, in seconds.
  returned: success
  type: float
  sample: 1.52
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostprep.container_host.plugins.module_utils._common import execute
from ansible_collections.hostprep.container_host.plugins.module_utils._pmtu import survey


def main():
    module = AnsibleModule(
        argument_spec=dict(
            targets=dict(type='list', elements='str', required=True),
            expected_mtu=dict(type='int', default=9000),
            netns=dict(type='str'),
            timeout=dict(type='float', default=1.0),
            concurrency=dict(type='int', default=32),
            allow_loopback=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    execute(module, survey)


if __name__ == '__main__':
    main()
