# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmarks; run from the repository root as ``python -m bench.NAME`` (``make bench`` runs them all)."""
