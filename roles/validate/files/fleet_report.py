# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet report of role hostprep.container_host.validate, run on the controller.

``record``: read one host's result (JSON on stdin: {"result": ..., "limits":
{...}}), compare it with the limits, store it as
``DIR/runs/HOST/TIMESTAMP.json`` (keeping the last KEEP runs of the host) and
print the violations as JSON.

``render``: read the newest run of every host (and every run, for the trend)
and write ``DIR/report.md``, ``DIR/report.html`` (one self-contained page,
inline SVG charts, no script, nothing fetched) and ``DIR/report.json``.

Only the Python standard library; runs with the controller's interpreter.
"""

from __future__ import annotations

import argparse
import datetime
import html
import importlib.util
import json
import math
import os
import re
import sys
import tempfile
import typing as t

HOST_RE = re.compile(r'[^A-Za-z0-9_.-]')

# metric key -> (title, unit, scenario, field, statistic)
METRICS: list[dict[str, t.Any]] = [
    {'key': 'start_seconds', 'title': 'Start a container and run it to exit (oneshot)', 'unit': 's',
     'path': ('oneshot', 'seconds')},
    {'key': 'commit_seconds', 'title': 'Commit a container to an image', 'unit': 's',
     'path': ('commit', 'seconds')},
    {'key': 'detached_start_seconds', 'title': 'Start a detached container from a commit', 'unit': 's',
     'path': ('run_from_commit', 'seconds')},
    {'key': 'disk_per_container', 'title': 'Disk used per oneshot container (df after sync)', 'unit': 'B',
     'path': ('oneshot', 'fs_growth')},
    {'key': 'disk_per_commit', 'title': 'Disk used per commit (df after sync)', 'unit': 'B',
     'path': ('commit', 'fs_growth')},
    {'key': 'disk_per_detached_container', 'title': 'Disk used per detached container (df after sync)', 'unit': 'B',
     'path': ('run_from_commit', 'fs_growth')},
    {'key': 'data_per_container', 'title': 'Backend data per oneshot container (engine counters)', 'unit': 'B',
     'path': ('oneshot', 'data_growth')},
    {'key': 'metadata_per_container', 'title': 'Backend metadata per oneshot container (engine counters)', 'unit': 'B',
     'path': ('oneshot', 'metadata_growth')},
    {'key': 'memory_per_container', 'title': 'Memory per detached container (MemAvailable drop)', 'unit': 'B',
     'path': ('memory', 'mem_available_drop_per_container')},
]

# limit name -> (metric keys it bounds, unit)
LIMITS: dict[str, tuple[tuple[str, ...], str]] = {
    'max_start_seconds': (('start_seconds',), 's'),
    'max_detached_start_seconds': (('detached_start_seconds',), 's'),
    'max_commit_seconds': (('commit_seconds',), 's'),
    'max_disk_per_container': (('disk_per_container', 'disk_per_detached_container'), 'B'),
    'max_disk_per_commit': (('disk_per_commit',), 'B'),
    'max_memory_per_container': (('memory_per_container',), 'B'),
}

PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22']


def _load_sizes() -> t.Any:
    """The collection's own size helpers (plugins/module_utils/_sizes.py,
    standard library only), loaded from the collection this role belongs to."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'plugins', 'module_utils',
                        '_sizes.py')
    spec = importlib.util.spec_from_file_location('hostprep_sizes', path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_SIZES = _load_sizes()


def to_number(value: t.Any, unit: str) -> float | None:
    """A limit as given by the operator: None/'' -> None; sizes may carry a
    binary suffix (64K, 1.5M)."""
    if value is None or str(value).strip().lower() in ('', 'none', 'null'):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value)
    if unit == 'B':
        return float(_SIZES.parse_size(text))
    return float(text)


# ---- figures from one run ----------------------------------------------------

def stat_of(result: dict[str, t.Any], path: tuple[str, str]) -> dict[str, t.Any] | None:
    bench = result.get('benchmark') or {}
    first, second = path
    if first == 'memory':
        memory = bench.get('memory') or {}
        value = memory.get(second)
        return None if value is None else {'median': value, 'min': value, 'max': value, 'first': None}
    scenario = (bench.get('scenarios') or {}).get(first) or {}
    return scenario.get(second)


def figures(result: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    out = {}
    for metric in METRICS:
        stat = stat_of(result, metric['path'])
        if stat and stat.get('median') is not None:
            out[metric['key']] = stat
    return out


def backend(result: dict[str, t.Any]) -> str:
    """The storage under the engine, as an operator names it: the driver on
    the data root's filesystem, except where the layers live elsewhere
    (devicemapper's thin pool or loop files, containerd's snapshotter)."""
    bench = result.get('benchmark') or {}
    engine = bench.get('engine') or {}
    driver = engine.get('driver') or '?'
    fstype = (bench.get('filesystem') or {}).get('fstype') or '?'
    status = engine.get('driver_status') or {}
    if driver == 'devicemapper' and status.get('Data loop file'):
        return 'devicemapper loop-lvm (files on %s)' % fstype
    if driver == 'devicemapper' and status.get('Pool Name'):
        return 'devicemapper thin pool %s' % status['Pool Name']
    if status.get('driver-type') == 'io.containerd.snapshotter.v1':
        return 'containerd %s snapshotter' % driver
    return '%s on %s' % (driver, fstype)


def violations(result: dict[str, t.Any], limits: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """Every limit a measured median exceeds, and path MTUs below the
    expected one."""
    found = []
    figs = figures(result)
    host = result.get('host')
    for name, (keys, unit) in LIMITS.items():
        limit = to_number(limits.get(name), unit)
        if limit is None:
            continue
        for key in keys:
            stat = figs.get(key)
            if stat is None:
                continue
            value = stat['median']
            if value > limit:
                metric = next(m for m in METRICS if m['key'] == key)
                found.append({'host': host, 'metric': key, 'limit_name': name, 'limit': limit, 'value': value,
                              'unit': unit, 'msg': 'host %s: %s (median) is %s, above the limit %s=%s'
                              % (host, metric['title'].lower(), fmt(value, unit), name, fmt(limit, unit))})
    expected = limits.get('expected_mtu')
    for target in result.get('pmtu') or []:
        if target.get('expected_mtu_ok'):
            continue
        if not target.get('reachable'):
            msg = 'host %s: path MTU to %s: target does not answer (expected %s)' % (host, target.get('target'),
                                                                                     target.get('expected_mtu', expected))
        else:
            msg = 'host %s: path MTU to %s is %s, below the limit expected_mtu=%s%s' % (
                host, target.get('target'), target.get('path_mtu'), target.get('expected_mtu', expected),
                ' (limited at %s)' % target['limiting_hop'] if target.get('limiting_hop') else '')
        found.append({'host': host, 'metric': 'path_mtu:%s' % target.get('target'), 'limit_name': 'expected_mtu',
                      'limit': target.get('expected_mtu', expected), 'value': target.get('path_mtu'), 'unit': 'bytes',
                      'msg': msg})
    return found


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return 'n/a'
    if unit == 's':
        return '%.3f s' % value if abs(value) < 10 else '%.1f s' % value
    if unit == 'B':
        return _SIZES.format_size(value)
    return '%s %s' % (value, unit)


# ---- storage -----------------------------------------------------------------

def host_dir(root: str, host: str) -> str:
    return os.path.join(root, 'runs', HOST_RE.sub('_', host))


def write_json(path: str, data: t.Any) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', dir=directory)
    with os.fdopen(fd, 'w', encoding='utf-8') as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)


def record(root: str, payload: dict[str, t.Any], keep: int) -> dict[str, t.Any]:
    result = payload['result']
    limits = payload.get('limits') or {}
    result['backend'] = backend(result)
    result['violations'] = violations(result, limits)
    result['limits'] = limits
    stamp = result.get('timestamp') or datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
    result['timestamp'] = stamp
    directory = host_dir(root, result['host'])
    name = '%s.json' % stamp
    serial = 1
    while os.path.exists(os.path.join(directory, name)):
        name = '%s-%d.json' % (stamp, serial)
        serial += 1
    write_json(os.path.join(directory, name), result)
    removed = []
    if keep and keep > 0:
        runs = sorted(name for name in os.listdir(directory) if name.endswith('.json'))
        for name in runs[:-keep]:
            os.unlink(os.path.join(directory, name))
            removed.append(name)
    return {'violations': result['violations'], 'file': os.path.join(directory, name),
            'pruned': removed, 'backend': result['backend']}


def load_runs(root: str) -> dict[str, list[dict[str, t.Any]]]:
    """host -> runs, oldest first."""
    out: dict[str, list[dict[str, t.Any]]] = {}
    base = os.path.join(root, 'runs')
    if not os.path.isdir(base):
        return out
    for entry in sorted(os.listdir(base)):
        directory = os.path.join(base, entry)
        if not os.path.isdir(directory):
            continue
        runs = []
        for name in sorted(os.listdir(directory)):
            if not name.endswith('.json'):
                continue
            with open(os.path.join(directory, name), encoding='utf-8') as handle:
                runs.append(json.load(handle))
        if runs:
            out[runs[-1].get('host', entry)] = runs
    return out


# ---- SVG charts --------------------------------------------------------------

def nice_max(value: float, unit: str = '') -> float:
    """The round axis end at or above value; for bytes a round number of
    KiB, MiB or GiB so the ticks read well."""
    if value <= 0:
        return 1.0
    if unit == 'B':
        scale = 1
        while value / scale >= 1024 and scale < 1024 ** 3:
            scale *= 1024
        return nice_max(value / scale) * scale
    exp = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10 ** exp
        if top >= value:
            return top
    return 10 ** (exp + 1)  # pragma: no cover


def esc(text: t.Any) -> str:
    return html.escape(str(text), quote=True)


def bar_chart(metric: dict[str, t.Any], rows: list[dict[str, t.Any]], colors: dict[str, str]) -> str:
    """Horizontal bars, one per host: the median, a whisker from min to max,
    a dot for the first operation. rows: {label, backend, stat}."""
    unit = metric['unit']
    label_w, plot_w, right_w, row_h, top = 260, 420, 150, 28, 34
    width = label_w + plot_w + right_w
    height = top + row_h * len(rows) + 30
    hi = max(max((r['stat'].get('max') if r['stat'].get('max') is not None else r['stat']['median']),
                 r['stat']['median'], r['stat'].get('first') or 0) for r in rows)
    lo = min(min(r['stat'].get('min') if r['stat'].get('min') is not None else 0, r['stat']['median']) for r in rows)
    top_value = nice_max(hi, unit)
    low_value = -nice_max(-lo, unit) if lo < 0 else 0.0
    span = top_value - low_value

    def x(value: float) -> float:
        return label_w + (value - low_value) / span * plot_w

    parts = ['<svg class="chart" data-metric="%s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
             'viewBox="0 0 %d %d" role="img" aria-label="%s">' % (esc(metric['key']), width, height, width, height, esc(metric['title'])),
             '<title>%s</title>' % esc(metric['title']),
             '<text x="0" y="16" font-size="14" font-weight="bold">%s</text>' % esc(metric['title'])]
    for tick in range(5):
        value = low_value + span * tick / 4
        parts.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (x(value), top - 6, x(value), height - 26))
        parts.append('<text x="%.1f" y="%d" font-size="10" text-anchor="middle" fill="#555">%s</text>'
                     % (x(value), height - 12, esc(fmt(value, unit))))
    for index, row in enumerate(rows):
        y = top + index * row_h
        stat = row['stat']
        color = colors.get(row['backend'], '#777')
        parts.append('<text x="%d" y="%d" font-size="12" text-anchor="end">%s</text>'
                     % (label_w - 8, y + 12, esc(row['label'])))
        parts.append('<text x="%d" y="%d" font-size="10" text-anchor="end" fill="#555">%s</text>'
                     % (label_w - 8, y + 23, esc(row['backend'])))
        start, end = sorted((x(0), x(stat['median'])))
        parts.append('<rect x="%.1f" y="%d" width="%.1f" height="16" fill="%s"><title>%s: median %s</title></rect>'
                     % (start, y + 2, max(end - start, 1), color, esc(row['label']), esc(fmt(stat['median'], unit))))
        if stat.get('min') is not None and stat.get('max') is not None and stat['max'] != stat['min']:
            whisker = (x(stat['min']), y + 10, x(stat['max']), y + 10, esc(fmt(stat['min'], unit)), esc(fmt(stat['max'], unit)))
            parts.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#222" stroke-width="1.5">'
                         '<title>min %s, max %s</title></line>' % whisker)
            for end_value in (stat['min'], stat['max']):
                parts.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#222" stroke-width="1.5"/>'
                             % (x(end_value), y + 5, x(end_value), y + 15))
        if stat.get('first') is not None:
            parts.append('<circle cx="%.1f" cy="%d" r="3.5" fill="#fff" stroke="#222"><title>first: %s</title></circle>'
                         % (x(stat['first']), y + 10, esc(fmt(stat['first'], unit))))
        parts.append('<text x="%d" y="%d" font-size="12">%s</text>' % (label_w + plot_w + 8, y + 14, esc(fmt(stat['median'], unit))))
    parts.append('</svg>')
    return '\n'.join(parts)


def trend_chart(host: str, runs: list[dict[str, t.Any]], metric: dict[str, t.Any]) -> str | None:
    points = [(run.get('timestamp'), (figures(run).get(metric['key']) or {}).get('median')) for run in runs]
    points = [(stamp, value) for stamp, value in points if value is not None]
    if len(points) < 2:
        return None
    width, height, left, bottom = 360, 140, 70, 30
    hi = nice_max(max(v for dummy, v in points), metric['unit'])
    lo = min(0.0, min(v for dummy, v in points))
    step = (width - left - 20) / (len(points) - 1)
    coords = [(left + i * step, 20 + (hi - v) / (hi - lo) * (height - bottom - 20)) for i, (dummy, v) in enumerate(points)]
    head = (esc(host), esc(metric['key']), width, height, width, height, esc(metric['title']))
    parts = ['<svg class="trend" data-host="%s" data-metric="%s" xmlns="http://www.w3.org/2000/svg" width="%d" '
             'height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">' % head,
             '<text x="0" y="12" font-size="11" font-weight="bold">%s</text>' % esc(metric['title']),
             '<line x1="%d" y1="20" x2="%d" y2="%d" stroke="#999"/>' % (left, left, height - bottom),
             '<text x="%d" y="24" font-size="10" text-anchor="end">%s</text>' % (left - 4, esc(fmt(hi, metric['unit']))),
             '<text x="%d" y="%d" font-size="10" text-anchor="end">%s</text>' % (left - 4, height - bottom,
                                                                                 esc(fmt(lo, metric['unit']))),
             '<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="%s"/>'
             % ' '.join('%.1f,%.1f' % c for c in coords)]
    for (stamp, value), (cx, cy) in zip(points, coords):
        parts.append('<circle cx="%.1f" cy="%.1f" r="3" fill="#1f77b4"><title>%s: %s</title></circle>'
                     % (cx, cy, esc(stamp), esc(fmt(value, metric['unit']))))
    parts.append('<text x="%d" y="%d" font-size="9">%s</text>' % (left, height - 8, esc(points[0][0])))
    parts.append('<text x="%d" y="%d" font-size="9" text-anchor="end">%s</text>' % (width - 4, height - 8, esc(points[-1][0])))
    parts.append('</svg>')
    return '\n'.join(parts)


# ---- the report --------------------------------------------------------------

def build(root: str) -> dict[str, t.Any]:
    runs = load_runs(root)
    latest = {host: host_runs[-1] for host, host_runs in runs.items()}
    backends = sorted({backend(run) for run in latest.values()})
    metrics = []
    for metric in METRICS:
        rows = []
        for host in sorted(latest):
            stat = figures(latest[host]).get(metric['key'])
            if stat is not None:
                rows.append({'label': host, 'backend': backend(latest[host]), 'stat': stat})
        if rows:
            metrics.append({'metric': metric, 'rows': rows})
    return {'runs': runs, 'latest': latest, 'backends': backends, 'metrics': metrics}


SUMMARY_COLUMNS = [('start_seconds', 'start s'), ('commit_seconds', 'commit s'),
                   ('detached_start_seconds', 'detached start s'), ('disk_per_container', 'disk/container'),
                   ('disk_per_commit', 'disk/commit'), ('disk_per_detached_container', 'disk/detached'),
                   ('memory_per_container', 'memory/container')]


def cell(stat: dict[str, t.Any] | None, unit: str, first: bool = False) -> str:
    if not stat:
        return 'n/a'
    text = fmt(stat['median'], unit)
    if first and stat.get('first') is not None and stat.get('rest_median') is not None:
        text += ' (first %s)' % fmt(stat['first'], unit)
    return text


def unit_of(key: str) -> str:
    return next(m['unit'] for m in METRICS if m['key'] == key)


def markdown(data: dict[str, t.Any], title: str, generated: str) -> str:
    lines = ['# %s' % title, '', 'Generated %s from %d host(s); medians per operation, the first operation in '
             'brackets where it differs.' % (generated, len(data['latest'])), '']
    header = ['host', 'backend', 'run'] + [name for dummy, name in SUMMARY_COLUMNS] + ['limits']
    lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for host, run in sorted(data['latest'].items()):
        figs = figures(run)
        cells = [host, backend(run), run.get('timestamp', '')]
        cells += [cell(figs.get(key), unit_of(key), first=key.endswith('seconds')) for key, dummy in SUMMARY_COLUMNS]
        cells.append('OK' if not run.get('violations') else '%d violated' % len(run['violations']))
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', '## Per metric', '']
    for entry in data['metrics']:
        metric = entry['metric']
        lines += ['### %s' % metric['title'], '', '| host | backend | min | median | max | first | rest median |',
                  '|---|---|---|---|---|---|---|']
        for row in entry['rows']:
            stat, unit = row['stat'], metric['unit']
            lines.append('| %s | %s | %s | %s | %s | %s | %s |' % (
                row['label'], row['backend'], fmt(stat.get('min'), unit), fmt(stat['median'], unit),
                fmt(stat.get('max'), unit), fmt(stat.get('first'), unit), fmt(stat.get('rest_median'), unit)))
        lines.append('')
    pmtu_rows = [(host, target) for host, run in sorted(data['latest'].items()) for target in run.get('pmtu') or []]
    if pmtu_rows:
        lines += ['## Storage network path MTU', '', '| host | target | path MTU | expected | limiting hop | verdict |',
                  '|---|---|---|---|---|---|']
        for host, target in pmtu_rows:
            lines.append('| %s | %s | %s | %s | %s | %s |' % (
                host, target.get('target'), target.get('path_mtu') if target.get('reachable') else 'unreachable',
                target.get('expected_mtu'), target.get('limiting_hop') or '', 'OK' if target.get('expected_mtu_ok')
                else 'MISMATCH'))
        lines.append('')
    violated = [v for run in data['latest'].values() for v in run.get('violations') or []]
    lines += ['## Limits', '']
    lines += ['- %s' % v['msg'] for v in violated] or ['All measured values are within the limits given.']
    lines.append('')
    trend_hosts = {host: runs for host, runs in data['runs'].items() if len(runs) > 1}
    if trend_hosts:
        lines += ['## Trend per host', '']
        for host, runs in sorted(trend_hosts.items()):
            lines += ['### %s' % host, '', '| run | backend | ' + ' | '.join(n for dummy, n in SUMMARY_COLUMNS) + ' |',
                      '|---|---|' + '---|' * len(SUMMARY_COLUMNS)]
            for run in runs:
                figs = figures(run)
                lines.append('| %s | %s | %s |' % (run.get('timestamp'), backend(run), ' | '.join(
                    cell(figs.get(key), unit_of(key)) for key, dummy in SUMMARY_COLUMNS)))
            lines.append('')
    return '\n'.join(lines)


CSS = '''body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}h3{font-size:15px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}.bad{color:#b00020;font-weight:bold}.ok{color:#1b7f2a}.legend span{display:inline-block;
margin-right:16px;font-size:13px}.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
.note{color:#555;font-size:13px}figure{margin:16px 0}.trends{display:flex;flex-wrap:wrap;gap:12px}'''


def html_page(data: dict[str, t.Any], title: str, generated: str) -> str:
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(data['backends'])}
    out = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<title>%s</title><style>%s</style></head><body>' % (esc(title), CSS),
           '<h1>%s</h1>' % esc(title),
           '<p class="note">Generated %s from %d host(s). Bars: median per operation; whisker: min to max; '
           'circle: the first operation.</p>' % (esc(generated), len(data['latest']))]
    out.append('<p class="legend">%s</p>' % ''.join('<span><i style="background:%s"></i>%s</span>' % (color, esc(name)) for name, color in colors.items()))
    header = ['host', 'backend', 'run'] + [name for dummy, name in SUMMARY_COLUMNS] + ['limits']
    out.append('<h2>Summary</h2><table><tr>%s</tr>' % ''.join('<th>%s</th>' % esc(h) for h in header))
    for host, run in sorted(data['latest'].items()):
        figs = figures(run)
        cells = [esc(host), esc(backend(run)), esc(run.get('timestamp', ''))]
        cells += [esc(cell(figs.get(key), unit_of(key), first=key.endswith('seconds'))) for key, dummy in SUMMARY_COLUMNS]
        cells.append('<span class="ok">OK</span>' if not run.get('violations')
                     else '<span class="bad">%d violated</span>' % len(run['violations']))
        out.append('<tr>%s</tr>' % ''.join('<td>%s</td>' % c for c in cells))
    out.append('</table>')
    violated = [v for run in data['latest'].values() for v in run.get('violations') or []]
    if violated:
        out.append('<h2>Limits violated</h2><ul>%s</ul>' % ''.join('<li class="bad">%s</li>' % esc(v['msg'])
                                                                   for v in violated))
    out.append('<h2>Per operation, hosts and backends side by side</h2>')
    for entry in data['metrics']:
        out.append('<figure>%s</figure>' % bar_chart(entry['metric'], entry['rows'], colors))
    pmtu_rows = [(host, target) for host, run in sorted(data['latest'].items()) for target in run.get('pmtu') or []]
    if pmtu_rows:
        out.append('<h2>Storage network path MTU</h2><table><tr><th>host</th><th>target</th><th>path MTU</th>'
                   '<th>expected</th><th>limiting hop</th><th>verdict</th></tr>')
        for host, target in pmtu_rows:
            verdict = ('<span class="ok">OK</span>' if target.get('expected_mtu_ok') else '<span class="bad">MISMATCH</span>')
            out.append('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                esc(host), esc(target.get('target')),
                esc(target.get('path_mtu') if target.get('reachable') else 'unreachable'),
                esc(target.get('expected_mtu')), esc(target.get('limiting_hop') or ''), verdict))
        out.append('</table>')
    trend_hosts = {host: runs for host, runs in data['runs'].items() if len(runs) > 1}
    if trend_hosts:
        out.append('<h2>Trend per host</h2>')
        for host, runs in sorted(trend_hosts.items()):
            charts = [trend_chart(host, runs, metric) for metric in METRICS]
            out.append('<h3>%s (%d runs)</h3><div class="trends">%s</div>' % (esc(host), len(runs), ''.join(c for c in charts if c)))
    out.append('</body></html>')
    return '\n'.join(out) + '\n'


def render(root: str, title: str) -> dict[str, t.Any]:
    data = build(root)
    generated = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')
    md_path = os.path.join(root, 'report.md')
    html_path = os.path.join(root, 'report.html')
    os.makedirs(root, exist_ok=True)
    for path, text in ((md_path, markdown(data, title, generated)), (html_path, html_page(data, title, generated))):
        with open(path + '.tmp', 'w', encoding='utf-8') as handle:
            handle.write(text)
        os.replace(path + '.tmp', path)
    summary = {'generated': generated, 'hosts': sorted(data['latest']), 'backends': data['backends'],
               'metrics': [entry['metric']['key'] for entry in data['metrics']],
               'latest': {host: {'timestamp': run.get('timestamp'), 'backend': backend(run), 'figures': figures(run),
                                 'violations': run.get('violations') or []} for host, run in data['latest'].items()},
               'runs': {host: len(runs) for host, runs in data['runs'].items()}}
    write_json(os.path.join(root, 'report.json'), summary)
    return {'markdown': md_path, 'html': html_path, 'json': os.path.join(root, 'report.json'),
            'hosts': summary['hosts'], 'metrics': summary['metrics']}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    rec = sub.add_parser('record', help='store one host result (JSON on stdin), print violations')
    rec.add_argument('--dir', required=True)
    rec.add_argument('--keep', type=int, default=0)
    ren = sub.add_parser('render', help='write report.md, report.html and report.json')
    ren.add_argument('--dir', required=True)
    ren.add_argument('--title', default='Container host validation')
    args = parser.parse_args(argv)
    root = os.path.abspath(args.dir)
    try:
        if args.command == 'record':
            out = record(root, json.load(sys.stdin), args.keep)
        else:
            out = render(root, args.title)
    except (ValueError, OSError, KeyError) as exc:
        print(json.dumps({'error': str(exc)}))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
