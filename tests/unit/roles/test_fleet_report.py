# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure parts of the fleet report (action plugin fleet_report, module_utils
_fleet_report for the records and _fleet_view for the view): host names as
directory names, escaping for Markdown and HTML, the shape check of a run,
limits, distributions and outliers. The recorded run is the whole
docker_cow_benchmark result of tests/unit/fixtures/cow (see its README). What
the plugin does with files is tested for real in
tests/integration/test_guards_report.py."""

from __future__ import annotations

import copy
import csv
import json
import os
from html.parser import HTMLParser

import pytest

from ansible_collections.hostprep.container_host.plugins.action import fleet_report as plugin
from ansible_collections.hostprep.container_host.plugins.module_utils import _cow_benchmark as cow
from ansible_collections.hostprep.container_host.plugins.module_utils import _fleet_report as report
from ansible_collections.hostprep.container_host.plugins.module_utils import _fleet_view as view

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

with open(os.path.join(ROOT, 'tests', 'unit', 'fixtures', 'cow', 'module_result_btrfs_20.10.24.json'), encoding='utf-8') as _handle:
    RECORDED = json.load(_handle)

HOSTILE_NAMES = ['..', '.', '../../etc/x', '/', '/etc/passwd', 'a/b', 'a_b', 'a%2Fb', 'a\x00b', '', '.hidden', 'a|b<script>',
                 'x' * 5000, 'x' * 5000 + 'y', '\u202eevil', '\ud800', 'caf\u00e9', 'a~b', '-rf', 'lab-btrfs', 'a b', '%']


def run_of(**changes):
    run = {'host': 'h1', 'timestamp': '20250101T000000Z', 'benchmark': copy.deepcopy(RECORDED), 'pmtu': [],
           'violations': [], 'limits': {}}
    run.update(changes)
    return run


# ---- names -------------------------------------------------------------------

@pytest.mark.parametrize('host', HOSTILE_NAMES)
def test_safe_name_is_one_plain_file_name(host):
    name = report.safe_name(host)
    assert '/' not in name and '\x00' not in name and not name.startswith('.')
    assert name not in ('.', '..') and len(name.encode()) <= report.NAME_MAX
    assert all(c.isascii() and (c.isalnum() or c in '_.-%~') for c in name)
    if host and '~' not in name:
        assert report.host_of(name) == host


def test_safe_name_is_collision_free():
    names = [report.safe_name(h) for h in HOSTILE_NAMES]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize('host, name', [('lab-btrfs', 'lab-btrfs'), ('web01.example.com', 'web01.example.com'),
                                        ('..', '%2E.'), ('../../etc/x', '%2E.%2F..%2Fetc%2Fx'), ('a/b', 'a%2Fb'),
                                        ('a%2Fb', 'a%252Fb'), ('a\x00b', 'a%00b'), ('caf\u00e9', 'caf%C3%A9')])
def test_safe_name_keeps_plain_names_and_escapes_the_rest(host, name):
    assert report.safe_name(host) == name


def test_a_long_name_keeps_a_head_and_a_hash():
    name = report.safe_name('/' * 300)
    assert name.startswith('%2F%2F') and '~' in name and len(name) <= report.NAME_MAX
    assert '%' not in name.split('~')[0][-2:]
    assert report.host_of(name).endswith('...')


@pytest.mark.parametrize('name, key', [('20250101T000000Z.json', ('20250101T000000Z', 0)),
                                       ('20250101T000000Z-2.json', ('20250101T000000Z', 2)),
                                       ('20250101T000000Z-10.json', ('20250101T000000Z', 10))])
def test_run_key_orders_serials_after_their_stamp(name, key):
    assert report.run_key(name) == key


@pytest.mark.parametrize('name', ['x.json', '../20250101T000000Z.json', '20250101T000000Z-0.json', '.tmp-abc',
                                  '20250101T000000Z.json.tmp', '2025-01-01.json'])
def test_run_re_refuses_other_names(name):
    assert not report.RUN_RE.match(name)


# ---- escaping ----------------------------------------------------------------

@pytest.mark.parametrize('text, expected', [
    ('a|b', 'a\\|b'), ('`rm -rf`', '\\`rm -rf\\`'), ('<script>alert(1)</script>', '&lt;script&gt;alert(1)&lt;/script&gt;'),
    ('[x](javascript:alert(1))', '\\[x\\](javascript:alert(1))'), ('![i](http://e/i.png)', '\\!\\[i\\](http://e/i.png)'),
    ('line\n# heading', 'line\\\\x0a\\# heading'), ('*b* _i_ ~~s~~ $m$', '\\*b\\* \\_i\\_ \\~\\~s\\~\\~ \\$m\\$'),
    ('a\\|b', 'a\\\\\\|b'), ('&lt;', '&amp;lt;'), ('lab-vfs', 'lab-vfs'), ('vfs on ext4', 'vfs on ext4'),
    ('\u202eevil', '\\\\u202eevil'), ('a\x00b', 'a\\\\x00b'), ('\ud800', '\\\\ud800'),
])
def test_md_escapes_markup(text, expected):
    assert report.md(text) == expected


@pytest.mark.parametrize('text, expected', [
    ('<script>x</script>', '&lt;script&gt;x&lt;/script&gt;'), ('" onload="x', '&quot; onload=&quot;x'),
    ("' x='", '&#x27; x=&#x27;'), ('a&b', 'a&amp;b'), ('a\nb', 'a\\x0ab'), ('\u2028', '\\u2028'), ('\ud800', '\\ud800'),
])
def test_esc_escapes_html_text_and_attributes(text, expected):
    assert report.esc(text) == expected


def test_escaped_text_encodes_as_utf8():
    for host in HOSTILE_NAMES:
        report.md(host).encode('utf-8')
        report.esc(host).encode('utf-8')


# ---- the shape of a run ------------------------------------------------------

def test_the_recorded_run_has_no_problems():
    assert report.problems_of(run_of()) == []
    assert report.problems_of(run_of(benchmark={}), stored=True) == []


def _set(run, path, value):
    node = run
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value


@pytest.mark.parametrize('path, value, fragment', [
    (('benchmark', 'scenarios', 'oneshot', 'seconds', 'median'), 'fast',
     'benchmark.scenarios.oneshot.seconds.median is the string "fast", not a finite number'),
    (('benchmark', 'scenarios', 'commit', 'fs_growth', 'max'), True, 'fs_growth.max is a boolean, not a finite number'),
    (('benchmark', 'scenarios', 'oneshot', 'seconds', 'median'), float('nan'), 'median is the number nan, not a finite number'),
    (('benchmark', 'scenarios', 'oneshot', 'seconds', 'median'), float('inf'), 'median is the number inf, not a finite number'),
    (('benchmark', 'scenarios', 'oneshot', 'seconds'), [1, 2], 'benchmark.scenarios.oneshot.seconds is an array, not an object'),
    (('benchmark', 'scenarios'), 'none', 'benchmark.scenarios is the string "none", not an object'),
    (('benchmark', 'memory', 'mem_available_drop_per_container'), '7M', 'mem_available_drop_per_container is the string "7M"'),
    (('benchmark', 'engine', 'driver'), 5, 'benchmark.engine.driver is the number 5, not a string'),
    (('benchmark', 'engine', 'driver_status'), {'Pool Name': ['x']}, 'driver_status.Pool Name is an array, not a string'),
    (('benchmark', 'filesystem'), 'xfs', 'benchmark.filesystem is the string "xfs", not an object'),
    (('benchmark',), KeyError, 'benchmark is missing'),
    (('benchmark',), None, 'benchmark is null, not an object'),
    (('host',), KeyError, 'host is missing'),
    (('host',), '', 'host is empty'),
    (('host',), ['a'], 'host is an array, not a string'),
    (('timestamp',), '../../x', 'timestamp is the string "../../x", not of the form YYYYMMDDTHHMMSSZ'),
    (('timestamp',), 20250101, 'timestamp is the number 20250101, not a string'),
    (('pmtu',), {'target': 'x'}, 'pmtu is an object, not an array'),
    (('pmtu',), ['10.0.0.1'], 'pmtu[0] is the string "10.0.0.1", not an object'),
    (('pmtu',), [{'target': 'x', 'path_mtu': '1500'}], 'pmtu[0].path_mtu is the string "1500", not a finite number'),
    (('pmtu',), [{'path_mtu': 1500}], 'pmtu[0].target is missing'),
    (('pmtu',), [{'target': 'x', 'reachable': 'yes'}], 'pmtu[0].reachable is the string "yes", not true or false'),
    (('violations',), 'none', 'violations is the string "none", not an array'),
    (('violations',), [{'msg': 5}], 'violations[0].msg is the number 5, not a string'),
    (('violations',), KeyError, 'violations is missing'),
])
def test_problems_of_names_the_field(path, value, fragment):
    run = run_of()
    _set(run, path, value)
    problems = report.problems_of(run)
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize('run, fragment', [
    ([1, 2], 'the record is an array, not an object'), ('x', 'the record is the string "x", not an object'),
    (None, 'the record is null, not an object'), ({}, 'host is missing'),
])
def test_problems_of_another_shape(run, fragment):
    assert fragment in report.problems_of(run)[0]


def test_a_long_value_is_cut_in_the_message():
    run = run_of(timestamp='9' * 500)
    assert report.problems_of(run) == ['timestamp is the string "%s"..., not of the form YYYYMMDDTHHMMSSZ' % ('9' * 40)]


@pytest.mark.parametrize('data, fragment', [
    (b'', 'empty'), (b'{"host": "a", "timest', 'not JSON, or cut short'), (b'\xff\xfe{}', 'not UTF-8'),
    (b'[' * 100000 + b']' * 100000, 'nested too deeply'),
])
def test_parse_run_says_why_not(data, fragment):
    with pytest.raises(report.Unusable, match=fragment):
        report.parse_run(data)


# ---- limits ------------------------------------------------------------------

@pytest.mark.parametrize('limits, fragment', [
    ({'max_start_seconds': 'nan'}, 'max_start_seconds'), ({'max_start_seconds': float('inf')}, 'finite'),
    ({'max_commit_seconds': -1}, 'not negative'), ({'max_disk_per_container': 'lots'}, 'not a size'),
    ('1M', 'limits is the string "1M", not an object'),
])
def test_parse_limits_refuses(limits, fragment):
    with pytest.raises(ValueError, match=fragment):
        report.parse_limits(limits)


def test_parse_limits():
    assert report.parse_limits({'max_start_seconds': '2', 'max_disk_per_commit': '1M', 'max_commit_seconds': None}) == {
        'max_start_seconds': 2.0, 'max_detached_start_seconds': None, 'max_commit_seconds': None,
        'max_disk_per_container': None, 'max_disk_per_commit': 1048576.0, 'max_memory_per_container': None}


@pytest.mark.parametrize('value', [1.5e308, -1.7e308, 1e19])
def test_a_figure_too_large_to_draw_is_a_problem(value):
    run = run_of()
    run['benchmark']['scenarios']['oneshot']['seconds']['median'] = value
    assert 'not a finite number within +-1e18' in report.problems_of(run)[0]


@pytest.mark.parametrize('values', [[1e18, 1], [-1e18, 5], [5e-324, 0], [1e18, -1e18], [0, 0]])
def test_charts_draw_every_figure_the_shape_check_lets_through(values):
    for metric in (report.METRICS[0], report.METRICS[3]):
        rows = [{'label': 'h%d' % i, 'backend': 'b', 'stat': {'median': v, 'min': v, 'max': v, 'first': v}}
                for i, v in enumerate(values)]
        distribution = view.distribution([(r['label'], r['stat']['median']) for r in rows])
        assert view.box_plot(metric, [('b', distribution)], {}).endswith('</svg>')
        runs = [run_of(benchmark={'scenarios': {'oneshot': {'seconds': r['stat'], 'fs_growth': r['stat']}}}) for r in rows]
        assert view.trend_chart('h', runs, metric).endswith('</svg>')
        view.sparkline('h', runs)


def cow_fixture(name: str) -> str:
    with open(os.path.join(ROOT, 'tests', 'unit', 'fixtures', 'cow', name), encoding='utf-8') as handle:
        return handle.read()


# ---- fleet report ----------------------------------------------------------------

def host_result(host, recorded, stamp, pmtu=None):
    return {'host': host, 'timestamp': stamp, 'benchmark': recorded, 'pmtu': pmtu or []}


def test_fleet_report_limits_and_charts(tmp_path):
    recorded = json.loads(cow_fixture('module_result_btrfs_20.10.24.json'))
    median = recorded['scenarios']['oneshot']['seconds']['median']
    out = report.record(str(tmp_path), {'result': host_result('a', recorded, '20250101T000000Z'),
                                        'limits': {'max_start_seconds': median / 2, 'max_disk_per_container': '1M',
                                                   'max_commit_seconds': None, 'max_disk_per_commit': 'None'}},
                        keep=0)
    assert len(out['violations']) == 1
    violation = out['violations'][0]
    assert violation['metric'] == 'start_seconds' and violation['value'] == median
    assert 'host a' in violation['msg'] and 'max_start_seconds' in violation['msg']
    assert '%.3f s' % median in violation['msg']
    vfs_like = json.loads(json.dumps(recorded))
    vfs_like['engine']['driver'] = 'vfs'
    vfs_like['filesystem']['fstype'] = 'ext4'
    pmtu = [{'target': '198.18.2.10', 'reachable': True, 'path_mtu': 1500, 'expected_mtu': 9000,
             'expected_mtu_ok': False, 'limiting_hop': '198.18.1.1'}]
    out = report.record(str(tmp_path), {'result': host_result('b', vfs_like, '20250101T000000Z', pmtu),
                                        'limits': {'max_disk_per_container': '64K'}}, keep=0)
    msgs = [v['msg'] for v in out['violations']]
    assert any('path MTU to 198.18.2.10 is 1500, below the limit expected_mtu=9000 (limited at 198.18.1.1)' in m
               for m in msgs)
    assert any('max_disk_per_container=64.0 KiB' in m for m in msgs)
    # a second run of host a, kept with keep=2 together with the first
    report.record(str(tmp_path), {'result': host_result('a', recorded, '20250102T000000Z'), 'limits': {}}, keep=2)
    report.record(str(tmp_path), {'result': host_result('a', recorded, '20250102T000000Z'), 'limits': {}}, keep=2)
    assert sorted(os.listdir(tmp_path / 'runs' / 'a')) == ['20250102T000000Z-1.json', '20250102T000000Z.json']
    paths = plugin.render(str(tmp_path), 'Test fleet')

    class Svgs(HTMLParser):
        def __init__(self):
            super().__init__()
            self.svgs = []

        def handle_starttag(self, tag, attrs):
            if tag == 'svg':
                self.svgs.append(dict(attrs))

    parser = Svgs()
    with open(paths['html'], encoding='utf-8') as handle:
        parser.feed(handle.read())
    charts = [s['data-metric'] for s in parser.svgs if s.get('class') == 'chart']
    assert sorted(charts) == sorted(paths['metrics'])
    assert 'start_seconds' in charts and 'data_per_container' in charts and 'memory_per_container' in charts
    assert {s['data-host'] for s in parser.svgs if s.get('class') == 'trend'} == {'a'}
    with open(paths['markdown'], encoding='utf-8') as handle:
        markdown = handle.read()
    assert '| b | vfs on ext4 |' in markdown and '| a | btrfs on btrfs |' in markdown
    assert 'MISMATCH' in markdown and '## Trend per host' in markdown


def test_fleet_report_refuses_a_bad_size_limit(tmp_path):
    recorded = json.loads(cow_fixture('module_result_btrfs_20.10.24.json'))
    with pytest.raises(ValueError, match='not a size'):
        report.record(str(tmp_path), {'result': host_result('a', recorded, 'x'),
                                      'limits': {'max_disk_per_container': 'lots'}}, keep=0)


def test_report_names_where_the_layers_live():
    """The fleet report's backend label, from DriverStatus recorded in the
    bookworm VM (loop-lvm and direct-lvm) and the pair the modern_engine
    scenario asserts for containerd's devmapper snapshotter on Engine 26."""
    storage = os.path.join(ROOT, 'tests', 'unit', 'fixtures', 'storage_info')

    def result(info_file, fstype='ext4', pairs=None):
        if info_file:
            with open(os.path.join(storage, info_file), encoding='utf-8') as handle:
                info = json.load(handle)['info']
            driver, pairs = info['Driver'], info['DriverStatus']
        else:
            driver = 'devmapper'
        engine = {'driver': driver, 'driver_status': cow.parse_driver_status(pairs)['raw']}
        return {'benchmark': {'engine': engine, 'filesystem': {'fstype': fstype}}}

    assert report.backend(result('devicemapper_loop.json')) == 'devicemapper loop-lvm (files on ext4)'
    assert report.backend(result('devicemapper_direct.json')) == 'devicemapper thin pool docker-thinpool'
    assert report.backend(result(None, 'xfs', [['driver-type', 'io.containerd.snapshotter.v1']])) == \
        'containerd devmapper snapshotter'
    assert report.backend({'benchmark': {'engine': {'driver': 'overlay2', 'driver_status': {}},
                                         'filesystem': {'fstype': 'xfs'}}}) == 'overlay2 on xfs'


# ---- the view at fleet scale -------------------------------------------------

def test_distribution_quartiles_and_outliers_named():
    values = [('h%d' % i, 1.0 + i / 100) for i in range(20)] + [('slow', 9.0), ('fast', -5.0)]
    d = view.distribution(values)
    assert d['n'] == 22 and d['min'] == -5.0 and d['max'] == 9.0
    assert d['q1'] < d['median'] < d['q3']
    assert [o['host'] for o in d['outliers']] == ['slow', 'fast'] and d['outliers'][1]['side'] == 'low'
    assert d['whisker_low'] == 1.0 and d['whisker_high'] == 1.19


@pytest.mark.parametrize('count', [1, 2, 3])
def test_a_small_group_names_no_outliers(count):
    assert view.distribution([('h%d' % i, 10.0 ** i) for i in range(count)])['outliers'] == []


def test_an_old_record_reads_the_same(tmp_path):
    """A run file as roles/validate/files/fleet_report.py wrote it (no engine version, no
    failed key, its backend and violations stored) is used, grouped without a version."""
    old = run_of(host='old', backend='btrfs on btrfs', limits={'max_start_seconds': 100.0})
    del old['benchmark']['engine']['version']
    (tmp_path / 'runs' / 'old').mkdir(parents=True)
    (tmp_path / 'runs' / 'old' / '20250101T000000Z.json').write_text(json.dumps(old, indent=2, sort_keys=True))
    out = plugin.render(str(tmp_path), 'Old')
    assert out['hosts'] == ['old'] and out['not_used'] == []
    summary = json.loads((tmp_path / 'report.json').read_text())
    assert [g['name'] for g in summary['groups']] == ['btrfs on btrfs']


def test_failed_missing_and_csv(tmp_path):
    recorded = copy.deepcopy(RECORDED)
    plugin.record(str(tmp_path), host_result('=cmd|x', recorded, '20250101T000000Z'), {'max_start_seconds': 0.001}, 0, '=cmd|x')
    failed = {'host': 'b', 'timestamp': '20250101T000000Z', 'benchmark': {}, 'pmtu': [], 'failed': 'engine gone'}
    assert plugin.record(str(tmp_path), failed, {}, 0, 'b')['used']
    out = plugin.render(str(tmp_path), 'T', ['=cmd|x', 'b', 'c'])
    assert out['missing'] == ['c'] and out['failed'] == {'b': 'engine gone'} and out['over_limit'] == ['=cmd|x']
    with open(out['csv'], encoding='utf-8') as handle:
        rows = {row['host']: row for row in csv.DictReader(handle)}
    assert set(rows) == {"'=cmd|x", 'b', 'c'}
    assert rows['b']['status'] == 'failed' and rows['c']['status'] == 'missing' and rows["'=cmd|x"]['status'] == 'violated'
    assert float(rows["'=cmd|x"]['start_seconds']) == RECORDED['scenarios']['oneshot']['seconds']['median']
    page = open(out['html'], encoding='utf-8').read()
    head = page.split('<h2 id="distributions">')[0]
    assert 'the benchmark failed: engine gone' in head and 'no result recorded' in head and '=cmd|x' in head


def test_the_page_escapes_and_shows_hidden_characters(tmp_path):
    host = '<img src=x>\u202e'
    plugin.record(str(tmp_path), host_result(host, copy.deepcopy(RECORDED), '20250101T000000Z'), {}, 0, host)
    page = open(plugin.render(str(tmp_path), '<b>t</b>')['html'], encoding='utf-8').read()
    assert '<img' not in page and '<b>t' not in page and '&lt;img src=x&gt;\\u202e' in page


@pytest.mark.parametrize('hosts', [10, 200])
def test_the_page_grows_by_a_table_row_per_host(tmp_path, hosts):
    recorded = copy.deepcopy(RECORDED)
    for i in range(hosts):
        plugin.record(str(tmp_path), host_result('h%03d' % i, recorded, '20250101T000000Z'), {}, 0, 'h%03d' % i)
    size = os.path.getsize(plugin.render(str(tmp_path), 'T')['html'])
    assert size < 40000 + 1500 * hosts
