# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of _sysctl: keys, /proc/sys access, sysctl.d parsing and
rendering, and the pmtud rules, fed files and link dumps recorded on a
Debian 12 host (see tests/unit/fixtures/sysctl/)."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils._common import Changes, HostprepError
from ansible_collections.hostprep.container_host.plugins.module_utils import _sysctl as s

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'sysctl')
HEADER = ['Managed by hostprep.container_host.pmtud: edits here are overwritten by its next run.',
          'systemd-sysctl applies this file at boot to the root network namespace only.']
PMTUD_KEYS = (s.TCP_MTU_PROBING, s.TCP_BASE_MSS)


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return handle.read()


def links(name: str) -> list[s.Link]:
    return s.links_from_records(json.loads(fixture(name)))


# keys and values -------------------------------------------------------------

@pytest.mark.parametrize('key, dotted, path', [
    ('net.ipv4.tcp_mtu_probing', 'net.ipv4.tcp_mtu_probing', '/proc/sys/net/ipv4/tcp_mtu_probing'),
    ('net/ipv4/tcp_base_mss', 'net.ipv4.tcp_base_mss', '/proc/sys/net/ipv4/tcp_base_mss'),
    ('net/ipv4/conf/eth0.100/rp_filter', 'net.ipv4.conf.eth0/100.rp_filter',
     '/proc/sys/net/ipv4/conf/eth0.100/rp_filter'),
    ('net.ipv4.conf.eth0/100.rp_filter', 'net.ipv4.conf.eth0/100.rp_filter',
     '/proc/sys/net/ipv4/conf/eth0.100/rp_filter'),
    ('  kernel.pid_max ', 'kernel.pid_max', '/proc/sys/kernel/pid_max'),
])
def test_key_forms(key, dotted, path):
    assert s.normalize_key(key) == dotted
    assert s.key_to_path(key) == path


@pytest.mark.parametrize('value, text', [
    (1, '1'), (True, '1'), ('4096\t131072\t6291456\n', '4096 131072 6291456'), (' 0 ', '0'),
])
def test_normalize_value(value, text):
    assert s.normalize_value(value) == text


# /proc/sys -------------------------------------------------------------------

def test_procsys_reads_this_kernel():
    """The real /proc/sys: values come back as the kernel prints them."""
    proc = s.ProcSys()
    assert proc.read(s.TCP_MTU_PROBING) in ('0', '1', '2')
    assert int(proc.read(s.TCP_BASE_MSS)) > 0
    assert len(proc.read('net.ipv4.tcp_rmem').split(' ')) == 3


def test_procsys_read_write_in_a_tree(tmp_path):
    ipv4 = tmp_path / 'net' / 'ipv4'
    ipv4.mkdir(parents=True)
    (ipv4 / 'tcp_rmem').write_text('4096\t131072\t6291456\n')
    (ipv4 / 'tcp_mtu_probing').write_text('0\n')
    proc = s.ProcSys(str(tmp_path))
    assert proc.read('net.ipv4.tcp_rmem') == '4096 131072 6291456'
    proc.write('net/ipv4/tcp_mtu_probing', 2)
    assert (ipv4 / 'tcp_mtu_probing').read_text() == '2\n'
    assert proc.read_default('net.ipv4.tcp_min_snd_mss', '48') == '48'


def test_procsys_missing_key_names_it(tmp_path):
    with pytest.raises(HostprepError, match=r'sysctl net\.ipv4\.nope does not exist on this kernel'):
        s.ProcSys(str(tmp_path)).read('net.ipv4.nope')


def test_procsys_write_error_names_key_and_value(tmp_path):
    with pytest.raises(HostprepError, match=r'the kernel refused net\.ipv4\.tcp_base_mss = 1024'):
        s.ProcSys(str(tmp_path)).write('net.ipv4.tcp_base_mss', 1024)


def test_plan_and_apply_runtime(tmp_path):
    ipv4 = tmp_path / 'net' / 'ipv4'
    ipv4.mkdir(parents=True)
    (ipv4 / 'tcp_mtu_probing').write_text('0\n')
    (ipv4 / 'tcp_base_mss').write_text('1024\n')
    proc = s.ProcSys(str(tmp_path))
    current = {k: proc.read(k) for k in PMTUD_KEYS}
    plan = s.plan_runtime(current, {s.TCP_MTU_PROBING: 1, s.TCP_BASE_MSS: 1024})
    assert plan.changed_items() == [s.TCP_MTU_PROBING]
    assert s.apply_runtime(proc, plan) == [s.TCP_MTU_PROBING]
    assert proc.read(s.TCP_MTU_PROBING) == '1'
    again = s.plan_runtime({k: proc.read(k) for k in PMTUD_KEYS}, {s.TCP_MTU_PROBING: 1})
    assert not again.changed


def test_apply_runtime_partial_failure_puts_back_what_was_written(tmp_path):
    ipv4 = tmp_path / 'net' / 'ipv4'
    ipv4.mkdir(parents=True)
    (ipv4 / 'tcp_base_mss').write_text('1024\n')
    proc = s.ProcSys(str(tmp_path))
    plan = s.Differences()
    plan.add(s.TCP_BASE_MSS, '1024', '1200')
    plan.add('net.ipv4.missing', '0', '1')
    record = Changes()
    with pytest.raises(HostprepError, match='net.ipv4.missing'):
        s.apply_runtime(proc, plan, record)
    assert (ipv4 / 'tcp_base_mss').read_text() == '1024\n'
    assert record.done == ['set net.ipv4.tcp_base_mss from 1024 to 1200']
    assert record.undone == ['net.ipv4.tcp_base_mss back to 1024'] and not record.changed


# sysctl.d parsing ------------------------------------------------------------

def test_parse_debian_procps_sysctl_conf_is_all_comments():
    parsed = s.parse_sysctl_d(fixture('debian12-procps-sysctl.conf'))
    assert parsed.lines == [] and parsed.errors == []


def test_parse_debian_shipped_files():
    assert s.effective_values(s.parse_sysctl_d(fixture('debian12-systemd-50-pid-max.conf'))) == {
        'kernel.pid_max': '4194304'}
    assert s.effective_values(s.parse_sysctl_d(fixture('debian12-procps-99-protect-links.conf'))) == {
        'fs.protected_fifos': '1', 'fs.protected_hardlinks': '1',
        'fs.protected_regular': '2', 'fs.protected_symlinks': '1'}


def test_parse_systemd_default_with_dash_prefix_and_globs():
    parsed = s.parse_sysctl_d(fixture('systemd-upstream-50-default.conf'))
    assert parsed.errors == []
    exclusions = [line.key for line in parsed.lines if line.value is None]
    assert exclusions == ['net.ipv4.conf.all.rp_filter', 'net.ipv4.conf.all.accept_source_route',
                          'net.ipv4.conf.all.promote_secondaries']
    by_key = {line.key: line for line in parsed.lines if line.value is not None}
    assert by_key['net.ipv4.ping_group_range'].value == '0 2147483647'
    assert by_key['net.ipv4.ping_group_range'].ignore_failure is True
    assert by_key['net.core.default_qdisc'].ignore_failure is True
    assert by_key['kernel.sysrq'].ignore_failure is False
    values = s.effective_values(parsed)
    assert values['net.ipv4.conf.*.rp_filter'] == '2'
    assert 'net.ipv4.conf.all.rp_filter' not in values
    assert len(values) == 14


def test_parse_admin_file_forms_duplicates_and_errors():
    parsed = s.parse_sysctl_d(fixture('admin-90-storage-tuning.conf'))
    values = s.effective_values(parsed)
    assert values == {
        'net.ipv4.tcp_base_mss': '1024',
        'net.ipv4.tcp_rmem': '4096\t131072\t 6291456',
        'net.core.rmem_max': '16777216',
        'net.ipv4.conf.eth0/100.rp_filter': '0',
        'net.ipv4.tcp_congestion_control': 'bbr',
        'net.ipv4.tcp_mtu_probing': '2',          # the later duplicate wins
    }
    assert list(values)[-1] == 'net.ipv4.tcp_mtu_probing'
    assert [line.lineno for line in parsed.lines if line.key == 'net.ipv4.tcp_mtu_probing'] == [6, 20]
    assert parsed.errors == ['line 22 is not an assignment: this line is a mistake',
                             'line 23 has no valid key: = 5']


# managed files -----------------------------------------------------------------

def test_render_managed_file():
    text = s.render_managed_file({s.TCP_MTU_PROBING: 1, 'net/ipv4/tcp_base_mss': '1024'}, HEADER)
    assert text == (
        '# Managed by hostprep.container_host.pmtud: edits here are overwritten by its next run.\n'
        '# systemd-sysctl applies this file at boot to the root network namespace only.\n'
        'net.ipv4.tcp_base_mss = 1024\n'
        'net.ipv4.tcp_mtu_probing = 1\n')
    assert s.effective_values(s.parse_sysctl_d(text)) == {
        'net.ipv4.tcp_base_mss': '1024', 'net.ipv4.tcp_mtu_probing': '1'}


def test_plan_new_file():
    plan = s.plan_managed_file('/etc/sysctl.d/90-x.conf', None, {s.TCP_MTU_PROBING: 1}, HEADER)
    assert plan.changed and plan.before is None
    assert plan.values == {s.TCP_MTU_PROBING: '1'}
    assert plan.diff()['before'] == '' and plan.diff()['before_header'] == '/etc/sysctl.d/90-x.conf (absent)'


def test_plan_is_idempotent_and_keeps_earlier_keys():
    first = s.plan_managed_file('f.conf', None, {s.TCP_BASE_MSS: 1200, s.TCP_MTU_PROBING: 1}, HEADER)
    same = s.plan_managed_file('f.conf', first.after, {s.TCP_MTU_PROBING: 1}, HEADER)
    assert not same.changed
    assert same.values == {s.TCP_BASE_MSS: '1200', s.TCP_MTU_PROBING: '1'}
    other = s.plan_managed_file('f.conf', first.after, {s.TCP_MTU_PROBING: 2}, HEADER)
    assert other.changed
    assert other.after == first.after.replace('tcp_mtu_probing = 1', 'tcp_mtu_probing = 2')


def test_plan_over_a_hand_written_file_keeps_every_other_byte():
    """Other keys, comments, ';' comments, the slash form, the '-' prefix and
    even unparsable lines stay; both assignments of tcp_mtu_probing change
    (the last one wins at boot) and only their values change."""
    before = fixture('admin-90-storage-tuning.conf')
    plan = s.plan_managed_file('f.conf', before, {s.TCP_BASE_MSS: 1100, s.TCP_MTU_PROBING: 1}, HEADER)
    assert plan.after == before.replace('net.ipv4.tcp_base_mss = 1024', 'net.ipv4.tcp_base_mss = 1100') \
        .replace('\tnet.ipv4.tcp_mtu_probing = 2   ', '\tnet.ipv4.tcp_mtu_probing = 1   ')
    assert plan.values[s.TCP_MTU_PROBING] == '1' and plan.values['net.ipv4.tcp_rmem'] == '4096\t131072\t 6291456'
    assert len(plan.errors) == 2


def test_plan_appends_missing_keys_at_the_end():
    before = fixture('debian12-procps-99-protect-links.conf')
    plan = s.plan_managed_file('f.conf', before.rstrip('\n'), {s.TCP_MTU_PROBING: 1}, ['x'])
    assert plan.after == before.rstrip('\n') + '\nnet.ipv4.tcp_mtu_probing = 1\n'
    assert plan.values['fs.protected_regular'] == '2'


@pytest.mark.parametrize('text', ['net.ipv4.tcp_mtu_probing=1\n',
                                  '-net/ipv4/tcp_mtu_probing =  1\n'])
def test_plan_leaves_an_equal_value_alone(text):
    """An equal value written differently is not rewritten."""
    assert not s.plan_managed_file('f.conf', text, {s.TCP_MTU_PROBING: 1}, HEADER).changed


def test_set_sysctl_values_changes_only_the_value():
    assert s.set_sysctl_values('-net/ipv4/tcp_base_mss\t=  900  \r\n', {s.TCP_BASE_MSS: 1024}) == \
        '-net/ipv4/tcp_base_mss\t=  1024  \r\n'
    assert s.set_sysctl_values('# net.ipv4.tcp_base_mss = 900\n', {s.TCP_BASE_MSS: 1024}) == \
        '# net.ipv4.tcp_base_mss = 900\nnet.ipv4.tcp_base_mss = 1024\n'
    assert s.set_sysctl_values('', {s.TCP_BASE_MSS: 1024}) == 'net.ipv4.tcp_base_mss = 1024\n'


@pytest.mark.parametrize('kind, words', [
    ('empty', 'sysctl_file is empty'),
    ('relative', 'is not an absolute path'),
    ('symlink', 'is a symbolic link to /dev/null'),
    ('directory', 'is a directory'),
    ('fifo', 'is not a regular file'),
])
def test_check_sysctl_d_file(tmp_path, kind, words):
    path = {'empty': '', 'relative': 'sysctl.d/x.conf'}.get(kind, str(tmp_path / 'x.conf'))
    if kind == 'symlink':
        os.symlink('/dev/null', path)
    elif kind == 'directory':
        os.mkdir(path)
    elif kind == 'fifo':
        os.mkfifo(path)
    with pytest.raises(HostprepError, match=words):
        s.check_sysctl_d_file(path)


def test_check_sysctl_d_file_accepts_a_new_or_regular_file(tmp_path):
    assert s.check_sysctl_d_file(str(tmp_path / 'new.conf')) == str(tmp_path / 'new.conf')
    (tmp_path / 'old.conf').write_text('x = 1\n')
    assert s.check_sysctl_d_file(str(tmp_path / 'old.conf'))


# links -----------------------------------------------------------------------

def test_links_from_recorded_namespace():
    recorded = links('links-storage-ns.json')
    assert [(link.name, link.mtu, link.loopback) for link in recorded][:3] == [
        ('lo', 65536, True), ('far0', 9000, False), ('eth0', 9000, False)]
    largest = s.largest_mtu_link(recorded)
    assert (largest.name, largest.mtu) == ('eth0', 9000)   # ties go to the first name


def test_links_from_recorded_root_namespace():
    largest = s.largest_mtu_link(links('links-root-ns.json'))
    assert (largest.name, largest.mtu) == ('ifb0', 1500)


def test_no_link_but_loopback():
    assert s.largest_mtu_link([s.Link('lo', 65536, True)]) is None


# pmtud rules -----------------------------------------------------------------

def test_valid_combination_has_no_warning():
    assert s.validate_pmtud(1, 1024, 0, 48, None, links('links-storage-ns.json')) == []
    assert s.validate_pmtud(2, None, 0, 48, None, None) == []
    assert s.validate_pmtud(0, None, 1, 48, None, None) == []


@pytest.mark.parametrize('value', [3, -1])
def test_probing_out_of_range(value):
    with pytest.raises(HostprepError, match=r'tcp_mtu_probing %d is not one of 0 \(off\)' % value):
        s.validate_pmtud(value, None, 0, 48, None, None)


def test_base_mss_does_not_fit_largest_link():
    ns_links = [link for link in links('links-storage-ns.json') if link.mtu != 9000]
    with pytest.raises(HostprepError) as info:
        s.validate_pmtud(1, 9000, 0, 48, None, ns_links)
    assert 'tcp_base_mss 9000 does not fit MTU 1500 of link eth1: at most 1460' in info.value.msg
    assert 'lower tcp_base_mss' in info.value.msg


def test_base_mss_limit_follows_largest_link():
    ns_links = links('links-storage-ns.json')
    assert s.validate_pmtud(1, 8960, 0, 48, None, ns_links) == []
    with pytest.raises(HostprepError, match='tcp_base_mss 8961 does not fit MTU 9000 of link eth0: at most 8960'):
        s.validate_pmtud(1, 8961, 0, 48, None, ns_links)


def test_base_mss_against_mtu_option():
    with pytest.raises(HostprepError, match=r'tcp_base_mss 9000 does not fit MTU 1500 \(option mtu\): at most 1460'):
        s.validate_pmtud(1, 9000, 0, 48, 1500, links('links-storage-ns.json'))
    assert s.validate_pmtud(1, 1460, 0, 48, 1500, None) == []


def test_base_mss_below_floor():
    with pytest.raises(HostprepError, match=r'tcp_base_mss 47 is below the kernel floor '
                                            r'net\.ipv4\.tcp_min_snd_mss = 48: .* use at least 48'):
        s.validate_pmtud(1, 47, 0, 48, 1500, None)
    with pytest.raises(HostprepError, match='use at least 536'):
        s.validate_pmtud(1, 500, 0, 536, 1500, None)


def test_mtu_option_too_small():
    with pytest.raises(HostprepError, match='mtu 40 is below 68'):
        s.validate_pmtud(1, None, 0, 48, 40, None)


def test_mtu_option_too_big():
    with pytest.raises(HostprepError, match='mtu 65536 is above 65535, the largest IPv4 datagram'):
        s.validate_pmtud(1, None, 0, 48, 65536, None)
    assert s.validate_pmtud(1, 65495, 0, 48, 65535, None) == []


@pytest.mark.parametrize('links_given', [None, [s.Link('lo', 65536, True)]])
def test_base_mss_bounded_without_an_mtu(links_given):
    with pytest.raises(HostprepError, match='tcp_base_mss 65496 is above 65495: no IPv4 TCP segment is bigger'):
        s.validate_pmtud(1, 65496, 0, 48, None, links_given)


@pytest.mark.parametrize('wanted, current, warns', [
    (None, 0, True),    # probing stays 0
    (0, 1, True),       # probing will be 0
    (None, 1, False),
    (1, 0, False),      # probing will be on
])
def test_base_mss_without_probing_warns(wanted, current, warns):
    warnings = s.validate_pmtud(wanted, 1024, current, 48, 1500, None)
    if warns:
        assert warnings == ['tcp_base_mss 1024 has no effect while net.ipv4.tcp_mtu_probing is 0: the '
                            'kernel uses it only when it probes the path MTU; set tcp_mtu_probing to 1 '
                            'or 2 to use it']
    else:
        assert warnings == []


def test_no_link_to_check_against_warns():
    warnings = s.validate_pmtud(1, 1024, 0, 48, None, [s.Link('lo', 65536, True)])
    assert warnings == ['no link other than loopback in this network namespace: tcp_base_mss 1024 is not '
                        'checked against an MTU; pass mtu to check it']
