# SPDX-License-Identifier: GPL-3.0-or-later
"""docker_storage_info against a real private dockerd 20.10 (dockerd.py).

For btrfs (loop-mounted btrfs), overlay2 (loop-mounted ext4) and vfs (ext4):
an empty engine, then one with images, a dangling image, containers (one
running) and volumes made through the SDK; the module's facts must match
what the engine's SDK, the docker CLI's ``system df`` and os.statvfs say,
in check mode too, and the data root must be left as it was. Then dockerd
is stopped: the module still answers from the files, with a warning.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess

from conftest import filesystems_fixture, workdir_fixture
from tests.lab.dockerd import PrivateDockerd, import_busybox

MODULE = 'hostprep.container_host.docker_storage_info'
CASES = [('btrfs', 'btrfs'), ('overlay2', 'ext4'), ('vfs', 'ext4')]


workdir = workdir_fixture('hp-dsi', ('dockerd', 'containerd', 'runc', 'losetup', 'findmnt', 'mkfs.btrfs', 'mkfs.ext4',
                                     'busybox', 'docker'))
fs = filesystems_fixture(btrfs=None, ext4=256)


def tree(path: str) -> list[str]:
    """Every name under path (what a read-only module must not change)."""
    names = []
    for dirpath, dirs, files in os.walk(path):
        names += [os.path.relpath(os.path.join(dirpath, n), path) for n in dirs + files]
    return sorted(names)


def populate(client) -> None:
    image = import_busybox(client)
    for command, repository in (('echo layer > /l.txt', 'hostprep-dsi'), ('echo dangling > /d.txt', None)):
        maker = client.containers.create(image, ['sh', '-c', command], network_mode='none')
        maker.start()
        maker.wait()
        maker.commit(repository=repository, tag='v1' if repository else None)
        maker.remove()
    client.volumes.create('hostprep-dsi-data')
    client.volumes.create('hostprep-dsi-empty')
    client.containers.run(image, ['sh', '-c', 'echo 0123456789 > /v/f; echo rw > /rw'], network_mode='none',
                          volumes={'hostprep-dsi-data': {'bind': '/v', 'mode': 'rw'}}, name='hostprep-dsi-exited')
    client.containers.create('hostprep-dsi:v1', ['true'], network_mode='none', name='hostprep-dsi-created')
    client.containers.run(image, ['/bin/busybox', 'sleep', '600'], network_mode='none', detach=True,
                          name='hostprep-dsi-running')


def cli_df(engine: PrivateDockerd) -> dict[str, dict]:
    """`docker system df` of the docker CLI, by type."""
    out = subprocess.run(['docker', '-H', engine.base_url, 'system', 'df', '--format', '{{json .}}'],
                         capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {row['Type']: row for row in rows}


def expected_from_sdk(client) -> dict:
    df = client.df()
    dangling = client.api.images(filters={'dangling': True}, quiet=True)
    used = sum(i['Size'] - i['SharedSize'] for i in df['Images'] if i['Containers'] > 0)
    return {
        'images': {'count': len(client.api.images(all=True, quiet=True)),
                   'active': sum(1 for i in df['Images'] if i['Containers'] > 0),
                   'size': df['LayersSize'], 'reclaimable': df['LayersSize'] - used,
                   'dangling': len(dangling),
                   'dangling_size': sum(i['Size'] - i['SharedSize'] for i in df['Images'] if i['Id'] in dangling)},
        'containers': {'count': len(client.containers.list(all=True)), 'running': len(client.containers.list()),
                       'size': sum(c.get('SizeRw', 0) for c in df['Containers']),
                       'reclaimable': sum(c.get('SizeRw', 0) for c in df['Containers'] if c['State'] != 'running')},
        'volumes': {'count': len(client.volumes.list()),
                    'size': sum(v['UsageData']['Size'] for v in df['Volumes']),
                    'reclaimable': sum(v['UsageData']['Size'] for v in df['Volumes']
                                       if v['UsageData']['RefCount'] == 0)},
    }


def check_backing_fs(facts: dict, mountpoint: str, fstype: str) -> None:
    backing = facts['backing_fs']
    # A running dockerd may bind-mount the data root onto itself (btrfs does).
    assert backing['fstype'] == fstype and backing['target'] in (mountpoint, facts['data_root'])
    assert backing['source'].startswith('/dev/loop')
    st = os.statvfs(mountpoint)
    assert backing['size'] == st.f_blocks * st.f_frsize
    # used and free move a little while dockerd writes; within 8 MiB.
    assert abs(backing['free'] - st.f_bavail * st.f_frsize) < 8 * 1024 ** 2
    assert abs(backing['used'] - (st.f_blocks - st.f_bfree) * st.f_frsize) < 8 * 1024 ** 2
    assert backing['d_type'] is True


def ok(result: dict) -> dict:
    assert not result['failed'], result
    assert result['changed'] is False
    return result


def test_running_then_stopped(ansible, workdir, fs):
    """btrfs, overlay2 on ext4 and vfs side by side (three private engines,
    so each step is one ansible-playbook run for all three)."""
    engines = {}
    args = {}
    roots = {}
    for driver, fstype in CASES:
        roots[driver] = os.path.join(fs[fstype], 'docker-%s' % driver)
        engines[driver] = PrivateDockerd(workdir, data_root=roots[driver], storage_driver=driver)
        # daemon_config does not exist: no settings
        args[driver] = {'docker_host': engines[driver].base_url, 'flags_sources': [],
                        'daemon_config': os.path.join(workdir, 'daemon-%s.json' % driver)}
    try:
        for engine in engines.values():
            engine.start()

        # Empty engines.
        runs = ansible.module_tasks(MODULE, [('empty ' + d, args[d], False) for d, dummy in CASES])
        for driver, fstype in CASES:
            facts = ok(runs['empty ' + driver])['storage']
            assert facts['engine'] == {'reachable': True, 'version': '20.10.24', 'api_version': '1.41',
                                       'containerd_image_store': False}, driver
            assert facts['driver'] == driver and facts['driver_source'] == 'api'
            assert facts['data_root'] == roots[driver]
            assert facts['driver_status'] == dict(engines[driver].info()['DriverStatus'] or [])
            assert facts['devicemapper'] is None and facts['thinpool'] is None
            check_backing_fs(facts, fs[fstype], fstype)
            assert facts['images']['count'] == 0 and facts['containers']['count'] == 0, driver
            assert facts['volumes'] == {'count': 0, 'size': 0, 'reclaimable': 0}

        # With objects: the SDK's and the CLI's numbers; check mode the same.
        expected = {}
        before = {}
        for driver, dummy in CASES:
            populate(engines[driver].client)
            expected[driver] = expected_from_sdk(engines[driver].client)
            before[driver] = tree(roots[driver])
        tasks = []
        for driver, dummy in CASES:
            tasks += [('checked ' + driver, args[driver], True), ('applied ' + driver, args[driver], False)]
        runs = ansible.module_tasks(MODULE, tasks)
        for driver, fstype in CASES:
            checked = ok(runs['checked ' + driver])['storage']
            facts = ok(runs['applied ' + driver])['storage']
            assert tree(roots[driver]) == before[driver], 'the module changed the data root of %s' % driver
            for key in ('images', 'containers', 'volumes'):
                assert facts[key] == expected[driver][key], (driver, key)
                assert checked[key] == expected[driver][key], (driver, key)
            assert facts['images']['count'] == 3 and facts['images']['dangling'] == 1
            assert facts['images']['dangling_size'] == len('dangling\n')
            assert facts['containers']['running'] == 1 and facts['containers']['count'] == 3
            assert facts['volumes']['size'] == len('0123456789\n')
            cli = cli_df(engines[driver])
            assert int(cli['Images']['TotalCount']) == facts['images']['count']
            assert int(cli['Images']['Active']) == facts['images']['active']
            assert int(cli['Containers']['TotalCount']) == facts['containers']['count']
            assert int(cli['Containers']['Active']) == facts['containers']['running']
            assert int(cli['Local Volumes']['TotalCount']) == facts['volumes']['count']
            check_backing_fs(facts, fs[fstype], fstype)

        # dockerd stopped: file-level facts, a warning, no failure; the same
        # with api=false (no warning). Without the engine the data root comes
        # from the files; name it.
        for engine in engines.values():
            engine.stop()
        tasks = []
        for driver, dummy in CASES:
            args[driver]['data_root'] = roots[driver]
            tasks += [('stopped ' + driver, args[driver], False),
                      ('files only ' + driver, dict(args[driver], api=False), False)]
        runs = ansible.module_tasks(MODULE, tasks)
        for driver, fstype in CASES:
            stopped, files_only = ok(runs['stopped ' + driver]), ok(runs['files only ' + driver])
            facts = stopped['storage']
            assert facts['engine']['reachable'] is False and facts['engine']['version'] == '20.10.24'
            assert facts['engine']['api_version'] is None
            assert any(engines[driver].base_url in w and 'did not answer' in w for w in stopped['warnings']), stopped
            assert facts['driver'] == driver and facts['driver_source'] == 'data_root'
            assert facts['driver_status'] is None
            assert facts['data_root'] == roots[driver]
            check_backing_fs(facts, fs[fstype], fstype)
            assert facts['images']['count'] == expected[driver]['images']['count']
            assert facts['images']['dangling'] == expected[driver]['images']['dangling']
            assert facts['images']['size'] is None
            assert facts['containers']['count'] == expected[driver]['containers']['count']
            assert facts['volumes']['count'] == expected[driver]['volumes']['count']
            assert files_only['storage']['engine']['reachable'] is None
            assert not files_only.get('warnings')
            for key in ('driver', 'data_root', 'images', 'containers', 'volumes'):
                assert files_only['storage'][key] == facts[key], (driver, key)
    finally:
        for engine in engines.values():
            engine.stop()


def test_unreachable_engine_is_a_warning(ansible, workdir):
    """A missing socket, and a socket nobody answers on (connection refused)."""
    stale = '/tmp/hp-dsi-stale-%d.sock' % os.getpid()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(stale)  # bound, never listening: connect() is refused
    hosts = ['unix:///tmp/hp-dsi-missing-%d.sock' % os.getpid(), 'unix://' + stale]
    try:
        runs = ansible.module_tasks(MODULE, [
            (host, {'docker_host': host, 'data_root': workdir, 'timeout': 5,
                    'daemon_config': os.path.join(workdir, 'none.json'), 'flags_sources': []}, False)
            for host in hosts])
    finally:
        sock.close()
        os.unlink(stale)
    for host in hosts:
        result = ok(runs[host])
        facts = result['storage']
        assert facts['engine']['reachable'] is False
        assert any(host in w and 'did not answer' in w for w in result['warnings']), result
        assert facts['data_root'] == workdir
        assert facts['backing_fs']['fstype']


def test_settings_from_daemon_config_and_flags(ansible, workdir, fs):
    """Engine stopped: data root and driver come from daemon.json, else from
    dockerd's flags in a unit file; a broken daemon.json is a warning."""
    data_root = os.path.join(fs['btrfs'], 'configured')
    config = os.path.join(workdir, 'configured.json')
    with open(config, 'w', encoding='utf-8') as handle:
        json.dump({'data-root': data_root, 'storage-driver': 'btrfs'}, handle)
    unit = os.path.join(workdir, 'docker.service')
    with open(unit, 'w', encoding='utf-8') as handle:
        handle.write('[Service]\nExecStart=/usr/sbin/dockerd -H fd:// --data-root %s -s vfs\n' % fs['ext4'])
    broken = os.path.join(workdir, 'broken.json')
    with open(broken, 'w', encoding='utf-8') as handle:
        handle.write('{"storage-driver": "btrfs",\n}')
    before = [n for n in tree(workdir) if not n.startswith('play-')]
    runs = ansible.module_tasks(MODULE, [
        ('daemon.json', {'daemon_config': config, 'flags_sources': [], 'api': False}, True),
        ('flags', {'daemon_config': os.path.join(workdir, 'none.json'), 'flags_sources': [unit], 'api': False},
         False),
        ('broken', {'daemon_config': broken, 'flags_sources': [unit], 'api': False}, False),
    ])
    assert [n for n in tree(workdir) if not n.startswith('play-')] == before

    facts = ok(runs['daemon.json'])['storage']
    assert facts['data_root'] == data_root and facts['driver'] == 'btrfs'
    assert facts['driver_source'] == 'daemon_config'
    assert facts['backing_fs']['fstype'] == 'btrfs' and facts['backing_fs']['target'] == fs['btrfs']
    # The data root does not exist: nothing is stored there.
    assert facts['images']['count'] == 0 and facts['volumes']['count'] == 0

    facts = ok(runs['flags'])['storage']
    assert facts['data_root'] == fs['ext4'] and facts['driver'] == 'vfs' and facts['driver_source'] == 'flags'
    assert facts['backing_fs']['fstype'] == 'ext4'

    result = ok(runs['broken'])
    assert any('%s is not valid JSON at line 2' % broken in w for w in result['warnings']), result
    assert result['storage']['driver'] == 'vfs'


BAD_INPUT = [
    ({'docker_host': '/var/run/docker.sock'}, "docker_host '/var/run/docker.sock' is not an engine address"),
    ({'timeout': 0}, 'timeout 0 is not a number of seconds'),
    ({'data_root': '/etc/hostname'}, 'data_root /etc/hostname is not a directory'),
    ({'daemon_config': '/etc'}, 'daemon_config /etc is a directory'),
]


def test_bad_input(ansible, workdir):
    runs = ansible.module_tasks(MODULE, [('bad %d' % i, dict(args, flags_sources=[]), False)
                                         for i, (args, dummy) in enumerate(BAD_INPUT)])
    for i, (dummy, message) in enumerate(BAD_INPUT):
        result = runs['bad %d' % i]
        assert result['failed'] is True, result
        assert message in result['msg'], result['msg']
        assert result.get('changed') is False
