# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""docker_daemon_config's work, private to hostprep.container_host.

``manage()`` reads daemon.json, sets or removes keys, refuses keys dockerd
is also given as flags, checks the storage keys and the engine's own
validation, and writes the file. The pieces live in one file per job:
``_daemon_json`` (the file and its data), ``_dockerd_flags`` (dockerd's
command-line flags) and ``_storage_keys`` (storage keys against the engine
and the host). Their names stay importable from here for older importers.
"""

from __future__ import annotations

import os
import tempfile
import typing as t

from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    Differences,
    HostprepError,
    changes_of,
)
from ansible_collections.hostprep.container_host.plugins.module_utils import _engine
from ansible_collections.hostprep.container_host.plugins.module_utils._daemon_json import (
    DEFAULT_PATH,
    KNOWN_KEYS_20_10,
    MAX_CONFIG_BYTES,
    ConfigProblem,
    canonical,
    config_file,
    merge,
    parse_config,
    read_bounded,
    read_config,
    remove,
    render,
    same,
    unknown_keys,
    write_config,
)
from ansible_collections.hostprep.container_host.plugins.module_utils._dockerd_flags import (
    BOOL_FLAGS,
    DEFAULT_FLAGS_SOURCES,
    MAX_SOURCE_BYTES,
    NAMED_FLAGS,
    NOT_DIRECTIVES,
    SHORT_FLAGS,
    SKIP_DUPLICATES,
    FlagUse,
    conflict_message,
    expand_sources,
    find_conflicts,
    parse_flags,
    read_flags,
    read_sources,
    scan_env,
    scan_flag_sources,
    scan_unit,
)
from ansible_collections.hostprep.container_host.plugins.module_utils._storage_keys import (
    DRIVER_OPTIONS,
    OPTION_PREFIX,
    SIZE_OPTIONS,
    HostProbe,
    Probe,
    check_storage,
    data_root_of,
    driver_of_option,
    parse_storage_opts,
    path_key_problems,
)

# the names other modules import from here (each job has its own file now)
__all__ = [
    'DEFAULT_PATH', 'KNOWN_KEYS_20_10', 'MAX_CONFIG_BYTES', 'ConfigProblem', 'canonical', 'config_file',
    'merge', 'parse_config', 'read_bounded', 'read_config', 'remove', 'render', 'same', 'unknown_keys',
    'write_config', 'BOOL_FLAGS', 'DEFAULT_FLAGS_SOURCES', 'MAX_SOURCE_BYTES', 'NAMED_FLAGS',
    'NOT_DIRECTIVES', 'SHORT_FLAGS', 'SKIP_DUPLICATES', 'FlagUse', 'conflict_message', 'expand_sources',
    'find_conflicts', 'parse_flags', 'read_sources', 'scan_env', 'scan_flag_sources', 'scan_unit',
    'DRIVER_OPTIONS', 'OPTION_PREFIX', 'SIZE_OPTIONS', 'HostProbe', 'Probe', 'check_storage', 'data_root_of',
    'driver_of_option', 'parse_storage_opts', 'manage', 'wanted_config',
]


def wanted_config(current: dict[str, t.Any], params: dict[str, t.Any]) -> dict[str, t.Any]:
    if params['state'] == 'present':
        return merge(current, params.get('config') or {}, recursive=params.get('recursive', True))
    return remove(current, params.get('config'), params.get('keys'))


def manage(module: t.Any) -> dict[str, t.Any]:
    """Compute, check and (outside check mode) write daemon.json."""
    params = module.params
    path = params['path']
    warnings: list[str] = []
    if params['state'] == 'present' and params.get('keys'):
        raise HostprepError('keys is only used with state=absent; to set keys give them in config')
    real, text = read_config(path)
    current, parse_warnings = parse_config(text, path, refuse_duplicates=True)
    warnings.extend(parse_warnings)
    before = current if current is not None else {}
    after = wanted_config(before, params)
    try:
        render(after)
    except (TypeError, ValueError) as exc:
        raise HostprepError('config cannot be written as JSON (dockerd reads JSON without NaN or Infinity): %s; '
                            'nothing was changed' % exc) from exc

    keys = Differences()
    for key in list(before) + [key for key in after if key not in before]:
        keys.add(key, canonical(before[key]) if key in before else None,
                 canonical(after[key]) if key in after else None)
    # Written when the data differs, when present creates a missing file, and
    # when the file is empty (dockerd refuses an empty file).
    changed = (keys.changed
               or (current is None and params['state'] == 'present')
               or (text is not None and not text.strip()))

    problems = path_key_problems(after, keys.changed_items())
    if problems:
        raise HostprepError('%s not changed: %s' % (path, '; '.join(problems)), problems=problems)
    relative = [pattern for pattern in params['flags_sources'] if not os.path.isabs(pattern)]
    if relative:
        raise HostprepError('flags_sources %s: give absolute paths or patterns of the files that start dockerd '
                            '(a relative one would be looked up in the module\'s temporary directory and find '
                            'nothing)' % ', '.join(relative), flags_sources=relative)
    flag_uses = read_flags(params['flags_sources'], warnings)
    conflicts = find_conflicts(after, flag_uses)
    engine = None
    if changed:
        if conflicts and params['state'] == 'present':
            raise HostprepError(conflict_message(path, conflicts),
                                conflicts=[use.as_dict() for use in conflicts])
        if params['validate']:
            engine = validate(module, path, after, flag_uses, warnings)
    for use in conflicts:
        if not changed or params['state'] == 'absent':
            warnings.append('%s is also set as dockerd flag --%s in %s; dockerd refuses to start until one of '
                            'them goes' % (use.key, use.flag, use.where()))
    config_file_flags = [use for use in flag_uses if use.flag == 'config-file' and use.value]
    for use in config_file_flags:
        if os.path.abspath(use.value) != os.path.abspath(path):
            warnings.append('dockerd is started with --config-file %s (%s), not %s'
                            % (use.value, use.where(), path))

    backup_file = None
    if changed and not module.check_mode:
        backup_file = write_config(module, path, real, render(after), params['backup'], changes_of(module))

    result: dict[str, t.Any] = {
        'changed': changed,
        'restart_required': changed,
        'path': path,
        'config': after,
        'backup_file': backup_file,
        'changed_keys': keys.changed_items(),
        'diff': {'before': before if current is not None else {}, 'after': after,
                 'before_header': path, 'after_header': path},
        'flags': [use.as_dict() for use in flag_uses],
    }
    if engine is not None:
        result['engine'] = engine.as_dict()
    for warning in warnings:
        module.warn(warning)
    return result


def validate(module: t.Any, path: str, after: dict[str, t.Any], flag_uses: list[FlagUse],
             warnings: list[str]) -> _engine.EngineFacts:
    """The new configuration checked against the installed engine: its storage keys on this host, then
    dockerd --validate (Engine 23 and later) or the keys Engine 20.10 knows. Returns the engine's facts;
    raises HostprepError naming every problem."""
    engine = _engine.engine_facts(module, module.params.get('dockerd_path'))
    if engine is None:
        raise HostprepError('no dockerd found to validate %s against; install the Docker engine first, '
                            'set dockerd_path, or set validate=false' % path)
    problems, storage_warnings = check_storage(after, engine.version, HostProbe(module), data_root_of(after, flag_uses))
    warnings.extend(storage_warnings)
    if engine.has_validate:
        error = _validate_with_dockerd(module, engine, path, after)
        if error:
            problems.append('dockerd %s --validate refuses the result: %s'
                            % (_engine.version_string(engine.version), error))
    elif engine.version[:2] == (20, 10):
        unknown = unknown_keys(after)
        if unknown:
            problems.append('Engine %s does not know the key%s %s; check the spelling (the keys are '
                            'listed in the dockerd reference)' % (_engine.version_string(engine.version),
                                                                  's' if len(unknown) > 1 else '',
                                                                  ', '.join(unknown)))
    if problems:
        raise HostprepError('%s not changed: %s' % (path, '; '.join(problems)),
                            problems=problems, engine=engine.as_dict())
    return engine


def _validate_with_dockerd(module: t.Any, engine: _engine.EngineFacts, path: str,
                           config: dict[str, t.Any]) -> str | None:
    fd, tmp = tempfile.mkstemp(prefix='hostprep-daemon-', suffix='.json')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(render(config))
        return _engine.validate_config_file(module, engine, tmp)
    finally:
        os.unlink(tmp)
