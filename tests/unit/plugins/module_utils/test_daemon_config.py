# SPDX-License-Identifier: GPL-3.0-or-later
"""daemon.json logic: parsing, data comparison, merge/remove, dockerd flag
detection and storage checks, fed output recorded from dockerd 20.10.24 and
findmnt on loop-mounted btrfs, XFS and ext4 (tests/unit/fixtures/docker)."""

from __future__ import annotations

import json
import os
import re

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _daemon_config as dc
from ansible_collections.hostprep.container_host.plugins.module_utils import _daemon_json as dj
from ansible_collections.hostprep.container_host.plugins.module_utils import _dockerd_flags as df
from ansible_collections.hostprep.container_host.plugins.module_utils import _storage_keys as sk
from ansible_collections.hostprep.container_host.plugins.module_utils import _engine

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'docker')


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return handle.read()


# ---- parsing and comparing --------------------------------------------------

@pytest.mark.parametrize('text, where', [
    ('{\n  "a": 1\n  "b": 2\n}', 'line 3 column 3'),
    ('{"a": 1,}', 'line 1 column 9'),
    ('{\n"storage-driver": overlay2\n}', 'line 2 column 19'),
])
def test_invalid_json_says_where(text, where):
    with pytest.raises(dj.ConfigProblem) as info:
        dj.parse_config(text, '/etc/docker/daemon.json')
    assert '/etc/docker/daemon.json is not valid JSON at %s' % where in info.value.msg
    assert 'nothing was changed' in info.value.msg


@pytest.mark.parametrize('text,kind', [('[1]', 'list'), ('"overlay2"', 'string'), ('3', 'number'), ('null', 'null'),
                                       ('true', 'boolean')])
def test_json_that_is_not_an_object(text, kind):
    with pytest.raises(dj.ConfigProblem, match='x.json holds a JSON %s, not an object' % kind):
        dj.parse_config(text, 'x.json')


@pytest.mark.parametrize('text,words', [
    ('{"debug": NaN}', 'NaN is not JSON (dockerd refuses it)'),
    ('{"max-concurrent-downloads": Infinity}', 'Infinity is not JSON'),
    ('{"a": ' + '[' * 100000 + ']' * 100000 + '}', 'nests lists or objects too deeply'),
])
def test_what_dockerd_cannot_read_is_refused(text, words):
    with pytest.raises(dj.ConfigProblem) as info:
        dj.parse_config(text, '/etc/docker/daemon.json')
    assert '/etc/docker/daemon.json' in info.value.msg and words in info.value.msg


def test_duplicate_keys_refused_for_a_rewrite():
    text = '{"log-level": "warn", "debug": false, "log-opts": {"max-size": "1m", "max-size": "2m"}, "debug": true}'
    with pytest.raises(dj.ConfigProblem) as info:
        dj.parse_config(text, '/etc/docker/daemon.json', refuse_duplicates=True)
    assert '/etc/docker/daemon.json sets debug, max-size more than once' in info.value.msg
    assert info.value.details['duplicates'] == ['debug', 'max-size']


def test_render_refuses_nan():
    with pytest.raises(ValueError):
        dj.render({'x': float('nan')})


def test_missing_empty_and_duplicate():
    assert dj.parse_config(None, 'x') == (None, [])
    data, warnings = dj.parse_config(' \n', 'x')
    assert data == {} and 'dockerd refuses an empty file' in warnings[0]
    data, warnings = dj.parse_config('{"debug": false, "debug": true}', 'x')
    assert data == {'debug': True} and 'sets debug more than once' in warnings[0]


def test_compare_as_data():
    a, dummy = dj.parse_config('{"b": [1, 2],\n  "a": {"y": 1, "x": 2}}', 'x')
    b, dummy = dj.parse_config('{"a":{"x":2,"y":1},"b":[1,2]}', 'x')
    assert dj.same(a, b)
    assert not dj.same({'debug': True}, {'debug': 1})
    assert not dj.same({'b': [1, 2]}, {'b': [2, 1]})


def test_merge_keeps_other_keys_and_merges_objects():
    current = {'log-level': 'warn', 'log-opts': {'max-file': '3'}, 'storage-opts': ['overlay2.size=1G']}
    merged = dj.merge(current, {'log-opts': {'max-size': '10m'}, 'storage-opts': ['overlay2.size=2G'],
                                'storage-driver': 'overlay2'})
    assert merged == {'log-level': 'warn', 'log-opts': {'max-file': '3', 'max-size': '10m'},
                      'storage-opts': ['overlay2.size=2G'], 'storage-driver': 'overlay2'}
    assert list(merged) == ['log-level', 'log-opts', 'storage-opts', 'storage-driver']
    assert current['log-opts'] == {'max-file': '3'}
    flat = dj.merge(current, {'log-opts': {'max-size': '10m'}}, recursive=False)
    assert flat['log-opts'] == {'max-size': '10m'}


def test_remove_whatever_the_value():
    current = {'debug': True, 'features': {'buildkit': True, 'containerd-snapshotter': True}, 'labels': ['a']}
    assert dj.remove(current, {'debug': False, 'features': {'containerd-snapshotter': None}}, ['labels', 'nope']) \
        == {'features': {'buildkit': True}}
    assert dj.remove(current, {'features': {}}, None) == {'debug': True, 'labels': ['a']}


def test_render_is_stable_json():
    text = dj.render({'storage-driver': 'btrfs', 'labels': ['ü']})
    assert text.endswith('}\n') and json.loads(text) == {'storage-driver': 'btrfs', 'labels': ['ü']}


# ---- keys and flags, checked against what dockerd 20.10.24 reported -----------

def _reported(error: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, error))


def test_unknown_keys_match_dockerd():
    probe = json.loads(fixture('dockerd_20.10.24_keys_probe.json'))
    error = fixture('dockerd_20.10.24_unknown_keys_error.txt')
    reported = set(error.split("don't match any configuration option: ", 1)[1].strip().split(', '))
    assert set(dj.unknown_keys(probe)) == reported
    assert dj.unknown_keys({'storage-driver': 'x', 'data-root': '/x'}) == []


def test_flag_to_key_mapping_matches_dockerd_conflicts():
    flags = df.parse_flags(fixture('dockerd_20.10.24_conflict_flags.txt').split(), 'cmdline', 1)
    config = json.loads(fixture('dockerd_20.10.24_conflict_config.json'))
    ours = {use.key for use in df.find_conflicts(config, flags)}
    theirs = _reported(fixture('dockerd_20.10.24_conflict_error.txt'), r'(?:^|[:,] ?)\s*([a-z-]+): \(from flag')
    assert ours == theirs
    assert 'runtimes' not in ours  # dockerd merges --add-runtime with the file


def test_parse_flags_forms():
    uses = df.parse_flags(['-H', 'fd://', '--containerd=/run/c.sock', '-s', 'btrfs', '-Dl', 'debug',
                           '--iptables', '--data-root', '/srv/docker', '-gX', '$DOCKER_OPTS', '--selinux-enabled'])
    assert [(u.flag, u.value) for u in uses] == [
        ('host', 'fd://'), ('containerd', '/run/c.sock'), ('storage-driver', 'btrfs'), ('debug', None),
        ('log-level', 'debug'), ('iptables', None), ('data-root', '/srv/docker'), ('graph', 'X'),
        ('selinux-enabled', None)]
    assert [u.key for u in uses][:3] == ['hosts', 'containerd', 'storage-driver']


def test_debian_unit_and_default_file():
    files = {'/lib/systemd/system/docker.service': fixture('debian12_docker.service'),
             '/etc/default/docker': fixture('debian12_etc_default_docker')}
    uses = df.scan_flag_sources(files)
    assert [(u.flag, u.value, u.line) for u in uses] == [
        ('host', 'fd://', 14), ('containerd', '/run/containerd/containerd.sock', 14)]
    assert [u.key for u in df.find_conflicts({'hosts': ['unix:///x'], 'debug': True}, uses)] == ['hosts']


def test_dropin_resets_exec_start_and_env_files():
    unit = fixture('debian12_docker.service')
    dropin = ('# override\n[Service]\nExecStart=\nExecStart=/usr/bin/dockerd \\\n'
              '    --storage-driver=devicemapper \\\n    --storage-opt dm.thinpooldev=/dev/mapper/docker-thinpool\n'
              'Environment="HTTP_PROXY=http://proxy:3128" "DOCKER_EXTRA=--log-level warn"\n')
    sysconfig = ('# /etc/sysconfig/docker-storage\nDOCKER_STORAGE_OPTIONS="--storage-driver overlay2"\n'
                 '#OPTIONS="--debug"\nexport OPTIONS=\'--selinux-enabled --log-driver=journald\'\n')
    uses = df.scan_flag_sources({'/lib/systemd/system/docker.service': unit,
                                 '/etc/systemd/system/docker.service.d/override.conf': dropin,
                                 '/etc/sysconfig/docker-storage': sysconfig})
    got = [(u.flag, u.value, u.source.rsplit('/', 1)[1], u.line) for u in uses]
    assert got == [
        ('storage-driver', 'devicemapper', 'override.conf', 4),
        ('storage-opt', 'dm.thinpooldev=/dev/mapper/docker-thinpool', 'override.conf', 4),
        ('log-level', 'warn', 'override.conf', 7),
        ('storage-driver', 'overlay2', 'docker-storage', 2),
        ('selinux-enabled', None, 'docker-storage', 4),
        ('log-driver', 'journald', 'docker-storage', 4),
    ]
    msg = df.conflict_message('/etc/docker/daemon.json', df.find_conflicts({'storage-driver': 'btrfs'}, uses))
    assert 'storage-driver (flag --storage-driver in /etc/systemd/system/docker.service.d/override.conf line 4)' in msg
    assert 'dockerd refuses to start' in msg and 'nothing was changed' in msg


def test_full_unit_in_etc_replaces_the_packaged_one():
    lib = fixture('debian12_docker.service')
    etc = '[Service]\nExecStart=/usr/sbin/dockerd --containerd=/run/containerd/containerd.sock\n'
    uses = df.scan_flag_sources({'/lib/systemd/system/docker.service': lib, '/etc/systemd/system/docker.service': etc})
    assert [u.flag for u in uses] == ['containerd']


def test_expand_sources(tmp_path):
    (tmp_path / 'd').mkdir()
    for name in ('b.conf', 'a.conf', 'a.conf~'):
        (tmp_path / 'd' / name).write_text('[Service]\n')
    found = df.expand_sources([str(tmp_path / 'missing'), str(tmp_path / 'd' / '*.conf*')])
    assert [os.path.basename(p) for p in found] == ['a.conf', 'b.conf']


def test_data_root_from_config_or_flags():
    flag = df.parse_flags(['--data-root', '/srv/docker'])
    assert sk.data_root_of({}, flag) == '/srv/docker'
    assert sk.data_root_of({'data-root': '/x'}, flag) == '/x'
    assert sk.data_root_of({}, []) == '/var/lib/docker'


# ---- storage checks with recorded filesystems ----------------------------------

class FakeProbe(sk.Probe):
    def __init__(self, findmnt: str, dtype: bool = True, blocks: tuple[str, ...] = (),
                 replace: tuple[str, str] | None = None) -> None:
        text = fixture(findmnt)
        if replace:
            text = text.replace(*replace)
        self._mount = _engine.parse_findmnt(text)
        self._dtype = dtype
        self._blocks = blocks
        self.asked: list[str] = []

    def mount(self, path):
        self.asked.append(path)
        return self._mount

    def dtype(self, path):
        return self._dtype

    def is_block(self, path):
        return path in self._blocks


V20 = (20, 10, 24)
V26 = (26, 1, 5)
XFS_PQUOTA = ('noquota', 'prjquota')  # this kernel has no XFS quota; see fixtures README


@pytest.mark.parametrize('config, version, probe, problem', [
    ({'storage-driver': 'btrfs'}, V20, FakeProbe('findmnt_T_btrfs.json'), None),
    ({'storage-driver': 'btrfs'}, V20, FakeProbe('findmnt_T_ext4.json'),
     'storage-driver btrfs needs the data root /d on btrfs, but it is on ext4 (/dev/loop1 mounted at'),
    ({'storage-driver': 'overlay2'}, V20, FakeProbe('findmnt_T_xfs.json'), None),
    ({'storage-driver': 'overlay2'}, V20, FakeProbe('findmnt_T_xfs.json', dtype=False),
     'needs d_type support'),
    ({'storage-driver': 'overlay2', 'storage-opts': ['overlay2.size=10G']}, V20, FakeProbe('findmnt_T_xfs.json'),
     'overlay2.size needs the data root /d on XFS mounted with project quota'),
    ({'storage-driver': 'overlay2', 'storage-opts': ['overlay2.size=10G']}, V20,
     FakeProbe('findmnt_T_xfs.json', replace=XFS_PQUOTA), None),
    ({'storage-driver': 'overlay2', 'storage-opts': ['overlay2.size=10G']}, V20, FakeProbe('findmnt_T_ext4.json'),
     'but it is on ext4'),
    ({'storage-driver': 'overlay2', 'storage-opts': ['overlay2.size=ten']}, V20,
     FakeProbe('findmnt_T_xfs.json', replace=XFS_PQUOTA), 'overlay2.size=ten is not a size'),
    ({'storage-driver': 'overlay2', 'storage-opts': ['dm.basesize=10G']}, V20, FakeProbe('findmnt_T_xfs.json'),
     'dm.basesize belongs to devicemapper, not to storage-driver overlay2'),
    ({'storage-driver': 'overlay2', 'storage-opts': ['overlay2.sizes=1G']}, V20, FakeProbe('findmnt_T_xfs.json'),
     'storage-driver overlay2 has no option overlay2.sizes'),
    ({'storage-driver': 'overlay2', 'storage-opts': 'overlay2.size=1G'}, V20, FakeProbe('findmnt_T_xfs.json'),
     'storage-opts must be a list'),
    ({'storage-opts': ['overlay2.size=1G', 'btrfs.min_space=1G']}, V20, FakeProbe('findmnt_T_xfs.json'),
     'do not all belong to one storage driver'),
    ({'storage-driver': 'overlay3'}, V20, FakeProbe('findmnt_T_xfs.json'),
     'storage-driver overlay3 is unknown to Engine 20.10.24; it has: aufs, btrfs, devicemapper'),
    ({'storage-driver': 'devicemapper', 'storage-opts': ['dm.thinpooldev=/dev/mapper/docker-thinpool']}, V20,
     FakeProbe('findmnt_T_ext4.json', blocks=('/dev/mapper/docker-thinpool',)), None),
    ({'storage-driver': 'devicemapper', 'storage-opts': ['dm.thinpooldev=docker-thinpool']}, V20,
     FakeProbe('findmnt_T_ext4.json', blocks=('/dev/mapper/docker-thinpool',)), None),
    ({'storage-driver': 'devicemapper', 'storage-opts': ['dm.thinpooldev=/dev/mapper/docker-thinpool']}, V20,
     FakeProbe('findmnt_T_ext4.json'), '/dev/mapper/docker-thinpool is not a block device'),
    ({'storage-driver': 'devicemapper', 'storage-opts': ['dm.thinpooldev=/dev/mapper/docker-thinpool']}, V26,
     FakeProbe('findmnt_T_ext4.json', blocks=('/dev/mapper/docker-thinpool',)),
     'storage-driver devicemapper is not available on Engine 26.1.5: Engine 26.1.5 removed devicemapper'),
    ({'storage-driver': 'aufs'}, (24, 0, 0), FakeProbe('findmnt_T_ext4.json'), 'removed aufs (gone since 24.0)'),
    ({'storage-driver': 'devicemapper', 'features': {'containerd-snapshotter': True}}, (27, 0, 0),
     FakeProbe('findmnt_T_ext4.json'), 'use storage-driver devmapper'),
    ({'storage-driver': 'btrfs', 'features': {'containerd-snapshotter': True}}, (27, 0, 0),
     FakeProbe('findmnt_T_ext4.json'), "containerd's snapshotter root /var/lib/containerd/"),
    ({'storage-driver': 'zfs'}, V20, FakeProbe('findmnt_T_btrfs.json'), 'needs the data root /d on zfs'),
    ({'storage-driver': 'vfs', 'storage-opts': ['size=1G']}, V20, FakeProbe('findmnt_T_ext4.json'),
     'size for vfs needs'),
    ({'debug': True}, V20, FakeProbe('findmnt_T_ext4.json'), None),
])
def test_check_storage(config, version, probe, problem):
    problems, dummy_warnings = sk.check_storage(config, version, probe, '/d')
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0], problems


def test_check_storage_warnings():
    dummy, warnings = sk.check_storage({'storage-driver': 'devicemapper'}, (23, 0, 0),
                                       FakeProbe('findmnt_T_ext4.json'), '/d')
    assert any('deprecated on Engine 23.0.0' in w for w in warnings)
    assert any('loop-lvm' in w for w in warnings)
    problems, warnings = sk.check_storage({'storage-opts': ['btrfs.min_space=1G']}, V20,
                                          FakeProbe('findmnt_T_btrfs.json'), '/d')
    assert problems == [] and 'set storage-driver btrfs' in warnings[0]


def test_no_storage_keys_no_probe():
    probe = FakeProbe('findmnt_T_ext4.json')
    assert sk.check_storage({'log-level': 'info'}, V20, probe, '/d') == ([], [])
    assert probe.asked == []


def test_old_names_stay_importable_from_daemon_config():
    """_containerd, _btrfs, _engine_use, _storage_info and the modules import these from _daemon_config."""
    for name in dc.__all__:
        assert hasattr(dc, name), name
    assert dc.parse_config is dj.parse_config and dc.FlagUse is df.FlagUse and dc.data_root_of is sk.data_root_of


@pytest.mark.parametrize('config,keys,words', [
    ({'data-root': ''}, ['data-root'], "data-root is '': a templated path probably came out empty"),
    ({'data-root': '  '}, ['data-root'], 'came out empty'),
    ({'exec-root': 'run/docker'}, ['exec-root'], 'exec-root run/docker is not an absolute path'),
    ({'graph': None}, ['graph'], 'graph is None'),
    ({'data-root': '/srv/docker', 'pidfile': 'docker.pid'}, ['data-root', 'pidfile'], 'pidfile docker.pid'),
])
def test_path_keys_must_be_absolute(config, keys, words):
    problems = sk.path_key_problems(config, keys)
    assert len(problems) == 1 and words in problems[0]


def test_path_keys_not_changed_are_not_judged():
    assert sk.path_key_problems({'data-root': '', 'log-level': 'warn'}, ['log-level']) == []
    assert sk.path_key_problems({'data-root': '/srv/docker'}, ['data-root']) == []
