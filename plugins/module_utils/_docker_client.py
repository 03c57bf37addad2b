# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Docker SDK for Python, private to hostprep.container_host: one import guard, one check that the installed
docker, requests and urllib3 work together (``_libraries.docker_problem``), one way to make a client.

A module that needs the SDK calls ``require_sdk(module)`` before it asks the engine, so a library that is missing,
too old or broken by a newer requests is named with the package to install or upgrade, instead of looking like an
engine that does not answer. ``engine_client`` gives a client for docker_host and closes it.
"""

from __future__ import annotations

import contextlib
import traceback
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError
from ansible_collections.hostprep.container_host.plugins.module_utils._libraries import (
    docker_problem,
    installed_version,
)

IMPORT_ERROR = None
try:
    import docker
    import requests
    import urllib3
except ImportError:
    docker = None
    requests = None
    urllib3 = None
    IMPORT_ERROR = traceback.format_exc()

# What the SDK raises when an engine does not answer or refuses (requests' errors are not all DockerException).
# Not OSError: a file the module writes fails with it, and that is no engine's doing.
ENGINE_ERRORS: tuple[type[BaseException], ...] = ()
if docker is not None:
    ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)


def sdk_problem() -> str | None:
    """Why the installed Docker SDK cannot talk to an engine, naming the package to install or upgrade."""
    if docker is None:
        return docker_problem(None, None, None)
    return docker_problem(installed_version('docker', docker), installed_version('requests', requests),
                          installed_version('urllib3', urllib3))


def require_sdk(module: t.Any, purpose: str = '') -> None:
    """Fail the module (before anything changes) when the SDK cannot be used; purpose says what it is needed for."""
    problem = sdk_problem()
    if problem:
        module.fail_json(msg=problem + purpose, exception=IMPORT_ERROR, docker_sdk=sdk_versions())


def sdk_versions() -> dict[str, str | None]:
    """The versions of the SDK and of the HTTP libraries under it, as installed (None: not installed)."""
    return {name: installed_version(name, mod) if mod is not None else None
            for name, mod in (('docker', docker), ('requests', requests), ('urllib3', urllib3))}


def not_answering(docker_host: str, exc: BaseException) -> HostprepError:
    return HostprepError('the Docker engine at %s does not answer (%s); start dockerd or set docker_host to its socket'
                         % (docker_host, exc), docker_host=docker_host)


@contextlib.contextmanager
def engine_client(docker_host: str, timeout: float, low_level: bool = False) -> t.Iterator[t.Any]:
    """A client of the engine at docker_host (``docker.DockerClient``, or ``docker.APIClient`` with low_level),
    closed afterwards. The API version is the engine's (``version='auto'`` asks it, so an engine that does not
    answer is a HostprepError naming the address here). Call require_sdk first."""
    if docker is None:
        raise HostprepError(sdk_problem() or 'the Docker SDK for Python cannot be imported')
    make = docker.APIClient if low_level else docker.DockerClient
    try:
        client = make(base_url=docker_host, version='auto', timeout=timeout)
    except (*ENGINE_ERRORS, OSError) as exc:
        raise not_answering(docker_host, exc) from exc
    try:
        yield client
    finally:
        client.close()
