# SPDX-License-Identifier: GPL-3.0-or-later
"""Guards of the validate role's fleet report against bad input from hosts.

Every case of the table runs the fleet_report action plugin's record (the
result as JSON text, for the cases that are not even JSON) and render for real,
in a real temporary directory: a parent holding the report
directory, bait files outside it (``outside/``, ``etc/x``) and, for some
cases, links, FIFOs and broken files planted inside the report directory.
A valid run of another host is recorded first: the report must still come
out for it. The fingerprint (tests/lab/hoststate.py) of everything
outside the report directory must be the same before and after, and no
output may carry a traceback.

The last test runs the validate role itself: one host (a real private
dockerd) answers through an interpreter that turns a median into a string,
two hosts carry hostile inventory names, and the report directory holds a
truncated run and a link planted at report.html.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.lab import hoststate
from conftest import ROOT, require
from tests.lab.dockerd import loop_filesystem
from test_validate_role import PLAYBOOK, private_engines

from ansible_collections.hostprep.container_host.plugins.action import fleet_report as plugin
from ansible_collections.hostprep.container_host.plugins.module_utils import _fleet_report as records

with open(os.path.join(ROOT, 'tests', 'unit', 'fixtures', 'cow', 'module_result_btrfs_20.10.24.json'), encoding='utf-8') as _handle:
    RECORDED = json.load(_handle)
STAMP = '20250101T000000Z'
VICTIM = b'precious data outside the report directory\n'


def payload(host: str = 'h1', stamp: str = STAMP, change: tuple | None = None, limits: dict | None = None,
            result: object = None) -> bytes:
    """The role's stdin for record: the recorded benchmark, with one value
    at a path replaced (change=(path, value); value KeyError deletes it)."""
    if result is None:
        result = {'host': host, 'timestamp': stamp, 'benchmark': copy.deepcopy(RECORDED), 'pmtu': []}
        if change:
            path, value = change
            node = result
            for key in path[:-1]:
                node = node[key]
            if value is KeyError:
                del node[path[-1]]
            else:
                node[path[-1]] = value
    return json.dumps({'result': result, 'limits': limits or {'max_start_seconds': 100}}).encode('utf-8')


MEDIAN = ('benchmark', 'scenarios', 'oneshot', 'seconds', 'median')


def fleet_report(args: list[str], stdin: bytes = b'') -> tuple[int, dict]:
    """The action plugin's record (the result as JSON text, as it may be given) or render:
    rc 1 and {'error': msg} when it fails, as the earlier script printed."""
    parser = argparse.ArgumentParser()
    parser.add_argument('command')
    parser.add_argument('--dir')
    parser.add_argument('--keep', type=int, default=0)
    parser.add_argument('--host')
    parser.add_argument('--title', default='Container host validation')
    opts = parser.parse_args(args)
    root = os.path.abspath(opts.dir)
    if opts.command == 'record':
        out = plugin.guarded(records.record_input, root, stdin, opts.keep, opts.host)
    else:
        out = plugin.guarded(plugin.render, root, opts.title)
    json.dumps(out)
    if out.pop('failed'):
        return 1, {'error': out['msg']}
    return 0, out


# ---- what is planted in the report directory before the case runs -------------

def plant_runs_link(report: Path, outside: Path) -> None:
    (report / 'runs').rename(report / 'runs.moved')
    (report / 'runs').symlink_to(outside / 'dir')


def plant_host_link(report: Path, outside: Path) -> None:
    (report / 'runs' / 'h1').symlink_to(outside / 'dir')


def plant_run_link(report: Path, outside: Path) -> None:
    (report / 'runs' / 'h1').mkdir()
    (report / 'runs' / 'h1' / '20200101T000000Z.json').symlink_to(outside / 'victim')


def plant_fifo(report: Path, outside: Path) -> None:
    (report / 'runs' / 'h2').mkdir()
    os.mkfifo(report / 'runs' / 'h2' / '20200101T000000Z.json')


def plant_truncated(report: Path, outside: Path) -> None:
    (report / 'runs' / 'h2').mkdir()
    (report / 'runs' / 'h2' / '20200101T000000Z.json').write_bytes(payload('h2')[:300])


def plant_hijack(report: Path, outside: Path) -> None:
    """A valid run of host h1 lying in host h2's directory."""
    (report / 'runs' / 'h2').mkdir()
    run = dict(json.loads(payload('h1'))['result'], violations=[], limits={}, backend='x')
    (report / 'runs' / 'h2' / '20200101T000000Z.json').write_text(json.dumps(run))


def plant_huge(report: Path, outside: Path) -> None:
    (report / 'runs' / 'h2').mkdir()
    with open(report / 'runs' / 'h2' / '20200101T000000Z.json', 'wb') as handle:
        handle.truncate(17 * 1024 * 1024)


def plant_report_links(report: Path, outside: Path) -> None:
    """Links at the report's files and at the temporary names earlier versions used."""
    for name in ('report.html', 'report.md.tmp', 'report.html.tmp', 'report.json'):
        (report / name).symlink_to(outside / 'victim')


PLANTS = {name[len('plant_'):]: func for name, func in globals().items() if name.startswith('plant_')}

# id, plant, --host, stdin of record (None: no record), record rc, in record's output, in report.md
CASES = [
    ('host-dotdot-path', None, '../../etc/x', payload('../../etc/x'), 0,
     '/runs/%2E.%2F..%2Fetc%2Fx/20250101T000000Z.json', '| ../../etc/x | btrfs on btrfs |'),
    ('host-dotdot', None, '..', payload('..'), 0, '/runs/%2E./20250101T000000Z.json', '| .. | btrfs on btrfs |'),
    ('host-slash', None, '/', payload('/'), 0, '/runs/%2F/20250101T000000Z.json', '| / | btrfs on btrfs |'),
    ('host-nul', None, None, payload('a\x00b'), 0, '/runs/a%00b/20250101T000000Z.json', '| a\\\\x00b | btrfs on btrfs |'),
    ('host-very-long', None, 'h' * 5000, payload('h' * 5000), 0, '~', '| %s | btrfs on btrfs |' % ('h' * 5000)),
    ('host-html', None, 'a|b<script>alert(1)</script>', payload('a|b<script>alert(1)</script>'), 0,
     '/runs/a%7Cb%3Cscript%3Ealert%281%29%3C%2Fscript%3E/', '| a\\|b&lt;script&gt;alert(1)&lt;/script&gt; | btrfs on btrfs |'),
    ('host-markdown', None, 'evil\n# Owned [x](http://e) `c`', payload('evil\n# Owned [x](http://e) `c`'), 0,
     '/runs/evil%0A%23%20Owned%20%5Bx%5D%28http%3A%2F%2Fe%29%20%60c%60/',
     '| evil\\\\x0a\\# Owned \\[x\\](http://e) \\`c\\` |'),
    ('host-bidi', None, 'ok\u202etxt.exe', payload('ok\u202etxt.exe'), 0, '/runs/ok%E2%80%AEtxt.exe/', '| ok\\\\u202etxt.exe |'),
    ('host-lone-surrogate', None, None, payload('\ud800'), 0, '/runs/%ED%A0%80/', '| \\\\ud800 | btrfs on btrfs |'),
    ('host-mismatch', None, 'h1', payload('h9'), 0, 'host is the string "h9", but the result was sent for host "h1"',
     'but the file lies in the directory of host'),
    ('timestamp-path', None, 'h1', payload(stamp='../../../outside/victim'), 0,
     'timestamp is the string "../../../outside/victim", not of the form YYYYMMDDTHHMMSSZ', 'timestamp is the string'),
    ('string-for-number', None, 'h1', payload(change=(MEDIAN, 'fast')), 0,
     'benchmark.scenarios.oneshot.seconds.median is the string "fast", not a finite number',
     'benchmark.scenarios.oneshot.seconds.median is the string "fast"'),
    ('nan-for-number', None, 'h1', payload(change=(MEDIAN, float('nan'))), 0, 'median is the number nan, not a finite number',
     'median is the number nan'),
    ('huge-number', None, 'h1', payload(change=(MEDIAN, 1.5e308)), 0, 'not a finite number within +-1e18', 'within +-1e18'),
    ('missing-key', None, 'h1', payload(change=(('benchmark',), KeyError)), 0, 'benchmark is missing', 'benchmark is missing'),
    ('pmtu-string-mtu', None, 'h1', payload(change=(('pmtu',), [{'target': '10.0.0.1', 'path_mtu': '9000'}])), 0,
     'pmtu[0].path_mtu is the string "9000", not a finite number', 'pmtu\\[0\\].path\\_mtu is the string "9000"'),
    ('other-shape-array', None, 'h1', payload(result=[1, 2, 3]), 0, 'the record is an array, not an object',
     'the record is an array, not an object'),
    ('other-shape-object', None, 'h1', payload(result={'foo': 1}), 0, 'host is missing; timestamp is missing; benchmark is missing',
     'host is missing'),
    ('invalid-json', None, 'h1', b'{"result": {"host": "h1", "timestamp": "2025', 0, 'the result is not JSON, or cut short',
     'not JSON, or cut short'),
    ('bad-limit-nan', None, 'h1', payload(limits={'max_start_seconds': 'nan'}), 1,
     'limit max_start_seconds: \'nan\' is not a limit: limits are finite and not negative', None),
    ('input-too-large', None, 'h1', b' ' * (17 * 1024 * 1024), 1, 'the result of host h1 is larger than 16.0 MiB; nothing stored', None),
    ('runs-link', 'runs_link', 'h1', payload('h1'), 1, '/runs is a symbolic link or not a directory; the report does not follow it',
     '| n/a | runs | '),
    ('host-dir-link', 'host_link', 'h1', payload('h1'), 1, '/runs/h1 is a symbolic link or not a directory', '| h1 | runs/h1 |'),
    ('run-file-link', 'run_link', 'h1', payload('h1', '20250102T000000Z'), 0, '"used": true',
     '| h1 | runs/h1/20200101T000000Z.json | a symbolic link, not followed |'),
    ('run-file-fifo', 'fifo', None, None, None, None, '| h2 | runs/h2/20200101T000000Z.json | not a regular file |'),
    ('truncated-file', 'truncated', None, None, None, None, '| h2 | runs/h2/20200101T000000Z.json | not JSON, or cut short'),
    ('run-of-another-host', 'hijack', None, None, None, None,
     'host is the string "h1", but the file lies in the directory of host "h2"'),
    ('file-too-large', 'huge', None, None, None, None, 'larger than 16.0 MiB, the most a run record may have'),
    ('report-links', 'report_links', None, None, None, None, '| good-host | btrfs on btrfs |'),
]


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.external += [value for key, value in attrs if key in ('src', 'href', 'onload', 'onerror')]


def md_path(path: Path) -> str:
    """A path as report.md writes it (Markdown escapes of _ and ~)."""
    return str(path).replace('_', '\\_').replace('~', '\\~')


def outside_state(parent: Path, report: Path) -> dict:
    inside = str(report)
    return {path: entry for path, entry in hoststate.files(str(parent)).items()
            if path != inside and not path.startswith(inside + '/')}


@pytest.mark.parametrize('plant, host, stdin, record_rc, record_fragment, report_fragment',
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input(tmp_path, plant, host, stdin, record_rc, record_fragment, report_fragment):
    parent = tmp_path / 'parent'
    report, outside = parent / 'report', parent / 'outside'
    (outside / 'dir').mkdir(parents=True)
    (outside / 'victim').write_bytes(VICTIM)
    (outside / 'dir' / '20200101T000000Z.json').write_bytes(VICTIM)
    (parent / 'etc').mkdir()
    (parent / 'etc' / 'x').write_bytes(VICTIM)
    rc, out = fleet_report(['record', '--dir', str(report), '--host', 'good-host'], payload('good-host'))
    assert rc == 0 and out['used'], out
    if plant:
        PLANTS[plant](report, outside)
    before = outside_state(parent, report)

    if stdin is not None:
        args = ['record', '--dir', str(report), '--keep', '1'] + (['--host', host] if host is not None else [])
        rc, out = fleet_report(args, stdin)
        text = out.get('msg') or out.get('error') or json.dumps(out, ensure_ascii=False)
        assert rc == record_rc, out
        assert record_fragment in text, text
        if rc == 0 and not out['used']:
            assert out['violations'] == [] and out['file'].startswith(str(report / 'runs') + '/')
    rc, rendered = fleet_report(['render', '--dir', str(report), '--title', 'Fleet <b>|x|</b>'])
    assert rc == 0, rendered

    after = outside_state(parent, report)
    hoststate.assert_unchanged(before, after, 'outside the report directory')
    assert (outside / 'victim').read_bytes() == VICTIM
    markdown = (report / 'report.md').read_text(encoding='utf-8')
    assert markdown.startswith('# Fleet &lt;b&gt;\\|x\\|&lt;/b&gt;\n')
    if report_fragment:
        assert report_fragment in markdown, markdown[:3000]
    if plant != 'runs_link':
        assert '| good-host | btrfs on btrfs |' in markdown
    if rendered['not_used']:
        head = markdown.split('| host | backend |')[0]
        assert '## Records not used' in head, 'the records not used come first'
        assert all(entry['file'].startswith(str(report) + '/') for entry in rendered['not_used'])
    for name in ('report.md', 'report.html', 'report.json'):
        assert stat.S_ISREG(os.lstat(report / name).st_mode), name
    page = Page()
    page.feed((report / 'report.html').read_text(encoding='utf-8'))
    assert 'script' not in page.tags and page.external == []
    assert not [name for name in os.listdir(report) if name.startswith('.tmp-')]


def test_keep_prunes_only_the_hosts_own_runs(tmp_path):
    """Pruning with --keep removes the host's oldest regular run files in its
    own directory, never the run just written, a planted link or its target."""
    report, outside = tmp_path / 'report', tmp_path / 'outside'
    outside.mkdir()
    (outside / 'victim').write_bytes(VICTIM)
    for stamp in ('20250101T000000Z', '20250102T000000Z'):
        assert fleet_report(['record', '--dir', str(report), '--host', 'h1'], payload('h1', stamp))[0] == 0
    (report / 'runs' / 'h1' / '20200101T000000Z.json').symlink_to(outside / 'victim')
    assert fleet_report(['record', '--dir', str(report), '--host', '..', '--keep', '1'], payload('..'))[0] == 0
    rc, out = fleet_report(['record', '--dir', str(report), '--host', 'h1', '--keep', '2'], payload('h1', '20240101T000000Z'))
    assert rc == 0 and out['pruned'] == ['20250101T000000Z.json']
    assert sorted(os.listdir(report / 'runs' / 'h1')) == ['20200101T000000Z.json', '20240101T000000Z.json', '20250102T000000Z.json']
    assert (outside / 'victim').read_bytes() == VICTIM
    rc, out = fleet_report(['record', '--dir', str(report), '--host', 'h1', '--keep', '2'], payload('h1', '20250102T000000Z'))
    assert rc == 0 and out['file'].endswith('/20250102T000000Z-1.json') and out['pruned'] == ['20240101T000000Z.json']


# ---- the role ----------------------------------------------------------------

SHIM = '''#!{python}
"""A host whose Python answers the copy-on-write benchmark with a string
where the oneshot median belongs (as an older or broken module would)."""
import json, subprocess, sys
proc = subprocess.run([{python!r}] + sys.argv[1:], stdout=subprocess.PIPE, check=False)
try:
    result = json.loads(proc.stdout)
    result['scenarios']['oneshot']['seconds']['median'] = 'fast'
    sys.stdout.write(json.dumps(result))
except (ValueError, KeyError, TypeError):
    sys.stdout.buffer.write(proc.stdout)
sys.exit(proc.returncode)
'''


def test_role_reports_a_malformed_host_and_the_rest_of_the_fleet(ansible, lab, tmp_path):
    parent = tmp_path / 'parent'
    report, outside = parent / 'report', parent / 'outside'
    outside.mkdir(parents=True)
    (outside / 'victim').write_bytes(VICTIM)
    (report / 'runs' / 'old-host').mkdir(parents=True)
    (report / 'runs' / 'old-host' / '20200101T000000Z.json').write_bytes(payload('old-host')[:200])
    (report / 'report.html').symlink_to(outside / 'victim')
    (outside / 'dir').mkdir()
    (report / 'runs' / 'lab-linked').symlink_to(outside / 'dir')
    shim = tmp_path / 'python-fast'
    shim.write_text(SHIM.format(python=sys.executable))
    shim.chmod(0o755)
    before = outside_state(parent, report)

    with private_engines({'lab-bad': ('ext4', 'vfs')}, prefix='hp-grd-') as engines:
        target = {'validate_benchmark': False, 'validate_storage_targets': [lab['targets']['t1500']['v4']],
                  'validate_expected_mtu': 1500, 'validate_netns': lab['host_ns'], 'ansible_become': False}
        inventory = ansible.inventory({
            'lab-bad': {'validate_docker_host': engines['lab-bad'].base_url, 'ansible_become': False,
                        'ansible_python_interpreter': str(shim)},
            'a|b<script>': target, '../../etc/x': target, 'lab-linked': target})
        extra = {'hostprep_hosts': 'all', 'validate_count': 1, 'validate_scenarios': ['oneshot'],
                 'validate_sleep_seconds': 60, 'validate_report_dir': str(report), 'validate_max_start_seconds': 60}
        run = ansible.playbook(PLAYBOOK, inventory, extra, forks=3)

    assert run.rc != 0, run.stdout[-4000:]
    assert sorted({r['host'] for r in run.failed}) == ['lab-bad', 'lab-linked'], run.stdout[-4000:]
    refused = run.result('Record this host\'s results on the controller and compare them with the limits', 'lab-linked')
    assert refused['changed'] is False
    assert refused['msg'] == ('%s/runs/lab-linked is a symbolic link or not a directory; the report '
                              'does not follow it: move it away' % report)
    assert run.result('Measure the storage backend (copy-on-write benchmark)', 'lab-bad')['scenarios']['oneshot'][
        'seconds']['median'] == 'fast'
    problem = 'benchmark.scenarios.oneshot.seconds.median is the string "fast", not a finite number'
    own = run.result("Name this host's result that could not be used", 'lab-bad')['msg']
    assert own.startswith('host lab-bad: its result is not used in the fleet report') and problem in own
    failure = run.result('Fail on measured values beyond the limits', 'lab-bad')['msg']
    assert 'limits were not checked' in failure and problem in failure
    skipped = ' '.join(run.result('Name the run files the fleet report skipped')['msg'])
    assert 'host lab-bad: %s/runs/lab-bad/' % report in skipped and problem in skipped
    assert 'host old-host: %s/runs/old-host/20200101T000000Z.json not used' % report in skipped and 'cut short' in skipped

    markdown = (report / 'report.md').read_text(encoding='utf-8')
    head, dummy, tail = markdown.partition('| host | backend |')
    assert '## Records not used' in head and '| lab-bad | runs/lab-bad/' in head and problem in head
    assert '| old-host | runs/old-host/20200101T000000Z.json | not JSON, or cut short' in head
    assert '| ../../etc/x | ' in tail and '| a\\|b&lt;script&gt; | ' in tail and '| lab-bad |' not in tail
    assert sorted(os.listdir(report / 'runs')) == ['%2E.%2F..%2Fetc%2Fx', 'a%7Cb%3Cscript%3E', 'lab-bad', 'lab-linked', 'old-host']
    assert '| lab-linked | runs/lab-linked | %s/runs/lab-linked is a symbolic link' % md_path(report) in head
    summary = json.loads((report / 'report.json').read_text())
    assert summary['hosts'] == ['../../etc/x', 'a|b<script>']
    assert {entry['host'] for entry in summary['not_used']} == {'lab-bad', 'old-host', 'lab-linked'}
    assert stat.S_ISREG(os.lstat(report / 'report.html').st_mode)
    page = Page()
    page.feed((report / 'report.html').read_text(encoding='utf-8'))
    assert 'script' not in page.tags and page.external == []
    hoststate.assert_unchanged(before, outside_state(parent, report), 'outside the report directory')
    assert (outside / 'victim').read_bytes() == VICTIM


# ---- failures while writing ------------------------------------------------------

def fill(path: str) -> None:
    """Fill the filesystem of path to the last block (root uses the reserved ones too)."""
    with open(os.path.join(path, 'filler'), 'wb', buffering=0) as handle:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
            try:
                while True:
                    handle.write(b'\0' * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        with contextlib.suppress(OSError):
            os.fsync(handle.fileno())


@contextlib.contextmanager
def immutable(path: Path):
    subprocess.run(['chattr', '+i', str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(['chattr', '-i', str(path)], check=True)


@contextlib.contextmanager
def read_only(mountpoint: str):
    subprocess.run(['mount', '-o', 'remount,ro', mountpoint], check=True)
    try:
        yield
    finally:
        subprocess.run(['mount', '-o', 'remount,rw', mountpoint], check=True)


@pytest.fixture(scope='module')
def small_fs(tmp_path_factory):
    """A 64 MiB ext4 on a loop device (chattr, remount ro and a full disk are real there)."""
    for tool in ('losetup', 'mkfs.ext4', 'chattr'):
        require(shutil.which(tool) is not None, tool)
    workdir = tmp_path_factory.mktemp('hp-grd-fs')
    with loop_filesystem(str(workdir), 'ext4', 64) as mountpoint:
        yield mountpoint


# id, what is done to the report directory around the command, command, in the error
FAILURES = [
    ('render-report-md-is-a-directory', 'md_dir', 'render', 'report.md: Is a directory'),
    ('render-immutable-report-dir', 'immutable_report', 'render', 'report.md: Operation not permitted'),
    ('render-full-filesystem', 'full', 'render', 'report.md: No space left on device'),
    ('render-read-only-filesystem', 'read_only', 'render', 'report.md: Read-only file system'),
    ('record-immutable-host-dir', 'immutable_host', 'record', '/runs/h1/20250102T000000Z.json: Operation not permitted'),
    ('record-full-filesystem', 'full', 'record', '/runs/h1/20250102T000000Z.json: No space left on device'),
    ('record-read-only-filesystem', 'read_only', 'record', 'Read-only file system'),
]


@pytest.mark.parametrize('fault, command, fragment', [case[1:] for case in FAILURES], ids=[case[0] for case in FAILURES])
def test_a_failed_write_keeps_the_last_report(small_fs, fault, command, fragment):
    """A write that fails for real (immutable directory, full or read-only
    filesystem) fails with one line naming the file, and leaves every file,
    the earlier report included, as it was, without temporary files."""
    parent = Path(tempfile.mkdtemp(prefix='case-', dir=small_fs))
    report = parent / 'report'
    try:
        assert fleet_report(['record', '--dir', str(report), '--host', 'h1'], payload('h1'))[0] == 0
        assert fleet_report(['render', '--dir', str(report)])[0] == 0
        with contextlib.ExitStack() as stack:
            if fault == 'md_dir':
                (report / 'report.md').unlink()
                (report / 'report.md').mkdir()
            elif fault == 'full':
                fill(str(parent))
            before = hoststate.files(str(parent))
            if fault == 'immutable_report':
                stack.enter_context(immutable(report))
            elif fault == 'immutable_host':
                stack.enter_context(immutable(report / 'runs' / 'h1'))
            elif fault == 'read_only':
                stack.enter_context(read_only(small_fs))
            if command == 'record':
                rc, out = fleet_report(['record', '--dir', str(report), '--host', 'h1', '--keep', '1'],
                                       payload('h1', '20250102T000000Z'))
            else:
                rc, out = fleet_report(['render', '--dir', str(report)])
        assert rc == 1 and fragment in out['error'], out
        assert out['error'].startswith('cannot write %s' % report) or fault == 'read_only', out
        hoststate.assert_unchanged(before, hoststate.files(str(parent)))
    finally:
        shutil.rmtree(parent, ignore_errors=True)
