# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet runs over real SSH (issue 12): lab hosts that are network namespaces,
each with its own sshd (tests/lab/ssh_hosts.py), reached across the storage
fabric of the netns lab.

- site.yml with serial batches and max_fail_percentage 0, 10 hosts in two
  batches of 5: a host of batch 1 that is unreachable, or that fails its role,
  stops the rollout before batch 2; the recap and the messages name the host
  and why. One host: check mode, apply, apply again without a change.
- validate.yml over 10 hosts: every reachable host's record lands and one
  report comes out; a host whose benchmark fails is in the report as failed,
  one that cannot be reached as missing.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from pyroute2 import NetNS

from conftest import ROOT, require  # pylint: disable=import-error
from tests.lab.dockerd import PrivateDockerd
from tests.lab.netns_lab import Lab
from tests.lab.ssh_hosts import SSHD, SshHosts

SITE = os.path.join(ROOT, 'playbooks', 'site.yml')
VALIDATE = os.path.join(ROOT, 'playbooks', 'validate.yml')
FLEET = 10


@pytest.fixture(scope='module')
def fleet(prerequisites):  # pylint: disable=unused-argument
    require(os.path.exists(SSHD), 'openssh-server (%s)' % SSHD)
    netlab = Lab('hps%d' % (os.getpid() % 1000), fleet=FLEET)
    info = netlab.up()
    try:
        with SshHosts(info) as hosts:
            yield info, hosts
    finally:
        netlab.down()


@pytest.fixture
def all_up(fleet):
    """Every host reachable and at MTU 1500 before the test (a test may stop some)."""
    info, hosts = fleet
    for member in info['fleet']:
        if member['name'] not in hosts.pids:
            hosts.start(member['name'])
        with NetNS(member['netns']) as nsr:
            nsr.link('set', index=nsr.link_lookup(ifname='eth0')[0], mtu=1500)
    hosts.wait()
    return info, hosts


def link_mtu(nsname: str) -> int:
    with NetNS(nsname) as nsr:
        return nsr.get_links(nsr.link_lookup(ifname='eth0')[0])[0].get_attr('IFLA_MTU')


def site_inventory(ansible, info, hosts, tmp_path, names, bad=None):
    hostvars = {}
    for name in names:
        member = hosts.members[name]
        hostvars[name] = dict(hosts.hostvars(name), ansible_become=False,
                              storage_network_links=[{'name': 'nosuch0' if name == bad else member['nic']}],
                              storage_network_targets=[info['targets']['t9000']['v4']],
                              storage_network_persist='none',
                              storage_network_sysctl_file=str(tmp_path / ('%s.conf' % name)))
    return ansible.inventory(hostvars)


SITE_VARS = {'hostprep_hosts': 'all', 'hostprep_docker_hosts': 'no_docker_hosts_here', 'site_serial': 5}


def recap(stdout: str) -> dict[str, str]:
    """The PLAY RECAP lines, host -> the rest of its line."""
    tail = stdout.rsplit('PLAY RECAP', 1)[-1]
    return {line.split()[0]: line.split(':', 1)[1].strip() for line in tail.splitlines() if ' : ok=' in line}


def test_one_host_over_ssh_apply_and_idempotent(ansible, all_up, tmp_path):
    info, hosts = all_up
    name = info['fleet'][0]['name']
    inventory = site_inventory(ansible, info, hosts, tmp_path, [name])
    check = ansible.playbook(SITE, inventory, SITE_VARS, check=True)
    assert check.rc == 0 and check.changed > 0, check.stdout[-3000:]
    assert link_mtu(hosts.members[name]['netns']) == 1500
    first = ansible.playbook(SITE, inventory, SITE_VARS)
    assert first.rc == 0 and first.changed > 0, first.stdout[-3000:]
    assert link_mtu(hosts.members[name]['netns']) == 9000
    second = ansible.playbook(SITE, inventory, SITE_VARS)
    assert second.rc == 0 and second.changed == 0, second.stdout[-3000:]
    assert 'changed=0' in recap(second.stdout)[name]


@pytest.mark.parametrize('fault', ['unreachable', 'role_fails'])
def test_a_failure_in_batch_one_stops_the_rollout(ansible, all_up, tmp_path, fault):
    """max_fail_percentage 0 alone lets batch 2 run after an unreachable host
    (ansible-core counts only failed hosts there); site.yml's any_errors_fatal stops it."""
    info, hosts = all_up
    names = [m['name'] for m in info['fleet']]
    batch1, batch2 = names[:5], names[5:]
    victim = batch1[1]
    if fault == 'unreachable':
        hosts.stop(victim)
    inventory = site_inventory(ansible, info, hosts, tmp_path, names, bad=victim if fault == 'role_fails' else None)
    run = ansible.playbook(SITE, inventory, SITE_VARS, forks=10)
    assert run.rc != 0, run.stdout[-3000:]
    guard = 'Stop the rollout when a host of an earlier batch failed or could not be reached'
    ran = {r['host'] for r in run.records if r['task'] != guard}
    assert not ran & set(batch2), 'batch 2 ran: %s\n%s' % (sorted(ran & set(batch2)), run.stdout[-6000:])
    for name in batch2:
        assert link_mtu(hosts.members[name]['netns']) == 1500, name
    lines = recap(run.stdout)
    if fault == 'unreachable':
        # ansible-core does not count it for max_fail_percentage: batch 2 starts, and stops at its first task
        assert 'unreachable=1' in lines[victim], lines
        assert 'fatal: [%s]: UNREACHABLE!' % victim in run.stdout, run.stdout[-3000:]
        for name in batch2:
            assert 'ok=0' in lines[name] and 'failed=1' in lines[name], lines
            stopped = run.result(guard, name)['msg']
            lost = stopped.split('rollout stopped before this batch: ', 1)[1].split(' failed or could not be reached')[0]
            assert victim in lost.split(', '), stopped
    else:
        assert set(lines) == set(batch1), lines
        assert 'failed=1' in lines[victim], lines
        failure = [r for r in run.failed if r['host'] == victim]
        assert failure and 'nosuch0' in json.dumps(failure[0]['result']), run.stdout[-3000:]
    assert 'NO MORE HOSTS LEFT' in run.stdout, run.stdout[-3000:]


def test_validate_over_ssh_reports_every_host(ansible, all_up, tmp_path):
    require(shutil.which('dockerd') is not None, 'dockerd')
    info, hosts = all_up
    names = [m['name'] for m in info['fleet']]
    measured, broken, gone = names[0], names[2], names[-1]
    report = tmp_path / 'report'
    # an engine on a plain directory: a mount made now would not reach the sshds' mount namespaces
    engine = PrivateDockerd(str(tmp_path), data_root=str(tmp_path / 'docker'), storage_driver='vfs').start()
    try:
        hostvars = {}
        for name in names:
            hostvars[name] = dict(hosts.hostvars(name), ansible_become=False, validate_benchmark=False,
                                  validate_storage_targets=[info['targets']['t1500']['v4']], validate_expected_mtu=1500)
        hostvars[measured].update(validate_benchmark=True, validate_docker_host=engine.base_url)
        hostvars[broken].update(validate_benchmark=True, validate_docker_host='unix:///nonexistent/hp-ssh-docker.sock')
        hosts.stop(gone)
        extra = {'hostprep_hosts': 'all', 'validate_count': 1, 'validate_scenarios': ['oneshot'],
                 'validate_sleep_seconds': 30, 'validate_report_dir': str(report)}
        run = ansible.playbook(VALIDATE, ansible.inventory(hostvars), extra, forks=10)
    finally:
        engine.stop()
    assert run.rc != 0
    lines = recap(run.stdout)
    assert 'unreachable=1' in lines[gone] and 'failed=1' in lines[broken] and 'rescued=1' in lines[broken], lines
    assert {r['host'] for r in run.failed} == {broken}, run.stdout[-3000:]
    for name in names:
        assert len(list((report / 'runs' / name).glob('*.json'))) == (name != gone), name
    summary = json.loads((report / 'report.json').read_text())
    assert summary['hosts'] == sorted(set(names) - {gone})
    assert summary['missing'] == [gone]
    assert list(summary['failed']) == [broken] and 'nonexistent' in summary['failed'][broken]
    assert summary['latest'][measured]['figures']['start_seconds']['median'] > 0
    rendered = run.results('Write the fleet report (HTML, Markdown, JSON and CSV)')
    assert len(rendered) == 1, 'one report'
    page = (report / 'report.html').read_text(encoding='utf-8')
    assert 'the benchmark failed' in page and 'no result recorded' in page
    failure = run.result('Fail a host whose benchmark failed (it is in the report as failed)', broken)['msg']
    assert failure.startswith('host %s: the copy-on-write benchmark failed: ' % broken)
