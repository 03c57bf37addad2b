# SPDX-License-Identifier: GPL-3.0-or-later
"""Demos and offline tooling; run from the repository root as ``python -m hack.NAME``."""
