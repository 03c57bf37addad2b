# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sizes as people write them ("64K", "1.5G", "20GB") and as bytes.

Private to hostprep.container_host. Two conventions exist and both are kept
apart on purpose:

* operator input (``parse_size``): a bare K/M/G/T/P suffix, with or without
  ``i``/``B`` (``64K``, ``64KiB``, ``64k``), means powers of 1024, the way
  ``dd``, LVM and dockerd's own ``storage-opts`` read it;
* the engine's human output (``parse_engine_size``): ``docker info`` prints
  devicemapper counters with go-units' ``HumanSize``, decimal (``kB``, ``MB``,
  ``GB``, powers of 1000) with four significant digits.
"""

from __future__ import annotations

import re

_BINARY = {'': 1, 'k': 1024, 'm': 1024 ** 2, 'g': 1024 ** 3, 't': 1024 ** 4, 'p': 1024 ** 5}
_DECIMAL = {'': 1, 'k': 1000, 'm': 1000 ** 2, 'g': 1000 ** 3, 't': 1000 ** 4, 'p': 1000 ** 5}

_SIZE_RE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)([iI]?)([bB]?)\s*$')
_ENGINE_RE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)(i?)([bB])?\s*$')


def parse_size(value: object) -> int:
    """``"64K"`` -> 65536, ``"1.5G"`` -> 1610612736, ``4096`` -> 4096.

    Suffixes are binary (K = 1024). Raises ValueError naming the value when
    it is not a size; a fraction of a byte is rounded down.
    """
    if isinstance(value, bool):
        raise ValueError('%r is not a size' % (value,))
    if isinstance(value, int):
        if value < 0:
            raise ValueError('%r is not a size: sizes are not negative' % (value,))
        return value
    if isinstance(value, float):
        if value < 0:
            raise ValueError('%r is not a size: sizes are not negative' % (value,))
        return int(value)
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError('%r is not a size (examples: 4096, 64K, 512M, 1.5G, 20GiB)' % (value,))
    number, unit, dummy_i, dummy_b = match.groups()
    return int(float(number) * _BINARY[unit.lower()])


def parse_engine_size(value: str) -> int | None:
    """A size as ``docker info`` prints it (``"11.8 MB"``, ``"2.147 GB"``,
    ``"0 B"``); go-units HumanSize is decimal. ``"1.5 GiB"`` (BytesSize) is
    binary. None when the text is not a size."""
    match = _ENGINE_RE.match(value or '')
    if not match:
        return None
    number, unit, binary, dummy_b = match.groups()
    table = _BINARY if binary else _DECIMAL
    return int(round(float(number) * table[unit.lower()]))


def format_size(value: float | int | None) -> str:
    """Bytes as a short binary size: 65536 -> "64.0 KiB", -4096 -> "-4.0 KiB"."""
    if value is None:
        return 'n/a'
    sign = '-' if value < 0 else ''
    size = float(abs(value))
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if size < 1024 or unit == 'TiB':
            if unit == 'B':
                return '%s%d B' % (sign, size)
            return '%s%.1f %s' % (sign, size, unit)
        size /= 1024
    return '%s%.1f TiB' % (sign, size)  # pragma: no cover
