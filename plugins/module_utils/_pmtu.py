# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Path-MTU probing engine of hostprep.container_host (private to the collection).

Two halves:

* ``search_path_mtu()`` is pure: it takes a probe callable and decides which
  packet sizes to send. It jumps straight to the MTU a router reports in a
  "fragmentation needed" (ICMPv4 type 3 code 4) or "Packet Too Big" (ICMPv6
  type 2) error and otherwise searches between the largest size known to pass
  and the smallest size known to fail, so a black hole costs few timeouts.
* ``Prober`` sends ICMP echo requests with the Don't-Fragment bit from a raw
  socket, the way tracepath does: IP_PMTUDISC_PROBE sets DF but ignores the
  PMTU the kernel cached from earlier errors (so every probe really goes on
  the wire), and IP_RECVERR queues the routers' ICMP errors, with the
  next-hop MTU and the router's address, on the socket's error queue.
  See ip(7), ipv6(7) and linux/errqueue.h.

``probe(target, size, timeout)`` is a one-shot helper other modules reuse
(the link_mtu rollback safety net): keep its name and signature.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import os
import select
import socket
import struct
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError
from ansible_collections.hostprep.container_host.plugins.module_utils._netns import enter_netns, iproute, require_pyroute2

# Constants from linux/in.h, linux/in6.h, linux/icmp.h, linux/icmpv6.h and
# linux/errqueue.h; Python's socket module does not export them all.
SOL_IP = 0
SOL_IPV6 = 41
SOL_RAW = 255
IP_MTU_DISCOVER = 10
IP_RECVERR = 11
IP_MTU = 14
IP_PMTUDISC_PROBE = 3
IPV6_MTU_DISCOVER = 23
IPV6_MTU = 24
IPV6_RECVERR = 25
IPV6_PMTUDISC_PROBE = 3
ICMP_FILTER = 1
ICMP6_FILTER = 1
MSG_ERRQUEUE = 0x2000

SO_EE_ORIGIN_LOCAL = 1
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3

ICMP_ECHOREPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_FRAG_NEEDED = 4
ICMP_ECHO = 8
ICMP_TIME_EXCEEDED = 11
ICMP6_DST_UNREACH = 1
ICMP6_PACKET_TOO_BIG = 2
ICMP6_TIME_EXCEEDED = 3
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129

IP_HEADER = {4: 20, 6: 40}
ICMP_HEADER = 8
#: the smallest MTU each IP version allows (RFC 791, RFC 8200)
MIN_MTU = {4: 68, 6: 1280}
#: the size that proves a target answers at all, before a black-hole search
REACH_MTU = {4: 576, 6: 1280}
MAX_MTU = 65535
#: MTUs links commonly have (tunnels, PPPoE, Ethernet, FDDI, jumbo frames);
#: a black-hole search tries them first, since a failing probe costs a
#: timeout and a passing one only a round trip.
COMMON_MTUS = (1280, 1420, 1450, 1480, 1492, 1500, 4352, 9000, 9216)

OUTCOMES = ('reply', 'too_big', 'local_too_big', 'timeout', 'unreachable', 'error')

# 8 bytes after the ICMP header tell our probes apart from other programs'
_TOKEN_LEN = 8
_SOCK_EXTENDED_ERR = struct.Struct('=IBBBBII')


@dataclasses.dataclass
class ProbeResult:
    """What one probe of ``size`` bytes (the whole IP packet) got back.

    outcome is one of OUTCOMES; mtu is the next-hop MTU a router (too_big)
    or the local interface (local_too_big) reported; hop the address of the
    router that answered with an error ("local" for the host itself); rtt
    the round trip in seconds.
    """

    outcome: str
    size: int
    mtu: int | None = None
    hop: str | None = None
    rtt: float | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, t.Any]:
        return {
            'size': self.size,
            'outcome': self.outcome,
            'mtu': self.mtu,
            'hop': self.hop,
            'rtt_ms': None if self.rtt is None else round(self.rtt * 1000.0, 3),
        }


@dataclasses.dataclass
class PathMtuReport:
    """The result of search_path_mtu() for one target."""

    reachable: bool
    path_mtu: int | None
    expected_mtu: int
    expected_mtu_ok: bool
    limiting_hop: str | None
    probe_log: list[ProbeResult]
    seconds: float

    @property
    def probes(self) -> int:
        return len(self.probe_log)

    def to_dict(self) -> dict[str, t.Any]:
        return {
            'reachable': self.reachable,
            'path_mtu': self.path_mtu,
            'expected_mtu': self.expected_mtu,
            'expected_mtu_ok': self.expected_mtu_ok,
            'limiting_hop': self.limiting_hop,
            'probes': self.probes,
            'probe_log': [p.to_dict() for p in self.probe_log],
            'seconds': round(self.seconds, 3),
        }


# ---------------------------------------------------------------------------
# the search
# ---------------------------------------------------------------------------

def search_path_mtu(probe: t.Callable[[int], ProbeResult], expected_mtu: int, min_mtu: int,
                    reach_mtu: int | None = None, retries: int = 1,
                    plateaus: t.Sequence[int] = COMMON_MTUS,
                    clock: t.Callable[[], float] = time.monotonic) -> PathMtuReport:
    """Find the path MTU, up to expected_mtu, with as few probes as possible.

    probe(size) sends one packet of size bytes and returns a ProbeResult.
    The search never sends more than expected_mtu, so the path MTU it reports
    is min(real path MTU, expected_mtu). Rules:

    * a too_big/local_too_big answer carrying an MTU m below the probed size
      (and above what is known to pass) is believed: sizes above m fail, and
      m is probed next;
    * a timeout is retried ``retries`` times, since routers rate-limit ICMP
      errors (Linux: a burst of 6, then 1 per second) and packets get lost;
    * before any size is known to pass and no router named an MTU, a small
      probe (reach_mtu, then min_mtu) tells an unreachable target from a
      black hole;
    * otherwise the search tries the common MTUs (plateaus) between the
      known-good and the known-bad size in ascending order, checking good+1
      after each one that passes;
    * then it gallops up from the known-good size (good+1, +2, +4, ...,
      never beyond the midpoint to the known-bad size), starting over from
      +1 after each failure. Each failure at least halves the interval, as
      in a bisection, but a path MTU just above a known-good size (a switch
      that lets 1504 bytes through) costs two or three timeouts, not eleven.
    """
    if reach_mtu is None:
        reach_mtu = max(min_mtu, 576)
    start = clock()
    log: list[ProbeResult] = []
    tried: set[int] = set()
    good: int | None = None
    bad: int | None = None
    too_big: list[ProbeResult] = []
    hint: int | None = None
    last_was_plateau = False
    unreachable = False
    step = 1

    def send(size: int) -> ProbeResult:
        tried.add(size)
        result = probe(size)
        log.append(result)
        for _attempt in range(retries):
            if result.outcome != 'timeout':
                break
            result = probe(size)
            log.append(result)
        return result

    def next_size() -> int | None:
        nonlocal hint
        low = good if good is not None else min_mtu - 1
        high = bad if bad is not None else expected_mtu + 1
        if high - low <= 1:
            return None
        if hint is not None:
            size, hint = hint, None
            if low < size < high:
                return size
        if good is None:
            for size in (reach_mtu, min_mtu):
                if size < high and size not in tried:
                    return size
            return None
        if last_was_plateau and good + 1 < high and good + 1 not in tried:
            return good + 1
        for size in sorted(plateaus):
            if low < size < high and size not in tried:
                return size
        return min(low + step, (low + high) // 2)

    size: int | None = expected_mtu
    while size is not None:
        result = send(size)
        last_was_plateau = False
        if result.outcome == 'reply':
            if good is not None and size == good + step:
                step *= 2
            good = size if good is None else max(good, size)
            last_was_plateau = size in plateaus
        else:
            step = 1
            bad = size if bad is None else min(bad, size)
            if result.outcome in ('too_big', 'local_too_big'):
                too_big.append(result)
                mtu = result.mtu
                if mtu is not None and min_mtu <= mtu < size and (good is None or mtu > good):
                    bad = min(bad, mtu + 1)
                    hint = mtu
            elif result.outcome in ('unreachable', 'error') and good is None and size <= reach_mtu:
                # even a small packet is refused: the target is unreachable
                unreachable = True
                break
        size = next_size()

    if unreachable or good is None:
        return PathMtuReport(False, None, expected_mtu, False, None, log, clock() - start)
    hop = None
    if good < expected_mtu:
        for result in reversed(too_big):
            if result.mtu == good:
                hop = result.hop
                break
        else:
            # a router that says "too big" without an MTU (RFC 792 style) at
            # the size just above the path MTU still is the limiting hop
            for result in too_big:
                if result.size == good + 1:
                    hop = result.hop
                    break
    return PathMtuReport(True, good, expected_mtu, good >= expected_mtu, hop, log, clock() - start)


# ---------------------------------------------------------------------------
# packets and the error queue
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class ExtendedError:
    """struct sock_extended_err plus its offender address (linux/errqueue.h)."""

    errno: int
    origin: int
    type: int
    code: int
    info: int
    data: int
    offender: str | None


def parse_extended_err(cmsg_data: bytes) -> ExtendedError:
    """Decode the IP_RECVERR / IPV6_RECVERR control message.

    The struct is followed by the offender's sockaddr (SO_EE_OFFENDER): the
    router that sent the ICMP error, or AF_UNSPEC for local errors.
    """
    if len(cmsg_data) < _SOCK_EXTENDED_ERR.size:
        raise ValueError('sock_extended_err needs %d bytes, got %d' % (_SOCK_EXTENDED_ERR.size, len(cmsg_data)))
    ee_errno, origin, ee_type, code, _pad, info, data = _SOCK_EXTENDED_ERR.unpack_from(cmsg_data)
    offender = None
    addr = cmsg_data[_SOCK_EXTENDED_ERR.size:]
    if len(addr) >= 2:
        family = struct.unpack_from('=H', addr)[0]
        if family == socket.AF_INET and len(addr) >= 8:
            offender = socket.inet_ntop(socket.AF_INET, addr[4:8])
        elif family == socket.AF_INET6 and len(addr) >= 24:
            offender = socket.inet_ntop(socket.AF_INET6, addr[8:24])
    return ExtendedError(ee_errno, origin, ee_type, code, info, data, offender)


def icmp_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b'\0'
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xffff)
    total += total >> 16
    return ~total & 0xffff


def build_echo(family: int, ident: int, seq: int, token: bytes, size: int) -> bytes:
    """The ICMP(v6) echo request that makes an IP packet of size bytes."""
    payload_len = size - IP_HEADER[family] - ICMP_HEADER
    if payload_len < len(token):
        raise ValueError('probe size %d is too small for IPv%d' % (size, family))
    payload = token + bytes((i & 0xff for i in range(payload_len - len(token))))
    if family == 4:
        checksum = icmp_checksum(struct.pack('!BBHHH', ICMP_ECHO, 0, 0, ident, seq) + payload)
        return struct.pack('!BBHHH', ICMP_ECHO, 0, checksum, ident, seq) + payload
    # the kernel fills in the ICMPv6 checksum (IPV6_CHECKSUM is on for raw ICMPv6)
    return struct.pack('!BBHHH', ICMP6_ECHO_REQUEST, 0, 0, ident, seq) + payload


@dataclasses.dataclass
class Echo:
    """The ICMP header fields of an echo request or reply."""

    type: int
    code: int
    ident: int
    seq: int
    token: bytes


def parse_icmp(data: bytes, ip_header: bool = False) -> Echo | None:
    """Decode an ICMP(v6) message; None when it is too short.

    IPv4 raw sockets receive the IP header too (ip_header=True); IPv6 raw
    sockets and error-queue payloads start at the ICMP header.
    """
    if ip_header:
        if not data or data[0] >> 4 != 4:
            return None
        data = data[(data[0] & 0x0f) * 4:]
    if len(data) < ICMP_HEADER:
        return None
    ee_type, code, _checksum, ident, seq = struct.unpack_from('!BBHHH', data)
    return Echo(ee_type, code, ident, seq, bytes(data[ICMP_HEADER:ICMP_HEADER + _TOKEN_LEN]))


def classify_error(family: int, err: ExtendedError, size: int, rtt: float | None = None) -> ProbeResult:
    """Turn one error-queue entry into the probe's outcome."""
    if err.origin == SO_EE_ORIGIN_LOCAL:
        if err.errno == errno.EMSGSIZE:
            return ProbeResult('local_too_big', size, mtu=err.info or None, hop='local', rtt=rtt)
        return ProbeResult('error', size, hop='local', rtt=rtt, detail=os.strerror(err.errno))
    what = 'ICMP type %d code %d from %s' % (err.type, err.code, err.offender)
    if err.origin == SO_EE_ORIGIN_ICMP:
        if err.type == ICMP_DEST_UNREACH and err.code == ICMP_FRAG_NEEDED:
            return ProbeResult('too_big', size, mtu=err.info or None, hop=err.offender, rtt=rtt)
        if err.type in (ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED):
            return ProbeResult('unreachable', size, hop=err.offender, rtt=rtt, detail=what)
    elif err.origin == SO_EE_ORIGIN_ICMP6:
        what = 'ICMPv6 type %d code %d from %s' % (err.type, err.code, err.offender)
        if err.type == ICMP6_PACKET_TOO_BIG:
            return ProbeResult('too_big', size, mtu=err.info or None, hop=err.offender, rtt=rtt)
        if err.type in (ICMP6_DST_UNREACH, ICMP6_TIME_EXCEEDED):
            return ProbeResult('unreachable', size, hop=err.offender, rtt=rtt, detail=what)
    return ProbeResult('error', size, hop=err.offender, rtt=rtt, detail=what)


# ---------------------------------------------------------------------------
# the raw-socket prober
# ---------------------------------------------------------------------------

_UNREACHABLE_ERRNOS = (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.ENETDOWN)

#: 0.0.0.0/8 is "this network" (RFC 1122): a source, never a destination
_THIS_NETWORK = ipaddress.ip_network('0.0.0.0/8')
_LIMITED_BROADCAST = ipaddress.ip_address('255.255.255.255')


@dataclasses.dataclass(frozen=True)
class Address:
    """A target as given, and the address it names (an IPv4-mapped IPv6
    address names its IPv4 address, which is how it travels)."""

    given: str
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    scope: str | None = None

    @property
    def family(self) -> int:
        return self.address.version

    @property
    def text(self) -> str:
        """The address with its interface (fe80::1%eth0), as getaddrinfo takes it."""
        return '%s%%%s' % (self.address, self.scope) if self.scope else str(self.address)


def parse_address(target: t.Any) -> Address:
    """The address a target names, or HostprepError saying what is wrong with it. Pure."""
    given = '' if target is None else str(target)
    text = given.strip()
    if not text:
        raise HostprepError(
            'target %r is empty: a templated address probably came out empty or unset; give the address of the '
            'storage peer (for example 198.18.3.10)' % (given,), target=given)
    literal, percent, scope = text.partition('%')
    if '/' in literal:
        raise HostprepError(
            'target %r is a network, not an address: path MTU is measured to one peer; give the address of the '
            'storage peer without /prefix' % (given,), target=given)
    try:
        address = ipaddress.ip_address(literal)
    except ValueError:
        raise HostprepError(
            'target %r is not an IPv4 or IPv6 address: path_mtu_info probes address literals only '
            '(for example 198.18.3.10 or fd42:1ab:0:3::a) and does not resolve names (a name may resolve to '
            'another network than the storage one); give the address of the storage peer instead'
            % (given,), target=given) from None
    if percent and address.version == 4:
        raise HostprepError('target %r has an interface after %%, which only IPv6 addresses take (fe80::1%%eth0); '
                            'give the IPv4 address alone' % (given,), target=given)
    if percent and not scope:
        raise HostprepError('target %r ends in an empty interface name; give the address with its interface, '
                            'as fe80::1%%eth0' % (given,), target=given)
    mapped = getattr(address, 'ipv4_mapped', None)
    if mapped is not None:
        # ::ffff:a.b.c.d travels as IPv4
        return Address(given, mapped)
    return Address(given, address, scope or None)


def refusal(addr: Address, allow_loopback: bool = False) -> str | None:
    """Why a target cannot be a storage peer, judged from the address alone (None when it can). Pure."""
    address = addr.address
    name = repr(addr.given.strip())
    if address.version == 4 and address in _THIS_NETWORK and not address.is_unspecified:
        return ('target %s is in 0.0.0.0/8, "this network", which is never a destination; give the address of the '
                'storage peer' % name)
    if address.is_unspecified:
        return ('target %s is the unspecified address %s, which reaches this host itself over loopback, not a '
                'peer: a templated address probably came out empty or unset; give the address of the storage '
                'peer' % (name, address))
    if address.is_multicast:
        return ('target %s is a multicast address: the path MTU is measured to one peer; give the unicast '
                'address of the storage peer' % name)
    if address == _LIMITED_BROADCAST:
        return ('target %s is the broadcast address: the path MTU is measured to one peer; give the unicast '
                'address of the storage peer' % name)
    if address.is_loopback and not allow_loopback:
        return ('target %s is a loopback address: its answer comes from this host and says nothing about the '
                'storage network; give the address of the storage peer, or set allow_loopback=true to probe '
                'loopback on purpose' % name)
    if address.version == 6 and address.is_link_local and not addr.scope:
        return ('target %s is an IPv6 link-local address without its interface; give it as %s%%IFNAME '
                '(for example %s%%eth0)' % (name, address, address))
    return None


def parse_target(target: str) -> tuple[int, tuple]:
    """Return (IP version, sockaddr) of an address literal, or raise HostprepError."""
    addr = parse_address(target)
    try:
        infos = socket.getaddrinfo(addr.text, None, 0, socket.SOCK_RAW, 0, socket.AI_NUMERICHOST)
    except socket.gaierror:
        # the address itself parsed: only its interface can be unknown
        raise HostprepError('target %r names interface %s, which does not exist here; give an interface of '
                            'this host (or of the netns probed from)' % (target, addr.scope), target=target) from None
    family, _type, _proto, _name, sockaddr = infos[0]
    return (6 if family == socket.AF_INET6 else 4), sockaddr


class Prober:
    """One raw ICMP socket connected to one target, sending DF probes."""

    def __init__(self, target: str, ident: int | None = None) -> None:
        self.target = target
        self.family, self.sockaddr = parse_target(target)
        self.ident = ident if ident is not None else int.from_bytes(os.urandom(2), 'big')
        self.seq = int.from_bytes(os.urandom(2), 'big')
        if self.family == 4:
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        else:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        self.sock = sock
        try:
            if self.family == 4:
                sock.setsockopt(SOL_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
                sock.setsockopt(SOL_IP, IP_RECVERR, 1)
                # receive only echo replies: a set bit blocks that ICMP type
                sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack('=I', 0xffffffff & ~(1 << ICMP_ECHOREPLY)))
            else:
                sock.setsockopt(SOL_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE)
                sock.setsockopt(SOL_IPV6, IPV6_RECVERR, 1)
                words = [0xffffffff] * 8
                words[ICMP6_ECHO_REPLY >> 5] &= ~(1 << (ICMP6_ECHO_REPLY & 31))
                sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack('=8I', *words))
            # raw sockets then only see packets from the target
            sock.connect(self.sockaddr)
            sock.setblocking(False)
        except Exception:
            sock.close()
            raise
        #: raw (ancillary data, payload) of every error-queue message and
        #: every echo reply, kept when record=True (for test fixtures)
        self.record = False
        self.recorded: list[dict[str, t.Any]] = []
        self.last_token = b''

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Prober:
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self.close()

    # -- queues -------------------------------------------------------------
    def _read_errqueue(self) -> list[tuple[ExtendedError, bytes]]:
        """Every pending error-queue entry (reading them also clears sk_err)."""
        entries = []
        level, kind = (SOL_IP, IP_RECVERR) if self.family == 4 else (SOL_IPV6, IPV6_RECVERR)
        while True:
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(65535, 512, MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return entries
            for cmsg_level, cmsg_type, cmsg_data in ancdata:
                if cmsg_level == level and cmsg_type == kind:
                    if self.record:
                        self.recorded.append({'kind': 'errqueue', 'cmsg': cmsg_data.hex(), 'payload': data.hex()})
                    entries.append((parse_extended_err(cmsg_data), data))

    def _read_data(self) -> list[bytes]:
        packets = []
        pending_error_seen = False
        while True:
            try:
                data = self.sock.recv(65535, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return packets
            except OSError:
                # a pending ICMP error (sk_err) surfaces on recv once; the
                # error queue holds the details
                if pending_error_seen:
                    return packets
                pending_error_seen = True
                continue
            if self.record:
                self.recorded.append({'kind': 'data', 'packet': data.hex()})
            packets.append(data)

    def _drain(self) -> None:
        self._read_errqueue()
        self._read_data()
        self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)

    def _ours(self, echo: Echo | None, seq: int, token: bytes, reply: bool) -> bool:
        if echo is None:
            return False
        want = (ICMP_ECHOREPLY if reply else ICMP_ECHO) if self.family == 4 else \
            (ICMP6_ECHO_REPLY if reply else ICMP6_ECHO_REQUEST)
        if echo.type != want or echo.ident != self.ident or echo.seq != seq:
            return False
        # routers may quote only 8 bytes of our ICMP message (RFC 792)
        return not echo.token or token.startswith(echo.token)

    def _local_mtu(self) -> int | None:
        level, opt = (SOL_IP, IP_MTU) if self.family == 4 else (SOL_IPV6, IPV6_MTU)
        try:
            return self.sock.getsockopt(level, opt)
        except OSError:
            return None

    # -- one probe ----------------------------------------------------------
    def probe(self, size: int, timeout: float) -> ProbeResult:
        """Send one echo request of size bytes (whole IP packet) with DF set."""
        if not MIN_MTU[self.family] <= size <= MAX_MTU:
            raise ValueError('probe size %d is outside %d..%d for IPv%d'
                             % (size, MIN_MTU[self.family], MAX_MTU, self.family))
        self._drain()
        self.seq = (self.seq + 1) & 0xffff
        seq = self.seq
        token = os.urandom(_TOKEN_LEN)
        self.last_token = token
        packet = build_echo(self.family, self.ident, seq, token, size)
        start = time.monotonic()
        try:
            self.sock.send(packet)
        except OSError as exc:
            errors = self._read_errqueue()
            if exc.errno == errno.EMSGSIZE:
                # the host's own link is smaller: the kernel says how small
                for err, _payload in errors:
                    if err.origin == SO_EE_ORIGIN_LOCAL and err.errno == errno.EMSGSIZE and err.info:
                        return classify_error(self.family, err, size)
                return ProbeResult('local_too_big', size, mtu=self._local_mtu(), hop='local')
            if exc.errno in _UNREACHABLE_ERRNOS:
                return ProbeResult('unreachable', size, hop='local', detail=exc.strerror)
            return ProbeResult('error', size, hop='local', detail=exc.strerror)
        deadline = start + timeout
        poller = select.poll()
        poller.register(self.sock, select.POLLIN | select.POLLERR)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return ProbeResult('timeout', size)
            events = poller.poll(max(1, int(remaining * 1000 + 0.999)))
            mask = 0
            for _fd, event in events:
                mask |= event
            if mask & select.POLLERR:
                for err, payload in self._read_errqueue():
                    if self._ours(parse_icmp(payload), seq, token, reply=False):
                        return classify_error(self.family, err, size, time.monotonic() - start)
            if mask & select.POLLIN:
                for data in self._read_data():
                    if self._ours(parse_icmp(data, ip_header=self.family == 4), seq, token, reply=True):
                        return ProbeResult('reply', size, rtt=time.monotonic() - start)


def probe(target: str, size: int, timeout: float) -> ProbeResult:
    """Send ONE DF echo request of size bytes (the whole IP packet, i.e. the
    MTU under test) to target and report what came back. No retry."""
    with Prober(target) as prober:
        return prober.probe(size, timeout)


# ---------------------------------------------------------------------------
# what the module runs
# ---------------------------------------------------------------------------

#: the most targets probed at the same time: each holds a thread and a raw socket
MAX_CONCURRENCY = 256
#: the seconds to wait for each probe: below MIN_TIMEOUT a real peer's reply
#: cannot come back, and every probe would pass for a loss
MIN_TIMEOUT = 0.01
MAX_TIMEOUT = 60.0
#: route types of rtnetlink (linux/rtnetlink.h), as ``ip route get`` reports them
RTN_LOCAL = 2
RTN_BROADCAST = 3
RTN_MULTICAST = 5


@dataclasses.dataclass
class Route:
    """What the routing of the namespace probed from says about one target."""

    type: int
    device: str | None = None
    #: the host's own address (with its prefix and device) that makes the
    #: target local or a subnet's broadcast address
    owner: str | None = None


def check_options(expected_mtu: int, timeout: float, concurrency: int) -> None:
    """Check the scalar options before anything else. Pure."""
    if not MIN_MTU[4] <= expected_mtu <= MAX_MTU:
        raise HostprepError(
            'expected_mtu %d is out of range: an MTU is between %d and %d bytes '
            '(IPv6 needs at least %d); give the MTU the storage network should carry, for example 9000'
            % (expected_mtu, MIN_MTU[4], MAX_MTU, MIN_MTU[6]), expected_mtu=expected_mtu)
    if not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:
        raise HostprepError('timeout %s is out of range: give the seconds to wait for each probe, from %s to %s '
                            '(a shorter wait takes every reply for a loss)' % (timeout, MIN_TIMEOUT, MAX_TIMEOUT),
                            timeout=timeout)
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise HostprepError('concurrency %d is out of range: give 1 to %d (each target probed at the same time '
                            'holds a thread and a raw socket)' % (concurrency, MAX_CONCURRENCY),
                            concurrency=concurrency)


def _refuse(problems: list[str], **details: t.Any) -> None:
    if len(problems) == 1:
        raise HostprepError(problems[0], **details)
    if problems:
        raise HostprepError('%d targets cannot be probed: %s' % (len(problems), '; '.join(problems)), **details)


def plan_targets(targets: t.Sequence[t.Any], expected_mtu: int,
                 allow_loopback: bool = False) -> tuple[list[Address], list[dict[str, str]]]:
    """Every target parsed and judged from its address before any probe, and
    the distinct ones: (addresses to probe in the order given, duplicates as
    {target, same_as}). All refusals are reported at once. Pure."""
    if not targets:
        raise HostprepError('targets is empty: give at least one IPv4 or IPv6 address to probe')
    problems: list[str] = []
    unique: dict[tuple, Address] = {}
    duplicates: list[dict[str, str]] = []
    for target in targets:
        try:
            addr = parse_address(target)
        except HostprepError as exc:
            problems.append(exc.msg)
            continue
        why = refusal(addr, allow_loopback)
        if why:
            problems.append(why)
            continue
        if addr.family == 6 and expected_mtu < MIN_MTU[6]:
            problems.append('expected_mtu %d is below %d, the minimum MTU of IPv6, and target %s is IPv6: '
                            'give expected_mtu %d or more, or probe it in a separate task'
                            % (expected_mtu, MIN_MTU[6], addr.given, MIN_MTU[6]))
            continue
        key = (addr.address, addr.scope)
        if key in unique:
            duplicates.append({'target': addr.given, 'same_as': unique[key].given})
            continue
        unique[key] = addr
    _refuse(problems)
    return list(unique.values()), duplicates


def route_refusal(addr: Address, route: Route | None, allow_loopback: bool = False) -> str | None:
    """Why the namespace's routing makes a target no storage peer (None when it is one). Pure."""
    if route is None:
        return None  # no route: the probes say so (unreachable)
    where = ' (%s)' % route.owner if route.owner else (' (on %s)' % route.device if route.device else '')
    name = repr(addr.given.strip())
    if route.type == RTN_BROADCAST:
        return ('target %s is a broadcast address of this host\'s subnet%s: the path MTU is measured to one '
                'peer; give the unicast address of the storage peer' % (name, where))
    if route.type == RTN_MULTICAST:
        return ('target %s is routed as multicast%s: the path MTU is measured to one peer; give the unicast '
                'address of the storage peer' % (name, where))
    if route.type == RTN_LOCAL and not allow_loopback:
        return ('target %s is an address of this host%s: its answer comes back over loopback and says nothing '
                'about the storage network; give the address of the storage peer, or set allow_loopback=true '
                'to probe it on purpose' % (name, where))
    return None


def route_to(addr: Address) -> Route | None:
    """``ip route get`` for one target in the current namespace, through
    pyroute2; None when there is no route."""
    from pyroute2.netlink.exceptions import NetlinkError  # pylint: disable=import-outside-toplevel
    query: dict[str, t.Any] = {'dst': str(addr.address)}
    with iproute() as ipr:
        if addr.scope:
            index = ipr.link_lookup(ifname=addr.scope) or ([int(addr.scope)] if addr.scope.isdigit() else [])
            if not index:
                raise HostprepError('target %r names interface %s, which does not exist here; give an interface '
                                    'of this host (or of the netns probed from)' % (addr.given, addr.scope),
                                    target=addr.given)
            query['oif'] = index[0]
        try:
            msg = ipr.route('get', **query)[0]
        except NetlinkError:
            return None
        names = {link['index']: link.get_attr('IFLA_IFNAME') for link in ipr.get_links()}
        route = Route(msg['type'], names.get(msg.get_attr('RTA_OIF')))
        if route.type in (RTN_LOCAL, RTN_BROADCAST):
            family = socket.AF_INET if addr.family == 4 else socket.AF_INET6
            for entry in ipr.get_addr(family=family):
                mine = entry.get_attr('IFA_LOCAL') or entry.get_attr('IFA_ADDRESS')
                subnet = ipaddress.ip_interface('%s/%d' % (mine, entry['prefixlen'])).network
                # a directed broadcast address is the subnet's last one, with or without IFA_BROADCAST
                broadcast = subnet.broadcast_address if addr.family == 4 and subnet.prefixlen < 31 else None
                if addr.address in (ipaddress.ip_address(mine), broadcast):
                    route.owner = '%s/%d on %s' % (mine, entry['prefixlen'], names.get(entry['index']))
                    break
    return route


def check_routes(addresses: t.Sequence[Address], allow_loopback: bool = False,
                 route_of: t.Callable[[Address], Route | None] = route_to) -> None:
    """Refuse targets the routing of this namespace calls broadcast,
    multicast or local, all at once, before any probe."""
    problems = []
    for addr in addresses:
        why = route_refusal(addr, route_of(addr), allow_loopback)
        if why:
            problems.append(why)
    _refuse(problems)


def measure(target: str, expected_mtu: int, timeout: float,
            prober_factory: t.Callable[[str], t.Any] = Prober) -> dict[str, t.Any]:
    """Probe one target and return its report as the module returns it."""
    try:
        prober = prober_factory(target)
    except PermissionError as exc:
        raise HostprepError('cannot open a raw ICMP socket to probe %s: %s; path_mtu_info needs root '
                            '(or CAP_NET_RAW): use become: true' % (target, exc), target=target) from exc
    except OSError as exc:
        raise HostprepError('cannot open a raw ICMP socket to probe %s: %s (is IPv%d enabled on this host?)'
                            % (target, exc, 6 if ':' in target else 4), target=target) from exc
    with prober:
        family = prober.family
        report = search_path_mtu(lambda size: prober.probe(size, timeout), expected_mtu,
                                 MIN_MTU[family], REACH_MTU[family])
    result = {'target': target, 'family': family}
    result.update(report.to_dict())
    return result


def measure_all(targets: t.Sequence[str], expected_mtu: int, timeout: float, concurrency: int,
                prober_factory: t.Callable[[str], t.Any] = Prober) -> list[dict[str, t.Any]]:
    """Probe every target concurrently, one thread and one socket each; keep the order."""
    workers = max(1, min(concurrency, len(targets)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(measure, target, expected_mtu, timeout, prober_factory) for target in targets]
        return [future.result() for future in futures]


def survey(module: t.Any) -> dict[str, t.Any]:
    """The module's work: check every option and target, enter the
    namespace, refuse targets its routing makes no peer, probe the rest."""
    params = module.params
    start = time.monotonic()
    addresses, duplicates = plan_survey(params)
    require_pyroute2(module)
    enter_netns(params['netns'])
    return survey_here(params, addresses, duplicates, module.warn, start)


def plan_survey(params: dict[str, t.Any]) -> tuple[list[Address], list[dict[str, str]]]:
    """Every option and target checked before any namespace is entered or probe sent."""
    check_options(params['expected_mtu'], params['timeout'], params['concurrency'])
    return plan_targets(params['targets'], params['expected_mtu'], params.get('allow_loopback', False))


def survey_here(params: dict[str, t.Any], addresses: list[Address], duplicates: list[dict[str, str]],
                warn: t.Callable[[str], None], start: float) -> dict[str, t.Any]:
    """Probe the planned targets from the namespace this thread is in."""
    check_routes(addresses, params.get('allow_loopback', False))
    results = measure_all([addr.given for addr in addresses], params['expected_mtu'], params['timeout'],
                          params['concurrency'])
    for dup in duplicates:
        warn('target %s is the same address as %s: probed once' % (dup['target'], dup['same_as']))
    return {
        'changed': False,
        'targets': results,
        'duplicates': duplicates,
        'all_ok': all(r['expected_mtu_ok'] for r in results),
        'seconds': round(time.monotonic() - start, 3),
    }
