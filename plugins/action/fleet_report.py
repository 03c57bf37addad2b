# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin hostprep.container_host.fleet_report: the fleet report, on the controller.

The documentation is plugins/modules/fleet_report.py. The records are
module_utils/_fleet_report.py, the view module_utils/_fleet_view.py, the page
templates/fleet_report.html.j2 (Jinja with autoescape: every host string is
escaped and its invisible characters shown).
"""

from __future__ import annotations

import os
import typing as t

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.hostprep.container_host.plugins.module_utils import _fleet_report as records
from ansible_collections.hostprep.container_host.plugins.module_utils import _fleet_view as view

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'templates')

ARGUMENT_SPEC = {
    'operation': {'type': 'str', 'required': True, 'choices': ['record', 'render']},
    'dir': {'type': 'path', 'required': True},
    'result': {'type': 'raw'},
    'limits': {'type': 'dict', 'default': {}},
    'keep': {'type': 'int', 'default': 0},
    'host': {'type': 'str'},
    'title': {'type': 'str', 'default': 'Container host validation'},
    'hosts': {'type': 'list', 'elements': 'str', 'default': []},
}


def _shown(value: t.Any) -> t.Any:
    """Every string the template prints, with invisible characters shown (markup built by the view is kept)."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return records.visible(value)


def html_page(context: dict[str, t.Any]) -> str:
    """The report page from templates/fleet_report.html.j2."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      finalize=_shown, trim_blocks=False, keep_trailing_newline=True)
    return env.get_template('fleet_report.html.j2').render(**context)


def record(root: str, result: t.Any, limits: dict[str, t.Any], keep: int, host: str) -> dict[str, t.Any]:
    """Store one host's result; a refusal raises ReportError or ValueError naming what to do."""
    if keep < 0:
        raise ValueError('keep is %d; give 0 (keep every run) or the number of runs to keep' % keep)
    if isinstance(result, str):
        # a result given as JSON text; text that is not JSON is stored as it came and named in the report
        raw = result.encode('utf-8', 'surrogatepass')
        try:
            result = records.parse_run(raw)
        except records.Unusable:
            return records.record_input(root, raw, keep, host)
    return records.record(root, {'result': result, 'limits': limits}, keep, host)


def render(root: str, title: str, hosts: t.Iterable[str] = ()) -> dict[str, t.Any]:
    out = view.render(root, title, html_page, hosts)
    out['not_used'] = [{k: entry[k] for k in ('host', 'file', 'problem', 'msg')} for entry in out['not_used']]
    return out


def guarded(func: t.Callable[..., dict[str, t.Any]], *args: t.Any) -> dict[str, t.Any]:
    """func's answer, or failed and one message (never a traceback) for what stops it."""
    try:
        return dict(func(*args), failed=False)
    except (records.ReportError, ValueError, OSError) as exc:
        return {'failed': True, 'msg': str(exc)}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    # The module file is documentation only (no code runs on a host): check mode is handled here, in run(),
    # which writes nothing and reports a change.
    _supports_check_mode = True

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        task_vars = task_vars or {}
        root = os.path.abspath(args['dir'])
        if self._task.check_mode:
            result.update(changed=True, skipped=False, msg='check mode: nothing written under %s' % root)
            return result
        if args['operation'] == 'record':
            if args['result'] is None:
                raise AnsibleActionFail('operation=record needs result (the host\'s measured result)')
            host = args['host'] or task_vars.get('inventory_hostname')
            out = guarded(record, root, args['result'], args['limits'], args['keep'], host)
        else:
            out = guarded(render, root, args['title'], args['hosts'])
        result.update(out, changed=not out['failed'])
        return result
