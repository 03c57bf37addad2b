# SPDX-License-Identifier: GPL-3.0-or-later
"""Run every benchmark under bench/ (on demand: `make bench`)."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHES = ['storage_network.py', 'cow_benchmark.py', 'docker_storage_info.py', 'docker_storage_role.py']

if __name__ == '__main__':
    rc = 0
    for bench in BENCHES:
        print('==> bench/%s' % bench, flush=True)
        rc |= subprocess.call([sys.executable, os.path.join(HERE, bench)] + sys.argv[1:])
    sys.exit(rc)
