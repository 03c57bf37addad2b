# SPDX-License-Identifier: GPL-3.0-or-later
"""containerd_snapshotter through real ansible-playbook runs.

On this host's Engine 20.10 (no containerd image store) the module must
refuse and leave every file as it was. The configuration editing is then
proven against the real containerd 1.6.20: the module writes the btrfs
snapshotter drop-in and the imports entry, and a private containerd started
with the edited main file reports its btrfs snapshotter ``ok`` with the
configured root on a loop-mounted btrfs, while containerd's own root is not
on btrfs (so only the drop-in can have put the snapshotter there).

The one stand-in: for that part the module is pointed (dockerd_path) at a
script printing Debian 13's ``dockerd --version`` line, because the engine
installed here predates the containerd image store. containerd, the files,
the filesystem and Ansible are real.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import tomllib
import uuid

from conftest import workdir_fixture
from tests.lab.dockerd import stop_popen

MODULE = 'hostprep.container_host.containerd_snapshotter'
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'unit', 'fixtures', 'containerd')
DAEMON_JSON = '{\n  "log-level": "warn",\n  "features": {"buildkit": true}\n}\n'
PLUGIN = 'io.containerd.snapshotter.v1.btrfs'


workdir = workdir_fixture('hp-ctd', ('containerd', 'ctr', 'dockerd', 'losetup', 'mkfs.btrfs', 'findmnt'))


def make_case(workdir: str, name: str, main: str | None) -> dict:
    """A private containerd main config (Debian 12's file with comments, its
    own root, state and sockets, CRI off), a daemon.json with other keys."""
    case = os.path.join(workdir, name)
    os.makedirs(case)
    short = '/tmp/hpcs-%s' % uuid.uuid4().hex[:6]  # unix sockets are limited to 108 bytes
    paths = {'dir': case, 'config': os.path.join(case, 'config.toml'), 'drop_in': os.path.join(case, 'conf.d', '50-hp.toml'),
             'daemon': os.path.join(case, 'daemon.json'), 'root': os.path.join(case, 'root'),
             'sock': short + '.sock', 'short': short}
    if main is not None:
        with open(paths['config'], 'w', encoding='utf-8') as handle:
            handle.write(main.format(**paths))
    with open(paths['daemon'], 'w', encoding='utf-8') as handle:
        handle.write(DAEMON_JSON)
    return paths


def main_config() -> str:
    with open(os.path.join(FIXTURES, 'debian12_containerd_config.toml'), encoding='utf-8') as handle:
        debian = handle.read().replace('{', '{{').replace('}', '}}')
    return ('# private test containerd, from Debian 12\'s /etc/containerd/config.toml\n'
            'version = 2\n'
            'root = "{root}"   # not on btrfs\n'
            'state = "{short}-state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n\n'
            '[grpc]\n  address = "{sock}"\n\n[ttrpc]\n  address = "{short}.ttrpc"\n\n'
            '[debug]\n  address = "{short}.debug"\n  level = "info"\n\n'
            + debian.split('version = 2\n', 1)[1])


def snapshot(paths: dict) -> dict:
    found = {}
    for dirpath, dirnames, filenames in os.walk(paths['dir']):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, 'rb') as handle:
                found[path] = handle.read()
    return found


def args(paths: dict, **extra) -> dict:
    base = {'snapshotter': 'btrfs', 'containerd_config': paths['config'], 'drop_in': paths['drop_in'],
            'daemon_config': paths['daemon'], 'docker_host': 'unix:///nonexistent/docker.sock'}
    base.update(extra)
    return base


def refused(result: dict, *phrases: str) -> None:
    assert result['failed'] and not result.get('changed'), result
    for phrase in phrases:
        assert phrase in result['msg'], result['msg']


def plugin_details(text: str) -> dict[str, dict]:
    """``ctr plugins ls -d`` blocks keyed by "TYPE/ID". containerd 1.6's ctr
    has no machine format for plugins (no --format), so its fixed
    "Key: value" layout is read; Exports and Error lines are indented."""
    plugins: dict[str, dict] = {}
    current: dict = {}
    section = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(' '):
            key, dummy, value = line.partition(':')
            key = key.strip()
            if key == 'Type':
                current = {'exports': {}, 'error': None}
            current[key] = value.strip()
            section = key
            if key == 'ID':
                plugins['%s/%s' % (current['Type'], current['ID'])] = current
        elif section == 'Exports':
            name, dummy, value = line.strip().partition(' ')
            current['exports'][name] = value.strip()
        elif section == 'Error':
            current['error'] = ((current['error'] or '') + ' ' + line.strip()).strip()
    return plugins


class PrivateContainerd:
    def __init__(self, paths: dict) -> None:
        self.paths = paths
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> 'PrivateContainerd':
        log = open(os.path.join(self.paths['dir'], 'containerd.log'), 'wb')  # pylint: disable=consider-using-with
        self.proc = subprocess.Popen(['containerd', '--config', self.paths['config']], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        end = time.monotonic() + 30
        while time.monotonic() < end:
            assert self.proc.poll() is None, 'containerd exited: %s' % self.log()
            if os.path.exists(self.paths['sock']) and self.ctr('version').returncode == 0:
                return self
            time.sleep(0.2)
        raise AssertionError('containerd did not answer: %s' % self.log())

    def log(self) -> str:
        with open(os.path.join(self.paths['dir'], 'containerd.log'), encoding='utf-8', errors='replace') as handle:
            return handle.read()[-3000:]

    def ctr(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(['ctr', '--address', self.paths['sock']] + list(cmd), capture_output=True, text=True,
                              check=False, timeout=30)

    def __exit__(self, *exc) -> None:
        stop_popen(self.proc)
        short = self.paths['short']
        subprocess.run(['umount', '-R', short + '-state'], capture_output=True, check=False)
        shutil.rmtree(short + '-state', ignore_errors=True)
        for suffix in ('.sock', '.ttrpc', '.debug'):
            if os.path.exists(short + suffix):
                os.unlink(short + suffix)


def test_engine_20_10_refused(ansible, workdir, btrfs):
    """This host's real engine: no containerd image store, nothing changed."""
    paths = make_case(workdir, 'engine20', main_config())
    before = snapshot(paths)
    result = ansible.module(MODULE, args(paths, root_path=os.path.join(btrfs, 'refused')))
    refused(result, 'Engine 20.10.24 has no containerd image store', 'dm.thinpooldev', 'devicemapper_direct',
            'nothing was changed')
    assert result['supported'] is False and result['reason'] == result['msg']
    assert snapshot(paths) == before and not os.path.exists(paths['drop_in'])
    assert not os.path.exists(os.path.join(btrfs, 'refused'))


def test_btrfs_snapshotter_four_steps(ansible, workdir, btrfs, engine26):
    paths = make_case(workdir, 'btrfs', main_config())
    root_path = os.path.join(btrfs, 'snapshots')
    module_args = args(paths, root_path=root_path, dockerd_path=engine26)
    with open(paths['config'], encoding='utf-8') as handle:
        original = handle.read()

    before = snapshot(paths)
    checked = ansible.module(MODULE, module_args, check=True)
    assert not checked['failed'] and checked['changed'], checked
    assert checked['containerd_config_changed'] and checked['daemon_config_changed'] and checked['restart_required']
    assert checked['storage']['mount']['fstype'] == 'btrfs' and checked['root_path'] == root_path
    assert snapshot(paths) == before and not os.path.exists(paths['drop_in']), 'check mode wrote files'

    applied = ansible.module(MODULE, module_args)
    assert not applied['failed'] and applied['changed'], applied
    assert applied['engine']['version'] == '26.1.5' and applied['supported'] is True
    with open(paths['config'], encoding='utf-8') as handle:
        edited = handle.read()
    added = 'imports = ["%s"]\n' % paths['drop_in']
    assert edited.replace(added, '', 1) == original, 'other lines of the main config changed'
    data_before, data_after = tomllib.loads(original), tomllib.loads(edited)
    assert data_after.pop('imports') == [paths['drop_in']] and data_after == data_before
    with open(paths['drop_in'], 'rb') as handle:
        assert tomllib.load(handle) == {'version': 2, 'plugins': {PLUGIN: {'root_path': root_path}}}
    with open(paths['daemon'], encoding='utf-8') as handle:
        assert json.load(handle) == {'log-level': 'warn', 'storage-driver': 'btrfs',
                                     'features': {'buildkit': True, 'containerd-snapshotter': True}}

    again = ansible.module(MODULE, module_args)
    assert not again['failed'] and not again['changed'], again
    assert not again['restart_required']

    # verify: containerd reads the drop-in ...
    dump = subprocess.run(['containerd', '--config', paths['config'], 'config', 'dump'], capture_output=True,
                          text=True, check=True).stdout
    assert tomllib.loads(dump)['plugins'][PLUGIN]['root_path'] == root_path
    # ... and its btrfs snapshotter runs on the configured root
    with PrivateContainerd(paths) as containerd:
        listing = containerd.ctr('plugins', 'ls', '-d')
        assert listing.returncode == 0, listing.stderr
        plugin = plugin_details(listing.stdout)['%s/btrfs' % 'io.containerd.snapshotter.v1']
        assert plugin['error'] is None and plugin['exports'] == {'root': root_path}, plugin
        # the default root (under containerd's root, not on btrfs) would be skipped
        assert 'btrfs' not in subprocess.run(['findmnt', '-n', '-o', 'FSTYPE', '-T', paths['dir']],
                                             capture_output=True, text=True, check=True).stdout
        status = [line.split() for line in containerd.ctr('plugins', 'ls').stdout.splitlines()]
        assert ['io.containerd.snapshotter.v1', 'btrfs', 'linux/amd64', 'ok'] in status


def test_bad_input_refused(ansible, workdir, btrfs, engine26):
    cases = {
        'not btrfs': make_case(workdir, 'ext', main_config()),
        'no pool': make_case(workdir, 'pool', main_config()),
        'bad toml': make_case(workdir, 'toml', 'version = 2\n[grpc\n  address = "x"\n'),
        'version 1': make_case(workdir, 'v1', 'root = "/var/lib/containerd"\n[plugins.cri]\n  x = 1\n'),
        'bad pool name': make_case(workdir, 'name', main_config()),
    }
    before = {name: snapshot(paths) for name, paths in cases.items()}
    results = ansible.module_tasks(MODULE, {
        'not btrfs': args(cases['not btrfs'], root_path=os.path.join(cases['not btrfs']['dir'], 'snap'),
                          dockerd_path=engine26),
        'no pool': args(cases['no pool'], snapshotter='devmapper', pool_name='hp-missing-pool', dockerd_path=engine26),
        'bad toml': args(cases['bad toml'], root_path=os.path.join(btrfs, 'snap2'), dockerd_path=engine26),
        'version 1': args(cases['version 1'], root_path=os.path.join(btrfs, 'snap3'), dockerd_path=engine26),
        'bad pool name': args(cases['bad pool name'], snapshotter='devmapper', pool_name='vg/pool',
                              dockerd_path=engine26),
    })
    refused(results['not btrfs'], 'is on ', 'not on btrfs', 'btrfs_data_root')
    refused(results['no pool'], 'thin pool hp-missing-pool does not exist', '/dev/mapper/hp-missing-pool',
            'lvm_thinpool')
    refused(results['bad toml'], 'is not valid TOML', cases['bad toml']['config'])
    refused(results['version 1'], 'version 1', 'migrate it to version 2')
    refused(results['bad pool name'], "pool_name 'vg/pool' is not a device-mapper name")
    for name, paths in cases.items():
        assert snapshot(paths) == before[name], '%s: files changed' % name
        assert not os.path.exists(paths['drop_in'])


def test_plan_before_the_pool_exists(ansible, workdir, engine26):
    """The docker_storage role plans the snapshotter in check mode before
    lvm_thinpool creates the pool: with check_storage=false the plan reports
    the change without looking for the pool, and writes nothing; the same
    call without check mode still refuses the missing pool."""
    case = make_case(workdir, 'plan', main_config())
    before = snapshot(case)
    call = args(case, snapshotter='devmapper', pool_name='hp-later-pool', dockerd_path=engine26, check_storage=False)
    results = ansible.module_tasks(MODULE, [('plan', call, True), ('apply', dict(call, check_storage=True), False)])
    plan = results['plan']
    assert not plan['failed'] and plan['changed'], plan
    assert plan['storage'] == {'checked': False}
    assert plan['settings']['pool_name'] == 'hp-later-pool'
    refused(results['apply'], 'thin pool hp-later-pool does not exist')
    assert snapshot(case) == before
    assert not os.path.exists(case['drop_in'])
