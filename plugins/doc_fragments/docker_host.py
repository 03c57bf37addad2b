# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type


class ModuleDocFragment(object):
    """The address of the Docker engine's API (private to this collection).

    C(docker_host) for every module with the option; a module that always talks to the engine through the Docker
    SDK for Python adds C(docker_host.sdk) (the SDK requirement). The texts are literals: ansible-test's yamllint reads them without running
    this file.
    """

    DOCUMENTATION = r'''
options:
  docker_host:
    description:
      - The Docker engine's API address, as the Docker SDK for Python takes it, for example V(unix:///run/docker.sock)
        for a socket on this host or V(tcp://HOST:PORT).
      - The module's description says what it asks the engine there. Where the module only checks whether an engine
        answers, a C(unix://) socket is asked directly; everything else goes through the Docker SDK for Python (see
        the requirements).
    type: str
    default: unix:///var/run/docker.sock
'''

    # With DOCUMENTATION, for a module that always talks to the engine through the SDK (options: the fragment
    # loader wants them in every fragment).
    SDK = r'''
options: {}
requirements:
  - The Docker SDK for Python (C(docker)) 5.0.3 or later on the managed host (Debian and Ubuntu - C(python3-docker)).
    docker before 7.1 needs requests before 2.32, and docker before 6.1 needs urllib3 1.x; the module says which
    package to upgrade when they do not fit.
'''
