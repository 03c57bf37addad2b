# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""LVM commands and reports, private to hostprep.container_host.

Every LVM binary runs as an argument list through ``_common.run`` (C locale,
exit status and stderr checked). Reports are read from
``pvs/vgs/lvs --reportformat json --units b --nosuffix``: sizes arrive as
whole bytes, percentages as numbers; the parsers are pure functions fed the
JSON the tools print.

Exported for other modules (docker_storage_info, the benchmark):

* ``lvm_report(run, kind, args) -> list[dict]``
* ``thinpool_usage(run, vg, lv) -> dict``

``run`` is either an AnsibleModule (commands then go through
``_common.run``) or a callable ``run(argv, check_rc=True) -> (rc, out, err)``.
"""

from __future__ import annotations

import json
import os
import re
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    HostprepError,
    run as common_run,
)

Runner = t.Callable[..., t.Tuple[int, str, str]]

SBIN_DIRS = ['/sbin', '/usr/sbin', '/usr/local/sbin']

# The fields each report asks for unless the caller passes its own ``-o``.
REPORT_FIELDS: dict[str, list[str]] = {
    'pv': ['pv_name', 'vg_name', 'pv_uuid', 'pv_size', 'pv_free', 'dev_size', 'pe_start',
           'pv_major', 'pv_minor', 'pv_attr'],
    'vg': ['vg_name', 'vg_uuid', 'vg_attr', 'vg_size', 'vg_free', 'vg_extent_size',
           'vg_extent_count', 'vg_free_count', 'pv_count', 'lv_count', 'vg_profile'],
    'lv': ['vg_name', 'lv_name', 'lv_full_name', 'lv_path', 'lv_dm_path', 'lv_attr', 'segtype',
           'lv_size', 'lv_metadata_size', 'pool_lv', 'data_lv', 'metadata_lv', 'data_percent',
           'metadata_percent', 'chunk_size', 'lv_profile', 'seg_monitor', 'lv_active',
           'lv_device_open', 'lv_role', 'thin_count', 'zero'],
}
REPORT_BINARY = {'pv': 'pvs', 'vg': 'vgs', 'lv': 'lvs'}

# Fields that --units b --nosuffix turns into whole numbers of bytes (or counts).
_INT_FIELDS = frozenset((
    'pv_size', 'pv_free', 'pv_used', 'dev_size', 'pe_start', 'pv_major', 'pv_minor',
    'pv_pe_count', 'pv_pe_alloc_count', 'pv_mda_size', 'pv_mda_free', 'pv_mda_count',
    'vg_size', 'vg_free', 'vg_extent_size', 'vg_extent_count', 'vg_free_count', 'pv_count',
    'lv_count', 'snap_count', 'vg_mda_size', 'vg_mda_free', 'vg_seqno', 'max_lv', 'max_pv',
    'lv_size', 'lv_metadata_size', 'chunk_size', 'seg_size', 'seg_count', 'thin_count',
    'lv_kernel_major', 'lv_kernel_minor', 'lv_read_ahead', 'seg_start', 'stripes', 'stripe_size',
    'region_size', 'origin_size', 'seg_size_pe',
))
_FLOAT_FIELDS = frozenset(('data_percent', 'metadata_percent', 'snap_percent', 'copy_percent',
                           'sync_percent'))


def _convert(key: str, value: t.Any) -> t.Any:
    if not isinstance(value, str):
        return value
    if key in _INT_FIELDS or key in _FLOAT_FIELDS:
        if value == '':
            return None  # LVM prints nothing where a value does not apply
        try:
            return int(value) if key in _INT_FIELDS else float(value)
        except ValueError:
            return value
    return value


def parse_report(text: str, kind: str) -> list[dict[str, t.Any]]:
    """Rows of one ``pvs/vgs/lvs --reportformat json`` report, with sizes as
    ints, percentages as floats and empty numbers as None."""
    if kind not in REPORT_BINARY:
        raise ValueError('kind must be pv, vg or lv, not %r' % kind)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise HostprepError('%s printed no JSON report (%s): %r'
                            % (REPORT_BINARY[kind], exc, (text or '').strip()[:200]))
    rows: list[dict[str, t.Any]] = []
    for report in data.get('report') or []:
        for row in report.get(kind) or []:
            rows.append({key: _convert(key, value) for key, value in row.items()})
    return rows


def as_runner(run: t.Any) -> Runner:
    """A callable ``(argv, check_rc=True) -> (rc, out, err)`` from an
    AnsibleModule or such a callable. Bare LVM tool names are looked up in
    the sbin directories for modules (Ansible's PATH may lack them)."""
    if not hasattr(run, 'run_command'):
        return run
    module = run

    def _run(args: list[str], check_rc: bool = True) -> tuple[int, str, str]:
        args = list(args)
        if args and not os.path.isabs(args[0]):
            args[0] = module.get_bin_path(args[0], required=True, opt_dirs=SBIN_DIRS)
        return common_run(module, args, check_rc=check_rc)
    return _run


def report_command(kind: str, args: list[str] | None = None) -> list[str]:
    """The argument list of one report: default fields unless args has -o."""
    args = list(args or [])
    cmd = [REPORT_BINARY[kind], '--reportformat', 'json', '--units', 'b', '--nosuffix']
    if '-o' not in args and '--options' not in args:
        cmd += ['-o', ','.join(REPORT_FIELDS[kind])]
    return cmd + args


def lvm_report(run: t.Any, kind: str, args: list[str] | None = None) -> list[dict[str, t.Any]]:
    """Run ``pvs``, ``vgs`` or ``lvs`` (kind pv, vg, lv) as a JSON report in
    bytes and return its rows. args are extra arguments: ``-o FIELDS`` to
    choose fields (REPORT_FIELDS[kind] otherwise), ``-a``, ``--select ...``,
    names of PVs, VGs or VG/LV. A failing command raises HostprepError."""
    dummy_rc, out, dummy_err = as_runner(run)(report_command(kind, args))
    return parse_report(out, kind)


# ---- names ------------------------------------------------------------------

NAME_CHARS_RE = re.compile(r'^[a-zA-Z0-9+_.-]+$')
NAME_MAX = 127
# lvm2 lib/misc/lvm-string.c: apply_lvname_restrictions().
RESERVED_PREFIXES = ('snapshot', 'pvmove')
RESERVED_SUBSTRINGS = ('_cdata', '_cmeta', '_corig', '_cpool', '_cvol', '_iorig', '_mimage',
                       '_mlog', '_pmspare', '_rimage', '_rmeta', '_tdata', '_tmeta', '_vdata',
                       '_vorigin', '_wcorig')


def name_problem(name: str, what: str = 'LV') -> str | None:
    """Why LVM refuses name as a VG or LV name, or None when it is fine."""
    if not name:
        return 'it is empty'
    if len(name) > NAME_MAX:
        return 'it is longer than %d characters' % NAME_MAX
    if not NAME_CHARS_RE.match(name):
        bad = sorted(set(ch for ch in name if not re.match(r'[a-zA-Z0-9+_.-]', ch)))
        return 'it contains %s; LVM allows only a-z A-Z 0-9 + _ . -' % ', '.join(repr(ch) for ch in bad)
    if name.startswith('-'):
        return "it starts with '-'"
    if name in ('.', '..'):
        return "'.' and '..' are reserved"
    for prefix in RESERVED_PREFIXES:
        if name.startswith(prefix):
            return "names starting with '%s' are reserved by LVM" % prefix
    if what == 'LV':
        for part in RESERVED_SUBSTRINGS:
            if part in name:
                return "'%s' is reserved by LVM for hidden sub-volumes" % part
    return None


def dm_name(vg: str, lv: str) -> str:
    """Device-mapper name of VG/LV: dashes doubled, joined by one dash."""
    return '%s-%s' % (vg.replace('-', '--'), lv.replace('-', '--'))


def dm_path(vg: str, lv: str) -> str:
    return '/dev/mapper/' + dm_name(vg, lv)


# ---- thin pools -------------------------------------------------------------

def find_lv(rows: list[dict[str, t.Any]], vg: str, lv: str) -> dict[str, t.Any] | None:
    for row in rows:
        if row.get('vg_name') == vg and row.get('lv_name') == lv:
            return row
    return None


def is_thin_pool(row: dict[str, t.Any] | None) -> bool:
    return bool(row) and row.get('segtype') == 'thin-pool'


def lv_is_open(row: dict[str, t.Any]) -> bool:
    """lv_device_open is 'open' when something holds the device; the sixth
    lv_attr character is 'o' then too."""
    attr = row.get('lv_attr') or ''
    return row.get('lv_device_open') == 'open' or (len(attr) > 5 and attr[5] == 'o')


def usage_from_row(row: dict[str, t.Any]) -> dict[str, t.Any]:
    return {
        'data_percent': row.get('data_percent'),
        'metadata_percent': row.get('metadata_percent'),
        'size': row.get('lv_size'),
        'device': row.get('lv_dm_path') or dm_path(row['vg_name'], row['lv_name']),
    }


def thinpool_usage(run: t.Any, vg: str, lv: str) -> dict[str, t.Any]:
    """{data_percent, metadata_percent, size (bytes), device (/dev/mapper/...)}
    of the thin pool VG/LV. Percentages are None while the pool is inactive.
    Raises HostprepError when VG/LV is not a thin pool."""
    for what, name in (('VG', vg), ('LV', lv)):
        problem = name_problem(name, what)
        if problem:
            raise HostprepError('%s name %r is invalid: %s' % (what, name, problem))
    rows = lvm_report(run, 'lv', ['--select', 'vg_name=%s && lv_name=%s' % (vg, lv)])
    row = find_lv(rows, vg, lv)
    if row is None:
        raise HostprepError('thin pool %s/%s does not exist' % (vg, lv))
    if not is_thin_pool(row):
        raise HostprepError('%s/%s is not a thin pool (segment type %s)' % (vg, lv, row.get('segtype')))
    return usage_from_row(row)
