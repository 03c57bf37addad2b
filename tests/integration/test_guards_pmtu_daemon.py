# SPDX-License-Identifier: GPL-3.0-or-later
"""Guards of path_mtu_info and docker_daemon_config, run for real (issue 10).

path_mtu_info probes from the netns lab's host namespace: a target that is
no storage peer (empty, unspecified, loopback, an address of the host itself,
multicast, a broadcast address, also a subnet's directed broadcast that only
the namespace's routes reveal) is refused by name before any probe, and the
kernel's ICMP echo counters prove that nothing was sent.

docker_daemon_config works on daemon.json files under temporary
directories (never /etc/docker): bad files and paths are refused with the
file named, and the directory is byte for byte as it was; writes that fail
for real (an immutable directory or file, a full filesystem, a read-only bind
mount, all on a loop-mounted ext4) leave the old file as it was and say what
was made and put back. A symbolic link at path is written through and kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils._common import read_bytes
from tests.lab import hoststate
from conftest import require
from tests.lab.dockerd import loop_filesystem
from test_path_mtu_info import echo_counters

PMTU = 'hostprep.container_host.path_mtu_info'
DAEMON = 'hostprep.container_host.docker_daemon_config'
ORIGINAL = '{\n  "log-level": "warn",\n  "labels": ["hostprep=guards"]\n}\n'
#: a lab link whose /24 makes 198.51.100.255 a directed broadcast address
EXTRA_V4 = '198.51.100.2/24'


def no_traceback(result: dict) -> None:
    for key in ('exception', 'module_stderr', 'module_stdout'):
        assert 'Traceback' not in str(result.get(key, '')), result
    assert 'unexpected error' not in result.get('msg', ''), result


# ---------------------------------------------------------------------------
# path_mtu_info
# ---------------------------------------------------------------------------

@pytest.fixture(scope='module')
def pmtu_lab(lab):
    """The lab, with one more subnet on the host's second NIC (removed afterwards)."""
    ns = lab['host_ns']
    subprocess.run(['ip', '-n', ns, 'addr', 'add', EXTRA_V4, 'dev', lab['second_nic']], check=True)
    try:
        yield lab
    finally:
        subprocess.run(['ip', '-n', ns, 'addr', 'del', EXTRA_V4, 'dev', lab['second_nic']], check=False)


def pmtu_state(lab: dict) -> tuple:
    """Echo requests sent by the host namespace (only ever grow) and its links and addresses."""
    addrs = subprocess.run(['ip', '-n', lab['host_ns'], '-j', 'addr', 'show'], capture_output=True, text=True,
                           check=True).stdout
    return echo_counters(lab), hoststate.links(lab['host_ns']), sorted(
        (a['ifname'], i['local'], i['prefixlen']) for a in json.loads(addrs) for i in a.get('addr_info', []))


# (name, args, fragments of the message); netns is the lab's host namespace
PMTU_BAD = [
    ('empty target', {'targets': ['']}, ["target '' is empty", 'templated']),
    ('whitespace target', {'targets': ['   ']}, ["target '   ' is empty"]),
    ('unspecified v4', {'targets': ['0.0.0.0']}, ["'0.0.0.0' is the unspecified address"]),
    ('unspecified v6', {'targets': ['::']}, ["'::' is the unspecified address"]),
    ('this network', {'targets': ['0.1.2.3']}, ["'0.1.2.3' is in 0.0.0.0/8"]),
    ('loopback v4', {'targets': ['127.0.0.1']}, ["'127.0.0.1' is a loopback address", 'allow_loopback=true']),
    ('loopback v6', {'targets': ['::1']}, ["'::1' is a loopback address"]),
    ('loopback mapped', {'targets': ['::ffff:127.0.0.1']}, ["'::ffff:127.0.0.1' is a loopback address"]),
    ('own address', {'targets': ['198.18.1.2']},
     ["'198.18.1.2' is an address of this host (198.18.1.2/24 on eth0)", 'allow_loopback=true']),
    ('own address v6', {'targets': ['fd42:1ab:0:1::2']}, ["'fd42:1ab:0:1::2' is an address of this host"]),
    ('multicast v4', {'targets': ['224.0.0.1']}, ["'224.0.0.1' is a multicast address"]),
    ('multicast v6', {'targets': ['ff02::1']}, ["'ff02::1' is a multicast address"]),
    ('limited broadcast', {'targets': ['255.255.255.255']}, ["'255.255.255.255' is the broadcast address"]),
    ('directed broadcast', {'targets': ['198.51.100.255']},
     ["'198.51.100.255' is a broadcast address of this host's subnet (198.51.100.2/24 on eth1)"]),
    ('storage subnet broadcast', {'targets': ['198.18.2.10', '198.18.1.255']},
     ["'198.18.1.255' is a broadcast address of this host's subnet (198.18.1.2/24 on eth0)"]),
    ('link-local without interface', {'targets': ['fe80::1']}, ["'fe80::1' is an IPv6 link-local address without"]),
    ('unknown interface', {'targets': ['fe80::1%hpgd-nope']}, ['names interface hpgd-nope, which does not exist']),
    ('name', {'targets': ['storage01.invalid']}, ["'storage01.invalid' is not an IPv4", 'does not resolve names']),
    ('localhost', {'targets': ['localhost']}, ["'localhost' is not an IPv4", 'does not resolve names']),
    ('network', {'targets': ['198.18.2.0/24']}, ["'198.18.2.0/24' is a network, not an address"]),
    ('several at once', {'targets': ['198.18.2.10', '0.0.0.0', '', '::1']},
     ['3 targets cannot be probed', "'0.0.0.0'", "target ''", "'::1'"]),
    ('empty netns', {'targets': ['198.18.2.10'], 'netns': ''}, ['netns is empty']),
    ('concurrency huge', {'targets': ['198.18.2.10'], 'concurrency': 100000},
     ['concurrency 100000 is out of range: give 1 to 256']),
    ('concurrency zero', {'targets': ['198.18.2.10'], 'concurrency': 0}, ['concurrency 0 is out of range']),
    ('timeout tiny', {'targets': ['198.18.2.10'], 'timeout': 0.0001}, ['timeout 0.0001 is out of range']),
    ('timeout huge', {'targets': ['198.18.2.10'], 'timeout': 3600}, ['timeout 3600.0 is out of range']),
]


@pytest.fixture(scope='module')
def pmtu_bad_results(pmtu_lab, ansible):
    """Every bad case in ONE playbook run. The echo counters only grow, so
    equal counters before and after the run prove that no case sent a probe."""
    tasks = [(name, dict({'netns': pmtu_lab['host_ns']}, **args), False) for name, args, dummy in PMTU_BAD]
    before = pmtu_state(pmtu_lab)
    results = ansible.module_tasks(PMTU, tasks)
    after = pmtu_state(pmtu_lab)
    return before, after, results


@pytest.mark.parametrize('name,args,fragments', PMTU_BAD, ids=[case[0] for case in PMTU_BAD])
def test_pmtu_bad_input_is_refused_before_any_probe(pmtu_bad_results, name, args, fragments):
    before, after, results = pmtu_bad_results
    result = results[name]
    assert result['failed'] is True, result
    assert result.get('changed') is False, result
    no_traceback(result)
    for fragment in fragments:
        assert fragment in result['msg'], (fragment, result['msg'])
    assert 'CAP_NET_RAW' not in result['msg']
    hoststate.assert_unchanged(before, after, 'lab host namespace')


def test_pmtu_loopback_when_asked_and_duplicates_probed_once(pmtu_lab, ansible):
    ns = pmtu_lab['host_ns']
    t9000 = pmtu_lab['targets']['t9000']
    r1 = json.loads(subprocess.run(['ip', '-n', pmtu_lab['lab'].ns('r1'), '-j', '-6', 'addr', 'show', 'dev', 'eth0',
                                    'scope', 'link'], capture_output=True, text=True, check=True).stdout)
    router_ll = [a['local'] for a in r1[0]['addr_info'] if a.get('local')][0]
    tasks = [
        ('loopback asked for', {'targets': ['127.0.0.1', '::1', '198.18.1.2'], 'allow_loopback': True,
                                'netns': ns, 'timeout': 0.5}, False),
        ('duplicates', {'targets': [t9000['v4'], ' %s ' % t9000['v4'], '::ffff:' + t9000['v4'], t9000['v6'],
                                    t9000['v6'].upper()], 'netns': ns}, True),
        ('link-local with interface', {'targets': [router_ll + '%eth0', router_ll + '%eth0'], 'netns': ns}, False),
    ]
    before = echo_counters(pmtu_lab)
    results = ansible.module_tasks(PMTU, tasks)
    sent = tuple(b - a for a, b in zip(before, echo_counters(pmtu_lab)))

    loop = results['loopback asked for']
    assert not loop['failed'], loop
    assert [(r['target'], r['reachable'], r['path_mtu'], r['expected_mtu_ok']) for r in loop['targets']] == [
        ('127.0.0.1', True, 9000, True), ('::1', True, 9000, True), ('198.18.1.2', True, 9000, True)]

    dup = results['duplicates']
    assert not dup['failed'], dup
    assert [r['target'] for r in dup['targets']] == [t9000['v4'], t9000['v6']]
    assert dup['duplicates'] == [
        {'target': ' %s ' % t9000['v4'], 'same_as': t9000['v4']},
        {'target': '::ffff:' + t9000['v4'], 'same_as': t9000['v4']},
        {'target': t9000['v6'].upper(), 'same_as': t9000['v6']}]
    assert any('::ffff:%s is the same address as %s: probed once' % (t9000['v4'], t9000['v4']) in w
               for w in dup.get('warnings', [])), dup.get('warnings')
    assert dup['all_ok'] is True
    # every probe went out once per distinct address, and the module reports them all
    ll = results['link-local with interface']
    assert not ll['failed'], ll
    assert [(r['target'], r['family'], r['path_mtu'], r['expected_mtu_ok']) for r in ll['targets']] == [
        (router_ll + '%eth0', 6, 9000, True)]
    assert ll['duplicates'] == [{'target': router_ll + '%eth0', 'same_as': router_ll + '%eth0'}]
    reported = [sum(r['probes'] for res in (loop, dup, ll) for r in res['targets'] if r['family'] == fam)
                for fam in (4, 6)]
    assert sent == tuple(reported)
    dup_probes = [r['probes'] for r in dup['targets']]
    assert dup_probes == [1, 1]


# ---------------------------------------------------------------------------
# docker_daemon_config
# ---------------------------------------------------------------------------

@pytest.fixture(scope='module')
def ext4(tmp_path_factory):
    """A small loop-mounted ext4 (chattr and a full filesystem work there); chattr -i on everything afterwards."""
    for tool in ('losetup', 'mkfs.ext4', 'chattr', 'mount'):
        require(shutil.which(tool) is not None, tool)
    workdir = tempfile.mkdtemp(prefix='hpgd-')
    try:
        with loop_filesystem(workdir, 'ext4') as mountpoint:
            try:
                yield mountpoint
            finally:
                subprocess.run(['chattr', '-R', '-i', mountpoint], capture_output=True, check=False)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _write(path: str, data: str | bytes) -> None:
    with open(path, 'wb') as handle:
        handle.write(data.encode() if isinstance(data, str) else data)


def _make(case: str, kind: str) -> str:
    """Build one bad daemon.json situation in the directory case; return the path to give."""
    path = os.path.join(case, 'daemon.json')
    if kind == 'dangling_link':
        os.symlink(os.path.join(case, 'gone', 'daemon.json'), path)
    elif kind == 'link_to_dir':
        os.mkdir(os.path.join(case, 'real'))
        os.symlink('real', path)
    elif kind == 'link_loop':
        os.symlink('daemon-b.json', path)
        os.symlink('daemon.json', os.path.join(case, 'daemon-b.json'))
    elif kind == 'link_to_device':
        os.symlink('/dev/zero', path)
    elif kind == 'directory':
        os.mkdir(path)
    elif kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'huge':
        with open(path, 'wb') as handle:
            handle.truncate(41 * 1024 * 1024)
    elif kind == 'hard_link':
        _write(path, ORIGINAL)
        os.link(path, os.path.join(case, 'daemon.json.other'))
    elif kind == 'parent_is_file':
        _write(os.path.join(case, 'docker'), 'not a directory\n')
        path = os.path.join(case, 'docker', 'daemon.json')
    elif kind == 'trailing_slash':
        path += '/'
    elif kind == 'relative':
        path = 'daemon.json'
    else:
        _write(path, BAD_CONTENT[kind])
    return path


BAD_CONTENT = {
    'not_utf8': b'{\n  "log-level": "\xff\xfe"\n}\n',
    'latin1': '{"labels": ["site=K\u00f6ln"]}'.encode('latin-1'),
    'json_list': '[{"log-level": "warn"}]\n',
    'json_string': '"overlay2"\n',
    'duplicate_keys': '{"debug": false, "log-level": "warn", "debug": true}\n',
    'nested_duplicate': '{"log-opts": {"max-size": "10m", "max-size": "20m"}}\n',
    'invalid_json': '{"log-level": "warn",}\n',
    'nan': '{"max-concurrent-downloads": NaN}\n',
    'deep': '{"a": ' + '[' * 200000 + ']' * 200000 + '}',
    'ok': ORIGINAL,
}

# (kind of bad state, extra args, fragments of the message)
DAEMON_BAD = [
    ('dangling_link', {}, ['daemon.json is a symbolic link to', 'gone/daemon.json, which does not exist']),
    ('link_to_dir', {}, ['a symbolic link to', '/real) is a directory']),
    ('link_loop', {}, ['daemon.json is a symbolic link to daemon-b.json that cannot be followed: Too many levels']),
    ('link_to_device', {}, ['(a symbolic link to /dev/zero) is not a regular file (it is a character device)']),
    ('directory', {}, ['daemon.json is a directory']),
    ('fifo', {}, ['daemon.json is not a regular file (it is a FIFO)']),
    ('huge', {}, ['daemon.json is 42991616 bytes', 'reads at most 1048576', 'nothing was read or changed']),
    ('hard_link', {}, ['daemon.json has 2 hard links']),
    ('parent_is_file', {}, ['docker/daemon.json cannot exist: a directory above it is a file']),
    ('trailing_slash', {}, ['daemon.json/ ends in /']),
    ('relative', {}, ["path 'daemon.json' is not an absolute path"]),
    ('not_utf8', {}, ['daemon.json is not UTF-8 text (byte 0xff at offset 18)']),
    ('latin1', {}, ['daemon.json is not UTF-8 text (byte 0xf6 at offset 19)']),
    ('json_list', {}, ['daemon.json holds a JSON list, not an object']),
    ('json_string', {}, ['daemon.json holds a JSON string, not an object']),
    ('duplicate_keys', {}, ['daemon.json sets debug more than once', 'nothing was changed']),
    ('nested_duplicate', {}, ['daemon.json sets max-size more than once']),
    ('invalid_json', {}, ['daemon.json is not valid JSON at line 1 column 22']),
    ('nan', {}, ['daemon.json is not valid JSON', 'NaN is not JSON']),
    ('deep', {}, ['daemon.json nests lists or objects too deeply']),
    ('ok', {'config': {'max-concurrent-downloads': float('nan')}},
     ['config cannot be written as JSON', 'nothing was changed']),
    ('ok', {'state': 'present', 'keys': ['debug']}, ['keys is only used with state=absent']),
    ('ok', {'config': {'data-root': ''}}, ["daemon.json not changed: data-root is '': a templated path"]),
    ('ok', {'config': {'data-root': 'srv/docker'}}, ['data-root srv/docker is not an absolute path']),
    ('ok', {'flags_sources': ['docker.service']}, ['flags_sources docker.service: give absolute paths']),
]


@pytest.fixture(scope='module')
def daemon_bad_results(ansible):
    """Every bad daemon.json case in its own temp directory, all in ONE playbook run."""
    top = tempfile.mkdtemp(prefix='hpgd-dc-')
    try:
        cases = []
        for index, (kind, extra, dummy) in enumerate(DAEMON_BAD):
            case = os.path.join(top, '%02d-%s' % (index, kind))
            os.mkdir(case)
            path = _make(case, kind)
            args = {'path': path, 'config': {'log-level': 'debug'}, 'validate': False, 'flags_sources': [],
                    'backup': True}
            args.update(extra)
            cases.append((case, args))
        before = hoststate.files(top)
        results = ansible.module_tasks(DAEMON, [('case %02d' % i, args, False) for i, (dummy, args) in enumerate(cases)])
        after = hoststate.files(top)
        yield before, after, [(case, results['case %02d' % i]) for i, (case, dummy) in enumerate(cases)]
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize('index', range(len(DAEMON_BAD)), ids=['%02d-%s' % (i, c[0]) for i, c in enumerate(DAEMON_BAD)])
def test_daemon_bad_input_changes_nothing(daemon_bad_results, index):
    before, after, results = daemon_bad_results
    case, result = results[index]
    fragments = DAEMON_BAD[index][2]
    assert result['failed'] is True, result
    assert result.get('changed') is False, result
    no_traceback(result)
    for fragment in fragments:
        assert fragment in result['msg'], (fragment, result['msg'])
    hoststate.assert_unchanged({k: v for k, v in before.items() if k.startswith(case)},
                               {k: v for k, v in after.items() if k.startswith(case)}, case)


def test_daemon_symlink_is_written_through_and_kept(ansible, tmp_path):
    real_dir = tmp_path / 'config-repo'
    real_dir.mkdir()
    real = real_dir / 'daemon.json'
    real.write_text(ORIGINAL)
    os.chmod(real, 0o640)
    etc = tmp_path / 'etc-docker'
    etc.mkdir()
    link = etc / 'daemon.json'
    link.symlink_to('../config-repo/daemon.json')
    args = {'path': str(link), 'config': {'log-level': 'debug'}, 'validate': False, 'flags_sources': [],
            'backup': True}
    results = ansible.module_tasks(DAEMON, [('check', args, True), ('apply', args, False), ('again', args, False)])
    check, apply, again = results['check'], results['apply'], results['again']
    assert not check['failed'] and check['changed'], check
    assert not apply['failed'] and apply['changed'], apply
    assert not again['failed'] and not again['changed'], again
    assert os.readlink(link) == '../config-repo/daemon.json', 'the link was replaced'
    assert json.loads(real.read_text()) == {'log-level': 'debug', 'labels': ['hostprep=guards']}
    assert oct(os.stat(real).st_mode & 0o777) == oct(0o640)
    backup = apply['backup_file']
    assert backup and os.path.dirname(backup) == str(etc) and not os.path.islink(backup)
    assert read_bytes(backup) == ORIGINAL.encode()
    assert sorted(os.listdir(real_dir)) == ['daemon.json'], 'a temp file was left beside the target'
    assert sorted(os.listdir(etc)) == sorted(['daemon.json', os.path.basename(backup)])


@contextlib.contextmanager
def immutable(*paths: str):
    subprocess.run(['chattr', '+i', *paths], check=True)
    try:
        yield
    finally:
        subprocess.run(['chattr', '-i', *paths], check=False)


@contextlib.contextmanager
def read_only_bind(path: str):
    subprocess.run(['mount', '--bind', path, path], check=True)
    try:
        subprocess.run(['mount', '-o', 'remount,bind,ro', path], check=True)
        yield
    finally:
        subprocess.run(['umount', path], check=False)


@contextlib.contextmanager
def full(filesystem: str, leave_bytes: int = 0):
    """Fill a filesystem (as root, the reserved blocks too), then free leave_bytes."""
    filler = os.path.join(filesystem, 'filler-%s' % uuid.uuid4().hex[:6])
    try:
        with open(filler, 'wb', buffering=0) as handle:
            chunk = b'\0' * (1 << 20)
            with contextlib.suppress(OSError):
                while True:
                    handle.write(chunk)
                    handle.flush()
            with contextlib.suppress(OSError):
                while True:
                    handle.write(b'\0' * 1024)
                    handle.flush()
        with contextlib.suppress(OSError):
            os.sync()
        if leave_bytes:
            size = os.path.getsize(filler)
            os.truncate(filler, max(0, size - leave_bytes))
            os.sync()
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(filler)


def test_daemon_failed_writes_leave_the_old_file(ansible, ext4):
    """Writes that fail for real, each in its own directory on the loop ext4:
    the old file stays byte for byte, what was made is put back and named,
    and no run ends in a traceback. The full filesystem runs last, alone."""
    top = os.path.join(ext4, 'writes-%s' % uuid.uuid4().hex[:6])
    os.mkdir(top)
    names = ('immutable_dir', 'immutable_file', 'read_only_bind', 'new_dir_under_immutable', 'full')
    cases = {name: os.path.join(top, name) for name in names}
    for case in cases.values():
        os.mkdir(case)
        _write(os.path.join(case, 'daemon.json'), ORIGINAL)
    base = {'config': {'log-level': 'debug', 'labels': ['x' * 64] * 200}, 'validate': False, 'flags_sources': [],
            'backup': True}
    paths = {name: os.path.join(case, 'daemon.json') for name, case in cases.items()}
    paths['new_dir_under_immutable'] = os.path.join(cases['new_dir_under_immutable'], 'etc', 'docker', 'daemon.json')
    before = hoststate.files(top)
    with immutable(cases['immutable_dir'], cases['new_dir_under_immutable'], paths['immutable_file']), \
            read_only_bind(paths['read_only_bind']):
        results = ansible.module_tasks(DAEMON, [(name, dict(base, path=paths[name]), False) for name in names[:4]])
    with full(ext4, leave_bytes=4096):
        results.update(ansible.module_tasks(DAEMON, [('full', dict(base, path=paths['full']), False)]))
    after = hoststate.files(top)
    hoststate.assert_unchanged(before, after, top)
    for name, result in results.items():
        assert result['failed'] is True, (name, result)
        no_traceback(result)
        assert 'could not write %s: ' % paths[name] in result['msg'], (name, result['msg'])
        assert result['changed'] is False, (name, result)
    for name in ('immutable_dir', 'immutable_file', 'read_only_bind', 'full'):
        assert '%s is as it was, byte for byte' % paths[name] in results[name]['msg'], results[name]['msg']
    assert 'was not created' in results['new_dir_under_immutable']['msg']
    # where the backup could be made before the write failed, it was removed again, and the run says so
    for name in ('immutable_file', 'read_only_bind', 'full'):
        result = results[name]
        assert len(result['changes_made']) == 1 and 'made the backup' in result['changes_made'][0], (name, result)
        assert len(result['changes_restored']) == 1 and 'removed the backup' in result['changes_restored'][0]
        assert 'The host is as it was before this run' in result['msg']
    for name in ('immutable_dir', 'new_dir_under_immutable'):
        assert results[name]['changes_made'] == [] and 'Operation not permitted' in results[name]['msg']
    assert 'Operation not permitted' in results['immutable_file']['msg']
    assert 'Device or resource busy' in results['read_only_bind']['msg']
    assert 'No space left on device' in results['full']['msg'], results['full']['msg']


def test_daemon_flag_sources_that_are_not_utf8_or_huge(ansible, tmp_path):
    """A latin-1 environment file is still scanned (its flag found), a file beyond 1 MiB is skipped with a
    warning; neither ends in a traceback."""
    env = tmp_path / 'default-docker'
    env.write_bytes('# Standort K\u00f6ln\nDOCKER_OPTS="--log-level=info"\n'.encode('latin-1'))
    huge = tmp_path / 'docker.service.d'
    huge.mkdir()
    with open(huge / 'big.conf', 'wb') as handle:
        handle.truncate(2 * 1024 * 1024)
    path = tmp_path / 'daemon.json'
    path.write_text('{"labels": ["hostprep=guards"]}\n')
    args = {'path': str(path), 'config': {'debug': True}, 'validate': False,
            'flags_sources': [str(env), str(huge / '*.conf')]}
    result = ansible.module(DAEMON, args)
    assert not result['failed'], result
    no_traceback(result)
    assert result['changed'] is True
    assert [(f['flag'], f['value']) for f in result['flags']] == [('--log-level', 'info')]
    assert any('big.conf is more than 1048576 bytes' in w for w in result.get('warnings', [])), result.get('warnings')
    # a key that is also a flag is refused, naming the latin-1 file
    refused = ansible.module(DAEMON, dict(args, config={'log-level': 'debug'}))
    assert refused['failed'] and 'log-level (flag --log-level in %s line 2)' % env in refused['msg'], refused
    assert json.loads(path.read_text()) == {'labels': ['hostprep=guards'], 'debug': True}
