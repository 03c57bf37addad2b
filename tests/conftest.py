# SPDX-License-Identifier: GPL-3.0-or-later
"""Make ``ansible_collections.hostprep.container_host`` importable for pytest.

The collection root is this repository; a symlink tree under .build/link
gives it the ansible_collections/NS/NAME path that imports need.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINKROOT = os.path.join(ROOT, '.build', 'link')
_link = os.path.join(LINKROOT, 'ansible_collections', 'hostprep', 'container_host')
if not os.path.islink(_link):
    os.makedirs(os.path.dirname(_link), exist_ok=True)
    os.symlink(ROOT, _link)
if LINKROOT not in sys.path:
    sys.path.insert(0, LINKROOT)
os.environ.setdefault('ANSIBLE_COLLECTIONS_PATH', LINKROOT)
