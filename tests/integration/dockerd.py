# SPDX-License-Identifier: GPL-3.0-or-later
"""Old import name of tests/lab/dockerd.py (private engines, loop filesystems): use ``tests.lab.dockerd``."""

from tests.lab.dockerd import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
