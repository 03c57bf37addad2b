# SPDX-License-Identifier: GPL-3.0-or-later
"""Guards of link_mtu and pmtud: never change the wrong object, report honestly.

Ansible runs the modules inside a namespace of this file's own ("the host",
see inventory_in in tests/lab/netns_lab.py), next to a second namespace ("the storage namespace")
that holds a link of the same name. Every bad input is refused with a
message naming the object, changes nothing (links and sysctls of both
namespaces, every file under the temporary config roots, compared before and
after) and is no traceback. Failures after a real change are made for real
(chattr +i on a directory of a loop-mounted ext4) and must put the run-time
state back and say so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid

import pytest
from pyroute2 import NetNS, netns

from tests.lab import hoststate
from tests.lab.dockerd import loop_filesystem
from tests.lab.netns_lab import inventory_in

LINK_MTU = 'hostprep.container_host.link_mtu'
PMTUD = 'hostprep.container_host.pmtud'
SYSCTLS = ('net.ipv4.tcp_mtu_probing', 'net.ipv4.tcp_base_mss')
STATE = '# This is private data. Do not parse.\nADMIN_STATE=configured\nNETWORK_FILE=/etc/systemd/network/20-%s.network\n'


def veth(nsname: str, ifname: str, peer: str, mtu: int = 1500) -> int:
    """A veth pair inside a namespace, both ends up; the ifindex of ifname."""
    with NetNS(nsname) as nsr:
        nsr.link('add', ifname=ifname, kind='veth', peer=peer)
        for name in (ifname, peer):
            idx = nsr.link_lookup(ifname=name)[0]
            nsr.link('set', index=idx, mtu=mtu, state='up')
        return nsr.link_lookup(ifname=ifname)[0]


def namespace(name: str) -> None:
    netns.create(name)
    with NetNS(name) as nsr:
        nsr.link('set', index=nsr.link_lookup(ifname='lo')[0], state='up')


def write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(text)


def interfaces(*names: str, head: str = '') -> str:
    return head + ''.join('auto %s\niface %s inet static\n    address 198.18.%d.2/24\n\n' % (n, n, 200 + i)
                          for i, n in enumerate(names))


@pytest.fixture(scope='module')
def world(prerequisites):
    """The host namespace (eth0, stor0), the storage namespace (stor0) and the config trees."""
    tag = '%03d%s' % (os.getpid() % 1000, uuid.uuid4().hex[:3])
    host, storage = 'hpg3h%s' % tag, 'hpg3n%s' % tag
    work = tempfile.mkdtemp(prefix='hpg3-')
    made = []
    try:
        for name in (host, storage):
            namespace(name)
            made.append(name)
        index = {'eth0': veth(host, 'eth0', 'far0'), 'stor0': veth(host, 'stor0', 'stpeer')}
        ns_stor0 = veth(storage, 'stor0', 'nspeer')
        with NetNS(host) as nsr:
            nsr.addr('add', index=index['eth0'], address='198.18.250.2', prefixlen=24)
        root = os.path.join(work, 'root')
        write(root + '/etc/network/interfaces', interfaces('eth0', 'stor0', head='source /etc/network/interfaces.d/*\n'))
        write(root + '/etc/network/interfaces.d/.keep', '')
        for ifindex, name in ((index['eth0'], 'eth0'), (index['stor0'], 'stor0'), (ns_stor0, 'nsstor0')):
            write(root + '/run/systemd/netif/links/%d' % ifindex, STATE % name)
        outside = os.path.join(work, 'outside')
        write(outside + '/storage', interfaces('stor0'))
        write(outside + '/dir/storage', interfaces('stor0'))
        write(outside + '/state', STATE % 'outside')
        roots = {}
        for kind, head in (('src', 'source ../../../outside/*\n'), ('srcdir', 'source-directory /../../../../../../../%s/dir\n'
                                                                    % outside.lstrip('/'))):
            roots[kind] = os.path.join(work, 'root-' + kind)
            write(roots[kind] + '/etc/network/interfaces', 'auto lo\n' + head + interfaces('eth0'))
        roots['link'] = os.path.join(work, 'root-link')
        write(roots['link'] + '/etc/network/interfaces', 'source interfaces.d/*\n')
        os.makedirs(roots['link'] + '/etc/network/interfaces.d')
        os.symlink(outside + '/storage', roots['link'] + '/etc/network/interfaces.d/storage')
        roots['shared'] = os.path.join(work, 'root-shared')
        for ifindex in index.values():
            write(roots['shared'] + '/run/systemd/netif/links/%d' % ifindex, STATE % 'all')
        roots['binary'] = os.path.join(work, 'root-binary')
        write(roots['binary'] + '/etc/network/interfaces', '')
        with open(roots['binary'] + '/etc/network/interfaces', 'wb') as handle:
            handle.write(interfaces('eth0').encode() + b'# \xff\xfe latin-1 left-overs\n')
        roots['state'] = os.path.join(work, 'root-state')
        os.makedirs(roots['state'] + '/run/systemd/netif/links')
        os.symlink(outside + '/state', roots['state'] + '/run/systemd/netif/links/%d' % index['eth0'])
        sysctl_d = os.path.join(work, 'sysctl.d')
        os.makedirs(sysctl_d + '/dir.conf')
        os.symlink('/dev/null', sysctl_d + '/masked.conf')
        write(sysctl_d + '/90-other.conf', '# keep me\nnet.core.rmem_max = 16777216\n')
        with open(sysctl_d + '/90-binary.conf', 'wb') as handle:
            handle.write(b'net.ipv4.tcp_mtu_probing = 0\n# \xff\xfe\n')
        yield {'host': host, 'storage': storage, 'work': work, 'root': root, 'roots': roots, 'outside': outside,
               'sysctl_d': sysctl_d, 'index': index, 'ns_stor0': ns_stor0}
    finally:
        for name in made:
            netns.remove(name)
        shutil.rmtree(work, ignore_errors=True)


def fingerprint(world: dict) -> dict:
    return {
        'links': {ns: hoststate.links(ns) for ns in (world['host'], world['storage'])},
        'sysctls': {ns: hoststate.sysctls(SYSCTLS, ns) for ns in (world['host'], world['storage'])},
        'files': hoststate.files(world['work']),
    }


def fill(value, world: dict):
    """{host}, {storage}, {root}, {roots[src]}, ... in strings of a case's arguments."""
    if isinstance(value, str):
        return value.format(**world)
    if isinstance(value, list):
        return [fill(v, world) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, world) for k, v in value.items()}
    return value


ONE = {'links': [{'name': 'eth0'}], 'mtu': 4000}
# (case id, module, arguments, what the message must say)
BAD = [
    ('link: persist=ifupdown into the host config for a namespace link of the same name', LINK_MTU,
     dict(links=[{'name': 'stor0'}], mtu=4000, netns='{storage}', persist='ifupdown', config_root='{root}'),
     "persist=ifupdown with netns={storage}: the host's network configuration does not manage links of namespace "
     "{storage}; use persist=none"),
    ('link: persist=networkd for a namespace link', LINK_MTU,
     dict(links=[{'name': 'stor0'}], mtu=4000, netns='{storage}', persist='networkd', config_root='{root}'),
     'persist=networkd with netns={storage}: '),
    ('link: persist=networkmanager for a namespace link', LINK_MTU,
     dict(links=[{'name': 'stor0'}], mtu=4000, netns='{storage}', persist='networkmanager'),
     'persist=networkmanager with netns={storage}: '),
    ('link: empty netns', LINK_MTU, dict(ONE, netns=''), "netns is empty (''): a templated namespace name"),
    ('link: empty config_root', LINK_MTU, dict(ONE, persist='ifupdown', config_root=''), "config_root is empty ('')"),
    ('link: relative config_root', LINK_MTU, dict(ONE, persist='ifupdown', config_root='etc'),
     'config_root etc is not an absolute path'),
    ('link: ifupdown source line leading outside config_root', LINK_MTU,
     dict(ONE, persist='ifupdown', config_root='{roots[src]}'),
     '"source ../../../outside/*" ({roots[src]}/etc/network/interfaces line 2) leads to'),
    ('link: ifupdown source-directory line leading outside config_root', LINK_MTU,
     dict(ONE, persist='auto', config_root='{roots[srcdir]}'), '"source-directory /../'),
    ('link: sourced file that is a link out of config_root', LINK_MTU,
     dict(links=[{'name': 'stor0'}], mtu=4000, persist='ifupdown', config_root='{roots[link]}'),
     'leads to {outside}/storage, outside config_root {roots[link]}'),
    ('link: networkd state file that is a link out of config_root', LINK_MTU,
     dict(ONE, persist='networkd', config_root='{roots[state]}'),
     'leads to {outside}/state, outside config_root {roots[state]}'),
    ('link: templated link name came out empty', LINK_MTU, dict(ONE, links=[{'name': ''}]),
     'links[0] selects no link: give exactly one of name, mac or target'),
    ('link: templated mtu came out empty', LINK_MTU, dict(ONE, mtu=''), "argument 'mtu' is of type"),
    ('link: mtu above the driver maximum', LINK_MTU, dict(ONE, mtu=70000), 'MTU 70000 is above max_mtu 65535 of link eth0'),
    ('link: unspecified target address', LINK_MTU, dict(ONE, links=[{'target': '0.0.0.0'}]),
     'target 0.0.0.0 is a local address'),
    ('link: empty verify target', LINK_MTU, dict(ONE, verify_targets=['']),
     "verify_targets[0] '' is not an IP address"),
    ('link: verify target that is unspecified', LINK_MTU, dict(ONE, verify_targets=['0.0.0.0']),
     'verify_targets[0] 0.0.0.0 is the unspecified address'),
    ('link: verify target on loopback', LINK_MTU, dict(ONE, verify_targets=['127.0.0.1']),
     'verify_targets[0] 127.0.0.1 is a loopback address'),
    ('link: verify target that is an address of this host', LINK_MTU, dict(ONE, verify_targets=['198.18.250.2']),
     'target 198.18.250.2 is a local address of this host'),
    ('link: networkd .network file that also manages another link', LINK_MTU,
     dict(ONE, persist='networkd', config_root='{roots[shared]}'),
     'the .network file /etc/systemd/network/20-all.network that manages link eth0 also manages the links with '
     'interface index {index[stor0]}'),
    ('link: ifupdown file that is not UTF-8 text', LINK_MTU, dict(ONE, persist='ifupdown', config_root='{roots[binary]}'),
     '{roots[binary]}/etc/network/interfaces is not UTF-8 text'),
    ('link: verify_timeout of an hour', LINK_MTU, dict(ONE, verify_targets=['198.18.250.1'], verify_timeout=3600),
     'verify_timeout 3600.0 is outside (0, 60] seconds'),
    ('link: verify_timeout 0', LINK_MTU, dict(ONE, verify_targets=['198.18.250.1'], verify_timeout=0),
     'verify_timeout 0.0 is outside (0, 60] seconds'),
    ('pmtud: sysctl_file that is not UTF-8 text', PMTUD, dict(tcp_mtu_probing=1, sysctl_file='{sysctl_d}/90-binary.conf'),
     "cannot read sysctl_file {sysctl_d}/90-binary.conf: 'utf-8' codec can't decode"),
    ('pmtud: persist=true with a namespace', PMTUD, dict(tcp_mtu_probing=1, netns='{storage}', persist=True,
                                                         sysctl_file='{sysctl_d}/90-pmtud.conf'),
     "persist=true with netns={storage}: a sysctl.d file applies at boot to the host's own network namespace"),
    ('pmtud: empty netns', PMTUD, dict(tcp_mtu_probing=1, netns='', sysctl_file='{sysctl_d}/90-pmtud.conf'),
     "netns is empty ('')"),
    ('pmtud: empty sysctl_file', PMTUD, dict(tcp_mtu_probing=1, sysctl_file=''), "sysctl_file is empty ('')"),
    ('pmtud: relative sysctl_file', PMTUD, dict(tcp_mtu_probing=1, sysctl_file='sysctl.d/90-pmtud.conf'),
     'sysctl_file sysctl.d/90-pmtud.conf is not an absolute path'),
    ('pmtud: sysctl_file masked by a link to /dev/null', PMTUD,
     dict(tcp_mtu_probing=1, sysctl_file='{sysctl_d}/masked.conf'),
     'sysctl_file {sysctl_d}/masked.conf is a symbolic link to /dev/null'),
    ('pmtud: sysctl_file is a directory', PMTUD, dict(tcp_mtu_probing=1, sysctl_file='{sysctl_d}/dir.conf'),
     'sysctl_file {sysctl_d}/dir.conf is a directory'),
    ('pmtud: mtu above the largest IPv4 datagram', PMTUD,
     dict(tcp_mtu_probing=1, tcp_base_mss=1024, mtu=65536, sysctl_file='{sysctl_d}/90-pmtud.conf'),
     'mtu 65536 is above 65535'),
    ('pmtud: tcp_base_mss beyond any IPv4 segment', PMTUD,
     dict(tcp_mtu_probing=1, tcp_base_mss=65496, mtu=65535, sysctl_file='{sysctl_d}/90-pmtud.conf'),
     'tcp_base_mss 65496 does not fit MTU 65535 (option mtu): at most 65495'),
    ('pmtud: tcp_base_mss the kernel would take (2^31-1)', PMTUD,
     dict(tcp_mtu_probing=1, tcp_base_mss=2147483647, sysctl_file='{sysctl_d}/90-pmtud.conf'),
     'tcp_base_mss 2147483647 does not fit MTU 1500 of link '),
    ('pmtud: negative tcp_base_mss the kernel would take', PMTUD,
     dict(tcp_mtu_probing=1, tcp_base_mss=-5, sysctl_file='{sysctl_d}/90-pmtud.conf'),
     'tcp_base_mss -5 is below the kernel floor'),
    ('pmtud: tcp_mtu_probing 255 the kernel would take', PMTUD,
     dict(tcp_mtu_probing=255, sysctl_file='{sysctl_d}/90-pmtud.conf'), 'must be one of: 0, 1, 2, got: 255'),
]


@pytest.fixture(scope='module')
def bad_results(ansible, world):
    """Every case of BAD, one playbook per module, run inside the host namespace;
    the state of both namespaces and every file before and after."""
    inventory = inventory_in(ansible, world['host'])
    before = fingerprint(world)
    results = {}
    for module in (LINK_MTU, PMTUD):
        tasks = [(case, fill(args, world), False) for case, mod, args, dummy in BAD if mod == module]
        results.update(ansible.module_tasks(module, tasks, inventory=inventory))
    return {'results': results, 'before': before, 'after': fingerprint(world)}


@pytest.mark.parametrize('case, module, args, words', BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_refused_and_changes_nothing(bad_results, world, case, module, args, words):
    result = bad_results['results'][case]
    assert result['failed'] is True, result
    assert result.get('changed') is False, result
    assert 'Traceback' not in result.get('module_stderr', '') + result.get('exception', ''), result
    assert fill(words, world) in result['msg']
    hoststate.assert_unchanged(bad_results['before'], bad_results['after'])


def test_bad_input_table_size():
    assert len([c for c in BAD if c[1] == LINK_MTU]) >= 7 and len([c for c in BAD if c[1] == PMTUD]) >= 7
    assert len(BAD) >= 14


# --- a namespace link: auto persists nothing, the host link of the same name is untouched ---

def test_link_auto_in_a_namespace_sets_the_namespace_link_only(ansible, world):
    storage = world['storage']
    before_files = hoststate.files(world['work'])
    before_host = hoststate.links(world['host'])
    try:
        result = ansible.module(LINK_MTU, {'links': [{'name': 'stor0'}], 'mtu': 4000, 'netns': storage,
                                           'persist': 'auto', 'config_root': world['root']},
                                inventory=inventory_in(ansible, world['host']))
        assert not result['failed'], result['msg']
        assert result['changed'] is True and result['persist_method'] == 'none'
        assert result['persist_note'].startswith('persist=auto with netns=%s resolves to persist=none' % storage)
        assert result['persist_note'] in ' '.join(result['warnings'])
        assert result['links'][0]['persist'] == {'method': 'none', 'path': None, 'changed': False}
        assert dict((l[0], l[1]) for l in hoststate.links(storage))['stor0'] == 4000
        hoststate.assert_unchanged(before_host, hoststate.links(world['host']), 'links of the host namespace')
        hoststate.assert_unchanged(before_files, hoststate.files(world['work']), 'config files')
    finally:
        subprocess.run(['ip', '-n', storage, 'link', 'set', 'stor0', 'mtu', '1500'], check=True)


def test_pmtud_in_a_namespace_does_not_write_the_host_file(ansible, world):
    storage = world['storage']
    conf = os.path.join(world['sysctl_d'], '90-hostprep-pmtud.conf')
    before_host = hoststate.sysctls(SYSCTLS, world['host'])
    try:
        result = ansible.module(PMTUD, {'tcp_mtu_probing': 2, 'netns': storage, 'sysctl_file': conf},
                                inventory=inventory_in(ansible, world['host']))
        assert not result['failed'], result['msg']
        assert result['runtime_changed'] is True and result['persist_changed'] is False
        assert result['persist_note'].startswith('persist defaults to false with netns=%s' % storage)
        assert len(result['diff']) == 1 and not os.path.exists(conf)
        assert hoststate.sysctls(SYSCTLS, storage)['net.ipv4.tcp_mtu_probing'] == '2'
        assert hoststate.sysctls(SYSCTLS, world['host']) == before_host
    finally:
        subprocess.run(['ip', 'netns', 'exec', storage, 'sysctl', '-qw', 'net.ipv4.tcp_mtu_probing=0'], check=True)


# --- failures after a real change: immutable directories on a loop-mounted ext4 ---

@pytest.fixture
def immutable(world):
    """A loop-mounted ext4 and the directories made immutable in it (chattr -i afterwards)."""
    locked = []

    def lock(path: str) -> None:
        subprocess.run(['chattr', '+i', path], check=True)
        locked.append(path)
    with loop_filesystem(world['work'], 'ext4') as mountpoint:
        try:
            yield mountpoint, lock
        finally:
            for path in locked:
                subprocess.run(['chattr', '-i', path], check=False)


@pytest.mark.parametrize('method', ['ifupdown', 'networkd'])
def test_link_failed_persistence_restores_the_runtime_mtu(ansible, world, immutable, method):
    mountpoint, lock = immutable
    host = world['host']
    write(mountpoint + '/etc/network/interfaces.d/storage', interfaces('eth0'))
    write(mountpoint + '/etc/network/interfaces', 'source /etc/network/interfaces.d/*\n')
    write(mountpoint + '/run/systemd/netif/links/%d' % world['index']['eth0'], STATE % 'eth0')
    os.makedirs(mountpoint + '/etc/systemd/network')
    lock(mountpoint + ('/etc/network/interfaces.d' if method == 'ifupdown' else '/etc/systemd/network'))
    before = {'links': hoststate.links(host), 'files': hoststate.files(mountpoint)}
    result = ansible.module(LINK_MTU, {'links': [{'name': 'eth0'}], 'mtu': 4000, 'persist': method,
                                       'config_root': mountpoint}, inventory=inventory_in(ansible, host))
    assert result['failed'] is True and 'Traceback' not in result.get('module_stderr', '')
    assert 'persisting the MTU of eth0 with %s failed' % method in result['msg']
    assert 'Operation not permitted' in result['msg']
    assert 'The run-time MTU is restored (eth0 to 1500)' in result['msg']
    assert 'Changed before the failure: set the MTU of eth0 from 1500 to 4000. Restored: the MTU of eth0 back ' \
           'to 1500. The host is as it was before this run.' in result['msg']
    assert result['changes_made'] == ['set the MTU of eth0 from 1500 to 4000']
    assert result['changes_restored'] == ['the MTU of eth0 back to 1500']
    assert result['changed'] is False and result['rolled_back'] is True
    hoststate.assert_unchanged(before, {'links': hoststate.links(host), 'files': hoststate.files(mountpoint)})


def test_pmtud_failed_file_write_restores_the_runtime_values(ansible, world, immutable):
    mountpoint, lock = immutable
    host = world['host']
    os.makedirs(mountpoint + '/sysctl.d')
    write(mountpoint + '/sysctl.d/90-hostprep-pmtud.conf', '# mine\nnet.core.rmem_max = 16777216\n')
    lock(mountpoint + '/sysctl.d')
    before = {'sysctls': hoststate.sysctls(SYSCTLS, host), 'files': hoststate.files(mountpoint)}
    assert before['sysctls'] == {'net.ipv4.tcp_mtu_probing': '0', 'net.ipv4.tcp_base_mss': '1024'}
    result = ansible.module(PMTUD, {'tcp_mtu_probing': 1, 'tcp_base_mss': 1200,
                                    'sysctl_file': mountpoint + '/sysctl.d/90-hostprep-pmtud.conf'},
                            inventory=inventory_in(ansible, host))
    assert result['failed'] is True and 'Traceback' not in result.get('module_stderr', '')
    assert result['msg'].startswith('cannot write sysctl_file %s/sysctl.d/90-hostprep-pmtud.conf: Operation not '
                                    'permitted' % mountpoint)
    assert 'The run-time values are restored (net.ipv4.tcp_base_mss back to 1024, net.ipv4.tcp_mtu_probing back ' \
           'to 0)' in result['msg']
    assert result['changes_made'] == ['set net.ipv4.tcp_mtu_probing from 0 to 1',
                                      'set net.ipv4.tcp_base_mss from 1024 to 1200']
    assert result['changed'] is False and len(result['changes_restored']) == 2
    hoststate.assert_unchanged(before, {'sysctls': hoststate.sysctls(SYSCTLS, host),
                                        'files': hoststate.files(mountpoint)})
