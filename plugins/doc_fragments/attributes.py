# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type


def _action_group(*groups):
    """The action_group attribute for a module in GROUPS (the action_groups of meta/runtime.yml).

    A module names one ACTIONGROUP_* fragment: attributes of several fragments are not merged key by key, so a
    module in two groups takes the fragment that lists both.
    """
    names = ['hostprep.container_host.%s' % group for group in groups]
    uses = ' or '.join('C(group/%s)' % name for name in names)
    return '\n'.join([
        'attributes:',
        '  action_group:',
        '    support: full',
        '    membership:',
    ] + ['      - %s' % name for name in names] + [
        '    description: Use %s in C(module_defaults) to set defaults for this module.' % uses,
        '',
    ])


_PLATFORM = r'''
  platform:
    support: full
    platforms: posix
    description: Linux hosts.
'''


class ModuleDocFragment(object):
    """The attributes every module of this collection declares (private to this collection).

    A module extends C(attributes) (it changes the host) or C(attributes.info_module) (it only reads), and one
    C(attributes.actiongroup_*) with every group of meta/runtime.yml it is in. A module states its own
    C(description) of an attribute (and a C(support) that differs) in its DOCUMENTATION; that wins over these.
    """

    # A module that changes the host.
    DOCUMENTATION = r'''
attributes:
  check_mode:
    support: full
    description: Reports what would change and changes nothing.
  diff_mode:
    support: full
    description: Shows what changes, before and after.
  idempotent:
    support: full
    description: A second run with the same options changes nothing and reports no change.
''' + _PLATFORM

    # A module that only reads.
    INFO_MODULE = r'''
attributes:
  check_mode:
    support: full
    description: The module changes nothing; it runs in check mode as well and returns the same.
  diff_mode:
    support: N/A
    description: The module changes nothing, so there is no difference to show.
  idempotent:
    support: full
    description: The module never changes anything and always reports no change.
''' + _PLATFORM

    ACTIONGROUP_DOCKER_STORAGE = _action_group('docker_storage')

    ACTIONGROUP_DOCKER_STORAGE_AND_VALIDATE = _action_group('docker_storage', 'validate')

    ACTIONGROUP_STORAGE_NETWORK = _action_group('storage_network')

    ACTIONGROUP_STORAGE_NETWORK_AND_VALIDATE = _action_group('storage_network', 'validate')

    ACTIONGROUP_VALIDATE = _action_group('validate')
