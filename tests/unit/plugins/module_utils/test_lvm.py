# SPDX-License-Identifier: GPL-3.0-or-later
"""_lvm: JSON reports, names, thin-pool usage, fed pvs/vgs/lvs output
recorded on this host (host_*, PV/VG only: no device-mapper here) and in the
VM lab (vm_*, tests/integration/vm/lvm_thinpool.yml)."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.hostprep.container_host.plugins.module_utils import _lvm
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError

HERE = os.path.dirname(__file__)
FIXTURES = os.path.join(HERE, '..', '..', 'fixtures', 'lvm')
VM_PLAYBOOK = os.path.join(HERE, '..', '..', '..', 'integration', 'vm', 'lvm_thinpool.yml')


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return handle.read()


class Replay:
    """A runner that answers with recorded output and remembers the calls."""

    def __init__(self, *outputs: tuple[int, str, str]) -> None:
        self.outputs = list(outputs)
        self.calls: list[list[str]] = []

    def __call__(self, args, check_rc=True):
        self.calls.append(list(args))
        rc, out, err = self.outputs.pop(0)
        if check_rc and rc != 0:
            raise HostprepError('%s failed with exit status %d: %s' % (args[0], rc, err.strip()),
                                cmd=args, rc=rc, stdout=out, stderr=err)
        return rc, out, err


def test_parse_orphan_pv():
    rows = _lvm.parse_report(fixture('host_pvs_orphan.json'), 'pv')
    assert len(rows) == 1
    row = rows[0]
    assert row['vg_name'] == '' and row['pv_size'] == row['dev_size'] == 420 * 1024 * 1024
    assert isinstance(row['dev_size'], int) and row['pe_start'] == 1048576
    assert row['pv_major'] == 7 and isinstance(row['pv_minor'], int)  # a loop device


def test_parse_two_pv_vg():
    rows = _lvm.parse_report(fixture('host_pvs_vg_two_pvs.json'), 'pv')
    assert [r['vg_name'] for r in rows] == ['hprecvg', 'hprecvg']
    vg = _lvm.parse_report(fixture('host_vgs_two_pvs.json'), 'vg')[0]
    assert vg['vg_extent_size'] == 4 * 1024 * 1024
    assert vg['vg_extent_count'] == sum((r['dev_size'] - r['pe_start']) // vg['vg_extent_size'] for r in rows)
    assert vg['vg_size'] == vg['vg_extent_count'] * vg['vg_extent_size']
    assert vg['pv_count'] == 2 and vg['lv_count'] == 0 and vg['vg_profile'] == ''


@pytest.mark.parametrize('name, kind, rows', [
    ('host_lvs_empty_vg.json', 'lv', 0),
    ('host_vgs_select_missing.json', 'vg', 0),
])
def test_parse_empty_reports(name, kind, rows):
    assert len(_lvm.parse_report(fixture(name), kind)) == rows


def test_parse_report_refuses_text():
    with pytest.raises(HostprepError, match='printed no JSON'):
        _lvm.parse_report('  Volume group "x" not found\n', 'vg')
    with pytest.raises(ValueError):
        _lvm.parse_report('{}', 'seg')


def test_report_command_defaults_and_own_fields():
    cmd = _lvm.report_command('lv', ['-a', 'vg'])
    assert cmd[:6] == ['lvs', '--reportformat', 'json', '--units', 'b', '--nosuffix']
    assert cmd[6:8] == ['-o', ','.join(_lvm.REPORT_FIELDS['lv'])] and cmd[-2:] == ['-a', 'vg']
    assert _lvm.report_command('pv', ['-o', 'pv_name']) == [
        'pvs', '--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', 'pv_name']


def test_lvm_report_with_a_runner_and_its_error():
    runner = Replay((0, fixture('host_vgs_one_pv.json'), ''))
    rows = _lvm.lvm_report(runner, 'vg', ['hprecvg'])
    assert rows[0]['vg_name'] == 'hprecvg' and runner.calls[0][0] == 'vgs'
    rc, err = fixture('host_vgs_missing_error.txt').split('\n', 1)
    runner = Replay((int(rc.split('=')[1]), '', err))
    with pytest.raises(HostprepError, match='not found') as exc:
        _lvm.lvm_report(runner, 'vg', ['nosuchvg'])
    assert exc.value.details['rc'] == 5


class FakeModule:
    """Only what as_runner uses of an AnsibleModule."""

    def __init__(self):
        self.calls = []

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return '/usr/sbin/' + name

    def run_command(self, args, check_rc=False, environ_update=None, data=None):
        self.calls.append((args, environ_update))
        return 0, fixture('host_pvs_orphan.json'), ''


def test_lvm_report_with_a_module_resolves_binaries_in_c_locale():
    module = FakeModule()
    rows = _lvm.lvm_report(module, 'pv', [])
    args, env = module.calls[0]
    assert args[0] == '/usr/sbin/pvs' and env['LC_ALL'] == 'C'
    assert rows == _lvm.parse_report(fixture('host_pvs_orphan.json'), 'pv')


@pytest.mark.parametrize('name, kind, problem', [
    ('docker', 'VG', None),
    ('vg_01.a+b-c', 'VG', None),
    ('a b', 'VG', 'contains'),
    ('bad/vg', 'VG', 'contains'),
    ('-vg', 'VG', "starts with '-'"),
    ('.', 'VG', 'reserved'),
    ('..', 'VG', 'reserved'),
    ('snapshotvg', 'VG', 'reserved'),
    ('pvmove0', 'LV', 'reserved'),
    ('pool_tmeta', 'LV', '_tmeta'),
    ('x_tdata', 'LV', '_tdata'),
    ('', 'LV', 'empty'),
    ('a' * 128, 'LV', 'longer'),
    ('thinpoolmeta', 'LV', None),
])
def test_name_problem(name, kind, problem):
    found = _lvm.name_problem(name, kind)
    if problem is None:
        assert found is None
    else:
        assert problem in found


@pytest.mark.parametrize('vg, lv, name', [
    ('docker', 'thinpool', 'docker-thinpool'),
    ('my-vg', 'thin-pool', 'my--vg-thin--pool'),
])
def test_dm_name(vg, lv, name):
    assert _lvm.dm_name(vg, lv) == name
    assert _lvm.dm_path(vg, lv) == '/dev/mapper/' + name


def test_thinpool_usage_refuses_bad_names_without_running_anything():
    runner = Replay()
    with pytest.raises(HostprepError, match='invalid'):
        _lvm.thinpool_usage(runner, 'bad vg', 'thinpool')
    assert runner.calls == []


def test_thinpool_usage_missing_pool():
    runner = Replay((0, fixture('host_lvs_empty_vg.json'), ''))
    with pytest.raises(HostprepError, match='does not exist'):
        _lvm.thinpool_usage(runner, 'hprecvg', 'thinpool')
    assert '--select' in runner.calls[0]


def test_vm_playbook_records_the_module_fields():
    """The VM playbook records exactly the fields the module asks for."""
    with open(VM_PLAYBOOK, encoding='utf-8') as handle:
        play = yaml.safe_load(handle)[0]
    for kind in ('pv', 'vg', 'lv'):
        assert play['vars']['lvm_%s_fields' % kind] == _lvm.REPORT_FIELDS[kind]
