# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""containerd snapshotter configuration, private to hostprep.container_host.

containerd's own config.toml is never rewritten as a whole: the snapshotter
settings go into a drop-in file of their own, and the main file only gets
the drop-in added to its top-level ``imports`` list. That one edit keeps
every other line byte for byte, and is checked by parsing the result again
(same data apart from ``imports``). containerd merges imported files section
by section (an imported plugin section replaces the main file's section
whole), so the drop-in carries over any other keys the main file had for
that plugin. Parsers and editors are pure functions of text.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import re
import stat
import typing as t

try:
    import tomllib  # Python 3.11+
except ImportError:  # pragma: no cover - older Pythons on managed hosts
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ImportError:
        tomllib = None  # type: ignore[assignment]

from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    Changes,
    Differences,
    HostprepError,
    atomic_write,
    changes_of,
    missing_directories,
    put_back,
    read_bytes,
    read_text,
)
from ansible_collections.hostprep.container_host.plugins.module_utils import _engine_use
from ansible_collections.hostprep.container_host.plugins.module_utils import _daemon_config
from ansible_collections.hostprep.container_host.plugins.module_utils import _daemon_json
from ansible_collections.hostprep.container_host.plugins.module_utils._dockerd_flags import read_flags
from ansible_collections.hostprep.container_host.plugins.module_utils import _engine

DEFAULT_CONFIG = '/etc/containerd/config.toml'
DEFAULT_DROP_IN = '/etc/containerd/conf.d/50-hostprep-snapshotter.toml'
PLUGINS = {
    'devmapper': 'io.containerd.snapshotter.v1.devmapper',
    'btrfs': 'io.containerd.snapshotter.v1.btrfs',
}
# The containerd image store came with Engine 24 (opt-in through
# features.containerd-snapshotter) and is the default for fresh installs from 29.
MIN_ENGINE = (24, 0, 0)
_IMPORTS_RE = re.compile(r'''^\s*(imports|"imports"|'imports')\s*=''')
_BARE_KEY = re.compile(r'^[A-Za-z0-9_-]+$')
_HUMAN_SIZE = re.compile(r'^\d+(\.\d+)?\s*([kKmMgGtTpP]i?)?[bB]?$')
_POOL_NAME = re.compile(r'^[A-Za-z0-9+_.-]+$')


def require_toml() -> None:
    if tomllib is None:
        raise HostprepError('reading containerd\'s TOML configuration needs Python 3.11 (tomllib) or the tomli '
                            'package on the managed host; install python3-tomli or use a newer Python')


def parse_toml(text: str, path: str) -> dict[str, t.Any]:
    require_toml()
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HostprepError('%s is not valid TOML: %s; fix the file, nothing was changed' % (path, exc),
                            path=path) from exc


def config_version(data: dict[str, t.Any]) -> int:
    """containerd reads a file without ``version`` as version 1."""
    value = data.get('version', 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


# ---- the one edit of the main file -------------------------------------------

def _statement_end(lines: list[str], start: int) -> int:
    """Index after the last line of the top-level key/value statement that
    starts at lines[start] (multi-line arrays and strings included)."""
    for end in range(start + 1, len(lines) + 1):
        try:
            tomllib.loads(''.join(lines[start:end]))
            return end
        except tomllib.TOMLDecodeError:
            continue
    raise HostprepError('cannot find where the statement on line %d ends' % (start + 1))


def top_level_layout(text: str) -> tuple[tuple[int, int] | None, int]:
    """(line span of the top-level imports statement or None, the line index
    where a new imports statement goes: after ``version`` when that is a
    top-level statement, else after the last top-level statement, else at the
    start)."""
    require_toml()
    lines = text.splitlines(keepends=True)
    i = 0
    insert_at = 0
    after_version = None
    while i < len(lines):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith('#'):
            i += 1
            continue
        if stripped.startswith('['):
            break
        end = _statement_end(lines, i)
        if _IMPORTS_RE.match(lines[i]):
            return (i, end), end
        if re.match(r'''^\s*(version|"version"|'version')\s*=''', lines[i]):
            after_version = end
        insert_at = end
        i = end
    return None, after_version if after_version is not None else insert_at


def toml_value(value: t.Any) -> str:
    """A TOML literal for a scalar or a list of scalars (JSON string escapes
    are TOML basic-string escapes)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return '[%s]' % ', '.join(toml_value(item) for item in value)
    raise HostprepError('cannot write %r (%s) into the drop-in; give scalar values' % (value, type(value).__name__))


def toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def set_imports(text: str, imports: list[str], path: str) -> str:
    """text with its top-level imports set to the list; every other line
    stays byte for byte. The result is parsed again and must hold the same
    data apart from imports."""
    before = parse_toml(text, path)
    lines = text.splitlines(keepends=True)
    span, insert_at = top_level_layout(text)
    statement = 'imports = %s' % toml_value(imports)
    if span is not None:
        start, end = span
        last = lines[end - 1]
        ending = last[len(last.rstrip('\r\n')):] or ''
        indent = lines[start][:len(lines[start]) - len(lines[start].lstrip())]
        new_lines = lines[:start] + [indent + statement + (ending or '\n')] + lines[end:]
    else:
        newline = '\r\n' if lines and lines[0].endswith('\r\n') else '\n'
        if insert_at > 0 and not lines[insert_at - 1].endswith(('\n', '\r')):
            lines[insert_at - 1] += newline
        new_lines = lines[:insert_at] + [statement + newline] + lines[insert_at:]
    result = ''.join(new_lines)
    after = parse_toml(result, path)
    expected = dict(before)
    expected['imports'] = list(imports)
    if after != expected:
        raise HostprepError('editing imports in %s would change other settings; nothing was changed, please report '
                            'this with the file' % path, path=path)
    return result


def imports_cover(imports: list[str], drop_in: str, config_dir: str) -> bool:
    """Whether an imports entry (relative to the main file's directory,
    glob patterns allowed, as containerd reads them) names the drop-in."""
    target = os.path.normpath(drop_in)
    for entry in imports:
        if not isinstance(entry, str):
            continue
        pattern = os.path.normpath(entry if os.path.isabs(entry) else os.path.join(config_dir, entry))
        if pattern == target or (glob.has_magic(pattern) and fnmatch.fnmatchcase(target, pattern)):
            return True
    return False


def render_drop_in(version: int, plugin: str, section: dict[str, t.Any], config: str) -> str:
    lines = ['# Managed by hostprep.container_host.containerd_snapshotter; imported by %s.' % config,
             '# containerd replaces the whole plugin section below with this one.',
             'version = %d' % version, '', '[plugins.%s]' % toml_key(plugin)]
    for key in sorted(section):
        lines.append('  %s = %s' % (toml_key(key), toml_value(section[key])))
    return '\n'.join(lines) + '\n'


# ---- reading and writing the three files ----------------------------------------

def read_config(path: str, option: str) -> str | None:
    """The text of one of the files the module edits, None when it does not
    exist; a directory, a link, a device or a file that is not UTF-8 is
    refused with the option's name."""
    if not os.path.lexists(path):
        return None
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise HostprepError('%s %s is a symbolic link (to %s); give the file it points to, nothing was changed'
                            % (option, path, os.readlink(path)), path=path)
    if not stat.S_ISREG(st.st_mode):
        raise HostprepError('%s %s is not a regular file; give the path of the file, nothing was changed'
                            % (option, path), path=path)
    try:
        return read_text(path)
    except UnicodeDecodeError as exc:
        raise HostprepError('%s %s is not UTF-8 text (%s); fix the file, nothing was changed' % (option, path, exc),
                            path=path) from exc


class UndoableWrites:
    """The module's writes, each one undone (byte for byte, mode and owner
    kept) when a later one fails, so a failure leaves the three files as
    they were: a drop-in without its imports entry, or a daemon.json naming a
    snapshotter containerd does not configure, never stays behind."""

    def __init__(self, module: t.Any, changes: Changes) -> None:
        self.module = module
        self.changes = changes
        self.done: list[tuple[str, bytes | None, list[str]]] = []

    def write(self, path: str, content: str) -> None:
        old = read_bytes(path)
        created = missing_directories(os.path.dirname(os.path.abspath(path)))
        try:
            atomic_write(self.module, path, content, mode=0o644)
        except OSError as exc:  # atomic_write names the file whatever atomic_move raised
            for made in reversed(created):
                try:
                    os.rmdir(made)
                except OSError:
                    break
            raise self.undo('writing %s failed: %s' % (path, exc.strerror or exc)) from exc
        self.done.append((path, old, created))
        self.changes.made('%s %s' % ('wrote' if old is not None else 'created', path))

    def write_daemon_json(self, path: str, real: str, content: str) -> None:
        """daemon.json through _daemon_json.write_config (through a link, to the file it names, keeping the
        link); when that fails, it has undone its own part and the files written before are put back."""
        old = read_bytes(real)
        made, undone = len(self.changes.done), len(self.changes.undone)
        try:
            _daemon_json.write_config(self.module, path, real, content, False, self.changes)
        except HostprepError as exc:
            # write_config undid its own part (new directories); the file itself must be as it was
            own_part_restored = (read_bytes(real) == old
                                 and len(self.changes.done) - made == len(self.changes.undone) - undone)
            error = self.undo('writing %s failed: %s' % (path, _daemon_json.failure_reason(exc.__cause__ or exc)))
            if self.changes.done:
                self.changes.fully_restored = own_part_restored and len(self.changes.undone) == len(self.changes.done)
            raise error from exc

    def undo(self, why: str) -> HostprepError:
        """Put back every file written so far, newest first; the error to
        raise, saying what was put back and what could not be."""
        failed = []
        while self.done:
            path, old, created = self.done.pop()
            try:
                if old is None:
                    os.unlink(path)
                    for made in reversed(created):
                        os.rmdir(made)
                else:
                    put_back(self.module, path, old)
            except OSError as exc:
                failed.append('%s (%s)' % (path, exc.strerror or exc))
                continue
            self.changes.restored('%s %s' % ('removed' if old is None else 'put back', path),
                                  complete=not self.done and not failed)
        if failed:
            return HostprepError('%s; could not put back %s: restore them by hand' % (why, ', '.join(failed)))
        if self.changes.done:
            return HostprepError('%s; the files written before it were put back byte for byte' % why)
        return HostprepError('%s; nothing was changed' % why)


# ---- what the engine can do ----------------------------------------------------

def support(version: _engine.Version) -> tuple[bool, str | None]:
    """Whether an engine of this version has the containerd image store, and
    why not."""
    if version >= MIN_ENGINE:
        return True, None
    return False, ('Engine %s has no containerd image store (it came with Engine 24 as an option and is the default '
                   'for fresh installs from Engine 29), so containerd snapshotters are not used for images there. '
                   'On this engine use the devicemapper graph driver on an LVM thin pool instead (backend '
                   'devicemapper_direct: hostprep.container_host.lvm_thinpool, then storage-driver devicemapper with '
                   'storage-opts dm.thinpooldev=/dev/mapper/VG-POOL through hostprep.container_host.'
                   'docker_daemon_config), or the btrfs graph driver (hostprep.container_host.btrfs_data_root); '
                   'nothing was changed' % _engine.version_string(version))


def wanted_section(snapshotter: str, params: dict[str, t.Any], current: dict[str, t.Any]) -> dict[str, t.Any]:
    """The drop-in's plugin section: keys the host already has for this
    plugin, with the module's options on top."""
    section = dict(current)
    if snapshotter == 'devmapper':
        section['pool_name'] = params['pool_name']
        section['base_image_size'] = params['base_image_size']
    if params.get('root_path'):
        section['root_path'] = params['root_path']
    return section


def check_params(snapshotter: str, params: dict[str, t.Any]) -> None:
    if snapshotter == 'devmapper':
        pool = params.get('pool_name') or ''
        if not _POOL_NAME.match(pool):
            raise HostprepError('pool_name %r is not a device-mapper name (the name under /dev/mapper, for example '
                                'docker-thinpool); nothing was changed' % pool)
        size = params.get('base_image_size') or ''
        if not _HUMAN_SIZE.match(size):
            raise HostprepError('base_image_size %r is not a size containerd reads (examples: 10GB, 8192MB); '
                                'nothing was changed' % size)
    if params.get('root_path') and not os.path.isabs(params['root_path']):
        raise HostprepError('root_path %s must be an absolute path; nothing was changed' % params['root_path'])


def _other_imported_sections(imports: list[str], config_dir: str, drop_in: str, plugin: str) -> list[str]:
    """Other imported files that also configure the plugin (containerd lets
    the last one win)."""
    found = []
    for entry in imports:
        if not isinstance(entry, str):
            continue
        pattern = entry if os.path.isabs(entry) else os.path.join(config_dir, entry)
        for path in sorted(glob.glob(pattern)):
            if os.path.normpath(path) == os.path.normpath(drop_in):
                continue
            try:
                data = tomllib.loads(read_text(path) or '')
            except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError):
                continue
            if plugin in (data.get('plugins') or {}):
                found.append(path)
    return found


# ---- the module's work --------------------------------------------------------

def engine_version(module: t.Any, params: dict[str, t.Any]) -> _engine.Version:
    """From ``dockerd --version``; from the API at docker_host when no dockerd
    binary is found (an engine installed elsewhere)."""
    facts = _engine.engine_facts(module, params.get('dockerd_path'))
    if facts is not None:
        return facts.version
    answer = _engine_use.ping_engine(params['docker_host'])
    if answer and answer.get('version'):
        return _engine.parse_dockerd_version('version %s' % answer['version'])
    raise HostprepError('no Docker engine found: no dockerd binary on PATH and none answers on %s; install the engine '
                        'first or set dockerd_path' % params['docker_host'])


def configure(module: t.Any) -> dict[str, t.Any]:
    """containerd_snapshotter's run: the engine must have the containerd image store; then plan the main file's
    imports, the drop-in and daemon.json, check the storage, and write what changes behind one check-mode gate."""
    params = module.params
    require_toml()
    snapshotter = params['snapshotter']
    version = engine_version(module, params)
    supported, reason = support(version)
    if not supported:
        raise HostprepError(reason, supported=False, reason=reason, snapshotter=snapshotter,
                            engine={'version': _engine.version_string(version)})
    check_params(snapshotter, params)
    main = plan_main(params['containerd_config'], os.path.abspath(params['drop_in']), PLUGINS[snapshotter])
    drop = plan_drop_in(params, main)
    storage = (check_storage(module, snapshotter, drop['section'], drop['root_path']) if params['check_storage']
               else {'checked': False})
    daemon = plan_daemon_json(params['daemon_config'], snapshotter)
    if not module.check_mode:
        write_planned(module, params, main, drop, daemon)
    for warning in main['warnings'] + daemon['warnings']:
        module.warn(warning)
    containerd_changed = main['changed'] or drop['changed']
    return {
        'changed': containerd_changed or daemon['changed'],
        'supported': True,
        'snapshotter': snapshotter,
        'engine': {'version': _engine.version_string(version)},
        'containerd_config_changed': containerd_changed,
        'daemon_config_changed': daemon['changed'],
        'restart_required': containerd_changed or daemon['changed'],
        'drop_in': drop['path'],
        'imports': main['new_imports'],
        'settings': drop['section'],
        'root_path': drop['root_path'],
        'storage': storage,
        'diff': differences(main, drop, daemon),
    }


def plan_main(config_path: str, drop_in: str, plugin: str) -> dict[str, t.Any]:
    """containerd's main file: its data, version, the imports list with the drop-in, the new text (only the
    imports statement changes), and warnings about other places that configure the snapshotter."""
    text = read_config(config_path, 'containerd_config')
    data = parse_toml(text, config_path) if text is not None else {}
    cversion = config_version(data) if text is not None else 2
    if cversion < 2:
        raise HostprepError('%s is a containerd configuration of version 1, which has no plugin URIs for the drop-in; '
                            'migrate it to version 2 (containerd config default shows the layout, containerd 2 '
                            'has "containerd config migrate"); nothing was changed' % config_path)
    imports = data.get('imports', [])
    if not isinstance(imports, list):
        raise HostprepError('imports in %s is not a list of files; fix it, nothing was changed' % config_path)
    config_dir = os.path.dirname(os.path.abspath(config_path))
    covered = imports_cover(imports, drop_in, config_dir)
    new_imports = imports if covered else imports + [drop_in]
    if text is None:
        new_text = 'version = 2\nimports = %s\n' % toml_value(new_imports)
    else:
        new_text = text if covered else set_imports(text, new_imports, config_path)
    section = ((data.get('plugins') or {}).get(plugin) or {})
    warnings = []
    if section:
        warnings.append('%s has its own [plugins."%s"] section; the drop-in %s replaces it (its other keys were '
                        'carried over)' % (config_path, plugin, drop_in))
    for other in _other_imported_sections(imports, config_dir, drop_in, plugin):
        warnings.append('%s also configures %s and may override the drop-in %s; remove that section there'
                        % (other, plugin, drop_in))
    return {'path': config_path, 'text': text, 'data': data, 'version': cversion, 'imports': imports,
            'new_imports': new_imports, 'new_text': new_text, 'changed': new_text != text, 'plugin': plugin,
            'section': section, 'warnings': warnings}


def plan_drop_in(params: dict[str, t.Any], main: dict[str, t.Any]) -> dict[str, t.Any]:
    """The drop-in's data as it is and as wanted (keys the host had for the snapshotter carried over), and the
    snapshotter's root."""
    path = os.path.abspath(params['drop_in'])
    plugin = main['plugin']
    text = read_config(path, 'drop_in')
    current = parse_toml(text, path) if text is not None else {}
    current_section = dict(main['section'])
    current_section.update((current.get('plugins') or {}).get(plugin) or {})
    section = wanted_section(params['snapshotter'], params, current_section)
    wanted = {'version': main['version'], 'plugins': {plugin: section}}
    root = main['data'].get('root') if isinstance(main['data'].get('root'), str) else _engine.CONTAINERD_ROOT
    return {'path': path, 'text': text, 'current': current, 'wanted': wanted, 'section': section,
            'changed': current != wanted, 'root_path': section.get('root_path') or os.path.join(root, plugin)}


def plan_daemon_json(daemon_path: str, snapshotter: str) -> dict[str, t.Any]:
    """daemon.json, read as docker_daemon_config does (through a symbolic link, keeping it), with storage-driver
    and the containerd image store merged in; a flag of dockerd that sets them too is refused."""
    real, text = _daemon_json.read_config(daemon_path, 'daemon_config')
    before, warnings = _daemon_config.parse_config(text, daemon_path)
    before = before or {}
    after = _daemon_config.merge(before, {'storage-driver': snapshotter, 'features': {'containerd-snapshotter': True}})
    changed = text is None or not _daemon_config.same(before, after)
    if changed:
        conflicts = _daemon_config.find_conflicts(after, read_flags(_daemon_config.DEFAULT_FLAGS_SOURCES))
        if conflicts:
            raise HostprepError(_daemon_config.conflict_message(daemon_path, conflicts),
                                conflicts=[use.as_dict() for use in conflicts])
    return {'path': daemon_path, 'real': real, 'text': text, 'before': before, 'after': after, 'changed': changed,
            'warnings': warnings}


def write_planned(module: t.Any, params: dict[str, t.Any], main: dict[str, t.Any], drop: dict[str, t.Any],
                  daemon: dict[str, t.Any]) -> None:
    """The drop-in, then the main file's imports, then daemon.json; a failed write puts back the ones before."""
    writes = UndoableWrites(module, changes_of(module))
    if drop['changed']:
        writes.write(drop['path'], render_drop_in(main['version'], main['plugin'], drop['section'],
                                                  params['containerd_config']))
    if main['changed']:
        writes.write(main['path'], main['new_text'])
    if daemon['changed']:
        writes.write_daemon_json(daemon['path'], daemon['real'], _daemon_config.render(daemon['after']))


def differences(main: dict[str, t.Any], drop: dict[str, t.Any], daemon: dict[str, t.Any]) -> t.Any:
    diff = Differences()
    diff.add('containerd imports', main['imports'] if main['text'] is not None else None, main['new_imports'])
    diff.add('drop-in %s' % drop['path'], drop['current'] if drop['text'] is not None else None, drop['wanted'])
    diff.add('daemon.json', daemon['before'] if daemon['text'] is not None else None, daemon['after'])
    return diff.diff()


def check_storage(module: t.Any, snapshotter: str, section: dict[str, t.Any], root_path: str) -> dict[str, t.Any]:
    """The thin pool exists, or the btrfs root is on btrfs."""
    if snapshotter == 'devmapper':
        device = '/dev/mapper/%s' % section['pool_name']
        if not _engine.is_block_device(device):
            raise HostprepError('thin pool %s does not exist (%s is not a block device); create it first, for example '
                                'with hostprep.container_host.lvm_thinpool, and give its name under /dev/mapper as '
                                'pool_name; nothing was changed' % (section['pool_name'], device),
                                pool_device=device)
        return {'pool_device': device}
    mount = _engine.mount_facts(module, root_path)
    if mount.get('fstype') != 'btrfs':
        raise HostprepError('the btrfs snapshotter root %s is on %s (%s mounted at %s), not on btrfs; mount a btrfs '
                            'filesystem there first (hostprep.container_host.btrfs_data_root) or give a root_path on '
                            'btrfs; nothing was changed'
                            % (root_path, mount.get('fstype'), mount.get('source'), mount.get('target')),
                            mount=mount)
    return {'mount': mount}
