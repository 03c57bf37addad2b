# SPDX-License-Identifier: GPL-3.0-or-later
"""Sizes: operator input (binary units, a number without a unit in the caller's unit), the engine's decimal
output, the size options of the modules, and sizes written for messages."""

from __future__ import annotations

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError
from ansible_collections.hostprep.container_host.plugins.module_utils._sizes import (
    format_size,
    parse_engine_size,
    parse_size,
    size_option,
)

KIB, MIB, GIB, TIB = 1024, 1024 ** 2, 1024 ** 3, 1024 ** 4


@pytest.mark.parametrize('text, expected', [
    ('64K', 65536), ('64k', 65536), ('64KiB', 65536), ('64KB', 65536), ('1.5G', 1610612736), ('4096', 4096),
    (4096, 4096), ('1M', 1048576), (' 2 m ', 2097152), ('0', 0), ('4096b', 4096), ('7B', 7), ('4096ib', 4096),
    ('10Gi', 10 * GIB), ('2 GB', 2 * GIB), ('1.5TiB', int(1.5 * TIB)), ('1E', 1024 ** 6), (2.5, 2), ('0.5k', 512),
])
def test_parse_size_in_bytes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize('text, unit, expected', [
    # lvm_thinpool: LVM reads a bare -L in MiB and a bare -c in KiB; a unit, even b, wins
    ('100', 'MiB', 100 * MIB), (100, 'MiB', 100 * MIB), ('64', 'KiB', 64 * KIB), ('0.5', 'MiB', 512 * KIB),
    ('512K', 'KiB', 512 * KIB), ('512k', 'MiB', 512 * KIB), ('10G', 'MiB', 10 * GIB), ('4096b', 'MiB', 4096),
    ('100 MiB', 'KiB', 100 * MIB), ('3', 'GiB', 3 * GIB), ('3', 'B', 3),
])
def test_parse_size_without_a_unit_is_in_the_default_unit(text, unit, expected):
    assert parse_size(text, default_unit=unit) == expected


@pytest.mark.parametrize('text', ['lots', '', '64X', '-1', '-1G', '1.2.3G', True, -5, -0.5, 'ten', '10 G B', 'K'])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError, match='is not a size'):
        parse_size(text)


def test_parse_size_names_the_default_unit():
    with pytest.raises(ValueError, match='a number without a unit is in MiB'):
        parse_size('ten', default_unit='MiB')


@pytest.mark.parametrize('text, expected', [
    # go-units HumanSize (decimal, 4 significant digits) as docker info prints devicemapper counters
    ('11.8 MB', 11800000), ('2.147 GB', 2147000000), ('0 B', 0), ('41.94 kB', 41940), ('1.5 GiB', 1610612736),
    ('n/a', None), ('', None),
])
def test_parse_engine_size(text, expected):
    assert parse_engine_size(text) == expected


@pytest.mark.parametrize('value, unit, expected', [
    ('100G', 'B', 100 * GIB), ('2GiB', 'B', 2 * GIB), ('2gb', 'B', 2 * GIB), ('4096', 'B', 4096), (4096, 'B', 4096),
    ('1T', 'B', TIB), ('100', 'MiB', 100 * MIB),
])
def test_size_option(value, unit, expected):
    assert size_option('data_size', value, default_unit=unit) == expected


@pytest.mark.parametrize('value, message', [
    ('lots', "data_size 'lots' is not a size"), ('', "data_size '' is not a size"), ('-1G', "data_size '-1G' is not"),
    ('0', "data_size '0' must be larger than 0"), (0, 'data_size 0 must be larger than 0'),
    ('0.1b', "data_size '0.1b' must be larger than 0"), ('10X', "data_size '10X' is not a size"),
])
def test_size_option_refuses_naming_the_option(value, message):
    with pytest.raises(HostprepError) as info:
        size_option('data_size', value)
    assert message in str(info.value)


@pytest.mark.parametrize('size, text', [
    (65536, '64.0 KiB'), (-4096, '-4.0 KiB'), (512, '512 B'), (0, '0 B'), (1023, '1023 B'), (2004992, '1.9 MiB'),
    (3 * GIB, '3.0 GiB'), (5000 * TIB, '5000.0 TiB'), (None, 'n/a'),
])
def test_format_size(size, text):
    assert format_size(size) == text


@pytest.mark.parametrize('size, text', [
    # the LVM messages: whole units without decimals, others with two
    (4 * MIB, '4 MiB'), (int(1.5 * GIB), '1.50 GiB'), (512 * KIB, '512 KiB'), (123456789, '117.74 MiB'),
    (1023, '1023 B'), (TIB, '1 TiB'), (None, 'unknown'),
])
def test_format_size_whole_units(size, text):
    assert format_size(size, decimals=None, unknown='unknown') == text
