# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet report at 10, 100 and 1,000 hosts: the real record of one
benchmark run (tests/unit/fixtures/cow) spread over a synthetic fleet of
three backends and two engine versions, with spread, a few outliers, a few
hosts over a limit, one failed benchmark, one host without a result and
three earlier runs per host; time and size of the report, and (with
--screenshots DIR) headless Chromium screenshots of the page.

    .venv/bin/python -m bench.fleet_report_scale [--hosts 10,100,1000] [--screenshots docs/images]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import shutil
import subprocess
import tempfile
import time

from tests.lab import ROOT  # makes ansible_collections importable
from ansible_collections.hostprep.container_host.plugins.action import fleet_report as plugin  # noqa: E402  pylint: disable=wrong-import-order

FIXTURE = os.path.join(ROOT, 'tests', 'unit', 'fixtures', 'cow', 'module_result_btrfs_20.10.24.json')
BACKENDS = [('overlay2', 'xfs', '20.10.24+dfsg1', 1.0), ('overlay2', 'xfs', '26.1.5+dfsg1', 0.9),
            ('btrfs', 'btrfs', '20.10.24+dfsg1', 1.4), ('vfs', 'ext4', '20.10.24+dfsg1', 3.0)]
STAMPS = ['20261101T020000Z', '20261108T020000Z', '20261115T020000Z', '20261129T020000Z']
LIMITS = {'max_start_seconds': 3.0, 'max_disk_per_container': '1M'}


def scaled(stat: dict, factor: float) -> dict:
    return {k: (v * factor if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in stat.items()}


def host_result(recorded: dict, host: str, index: int, stamp: str, rng: random.Random) -> dict:
    driver, fstype, version, speed = BACKENDS[index % len(BACKENDS)]
    bench = copy.deepcopy(recorded)
    bench['engine'].update(driver=driver, version=version, driver_status={})
    bench['filesystem']['fstype'] = fstype
    factor = speed * rng.lognormvariate(0, 0.12) * (4.0 if index % 97 == 3 else 1.0)
    for scenario in bench['scenarios'].values():
        for key, stat in list(scenario.items()):
            if isinstance(stat, dict) and 'median' in stat:
                scenario[key] = scaled(stat, factor)
    if bench['memory'].get('mem_available_drop_per_container') is not None:
        bench['memory']['mem_available_drop_per_container'] *= factor
    return {'host': host, 'timestamp': stamp, 'benchmark': bench, 'pmtu': []}


def fleet(root: str, hosts: int, runs: int = len(STAMPS)) -> list[str]:
    with open(FIXTURE, encoding='utf-8') as handle:
        recorded = json.load(handle)
    rng = random.Random(hosts)
    names = ['node%04d.dc%d.example.net' % (i, i % 3) for i in range(hosts)]
    for index, host in enumerate(names[:-1]):
        for stamp in STAMPS[-runs:]:
            result = host_result(recorded, host, index, stamp, rng)
            if index == 7 and stamp == STAMPS[-1]:
                result = {'host': host, 'timestamp': stamp, 'benchmark': {}, 'pmtu': [],
                          'failed': 'dockerd at unix:///var/run/docker.sock did not answer within 60 s'}
            plugin.record(root, result, LIMITS, 0, host)
    return names


def screenshot(page: str, png: str) -> float:
    chromium = shutil.which('chromium')
    if chromium is None:
        raise SystemExit('chromium is missing: apt-get install chromium')
    start = time.monotonic()
    subprocess.run([chromium, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
                    '--screenshot=%s' % png, '--window-size=1280,2400', 'file://%s' % page],
                   check=True, capture_output=True, timeout=180)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--hosts', default='10,100,1000')
    parser.add_argument('--screenshots', help='directory for report-N.png')
    args = parser.parse_args()
    for count in [int(n) for n in args.hosts.split(',')]:
        root = tempfile.mkdtemp(prefix='hp-fleet-scale-')
        try:
            names = fleet(root, count)
            start = time.monotonic()
            out = plugin.render(root, 'Fleet of %d hosts' % count, names)
            seconds = time.monotonic() - start
            sizes = {key: os.path.getsize(out[key]) for key in ('html', 'markdown', 'json', 'csv', 'runs_csv')}
            line = {'hosts': count, 'render_s': round(seconds, 2), 'html_bytes': sizes['html'], 'sizes': sizes,
                    'over_limit': len(out['over_limit']), 'failed': list(out['failed']), 'missing': out['missing']}
            if args.screenshots:
                os.makedirs(args.screenshots, exist_ok=True)
                png = os.path.join(os.path.abspath(args.screenshots), 'fleet-report-%d.png' % count)
                line['screenshot_s'] = round(screenshot(out['html'], png), 1)
                line['png'] = os.path.relpath(png, ROOT)
            print(json.dumps(line))
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
