# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab: what the tests, the benchmarks (bench/) and the demos (hack/) run against.

One package, imported as ``tests.lab`` (the repository root on sys.path:
pytest puts it there because ``tests/`` is a package; scripts run with
``python -m bench.NAME`` or ``python -m hack.NAME`` from the root):

- ``netns_lab``: the network-namespace lab, and a Python that runs inside a namespace;
- ``stack_lab``: stacked links in a namespace; ``ssh_hosts``: lab hosts reached over SSH;
- ``dockerd``: private engines a test starts itself, loop devices and filesystems, mounts and processes;
- ``private_dockerd``: an engine the role stops and starts by command (``Engine``) and that command;
- ``hoststate``: the before/after fingerprint of a host;
- ``playbook``: the one ansible-playbook runner (JSON lines from ``callback_plugins/hostprep_results.py``);
- ``vm/``: the VM lab (images, boot, molecule runs).

Importing this package makes ``ansible_collections.hostprep.container_host``
importable (the symlink tree under .build/link). That is the one place that
edits sys.path.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINKROOT = os.path.join(ROOT, '.build', 'link')
BIN = os.path.dirname(sys.executable)


def collection_importable() -> None:
    """The collection root is this repository; .build/link gives it the
    ansible_collections/NS/NAME path that imports need."""
    link = os.path.join(LINKROOT, 'ansible_collections', 'hostprep', 'container_host')
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)
    if LINKROOT not in sys.path:
        sys.path.insert(0, LINKROOT)
    os.environ.setdefault('ANSIBLE_COLLECTIONS_PATH', LINKROOT)


collection_importable()
