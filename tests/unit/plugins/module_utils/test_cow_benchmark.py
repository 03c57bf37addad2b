# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure logic of docker_cow_benchmark, its sizes and memory readers, and the
validate role's fleet report, fed output recorded on this project's machine
(tests/unit/fixtures/cow/, see README.md there)."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _cow_benchmark as cow
from ansible_collections.hostprep.container_host.plugins.module_utils import _memory
from ansible_collections.hostprep.container_host.plugins.module_utils import _processes
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
FIX = os.path.join(ROOT, 'tests', 'unit', 'fixtures', 'cow')


def fixture(name: str, mode: str = 'r'):
    encoding = None if 'b' in mode else 'utf-8'
    with open(os.path.join(FIX, name), mode, encoding=encoding) as handle:  # pylint: disable=unspecified-encoding
        return handle.read()


# ---- plan and statistics -----------------------------------------------------

@pytest.mark.parametrize('wanted, phases', [
    (['oneshot', 'commit', 'run_from_commit'], [('oneshot', True), ('commit', True), ('run_from_commit', True)]),
    (['oneshot'], [('oneshot', True)]),
    (['commit'], [('oneshot', False), ('commit', True)]),
    (['run_from_commit'], [('oneshot', False), ('commit', False), ('run_from_commit', True)]),
    (['run_from_commit', 'oneshot'], [('oneshot', True), ('commit', False), ('run_from_commit', True)]),
])
def test_needed_phases(wanted, phases):
    assert cow.needed_phases(wanted) == phases


def test_needed_phases_refuses_empty_and_unknown():
    with pytest.raises(HostprepError, match='empty'):
        cow.needed_phases([])
    with pytest.raises(HostprepError, match='unknown scenario'):
        cow.needed_phases(['oneshot', 'reboot'])


@pytest.mark.parametrize('size, blocks', [
    (65536, (65536, 1)), (3 * 1024 * 1024, (1024 * 1024, 3)), (1000, (1, 1000)), (512, (512, 1)),
    (1536 * 1024 * 1024, (1024 * 1024, 1536)), (8192, (4096, 2)),
])
def test_dd_blocks(size, blocks):
    assert cow.dd_blocks(size) == blocks
    assert blocks[0] * blocks[1] == size


def test_estimate_required_says_the_numbers():
    est = cow.estimate_required(10, 65536, 3, 1982256)
    assert est['overhead_per_operation'] == 4 * 1024 * 1024 + 2 * 1982256
    assert est['operations'] == 30
    assert est['required'] == 30 * (65536 + est['overhead_per_operation'])


def test_describe_first_versus_rest():
    stat = cow.describe([1.9, 0.9, 1.0, 0.8])
    assert stat['min'] == 0.8 and stat['max'] == 1.9 and stat['median'] == pytest.approx(0.95)
    assert stat['first'] == 1.9 and stat['rest_median'] == 0.9
    assert stat['first_extra'] == pytest.approx(1.0)
    assert cow.describe([None, None]) is None
    assert cow.describe([2.0])['rest_median'] is None


def test_summarize_reproduces_a_recorded_run():
    """A real btrfs run of the module (count 3): its per-scenario figures are
    recomputed from its operations."""
    recorded = json.loads(fixture('module_result_btrfs_20.10.24.json'))
    summary = cow.summarize(recorded['operations'])
    assert summary == recorded['scenarios']
    ops = recorded['operations']
    # growth is the difference of consecutive readings, across scenarios
    assert ops[3]['fs_growth'] == ops[3]['fs_used'] - ops[2]['fs_used']
    assert ops[6]['data_growth'] == ops[6]['data_used'] - ops[5]['data_used']
    assert summary['oneshot']['fs_growth']['total'] == sum(op['fs_growth'] for op in ops[:3])


def test_memory_summary_from_recorded_snapshots():
    recorded = json.loads(fixture('module_result_btrfs_20.10.24.json'))
    mem = recorded['memory']
    again = cow.memory_summary(mem['before'], mem['after'], 3)
    for key in ('mem_available_drop', 'mem_available_drop_per_container', 'dockerd_rss_growth',
                'containerd_rss_growth', 'shims_rss', 'shims_rss_per_container', 'engine_rss_after'):
        assert again[key] == pytest.approx(mem[key]), key
    remote = cow.memory_summary({'mem_available': 100}, {'mem_available': 40}, 3)
    assert remote['mem_available_drop'] == 60 and remote['dockerd_rss_growth'] is None
    assert remote['engine_rss_after'] is None


# ---- parsers on recorded output ------------------------------------------------

def test_parse_btrfs_df_json():
    df = cow.parse_btrfs_df(fixture('btrfs_df_json_6.2.json'))
    assert df['data_used'] == 1048576 and df['data_total'] == 8388608
    assert df['metadata_profile'] == 'DUP' and df['metadata_used'] > 0
    assert 'globalreserve_used' not in df
    with pytest.raises(HostprepError):
        cow.parse_btrfs_df('{"filesystem-df": []}')


def test_parse_driver_status_recorded():
    overlay = json.loads(fixture('info_driverstatus_overlay2_20.10.24.json'))
    status = cow.parse_driver_status(overlay['DriverStatus'])
    assert status['raw']['Backing Filesystem'] == 'xfs'
    assert 'data_used' not in status
    vfs = json.loads(fixture('info_driverstatus_vfs_20.10.24.json'))
    assert cow.parse_driver_status(vfs['DriverStatus']) == {'raw': {}}
    btrfs = json.loads(fixture('module_result_btrfs_20.10.24.json'))['engine']['driver_status']
    assert cow.parse_driver_status(list(btrfs.items()))['raw']['Build Version'] == 'Btrfs v6.2'


def test_parse_driver_status_devicemapper_counters():
    # The key names and value format of Engine 20.10's devicemapper DriverStatus
    # (daemon/graphdriver/devmapper/driver.go Status(), units.HumanSize).
    pairs = [['Pool Name', 'docker-thinpool'], ['Data Space Used', '19.92 MB'], ['Data Space Total', '102 GB'],
             ['Metadata Space Used', '147.5 kB'], ['Metadata Space Total', '1.07 GB']]
    status = cow.parse_driver_status(pairs)
    assert status['data_used'] == 19920000 and status['metadata_used'] == 147500
    assert status['data_total'] == 102000000000


def test_elf_static_check_on_recorded_heads():
    assert cow.elf_is_static(fixture('elf_head_busybox_static.bin', 'rb')) is True
    assert cow.elf_is_static(fixture('elf_head_ls_dynamic.bin', 'rb')) is False
    assert cow.elf_is_static(b'#!/bin/sh\necho hi\n' + b'\0' * 64) is None


def test_busybox_tar_is_what_docker_import_needs(tmp_path):
    fake = tmp_path / 'busybox'
    fake.write_bytes(fixture('elf_head_busybox_static.bin', 'rb'))
    data = cow.busybox_tar(str(fake))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members['bin'].isdir()
    assert members['bin/busybox'].isfile() and members['bin/busybox'].size == 4096
    for applet in ('sh', 'dd', 'sleep', 'sync'):
        assert members['bin/' + applet].issym() and members['bin/' + applet].linkname == 'busybox'


def test_owner_labels_tell_live_runs_from_leftovers():
    mine = cow.owner_id()
    boot, pid, start = mine.split('/')
    assert int(pid) == os.getpid()
    # our own process is never "another live run"
    assert cow.owner_alive(mine) is False
    parent = os.getppid()
    parent_owner = '%s/%d/%s' % (boot, parent, cow._start_time(parent, '/proc'))
    assert cow.owner_alive(parent_owner) is True
    assert cow.owner_alive('%s/%d/1' % (boot, parent)) is False          # pid reused: other start time
    assert cow.owner_alive('other-boot/%d/%s' % (parent, start)) is False
    assert cow.owner_alive(None) is False and cow.owner_alive('garbage') is False


@pytest.mark.parametrize('params, words', [
    ({'count': 0}, 'count must be between 1 and 1000 (got 0)'),
    ({'count': -3}, 'count must be between 1 and 1000 (got -3)'),
    ({'count': 1000000000}, 'count must be between 1 and 1000 (got 1000000000)'),
    ({'write_size': 'lots'}, "write_size: 'lots' is not a size"),
    ({'write_size': '0'}, 'write_size must be between 1 byte and 1.0 GiB'),
    ({'write_size': '1P'}, "write_size must be between 1 byte and 1.0 GiB (got '1P')"),
    ({'sleep_seconds': 0}, 'sleep_seconds must be between 1 and 86400'),
    ({'sleep_seconds': -5}, 'sleep_seconds must be between 1 and 86400 (got -5)'),
    ({'timeout': 0}, 'timeout must be between 1 and 3600'),
    ({'image': ' '}, 'image is empty'),
    ({'thinpool': 'thinpool'}, 'must be VG/POOL'),
    ({'scenarios': []}, 'scenarios is empty'),
])
def test_validate_params_refuses(params, words):
    base = {'count': 10, 'write_size': '64K', 'sleep_seconds': 180, 'scenarios': list(cow.SCENARIOS), 'thinpool': None,
            'timeout': 120, 'image': None}
    base.update(params)
    with pytest.raises(HostprepError) as info:
        cow.validate_params(base)
    assert words in info.value.msg


def test_validate_params_takes_the_bounds():
    base = {'count': 1000, 'write_size': '1G', 'sleep_seconds': 86400, 'scenarios': ['oneshot'], 'thinpool': None,
            'timeout': 3600, 'image': None}
    assert cow.validate_params(base)['write_size_bytes'] == 1024 ** 3


# ---- capacity of the detached phase ------------------------------------------------

GIB = 1024 ** 3


def test_task_facts_from_recorded_proc():
    assert _processes.parse_loadavg_tasks(fixture('proc_loadavg.txt')) == 141
    assert _processes.parse_loadavg_tasks('garbage') is None
    groups = _processes.parse_cgroup(fixture('proc_cgroup_v1.txt'))
    assert groups['pids'] == '/' and groups['memory'].startswith('/process_api/')
    assert groups['cpu'] == groups['cpuacct'] == '/' and groups[''] == '/'


def capacity(count, mem_available=20 * GIB, cgroup_memory=None, **tasks):
    limits = {'tasks': 141, 'pid_max': 32768, 'threads_max': 192730, 'cgroup_pids_max': None,
              'cgroup_pids_current': None, 'cgroup': None}
    limits.update(tasks)
    return cow.capacity_problems(count, mem_available, cgroup_memory, limits)


def test_capacity_fits():
    assert capacity(1000) == []
    assert capacity(10, mem_available=None, pid_max=None, threads_max=None) == []


@pytest.mark.parametrize('count, kwargs, words', [
    (100, {'mem_available': 1 * GIB}, 'memory: MemAvailable is 1.0 GiB, the containers need about 1.6 GiB (16.0 MiB each)'),
    (100, {'cgroup_memory': {'cgroup': '/sys/fs/cgroup/memory/x', 'limit': GIB, 'usage': GIB // 2}},
     "memory: the engine's cgroup /sys/fs/cgroup/memory/x allows 1.0 GiB and uses 512.0 MiB"),
    (1000, {'pid_max': 4096}, 'processes: kernel.pid_max is 4096 with 141 tasks in use, the containers need about 16000'),
    (100, {'threads_max': 1000}, 'processes: kernel.threads-max is 1000'),
    (50, {'cgroup_pids_max': 200, 'cgroup_pids_current': 30, 'cgroup': '/sys/fs/cgroup/pids/hp'},
     "pids.max of the engine's cgroup /sys/fs/cgroup/pids/hp is 200 with 30 in use, the containers need about 800"),
])
def test_capacity_names_what_is_short(count, kwargs, words):
    problems = capacity(count, **kwargs)
    assert len(problems) == 1 and words in problems[0], problems


def test_unix_socket_path():
    assert cow.unix_socket_path('unix:///var/run/docker.sock') == '/var/run/docker.sock'
    assert cow.unix_socket_path('tcp://10.0.0.5:2376') is None


# ---- memory --------------------------------------------------------------------

def test_parse_meminfo_recorded():
    values = _memory.parse_meminfo(fixture('proc_meminfo.txt'))
    assert values['MemAvailable'] > 0 and values['MemAvailable'] % 1024 == 0
    assert values['MemTotal'] >= values['MemAvailable']
    assert values['HugePages_Total'] >= 0  # a count, not kB


def test_parse_status_recorded():
    dockerd = _memory.parse_status(fixture('proc_status_dockerd.txt'))
    assert dockerd['name'] == 'dockerd' and dockerd['rss'] > 1024 * 1024 and dockerd['ppid'] >= 0
    containerd = _memory.parse_status(fixture('proc_status_containerd.txt'))
    assert containerd['name'] == 'containerd'
    assert _memory.parse_status('Name:\tkthreadd\nPPid:\t0\n')['rss'] == 0


def test_parse_unix_sockets_recorded():
    meta = json.loads(fixture('proc_net_unix.meta.json'))
    sockets = _memory.parse_unix_sockets(fixture('proc_net_unix.txt'))
    assert meta['socket'] in sockets and all(isinstance(i, int) for i in sockets[meta['socket']])


def test_flag_value():
    args = ['dockerd', '--containerd=/run/c.sock', '--data-root', '/d', '-id', 'abc']
    assert _memory.flag_value(args, '--containerd') == '/run/c.sock'
    assert _memory.flag_value(args, '--data-root') == '/d'
    assert _memory.flag_value(args, '-id') == 'abc'
    assert _memory.flag_value(args, '--pidfile') is None


def test_fake_proc_tree_finds_engine_by_socket(tmp_path):
    """A /proc tree laid out as the kernel does, to follow socket -> dockerd
    -> containerd child -> shims of our containers."""
    proc = tmp_path
    (proc / 'net').mkdir()
    (proc / 'net' / 'unix').write_text('Num       RefCount Protocol Flags    Type St Inode Path\n'
                                       '0000: 00000002 00000000 00010000 0001 01 4242 /tmp/e.sock\n')
    (proc / 'meminfo').write_text(fixture('proc_meminfo.txt'))

    def make(pid, name, ppid, rss_kb, cmd, fds=()):
        base = proc / str(pid)
        (base / 'fd').mkdir(parents=True)
        (base / 'status').write_text('Name:\t%s\nPPid:\t%d\nVmRSS:\t%d kB\n' % (name, ppid, rss_kb))
        (base / 'cmdline').write_bytes(b'\0'.join(a.encode() for a in cmd) + b'\0')
        for index, target in enumerate(fds):
            os.symlink(target, str(base / 'fd' / str(index)))

    make(100, 'dockerd', 1, 80000, ['dockerd', '-H', 'unix:///tmp/e.sock'], ['socket:[4242]'])
    make(101, 'containerd', 100, 40000, ['containerd', '--config', '/x.toml'])
    make(102, 'containerd-shim', 1, 13000, ['containerd-shim-runc-v2', '-namespace', 'moby', '-id', 'c1'])
    make(103, 'containerd-shim', 1, 13000, ['containerd-shim-runc-v2', '-namespace', 'moby', '-id', 'other'])
    snap = _memory.snapshot('/tmp/e.sock', ['c1'], proc=str(proc))
    assert snap['dockerd_rss'] == 80000 * 1024 and snap['containerd_rss'] == 40000 * 1024
    assert snap['shim_count'] == 1 and snap['shims_rss'] == 13000 * 1024
    assert snap['mem_available'] == _memory.parse_meminfo(fixture('proc_meminfo.txt'))['MemAvailable']
    assert _memory.snapshot('/tmp/none.sock', [], proc=str(proc))['dockerd_rss'] is None
