# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Link selection, MTU validation, runtime change and rollback for link_mtu.

This module is private to hostprep.container_host: its interface may change
without notice.

Everything that decides is a pure function over netlink messages as pyroute2
returns them (or as recorded into JSON by the unit-test fixtures); the only
side effects go through ``Netlink``, a thin boundary around an IPRoute handle.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils import _stack
from ansible_collections.hostprep.container_host.plugins.module_utils._common import Changes, Differences, HostprepError

# RFC 791: every IPv4 host must handle 68-octet datagrams; the kernel removes
# a link's IPv4 addresses below it. RFC 8200: IPv6 needs 1280; the kernel
# disables IPv6 on a link set below it.
MIN_IPV4_MTU = 68
MIN_IPV6_MTU = 1280

AF_INET6 = 10
RTN_UNICAST = 1
RTN_LOCAL = 2
RT_SCOPE_HOST = 254

SELECTOR_KEYS = ('name', 'mac', 'target')

_MAC_RE = re.compile(r'^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$')


# --------------------------------------------------------------------------
# netlink messages -> plain data

def nl_attr(msg: t.Any, name: str, default: t.Any = None) -> t.Any:
    """One attribute of a netlink message, for pyroute2 messages and the
    JSON form the fixtures record (``{'attrs': [[name, value], ...]}``)."""
    get_attr = getattr(msg, 'get_attr', None)
    if get_attr is not None:
        value = get_attr(name)
        return default if value is None else value
    for item in msg.get('attrs', ()):
        if item[0] == name:
            return item[1]
    return default


@dataclasses.dataclass
class Link:
    """What link_mtu needs to know about one network interface."""

    ifindex: int
    ifname: str
    mac: str | None
    mtu: int
    min_mtu: int | None
    max_mtu: int | None
    ipv6: list[str] = dataclasses.field(default_factory=list)
    kind: str | None = None
    parent: int | None = None
    overhead: int = 0
    master: int | None = None


def nl_nested(msg: t.Any, *names: str) -> t.Any:
    """An attribute nested in attributes (IFLA_LINKINFO, IFLA_INFO_DATA, ...), or None."""
    for name in names:
        if msg is None:
            return None
        msg = nl_attr(msg, name)
    return msg


def _parent(msg: t.Any, kind: str | None) -> tuple[int | None, int]:
    """The ifindex of the link under a stacked link in this namespace, and the
    bytes its encapsulation adds. A parent in another namespace
    (IFLA_LINK_NETNSID) is out of reach, like a veth's peer."""
    if kind in _stack.PARENT_KINDS and nl_attr(msg, 'IFLA_LINK_NETNSID') is None:
        parent = nl_attr(msg, 'IFLA_LINK')
        return (int(parent) if parent else None), 0
    if kind in ('vxlan', 'geneve'):
        data = nl_nested(msg, 'IFLA_LINKINFO', 'IFLA_INFO_DATA')
        six = any(nl_attr(data, 'IFLA_%s_%s' % (kind.upper(), key)) for key in ('GROUP6', 'LOCAL6', 'REMOTE6')) if data else False
        parent = nl_attr(data, 'IFLA_VXLAN_LINK') if data is not None and kind == 'vxlan' else None
        return (int(parent) if parent else None), _stack.ENCAP_OVERHEAD[(kind, 6 if six else 4)]
    return None, 0


def link_from_msg(msg: t.Any) -> Link:
    """A Link from an RTM_NEWLINK message. A min/max of 0 (loopback, some
    virtual devices) or a missing attribute (kernels before 4.19) means the
    kernel reports no bound."""
    min_mtu = nl_attr(msg, 'IFLA_MIN_MTU')
    max_mtu = nl_attr(msg, 'IFLA_MAX_MTU')
    mac = nl_attr(msg, 'IFLA_ADDRESS')
    kind = nl_nested(msg, 'IFLA_LINKINFO', 'IFLA_INFO_KIND')
    parent, overhead = _parent(msg, kind)
    master = nl_attr(msg, 'IFLA_MASTER')
    return Link(
        ifindex=int(msg['index']),
        ifname=nl_attr(msg, 'IFLA_IFNAME'),
        mac=mac.lower() if mac else None,
        mtu=int(nl_attr(msg, 'IFLA_MTU', 0)),
        min_mtu=int(min_mtu) if min_mtu else None,
        max_mtu=int(max_mtu) if max_mtu else None,
        kind=kind, parent=parent, overhead=overhead,
        master=int(master) if master else None,
    )


def links_from_msgs(link_msgs: t.Iterable[t.Any], addr_msgs: t.Iterable[t.Any] = ()) -> list[Link]:
    """Links from an RTM_GETLINK dump, with the IPv6 addresses each carries
    (from an RTM_GETADDR dump)."""
    links = [link_from_msg(m) for m in link_msgs]
    by_index = {link.ifindex: link for link in links}
    for msg in addr_msgs:
        if msg['family'] != AF_INET6 or msg['index'] not in by_index:
            continue
        address = nl_attr(msg, 'IFA_ADDRESS')
        if address:
            by_index[msg['index']].ipv6.append(address)
    return links


def route_oif(msgs: t.Sequence[t.Any], target: str) -> int:
    """The outgoing interface index of an RTM_GETROUTE answer."""
    if not msgs:
        raise HostprepError('no route to target %s: the kernel returned no route; add a route '
                            'to it or select the link by name or mac' % target, target=target)
    msg = msgs[0]
    oif = nl_attr(msg, 'RTA_OIF')
    if msg.get('type') == RTN_LOCAL:
        raise HostprepError('target %s is a local address of this host (the kernel routes it to lo); give the '
                            'address of a remote storage target' % target, target=target)
    if msg.get('type') != RTN_UNICAST or oif is None:
        raise HostprepError('no route to target %s: the kernel answers with a route of type %s and no '
                            'outgoing interface; add a unicast route to it or select the link by name or mac'
                            % (target, msg.get('type')), target=target)
    return int(oif)


# --------------------------------------------------------------------------
# option parsing (pure)

def normalize_mac(value: str) -> str | None:
    """aa:bb:cc:dd:ee:ff in lower case, or None when value is no MAC address."""
    text = value.strip().lower()
    if not _MAC_RE.match(text):
        return None
    return text.replace('-', ':')


@dataclasses.dataclass
class Request:
    """One item of the links option: a selector and the MTU it asks for."""

    kind: str
    value: str
    mtu: int
    #: why a link no item names is touched (a stacked link's parent, member, port or upper)
    stacked: str | None = None

    @property
    def selector(self) -> str:
        return '%s=%s' % (self.kind, self.value)


def parse_requests(items: t.Sequence[dict], default_mtu: int | None) -> list[Request]:
    """Check the links option and turn it into requests; every problem of
    every item is reported at once."""
    errors = []
    requests = []
    if not items:
        raise HostprepError('links is empty: give at least one item with name, mac or target')
    for pos, item in enumerate(items):
        where = 'links[%d]' % pos
        given = [k for k in SELECTOR_KEYS if item.get(k) not in (None, '')]
        if len(given) != 1:
            if given:
                found = ', '.join('%s=%s' % (k, item[k]) for k in given)
                errors.append('%s selects a link in %d ways (%s): give exactly one of name, mac or target'
                              % (where, len(given), found))
            else:
                errors.append('%s selects no link: give exactly one of name, mac or target' % where)
            continue
        kind = given[0]
        value = str(item[kind]).strip()
        mtu = item.get('mtu')
        if mtu is None:
            mtu = default_mtu
        if mtu is None:
            errors.append('%s (%s=%s) has no MTU: set mtu on the item or the top-level mtu option'
                          % (where, kind, value))
            continue
        if kind == 'mac':
            mac = normalize_mac(value)
            if mac is None:
                errors.append('%s: mac %r is not a MAC address; write it as aa:bb:cc:dd:ee:ff' % (where, value))
                continue
            value = mac
        elif kind == 'target':
            try:
                value = str(ipaddress.ip_address(value))
            except ValueError:
                errors.append('%s: target %r is not an IP address; give the storage target\'s address '
                              '(host names are not resolved)' % (where, value))
                continue
        requests.append(Request(kind=kind, value=value, mtu=int(mtu)))
    if errors:
        raise HostprepError('; '.join(errors))
    return requests


# --------------------------------------------------------------------------
# selection and validation (pure)

def _names(links: t.Iterable[Link]) -> str:
    return ', '.join(sorted(link.ifname for link in links)) or 'none'


def select_link(request: Request, links: t.Sequence[Link],
                route_lookup: t.Callable[[str], int]) -> Link:
    """The link a request names. route_lookup(target) returns the outgoing
    interface index of the kernel's route to target (RTM_GETROUTE)."""
    if request.kind == 'name':
        for link in links:
            if link.ifname == request.value:
                return link
        raise HostprepError('link %s does not exist; existing links: %s' % (request.value, _names(links)),
                            selector=request.selector)
    if request.kind == 'mac':
        found = [link for link in links if link.mac == request.value]
        if not found:
            raise HostprepError('no link has MAC address %s; check the address (links and their MACs: %s)'
                                % (request.value, ', '.join('%s %s' % (l.ifname, l.mac) for l in links)),
                                selector=request.selector)
        if len(found) > 1:
            raise HostprepError('MAC address %s matches %d links (%s), for example bond or VLAN members; '
                                'select the link by name instead' % (request.value, len(found), _names(found)),
                                selector=request.selector)
        return found[0]
    oif = route_lookup(request.value)
    for link in links:
        if link.ifindex == oif:
            if link.ifname == 'lo':
                raise HostprepError('target %s is a local address (the route leads to lo); give the '
                                    'address of a remote storage target' % request.value,
                                    selector=request.selector)
            return link
    raise HostprepError('the route to target %s leaves through interface index %d, which is not in '
                        'the link list' % (request.value, oif), selector=request.selector)


def validate_mtu(link: Link, mtu: int, selector: str) -> list[str]:
    """Raise when the kernel or IPv4 would refuse mtu on link; return
    warnings for what the change would cost."""
    where = 'link %s (%s)' % (link.ifname, selector)
    low = max(MIN_IPV4_MTU, link.min_mtu or 0)
    if mtu < low:
        why = 'its min_mtu' if link.min_mtu and link.min_mtu >= MIN_IPV4_MTU else 'the IPv4 minimum'
        raise HostprepError('MTU %d is below %s %d for %s; choose an MTU from %d to %s'
                            % (mtu, why, low, where, low, link.max_mtu or 'the driver maximum'),
                            selector=selector, ifname=link.ifname)
    if link.max_mtu and mtu > link.max_mtu:
        raise HostprepError('MTU %d is above max_mtu %d of %s (the driver allows %d to %d); choose an '
                            'MTU the driver supports' % (mtu, link.max_mtu, where, low, link.max_mtu),
                            selector=selector, ifname=link.ifname)
    warnings = []
    if link.ipv6 and mtu < MIN_IPV6_MTU:
        warnings.append('MTU %d is below the IPv6 minimum %d: the kernel disables IPv6 on %s and drops '
                        'its IPv6 addresses %s' % (mtu, MIN_IPV6_MTU, where, ', '.join(link.ipv6)))
    return warnings


@dataclasses.dataclass
class Planned:
    """A request resolved to its link, with the change it makes."""

    request: Request
    link: Link

    @property
    def changed(self) -> bool:
        return self.link.mtu != self.request.mtu


def plan(requests: t.Sequence[Request], links: t.Sequence[Link],
         route_lookup: t.Callable[[str], int]) -> tuple[list[Planned], list[str]]:
    """Resolve and validate every request before anything changes. Returns
    the plan and warnings; raises on the first bad request."""
    planned = []
    warnings = []
    wanted: dict[int, Planned] = {}
    for request in requests:
        link = select_link(request, links, route_lookup)
        warnings.extend(validate_mtu(link, request.mtu, request.selector))
        other = wanted.get(link.ifindex)
        if other is not None and other.request.mtu != request.mtu:
            raise HostprepError('%s and %s both select link %s but ask for MTU %d and %d; give one MTU per link'
                                % (other.request.selector, request.selector, link.ifname,
                                   other.request.mtu, request.mtu), ifname=link.ifname)
        item = Planned(request=request, link=link)
        wanted.setdefault(link.ifindex, item)
        planned.append(item)
    return planned, warnings


def stack(planned: t.Sequence[Planned], links: t.Sequence[Link]) -> tuple[list[Planned], list[Planned]]:
    """The requested links followed by every link stacked under or over them
    that must change with them (validated like a requested one), and the
    changes in the order they are applied (_stack.expand)."""
    wanted: dict[int, int] = {}
    for item in planned:
        wanted.setdefault(item.link.ifindex, item.request.mtu)
    entries = _stack.expand(wanted, links)
    extra = []
    for link, mtu, why in entries:
        if why is not None:
            request = Request(kind='name', value=link.ifname, mtu=mtu, stacked=why)
            validate_mtu(link, mtu, '%s, %s' % (request.selector, why))
            extra.append(Planned(request=request, link=link))
    order = {link.ifindex: pos for pos, (link, _mtu, _why) in enumerate(entries)}
    everything = list(planned) + extra
    return everything, sorted(unique_changes(everything), key=lambda item: order[item.link.ifindex])


def unique_changes(planned: t.Sequence[Planned]) -> list[Planned]:
    """One entry per link that changes (several selectors may hit one link)."""
    seen = set()
    result = []
    for item in planned:
        if item.changed and item.link.ifindex not in seen:
            seen.add(item.link.ifindex)
            result.append(item)
    return result


# --------------------------------------------------------------------------
# verification (pure decisions; the probe is injected)

# Probe sizes are whole IP packets. A default ping is 84 bytes over IPv4
# (20 IP + 8 ICMP + 56 payload); IPv6 allows nothing below 1280.
SMALL_PROBE_SIZE = {4: 84, 6: MIN_IPV6_MTU}


def small_probe_size(target: str) -> int:
    return SMALL_PROBE_SIZE[ipaddress.ip_address(target).version]


def _send(probe: t.Callable[..., t.Any], target: str, size: int, timeout: float) -> t.Any:
    """One probe; a probe that cannot be sent at all becomes an 'error' outcome."""
    try:
        return probe(target, size, timeout)
    except PermissionError as exc:
        raise HostprepError('cannot open a raw ICMP socket to probe %s: %s; link_mtu needs root (or '
                            'CAP_NET_RAW) for verify_targets: use become: true' % (target, exc),
                            target=target) from exc
    except (OSError, ValueError) as exc:
        return _Failed(outcome='error', size=size, detail=str(exc))


@dataclasses.dataclass
class _Failed:
    outcome: str
    size: int
    detail: str
    mtu: int | None = None
    hop: str | None = None


@dataclasses.dataclass
class Verdict:
    target: str
    reachable: bool
    full_size_ok: bool | None
    detail: str
    ifname: str | None = None
    size: int | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _describe(result: t.Any) -> str:
    parts = [result.outcome]
    if getattr(result, 'detail', None):
        parts.append('(%s)' % result.detail)
    if getattr(result, 'hop', None):
        parts.append('from %s' % result.hop)
    if getattr(result, 'mtu', None):
        parts.append('mtu %s' % result.mtu)
    return ' '.join(parts)


def check_reachable(target: str, probe: t.Callable[..., t.Any], timeout: float) -> Verdict:
    """Before the change: a small echo must be answered."""
    result = _send(probe, target, small_probe_size(target), timeout)
    ok = result.outcome == 'reply'
    return Verdict(target=target, reachable=ok, full_size_ok=None,
                   detail='small echo answered' if ok else 'small echo: %s' % _describe(result))


def check_full_size(target: str, size: int, ifname: str | None, probe: t.Callable[..., t.Any],
                    timeout: float) -> Verdict:
    """After the change: a small echo must be answered, and a Don't-Fragment
    echo of the link's new MTU must come back as a reply or as a router's
    "fragmentation needed" / "packet too big". A silent drop means the link
    does not carry frames that big (a switch or peer without jumbo frames)."""
    small = _send(probe, target, small_probe_size(target), timeout)
    if small.outcome != 'reply':
        return Verdict(target=target, reachable=False, full_size_ok=False, ifname=ifname, size=size,
                       detail='small echo after the change: %s' % _describe(small))
    big = _send(probe, target, size, timeout)
    if big.outcome == 'reply':
        detail = '%d-byte DF echo answered' % size
    elif big.outcome == 'too_big':
        detail = '%d-byte DF echo: a router reports a smaller path MTU (%s), so %s carries it' % (
            size, _describe(big), ifname or 'the link')
    elif big.outcome == 'timeout':
        detail = ('%d-byte DF echo vanished without an answer: the link or its peer does not carry '
                  'frames that big' % size)
    else:
        detail = '%d-byte DF echo was not delivered: %s' % (size, _describe(big))
    return Verdict(target=target, reachable=True, full_size_ok=big.outcome in ('reply', 'too_big'),
                   ifname=ifname, size=size, detail=detail)


# --------------------------------------------------------------------------
# the side-effect boundary

class Netlink:
    """Everything link_mtu asks the kernel, through one IPRoute handle."""

    def __init__(self, ipr: t.Any) -> None:
        self.ipr = ipr

    def links(self) -> list[Link]:
        return links_from_msgs(self.ipr.get_links(), self.ipr.get_addr())

    def route_oif(self, target: str) -> int:
        from pyroute2.netlink.exceptions import NetlinkError
        try:
            msgs = self.ipr.route('get', dst=target)
        except NetlinkError as exc:
            raise HostprepError('no route to target %s (%s); add a route to it or select the link by name '
                                'or mac' % (target, exc.args[1] if len(exc.args) > 1 else exc),
                                target=target) from exc
        return route_oif(list(msgs), target)

    def set_mtu(self, ifindex: int, mtu: int) -> None:
        self.ipr.link('set', index=ifindex, mtu=mtu)

    def mtu(self, ifindex: int) -> int:
        return int(nl_attr(self.ipr.link('get', index=ifindex)[0], 'IFLA_MTU'))


def apply_changes(netlink: Netlink, changes: t.Sequence[Planned], record: Changes | None = None) -> list[Planned]:
    """Set every MTU; when one fails, put back those already set and raise.
    record (the run's Changes) hears of each change and each undo."""
    record = record if record is not None else Changes()
    done: list[Planned] = []
    for item in changes:
        try:
            netlink.set_mtu(item.link.ifindex, item.request.mtu)
        except Exception as exc:  # pylint: disable=broad-except
            restored = restore(netlink, done, record)
            raise HostprepError('setting MTU %d on %s failed: %s; restored %s'
                                % (item.request.mtu, item.link.ifname, exc,
                                   ', '.join(restored) or 'nothing (no link had changed yet)'),
                                ifname=item.link.ifname, rolled_back=bool(done)) from exc
        record.made('set the MTU of %s from %d to %d' % (item.link.ifname, item.link.mtu, item.request.mtu))
        done.append(item)
    return done


def restore(netlink: Netlink, done: t.Sequence[Planned], record: Changes | None = None,
            complete: bool = True) -> list[str]:
    """Put the old MTU back on each changed link, newest first. complete=False
    says something else of the run stays changed (a file not put back)."""
    restored = []
    for pos, item in enumerate(reversed(done), start=1):
        netlink.set_mtu(item.link.ifindex, item.link.mtu)
        restored.append('%s to %d' % (item.link.ifname, item.link.mtu))
        if record is not None:
            record.restored('the MTU of %s back to %d' % (item.link.ifname, item.link.mtu),
                            complete=complete and pos == len(done))
    return restored


# --------------------------------------------------------------------------
# the whole run: validate everything, change, verify, roll back or persist

def _link_result(item: Planned, mtu_after: int, changed: bool, persist: dict | None) -> dict[str, t.Any]:
    link = item.link
    return {
        'selector': item.request.selector,
        'ifname': link.ifname,
        'ifindex': link.ifindex,
        'mac': link.mac,
        'mtu_before': link.mtu,
        'mtu_after': mtu_after,
        'min_mtu': link.min_mtu,
        'max_mtu': link.max_mtu,
        'changed': changed,
        'stacked': item.request.stacked,
        'persist': persist or {'method': 'none', 'path': None, 'changed': False},
    }


# A probe that waits longer than this for one answer is not waiting for a
# storage peer: the run would hang while the link stays changed.
MAX_VERIFY_TIMEOUT = 60.0


def check_timeout(value: t.Any) -> float:
    """verify_timeout in seconds: above 0 and at most MAX_VERIFY_TIMEOUT (None: 2)."""
    timeout = 2.0 if value is None else float(value)
    if not 0 < timeout <= MAX_VERIFY_TIMEOUT:
        raise HostprepError('verify_timeout %s is outside (0, %d] seconds: each probe waits that long for an answer '
                            'while the new MTU is in place; give a few seconds' % (value, MAX_VERIFY_TIMEOUT),
                            verify_timeout=value)
    return timeout


def _unfit_target(address: t.Any) -> str | None:
    """Why an address cannot prove anything about a link, or None."""
    if address.is_unspecified:
        return 'is the unspecified address (a templated value that came out empty?), which reaches this host itself'
    if address.is_loopback:
        return 'is a loopback address, which never leaves this host'
    if address.is_multicast:
        return 'is a multicast address, which no single host answers for'
    if address.version == 4 and address == ipaddress.IPv4Address('255.255.255.255'):
        return 'is the limited broadcast address'
    return None


def parse_verify_targets(targets: t.Sequence[str]) -> list[str]:
    """The verify targets as addresses, each once, in order. An address that
    would answer from this host itself (unspecified, loopback) or from no
    single host (multicast, broadcast) is refused: its answer proves nothing."""
    result: list[str] = []
    for pos, target in enumerate(targets):
        try:
            address = ipaddress.ip_address(str(target).strip())
        except ValueError:
            raise HostprepError('verify_targets[%d] %r is not an IP address; give the address of a host that '
                                'must still answer after the change' % (pos, target), target=target) from None
        why = _unfit_target(address)
        if why:
            raise HostprepError('verify_targets[%d] %s %s; give the address of a remote host that must still answer '
                                'after the change' % (pos, address, why), target=str(address))
        if str(address) not in result:
            result.append(str(address))
    return result


def persist_in_netns(persist: str, netns: str | None, own_netns: bool) -> tuple[str, str | None]:
    """The persist method that applies in netns, and a note when persist=auto
    resolves to none.

    The host's network configuration (NetworkManager, systemd-networkd's
    /run/systemd/netif/links/IFINDEX, /etc/network/interfaces) describes the
    links of the host's own namespace: an interface index or a name of another
    namespace found there belongs to a host link. So in a namespace other than
    the host's own (own_netns), auto persists nothing and an explicit method
    is refused."""
    if not netns or own_netns or persist == 'none':
        return persist, None
    why = "the host's network configuration does not manage links of namespace %s" % netns
    if persist == 'auto':
        return 'none', ('persist=auto with netns=%s resolves to persist=none: %s, so the MTU is set at run time '
                        'only; persist it where the namespace is created' % (netns, why))
    raise HostprepError('persist=%s with netns=%s: %s; use persist=none' % (persist, netns, why),
                        netns=netns, persist=persist)


def plan_persistence(method: str, planned: t.Sequence[Planned], persister: t.Any) -> dict[int, t.Any]:
    """Persistence plans by ifindex, read-only, before anything changes: a
    link no stack manages fails the run with the kernel untouched."""
    plans: dict[int, t.Any] = {}
    if method == 'none':
        return plans
    persister.wanted = {item.link.ifindex: item.request.mtu for item in planned}
    for item in planned:
        if item.link.ifindex not in plans:
            link_method = persister.detect(item.link.ifname, item.link.ifindex) if method == 'auto' else method
            plans[item.link.ifindex] = persister.plan(link_method, item.link.ifname, item.link.ifindex,
                                                      item.request.mtu)
    return plans


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, HostprepError):
        return exc.msg
    if isinstance(exc, OSError) and exc.strerror:
        return '%s%s' % (exc.strerror, ' (%s)' % exc.filename if exc.filename else '')
    return '%s: %s' % (type(exc).__name__, exc)


def persist_or_restore(plans: dict[int, t.Any], netlink: Netlink, done: t.Sequence[Planned],
                       record: Changes, names: dict[int, str], failure: dict[str, t.Any]) -> None:
    """Write every persistence plan. When one fails, put back the plans
    already written and the run-time MTUs, and raise a message that says
    what was restored (names: ifname by ifindex; failure: the result keys
    of the failed run)."""
    written: list[t.Any] = []
    for ifindex, pplan in plans.items():
        if pplan.apply is None:
            continue
        try:
            pplan.apply()
        except Exception as exc:  # pylint: disable=broad-except
            problems = []
            for old in reversed(written):
                try:
                    old.undo()
                    record.restored('put back %s' % old.path)
                except Exception as undo_exc:  # pylint: disable=broad-except
                    problems.append('could not put back %s: %s' % (old.path, _error_text(undo_exc)))
            restored = restore(netlink, done, record, complete=not problems)
            if written and not done and not problems:
                record.fully_restored = True
            raise HostprepError(
                'persisting the MTU of %s with %s failed (%s): %s. %s%s'
                % (names[ifindex], pplan.method, pplan.path, _error_text(exc),
                   'The run-time MTU is restored (%s)' % ', '.join(restored) if restored
                   else 'No run-time MTU had changed', '; ' + '; '.join(problems) if problems else ''),
                rolled_back=True, **failure) from exc
        record.made('wrote the MTU into %s' % pplan.path)
        written.append(pplan)


class _Run:
    """The state of one link_mtu run, so each step fits on a screen."""

    def __init__(self, params: dict[str, t.Any], planned: list[Planned], plans: dict[int, t.Any]) -> None:
        self.params = params
        self.planned = planned
        self.plans = plans
        self.wanted = {item.link.ifindex: item.request.mtu for item in planned}
        self.runtime = Differences()
        for item in planned:
            self.runtime.add(item.link.ifname, item.link.mtu, item.request.mtu)
        methods = sorted({p.method for p in plans.values()})
        self.persist_method = ','.join(methods) if methods else 'none'

    def links(self, mtus: dict[int, int] | None, persisted: bool) -> list[dict[str, t.Any]]:
        out = []
        for item in self.planned:
            after = item.link.mtu if mtus is None else mtus.get(item.link.ifindex, item.link.mtu)
            pplan = self.plans.get(item.link.ifindex)
            presult = pplan.result() if pplan is not None and persisted else None
            out.append(_link_result(item, after, after != item.link.mtu, presult))
        return out

    def diff(self, persisted: bool) -> list[dict[str, t.Any]]:
        diffs: list[dict[str, t.Any]] = [self.runtime.diff()]
        if persisted:
            diffs.extend(p.diff() for p in self.plans.values() if p.changed)
        return diffs

    def result(self, mtus: dict[int, int] | None, persisted: bool, **extra: t.Any) -> dict[str, t.Any]:
        return dict(links=self.links(mtus, persisted), persist_method=self.persist_method,
                    diff=self.diff(persisted), **extra)


def verify_before(targets: list[str], changes: list[Planned], netlink: Netlink, probe: t.Callable[..., t.Any] | None,
                  timeout: float) -> list[dict[str, t.Any]]:
    """Every verify target must be routed off this host (a local address
    answers through lo, whatever the link carries) and answer a small echo
    before anything changes."""
    if not targets:
        return []
    for target in targets:
        netlink.route_oif(target)
    if not changes:
        return [{'target': target, 'reachable': None, 'full_size_ok': None,
                 'detail': 'not probed: no MTU changes'} for target in targets]
    before = [check_reachable(target, probe, timeout) for target in targets]
    silent = [v for v in before if not v.reachable]
    if silent:
        raise HostprepError(
            'verify target %s does not answer before the change (%s), so nothing could prove the new MTU '
            'safe; nothing was changed. Fix its reachability or remove it from verify_targets'
            % (', '.join(v.target for v in silent), '; '.join(v.detail for v in silent)),
            verify=[v.as_dict() for v in before], rolled_back=False)
    return [v.as_dict() for v in before]


def verify_after(targets: list[str], netlink: Netlink, probe: t.Callable[..., t.Any],
                 timeout: float) -> list[dict[str, t.Any]]:
    """The full-size probe to every target through the link its route uses now."""
    by_index = {link.ifindex: link for link in netlink.links()}
    verify = []
    for target in targets:
        try:
            link = by_index.get(netlink.route_oif(target))
        except HostprepError as exc:
            verify.append(Verdict(target=target, reachable=False, full_size_ok=False, detail=exc.msg).as_dict())
            continue
        if link is None:
            verify.append(Verdict(target=target, reachable=False, full_size_ok=False,
                                  detail='the route to it leads to no known link').as_dict())
            continue
        verify.append(check_full_size(target, link.mtu, link.ifname, probe, timeout).as_dict())
    return verify


def fail_verification(run: _Run, verify: list[dict[str, t.Any]], netlink: Netlink, done: list[Planned],
                      record: Changes) -> None:
    """Raise for a failed verification, after restoring the old MTUs unless rollback=false."""
    failed = [v for v in verify if not (v['reachable'] and v['full_size_ok'])]
    if not failed:
        return
    changed_links = ', '.join('%s (%d -> %d)' % (i.link.ifname, i.link.mtu, i.request.mtu) for i in done)
    problems = '; '.join('%s via %s: %s' % (v['target'], v.get('ifname') or '?', v['detail']) for v in failed)
    if run.params.get('rollback', True):
        restored = restore(netlink, done, record)
        raise HostprepError('verification failed after setting %s: %s. Rolled back: %s; nothing was persisted'
                            % (changed_links, problems, ', '.join(restored)),
                            changed=False, rolled_back=True, verify=verify, **run.result(None, False))
    raise HostprepError('verification failed after setting %s: %s. rollback=false, so the new MTU stays; nothing '
                        'was persisted' % (changed_links, problems),
                        changed=True, rolled_back=False, verify=verify, **run.result(run.wanted, False))


def set_mtus(params: dict[str, t.Any], netlink: Netlink, persister: t.Any,
             probe: t.Callable[..., t.Any] | None, check_mode: bool,
             warn: t.Callable[[str], None], record: Changes | None = None,
             own_netns: bool = True) -> dict[str, t.Any]:
    """link_mtu from options to result: validate everything, change, verify,
    roll back or persist. Raises HostprepError (with result keys in its
    details) on bad input, failed verification or failed persistence; record
    (the run's Changes) hears of every change and undo. own_netns says
    whether params['netns'] is the host's own namespace."""
    record = record if record is not None else Changes()
    requests = parse_requests(params['links'], params.get('mtu'))
    targets = parse_verify_targets(params.get('verify_targets') or [])
    timeout = check_timeout(params.get('verify_timeout'))
    if targets and probe is None:
        raise HostprepError('verify_targets needs the path MTU probe of this collection (module_utils/_pmtu.py)')
    method, note = persist_in_netns(params.get('persist') or 'none', params.get('netns'), own_netns)
    links = netlink.links()
    planned, warnings = plan(requests, links, netlink.route_oif)
    planned, changes = stack(planned, links)
    for warning in warnings:
        warn(warning)
    if note:
        warn(note)
    run = _Run(params, planned, plan_persistence(method, planned, persister))
    extra = {'persist_note': note} if note else {}

    verify = verify_before(targets, changes, netlink, probe, timeout)
    changed = bool(changes) or any(p.changed for p in run.plans.values())
    if check_mode:
        for entry in verify:
            if entry.get('reachable'):
                entry['detail'] += '; full-size probe not sent in check mode'
        return dict(changed=changed, verify=verify, rolled_back=False, **run.result(run.wanted, True), **extra)

    done = apply_changes(netlink, changes, record)
    if targets and done:
        verify = verify_after(targets, netlink, probe, timeout)
        fail_verification(run, verify, netlink, done, record)
    persist_or_restore(run.plans, netlink, done, record, {item.link.ifindex: item.link.ifname for item in planned},
                       dict(verify=verify, **run.result(None, False), **extra))
    return dict(changed=changed, verify=verify, rolled_back=False, **run.result(run.wanted, True), **extra)
