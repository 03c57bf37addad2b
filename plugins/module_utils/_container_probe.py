# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The path MTU as a container sees it (private to hostprep.container_host).

The module enters the network namespace of a container's process
(/proc/PID/ns/net) and probes the storage targets with the collection's own
path-MTU search (_pmtu), from there: the container's links, routes and MTU,
with no tool needed inside the image. It also reads the container's
net.ipv4.tcp_mtu_probing, which is per namespace: containers do not inherit
the host's value (moby/moby#36070).

Either a running container is named, or a short-lived one is started on a
network (from a local image that has ``sleep``) and removed afterwards,
whatever happens.
"""

from __future__ import annotations

import contextlib
import time
import typing as t
import uuid

from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError
from ansible_collections.hostprep.container_host.plugins.module_utils._netns import entered, iproute
from ansible_collections.hostprep.container_host.plugins.module_utils._pmtu import plan_survey, survey_here
from ansible_collections.hostprep.container_host.plugins.module_utils._sysctl import ProcSys

PROBE_LABEL = 'hostprep.container_host.probe'
PROBING_KEY = 'net.ipv4.tcp_mtu_probing'
START_WAIT = 10.0


def running_pid(container: t.Any) -> int:
    """The PID of a running container's first process, or a clear refusal."""
    container.reload()
    state = container.attrs.get('State') or {}
    pid = int(state.get('Pid') or 0)
    if not state.get('Running') or pid <= 0:
        raise HostprepError('container %s is not running (status %s): its network namespace exists only while it '
                            'runs; start it, or give network to probe from a short-lived container'
                            % (container.name, state.get('Status')), container=container.name)
    return pid


@contextlib.contextmanager
def short_lived(client: t.Any, network: str, image: str) -> t.Iterator[t.Any]:
    """A container on network that sleeps while it is probed; removed on the way out."""
    name = 'hostprep-probe-%s' % uuid.uuid4().hex[:10]
    container = client.containers.create(image, ['sleep', '300'], name=name, network=network,
                                         labels={PROBE_LABEL: 'true'})
    try:
        container.start()
        deadline = time.monotonic() + START_WAIT
        while True:
            container.reload()
            if container.attrs['State'].get('Running') or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        yield container
    finally:
        container.remove(force=True)


def links_here() -> list[dict[str, t.Any]]:
    """The links of the namespace this thread is in (the container's), without lo."""
    with iproute() as ipr:
        return [{'ifname': m.get_attr('IFLA_IFNAME'), 'mtu': m.get_attr('IFLA_MTU')}
                for m in ipr.get_links() if m.get_attr('IFLA_IFNAME') != 'lo']


def judge_probing(value: str, expected: int | None) -> dict[str, t.Any]:
    """The container's tcp_mtu_probing against the value asked for (None: only reported). Pure."""
    current = int(value)
    ok = expected is None or current == expected
    problem = None
    if not ok:
        problem = ('net.ipv4.tcp_mtu_probing is %d in the container, %d asked for: containers do not inherit the '
                   'host\'s value; start them with --sysctl net.ipv4.tcp_mtu_probing=%d (sysctls: in compose)'
                   % (current, expected, expected))
    return {'value': current, 'expected': expected, 'ok': ok, 'problem': problem}


def probe_from(container: t.Any, params: dict[str, t.Any], warn: t.Callable[[str], None]) -> dict[str, t.Any]:
    """Probe the targets from the container's namespace and read its sysctl and links."""
    start = time.monotonic()
    pid = running_pid(container)
    with entered('/proc/%d/ns/net' % pid):
        interfaces = links_here()
        # by default the path must carry what the container sends: its biggest link MTU
        params = dict(params, expected_mtu=params.get('expected_mtu') or max((i['mtu'] for i in interfaces), default=1500))
        addresses, duplicates = plan_survey(params)
        result = survey_here(params, addresses, duplicates, warn, start)
        probing = judge_probing(ProcSys().read(PROBING_KEY), params.get('tcp_mtu_probing'))
        result['interfaces'] = interfaces
    networks = (container.attrs.get('NetworkSettings') or {}).get('Networks') or {}
    result.update(container=container.name, container_id=container.id, pid=pid, networks=sorted(networks),
                  tcp_mtu_probing=probing, all_ok=result['all_ok'] and probing['ok'])
    result['seconds'] = round(time.monotonic() - start, 3)
    return result


def container_survey(client: t.Any, params: dict[str, t.Any], warn: t.Callable[[str], None]) -> dict[str, t.Any]:
    """container_path_mtu_info's run: a named container, or a short-lived one on a network."""
    plan_survey(dict(params, expected_mtu=params.get('expected_mtu') or 1500))  # bad options fail before any container starts
    if params.get('container'):
        container = client.containers.get(params['container'])
        return dict(probe_from(container, params, warn), short_lived=False)
    if not params.get('image'):
        raise HostprepError('network %s is probed from a short-lived container: give image (a local image that has '
                            'sleep, for example one imported from busybox-static)' % params['network'],
                            network=params['network'])
    client.networks.get(params['network'])  # a missing network fails before a container is created
    with short_lived(client, params['network'], params['image']) as container:
        return dict(probe_from(container, params, warn), short_lived=True)
