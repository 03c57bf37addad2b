# SPDX-License-Identifier: GPL-3.0-or-later
"""Role validate and playbooks/validate.yml end to end.

Three inventory hosts (ansible_connection local), each pointing
validate_docker_host at its own private dockerd on a different backend
(btrfs, overlay2 on XFS, vfs on ext4); one of them also verifies a storage
target path of the netns lab. Real ansible-playbook runs write the fleet
report; the test parses the HTML and counts one chart per metric. A second
run of one host with limits it cannot meet fails naming host, metric, limit
and value, and the report then shows that host's trend.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import typing as t
from html.parser import HTMLParser

import pytest

from conftest import ROOT, require
from tests.lab.dockerd import PrivateDockerd, engines_on_loop_filesystems

PLAYBOOK = os.path.join(ROOT, 'playbooks', 'validate.yml')
LABEL = 'io.hostprep.cow-benchmark'
HOSTS = {'lab-btrfs': ('btrfs', 'btrfs'), 'lab-xfs': ('xfs', 'overlay2'), 'lab-vfs': ('ext4', 'vfs')}


@contextlib.contextmanager
def private_engines(hosts: dict[str, tuple[str, str]], prefix: str = 'hp-val-') -> t.Iterator[dict[str, PrivateDockerd]]:
    """One private dockerd per host (host -> (fstype, driver)), its data
    root on its own loop filesystem of that type; all removed at the end."""
    fstypes = sorted({fstype for fstype, dummy in hosts.values()})
    for tool in ['dockerd', 'containerd', 'losetup'] + ['mkfs.%s' % fstype for fstype in fstypes] + ['btrfs'] * ('btrfs' in fstypes):
        require(shutil.which(tool) is not None, tool)
    workdir = tempfile.mkdtemp(prefix=prefix)
    try:
        with engines_on_loop_filesystems(workdir, {host: (fstype, driver, 320)
                                                   for host, (fstype, driver) in hosts.items()}) as started:
            yield started
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope='module')
def engines():
    with private_engines(HOSTS) as started:
        yield started


class Charts(HTMLParser):
    """Collects the <svg> elements of the page with their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[dict[str, str]] = []
        self.scripts = 0
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'svg':
            self.svgs.append(attrs)
        if tag == 'script':
            self.scripts += 1
        for key in ('src', 'href'):
            if attrs.get(key):
                self.external.append(attrs[key])

    def handle_data(self, data):
        self.text.append(data)


def parse(path: str) -> Charts:
    parser = Charts()
    with open(path, encoding='utf-8') as handle:
        parser.feed(handle.read())
    return parser


def test_fleet_report_and_limits(ansible, lab, engines, tmp_path):
    report_dir = tmp_path / 'report'
    hostvars = {host: {'validate_docker_host': engine.base_url, 'ansible_become': False}
                for host, engine in engines.items()}
    hostvars['lab-btrfs'].update({'validate_storage_targets': [lab['targets']['t1500']['v4']],
                                  'validate_expected_mtu': 1500, 'validate_netns': lab['host_ns']})
    inventory = ansible.inventory(hostvars)
    extra = {'hostprep_hosts': 'all', 'validate_count': 2, 'validate_report_dir': str(report_dir),
             'validate_sleep_seconds': 120, 'validate_max_start_seconds': 60,
             'validate_max_disk_per_container': '64M'}

    # check mode: nothing measured, nothing written
    check = ansible.playbook(PLAYBOOK, inventory, extra, check=True)
    assert check.rc == 0, check.stdout[-3000:]
    assert check.result('Measure the storage backend (copy-on-write benchmark)', 'lab-xfs')['check_mode'] is True
    assert not report_dir.exists()

    first = ansible.playbook(PLAYBOOK, inventory, extra, forks=3)
    assert first.rc == 0, first.stdout[-4000:]
    for host, (fstype, driver) in HOSTS.items():
        bench = first.result('Measure the storage backend (copy-on-write benchmark)', host)
        assert bench['engine']['driver'] == driver and bench['filesystem']['fstype'] == fstype
        assert len(list((report_dir / 'runs' / host).glob('*.json'))) == 1
        assert engines[host].client.containers.list(all=True, filters={'label': LABEL}) == []
    assert first.result('Measure the path MTU to the storage targets', 'lab-btrfs')['targets'][0]['path_mtu'] == 1500

    summary = json.loads((report_dir / 'report.json').read_text())
    assert summary['hosts'] == sorted(HOSTS)
    assert sorted(summary['backends']) == ['btrfs on btrfs', 'overlay2 on xfs', 'vfs on ext4']
    for key in ('start_seconds', 'commit_seconds', 'detached_start_seconds', 'disk_per_container', 'disk_per_commit',
                'disk_per_detached_container', 'memory_per_container', 'data_per_container'):
        assert key in summary['metrics'], key
    page = parse(str(report_dir / 'report.html'))
    charts = [svg for svg in page.svgs if svg.get('class') == 'chart']
    assert len(charts) == len(summary['metrics'])
    assert sorted(svg['data-metric'] for svg in charts) == sorted(summary['metrics'])
    assert page.scripts == 0 and page.external == []
    text = ' '.join(page.text)
    for host in HOSTS:
        assert host in text
    markdown = (report_dir / 'report.md').read_text()
    assert '| lab-vfs | vfs on ext4 |' in markdown and '## Storage network path MTU' in markdown
    assert 'All measured values are within the limits given.' in markdown

    # one host again, with limits it cannot meet: it fails, the report is still written; the benchmark runs as an
    # async job polled every second (issue 11: long tasks), and its result feeds the record as a plain run's does
    again = dict(extra, hostprep_hosts='lab-btrfs', validate_count=1, validate_scenarios=['oneshot'],
                 validate_max_start_seconds=0.0001, validate_expected_mtu=9000,
                 validate_benchmark_async=600, validate_benchmark_poll=1)
    second = ansible.playbook(PLAYBOOK, inventory, again)
    assert second.rc != 0
    failure = second.result('Fail on measured values beyond the limits', 'lab-btrfs')
    msg = failure['msg']
    assert 'host lab-btrfs' in msg and 'start a container and run it to exit' in msg
    assert 'max_start_seconds=0.000 s' in msg
    measured = second.result('Measure the storage backend (copy-on-write benchmark)', 'lab-btrfs')
    assert measured.get('ansible_job_id') and measured.get('finished') == 1, 'the benchmark did not run as an async job'
    assert '%.3f s' % measured['scenarios']['oneshot']['seconds']['median'] in msg
    assert 'path MTU to %s is 1500, below the limit expected_mtu=9000' % lab['targets']['t1500']['v4'] in msg

    assert len(list((report_dir / 'runs' / 'lab-btrfs').glob('*.json'))) == 2
    page = parse(str(report_dir / 'report.html'))
    trends = [svg for svg in page.svgs if svg.get('class') == 'trend']
    assert trends and {svg['data-host'] for svg in trends} == {'lab-btrfs'}
    summary = json.loads((report_dir / 'report.json').read_text())
    assert summary['runs'] == {'lab-btrfs': 2, 'lab-vfs': 1, 'lab-xfs': 1}
    assert summary['latest']['lab-btrfs']['violations']
    assert '## Trend per host' in (report_dir / 'report.md').read_text()
