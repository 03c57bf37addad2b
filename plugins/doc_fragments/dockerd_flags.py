# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type


class ModuleDocFragment(object):
    """Where dockerd's command-line flags are read from (private to this collection)."""

    DOCUMENTATION = r'''
options:
  flags_sources:
    description:
      - Files (shell glob patterns allowed) to read dockerd's command-line flags from, in order. Files with a
        C([Service]) section are read as systemd units or drop-ins (C(ExecStart=) of dockerd and C(Environment=));
        others as environment files (C(DOCKER_OPTS="..."), C(OPTIONS=...)).
      - Set to an empty list to ignore flags.
    type: list
    elements: path
    default:
      - /lib/systemd/system/docker.service
      - /usr/lib/systemd/system/docker.service
      - /etc/systemd/system/docker.service
      - /run/systemd/system/docker.service
      - /lib/systemd/system/docker.service.d/*.conf
      - /usr/lib/systemd/system/docker.service.d/*.conf
      - /etc/systemd/system/docker.service.d/*.conf
      - /run/systemd/system/docker.service.d/*.conf
      - /etc/default/docker
      - /etc/sysconfig/docker*
'''
