# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type


class ModuleDocFragment(object):
    """The attributes every module of this collection declares (private to this collection).

    A module extends C(attributes) (it changes the host) or C(attributes.info_module) (it only reads), and one
    C(attributes.actiongroup_*) with every group of meta/runtime.yml it is in (attributes of several fragments are
    not merged key by key, so a module in two groups takes the fragment that lists both;
    tests/unit/plugins/modules/test_documentation.py checks each module against meta/runtime.yml). A module states
    its own C(description) of an attribute (and a C(support) that differs) in its DOCUMENTATION; that wins over
    these. The texts are literals: ansible-test's yamllint reads them without running this file.
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
  platform:
    support: full
    platforms: posix
    description: Linux hosts.
'''

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
  platform:
    support: full
    platforms: posix
    description: Linux hosts.
'''

    ACTIONGROUP_DOCKER_STORAGE = r'''
attributes:
  action_group:
    support: full
    membership:
      - hostprep.container_host.docker_storage
    description:
      - Use C(group/hostprep.container_host.docker_storage) in C(module_defaults) to set defaults for this
        module.
'''

    ACTIONGROUP_DOCKER_STORAGE_AND_VALIDATE = r'''
attributes:
  action_group:
    support: full
    membership:
      - hostprep.container_host.docker_storage
      - hostprep.container_host.validate
    description:
      - Use C(group/hostprep.container_host.docker_storage) or C(group/hostprep.container_host.validate) in
        C(module_defaults) to set defaults for this module.
'''

    ACTIONGROUP_STORAGE_NETWORK = r'''
attributes:
  action_group:
    support: full
    membership:
      - hostprep.container_host.storage_network
    description:
      - Use C(group/hostprep.container_host.storage_network) in C(module_defaults) to set defaults for this
        module.
'''

    ACTIONGROUP_STORAGE_NETWORK_AND_VALIDATE = r'''
attributes:
  action_group:
    support: full
    membership:
      - hostprep.container_host.storage_network
      - hostprep.container_host.validate
    description:
      - Use C(group/hostprep.container_host.storage_network) or C(group/hostprep.container_host.validate) in
        C(module_defaults) to set defaults for this module.
'''

    ACTIONGROUP_VALIDATE = r'''
attributes:
  action_group:
    support: full
    membership:
      - hostprep.container_host.validate
    description:
      - Use C(group/hostprep.container_host.validate) in C(module_defaults) to set defaults for this module.
'''
