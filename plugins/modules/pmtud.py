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
    only; persistence for another namespace is the business of whatever creates it.
  - Run time and file are compared and reported separately (RV(runtime_changed), RV(persist_changed)).
author:
  - hostprep.container_host maintainers (@hostprep)
attributes:
  check_mode:
    support: full
    description: Reports what would change in the kernel and in the file, and changes nothing.
  diff_mode:
    support: full
    description: Shows the run-time values and the file content before and after.
  idempotent:
    support: full
    description: A second run with the same options changes nothing and reports no change.
  platform:
    support: full
    platforms: posix
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
      - The namespace must exist; the module never creates it.
      - O(sysctl_file) is still a file of the host; at boot it applies to the root namespace, not to
        this one. Set O(persist=false) when only the namespace is meant.
    type: str
  persist:
    description:
      - Also write the values to O(sysctl_file) so that they survive a reboot.
    type: bool
    default: true
  sysctl_file:
    description:
      - The file under C(/etc/sysctl.d/) the module owns. It holds a header comment and only the keys
        this module manages; keys set by an earlier run and not given now are kept.
      - Its name must end in C(.conf) for systemd-sysctl to read it.
    type: path
    default: /etc/sysctl.d/90-hostprep-pmtud.conf
  mtu:
    description:
      - The MTU O(tcp_base_mss) is checked against.
      - Default is the largest MTU of the namespace's non-loopback links (up or down), read through
        netlink.
    type: int
  backup:
    description:
      - Keep a timestamped copy of O(sysctl_file) before changing it.
    type: bool
    default: false
requirements:
  - pyroute2 (when O(netns) is set, or O(tcp_base_mss) without O(mtu))
notes:
  - The kernel itself accepts any integer for both sysctls; the checks are the module's.
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
diff:
  description:
    - Before and after; the first item covers the run-time values, the second (with O(persist=true))
      the file content.
  returned: success, with C(--diff)
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    HostprepError,
    atomic_write,
    execute,
    read_text,
)
from ansible_collections.hostprep.container_host.plugins.module_utils._netns import (
    enter_netns,
    iproute,
    require_pyroute2,
)
from ansible_collections.hostprep.container_host.plugins.module_utils._sysctl import (
    DEFAULT_MIN_SND_MSS,
    TCP_BASE_MSS,
    TCP_MIN_SND_MSS,
    TCP_MTU_PROBING,
    ProcSys,
    apply_runtime,
    link_records,
    links_from_records,
    plan_managed_file,
    plan_runtime,
    validate_pmtud,
)

MANAGED_KEYS = (TCP_MTU_PROBING, TCP_BASE_MSS)
HEADER = [
    'Managed by hostprep.container_host.pmtud: edits here are overwritten by its next run.',
    'systemd-sysctl applies this file at boot to the root network namespace only.',
]


def _as_text(values):
    return ''.join('%s = %s\n' % (key, values[key]) for key in sorted(values))


def _read(path):
    try:
        return read_text(path), None
    except OSError as exc:
        return None, exc


def _write(module, path, content, backup):
    try:
        return atomic_write(module, path, content, mode=0o644, backup=backup), None
    except OSError as exc:
        return None, exc


def run(module):
    params = module.params
    needs_links = params['tcp_base_mss'] is not None and params['mtu'] is None
    if params['netns'] or needs_links:
        require_pyroute2(module)
    path = params['sysctl_file']
    if params['persist'] and not path.endswith('.conf'):
        module.warn('sysctl_file %s does not end in .conf: systemd-sysctl and "sysctl --system" '
                    'ignore it at boot; rename it' % path)

    enter_netns(params['netns'])
    procsys = ProcSys()
    current = dict((key, procsys.read(key)) for key in MANAGED_KEYS)
    floor = int(procsys.read_default(TCP_MIN_SND_MSS, str(DEFAULT_MIN_SND_MSS)))
    links = None
    if needs_links:
        with iproute() as ipr:
            links = links_from_records(link_records(ipr))
    warnings = validate_pmtud(params['tcp_mtu_probing'], params['tcp_base_mss'],
                              int(current[TCP_MTU_PROBING]), floor, params['mtu'], links)

    wanted = {}
    for key, option in ((TCP_MTU_PROBING, 'tcp_mtu_probing'), (TCP_BASE_MSS, 'tcp_base_mss')):
        if params[option] is not None:
            wanted[key] = params[option]
    runtime = plan_runtime(current, wanted)

    file_plan = None
    if params['persist']:
        text, error = _read(path)
        if error:
            raise HostprepError('cannot read sysctl_file %s: %s; pass a file path under '
                                '/etc/sysctl.d' % (path, error), sysctl_file=path)
        file_plan = plan_managed_file(path, text, wanted, HEADER, MANAGED_KEYS)
        if file_plan.dropped:
            warnings.append('sysctl_file %s set keys this module does not manage (%s); they are '
                            'removed from it: move them to a file of their own'
                            % (path, ', '.join(file_plan.dropped)))
        for problem in file_plan.errors:
            warnings.append('sysctl_file %s: %s; the line is removed' % (path, problem))
    for warning in warnings:
        module.warn(warning)

    scope = 'network namespace %s' % params['netns'] if params['netns'] else 'root network namespace'
    after = dict(current, **runtime.after())
    result = dict(
        changed=False,
        sysctls=dict((key, int(after[key])) for key in MANAGED_KEYS),
        runtime=dict((key, {'before': int(value), 'after': int(runtime.after()[key])})
                     for key, value in runtime.before().items()),
        runtime_changed=runtime.changed,
        persist_changed=bool(file_plan and file_plan.changed),
        sysctl_file=path,
        diff=[{
            'before_header': 'run-time sysctls (%s)' % scope,
            'after_header': 'run-time sysctls (%s)' % scope,
            'before': _as_text(runtime.before()),
            'after': _as_text(runtime.after()),
        }],
    )
    if file_plan is not None:
        result['diff'].append(file_plan.diff())
    result['changed'] = result['runtime_changed'] or result['persist_changed']

    if not module.check_mode:
        apply_runtime(procsys, runtime)
        if file_plan is not None and file_plan.changed:
            backup_file, error = _write(module, path, file_plan.after, params['backup'])
            if error:
                raise HostprepError(
                    'cannot write sysctl_file %s: %s; the run-time values are set, fix the path '
                    'and run again to persist them' % (path, error),
                    changed=result['runtime_changed'], sysctl_file=path)
            if backup_file:
                result['backup_file'] = backup_file
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            tcp_mtu_probing=dict(type='int', choices=[0, 1, 2]),
            tcp_base_mss=dict(type='int'),
            netns=dict(type='str'),
            persist=dict(type='bool', default=True),
            sysctl_file=dict(type='path', default='/etc/sysctl.d/90-hostprep-pmtud.conf'),
            mtu=dict(type='int'),
            backup=dict(type='bool', default=False),
        ),
        required_one_of=[('tcp_mtu_probing', 'tcp_base_mss')],
        supports_check_mode=True,
    )
    execute(module, run)


if __name__ == '__main__':
    main()
