# SPDX-License-Identifier: GPL-3.0-or-later
"""Old import name of tests/lab/hoststate.py (the host fingerprint): use ``tests.lab.hoststate``."""

from tests.lab.hoststate import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
