# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The docker_storage role's plan as filters; the logic is in module_utils/_storage_plan.py (unit-tested)."""

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

from ansible_collections.hostprep.container_host.plugins.module_utils._storage_plan import decision, target


def docker_storage_target(settings, storage=None):
    return target(dict(settings), dict(storage or {}))


def docker_storage_decision(settings, storage, plan, config_changed, storage_changed):
    return decision(dict(settings), dict(storage or {}), dict(plan), bool(config_changed), bool(storage_changed))


class FilterModule(object):
    def filters(self):
        return {
            'docker_storage_target': docker_storage_target,
            'docker_storage_decision': docker_storage_decision,
        }
