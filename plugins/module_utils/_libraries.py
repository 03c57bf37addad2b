# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Python libraries the modules need on the managed host, private to hostprep.container_host.

Which versions work, and the advice that names the package to install or upgrade, from the distribution
(Debian and Ubuntu: ``python3-docker``, ``python3-pyroute2``) or from PyPI. The minimums are the versions
tested end to end (Debian 12 ships docker 5.0.3 with requests 2.28 and urllib3 1.26, and pyroute2 0.7.2);
requirements.txt says the same. The checks are pure functions of version strings; ``installed_version``
asks the installed distribution.
"""

from __future__ import annotations

import re
import typing as t

MIN_DOCKER = (5, 0, 3)
MIN_PYROUTE2 = (0, 7, 2)

# Package names per installer: what the advice tells the user to install or upgrade.
PACKAGES = {
    'docker': ('python3-docker', 'docker'),
    'requests': ('python3-requests', 'requests'),
    'urllib3': ('python3-urllib3', 'urllib3'),
    'pyroute2': ('python3-pyroute2', 'pyroute2'),
}


def version_tuple(text: str | None) -> tuple[int, ...] | None:
    """'7.0.0' -> (7, 0, 0), '2.32.3' -> (2, 32, 3), '0.7.2.post1' -> (0, 7, 2); None when there is no number."""
    match = re.match(r'\s*v?(\d+(?:\.\d+)*)', text or '')
    return tuple(int(part) for part in match.group(1).split('.')) if match else None


def installed_version(distribution: str, module: t.Any = None) -> str | None:
    """The installed version of a distribution (package metadata), else the module's ``__version__``."""
    # No metadata (a vendored or bare copy): ask the module.
    try:
        from importlib import metadata  # pylint: disable=import-outside-toplevel
        return metadata.version(distribution)
    except Exception:  # pylint: disable=broad-except
        return getattr(module, '__version__', None)


def upgrade(name: str, at_least: str) -> str:
    """How to get name at_least or later, from the distribution or from PyPI."""
    debian, pip = PACKAGES[name]
    return 'upgrade %s (Debian and Ubuntu: the %s package; pip: pip install --upgrade "%s>=%s")' % (
        name, debian, pip, at_least)


def install(name: str, at_least: str) -> str:
    debian, pip = PACKAGES[name]
    return 'install it on the managed host (Debian and Ubuntu: apt-get install %s; pip: pip install "%s>=%s")' % (
        debian, pip, at_least)


def _text(version: tuple[int, ...]) -> str:
    return '.'.join(str(part) for part in version)


def docker_problem(docker: str | None, requests: str | None, urllib3: str | None) -> str | None:
    """Why the Docker SDK for Python of these versions cannot talk to an engine, naming what to upgrade; None when
    it can. Known breaks: docker before 7.1 with requests 2.32 or later fails every call with "Not supported URL
    scheme http+docker" (docker/docker-py#3256); docker before 6.1 with urllib3 2 fails on its first request
    (docker/docker-py#3113)."""
    have = version_tuple(docker)
    if have is None:
        return 'the Docker SDK for Python (docker) is not installed; %s' % install('docker', _text(MIN_DOCKER))
    if have < MIN_DOCKER:
        return 'the Docker SDK for Python (docker) is %s, older than %s, the oldest this collection works with; %s' % (
            docker, _text(MIN_DOCKER), upgrade('docker', _text(MIN_DOCKER)))
    req = version_tuple(requests)
    if have < (7, 1) and req is not None and req >= (2, 32):
        return ('the Docker SDK for Python (docker) %s does not work with requests %s (every call fails with "Not '
                'supported URL scheme http+docker"); %s, or install requests older than 2.32 (pip install '
                '"requests<2.32")' % (docker, requests, upgrade('docker', '7.1')))
    url = version_tuple(urllib3)
    if have < (6, 1) and url is not None and url >= (2,):
        return ('the Docker SDK for Python (docker) %s does not work with urllib3 %s (it needs urllib3 1.x); %s, or '
                'install urllib3 older than 2 (pip install "urllib3<2")' % (docker, urllib3, upgrade('docker', '6.1')))
    return None


def pyroute2_problem(pyroute2: str | None, installed: bool = True) -> str | None:
    """Why this pyroute2 cannot be used, naming what to install or upgrade; None when it can (also when it is
    installed without a version to read)."""
    if not installed:
        return 'pyroute2 is not installed; %s' % install('pyroute2', _text(MIN_PYROUTE2))
    have = version_tuple(pyroute2)
    if have is not None and have < MIN_PYROUTE2:
        return 'pyroute2 is %s, older than %s, the oldest this collection works with; %s' % (
            pyroute2, _text(MIN_PYROUTE2), upgrade('pyroute2', _text(MIN_PYROUTE2)))
    return None


def require_pyroute2(module: t.Any, import_error: str | None) -> None:
    """Fail the module before it does anything when pyroute2 is missing (import_error: the traceback of the
    failed import) or too old, naming the package to install or upgrade."""
    version = None
    if import_error is None:
        import pyroute2  # pylint: disable=import-outside-toplevel
        version = installed_version('pyroute2', pyroute2)
    problem = pyroute2_problem(version, installed=import_error is None)
    if problem:
        module.fail_json(msg=problem, exception=import_error, pyroute2=version)
