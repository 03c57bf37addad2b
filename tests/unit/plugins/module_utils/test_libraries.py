# SPDX-License-Identifier: GPL-3.0-or-later
"""Which library versions the modules accept, and the advice naming the package to install or upgrade. The
combinations are the measured ones: Debian 12 (docker 5.0.3, requests 2.28.1, urllib3 1.26.12, pyroute2 0.7.2),
docker 7.0.0 with requests 2.32.3 ("Not supported URL scheme http+docker"), and this venv."""

from __future__ import annotations

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _docker_client
from ansible_collections.hostprep.container_host.plugins.module_utils import _libraries
from ansible_collections.hostprep.container_host.plugins.module_utils._libraries import (
    docker_problem,
    pyroute2_problem,
    version_tuple,
)


@pytest.mark.parametrize('text, expected', [
    ('7.0.0', (7, 0, 0)), ('2.32.3', (2, 32, 3)), ('0.7.2.post1', (0, 7, 2)), ('1.26.12', (1, 26, 12)),
    ('v5', (5,)), ('6.1.0rc1', (6, 1, 0)), (None, None), ('', None), ('unknown', None),
])
def test_version_tuple(text, expected):
    assert version_tuple(text) == expected


@pytest.mark.parametrize('docker, requests, urllib3', [
    ('5.0.3', '2.28.1', '1.26.12'),   # Debian 12's python3-docker, python3-requests, python3-urllib3
    ('7.1.0', '2.32.3', '2.2.1'), ('7.2.0', '2.34.2', '2.8.0'), ('6.1.3', '2.31.0', '2.0.7'),
    ('7.0.0', '2.31.0', '2.0.7'), ('5.0.3', '2.31.0', None),
])
def test_docker_combinations_that_work(docker, requests, urllib3):
    assert docker_problem(docker, requests, urllib3) is None


@pytest.mark.parametrize('docker, requests, urllib3, words', [
    (None, None, None, ['is not installed', 'apt-get install python3-docker', 'pip install "docker>=5.0.3"']),
    ('4.4.4', '2.25.1', '1.26.5', ['docker) is 4.4.4, older than 5.0.3', 'python3-docker', '"docker>=5.0.3"']),
    ('7.0.0', '2.32.3', '2.2.3', ['7.0.0 does not work with requests 2.32.3', 'Not supported URL scheme http+docker',
                                  'pip install --upgrade "docker>=7.1"', 'python3-docker', '"requests<2.32"']),
    ('5.0.3', '2.32.0', '1.26.12', ['5.0.3 does not work with requests 2.32.0']),
    ('6.0.1', '2.31.0', '2.0.2', ['6.0.1 does not work with urllib3 2.0.2', '"docker>=6.1"', '"urllib3<2"']),
])
def test_docker_combinations_that_fail_name_the_package(docker, requests, urllib3, words):
    problem = docker_problem(docker, requests, urllib3)
    for word in words:
        assert word in problem
    assert 'does not answer' not in problem


@pytest.mark.parametrize('version, problem', [
    ('0.7.2', None), ('0.7.3', None), ('0.9.7', None), ('0.7.1', 'pyroute2 is 0.7.1, older than 0.7.2'),
    ('0.5.19', 'python3-pyroute2'), (None, None), ('unknown', None),
])
def test_pyroute2(version, problem):
    found = pyroute2_problem(version)
    assert (found is None) if problem is None else (problem in found)


def test_pyroute2_missing():
    problem = pyroute2_problem(None, installed=False)
    assert 'pyroute2 is not installed; install it on the managed host' in problem
    assert 'apt-get install python3-pyroute2' in problem and 'pip install "pyroute2>=0.7.2"' in problem


class FailingModule:
    def fail_json(self, **result):
        raise SystemExit(result)


def test_require_pyroute2_passes_this_venv_and_names_a_missing_one():
    _libraries.require_pyroute2(FailingModule(), None)
    with pytest.raises(SystemExit) as info:
        _libraries.require_pyroute2(FailingModule(), 'Traceback: No module named pyroute2')
    result = info.value.args[0]
    assert 'pyroute2 is not installed' in result['msg'] and result['exception'].startswith('Traceback')


def test_this_venvs_sdk_is_fine():
    assert _docker_client.sdk_problem() is None
    versions = _docker_client.sdk_versions()
    assert set(versions) == {'docker', 'requests', 'urllib3'} and all(versions.values())


def test_nothing_answering_names_the_address(tmp_path):
    with pytest.raises(_docker_client.HostprepError, match='the Docker engine at unix://%s/none.sock does not answer'
                       % tmp_path):
        with _docker_client.engine_client('unix://%s/none.sock' % tmp_path, 2):
            pass
