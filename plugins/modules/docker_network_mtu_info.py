#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: docker_network_mtu_info
short_description: Report every engine network's MTU next to the path it leaves through, and flag the ones above it
version_added: 0.2.0
description:
  - Lists every network of the engine (Docker SDK) with the MTU it gives its containers and where that comes from
    (C(com.docker.network.driver.mtu), the parent link of a macvlan or ipvlan network, or the driver's default of
    1500), and what a full-size packet of it takes on the host's uplink (an overlay adds 50 bytes of VXLAN over IPv4,
    and 26 more rounded to 4 when encrypted).
  - For an overlay network the engine reads C(com.docker.network.driver.mtu) as the underlay MTU and gives its
    containers that minus the encapsulation (1450 without the option).
  - The path is the narrowest of the host links the routes to O(targets) leave through (the default route without
    targets) and, for O(targets), their path MTU measured from the host with the probes of
    M(hostprep.container_host.path_mtu_info).
  - A network whose packets are bigger than the path is flagged (RV(above_path), a warning each); full-size packets
    from its containers are dropped, and TLS or NFS hang while small requests work. The message says how to fix it
    (for the default bridge C(mtu) in daemon.json and an engine restart, for any other network only recreating it
    after its containers are detached; this collection never recreates a network).
author:
  - hostprep.container_host maintainers (@hostprep)
extends_documentation_fragment:
  - hostprep.container_host.attributes.info_module
  - hostprep.container_host.attributes.actiongroup_storage_network_and_validate
  - hostprep.container_host.docker_host
  - hostprep.container_host.docker_host.sdk
attributes:
  check_mode:
    description: The module only reads and probes; it runs in check mode as well.
  platform:
    description: Linux only (netlink routes); the engine must run on the managed host.
options:
  targets:
    description:
      - Storage peers (IPv4 or IPv6 address literals) whose routes and path MTU make the path; empty means the
        default route's link.
    type: list
    elements: str
    default: []
  mtu:
    description:
      - The MTU container networks should have, for RV(daemon_config); default the path's (RV(path_mtu)).
    type: int
  expected_mtu:
    description: The largest probe sent to each target (the module never probes above it).
    type: int
    default: 9000
  timeout:
    description: Seconds to wait for the answer to each probe.
    type: float
    default: 1.0
requirements:
  - root or C(CAP_NET_RAW) with O(targets) (raw ICMP sockets)
  - pyroute2
seealso:
  - module: hostprep.container_host.container_path_mtu_info
  - module: hostprep.container_host.path_mtu_info
'''

EXAMPLES = r'''
- name: Which engine networks are above the storage path?
  hostprep.container_host.docker_network_mtu_info:
    targets: [198.18.2.10]
  register: nets

- name: Stop on a network above its path
  ansible.builtin.assert:
    that: nets.all_fit
    fail_msg: "{{ nets.problems | join('; ') }}"
'''

RETURN = r'''
networks:
  description: One entry per engine network.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The network's name.
      type: str
      sample: bridge
    id:
      description: Its ID.
      type: str
    driver:
      description: Its driver (bridge, overlay, macvlan, ipvlan, host, null).
      type: str
    scope:
      description: local or swarm.
      type: str
    mtu:
      description: The MTU its containers get.
      type: int
      sample: 1500
    mtu_source:
      description: Where that MTU comes from.
      type: str
      sample: option com.docker.network.driver.mtu
    wire_mtu:
      description: What a full-size packet of it takes on the host's uplink (the MTU plus any encapsulation).
      type: int
      sample: 1550
    encrypted:
      description: Whether it is an encrypted overlay.
      type: bool
    containers:
      description: How many containers are attached (a network with containers is never recreated).
      type: int
    bridge:
      description: The host's bridge device of a bridge network, else null.
      type: str
      sample: docker0
    default_bridge:
      description: Whether it is the engine's default bridge (its MTU comes from daemon.json C(mtu)).
      type: bool
    path_mtu:
      description: The path it is judged against.
      type: int
    path_via:
      description: What limits that path (a link, or the path to a target).
      type: str
    fitting_mtu:
      description: The biggest MTU that fits the path (an overlay's is the path minus the encapsulation).
      type: int
    status:
      description: V(fits), V(below_path) (fits with room to spare), V(above_path) or V(not_judged) (host, null).
      type: str
    fits:
      description: Whether it fits the path (null when not judged).
      type: bool
    problem:
      description: For a network above its path, what happens and how to fix it.
      type: str
above_path:
  description: Names of the networks above their path.
  returned: success
  type: list
  elements: str
problems:
  description: One message per network above its path.
  returned: success
  type: list
  elements: str
all_fit:
  description: Whether no network is above its path.
  returned: success
  type: bool
path_mtu:
  description: The narrowest path found (null when there is no route at all).
  returned: success
  type: int
path_via:
  description: What limits it.
  returned: success
  type: str
uplinks:
  description: Every link and measured path considered, with its MTU.
  returned: success
  type: list
  elements: dict
engine_version:
  description: The engine's version (V(null) when unreadable).
  returned: success
  type: str
  sample: 20.10.24
container_mtu:
  description: O(mtu), or the path's MTU.
  returned: success
  type: int
  sample: 1450
daemon_config:
  description:
    - The daemon.json keys that give the default bridge that MTU (C(mtu)), and new bridge networks too on Engine 24
      and later (C(default-network-opts)); for M(hostprep.container_host.docker_daemon_config). Older engines need
      C(-o com.docker.network.driver.mtu=N) on each C(docker network create).
  returned: success
  type: dict
  sample: {mtu: 1450}
targets:
  description: The path MTU measured to each target from the host, as M(hostprep.container_host.path_mtu_info) returns it.
  returned: success
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hostprep.container_host.plugins.module_utils._common import execute
from ansible_collections.hostprep.container_host.plugins.module_utils._container_net import docker_client, network_report
from ansible_collections.hostprep.container_host.plugins.module_utils._netns import iproute, require_pyroute2


def report(module):
    with docker_client(module) as client, iproute() as ipr:
        return network_report(module.params, client, ipr, module.warn)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            docker_host=dict(type='str', default='unix:///var/run/docker.sock'),
            targets=dict(type='list', elements='str', default=[]),
            mtu=dict(type='int'),
            expected_mtu=dict(type='int', default=9000),
            timeout=dict(type='float', default=1.0),
        ),
        supports_check_mode=True,
    )
    require_pyroute2(module)
    execute(module, report)


if __name__ == '__main__':
    main()
