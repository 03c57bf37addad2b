# SPDX-License-Identifier: GPL-3.0-or-later
"""daemon.json as the modules that write it and the modules that only read it see it, through real
ansible-playbook runs (issue 14: one home for the file, ``_daemon_json``).

- containerd_snapshotter writes daemon.json as docker_daemon_config does: through a symbolic link to the file it
  names, keeping the link (it used to refuse the link). Its containerd config.toml with CRLF line breaks keeps the
  bytes of every line it does not change. Check mode, apply, apply again.
- docker_storage_info only reads daemon.json: a file with another hard link is read (only a writer must refuse
  it), a dangling link is no file, as it is for dockerd, and a file that is not UTF-8 is a warning, not a
  traceback.
"""

from __future__ import annotations

import json
import os
import tomllib

from conftest import workdir_fixture

CONTAINERD = 'hostprep.container_host.containerd_snapshotter'
INFO = 'hostprep.container_host.docker_storage_info'
DAEMON_JSON = '{\n  "log-level": "warn",\n  "features": {"buildkit": true}\n}\n'
MAIN_CRLF = ('# written on another system: CRLF line breaks\r\nversion = 2\r\nroot = "{root}"\r\n\r\n'
             '[grpc]\r\n  address = "{root}/containerd.sock"\r\n')


workdir = workdir_fixture('hp-djf', ('losetup', 'mkfs.btrfs', 'findmnt'))


def write(path: str, data: str | bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as handle:
        handle.write(data.encode('utf-8') if isinstance(data, str) else data)
    return path


def read(path: str) -> bytes:
    with open(path, 'rb') as handle:
        return handle.read()


def test_containerd_writes_through_the_link_and_keeps_crlf(ansible, workdir, btrfs, engine26):
    case = os.path.join(workdir, 'link')
    real = write(os.path.join(case, 'srv', 'docker', 'daemon.json'), DAEMON_JSON)
    link = os.path.join(case, 'etc', 'daemon.json')
    os.makedirs(os.path.dirname(link))
    os.symlink(real, link)
    config = write(os.path.join(case, 'config.toml'), MAIN_CRLF.format(root=os.path.join(case, 'root')))
    main_before = read(config)
    call = {'snapshotter': 'btrfs', 'containerd_config': config, 'drop_in': os.path.join(case, 'conf.d', 'hp.toml'),
            'daemon_config': link, 'root_path': os.path.join(btrfs, 'snapshots'), 'dockerd_path': engine26,
            'docker_host': 'unix:///nonexistent/docker.sock'}
    os.makedirs(call['root_path'])
    results = ansible.module_tasks(CONTAINERD, [('check', call, True), ('apply', call, False),
                                                ('again', call, False)])
    check, apply, again = results['check'], results['apply'], results['again']
    assert not check['failed'] and check['changed'] and check['daemon_config_changed'], check
    assert not apply['failed'] and apply['changed'], apply
    assert not again['failed'] and not again['changed'], again

    assert os.path.islink(link) and os.readlink(link) == real
    data = json.loads(read(real))
    assert data == {'log-level': 'warn', 'features': {'buildkit': True, 'containerd-snapshotter': True},
                    'storage-driver': 'btrfs'}
    main_after = read(config)
    added = [line for line in main_after.splitlines(True) if line not in main_before.splitlines(True)]
    assert len(added) == 1 and added[0].startswith(b'imports = '), main_after
    assert main_after.replace(added[0], b'') == main_before
    assert tomllib.loads(main_after.decode())['imports'] == [call['drop_in']]


def test_storage_info_reads_what_a_writer_refuses(ansible, workdir):
    case = os.path.join(workdir, 'info')
    hard = write(os.path.join(case, 'daemon.json'), '{"data-root": "%s", "storage-driver": "vfs"}\n'
                 % os.path.join(case, 'data'))
    os.link(hard, os.path.join(case, 'daemon.json.hardlink'))
    os.makedirs(os.path.join(case, 'data'))
    dangling = os.path.join(case, 'dangling.json')
    os.symlink(os.path.join(case, 'none.json'), dangling)
    latin1 = write(os.path.join(case, 'latin1.json'), '{"label": "caf\xe9"}\n'.encode('latin-1'))
    base = {'flags_sources': [], 'api': False}
    results = ansible.module_tasks(INFO, {
        'hard link': dict(base, daemon_config=hard),
        'dangling link': dict(base, daemon_config=dangling, data_root=os.path.join(case, 'data')),
        'not UTF-8': dict(base, daemon_config=latin1, data_root=os.path.join(case, 'data')),
    })
    hard_link = results['hard link']
    assert not hard_link['failed'], hard_link
    assert hard_link['storage']['data_root'] == os.path.join(case, 'data')
    assert hard_link['storage']['driver'] == 'vfs'
    assert not results['dangling link']['failed'], results['dangling link']
    broken = results['not UTF-8']
    assert not broken['failed'], broken
    assert any('is not UTF-8 text' in warning for warning in broken.get('warnings', [])), broken
