# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Container networks and their MTU (private to hostprep.container_host).

What MTU each engine network gives its containers, what the path it leaves
through carries, and the daemon.json keys that give new networks a fitting
MTU. The rules and their sources are in docs/network/README.md.

* The default bridge takes daemon.json ``mtu`` (dockerd reads it at start).
* Every other network takes ``com.docker.network.driver.mtu`` when it is
  created, or from daemon.json ``default-network-opts`` (Engine 24 and later,
  moby/moby#43197); otherwise 1500 (moby/moby#34981, #28314). An existing
  network's MTU changes only by recreating it.
* An overlay (VXLAN) network needs its MTU plus 50 bytes on the underlay over
  IPv4, 70 over IPv6 (include/net/vxlan.h VXLAN_HEADROOM, VXLAN6_HEADROOM);
  an encrypted one (IPsec ESP) 26 more, rounded down to a multiple of 4
  (libnetwork drivers/overlay: vxlanEncap, pktExpansion).

Everything that decides is pure; the engine and the routes are passed in.
"""

from __future__ import annotations

import contextlib
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils import _docker_client
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError
from ansible_collections.hostprep.container_host.plugins.module_utils._stack import ENCAP_OVERHEAD

MTU_OPTION = 'com.docker.network.driver.mtu'
DEFAULT_BRIDGE_OPTION = 'com.docker.network.bridge.default_bridge'
BRIDGE_NAME_OPTION = 'com.docker.network.bridge.name'
ENCRYPTED_OPTION = 'encrypted'
DRIVER_DEFAULT_MTU = 1500
#: ESP in transport mode as libnetwork sets it up: SPI 4 + sequence 4 + IV 8 + pad length 1 + next header 1 + ICV 8
ESP_OVERHEAD = 26
DEFAULT_NETWORK_OPTS_SINCE = (24, 0, 0)
#: drivers whose containers share a link of the host: nothing of their own to judge
NOT_JUDGED = ('host', 'null', 'none')


def overlay_mtu(underlay_mtu: int, ipv6: bool = False, encrypted: bool = False) -> int:
    """The biggest MTU an overlay network can give its containers over an underlay path MTU."""
    mtu = underlay_mtu - ENCAP_OVERHEAD[('vxlan', 6 if ipv6 else 4)]
    if encrypted:
        mtu -= ESP_OVERHEAD
        mtu -= mtu % 4
    return mtu


def wire_size(driver: str, mtu: int, ipv6: bool = False, encrypted: bool = False) -> int:
    """The bytes a full-size container packet takes on the host's uplink."""
    if driver != 'overlay':
        return mtu
    extra = ENCAP_OVERHEAD[('vxlan', 6 if ipv6 else 4)]
    if encrypted:
        # the smallest underlay whose overlay_mtu() is at least mtu
        under = mtu + extra + ESP_OVERHEAD
        while overlay_mtu(under, ipv6, encrypted) < mtu:
            under += 1
        return under
    return mtu + extra


def network_mtu(attrs: dict[str, t.Any], link_mtu: t.Callable[[str], int | None]) -> tuple[int, str]:
    """A network's MTU as its containers see it, and where it comes from
    (attrs: the engine's network inspect answer; link_mtu(name): a host
    link's MTU, None when there is none)."""
    options = attrs.get('Options') or {}
    driver = attrs.get('Driver')
    if driver == 'overlay':
        # libnetwork's maxMTU(): an overlay's option is its underlay MTU, its containers get that minus the
        # encapsulation (measured: option 1400 gives eth0 1350 in the container)
        under = int(options.get(MTU_OPTION) or DRIVER_DEFAULT_MTU)
        source = 'option %s %d minus the encapsulation' % (MTU_OPTION, under) if options.get(MTU_OPTION) \
            else 'overlay default over 1500'
        return overlay_mtu(under, encrypted=ENCRYPTED_OPTION in options), source
    if options.get(MTU_OPTION):
        return int(options[MTU_OPTION]), 'option %s' % MTU_OPTION
    if driver in ('macvlan', 'ipvlan') and options.get('parent'):
        mtu = link_mtu(options['parent'])
        if mtu:
            return mtu, 'parent link %s' % options['parent']
    return DRIVER_DEFAULT_MTU, 'driver default'


def bridge_ifname(attrs: dict[str, t.Any]) -> str | None:
    """The host's bridge device of a bridge network (docker0 for the default one, br-ID12 otherwise)."""
    if attrs.get('Driver') != 'bridge':
        return None
    options = attrs.get('Options') or {}
    return options.get(BRIDGE_NAME_OPTION) or 'br-%s' % str(attrs.get('Id', ''))[:12]


def judge(attrs: dict[str, t.Any], path_mtu: int | None, path_via: str | None,
          link_mtu: t.Callable[[str], int | None]) -> dict[str, t.Any]:
    """One network's report: its MTU, what it needs on the wire, the path, and whether it fits."""
    options = attrs.get('Options') or {}
    driver = attrs.get('Driver') or ''
    mtu, source = network_mtu(attrs, link_mtu)
    encrypted = ENCRYPTED_OPTION in options
    containers = len(attrs.get('Containers') or {})
    need = wire_size(driver, mtu, encrypted=encrypted)
    entry = {'name': attrs.get('Name'), 'id': attrs.get('Id'), 'driver': driver, 'scope': attrs.get('Scope'),
             'mtu': mtu, 'mtu_source': source, 'wire_mtu': need, 'encrypted': encrypted,
             'containers': containers, 'bridge': bridge_ifname(attrs),
             'default_bridge': options.get(DEFAULT_BRIDGE_OPTION) == 'true',
             'path_mtu': path_mtu, 'path_via': path_via, 'status': 'not_judged', 'fits': None, 'problem': None}
    if driver in NOT_JUDGED or path_mtu is None:
        return entry
    fit = path_mtu if driver != 'overlay' else overlay_mtu(path_mtu, encrypted=encrypted)
    entry['fitting_mtu'] = fit
    if need <= path_mtu:
        entry.update(status='fits' if need == path_mtu else 'below_path', fits=True)
        return entry
    entry.update(status='above_path', fits=False, problem=_problem(entry, fit))
    return entry


def _problem(entry: dict[str, t.Any], fit: int) -> str:
    what = 'network %s (%s) gives its containers MTU %d' % (entry['name'], entry['driver'], entry['mtu'])
    if entry['driver'] == 'overlay':
        what += ', %d bytes on the underlay' % entry['wire_mtu']
    what += ', but the path through %s carries %d: full-size packets from its containers are dropped (TLS and NFS ' \
            'hang while small requests work)' % (entry['path_via'] or 'the uplink', entry['path_mtu'])
    if entry['default_bridge']:
        return what + '; set mtu %d in daemon.json (storage_network_container_mtu) and restart the engine' % fit
    # an overlay's option is its underlay MTU: the path itself
    option = entry['path_mtu'] if entry['driver'] == 'overlay' else fit
    fix = 'the MTU of an existing network changes only by recreating it with -o %s=%d' % (MTU_OPTION, option)
    if entry['containers']:
        fix += ' after its %d container(s) are detached; this collection never recreates a network' % entry['containers']
    return '%s; %s' % (what, fix)


def daemon_keys(version: tuple[int, int, int] | None, mtu: int) -> dict[str, t.Any]:
    """The daemon.json keys that give the default bridge, and new networks where the engine can, MTU mtu."""
    if not 68 <= mtu <= 65535:
        raise HostprepError('container network MTU %d is out of range: give 68 to 65535 (usually the path MTU of '
                            'the uplink, 1500 or 9000)' % mtu, mtu=mtu)
    keys: dict[str, t.Any] = {'mtu': mtu}
    if version is not None and version >= DEFAULT_NETWORK_OPTS_SINCE:
        keys['default-network-opts'] = {'bridge': {MTU_OPTION: str(mtu)}}
    return keys


def survey(networks: t.Sequence[dict[str, t.Any]], path_mtu: int | None, path_via: str | None,
           link_mtu: t.Callable[[str], int | None]) -> dict[str, t.Any]:
    """Every network judged against one path; the flagged ones named."""
    judged = [judge(attrs, path_mtu, path_via, link_mtu) for attrs in networks]
    above = [entry for entry in judged if entry['status'] == 'above_path']
    return {'networks': judged, 'above_path': [entry['name'] for entry in above],
            'problems': [entry['problem'] for entry in above], 'all_fit': not above}


# --------------------------------------------------------------------------
# the side-effect boundary: the engine's networks, the host's routes and links

def engine_networks(client: t.Any) -> list[dict[str, t.Any]]:
    """Every network the engine has, inspected (with its containers)."""
    return [client.api.inspect_network(net['Id']) for net in client.api.networks()]


def uplink(ipr: t.Any, target: str | None) -> tuple[str | None, int | None]:
    """(ifname, MTU) of the link the host's route to target (None: the default route) leaves through."""
    from pyroute2.netlink.exceptions import NetlinkError  # pylint: disable=import-outside-toplevel
    try:
        routes = ipr.route('get', dst=target) if target else ipr.get_default_routes()
    except NetlinkError:
        routes = []
    oif = next((r.get_attr('RTA_OIF') for r in routes if r.get_attr('RTA_OIF')), None)
    if oif is None:
        return None, None
    link = ipr.link('get', index=oif)[0]
    return link.get_attr('IFLA_IFNAME'), link.get_attr('IFLA_MTU')


def link_mtu_of(ipr: t.Any) -> t.Callable[[str], int | None]:
    def lookup(name: str) -> int | None:
        found = ipr.link_lookup(ifname=name)
        return ipr.link('get', index=found[0])[0].get_attr('IFLA_MTU') if found else None
    return lookup


def path_of(ipr: t.Any, targets: t.Sequence[str], measured: t.Sequence[dict[str, t.Any]]) -> dict[str, t.Any]:
    """The narrowest path the containers' traffic takes: the uplink to each target (or the default route) and,
    when the targets were probed, their path MTU."""
    hops = []
    for target in targets or [None]:
        ifname, mtu = uplink(ipr, target)
        if mtu is not None:
            hops.append((mtu, ifname, target))
    for result in measured:
        if result.get('reachable') and result.get('path_mtu'):
            hops.append((result['path_mtu'], 'the path to %s' % result['target'], result['target']))
    if not hops:
        return {'path_mtu': None, 'path_via': None, 'uplinks': []}
    mtu, via, dummy = min(hops, key=lambda hop: hop[0])
    return {'path_mtu': mtu, 'path_via': via,
            'uplinks': [{'ifname': h[1], 'mtu': h[0], 'target': h[2]} for h in hops]}


@contextlib.contextmanager
def docker_client(module: t.Any) -> t.Iterator[t.Any]:
    """A Docker SDK client for module.params['docker_host'] (_docker_client); what the engine refuses becomes a
    message naming the engine."""
    _docker_client.require_sdk(module)
    host = module.params['docker_host']
    with _docker_client.engine_client(host, 60) as client:
        try:
            yield client
        except _docker_client.docker.errors.NotFound as exc:
            raise HostprepError('the engine at %s has no %s' % (host, exc.explanation or exc), docker_host=host) from exc
        except _docker_client.ENGINE_ERRORS as exc:
            raise HostprepError('the engine at %s refused: %s' % (host, exc), docker_host=host) from exc


def network_report(params: dict[str, t.Any], client: t.Any, ipr: t.Any,
                   warn: t.Callable[[str], None]) -> dict[str, t.Any]:
    """docker_network_mtu_info's run: probe the targets (if any) from the host, then judge every network."""
    from ansible_collections.hostprep.container_host.plugins.module_utils._pmtu import (  # pylint: disable=import-outside-toplevel
        plan_survey, survey_here)
    measured: list[dict[str, t.Any]] = []
    if params.get('targets'):
        probe_params = dict(params, concurrency=32, allow_loopback=False)
        addresses, duplicates = plan_survey(probe_params)
        measured = survey_here(probe_params, addresses, duplicates, warn, 0.0)['targets']
    path = path_of(ipr, params.get('targets') or [], measured)
    result = survey(engine_networks(client), path['path_mtu'], path['path_via'], link_mtu_of(ipr))
    for problem in result['problems']:
        warn(problem)
    version = engine_version(client.version().get('Version', ''))
    mtu = params.get('mtu') or path['path_mtu']
    return dict(result, changed=False, path_mtu=path['path_mtu'], path_via=path['path_via'],
                uplinks=path['uplinks'], targets=measured, engine_version='.'.join(map(str, version)) if version else None,
                container_mtu=mtu, daemon_config=daemon_keys(version, mtu) if mtu else {})


def engine_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of the engine's version string (20.10.24+dfsg1, 26.1.5), None when unreadable."""
    parts = text.split('+')[0].split('-')[0].split('.')
    try:
        return tuple(int(p) for p in (parts + ['0', '0'])[:3])  # type: ignore[return-value]
    except ValueError:
        return None
