# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared helpers of hostprep.container_host.

This module is private to the collection: its interface may change
without notice. Users depend on the modules and roles, not on it.
"""

from __future__ import annotations

import os
import tempfile
import typing as t


class HostprepError(Exception):
    """An error a module reports with fail_json; carries extra result keys."""

    def __init__(self, msg: str, **details: t.Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


class Differences:
    """Track before/after values of named items and render an Ansible diff.

    One tracker serves MTUs, sysctls and daemon.json keys alike: record each
    item's current and wanted value, then ask whether anything differs.
    """

    def __init__(self) -> None:
        self._before: dict[str, t.Any] = {}
        self._after: dict[str, t.Any] = {}

    def add(self, name: str, before: t.Any, after: t.Any) -> bool:
        """Record one item; return True when it changes."""
        self._before[name] = before
        self._after[name] = after
        return before != after

    @property
    def changed(self) -> bool:
        return any(self._before[k] != self._after[k] for k in self._before)

    def changed_items(self) -> list[str]:
        return [k for k in self._before if self._before[k] != self._after[k]]

    def before(self) -> dict[str, t.Any]:
        return dict(self._before)

    def after(self) -> dict[str, t.Any]:
        return dict(self._after)

    def diff(self, header: str | None = None) -> dict[str, t.Any]:
        result: dict[str, t.Any] = {'before': self.before(), 'after': self.after()}
        if header:
            result['before_header'] = header
            result['after_header'] = header
        return result


C_LOCALE = {'LANG': 'C', 'LC_ALL': 'C', 'LC_MESSAGES': 'C'}


def run(module: t.Any, args: list[str], check_rc: bool = True,
        data: str | None = None) -> tuple[int, str, str]:
    """Run one command as an argument list in the C locale.

    A non-zero exit status raises HostprepError carrying cmd, rc, stdout and
    stderr, unless check_rc is False.
    """
    if not isinstance(args, list):
        raise TypeError('commands are argument lists, never strings')
    rc, out, err = module.run_command(args, check_rc=False, environ_update=C_LOCALE, data=data)
    if check_rc and rc != 0:
        raise HostprepError(
            '%s failed with exit status %d: %s' % (args[0], rc, (err or out).strip()),
            cmd=args, rc=rc, stdout=out, stderr=err)
    return rc, out, err


def read_text(path: str) -> str | None:
    """A file's UTF-8 text exactly as stored, or None when it does not exist.

    Line breaks are not translated (``\\r\\n`` stays): a file rewritten from this text (fstab, containerd's
    config.toml, a sysctl.d file) keeps the bytes of every line the module does not change."""
    try:
        with open(path, 'r', encoding='utf-8', newline='') as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def read_bytes(path: str) -> bytes | None:
    """A file's bytes, exactly as stored, or None when it does not exist."""
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def missing_directories(path: str) -> list[str]:
    """The directories of path (itself included) that do not exist yet, outermost first."""
    missing: list[str] = []
    current = os.path.abspath(path)
    while current not in ('', '/') and not os.path.lexists(current):
        missing.insert(0, current)
        current = os.path.dirname(current)
    return missing


def make_directories(path: str, mode: int) -> list[str]:
    """os.makedirs, returning the directories it created, outermost first (for the undo)."""
    created = missing_directories(path)
    os.makedirs(path, mode=mode, exist_ok=True)
    return created


def move_into_place(module: t.Any, tmp: str, path: str) -> None:
    """module.atomic_move, failing with an OSError that names path: ansible-core raises a plain
    Exception (the OSError as its cause) when the rename fails (an immutable file, a bind mount)."""
    try:
        module.atomic_move(tmp, path, unsafe_writes=False)
    except OSError:
        raise
    except Exception as exc:  # pylint: disable=broad-except
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else None
        raise OSError(getattr(cause, 'errno', None), getattr(cause, 'strerror', None) or str(exc), path) from exc


def put_back(module: t.Any, path: str, data: bytes | None) -> None:
    """Undo a write: the old bytes back atomically (module.atomic_move keeps the mode and owner of the
    file it replaces), or the file removed when it did not exist (data None)."""
    if data is None:
        if os.path.lexists(path):
            os.unlink(path)
        return
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        move_into_place(module, tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(module: t.Any, path: str, content: str, mode: int = 0o644,
                 backup: bool = False) -> str | None:
    """Write content to path atomically: temp file in the same directory,
    fsync, rename. Returns the backup file's path when one was made."""
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755)
    backup_file = None
    if backup and os.path.exists(path):
        backup_file = module.backup_local(path)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        move_into_place(module, tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return backup_file


class Changes:
    """What one module run has changed on the host so far, and what it put back.

    Code that changes the host records each change right after it is made
    (changes.made('wrote /etc/docker/daemon.json')) and each undo right after
    it succeeds (changes.restored(...)). When the run fails, execute() reports
    changed=True whenever something was made and not every change was put
    back, with both lists, so a failure never hides a change.
    """

    def __init__(self) -> None:
        self.done: list[str] = []
        self.undone: list[str] = []
        self.fully_restored = False

    def made(self, what: str) -> None:
        self.done.append(what)

    def restored(self, what: str, complete: bool = False) -> None:
        """Record one undo; complete=True says the host is as it was before the run."""
        self.undone.append(what)
        self.fully_restored = complete

    @property
    def changed(self) -> bool:
        return bool(self.done) and not self.fully_restored

    def report(self) -> dict[str, t.Any]:
        return {'changes_made': list(self.done), 'changes_restored': list(self.undone)}


def changes_of(module: t.Any) -> Changes:
    """The Changes record of this module run (made on first use)."""
    record = getattr(module, '_hostprep_changes', None)
    if record is None:
        record = Changes()
        setattr(module, '_hostprep_changes', record)
    return record


def fail_from(module: t.Any, exc: HostprepError, **result: t.Any) -> None:
    """Report a HostprepError through fail_json with its details."""
    result.update(exc.details)
    module.fail_json(msg=exc.msg, **result)


def _failure_text(msg: str, changes: Changes) -> str:
    """The error message, followed by what the run had changed and put back."""
    msg = msg.rstrip()
    if not changes.done:
        return msg
    if not msg.endswith('.'):
        msg += '.'
    text = '%s Changed before the failure: %s.' % (msg, '; '.join(changes.done))
    if changes.undone:
        text += ' Restored: %s.' % '; '.join(changes.undone)
    if changes.fully_restored:
        text += ' The host is as it was before this run.'
    return text


def execute(module: t.Any, action: t.Callable[[t.Any], dict], **fail_result: t.Any) -> None:
    """The end of every module's main(): run action(module) and exit with its
    result, or fail with one message.

    A failure reports changed=True when the run had changed something it did
    not put back (see Changes), lists changes_made and changes_restored, and
    never ends in a traceback: an OSError (a read-only file, a full disk, an
    immutable directory) or any other exception becomes a message naming the
    file or the error.
    """
    changes = changes_of(module)
    try:
        result = action(module)
    except HostprepError as exc:
        details = dict(exc.details)
        changed = details.pop('changed', None)
        fail_result.update(details)
        fail_result['changed'] = changes.changed if changed is None else (changed or changes.changed)
        fail_result.update(changes.report())
        module.fail_json(msg=_failure_text(exc.msg, changes), **fail_result)
    except OSError as exc:
        where = ' (%s)' % exc.filename if getattr(exc, 'filename', None) else ''
        fail_result['changed'] = changes.changed
        fail_result.update(changes.report())
        module.fail_json(msg=_failure_text('%s%s: %s' % (type(exc).__name__, where, exc.strerror or exc), changes),
                         **fail_result)
    except Exception as exc:  # pylint: disable=broad-except
        import traceback  # pylint: disable=import-outside-toplevel
        fail_result['changed'] = changes.changed
        fail_result.update(changes.report())
        module.fail_json(msg=_failure_text('unexpected error: %s: %s' % (type(exc).__name__, exc), changes),
                         exception=traceback.format_exc(), **fail_result)
    module.exit_json(**result)
