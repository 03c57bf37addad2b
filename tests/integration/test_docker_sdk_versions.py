# SPDX-License-Identifier: GPL-3.0-or-later
"""The Docker SDK for Python the managed host really has (issue 11), against a private dockerd, through real
ansible-playbook runs whose ansible_python_interpreter is that host Python:

- Debian 12's own packages (apt python3-docker 5.0.3 with python3-requests 2.28 and python3-urllib3 1.26, run
  by /usr/bin/python3): docker_storage_info, docker_images_archive and docker_cow_benchmark work;
- a throwaway venv with docker 7.0.0 and requests 2.32.3 (from PyPI), where every SDK call fails with "Not
  supported URL scheme http+docker": each module fails before it changes anything, says the library is the
  problem and names the package to upgrade, instead of "the Docker engine does not answer".
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import busybox_engine_fixture, require, workdir_fixture

INFO = 'hostprep.container_host.docker_storage_info'
ARCHIVE = 'hostprep.container_host.docker_images_archive'
COW = 'hostprep.container_host.docker_cow_benchmark'
DEBIAN_PYTHON = '/usr/bin/python3'

workdir = workdir_fixture('hp-sdk', ('dockerd', 'containerd', 'busybox', 'losetup', 'mkfs.ext4'))


def python_with(python: str, *modules: str) -> bool:
    return subprocess.run([python, '-c', 'import ' + ', '.join(modules)], capture_output=True, check=False).returncode == 0


# a private dockerd whose data root is on its own loop ext4 (an image archive must be elsewhere)
engine = busybox_engine_fixture(160)


@pytest.fixture(scope='module')
def debian_python():
    """/usr/bin/python3 with Debian's python3-docker (the Makefile installs it)."""
    require(python_with(DEBIAN_PYTHON, 'docker', 'requests'), 'python3-docker (apt) for %s' % DEBIAN_PYTHON)
    out = subprocess.run([DEBIAN_PYTHON, '-c', 'import docker, requests; print(docker.__version__, requests.__version__)'],
                         capture_output=True, text=True, check=True).stdout.split()
    return DEBIAN_PYTHON, out


@pytest.fixture(scope='module')
def broken_sdk(workdir):
    """A venv with docker 7.0.0 and requests 2.32.3, the pair that cannot talk to any engine."""
    venv = os.path.join(workdir, 'venv-docker70')
    subprocess.run([sys.executable, '-m', 'venv', venv], check=True)
    pip = subprocess.run([os.path.join(venv, 'bin', 'pip'), 'install', '-q', 'docker==7.0.0', 'requests==2.32.3'],
                         capture_output=True, text=True, check=False)
    require(pip.returncode == 0, 'docker==7.0.0 and requests==2.32.3 from PyPI (%s)' % pip.stderr[-300:])
    return os.path.join(venv, 'bin', 'python')


def calls(engine, workdir, tag):
    archive = os.path.join(workdir, 'archive-%s' % tag, 'images.tar')
    return archive, [
        ('info', INFO, {'docker_host': engine.base_url, 'flags_sources': [],
                        'daemon_config': os.path.join(workdir, 'none.json')}),
        ('archive', ARCHIVE, {'path': archive, 'docker_host': engine.base_url}),
        ('benchmark', COW, {'docker_host': engine.base_url, 'count': 1, 'scenarios': ['oneshot'],
                            'sleep_seconds': 5}),
    ]


def run_each(ansible, python, cases):
    inventory = ansible.inventory({'localhost': {'ansible_python_interpreter': python}})
    return {name: ansible.module(module, args, inventory=inventory) for name, module, args in cases}


def test_debian_12_python3_docker_works(ansible, engine, workdir, debian_python):
    python, (docker_version, requests_version) = debian_python
    archive, cases = calls(engine, workdir, 'debian')
    results = run_each(ansible, python, cases)
    info = results['info']
    assert not info['failed'] and info['storage']['engine']['reachable'] is True, info
    assert info['storage']['driver'] == engine.client.info()['Driver']
    saved = results['archive']
    assert not saved['failed'] and saved['changed'] and os.path.getsize(archive) == saved['size'], saved.get('msg')
    bench = results['benchmark']
    assert not bench['failed'], bench.get('msg')
    print('Debian python3-docker %s, requests %s: info, archive and benchmark work'
          % (docker_version, requests_version))


def test_docker_7_0_with_requests_2_32_names_the_upgrade(ansible, engine, workdir, broken_sdk):
    images_before = sorted(image.id for image in engine.client.images.list())
    archive, cases = calls(engine, workdir, 'broken')
    results = run_each(ansible, broken_sdk, cases)
    for name, result in results.items():
        assert result['failed'], (name, result)
        msg = result['msg']
        assert 'docker) 7.0.0 does not work with requests 2.32.3' in msg, (name, msg)
        assert 'Not supported URL scheme http+docker' in msg and 'python3-docker' in msg, (name, msg)
        assert 'pip install --upgrade "docker>=7.1"' in msg, (name, msg)
        assert 'does not answer' not in msg, (name, msg)
        assert result['docker_sdk'] == {'docker': '7.0.0', 'requests': '2.32.3', 'urllib3': result['docker_sdk']['urllib3']}
        assert not result.get('changed'), (name, result)
    assert not os.path.exists(os.path.dirname(archive))
    assert sorted(image.id for image in engine.client.images.list()) == images_before
    assert not [c for c in engine.client.containers.list(all=True) if c.name.startswith('hostprep-cow')]


PATH_MTU = 'hostprep.container_host.path_mtu_info'
LOOPBACK_PROBE = {'targets': ['127.0.0.1'], 'allow_loopback': True, 'expected_mtu': 1500, 'timeout': 1}


def test_pyroute2_of_debian_12_works_and_an_older_one_is_named(ansible, workdir):
    """pyroute2: Debian 12's python3-pyroute2 0.7.2 (the minimum) works; 0.7.1 from PyPI is refused by name."""
    require(python_with(DEBIAN_PYTHON, 'pyroute2'), 'python3-pyroute2 (apt) for %s' % DEBIAN_PYTHON)
    venv = os.path.join(workdir, 'venv-pyroute2-071')
    subprocess.run([sys.executable, '-m', 'venv', venv], check=True)
    pip = subprocess.run([os.path.join(venv, 'bin', 'pip'), 'install', '-q', 'pyroute2==0.7.1'],
                         capture_output=True, text=True, check=False)
    require(pip.returncode == 0, 'pyroute2==0.7.1 from PyPI (%s)' % pip.stderr[-300:])
    results = run_each(ansible, DEBIAN_PYTHON, [('debian', PATH_MTU, LOOPBACK_PROBE)])
    results.update(run_each(ansible, os.path.join(venv, 'bin', 'python'), [('old', PATH_MTU, LOOPBACK_PROBE)]))
    debian = results['debian']
    assert not debian['failed'] and debian['targets'][0]['path_mtu'] == 1500, debian.get('msg')
    old = results['old']
    assert old['failed'] and 'pyroute2 is 0.7.1, older than 0.7.2' in old['msg'], old
    assert 'python3-pyroute2' in old['msg'] and 'pip install --upgrade "pyroute2>=0.7.2"' in old['msg'], old['msg']
