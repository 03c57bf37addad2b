# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only callback: append every task result as a JSON line to the file
named by HOSTPREP_RESULT_LOG, so pytest can assert on module results."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: hostprep_results
type: aggregate
short_description: write task results as JSON lines for the integration tests
description:
  - Appends one JSON object per task result to the file named by E(HOSTPREP_RESULT_LOG).
requirements:
  - enable in ANSIBLE_CALLBACKS_ENABLED
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'hostprep_results'
    CALLBACK_NEEDS_ENABLED = True

    def _log(self, result, status):
        path = os.environ.get('HOSTPREP_RESULT_LOG')
        if not path:
            return
        task = result._task  # pylint: disable=protected-access
        record = {
            'host': result._host.get_name(),  # pylint: disable=protected-access
            'task': task.get_name(),
            'action': task.action,
            'status': status,
            'at': time.time(),
            'result': self._clean(result._result),  # pylint: disable=protected-access
        }
        with open(path, 'a', encoding='utf-8') as handle:
            handle.write(json.dumps(record, default=str) + '\n')

    @staticmethod
    def _clean(value):
        return json.loads(json.dumps(value, default=str))

    def v2_runner_on_ok(self, result):
        self._log(result, 'changed' if result._result.get('changed') else 'ok')  # pylint: disable=protected-access

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._log(result, 'failed')

    def v2_runner_on_skipped(self, result):
        self._log(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._log(result, 'unreachable')
