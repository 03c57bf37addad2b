# SPDX-License-Identifier: GPL-3.0-or-later
"""A network namespace that plays the managed host: Ansible runs the modules
inside it.

A module that persists network configuration or sysctl.d files must only do
so for the namespace it was started in (the host's own). To test that for
real without touching the host, the module process itself is started in a
namespace of the test's own: the inventory's ansible_python_interpreter is a
wrapper that runs Python through "ip netns exec NAME". Links, sysctls and
/proc/self/ns/net are then those of that namespace.
"""

from __future__ import annotations

from netns_lab import python_in


def inventory_in(ansible, netns: str) -> str:
    """An inventory whose one host runs its modules inside netns."""
    return ansible.inventory({'in-%s' % netns: {'ansible_python_interpreter': python_in(netns, ansible.workdir)}})
