# SPDX-License-Identifier: GPL-3.0-or-later
"""Run every benchmark under bench/ (on demand: `make bench`, or ``python -m bench.run_all``)."""

import subprocess
import sys

from tests.lab import ROOT

BENCHES = ['storage_network', 'cow_benchmark', 'docker_storage_info', 'docker_storage_role', 'fleet_report_scale', 'fleet_ssh', 'rerun_cost']

if __name__ == '__main__':
    rc = 0
    for bench in BENCHES:
        print('==> bench/%s.py' % bench, flush=True)
        rc |= subprocess.call([sys.executable, '-m', 'bench.' + bench] + sys.argv[1:], cwd=ROOT)
    sys.exit(rc)
