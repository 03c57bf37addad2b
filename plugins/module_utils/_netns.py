# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Network-namespace handling, private to hostprep.container_host.

A module that takes a ``netns`` option moves its whole process into that
namespace before it reads or changes anything: netlink (pyroute2), raw
sockets and /proc/sys/net then all see the namespace, and threads started
afterwards inherit it.
"""

from __future__ import annotations

import contextlib
import os
import traceback
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError
from ansible_collections.hostprep.container_host.plugins.module_utils import _libraries

PYROUTE2_IMPORT_ERROR = None
try:
    from pyroute2 import IPRoute
    from pyroute2 import netns as _pyroute2_netns
except ImportError:  # pragma: no cover - reported by require_pyroute2()
    IPRoute = None
    _pyroute2_netns = None
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()

NETNS_RUN_DIR = '/var/run/netns'


def require_pyroute2(module) -> None:
    """Fail the module with install advice when pyroute2 is missing or older than the collection needs."""
    _libraries.require_pyroute2(module, PYROUTE2_IMPORT_ERROR)


# The namespace this module process started in: the one Ansible reached, whose
# links the host's configuration (under /etc and /run) describes.
OWN_NETNS = '/proc/self/ns/net'


def netns_path(name: str) -> str:
    if '/' in name:
        return name
    return os.path.join(NETNS_RUN_DIR, name)


def check_netns_option(name: str | None) -> None:
    """An empty or blank netns (a templated value that came out empty) would
    silently mean the host's own namespace: refuse it."""
    if name is not None and not name.strip():
        raise HostprepError('netns is empty (%r): a templated namespace name that came out empty would '
                            'select the host\'s own namespace; give the namespace name, or omit netns to '
                            'work in the host\'s namespace' % name, netns=name)


def is_own_netns(name: str | None) -> bool:
    """Whether netns names the namespace this process runs in before
    enter_netns (the host's own, whose links the host's network configuration
    and systemd-sysctl describe): the same namespace inode. None (no netns
    option) is that namespace; a namespace that cannot be compared is not."""
    if name is None:
        return True
    try:
        theirs = os.stat(netns_path(name))
        ours = os.stat(OWN_NETNS)
    except OSError:
        return False
    return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)


def enter_netns(name: str | None) -> None:
    """Move this process into the named network namespace (never create it)."""
    check_netns_option(name)
    if not name:
        return
    path = netns_path(name)
    if not os.path.exists(path):
        raise HostprepError(
            'network namespace %s does not exist (%s not found); create it with '
            '"ip netns add %s" or leave netns unset to use the host namespace' % (name, path, name),
            netns=name)
    try:
        _pyroute2_netns.setns(path, flags=0)
    except OSError as exc:
        raise HostprepError('cannot enter network namespace %s: %s' % (name, exc), netns=name) from exc


def iproute() -> IPRoute:
    """An IPRoute handle in the current namespace (the boundary tests replace)."""
    return IPRoute()


@contextlib.contextmanager
def entered(path: str) -> t.Iterator[None]:
    """This thread in the network namespace at path (a container's
    /proc/PID/ns/net) for the block, and back in its own afterwards, so a
    client of the engine over TCP still reaches it when the block ends.
    Threads started inside the block inherit the namespace."""
    own = os.open(OWN_NETNS, os.O_RDONLY)
    try:
        try:
            _pyroute2_netns.setns(path, flags=0)
        except OSError as exc:
            raise HostprepError('cannot enter network namespace %s: %s' % (path, exc), netns=path) from exc
        try:
            yield
        finally:
            _pyroute2_netns.setns(own, flags=0)
    finally:
        os.close(own)
