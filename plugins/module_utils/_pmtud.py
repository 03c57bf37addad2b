# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pmtud module's run: TCP path MTU discovery sysctls at run time and in
a sysctl.d file.

This module is private to hostprep.container_host: its interface may change
without notice.

The steps: decide whether the file applies (a sysctl.d file applies at boot
to the host's own network namespace only), check the file and the values,
read the kernel, plan the run-time and file changes, apply both behind one
check-mode gate. A file that cannot be written puts the run-time values back.
"""

from __future__ import annotations

import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    Changes,
    Differences,
    HostprepError,
    atomic_write,
    changes_of,
    read_text,
)
from ansible_collections.hostprep.container_host.plugins.module_utils._netns import (
    enter_netns,
    iproute,
    is_own_netns,
    require_pyroute2,
)
from ansible_collections.hostprep.container_host.plugins.module_utils._sysctl import (
    DEFAULT_MIN_SND_MSS,
    TCP_BASE_MSS,
    TCP_MIN_SND_MSS,
    TCP_MTU_PROBING,
    FilePlan,
    ProcSys,
    apply_runtime,
    check_sysctl_d_file,
    link_records,
    links_from_records,
    plan_managed_file,
    plan_runtime,
    restore_runtime,
    validate_pmtud,
)

MANAGED_KEYS = (TCP_MTU_PROBING, TCP_BASE_MSS)
OPTIONS = ((TCP_MTU_PROBING, 'tcp_mtu_probing'), (TCP_BASE_MSS, 'tcp_base_mss'))
# The header of a file the module creates; in an existing file it changes
# only the lines of its own keys.
HEADER = [
    'Written by hostprep.container_host.pmtud: its runs set net.ipv4.tcp_mtu_probing and net.ipv4.tcp_base_mss here.',
    'systemd-sysctl applies this file at boot to the root network namespace only.',
]


def persist_in_netns(persist: bool | None, netns: str | None, own_netns: bool) -> tuple[bool, str | None]:
    """Whether to write the sysctl.d file, and a note when the default was
    turned off. The file applies at boot to the host's own namespace, so with
    another namespace an explicit persist=true is refused and the default
    (None) means false."""
    if not netns or own_netns:
        return persist is not False, None
    why = ("a sysctl.d file applies at boot to the host's own network namespace, never to namespace %s"
           % netns)
    if persist:
        raise HostprepError('persist=true with netns=%s: %s, so writing it would change the host at its next boot; '
                            'use persist=false and set the values where the namespace is created' % (netns, why),
                            netns=netns)
    if persist is None:
        return False, ('persist defaults to false with netns=%s: %s; the values are set at run time only'
                       % (netns, why))
    return False, None


def _as_text(values: t.Mapping[str, t.Any]) -> str:
    return ''.join('%s = %s\n' % (key, values[key]) for key in sorted(values))


def _file_plan(path: str, wanted: dict[str, int], warnings: list[str]) -> FilePlan:
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise HostprepError('cannot read sysctl_file %s: %s; pass a file path under /etc/sysctl.d'
                            % (path, exc), sysctl_file=path) from exc
    plan = plan_managed_file(path, text, wanted, HEADER)
    for problem in plan.errors:
        warnings.append('sysctl_file %s: %s; systemd-sysctl ignores it, and the module leaves it as it is'
                        % (path, problem))
    return plan


def _result(params: dict[str, t.Any], current: dict[str, str], runtime: Differences,
            file_plan: FilePlan | None, note: str | None) -> dict[str, t.Any]:
    scope = 'network namespace %s' % params['netns'] if params['netns'] else 'root network namespace'
    after = dict(current, **runtime.after())
    result = dict(
        sysctls=dict((key, int(after[key])) for key in MANAGED_KEYS),
        runtime=dict((key, {'before': int(value), 'after': int(runtime.after()[key])})
                     for key, value in runtime.before().items()),
        runtime_changed=runtime.changed,
        persist_changed=bool(file_plan and file_plan.changed),
        sysctl_file=params['sysctl_file'],
        diff=[{
            'before_header': 'run-time sysctls (%s)' % scope,
            'after_header': 'run-time sysctls (%s)' % scope,
            'before': _as_text(runtime.before()),
            'after': _as_text(runtime.after()),
        }],
    )
    if file_plan is not None:
        result['diff'].append(file_plan.diff())
    if note:
        result['persist_note'] = note
    result['changed'] = result['runtime_changed'] or result['persist_changed']
    return result


def _write_file(module: t.Any, procsys: ProcSys, runtime: Differences, written: list[str],
                file_plan: FilePlan, record: Changes) -> str | None:
    """Write the file; when that fails, put the run-time values back and say so."""
    path = file_plan.path
    try:
        backup_file = atomic_write(module, path, file_plan.after, mode=0o644, backup=module.params['backup'])
    except OSError as exc:
        restored = restore_runtime(procsys, runtime, written, record)
        raise HostprepError('cannot write sysctl_file %s: %s%s. The run-time values are restored (%s); fix the '
                            'path and run again' % (path, exc.strerror or exc,
                                                    ' (%s)' % exc.filename if exc.filename else '',
                                                    ', '.join(restored) or 'none had changed'),
                            sysctl_file=path) from exc
    record.made('wrote %s' % path)
    return backup_file


def manage(module: t.Any) -> dict[str, t.Any]:
    """pmtud from options to result."""
    params = module.params
    record = changes_of(module)
    persist, note = persist_in_netns(params['persist'], params['netns'], is_own_netns(params['netns']))
    needs_links = params['tcp_base_mss'] is not None and params['mtu'] is None
    if params['netns'] or needs_links:
        require_pyroute2(module)
    path = params['sysctl_file']
    if persist:
        check_sysctl_d_file(path)
        if not path.endswith('.conf'):
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

    wanted = dict((key, params[option]) for key, option in OPTIONS if params[option] is not None)
    runtime = plan_runtime(current, wanted)
    file_plan = _file_plan(path, wanted, warnings) if persist else None
    for warning in warnings + ([note] if note else []):
        module.warn(warning)
    result = _result(params, current, runtime, file_plan, note)

    if not module.check_mode:
        written = apply_runtime(procsys, runtime, record)
        if file_plan is not None and file_plan.changed:
            backup_file = _write_file(module, procsys, runtime, written, file_plan, record)
            if backup_file:
                result['backup_file'] = backup_file
    return result
