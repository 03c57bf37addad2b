# SPDX-License-Identifier: GPL-3.0-or-later
"""docker_storage_info's parsers, fed what a real dockerd 20.10 answered
(tests/unit/fixtures/storage_info, recorded with record.py there and, for
devicemapper, in the VM lab), and its file-level readers on real files."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _lvm, _storage_info as si
from ansible_collections.hostprep.container_host.plugins.module_utils._daemon_config import scan_flag_sources

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'storage_info')
DOCKER_FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'docker')
DRIVERS = ('btrfs', 'overlay2', 'vfs')


def load(name: str):
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return json.load(handle)


def recorded(driver: str, label: str) -> dict:
    return {key: load('%s_%s_%s.json' % (driver, label, key)) for key in ('info', 'version', 'df', 'dangling')}


# ---- API answers ------------------------------------------------------------------

@pytest.mark.parametrize('driver, expected', [
    ('btrfs', {'Build Version': 'Btrfs v6.2', 'Library Version': '102'}),
    ('overlay2', {'Backing Filesystem': 'extfs', 'Supports d_type': 'true', 'Native Overlay Diff': 'true',
                  'userxattr': 'false'}),
    ('vfs', {}),  # the engine sends null
])
def test_driver_status(driver, expected):
    info = recorded(driver, 'objects')['info']
    assert info['Driver'] == driver
    status = si.driver_status(info)
    assert status == expected
    assert si.containerd_store_from_status(status) is False


def test_containerd_store_is_told_by_driver_type():
    # Engine 24+ with features.containerd-snapshotter lists this pair.
    assert si.containerd_store_from_status({'driver-type': 'io.containerd.snapshotter.v1'}) is True


@pytest.mark.parametrize('driver', DRIVERS)
def test_engine_version(driver):
    snap = recorded(driver, 'empty')
    assert snap['info']['ServerVersion'] == '20.10.24+dfsg1'
    assert si.engine_version(snap['info']['ServerVersion']) == '20.10.24'
    assert snap['version']['ApiVersion'] == '1.41'
    assert si.engine_version(None) is None
    assert si.engine_version('nightly') == 'nightly'


@pytest.mark.parametrize('driver', DRIVERS)
def test_empty_engine(driver):
    snap = recorded(driver, 'empty')
    assert si.image_facts(snap['df'], snap['dangling']) == {
        'count': 0, 'active': 0, 'size': 0, 'reclaimable': 0, 'dangling': 0, 'dangling_size': 0}
    assert si.container_facts(snap['df']) == {'count': 0, 'running': 0, 'size': 0, 'reclaimable': 0}
    assert si.volume_facts(snap['df']) == {'count': 0, 'size': 0, 'reclaimable': 0}


@pytest.mark.parametrize('driver', DRIVERS)
def test_objects(driver):
    """busybox (used by 2 containers), a committed image (1 container) and a
    dangling one; a running, a created and an exited container (3 bytes
    written); a volume holding 12 bytes used by the exited one, an empty one."""
    snap = recorded(driver, 'objects')
    df = snap['df']
    images = si.image_facts(df, snap['dangling'])
    by_tag = {tuple(i['RepoTags']): i for i in df['Images']}
    busybox = by_tag[('hostprep-busybox:latest',)]
    committed = by_tag[('hostprep-rec:committed',)]
    dangling = by_tag[('<none>:<none>',)]
    assert snap['dangling'] == [dangling['Id']]
    # docker system df: reclaimable = LayersSize - unique size of used images.
    used = (busybox['Size'] - busybox['SharedSize']) + (committed['Size'] - committed['SharedSize'])
    assert images == {
        'count': 3, 'active': 2, 'size': df['LayersSize'], 'reclaimable': df['LayersSize'] - used,
        'dangling': 1, 'dangling_size': dangling['Size'] - dangling['SharedSize'],
    }
    # the committed layer holds "layer\n" (6 bytes), the dangling one "dangling\n" (9).
    assert committed['Size'] - committed['SharedSize'] == 6
    assert images['dangling_size'] == 9
    # SizeRw is left out for the running and the created container (0 bytes).
    assert sum(1 for c in df['Containers'] if 'SizeRw' not in c) == 2
    assert si.container_facts(df) == {'count': 3, 'running': 1, 'size': 3, 'reclaimable': 3}
    assert si.volume_facts(df) == {'count': 2, 'size': 12, 'reclaimable': 0}


def test_volume_of_unknown_size_is_left_out():
    df = load('overlay2_objects_df.json')
    df['Volumes'].append({'Name': 'remote', 'Driver': 'nfs', 'UsageData': {'Size': -1, 'RefCount': -1}})
    df['Volumes'].append({'Name': 'idle', 'Driver': 'local', 'UsageData': {'Size': 100, 'RefCount': 0}})
    assert si.volume_facts(df) == {'count': 4, 'size': 112, 'reclaimable': 100}


# ---- devicemapper ----------------------------------------------------------------

def test_devicemapper_direct_lvm_status():
    snap = load('devicemapper_direct.json')
    status = si.driver_status(snap['info'])
    dm = si.devicemapper_from_status(status)
    assert dm['pool_name'] == 'docker-thinpool'
    assert dm['loopback'] is False
    assert dm['data_file'] is None and dm['metadata_file'] is None
    assert dm['deferred_removal'] is True and dm['deferred_deletion'] is True
    for key in ('data_used', 'data_total', 'data_available', 'metadata_used', 'metadata_total'):
        assert isinstance(dm[key], int) and dm[key] > 0, key
    assert dm['data_used'] < dm['data_total']
    # 95 % of a 4 GiB VG, within the four digits the engine prints.
    assert abs(dm['data_total'] - 0.95 * 4 * 1024 ** 3) / dm['data_total'] < 0.02
    assert si.thinpool_device('devicemapper', {}, dm) == '/dev/mapper/docker-thinpool'


def test_devicemapper_loop_lvm_status():
    snap = load('devicemapper_loop.json')
    dm = si.devicemapper_from_status(si.driver_status(snap['info']))
    assert dm['loopback'] is True
    assert dm['data_file'] == '/var/lib/docker-loop/devicemapper/devicemapper/data'
    assert dm['metadata_file'] == '/var/lib/docker-loop/devicemapper/devicemapper/metadata'
    # loop-lvm's defaults: a 100 GB data file and a 2 GB metadata file.
    assert dm['data_total'] == pytest.approx(107.4e9, rel=1e-3)
    assert dm['metadata_total'] == pytest.approx(2.147e9, rel=1e-3)
    # Engine 20.10 turns deferred removal on by itself where libdm can.
    assert dm['deferred_removal'] is True and dm['deferred_deletion'] is True
    assert dm['pool_name'] == 'docker-254:0-131156-pool'
    assert dm['data_used'] == 68350000 and dm['metadata_available'] == 2130000000
    assert dm['pool_name'].startswith('docker-') and dm['pool_name'].endswith('-pool')
    # loop-lvm's pool is no LVM thin pool: no lvs usage for it.
    assert si.thinpool_device('devicemapper', {}, dm) is None


def test_devicemapper_status_parses_documented_format():
    """The fields as Engine 20.10 prints them (go-units HumanSize, decimal)."""
    status = {'Pool Name': 'docker-thinpool', 'Data Space Used': '19.92MB', 'Data Space Total': '102GB',
              'Metadata Space Used': '147.5kB', 'Metadata Space Total': '1.07GB',
              'Deferred Removal Enabled': 'true', 'Deferred Deletion Enabled': 'false'}
    dm = si.devicemapper_from_status(status)
    assert (dm['data_used'], dm['data_total'], dm['metadata_used'], dm['metadata_total']) == \
        (19920000, 102000000000, 147500, 1070000000)
    assert dm['deferred_removal'] is True and dm['deferred_deletion'] is False
    assert dm['data_available'] is None


def test_loopback_files_as_recorded_in_the_vm():
    """stat of loop-lvm's files (path, apparent bytes, 512-byte blocks),
    recorded in the VM beside devicemapper_loop.json: the 100 GB data file
    is sparse, as dockerd made it."""
    with open(os.path.join(FIXTURES, 'devicemapper_loop_files_stat.txt'), encoding='utf-8') as handle:
        rows = [line.split() for line in handle if line.strip()]
    files = [{'path': p, 'apparent_size': int(size), 'allocated_size': int(blocks) * int(unit)}
             for p, size, blocks, unit in rows]
    dm = si.devicemapper_from_files({}, files)
    engine = si.devicemapper_from_status(si.driver_status(load('devicemapper_loop.json')['info']))
    assert dm['loopback'] is True
    assert (dm['data_file'], dm['metadata_file']) == (engine['data_file'], engine['metadata_file'])
    assert dm['data_total'] == 107374182400 == pytest.approx(engine['data_total'], rel=1e-3)
    assert dm['metadata_total'] == pytest.approx(engine['metadata_total'], rel=1e-3)
    assert dm['data_used'] == 132312 * 512 < dm['data_total']


def test_thinpool_usage_from_recorded_lvs():
    """The VM's lvs report of the pool dockerd used, through _lvm."""
    with open(os.path.join(FIXTURES, 'devicemapper_lvs_thinpool.json'), encoding='utf-8') as handle:
        text = handle.read()
    calls = []

    def runner(args, check_rc=True):
        calls.append(args)
        return 0, text, ''
    usage = _lvm.thinpool_usage(runner, 'docker', 'thinpool')
    assert usage['device'] == '/dev/mapper/docker-thinpool'
    assert isinstance(usage['data_percent'], float) and isinstance(usage['size'], int)
    assert calls[0][0] == 'lvs' and '--reportformat' in calls[0]
    # lvs and the engine, recorded together, agree on the pool.
    dm = si.devicemapper_from_status(si.driver_status(load('devicemapper_direct.json')['info']))
    assert usage['size'] == pytest.approx(dm['data_total'], rel=1e-3)
    assert usage['data_percent'] == pytest.approx(100.0 * dm['data_used'] / dm['data_total'], abs=0.01)


@pytest.mark.parametrize('name, expected', [
    ('docker-thinpool', ('docker', 'thinpool')),
    ('/dev/mapper/docker-thinpool', ('docker', 'thinpool')),
    ('my--vg-thin--pool', ('my-vg', 'thin-pool')),
    ('vg-a--b--c', ('vg', 'a-b-c')),
    ('nodash', None),
    ('docker-8:1-1234-pool', None),
    ('-x', None),
])
def test_split_dm_name(name, expected):
    assert si.split_dm_name(name) == expected


@pytest.mark.parametrize('vg, lv', [('docker', 'thinpool'), ('a-b', 'c--d'), ('x', 'y-')])
def test_split_dm_name_inverts_lvm_naming(vg, lv):
    assert si.split_dm_name(_lvm.dm_name(vg, lv)) == (vg, lv)


def test_thinpool_device():
    assert si.thinpool_device('overlay2', {'dm.thinpooldev': 'x'}, None) is None
    assert si.thinpool_device('devicemapper', {'dm.thinpooldev': 'docker-thinpool'}, None) == \
        '/dev/mapper/docker-thinpool'
    assert si.thinpool_device('devicemapper', {'dm.thinpooldev': '/dev/mapper/vg-p'}, None) == '/dev/mapper/vg-p'
    assert si.thinpool_device('devicemapper', {}, None) is None


def test_devicemapper_from_real_sparse_files(tmp_path):
    loop = tmp_path / 'devicemapper' / 'devicemapper'
    loop.mkdir(parents=True)
    with open(loop / 'data', 'wb') as handle:
        handle.truncate(100 * 1000 ** 3)
        handle.write(b'x' * 65536)
    with open(loop / 'metadata', 'wb') as handle:
        handle.truncate(2 * 1000 ** 3)
    files = si.loopback_files(str(tmp_path))
    assert [f['path'] for f in files] == [str(loop / 'data'), str(loop / 'metadata')]
    data = files[0]
    assert data['apparent_size'] == 100 * 1000 ** 3
    assert 65536 <= data['allocated_size'] < 1024 ** 2
    dm = si.devicemapper_from_files({'dm.use_deferred_removal': 'true'}, files)
    assert dm['loopback'] is True and dm['pool_name'] is None
    assert dm['data_total'] == 100 * 1000 ** 3 and dm['data_used'] == data['allocated_size']
    assert dm['metadata_total'] == 2 * 1000 ** 3
    assert dm['deferred_removal'] is True and dm['deferred_deletion'] is None  # unset: the engine decides
    direct = si.devicemapper_from_files({'dm.thinpooldev': '/dev/mapper/docker-thinpool'}, files)
    assert direct['loopback'] is False and direct['pool_name'] == 'docker-thinpool' and direct['data_file'] is None
    assert si.loopback_files(str(tmp_path / 'nothing')) == []


# ---- configuration and files -------------------------------------------------------

def test_driver_and_opts_from_config_and_flags():
    with open(os.path.join(DOCKER_FIXTURES, 'debian12_docker.service'), encoding='utf-8') as handle:
        unit = handle.read()
    dropin = ('[Service]\nExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// -s devicemapper '
              '--storage-opt dm.thinpooldev=/dev/mapper/docker-thinpool --data-root /srv/docker\n')
    flags = scan_flag_sources({'/lib/systemd/system/docker.service': unit,
                               '/etc/systemd/system/docker.service.d/storage.conf': dropin})
    assert si.configured_driver({}, flags) == ('devicemapper', 'flags')
    assert si.configured_driver({'storage-driver': 'btrfs'}, flags) == ('btrfs', 'daemon_config')
    plain = scan_flag_sources({'/lib/systemd/system/docker.service': unit})
    assert si.configured_driver({}, plain) == (None, None)
    opts = si.storage_opts({'storage-opts': ['dm.use_deferred_removal=true', 'DM.BaseSize=20G']}, flags)
    assert opts == {'dm.use_deferred_removal': 'true', 'dm.basesize': '20G',
                    'dm.thinpooldev': '/dev/mapper/docker-thinpool'}


@pytest.mark.parametrize('names, driver', [
    (['buildkit', 'containers', 'image', 'overlay2', 'volumes'], 'overlay2'),
    (['btrfs', 'image'], 'btrfs'),
    (['image', 'overlay2', 'vfs'], None),  # two: dockerd refuses to guess too
    ([], None),
])
def test_driver_from_dirs(names, driver):
    assert si.driver_from_dirs(names) == driver


def test_store_facts_from_recorded_store(tmp_path):
    """A stopped engine's data root (recorded from the overlay2 case)."""
    root = str(tmp_path / 'docker')
    shutil.copytree(os.path.join(FIXTURES, 'overlay2_store'), root)
    facts = si.store_facts(root, 'overlay2')
    assert facts['images']['count'] == 3 and facts['images']['dangling'] == 1
    assert facts['images']['size'] is None
    assert facts['containers'] == {'count': 3, 'running': None, 'size': None, 'reclaimable': None}
    assert facts['volumes'] == {'count': 2, 'size': None, 'reclaimable': None}
    # Without a known driver the image store is not guessed.
    assert si.store_facts(root, None)['images']['count'] is None
    # A data root that does not exist holds nothing.
    empty = si.store_facts(str(tmp_path / 'missing'), 'overlay2')
    assert empty['images']['count'] == 0 and empty['containers']['count'] == 0 and empty['volumes']['count'] == 0


def test_dangling_from_store_matches_the_engine():
    root = os.path.join(FIXTURES, 'overlay2_store', 'image', 'overlay2')
    ids = sorted(os.listdir(os.path.join(root, 'imagedb', 'content', 'sha256')))
    parents = {}
    for image in ids:
        path = os.path.join(root, 'imagedb', 'metadata', 'sha256', image, 'parent')
        if os.path.exists(path):
            with open(path, encoding='utf-8') as handle:
                parents[image] = handle.read().strip()
    with open(os.path.join(root, 'repositories.json'), encoding='utf-8') as handle:
        repositories = json.load(handle)
    dangling = si.dangling_from_store(ids, parents, repositories)
    assert len(dangling) == 1
    # An untagged parent of another image is an intermediate image, not dangling.
    child = [i for i in ids if i in parents][0]
    untagged_parent = parents[child].split(':', 1)[1]
    assert si.dangling_from_store([untagged_parent], parents, {}) == []


def test_statvfs_facts_match_df():
    usage = shutil.disk_usage('/')
    facts = si.statvfs_facts(os.statvfs('/'))
    assert facts['size'] == usage.total
    assert facts['used'] == usage.used
    assert facts['free'] == usage.free


def test_dtype_readonly_climbs_to_an_entry_and_writes_nothing(tmp_path):
    empty = tmp_path / 'a' / 'b'
    empty.mkdir(parents=True)
    before = sorted(os.listdir(empty))
    assert si.dtype_readonly(str(empty)) is True  # the root filesystem (ext4) fills in d_type
    assert sorted(os.listdir(empty)) == before
    assert si.dtype_readonly(str(empty / 'not' / 'there')) is True


def test_parse_bool():
    assert si.parse_bool('true') is True and si.parse_bool('False') is False
    assert si.parse_bool(None) is None and si.parse_bool('maybe') is None and si.parse_bool(True) is True


# ---- gather(): the pieces together, on recorded answers ---------------------------

class RecordedEngine(si.Engine):
    def __init__(self, snap: dict | None) -> None:
        self.snap = snap

    def query(self) -> dict:
        if self.snap is None:
            raise si.EngineUnreachable('connection refused')
        return dict(self.snap, error=None)


class FakeModule:
    """Answers findmnt and lvs with recorded output; everything else fails."""

    def __init__(self, params: dict, findmnt: str = 'findmnt_T_xfs.json') -> None:
        self.params = dict({'docker_host': 'unix:///run/test.sock', 'daemon_config': '/nonexistent/daemon.json',
                            'flags_sources': [], 'api': True, 'timeout': 60, 'data_root': None}, **params)
        self.check_mode = True
        self.commands: list[list[str]] = []
        with open(os.path.join(DOCKER_FIXTURES, findmnt), encoding='utf-8') as handle:
            self.findmnt = handle.read()
        with open(os.path.join(FIXTURES, 'devicemapper_lvs_thinpool.json'), encoding='utf-8') as handle:
            self.lvs = handle.read()

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return '/usr/bin/' + name

    def run_command(self, args, check_rc=False, environ_update=None, data=None):
        self.commands.append(args)
        tool = os.path.basename(args[0])
        if tool == 'findmnt':
            return 0, self.findmnt, ''
        if tool == 'lvs':
            return 0, self.lvs, ''
        return 1, '', '%s: not recorded' % tool


def test_gather_devicemapper_direct_lvm(tmp_path):
    snap = load('devicemapper_direct.json')
    module = FakeModule({'data_root': str(tmp_path)})
    storage, warnings = si.gather(module, RecordedEngine(snap))
    # the engine's own data root was /var/lib/docker in the VM
    assert warnings == ['data_root %s is not the data root of the engine at unix:///run/test.sock '
                        '(/var/lib/docker)' % tmp_path]
    assert storage['engine'] == {'reachable': True, 'version': '20.10.24', 'api_version': '1.41',
                                 'containerd_image_store': False}
    assert storage['driver'] == 'devicemapper' and storage['driver_status']['Pool Name'] == 'docker-thinpool'
    assert storage['devicemapper']['loopback'] is False and storage['devicemapper']['loopback_files'] == []
    assert storage['thinpool']['vg'] == 'docker' and storage['thinpool']['lv'] == 'thinpool'
    assert storage['thinpool']['device'] == '/dev/mapper/docker-thinpool'
    assert storage['thinpool']['data_percent'] == 1.88 and storage['thinpool']['metadata_percent'] == 10.1
    assert storage['backing_fs']['fstype'] == 'xfs'
    assert storage['images']['count'] == 0
    assert [os.path.basename(c[0]) for c in module.commands] == ['findmnt', 'lvs']


def test_gather_stopped_devicemapper_from_files(tmp_path):
    """dockerd stopped: daemon.json names the pool, lvs still answers."""
    config = tmp_path / 'daemon.json'
    config.write_text(json.dumps({'storage-driver': 'devicemapper',
                                  'storage-opts': ['dm.thinpooldev=/dev/mapper/docker-thinpool']}))
    root = tmp_path / 'docker'
    root.mkdir()
    module = FakeModule({'daemon_config': str(config), 'data_root': str(root), 'api': False})
    storage, warnings = si.gather(module, None)
    # dockerd --version fails here ("not recorded"): a warning, no failure
    assert warnings == ['/usr/bin/dockerd failed with exit status 1: dockerd: not recorded']
    assert storage['engine']['version'] is None
    assert storage['engine']['reachable'] is None and storage['engine']['api_version'] is None
    assert storage['driver'] == 'devicemapper' and storage['driver_source'] == 'daemon_config'
    assert storage['devicemapper']['pool_name'] == 'docker-thinpool'
    assert storage['devicemapper']['loopback'] is False and storage['driver_status'] is None
    assert storage['thinpool']['data_percent'] == 1.88
    assert storage['images']['count'] is None  # no image store for devicemapper under this root


def test_gather_unreachable_engine_and_broken_config(tmp_path):
    config = tmp_path / 'daemon.json'
    config.write_text('{"storage-driver": "overlay2",}')
    module = FakeModule({'daemon_config': str(config), 'data_root': str(tmp_path)})
    storage, warnings = si.gather(module, RecordedEngine(None))
    assert storage['engine']['reachable'] is False
    assert any('unix:///run/test.sock did not answer (connection refused)' in w for w in warnings)
    assert any('is not valid JSON at line 1' in w and 'its settings are ignored here' in w for w in warnings)
    assert storage['driver'] is None and storage['thinpool'] is None


@pytest.mark.parametrize('params, message', [
    ({'docker_host': 'docker.sock'}, "docker_host 'docker.sock' is not an engine address"),
    ({'timeout': -1}, 'timeout -1 is not a number of seconds'),
    ({'daemon_config': '/'}, 'daemon_config / is a directory'),
])
def test_gather_refuses_bad_params(params, message):
    with pytest.raises(si.HostprepError, match=message):
        si.gather(FakeModule(params), None)
