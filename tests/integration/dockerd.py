# SPDX-License-Identifier: GPL-3.0-or-later
"""Old import name of tests/lab/dockerd.py (private engines, loop filesystems): use ``tests.lab.dockerd``."""

from ansible_collections.hostprep.container_host.plugins.module_utils._common import read_bytes  # noqa: F401  pylint: disable=unused-import
from tests.lab.dockerd import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
