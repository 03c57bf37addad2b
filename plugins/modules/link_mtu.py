#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: link_mtu
short_description: Set the MTU of network links, verify the path still carries it, and persist it
version_added: 0.1.0
description:
  - Sets the MTU of one or more links through netlink (pyroute2). A link is selected by name, by MAC
    address, or by the route to a storage target address (the link the kernel would send that traffic
    through).
  - Validates every requested MTU against the link's own C(min_mtu) and C(max_mtu) as the kernel reports
    them, and against the IPv4 minimum of 68, for B(all) links before it changes B(any). Setting a link
    that carries IPv6 addresses below 1280 makes the kernel disable IPv6 on it; the module warns.
  - With O(verify_targets), each target must answer a small ICMP echo before the change (otherwise the
    module fails and changes nothing), and after the change a Don't-Fragment echo as big as the new MTU
    of the link that leads to it must come back as a reply or as a router's "fragmentation needed" /
    "packet too big". A big probe that vanishes without an answer means the link or its peer does not
    carry frames that big; with O(rollback=true) the old MTUs are restored and the module fails with
    RV(rolled_back=true).
  - Stacked links are followed through netlink (C(IFLA_LINK), C(IFLA_MASTER), the link's kind). Raising
    a link raises what it rides on first (bond members, bond, VLAN or macvlan, bridge; a bridge's ports;
    a VXLAN's underlay by the encapsulation, 50 bytes over IPv4 and 70 over IPv6); lowering a link lowers
    what rides on it first, from the top down. A bond's members end at the bond's MTU. Every link touched
    is validated, rolled back and persisted like a requested one, and listed in RV(links) with
    RV(links[].stacked) saying why.
  - A request that puts a link above one it rides on (a VLAN above its parent, a VXLAN above its underlay
    minus the overhead) is refused before anything changes, as is a bond member selected alone (select
    the bond).
  - With O(persist), the MTU is also written to the configuration of the host's network stack
    (NetworkManager, systemd-networkd or ifupdown), only after verification passed. The run-time change
    and the persisted one are both reported.
author:
  - hostprep.container_host maintainers (@hostprep)
requirements:
  - pyroute2 on the managed host
  - C(nmcli) for O(persist=networkmanager)
extends_documentation_fragment:
  - hostprep.container_host.attributes
  - hostprep.container_host.attributes.actiongroup_storage_network
attributes:
  check_mode:
    description:
      - Validates everything, probes the verify targets with a small echo, plans the persistence, and
        changes nothing.
  diff_mode:
    description:
      - Shows the MTU of each link before and after, and each persisted file (or NetworkManager property)
        before and after.
  platform:
    description: Linux only (netlink, network namespaces).
options:
  links:
    description:
      - The links to set. Each item selects exactly one link with exactly one of O(links[].name),
        O(links[].mac) or O(links[].target).
      - Two items that select the same link must ask for the same MTU.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Interface name, for example V(eth0).
        type: str
      mac:
        description:
          - MAC address, for example V(52:54:00:12:34:56) (any case, C(:) or C(-) separators).
          - It must match exactly one link; members of a bond or a VLAN's parent share a MAC, select those
            by name.
        type: str
      target:
        description:
          - An IP address (IPv4 or IPv6). The link is the outgoing interface of the kernel's route to it
            (C(RTM_GETROUTE), the same as C(ip route get)).
          - Host names are not resolved.
        type: str
      mtu:
        description: The MTU of this link; overrides the top-level O(mtu).
        type: int
  mtu:
    description:
      - The MTU for every item of O(links) that has no O(links[].mtu) of its own.
      - Required unless every item has O(links[].mtu).
    type: int
  netns:
    description:
      - Name of a network namespace (as made by C(ip netns add), under C(/var/run/netns)) or path of a
        namespace file. The module moves into it before it reads or changes anything, so links, routes
        and probes are those of the namespace.
      - The namespace must exist; the module never creates it. An empty value is refused (a templated
        name that came out empty would otherwise select the host's own namespace).
      - The host's network configuration describes the links of the host's own namespace, so with a
        namespace other than the one the module starts in, O(persist=auto) persists nothing (see
        RV(persist_note)) and any other O(persist) value but V(none) is refused.
    type: str
  persist:
    description:
      - Also persist the MTU with the host's network stack.
      - V(none) changes only the running kernel.
      - V(networkmanager) runs C(nmcli connection modify UUID 802-3-ethernet.mtu N) on the connection
        active on the device (or the MTU property that matches the connection type). No
        C(nmcli device reapply) is needed or done, since the running MTU is already set.
      - V(networkd) writes the drop-in C(/etc/systemd/network/NAME.network.d/90-hostprep-mtu.conf)
        (C([Link] MTUBytes=N)) for the C(.network) file that manages the link, as named by
        C(/run/systemd/netif/links/IFINDEX). It fails when no C(.network) file manages the link, and when
        that file also manages a link this run does not give the same MTU (the drop-in would change it too).
        systemd-networkd reads it at its next reload or restart.
      - V(ifupdown) sets or adds the C(mtu N) line of the link's C(iface NAME inet|inet6 ...) stanza in
        C(/etc/network/interfaces) or a file it sources (C(source), C(source-directory)), and keeps
        every other byte. It fails when no stanza exists.
      - V(auto) picks V(networkmanager) when C(nmcli) is present, NetworkManager runs and manages the
        device with a connection of its own; else V(networkd) when its link state file names a
        C(.network) file; else V(ifupdown) when a stanza exists; else fails and lists what it checked.
      - Persistence is planned before anything changes (so a link no stack manages fails the run with
        nothing changed) and written only after verification passed. When writing it fails (a read-only or
        immutable directory, a full disk), the files already written and the run-time MTUs are put back
        and the module fails saying so, with RV(changes_made) and RV(changes_restored).
      - With O(netns) naming another namespace than the host's own, V(auto) resolves to V(none) and the
        methods V(networkmanager), V(networkd) and V(ifupdown) are refused, since the host's NetworkManager,
        C(/run/systemd/netif/links/IFINDEX) and C(/etc/network/interfaces) describe host links, and an
        index or name of the namespace found there would belong to a host link.
    type: str
    choices: [auto, networkmanager, networkd, ifupdown, none]
    default: none
  config_root:
    description:
      - Directory under which the persistence files are read and written, in place of C(/); for tests
        and image builds. C(nmcli) always talks to the running NetworkManager.
      - Must be an absolute path; an empty value is refused. Every file read or written must lie under it
        once symbolic links and C(..) are resolved; an ifupdown C(source) or C(source-directory) line
        (or a link) that leads outside it is refused, naming the file and line.
    type: path
    default: /
  verify_targets:
    description:
      - IP addresses that must still answer after the change, with a small echo and with a
        Don't-Fragment echo as big as the new MTU of the link their route uses (a reply or a router's
        "fragmentation needed" / "packet too big" both pass).
      - Each must answer a small echo B(before) the change, or the module fails and changes nothing.
      - Probed only when a run-time MTU changes. A target given twice is probed once.
      - An address whose answer proves nothing about the link is refused - the unspecified address
        (V(0.0.0.0), V(::), what an empty templated value may become), loopback, multicast, the limited
        broadcast address and any address of this host (the kernel routes it to C(lo)).
    type: list
    elements: str
    default: []
  verify_timeout:
    description:
      - Seconds to wait for the answer to each probe; more than 0 and at most 60 (the new MTU is in place
        while the module waits).
    type: float
    default: 2.0
  rollback:
    description:
      - When verification fails, restore the MTU every link had before and fail with
        RV(rolled_back=true).
      - With V(false) the module still fails, but leaves the new MTUs in place.
      - Nothing is persisted when verification fails.
    type: bool
    default: true
notes:
  - The systemd-networkd link state files under C(/run/systemd/netif/links/) are systemd's internal
    state; their C(NETWORK_FILE) key is what C(networkctl status) shows as "Network File".
seealso:
  - module: hostprep.container_host.path_mtu_info
  - module: hostprep.container_host.pmtud
'''

EXAMPLES = r'''
- name: Jumbo frames on the NIC that carries storage traffic, checked against the array
  hostprep.container_host.link_mtu:
    links:
      - target: 10.0.0.5
    mtu: 9000
    verify_targets:
      - 10.0.0.5
    persist: auto

- name: Two links, selected by name and by MAC address
  hostprep.container_host.link_mtu:
    links:
      - name: eth1
        mtu: 9000
      - mac: "52:54:00:12:34:56"
        mtu: 1500

- name: Write the MTU into an image being built under /mnt/image (ifupdown)
  hostprep.container_host.link_mtu:
    links:
      - name: eth0
    mtu: 9000
    persist: ifupdown
    config_root: /mnt/image
'''

RETURN = r'''
links:
  description: One entry per item of O(links), in order.
  returned: always
  type: list
  elements: dict
  contains:
    selector:
      description: How the item selected the link.
      type: str
      sample: target=10.0.0.5
    ifname:
      description: The link's name.
      type: str
      sample: eth0
    ifindex:
      description: The link's interface index.
      type: int
      sample: 2
    mac:
      description: The link's MAC address.
      type: str
      sample: "52:54:00:12:34:56"
    mtu_before:
      description: The MTU before the run.
      type: int
      sample: 1500
    mtu_after:
      description: The MTU after the run (in check mode, what it would be; after a rollback, the old one).
      type: int
      sample: 9000
    min_mtu:
      description: The smallest MTU the driver accepts, or null when the kernel reports none.
      type: int
      sample: 68
    max_mtu:
      description: The biggest MTU the driver accepts, or null when the kernel reports none.
      type: int
      sample: 9216
    changed:
      description: Whether the run-time MTU of this link changes.
      type: bool
    stacked:
      description:
        - Null for a link O(links) selects; for a link touched because of one, why (its place in the stack).
      type: str
      sample: parent of vxlan vxlan0 + 50 bytes of vxlan encapsulation
    persist:
      description: The persistence of this link.
      type: dict
      contains:
        method:
          description: V(networkmanager), V(networkd), V(ifupdown) or V(none).
          type: str
        path:
          description: The file written, or the NetworkManager connection and property.
          type: str
          sample: /etc/systemd/network/10-eth0.network.d/90-hostprep-mtu.conf
        changed:
          description: Whether the persisted configuration changes.
          type: bool
persist_method:
  description:
    - The persistence method used, after O(persist=auto) was resolved; V(none) without persistence.
    - When O(persist=auto) resolves to different methods for different links, they are joined by commas.
  returned: always
  type: str
  sample: networkd
verify:
  description: One entry per O(verify_targets) item.
  returned: always
  type: list
  elements: dict
  contains:
    target:
      description: The address.
      type: str
    reachable:
      description: Whether it answered a small echo (null when not probed).
      type: bool
    full_size_ok:
      description: Whether the full-size Don't-Fragment probe passed (null when not sent).
      type: bool
    detail:
      description: What the probes saw.
      type: str
    ifname:
      description: The link the route to the target uses (after the change).
      type: str
    size:
      description: The size of the full-size probe, the new MTU of that link.
      type: int
rolled_back:
  description: Whether a failed verification or a failed persistence made the module restore the old MTUs.
  returned: always
  type: bool
persist_note:
  description: Why O(persist=auto) persisted nothing (with O(netns) naming another namespace than the host's own).
  returned: when O(persist=auto) resolved to V(none) because of O(netns)
  type: str
  sample: "persist=auto with netns=storage resolves to persist=none: the host's network configuration does not
    manage links of namespace storage, so the MTU is set at run time only; persist it where the namespace is created"
changes_made:
  description: On failure, what the run had changed before it failed (run-time MTUs, files written).
  returned: failure
  type: list
  elements: str
  sample: ["set the MTU of eth1 from 1500 to 9000"]
changes_restored:
  description: On failure, what the run put back.
  returned: failure
  type: list
  elements: str
  sample: ["the MTU of eth1 back to 1500"]
diff:
  description:
    - A list of before/after pairs. The first maps each link's name to its MTU; one more follows for each
      persisted file (or NetworkManager property) that changes, with its path as header.
  returned: always
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    atomic_write, changes_of, execute, run)
from ansible_collections.hostprep.container_host.plugins.module_utils._link import Netlink, set_mtus
from ansible_collections.hostprep.container_host.plugins.module_utils._netns import (
    enter_netns, iproute, is_own_netns, require_pyroute2)
from ansible_collections.hostprep.container_host.plugins.module_utils._persist import Persister

from ansible_collections.hostprep.container_host.plugins.module_utils._pmtu import probe


def link_mtu(module):
    """The module's action: the netns is compared with our own before we enter it."""
    params = module.params
    persister = None
    if params['persist'] != 'none':
        persister = Persister(params['config_root'], run=lambda args, check_rc=True: run(module, args, check_rc=check_rc),
                              write=lambda path, text: atomic_write(module, path, text), which=module.get_bin_path)
    own_netns = is_own_netns(params['netns'])
    enter_netns(params['netns'])
    with iproute() as ipr:
        return set_mtus(params, Netlink(ipr), persister, probe, module.check_mode, module.warn,
                        changes_of(module), own_netns=own_netns)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            links=dict(type='list', elements='dict', required=True, options=dict(
                name=dict(type='str'),
                mac=dict(type='str'),
                target=dict(type='str'),
                mtu=dict(type='int'),
            )),
            mtu=dict(type='int'),
            netns=dict(type='str'),
            persist=dict(type='str', default='none',
                         choices=['auto', 'networkmanager', 'networkd', 'ifupdown', 'none']),
            config_root=dict(type='path', default='/'),
            verify_targets=dict(type='list', elements='str', default=[]),
            verify_timeout=dict(type='float', default=2.0),
            rollback=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    require_pyroute2(module)
    execute(module, link_mtu, rolled_back=False)


if __name__ == '__main__':
    main()
