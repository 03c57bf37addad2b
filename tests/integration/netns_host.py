# SPDX-License-Identifier: GPL-3.0-or-later
"""Old import name of ``inventory_in`` (a namespace that plays the managed host): use ``tests.lab.netns_lab``."""

from tests.lab.netns_lab import inventory_in  # noqa: F401  pylint: disable=unused-import
