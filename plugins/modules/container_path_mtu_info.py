#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: container_path_mtu_info
short_description: Measure the path MTU to storage peers from inside a container
version_added: 0.2.0
description:
  - Enters the network namespace of a container's process (C(/proc/PID/ns/net)) and measures the path MTU to
    each target from there with the same Don't-Fragment probes and search as M(hostprep.container_host.path_mtu_info);
    the container's own links, routes and MTU decide, and the image needs no tool.
  - Either O(container) names a running container, or a short-lived container is started on O(network) from
    O(image), probed, and removed whatever happens.
  - Reads the container's C(net.ipv4.tcp_mtu_probing), which is per network namespace (containers do not inherit
    the host's value, moby/moby#36070), and compares it with O(tcp_mtu_probing).
  - The module's own thread goes back to the host's namespace afterwards. Read-only for the host; with O(network)
    it creates and removes one container labelled C(hostprep.container_host.probe).
author:
  - hostprep.container_host maintainers (@hostprep)
extends_documentation_fragment:
  - hostprep.container_host.attributes.info_module
  - hostprep.container_host.attributes.actiongroup_storage_network_and_validate
  - hostprep.container_host.docker_host
  - hostprep.container_host.docker_host.sdk
attributes:
  check_mode:
    description: The module only probes (and with O(network) runs a short-lived container); it runs in check mode too.
  platform:
    description: Linux only (network namespaces, raw sockets); the engine must run on the managed host.
options:
  container:
    description: Name or ID of a running container to probe from. Exactly one of O(container) and O(network).
    type: str
  network:
    description: Engine network to probe from, through a short-lived container on it (needs O(image)).
    type: str
  image:
    description: A local image with C(sleep) for the short-lived container (for example one imported from busybox-static).
    type: str
  targets:
    description: The storage peers to probe, as IPv4 or IPv6 address literals (as M(hostprep.container_host.path_mtu_info) takes them).
    type: list
    elements: str
    required: true
  expected_mtu:
    description:
      - The MTU the path from the container should carry (the whole IP packet).
      - Default the biggest MTU of the container's own links, what it sends; a path narrower than that fails.
    type: int
  tcp_mtu_probing:
    description: The C(net.ipv4.tcp_mtu_probing) the container should have (0, 1 or 2); unset only reports it.
    type: int
    choices: [0, 1, 2]
  timeout:
    description: Seconds to wait for the answer to each probe, from V(0.01) to V(60).
    type: float
    default: 1.0
requirements:
  - root (entering another namespace, raw ICMP sockets)
  - pyroute2
seealso:
  - module: hostprep.container_host.path_mtu_info
  - module: hostprep.container_host.docker_network_mtu_info
'''

EXAMPLES = r'''
- name: Probe the storage peers from a short-lived container on the app network
  hostprep.container_host.container_path_mtu_info:
    network: app
    image: hostprep-busybox:latest
    targets: [198.18.2.10]
    tcp_mtu_probing: 1
  register: in_container

- name: Probe from a running container
  hostprep.container_host.container_path_mtu_info:
    container: nfs-client
    targets: [198.18.2.10]
'''

RETURN = r'''
targets:
  description: One entry per distinct target, as M(hostprep.container_host.path_mtu_info) returns it, measured from the container.
  returned: success
  type: list
  elements: dict
all_ok:
  description: Whether every target carries O(expected_mtu) from the container and C(tcp_mtu_probing) is as asked.
  returned: success
  type: bool
tcp_mtu_probing:
  description: The container's C(net.ipv4.tcp_mtu_probing).
  returned: success
  type: dict
  contains:
    value:
      description: The value in the container's namespace.
      type: int
    expected:
      description: O(tcp_mtu_probing), or null.
      type: int
    ok:
      description: Whether the value is the one asked for (true when none is).
      type: bool
    problem:
      description: What is wrong and how to set it, or null.
      type: str
interfaces:
  description: The container's links (without lo) and their MTU.
  returned: success
  type: list
  elements: dict
  sample: [{ifname: eth0, mtu: 1500}]
container:
  description: The name of the container probed from.
  returned: success
  type: str
container_id:
  description: Its ID.
  returned: success
  type: str
pid:
  description: The PID whose network namespace was entered.
  returned: success
  type: int
networks:
  description: The engine networks the container is on.
  returned: success
  type: list
  elements: str
short_lived:
  description: Whether the container was started for the probe (and is removed).
  returned: success
  type: bool
duplicates:
  description: Targets that repeat an earlier one (probed once).
  returned: success
  type: list
  elements: dict
seconds:
  description: How long the run took, in seconds.
  returned: success
  type: float
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hostprep.container_host.plugins.module_utils._common import execute
from ansible_collections.hostprep.container_host.plugins.module_utils._container_net import docker_client
from ansible_collections.hostprep.container_host.plugins.module_utils._container_probe import container_survey
from ansible_collections.hostprep.container_host.plugins.module_utils._netns import require_pyroute2


def probe(module):
    with docker_client(module) as client:
        return dict(container_survey(client, dict(module.params, concurrency=32), module.warn), changed=False)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            docker_host=dict(type='str', default='unix:///var/run/docker.sock'),
            container=dict(type='str'),
            network=dict(type='str'),
            image=dict(type='str'),
            targets=dict(type='list', elements='str', required=True),
            expected_mtu=dict(type='int'),
            tcp_mtu_probing=dict(type='int', choices=[0, 1, 2]),
            timeout=dict(type='float', default=1.0),
        ),
        required_one_of=[('container', 'network')],
        mutually_exclusive=[('container', 'network')],
        supports_check_mode=True,
    )
    require_pyroute2(module)
    execute(module, probe)


if __name__ == '__main__':
    main()
