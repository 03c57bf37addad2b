# SPDX-License-Identifier: GPL-3.0-or-later
"""_common.execute: one failure message that says what was changed and put back, never a traceback."""

from __future__ import annotations

import errno

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _common
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError, changes_of, execute


class Exit(Exception):
    pass


class Module:
    """What execute() uses of an AnsibleModule: exit_json and fail_json end the run."""

    def __init__(self):
        self.result = None

    def exit_json(self, **result):
        self.result = dict(result, failed=False)
        raise Exit()

    def fail_json(self, **result):
        self.result = dict(result, failed=True)
        raise Exit()


def run(action):
    module = Module()
    with pytest.raises(Exit):
        execute(module, action)
    return module.result


def test_success_is_the_action_result():
    assert run(lambda m: {'changed': True, 'x': 1}) == {'changed': True, 'x': 1, 'failed': False}


def test_a_refusal_changes_nothing():
    def action(module):
        raise HostprepError('device /dev/x is in use; stop that use first')
    result = run(action)
    assert result['failed'] and result['changed'] is False
    assert result['msg'] == 'device /dev/x is in use; stop that use first'
    assert result['changes_made'] == [] and result['changes_restored'] == []


def test_a_failure_after_a_change_says_so():
    def action(module):
        changes_of(module).made('wrote /etc/a')
        changes_of(module).made('mounted /m')
        changes_of(module).restored('unmounted /m')
        raise HostprepError('mount of /n failed', cmd=['mount'])
    result = run(action)
    assert result['changed'] is True and result['cmd'] == ['mount']
    assert result['msg'] == ('mount of /n failed. Changed before the failure: wrote /etc/a; mounted /m. '
                             'Restored: unmounted /m.')


def test_a_failure_fully_put_back_is_not_a_change():
    def action(module):
        changes_of(module).made('wrote /etc/a')
        changes_of(module).restored('put back /etc/a', complete=True)
        raise OSError(errno.EACCES, 'Permission denied', '/etc/b')
    result = run(action)
    assert result['changed'] is False
    assert result['msg'].startswith('PermissionError (/etc/b): Permission denied.')
    assert result['msg'].endswith('The host is as it was before this run.')


def test_an_unexpected_error_is_one_message_with_the_trace_apart():
    def action(module):
        changes_of(module).made('removed /d/x')
        raise KeyError('flags_sources')
    result = run(action)
    assert result['changed'] is True
    assert result['msg'].startswith("unexpected error: KeyError: 'flags_sources'. Changed before the failure: removed /d/x")
    assert 'Traceback' in result['exception'] and 'Traceback' not in result['msg']


def test_move_into_place_names_the_file(tmp_path):
    class Failing:
        @staticmethod
        def atomic_move(src, dest, unsafe_writes=False):
            try:
                raise OSError(errno.EPERM, 'Operation not permitted')
            except OSError as exc:
                raise RuntimeError('Could not replace file') from exc  # ansible-core 2.19 raises a plain Exception

    target = tmp_path / 'daemon.json'
    target.write_bytes(b'{}')
    with pytest.raises(OSError) as caught:
        _common.put_back(Failing(), str(target), b'{"a": 1}')
    assert caught.value.filename == str(target) and caught.value.strerror == 'Operation not permitted'
    assert target.read_bytes() == b'{}' and [p.name for p in tmp_path.iterdir()] == ['daemon.json']
