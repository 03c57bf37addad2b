# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline stand-in for ansible-test's get-pip bootstrap script.

ansible-test runs ~/.ansible/test/cache/get_pip_24_2.py to put pip into each
sanity venv; the real script is downloaded from a host this network cannot
reach. This one installs pip (and what ansible-test asks for) with pip from
the pip 24.2 wheel that `make sanity` places beside it.
"""

import glob
import os
import sys


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    wheels = sorted(glob.glob(os.path.join(here, 'pip-24.2-*.whl')))
    if not wheels:
        sys.exit('pip-24.2 wheel missing in %s: run make sanity' % here)
    sys.path.insert(0, wheels[0])
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel
    args = [arg for arg in sys.argv[1:] if arg not in ('--no-setuptools', '--no-wheel')]
    sys.exit(pip_main(['install'] + args))


if __name__ == '__main__':
    main()
