# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet report's view, on the controller; private to this collection.

``build`` reads the records (``_fleet_report.load_runs``) and arranges them the
way a reader of a 1,000-host fleet needs them: a headline (hosts, hosts over a
limit, failed and missing hosts, backends and engines, when measured), the
violations first, then per backend and engine version the distribution of
every metric (min, quartiles, median, max; Tukey's fences name the outliers
against their own group), and last the per-host detail and trends. ``render``
writes report.md, report.html (through the caller's template function),
report.json, report.csv (one row per host) and report-runs.csv (every run,
the trends for other tools).
"""

from __future__ import annotations

import csv
import datetime
import io
import math
import os
import statistics
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils import _fleet_report as records
from ansible_collections.hostprep.container_host.plugins.module_utils._fleet_report import (
    METRICS, backend, engine_version, esc, figures, fmt, md)

PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22']
# Hosts whose full trend charts the page draws (the ones that need attention); the rest are in report-runs.csv.
MOST_TREND_HOSTS = 50
# Runs per host in the page's sparkline and the Markdown trend.
TREND_RUNS = 20
SUMMARY_COLUMNS = [('start_seconds', 'start s'), ('commit_seconds', 'commit s'),
                   ('detached_start_seconds', 'detached start s'), ('disk_per_container', 'disk/container'),
                   ('disk_per_commit', 'disk/commit'), ('disk_per_detached_container', 'disk/detached'),
                   ('memory_per_container', 'memory/container')]


def unit_of(key: str) -> str:
    return next(m['unit'] for m in METRICS if m['key'] == key)


def group_of(run: dict[str, t.Any]) -> str:
    """Backend and engine version, the unit a host is compared within."""
    version = engine_version(run)
    return '%s, Engine %s' % (backend(run), version) if version else backend(run)


# ---- statistics --------------------------------------------------------------

def distribution(values: list[tuple[str, float]]) -> dict[str, t.Any]:
    """min, q1, median, q3, max of (host, value) pairs, and the hosts beyond
    Tukey's fences (1.5 interquartile ranges outside the quartiles; none
    with fewer than 4 hosts), highest distance first."""
    numbers = sorted(value for dummy, value in values)
    if len(numbers) > 1:
        q1, median, q3 = statistics.quantiles(numbers, n=4, method='inclusive')
    else:
        q1 = median = q3 = numbers[0]
    low, high = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    outliers = [] if len(numbers) < 4 else [
        {'host': host, 'value': value, 'side': 'high' if value > high else 'low'}
        for host, value in values if value > high or value < low]
    outliers.sort(key=lambda o: -abs(o['value'] - median))
    inside = [v for v in numbers if low <= v <= high] or numbers
    return {'n': len(numbers), 'min': numbers[0], 'q1': q1, 'median': median, 'q3': q3, 'max': numbers[-1],
            'whisker_low': inside[0], 'whisker_high': inside[-1], 'outliers': outliers}


def groups(latest: dict[str, dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """One entry per backend and engine version: its hosts and, per metric,
    the distribution of the hosts' medians."""
    members: dict[str, list[str]] = {}
    for host, run in sorted(latest.items()):
        if figures(run):
            members.setdefault(group_of(run), []).append(host)
    out = []
    for name, hosts in sorted(members.items(), key=lambda item: (-len(item[1]), item[0])):
        metrics = {}
        for metric in METRICS:
            values = [(host, figures(latest[host])[metric['key']]['median']) for host in hosts
                      if metric['key'] in figures(latest[host])]
            if values:
                metrics[metric['key']] = distribution(values)
        out.append({'name': name, 'hosts': hosts, 'metrics': metrics})
    return out


# ---- what the reader sees first ----------------------------------------------

def status_of(run: dict[str, t.Any] | None) -> str:
    if run is None:
        return 'missing'
    if run.get('failed'):
        return 'failed'
    return 'violated' if run['violations'] else 'ok'


def build(root: str, expected: t.Iterable[str] = ()) -> dict[str, t.Any]:
    """Everything the report shows. expected: hosts of the play; one without
    any run file is named as missing."""
    runs, not_used = records.load_runs(root)
    latest = {host: host_runs[-1] for host, host_runs in runs.items()}
    # a host whose runs were all unusable is named under not_used, not as missing
    missing = sorted(set(expected) - set(latest) - {entry['host'] for entry in not_used})
    stamps = sorted(run['timestamp'] for run in latest.values())
    found_groups = groups(latest)
    colors = {g['name']: PALETTE[i % len(PALETTE)] for i, g in enumerate(found_groups)}
    attention = [host for host in sorted(latest) if status_of(latest[host]) != 'ok']
    attention += [host for host in sorted(latest) if host not in attention and outlier_metrics(found_groups, host)]
    return {'runs': runs, 'latest': latest, 'not_used': not_used, 'missing': missing, 'groups': found_groups,
            'colors': colors, 'backends': sorted({backend(run) for run in latest.values()}),
            'engines': sorted({engine_version(run) for run in latest.values()} - {''}),
            'first': stamps[0] if stamps else None, 'last': stamps[-1] if stamps else None,
            'violations': [v for host in sorted(latest) for v in latest[host]['violations']],
            'failed': [(host, latest[host]['failed']) for host in sorted(latest) if latest[host].get('failed')],
            'attention': attention}


def outlier_metrics(found_groups: list[dict[str, t.Any]], host: str) -> list[str]:
    return [key for g in found_groups if host in g['hosts'] for key, d in g['metrics'].items()
            if any(o['host'] == host for o in d['outliers'])]


def headline(data: dict[str, t.Any]) -> list[tuple[str, str]]:
    """(label, value) pairs, in the order the reader needs them."""
    over = sorted({v['host'] for v in data['violations']})
    counts: dict[str, int] = {}
    for run in data['latest'].values():
        counts[group_of(run)] = counts.get(group_of(run), 0) + 1
    return [('hosts', str(len(data['latest']) + len(data['missing']))),
            ('over a limit', str(len(over))),
            ('benchmark failed', str(len(data['failed']))),
            ('no result', str(len(data['missing']))),
            ('records not used', str(len(data['not_used']))),
            ('backends', '; '.join('%s (%d)' % item for item in sorted(counts.items(), key=lambda i: (-i[1], i[0])))),
            ('measured', '%s to %s' % (data['first'], data['last']) if data['first'] else 'never')]


# ---- SVG ---------------------------------------------------------------------

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


def axis(low: float, high: float, unit: str) -> tuple[float, float]:
    top = nice_max(high, unit)
    bottom = -nice_max(-low, unit) if low < 0 else 0.0
    return bottom, top if top > bottom else bottom + 1.0


def box_plot(metric: dict[str, t.Any], rows: list[tuple[str, dict[str, t.Any]]], colors: dict[str, str]) -> str:
    """One box per group (rows: (group, distribution)): box from q1 to q3,
    median line, whiskers to the last value inside the fences, outliers as
    dots whose tooltip names the host."""
    unit = metric['unit']
    label_w, plot_w, right_w, row_h, top = 330, 430, 110, 30, 30
    width, height = label_w + plot_w + right_w, top + row_h * len(rows) + 28
    low, high = axis(min(d['min'] for dummy, d in rows), max(d['max'] for dummy, d in rows), unit)

    def x(value: float) -> float:
        return label_w + (value - low) / (high - low) * plot_w

    head = (esc(metric['key']), width, height, width, height, esc(metric['title']))
    parts = ['<svg class="chart" data-metric="%s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
             'viewBox="0 0 %d %d" role="img" aria-label="%s">' % head,
             '<text x="0" y="16" font-size="14" font-weight="bold">%s</text>' % esc(metric['title'])]
    for tick in range(5):
        value = low + (high - low) * tick / 4
        tick_at = (x(value), top - 4, x(value), height - 24, x(value), height - 10, esc(fmt(value, unit)))
        parts.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" font-size="10" '
                     'text-anchor="middle" fill="#555">%s</text>' % tick_at)
    for index, (name, d) in enumerate(rows):
        parts.append(box_row(top + index * row_h, name, d, colors.get(name, '#777'), x, unit, label_w + plot_w))
    parts.append('</svg>')
    return '\n'.join(parts)


def box_row(y: int, name: str, d: dict[str, t.Any], color: str, x: t.Callable[[float], float], unit: str,
            right: int) -> str:
    mid = y + 11
    tip = '%s: %d hosts; min %s, q1 %s, median %s, q3 %s, max %s' % (
        name, d['n'], fmt(d['min'], unit), fmt(d['q1'], unit), fmt(d['median'], unit), fmt(d['q3'], unit),
        fmt(d['max'], unit))
    parts = ['<g><title>%s</title>' % esc(tip),
             '<text x="%d" y="%d" font-size="11" text-anchor="end">%s (%d)</text>' % (right - 438, mid + 4, esc(name), d['n']),
             '<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>' % (x(d['whisker_low']), mid, x(d['whisker_high']), mid),
             '<rect x="%.1f" y="%d" width="%.1f" height="18" fill="%s" fill-opacity="0.35" stroke="%s"/>'
             % (x(d['q1']), mid - 9, max(x(d['q3']) - x(d['q1']), 1), color, color),
             '<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#000" stroke-width="2"/>'
             % (x(d['median']), mid - 9, x(d['median']), mid + 9),
             '<text x="%d" y="%d" font-size="11">%s</text></g>' % (right + 6, mid + 4, esc(fmt(d['median'], unit)))]
    for outlier in d['outliers']:
        parts.append('<circle cx="%.1f" cy="%d" r="3" fill="#b00020"><title>%s: %s (outlier, %s)</title></circle>'
                     % (x(outlier['value']), mid, esc(outlier['host']), esc(fmt(outlier['value'], unit)),
                        outlier['side']))
    return ''.join(parts)


def points_of(runs: list[dict[str, t.Any]], key: str) -> list[tuple[str, float]]:
    points = [(run['timestamp'], (figures(run).get(key) or {}).get('median')) for run in runs]
    return [(stamp, value) for stamp, value in points if value is not None]


def sparkline(host: str, runs: list[dict[str, t.Any]], key: str = 'start_seconds') -> str:
    """A 90x18 line of one metric's median over the host's last runs ('' for fewer than 2)."""
    points = points_of(runs[-TREND_RUNS:], key)
    if len(points) < 2:
        return ''
    values = [v for dummy, v in points]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    coords = ' '.join('%.0f,%.0f' % (2 + i * 86 / (len(values) - 1), 16 - (v - lo) / span * 14) for i, v in enumerate(values))
    return ('<svg class="trend" data-host="%s" data-metric="%s" width="90" height="18" viewBox="0 0 90 18" '
            'xmlns="http://www.w3.org/2000/svg"><title>%s: %s to %s over %d runs</title><polyline fill="none" '
            'stroke="#1f77b4" points="%s"/></svg>' % (esc(host), key, esc(key), esc(fmt(values[0], unit_of(key))),
                                                      esc(fmt(values[-1], unit_of(key))), len(values), coords))


def trend_chart(host: str, runs: list[dict[str, t.Any]], metric: dict[str, t.Any]) -> str | None:
    points = points_of(runs[-TREND_RUNS:], metric['key'])
    if len(points) < 2:
        return None
    width, height, left, bottom = 360, 140, 70, 30
    lo, hi = axis(min(v for dummy, v in points), max(v for dummy, v in points), metric['unit'])
    step = (width - left - 20) / (len(points) - 1)
    coords = [(left + i * step, 20 + (hi - v) / (hi - lo) * (height - bottom - 20)) for i, (dummy, v) in enumerate(points)]
    parts = ['<svg class="trend" data-host="%s" data-metric="%s" xmlns="http://www.w3.org/2000/svg" width="%d" '
             'height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">'
             % (esc(host), esc(metric['key']), width, height, width, height, esc(metric['title'])),
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


# ---- rows shared by the page, the Markdown and the CSV -----------------------

def cell(stat_: dict[str, t.Any] | None, unit: str, first: bool = False) -> str:
    if not stat_:
        return 'n/a'
    text = fmt(stat_['median'], unit)
    if first and stat_.get('first') is not None and stat_.get('rest_median') is not None:
        text += ' (first %s)' % fmt(stat_['first'], unit)
    return text


def host_rows(data: dict[str, t.Any]) -> list[list[str]]:
    """host, backend, engine, run, the summary metrics, verdict: one row per host, missing ones included."""
    rows = []
    for host, run in sorted(data['latest'].items()):
        figs = figures(run)
        verdict = {'ok': 'OK', 'failed': 'failed: %s' % run.get('failed'),
                   'violated': '%d violated' % len(run['violations'])}[status_of(run)]
        rows.append([host, backend(run), engine_version(run) or 'n/a', run['timestamp']]
                    + [cell(figs.get(key), unit_of(key), first=key.endswith('seconds')) for key, dummy in SUMMARY_COLUMNS]
                    + [verdict])
    rows += [[host, 'n/a', 'n/a', 'n/a'] + ['n/a'] * len(SUMMARY_COLUMNS) + ['missing: no result recorded'] for host in data['missing']]
    return rows


def host_header() -> list[str]:
    return ['host', 'backend', 'engine', 'run'] + [name for dummy, name in SUMMARY_COLUMNS] + ['limits']


def group_rows(group: dict[str, t.Any]) -> list[list[str]]:
    """metric, n, min, q1, median, q3, max, outliers (how many, the farthest named)."""
    rows = []
    for metric in METRICS:
        d = group['metrics'].get(metric['key'])
        if d is None:
            continue
        unit = metric['unit']
        farthest = d['outliers'][0] if d['outliers'] else None
        named = '%d, farthest %s %s' % (len(d['outliers']), farthest['host'], fmt(farthest['value'], unit)) if farthest else 'none'
        rows.append([metric['title'], str(d['n'])] + [fmt(d[k], unit) for k in ('min', 'q1', 'median', 'q3', 'max')] + [named])
    return rows


def group_outliers(group: dict[str, t.Any]) -> list[list[str]]:
    """host, the metrics on which it stands out from its group (with value and group median), farthest first."""
    found: dict[str, list[str]] = {}
    for metric in METRICS:
        d = group['metrics'].get(metric['key'])
        for outlier in (d or {}).get('outliers', []):
            found.setdefault(outlier['host'], []).append('%s %s (median %s)' % (
                metric['key'], fmt(outlier['value'], metric['unit']), fmt(d['median'], metric['unit'])))
    return [[host, '; '.join(items)] for host, items in sorted(found.items(), key=lambda i: (-len(i[1]), i[0]))]


GROUP_HEADER = ['metric', 'hosts', 'min', 'q1', 'median', 'q3', 'max', 'outliers']
VIOLATION_HEADER = ['host', 'what', 'limit', 'measured']


def violation_rows(data: dict[str, t.Any]) -> list[list[str]]:
    """host, what, limit, measured: limits exceeded, failed benchmarks, hosts without a result."""
    titles = {m['key']: m['title'] for m in METRICS}
    return ([[v['host'], titles.get(v['metric'], v['metric']),
              '%s=%s' % (v['limit_name'], fmt(v['limit'], v['unit']) if v['limit'] is not None else 'n/a'),
              fmt(v['value'], v['unit']) if v['value'] is not None else 'no answer'] for v in data['violations']]
            + [[host, 'the benchmark failed: %s' % msg, 'n/a', 'failed'] for host, msg in data['failed']]
            + [[host, 'no result recorded (unreachable, or failed before it)', 'n/a', 'missing'] for host in data['missing']])


def pmtu_rows(data: dict[str, t.Any]) -> list[list[t.Any]]:
    return [[host, target['target'], target.get('path_mtu') if target.get('reachable') else 'unreachable',
             target.get('expected_mtu'), target.get('limiting_hop') or '', 'OK' if target.get('expected_mtu_ok') else 'MISMATCH']
            for host, run in sorted(data['latest'].items()) for target in run['pmtu']]


PMTU_HEADER = ['host', 'target', 'path MTU', 'expected', 'limiting hop', 'verdict']


def not_used_rows(root: str, entries: list[dict[str, t.Any]]) -> list[list[str]]:
    """(host, file relative to the report directory, what is wrong)."""
    return [[entry['host'] if entry['host'] is not None else 'n/a', os.path.relpath(entry['file'], root), entry['problem']]
            for entry in entries]


# ---- Markdown ----------------------------------------------------------------

def md_row(cells: t.Iterable[t.Any]) -> str:
    """One Markdown table row, every cell escaped."""
    return '| ' + ' | '.join(md(c) for c in cells) + ' |'


def md_table(header: list[str], rows: t.Iterable[t.Iterable[t.Any]]) -> list[str]:
    return [md_row(header), '|' + '---|' * len(header)] + [md_row(row) for row in rows] + ['']


def markdown(data: dict[str, t.Any], title: str, generated: str, root: str = '.') -> str:
    lines = ['# %s' % md(title), '', 'Generated %s. Medians per operation, the first operation in brackets '
             'where it differs.' % md(generated), '']
    lines += ['- **%s**: %s' % (md(label), md(value)) for label, value in headline(data)] + ['']
    if data['not_used']:
        lines += ['## Records not used', '', 'These run files were skipped; the figures below do not include them.', '']
        lines += md_table(['host', 'file', 'what is wrong'], not_used_rows(root, data['not_used']))
    lines += ['## Limits', '']
    rows = violation_rows(data)
    lines += md_table(VIOLATION_HEADER, rows) if rows else ['All measured values are within the limits given.', '']
    for group in data['groups']:
        lines += ['## %s: %d hosts' % (md(group['name']), len(group['hosts'])), '']
        lines += md_table(GROUP_HEADER, group_rows(group))
        if group_outliers(group):
            lines += ['Outliers of this group:', ''] + md_table(['host', 'stands out on'], group_outliers(group))
    if pmtu_rows(data):
        lines += ['## Storage network path MTU', ''] + md_table(PMTU_HEADER, pmtu_rows(data))
    lines += ['## Every host', ''] + md_table(host_header(), host_rows(data))
    trend_hosts = {host: runs for host, runs in data['runs'].items() if len(runs) > 1}
    if trend_hosts:
        lines += ['## Trend per host', '', 'The last %d runs of each host; report-runs.csv holds them all.' % TREND_RUNS, '']
        for host, runs in sorted(trend_hosts.items()):
            lines += ['### %s' % md(host), '']
            lines += md_table(['run', 'backend'] + [n for dummy, n in SUMMARY_COLUMNS], [
                [run['timestamp'], group_of(run)] + [cell(figures(run).get(key), unit_of(key)) for key, dummy in SUMMARY_COLUMNS]
                for run in runs[-TREND_RUNS:]])
    return '\n'.join(lines)


# ---- CSV and JSON ------------------------------------------------------------

def csv_safe(value: t.Any) -> t.Any:
    """A cell a spreadsheet shows as text, never runs as a formula (invisible characters shown, see visible)."""
    if not isinstance(value, str):
        return value
    value = records.visible(value)
    return "'" + value if value[:1] in ('=', '+', '-', '@') else value


def to_csv(header: list[str], rows: t.Iterable[list[t.Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator='\n')
    writer.writerow(header)
    writer.writerows([csv_safe(c) for c in row] for row in rows)
    return out.getvalue().encode('utf-8')


METRIC_KEYS = [m['key'] for m in METRICS]


def csv_row(host: str, run: dict[str, t.Any]) -> list[t.Any]:
    figs = figures(run)
    return ([host, run['timestamp'], backend(run), engine_version(run), status_of(run), len(run['violations']),
             run.get('failed') or ''] + [(figs.get(key) or {}).get('median', '') for key in METRIC_KEYS])


CSV_HEADER = ['host', 'timestamp', 'backend', 'engine_version', 'status', 'violations', 'failed'] + METRIC_KEYS


def summary_json(data: dict[str, t.Any], generated: str) -> dict[str, t.Any]:
    return {'generated': generated, 'hosts': sorted(data['latest']), 'backends': data['backends'],
            'engines': data['engines'], 'missing': data['missing'], 'failed': dict(data['failed']),
            'metrics': [m['key'] for m in METRICS if any(m['key'] in g['metrics'] for g in data['groups'])],
            'groups': [{'name': g['name'], 'hosts': g['hosts'], 'metrics': g['metrics']} for g in data['groups']],
            'latest': {host: {'timestamp': run['timestamp'], 'backend': backend(run), 'engine_version': engine_version(run),
                              'figures': figures(run), 'violations': run['violations'], 'failed': run.get('failed')}
                       for host, run in data['latest'].items()},
            'runs': {host: len(runs) for host, runs in data['runs'].items()},
            'not_used': [{k: entry[k] for k in ('host', 'file', 'problem')} for entry in data['not_used']]}


# ---- the page's context (the HTML itself is the action plugin's template) ----

def page_context(data: dict[str, t.Any], title: str, generated: str, root: str) -> dict[str, t.Any]:
    """What templates/fleet_report.html.j2 reads. Strings are plain text (the
    template escapes them); 'svg' values are markup built here with esc."""
    by_metric = []
    for metric in METRICS:
        rows = [(g['name'], g['metrics'][metric['key']]) for g in data['groups'] if metric['key'] in g['metrics']]
        if rows:
            by_metric.append({'key': metric['key'], 'title': metric['title'], 'svg': box_plot(metric, rows, data['colors'])})
    trends = []
    for host in data['attention'][:MOST_TREND_HOSTS]:
        charts = [trend_chart(host, data['runs'][host], metric) for metric in METRICS]
        if any(charts):
            trends.append({'host': host, 'runs': len(data['runs'][host]), 'svgs': [c for c in charts if c]})
    hosts = host_rows(data)
    for row in hosts:
        row.append(sparkline(row[0], data['runs'].get(row[0], [])))
    return {'title': title, 'generated': generated, 'headline': headline(data),
            'not_used': not_used_rows(root, data['not_used']), 'violation_header': VIOLATION_HEADER,
            'violations': violation_rows(data), 'group_header': GROUP_HEADER,
            'groups': [{'name': g['name'], 'hosts': len(g['hosts']), 'color': data['colors'][g['name']],
                        'rows': group_rows(g), 'outliers': group_outliers(g)} for g in data['groups']],
            'by_metric': by_metric, 'pmtu_header': PMTU_HEADER, 'pmtu': pmtu_rows(data),
            'host_header': host_header() + ['trend (start s)'], 'hosts': hosts, 'trends': trends,
            'trend_hosts': len(data['attention']), 'most_trend_hosts': MOST_TREND_HOSTS}


def render(root: str, title: str, html: t.Callable[[dict[str, t.Any]], str], expected: t.Iterable[str] = ()) -> dict[str, t.Any]:
    """Write report.md, report.html (html(context) gives the page), report.json,
    report.csv and report-runs.csv from the usable runs; the run files not
    used and the expected hosts without a result are named in all of them."""
    data = build(root, expected)
    generated = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')
    summary = summary_json(data, generated)
    page = html(page_context(data, title, generated, root))
    latest_rows = [csv_row(host, run) for host, run in sorted(data['latest'].items())]
    latest_rows += [[host, '', '', '', 'missing', '', ''] + [''] * len(METRIC_KEYS) for host in data['missing']]
    all_rows = [csv_row(host, run) for host, runs in sorted(data['runs'].items()) for run in runs]
    with records.Dir.top(root, create=True) as top:
        paths = {'markdown': top.write('report.md', markdown(data, title, generated, root).encode('utf-8')),
                 'html': top.write('report.html', page.encode('utf-8')),
                 'json': top.write('report.json', records.to_json_bytes(summary), mode=0o600),
                 'csv': top.write('report.csv', to_csv(CSV_HEADER, latest_rows), mode=0o600),
                 'runs_csv': top.write('report-runs.csv', to_csv(CSV_HEADER, all_rows), mode=0o600)}
    return dict(paths, hosts=summary['hosts'], metrics=summary['metrics'], missing=data['missing'],
                failed=summary['failed'], over_limit=sorted({v['host'] for v in data['violations']}),
                not_used=data['not_used'])
