# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sizes as people write them ("64K", "1.5G", "20GB") and as bytes.

Private to hostprep.container_host. Two conventions exist and both are kept
apart on purpose:

* operator input (``parse_size``): a K/M/G/T/P/E suffix, with or without
  ``i``/``B`` (``64K``, ``64KiB``, ``64k``), means powers of 1024, the way
  ``dd``, LVM and dockerd's own ``storage-opts`` read it. A number without a
  unit is in the ``default_unit`` the caller names: bytes, or MiB where LVM
  reads ``-L 100`` as 100 MiB;
* the engine's human output (``parse_engine_size``): ``docker info`` prints
  devicemapper counters with go-units' ``HumanSize``, decimal (``kB``, ``MB``,
  ``GB``, powers of 1000) with four significant digits.

``format_size`` writes bytes back in binary units for messages and reports.
"""

from __future__ import annotations

import re

from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError

_BINARY = {'': 1, 'k': 1024, 'm': 1024 ** 2, 'g': 1024 ** 3, 't': 1024 ** 4, 'p': 1024 ** 5, 'e': 1024 ** 6}
_DECIMAL = {'': 1, 'k': 1000, 'm': 1000 ** 2, 'g': 1000 ** 3, 't': 1000 ** 4, 'p': 1000 ** 5}
# The unit a number without one is in (parse_size's default_unit).
UNITS = {'B': 1, 'KiB': 1024, 'MiB': 1024 ** 2, 'GiB': 1024 ** 3}

_SIZE_RE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpPeE]?)([iI]?)([bB]?)\s*$')
_ENGINE_RE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)(i?)([bB])?\s*$')


def parse_size(value: object, default_unit: str = 'B') -> int:
    """Bytes from a size: ``"64K"`` -> 65536, ``"1.5G"`` -> 1610612736, ``4096`` -> 4096.

    Suffixes are binary (K = 1024); ``4096b`` is bytes. A number without a unit (``4096``, ``"100"``) is in
    ``default_unit``, one of UNITS: ``parse_size("100", default_unit='MiB')`` -> 104857600. Raises ValueError
    naming the value when it is not a size; a fraction of a byte is rounded down.
    """
    factor = UNITS[default_unit]
    if isinstance(value, bool):
        raise ValueError('%r is not a size' % (value,))
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError('%r is not a size: sizes are not negative' % (value,))
        return int(value * factor)
    match = _SIZE_RE.match(str(value))
    if not match:
        unit_note = '' if default_unit == 'B' else '; a number without a unit is in %s' % default_unit
        raise ValueError('%r is not a size (examples: 4096, 64K, 512M, 1.5G, 20GiB%s)' % (value, unit_note))
    number, unit, binary, byte = match.groups()
    if not (unit or binary or byte):
        return int(float(number) * factor)
    return int(float(number) * _BINARY[unit.lower()])


def size_option(name: str, value: object, default_unit: str = 'B') -> int:
    """The bytes of the module option NAME, which must be a size larger than 0; HostprepError naming the option
    and the value otherwise ("data_size 'lots' is not a size (examples: ...)")."""
    try:
        size = parse_size(value, default_unit)
    except ValueError as exc:
        raise HostprepError('%s %s' % (name, exc)) from exc
    if size <= 0:
        raise HostprepError('%s %r must be larger than 0' % (name, value))
    return size


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


def format_size(size_bytes: float | int | None, decimals: int | None = 1, unknown: str = 'n/a') -> str:
    """Bytes as a binary size, in the largest unit (up to TiB) under which the number is at least 1.

    ``decimals=1``: 65536 -> "64.0 KiB", -4096 -> "-4.0 KiB", 512 -> "512 B". ``decimals=None``: a whole number of
    the unit without decimals and two otherwise, as the LVM messages say it: 4194304 -> "4 MiB",
    1610612736 -> "1.50 GiB". None -> ``unknown``.
    """
    if size_bytes is None:
        return unknown
    sign = '-' if size_bytes < 0 else ''
    size = float(abs(size_bytes))
    unit = 'B'
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if size < 1024 or unit == 'TiB':
            break
        size /= 1024
    if unit == 'B':
        return '%s%d B' % (sign, size)
    if decimals is None:
        return ('%s%d %s' if size == int(size) else '%s%.2f %s') % (sign, size, unit)
    return '%s%.*f %s' % (sign, decimals, size, unit)
