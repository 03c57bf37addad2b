# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline stand-in for ansible-test's get-pip bootstrap script.

ansible-test runs ~/.ansible/test/cache/get_pip_24_2.py to put pip into each
sanity venv; the real script is downloaded from a host this network cannot
reach. This one installs pip (and what ansible-test asks for) with pip from
the pip 24.2 wheel that `make sanity` places beside it. Copied as
get_pip_23_1_2.py (ansible-test 2.16 and 2.17, mk/release.mk) it uses the
pip 23.1.2 wheel: the version is read from the file's name.
"""

import glob
import os
import re
import subprocess
import sys


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    version = re.fullmatch(r'get_pip_([0-9_]+)\.py', os.path.basename(__file__)).group(1).replace('_', '.')
    wheels = sorted(glob.glob(os.path.join(here, 'pip-%s-*.whl' % version)))
    if not wheels:
        sys.exit('pip-%s wheel missing in %s: run make sanity' % (version, here))
    args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
    # pip runs from its own wheel (https://pip.pypa.io/en/stable/installation/: python pip.whl/pip install ...)
    sys.exit(subprocess.call([sys.executable, os.path.join(wheels[0], 'pip'), 'install'] + args))


if __name__ == '__main__':
    main()
