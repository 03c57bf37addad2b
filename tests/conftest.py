# SPDX-License-Identifier: GPL-3.0-or-later
"""Make ``ansible_collections.hostprep.container_host`` importable for pytest.

``tests/`` is a package, so pytest puts the repository root on sys.path; the
lab package (tests/lab/__init__.py) does the rest.
"""

from tests.lab import LINKROOT, ROOT  # noqa: F401  pylint: disable=unused-import
