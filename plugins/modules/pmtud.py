#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pmtud
short_description: Manage TCP path MTU discovery sysctls (tcp_mtu_probing, tcp_base_mss)
version_added: 0.1.0
description:
  - Sets C(net.ipv4.tcp_mtu_probing) and C(net.ipv4.tcp_base_mss) at run time, through C(/proc/sys),
    and persists them in a file under C(/etc/sysctl.d/) that systemd-sysctl (or C(sysctl --system))
    applies at boot.
  - With C(tcp_mtu_probing) on, TCP keeps working across a path whose routers drop big packets
    without sending ICMP "fragmentation needed" (a PMTUD black hole, RFC 4821).
  - Validates the values and their combination before it changes anything.
  - Both sysctls belong to a network namespace. With O(netns), the module works on that namespace's
    run-time values. The file under C(/etc/sysctl.d/) is applied at boot to the B(root) namespace
    only, so with O(netns) the module does not write it (see O(persist)); persistence for another
    namespace is the business of whatever creates it.
  - When writing the file fails, the run-time values are put back and the module fails saying so, with
    RV(changes_made) and RV(changes_restored).
  - Run time and file are compared and reported separately (RV(runtime_changed), RV(persist_changed)).
author:
  - hostprep.container_host maintainers (@hostprep)
extends_documentation_fragment:
  - hostprep.container_host.attributes
  - hostprep.container_host.attributes.actiongroup_storage_network
attributes:
  check_mode:
    description: Reports what would change in the kernel and in the file, and changes nothing.
  diff_mode:
    description: Shows the run-time values and the file content before and after.
  platform:
    description: Linux only (C(/proc/sys), network namespaces).
options:
  tcp_mtu_probing:
    description:
      - The value of C(net.ipv4.tcp_mtu_probing).
      - V(0) disables packetization-layer path MTU discovery; V(1) starts probing once an ICMP black
        hole is detected; V(2) probes on every connection.
      - At least one of O(tcp_mtu_probing) and O(tcp_base_mss) is required.
    type: int
    choices: [0, 1, 2]
  tcp_base_mss:
    description:
      - The value of C(net.ipv4.tcp_base_mss), the MSS that probing starts from.
      - At least the kernel's C(net.ipv4.tcp_min_snd_mss) (V(48) when the kernel lacks that sysctl),
        and at most the MTU minus 40 bytes of IPv4 and TCP headers (see O(mtu)).
      - Has no effect while C(net.ipv4.tcp_mtu_probing) is V(0); the module warns then.
    type: int
  netns:
    description:
      - Name of a network namespace (as made by C(ip netns add), under C(/var/run/netns)) or path of a
        namespace file. The module sets the namespace's run-time values.
      - The namespace must exist; the module never creates it. An empty value is refused.
      - O(sysctl_file) is a file of the host; at boot it applies to the root namespace, not to this one.
        So with a namespace other than the one the module starts in, O(persist) defaults to V(false)
        (see RV(persist_note)) and O(persist=true) is refused.
    type: str
  persist:
    description:
      - Also write the values to O(sysctl_file) so that they survive a reboot.
      - Default V(true), but V(false) with O(netns) naming another namespace than the host's own, where
        V(true) is refused.
    type: bool
  sysctl_file:
    description:
      - The file under C(/etc/sysctl.d/) the values are written to. A new file gets a header comment and
        the keys given. In an existing file only the values of the keys given change (every assignment of
        such a key) or are appended; other keys, comments, blank lines and lines systemd-sysctl cannot
        parse are kept byte for byte, as are keys set by an earlier run and not given now.
      - Its name must end in C(.conf) for systemd-sysctl to read it.
      - Refused when empty, relative, a symbolic link (a link to C(/dev/null) masks a vendor file of
        that name), a directory or another non-regular file.
    type: path
    default: /etc/sysctl.d/90-hostprep-pmtud.conf
  mtu:
    description:
      - The MTU O(tcp_base_mss) is checked against.
      - Default is the largest MTU of the namespace's non-loopback links (up or down), read through
        netlink.
      - From 68 to 65535 (the largest IPv4 datagram, and the max_mtu of Ethernet and veth links).
        Whatever the MTU, O(tcp_base_mss) is at most 65495.
    type: int
  backup:
    description:
      - Keep a timestamped copy of O(sysctl_file) before changing it.
    type: bool
    default: false
requirements:
  - pyroute2 (when O(netns) is set, or O(tcp_base_mss) without O(mtu))
notes:
  - The kernel itself accepts any integer for C(tcp_base_mss) (even negative ones) and 0 to 255 for
    C(tcp_mtu_probing); the checks are the module's.
seealso:
  - name: sysctl.d(5)
    description: The format of the persisted file.
    link: https://www.freedesktop.org/software/systemd/man/latest/sysctl.d.html
  - name: ip-sysctl.rst
    description: The kernel's documentation of tcp_mtu_probing and tcp_base_mss.
    link: https://www.kernel.org/doc/html/latest/networking/ip-sysctl.html
'''

EXAMPLES = r'''
- name: Probe the path MTU after a black hole is detected, starting at 1024
  hostprep.container_host.pmtud:
    tcp_mtu_probing: 1
    tcp_base_mss: 1024

- name: Always probe, checking tcp_base_mss against the storage network's MTU
  hostprep.container_host.pmtud:
    tcp_mtu_probing: 2
    tcp_base_mss: 8000
    mtu: 9000
    backup: true

- name: Run-time only, inside a network namespace
  hostprep.container_host.pmtud:
    netns: storage
    tcp_mtu_probing: 1
    persist: false
'''

RETURN = r'''
sysctls:
  description: The run-time values of both managed keys after the run (in check mode, what they would be).
  returned: success
  type: dict
  sample: {"net.ipv4.tcp_mtu_probing": 1, "net.ipv4.tcp_base_mss": 1024}
runtime:
  description: Before and after run-time value of each key given.
  returned: success
  type: dict
  sample: {"net.ipv4.tcp_mtu_probing": {"before": 0, "after": 1}}
runtime_changed:
  description: Whether a run-time value changed (or would in check mode).
  returned: success
  type: bool
  sample: true
persist_changed:
  description: Whether O(sysctl_file) changed (or would in check mode). Always V(false) with O(persist=false).
  returned: success
  type: bool
  sample: false
sysctl_file:
  description: The path of the persisted file.
  returned: success
  type: str
  sample: /etc/sysctl.d/90-hostprep-pmtud.conf
backup_file:
  description: The copy of the old file.
  returned: when O(backup=true) and the file existed and changed
  type: str
  sample: /etc/sysctl.d/90-hostprep-pmtud.conf.12345.2025-01-01@00:00:00~
persist_note:
  description: Why the file was not written (O(persist) left unset with O(netns) naming another namespace).
  returned: when O(persist) defaulted to V(false) because of O(netns)
  type: str
  sample: "persist defaults to false with netns=storage: a sysctl.d file applies at boot to the host's own
    network namespace, never to namespace storage; the values are set at run time only"
changes_made:
  description: On failure, what the run had changed before it failed.
  returned: failure
  type: list
  elements: str
  sample: ["set net.ipv4.tcp_mtu_probing from 0 to 1"]
changes_restored:
  description: On failure, what the run put back.
  returned: failure
  type: list
  elements: str
  sample: ["net.ipv4.tcp_mtu_probing back to 0"]
diff:
  description:
    - Before and after; the first item covers the run-time values, the second (when the file is
      written) the file content.
  returned: success, with C(--diff)
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostprep.container_host.plugins.module_utils._common import execute
from ansible_collections.hostprep.container_host.plugins.module_utils._pmtud import manage


def main():
    module = AnsibleModule(
        argument_spec=dict(
            tcp_mtu_probing=dict(type='int', choices=[0, 1, 2]),
            tcp_base_mss=dict(type='int'),
            netns=dict(type='str'),
            persist=dict(type='bool'),
            sysctl_file=dict(type='path', default='/etc/sysctl.d/90-hostprep-pmtud.conf'),
            mtu=dict(type='int'),
            backup=dict(type='bool', default=False),
        ),
        required_one_of=[('tcp_mtu_probing', 'tcp_base_mss')],
        supports_check_mode=True,
    )
    execute(module, manage)


if __name__ == '__main__':
    main()
