# SPDX-License-Identifier: GPL-3.0-or-later
"""docker_daemon_config against the real engine (Debian 12's dockerd 20.10).

Each daemon.json is written by the module through real ansible-playbook runs
and then handed to a private dockerd (tests/lab/dockerd.py) whose
data root sits on a loop-mounted btrfs, XFS or ext4 filesystem; the Docker
SDK's info() tells which driver the engine really uses. Bad input must fail
with a clear message and leave the file byte for byte as it was.
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils._common import read_bytes
from conftest import filesystems_fixture, require, workdir_fixture
from tests.lab.dockerd import DockerdFailed, PrivateDockerd, import_busybox

MODULE = 'hostprep.container_host.docker_daemon_config'
ORIGINAL = '{\n  "log-level": "warn",\n    "labels": ["hostprep=test"] ,"max-concurrent-downloads": 2\n}\n'


workdir = workdir_fixture('hp-ddc', ('dockerd', 'containerd', 'runc', 'losetup', 'findmnt', 'mkfs.xfs', 'mkfs.btrfs',
                                     'mkfs.ext4', 'busybox'))
fs = filesystems_fixture(btrfs=None, xfs=None, ext4=None)


def setup_case(workdir: str, name: str, data_root: str, content: str | None = ORIGINAL):
    """A daemon.json with other keys, and a fake systemd unit that starts a
    private dockerd exactly as the test will, so the module learns the data
    root from its --data-root flag."""
    case = os.path.join(workdir, name)
    os.makedirs(case)
    path = os.path.join(case, 'daemon.json')
    if content is not None:
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(content)
    engine = PrivateDockerd(case, data_root=data_root, config_file=path)
    unit = os.path.join(case, 'docker.service')
    with open(unit, 'w', encoding='utf-8') as handle:
        handle.write('[Unit]\nDescription=private test engine\n\n[Service]\nType=notify\nExecStart=%s\n'
                     % ' '.join(engine.flags()))
    return path, unit, engine


def four_steps(ansible, path: str, args: dict) -> dict:
    """check (changed, file untouched), apply (changed), again (no change)."""
    before = read_bytes(path)
    checked = ansible.module(MODULE, args, check=True)
    assert not checked.get('failed'), checked
    assert checked['changed'] and checked['restart_required'], checked
    assert read_bytes(path) == before, 'check mode changed %s' % path
    applied = ansible.module(MODULE, args)
    assert not applied.get('failed'), applied
    assert applied['changed'] and applied['restart_required'], applied
    assert applied['config'] == checked['config']
    again = ansible.module(MODULE, args)
    assert not again.get('failed'), again
    assert not again['changed'] and not again['restart_required'], again
    return applied


def load(path: str) -> dict:
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


def driver_status(info: dict) -> dict:
    return dict(info.get('DriverStatus') or [])


def test_btrfs_driver_on_btrfs_data_root(ansible, workdir, fs):
    data_root = os.path.join(fs['btrfs'], 'docker')
    path, unit, engine = setup_case(workdir, 'btrfs', data_root)
    args = {'path': path, 'config': {'storage-driver': 'btrfs'}, 'flags_sources': [unit], 'backup': True}
    applied = four_steps(ansible, path, args)
    assert applied['engine']['version'].startswith('20.10.')
    assert applied['changed_keys'] == ['storage-driver']
    assert applied['backup_file'] and os.path.exists(applied['backup_file'])
    assert read_bytes(applied['backup_file']) == ORIGINAL.encode()
    written = load(path)
    assert written == {'log-level': 'warn', 'labels': ['hostprep=test'], 'max-concurrent-downloads': 2,
                       'storage-driver': 'btrfs'}
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)

    with engine:
        info = engine.info()
        assert info['Driver'] == 'btrfs'
        assert info['DockerRootDir'] == data_root
        assert 'hostprep=test' in info['Labels']
        image = import_busybox(engine.client)
        out = engine.client.containers.run(image, ['sh', '-c', 'echo layer-ok'], network_mode='none', remove=True)
        assert out.strip() == b'layer-ok'


def test_overlay2_on_xfs_and_size_needs_project_quota(ansible, workdir, fs):
    data_root = os.path.join(fs['xfs'], 'docker')
    path, unit, engine = setup_case(workdir, 'xfs', data_root)
    applied = four_steps(ansible, path, {'path': path, 'config': {'storage-driver': 'overlay2'},
                                         'flags_sources': [unit]})
    assert applied['config']['storage-driver'] == 'overlay2'
    with engine:
        info = engine.info()
        assert info['Driver'] == 'overlay2'
        status = driver_status(info)
        assert status['Backing Filesystem'] == 'xfs' and status['Supports d_type'] == 'true'

    # This kernel has no XFS quota support, so the filesystem is mounted
    # without pquota: the module must refuse overlay2.size, and dockerd itself
    # agrees when handed such a file.
    before = read_bytes(path)
    bad = ansible.module(MODULE, {'path': path, 'flags_sources': [unit],
                                  'config': {'storage-opts': ['overlay2.size=1G']}})
    assert bad.get('failed') is True, bad
    assert 'overlay2.size needs the data root %s on XFS mounted with project quota' % data_root in bad['msg']
    assert 'noquota' in bad['msg']
    assert read_bytes(path) == before
    refused = os.path.join(workdir, 'xfs', 'size.json')
    with open(refused, 'w', encoding='utf-8') as handle:
        json.dump({'storage-driver': 'overlay2', 'storage-opts': ['overlay2.size=1G']}, handle)
    with pytest.raises(DockerdFailed, match='overlay2.size'):
        PrivateDockerd(os.path.join(workdir, 'xfs'), data_root=os.path.join(fs['xfs'], 'docker2'),
                       config_file=refused).start()


def test_overlay2_on_ext4_and_remove_keys(ansible, workdir, fs):
    data_root = os.path.join(fs['ext4'], 'docker')
    path, unit, engine = setup_case(workdir, 'ext4', data_root, content=None)
    applied = four_steps(ansible, path, {'path': path, 'flags_sources': [unit],
                                         'config': {'storage-driver': 'overlay2',
                                                    'log-opts': {'max-size': '10m', 'max-file': '3'}}})
    assert applied['diff']['before'] == {}
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
    with engine:
        info = engine.info()
        assert info['Driver'] == 'overlay2'
        assert driver_status(info)['Backing Filesystem'] == 'extfs'

    # state=absent: one nested key and one top-level key; the rest stays.
    args = {'path': path, 'state': 'absent', 'config': {'log-opts': {'max-file': None}},
            'keys': ['storage-driver', 'not-there'], 'flags_sources': [unit]}
    checked = ansible.module(MODULE, args, check=True)
    assert checked['changed'] and load(path)['storage-driver'] == 'overlay2'
    removed = ansible.module(MODULE, args)
    assert removed['changed'] and sorted(removed['changed_keys']) == ['log-opts', 'storage-driver']
    assert load(path) == {'log-opts': {'max-size': '10m'}}
    assert not ansible.module(MODULE, args)['changed']
    # The same data with other whitespace and key order is no change.
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('{"log-opts":{"max-size":"10m"},\n\n"debug": false}')
    same = ansible.module(MODULE, {'path': path, 'flags_sources': [unit],
                                   'config': {'debug': False, 'log-opts': {'max-size': '10m'}}})
    assert not same['changed'], same
    # true and 1 are different values for dockerd.
    different = ansible.module(MODULE, {'path': path, 'flags_sources': [unit], 'config': {'debug': 1}},
                               check=True)
    assert different['changed'], different


BAD_CASES = {
    'invalid_json': dict(
        content='{\n  "log-level": "warn",\n  "storage-driver": "overlay2"\n  "debug": true\n}\n',
        config={'storage-driver': 'btrfs'}, root='btrfs',
        msg=['is not valid JSON at line 4 column 3', 'nothing was changed']),
    'btrfs_on_ext4': dict(
        config={'storage-driver': 'btrfs'}, root='ext4',
        msg=['storage-driver btrfs needs the data root', 'on btrfs, but it is on ext4']),
    'unknown_driver': dict(
        config={'storage-driver': 'overlay3'}, root='xfs',
        msg=['storage-driver overlay3 is unknown to Engine 20.10', 'overlay2']),
    'size_on_ext4': dict(
        config={'storage-driver': 'overlay2', 'storage-opts': ['overlay2.size=10G']}, root='ext4',
        msg=['overlay2.size needs the data root', 'project quota', 'ext4']),
    'option_of_other_driver': dict(
        config={'storage-driver': 'overlay2', 'storage-opts': ['dm.basesize=10G']}, root='xfs',
        msg=['storage-opts entry dm.basesize belongs to devicemapper, not to storage-driver overlay2']),
    'thinpool_missing': dict(
        config={'storage-driver': 'devicemapper', 'storage-opts': ['dm.thinpooldev=/dev/mapper/hp-nope-tpool']},
        root='ext4', msg=['/dev/mapper/hp-nope-tpool is not a block device', 'thin pool']),
    'unknown_key': dict(
        config={'storage-drive': 'overlay2'}, root='xfs',
        msg=['Engine 20.10', 'does not know the key storage-drive']),
    'flag_in_dropin': dict(
        config={'storage-driver': 'btrfs'}, root='btrfs', dropin='[Service]\nExecStart=\nExecStart=/usr/bin/dockerd '
        '-H fd:// \\\n  --storage-driver=vfs --containerd=/run/containerd/containerd.sock\n',
        msg=['storage-driver (flag --storage-driver in', 'override.conf line 3', 'refuses to start']),
    'hosts_vs_debian_unit': dict(
        config={'hosts': ['unix:///run/docker.sock']}, root='ext4', real_unit=True,
        msg=['hosts (flag --host in /lib/systemd/system/docker.service line 14)']),
}


@pytest.mark.parametrize('case', sorted(BAD_CASES))
def test_bad_input_changes_nothing(ansible, workdir, fs, case):
    spec = BAD_CASES[case]
    data_root = os.path.join(fs[spec['root']], 'docker-%s' % case)
    path, unit, dummy_engine = setup_case(workdir, 'bad-' + case, data_root, content=spec.get('content', ORIGINAL))
    sources = [unit]
    if 'dropin' in spec:
        dropin = os.path.join(os.path.dirname(path), 'docker.service.d', 'override.conf')
        os.makedirs(os.path.dirname(dropin))
        with open(dropin, 'w', encoding='utf-8') as handle:
            handle.write(spec['dropin'])
        sources.append(os.path.join(os.path.dirname(dropin), '*.conf'))
    if spec.get('real_unit'):
        require(os.path.exists('/lib/systemd/system/docker.service'), "Debian's docker.service")
        sources = ['/lib/systemd/system/docker.service']
    listing = sorted(os.listdir(os.path.dirname(path)))
    before = read_bytes(path)
    result = ansible.module(MODULE, {'path': path, 'config': spec['config'], 'flags_sources': sources,
                                     'backup': True})
    assert result.get('failed') is True, result
    assert not result.get('changed'), result
    for part in spec['msg']:
        assert part in result['msg'], (part, result['msg'])
    assert read_bytes(path) == before
    assert sorted(os.listdir(os.path.dirname(path))) == listing
    assert not os.path.exists(data_root)
