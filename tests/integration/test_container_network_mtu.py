# SPDX-License-Identifier: GPL-3.0-or-later
"""Container networks against a path narrower than the uplink, with a real
private dockerd in a namespace (tests/lab/container_net_lab.py): the role
writes the MTU into daemon.json, the engine's default bridge and a
user-defined network carry it, a container on a 1500 bridge fails the check
from inside it and a correctly configured one passes, networks above their
path are flagged (recreation named, never done), and the container's
tcp_mtu_probing is checked."""

from __future__ import annotations

import json
import os

import docker
import pytest

from tests.lab.container_net_lab import ContainerNetLab, import_sleeper
from tests.lab.netns_lab import python_in

PROBE = 'hostprep.container_host.container_path_mtu_info'
NETS = 'hostprep.container_host.docker_network_mtu_info'


@pytest.fixture(scope='module')
def cnet():
    lab = ContainerNetLab('hpn%d' % (os.getpid() % 1000))
    try:
        yield lab, lab.up()
    finally:
        lab.down()


@pytest.fixture
def engine(cnet, tmp_path):
    """A private engine in the lab's host namespace, started with the daemon.json the test wrote (if any)."""
    lab, dummy = cnet
    started = []

    def start(daemon_json: str | None = None):
        dockerd = lab.engine(str(tmp_path), daemon_json)
        dockerd.start()
        started.append(dockerd)
        import_sleeper(dockerd.client)
        return dockerd
    yield start
    for dockerd in started:
        dockerd.stop()


@pytest.fixture(scope='module')
def shared(cnet, tmp_path_factory):
    """One engine (default MTU 1500) for the tests that do not restart it."""
    lab, dummy = cnet
    dockerd = lab.engine(str(tmp_path_factory.mktemp('shared-engine')), None)
    dockerd.start()
    try:
        import_sleeper(dockerd.client)
        dockerd.client.containers.create('hostprep-sleeper:latest', ['sleep', '300'], name='stopped')
        yield dockerd
    finally:
        dockerd.stop()


def in_lab(ansible, cnet) -> str:
    lab, dummy = cnet
    return ansible.inventory({'dh': {'ansible_python_interpreter': python_in(lab.host, ansible.workdir)}})


def module(ansible, cnet, name, args, check=False):
    result = ansible.module(name, args, check=check, inventory=in_lab(ansible, cnet))
    assert not result.get('failed'), result.get('msg')
    return result


def by_name(result):
    return {net['name']: net for net in result['networks']}


def test_a_container_on_a_1500_bridge_fails_and_a_fitting_network_passes(ansible, cnet, shared):
    lab, info = cnet
    dockerd = shared
    client = dockerd.client
    client.networks.create('fits', driver='bridge', options={'com.docker.network.driver.mtu': '1450'},
                           ipam={'Config': [{'Subnet': '172.30.1.0/24'}]})
    client.networks.create('toobig', driver='bridge', ipam={'Config': [{'Subnet': '172.30.2.0/24'}]})
    keeper = client.containers.run('hostprep-sleeper:latest', ['sleep', '300'], network='toobig', detach=True)
    try:
        args = {'docker_host': dockerd.base_url, 'targets': [info['target_v4']], 'image': 'hostprep-sleeper:latest'}
        failing = module(ansible, cnet, PROBE, dict(args, network='bridge'))
        assert failing['all_ok'] is False and failing['short_lived'] is True
        assert failing['interfaces'] == [{'ifname': 'eth0', 'mtu': 1500}]
        assert (failing['targets'][0]['path_mtu'], failing['targets'][0]['expected_mtu_ok']) == (1450, False)
        passing = module(ansible, cnet, PROBE, dict(args, network='fits'))
        assert passing['all_ok'] is True and passing['interfaces'] == [{'ifname': 'eth0', 'mtu': 1450}]
        assert passing['targets'][0]['path_mtu'] == 1450
        assert not [c for c in client.containers.list(all=True) if c.name.startswith('hostprep-probe-')]

        nets = by_name(module(ansible, cnet, NETS, {'docker_host': dockerd.base_url, 'targets': [info['target_v4']],
                                                    'expected_mtu': 1500}))
        assert (nets['fits']['status'], nets['fits']['mtu']) == ('fits', 1450)
        assert nets['toobig']['status'] == 'above_path' and nets['toobig']['containers'] == 1
        assert 'recreating it with -o com.docker.network.driver.mtu=1450 after its 1 container(s) are detached' \
            in nets['toobig']['problem']
        assert nets['bridge']['status'] == 'above_path' and 'set mtu 1450 in daemon.json' in nets['bridge']['problem']
        assert nets['host']['status'] == 'not_judged'
        assert 'toobig' in [n.name for n in client.networks.list()], 'a network was recreated or removed'
    finally:
        keeper.remove(force=True)


def test_the_role_gives_the_default_bridge_the_path_mtu(ansible, cnet, engine, tmp_path):
    lab, info = cnet
    daemon_json = str(tmp_path / 'daemon.json')
    dockerd = engine()
    role_vars = {'storage_network_links': [], 'storage_network_targets': [info['target_v4']],
                 'storage_network_expected_mtu': 1500, 'storage_network_fail_on_mismatch': False,
                 'storage_network_manage_sysctls': False, 'storage_network_install_packages': False,
                 'storage_network_container_mtu': 'path', 'storage_network_daemon_json': daemon_json,
                 'storage_network_docker_host': dockerd.base_url}
    playbook = tmp_path / 'play.yml'
    playbook.write_text('- hosts: all\n  gather_facts: false\n  roles: [hostprep.container_host.storage_network]\n')
    checked = ansible.playbook(str(playbook), inventory=in_lab(ansible, cnet), extra_vars=role_vars, check=True)
    assert checked.rc == 0, checked.stdout[-3000:]
    assert not os.path.exists(daemon_json), 'check mode wrote daemon.json'
    applied = ansible.playbook(str(playbook), inventory=in_lab(ansible, cnet), extra_vars=role_vars)
    assert applied.rc == 0, applied.stdout[-3000:]
    with open(daemon_json, encoding='utf-8') as handle:
        assert json.load(handle) == {'mtu': 1450}  # Engine 20.10: no default-network-opts
    again = ansible.playbook(str(playbook), inventory=in_lab(ansible, cnet), extra_vars=role_vars)
    assert again.rc == 0 and again.changed == 0, again.stdout[-3000:]
    dockerd.stop()

    restarted = engine(daemon_json)
    bridge = restarted.client.networks.get('bridge')
    assert bridge.attrs['Options']['com.docker.network.driver.mtu'] == '1450'
    result = module(ansible, cnet, PROBE, {'docker_host': restarted.base_url, 'network': 'bridge',
                                           'image': 'hostprep-sleeper:latest', 'targets': [info['target_v4']]})
    assert result['all_ok'] is True and result['interfaces'] == [{'ifname': 'eth0', 'mtu': 1450}]


def test_tcp_mtu_probing_is_the_containers_own(ansible, cnet, shared):
    lab, info = cnet
    dockerd = shared
    set_one = dockerd.client.containers.run('hostprep-sleeper:latest', ['sleep', '300'], detach=True,
                                            sysctls={'net.ipv4.tcp_mtu_probing': '1'}, name='probing-one')
    try:
        args = {'docker_host': dockerd.base_url, 'targets': [info['target_v4']], 'tcp_mtu_probing': 1,
                'expected_mtu': 1450}
        good = module(ansible, cnet, PROBE, dict(args, container='probing-one'))
        assert good['tcp_mtu_probing'] == {'value': 1, 'expected': 1, 'ok': True, 'problem': None}
        assert good['all_ok'] is True and good['short_lived'] is False and good['container'] == 'probing-one'
        bad = module(ansible, cnet, PROBE, dict(args, network='bridge', image='hostprep-sleeper:latest'))
        assert bad['tcp_mtu_probing']['value'] == 0 and bad['all_ok'] is False
        assert 'containers do not inherit' in bad['tcp_mtu_probing']['problem']
    finally:
        set_one.remove(force=True)


@pytest.mark.parametrize('args, words', [
    ({'network': 'bridge'}, 'give image'),
    ({'network': 'nosuchnet', 'image': 'hostprep-sleeper:latest'}, 'has no network nosuchnet'),
    ({'container': 'nosuchcontainer'}, 'has no'),
    ({'container': 'stopped'}, 'container stopped is not running'),
    ({'network': 'bridge', 'image': 'hostprep-sleeper:latest', 'targets': ['127.0.0.1']}, 'loopback'),
])
def test_bad_input_is_refused_and_leaves_no_container(ansible, cnet, shared, args, words):
    lab, info = cnet
    dockerd = shared
    before = sorted(c.name for c in dockerd.client.containers.list(all=True))
    result = ansible.module(PROBE, dict({'docker_host': dockerd.base_url, 'targets': [info['target_v4']]}, **args),
                            inventory=in_lab(ansible, cnet))
    assert result.get('failed') and words in result['msg'], result.get('msg')
    assert sorted(c.name for c in dockerd.client.containers.list(all=True)) == before


def test_overlay_networks_need_the_encapsulation_on_the_path(ansible, cnet, shared):
    """A one-node swarm's overlay networks: 1450 inside (1500 minus 50 of VXLAN) takes 1500 on the underlay,
    above the 1450 path; the fitting MTU is computed with the overhead (and ESP's for an encrypted one)."""
    lab, info = cnet
    client = shared.client
    client.swarm.init(advertise_addr='198.18.60.2')
    try:
        client.networks.create('ovl', driver='overlay', attachable=True)
        # an overlay's option is its underlay MTU: 1450 gives containers 1400, 1400 gives them 1350
        client.networks.create('ovlfit', driver='overlay', attachable=True,
                               options={'com.docker.network.driver.mtu': '1450'})
        client.networks.create('ovlsmall', driver='overlay', attachable=True,
                               options={'com.docker.network.driver.mtu': '1400'})
        client.networks.create('ovlsec', driver='overlay', attachable=True, options={'encrypted': ''})
        nets = by_name(module(ansible, cnet, NETS, {'docker_host': shared.base_url, 'targets': [info['target_v4']],
                                                    'expected_mtu': 1500}))
        assert (nets['ovl']['mtu'], nets['ovl']['wire_mtu'], nets['ovl']['status']) == (1450, 1500, 'above_path')
        assert nets['ovl']['fitting_mtu'] == 1400 and nets['ovlsec']['fitting_mtu'] == 1372
        assert (nets['ovlfit']['mtu'], nets['ovlfit']['wire_mtu'], nets['ovlfit']['status']) == (1400, 1450, 'fits')
        assert (nets['ovlsmall']['mtu'], nets['ovlsmall']['wire_mtu'], nets['ovlsmall']['status']) == \
            (1350, 1400, 'below_path')
        assert 'recreating it with -o com.docker.network.driver.mtu=1450' in nets['ovl']['problem']
        # what the engine gives a container on it (joining an overlay takes longer than the lab client's 5 s)
        slow = docker.DockerClient(base_url=shared.base_url, timeout=180)
        try:
            eth0 = slow.containers.run('hostprep-sleeper:latest', ['sh', '-c', 'read m < /sys/class/net/eth0/mtu; echo $m'],
                                       network='ovlsmall', remove=True)
        finally:
            slow.close()
        assert eth0.strip() == b'1350'
    finally:
        client.swarm.leave(force=True)


def test_validate_records_host_and_container_path_mtu_side_by_side(ansible, cnet, shared, tmp_path):
    """The validate role's record (fleet report input) holds the host's pmtu and the container's container_pmtu."""
    lab, info = cnet
    report = tmp_path / 'report'
    role_vars = {'validate_benchmark': False, 'validate_storage_targets': [info['target_v4']],
                 'validate_expected_mtu': 1500, 'validate_fail_on_limits': False, 'validate_report': False,
                 'validate_report_dir': str(report), 'validate_docker_host': shared.base_url,
                 'validate_container_probe': True, 'validate_container_image': 'hostprep-sleeper:latest',
                 'validate_container_tcp_mtu_probing': 1, 'validate_install_packages': False}
    playbook = tmp_path / 'validate.yml'
    playbook.write_text('- hosts: all\n  gather_facts: false\n  roles: [hostprep.container_host.validate]\n')
    run = ansible.playbook(str(playbook), inventory=in_lab(ansible, cnet), extra_vars=role_vars)
    assert run.rc == 0, run.stdout[-3000:]
    records = list(report.glob('runs/*/*.json'))
    assert len(records) == 1, run.stdout[-2000:]
    record = json.loads(records[0].read_text())
    record = record.get('result', record)
    assert record['pmtu'][0]['path_mtu'] == 1450
    container = record['container_pmtu']
    assert container['network'] == 'bridge' and container['interfaces'] == [{'ifname': 'eth0', 'mtu': 1500}]
    assert (container['targets'][0]['path_mtu'], container['targets'][0]['expected_mtu_ok']) == (1450, False)
    assert container['tcp_mtu_probing']['ok'] is False and container['all_ok'] is False
