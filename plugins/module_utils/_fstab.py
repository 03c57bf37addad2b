# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Idempotent fstab entries, private to hostprep.container_host.

Parse an fstab file into lines, find the entry of one mount point, add it or
replace it, and render the file again. Every other line -- comments, blank
lines, other entries, even malformed ones -- stays byte for byte as it was.
All functions are pure: the caller reads and writes the file.

Field escapes follow fstab(5) and getmntent(3): a space is ``\\040``, a tab
``\\011``, a newline ``\\012`` and a backslash ``\\134``.
"""

from __future__ import annotations

import os
import re
import typing as t

_ESCAPES = {' ': '\\040', '\t': '\\011', '\n': '\\012', '\\': '\\134'}
_OCTAL = re.compile(r'\\([0-7]{3})')


def escape(field: str) -> str:
    return ''.join(_ESCAPES.get(char, char) for char in field)


def unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def normpath(path: str) -> str:
    """Mount points compared as paths: ``/var/lib/docker/`` is ``/var/lib/docker``."""
    if not path.startswith('/'):
        return path
    return os.path.normpath(path) if path != '/' else '/'


class Entry:
    """One fstab entry (the six fields, unescaped)."""

    def __init__(self, source: str, target: str, fstype: str, options: list[str] | None = None,
                 dump: int = 0, passno: int = 0) -> None:
        self.source = source
        self.target = target
        self.fstype = fstype
        self.options = list(options or [])
        self.dump = dump
        self.passno = passno

    def option_set(self) -> frozenset[str]:
        """Options as a set, without the no-op ``defaults``."""
        return frozenset(opt for opt in self.options if opt and opt != 'defaults')

    def render(self) -> str:
        return '%s %s %s %s %d %d' % (escape(self.source), escape(self.target), escape(self.fstype),
                                      escape(','.join(self.options) or 'defaults'), self.dump, self.passno)

    def as_dict(self) -> dict[str, t.Any]:
        return {'source': self.source, 'target': self.target, 'fstype': self.fstype,
                'options': list(self.options), 'dump': self.dump, 'passno': self.passno}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entry) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        return 'Entry(%r)' % self.render()


class Line:
    """One line of the file: its text without the line break, the entry it
    holds (None for comments, blank and malformed lines) and its line break
    as the file has it (``\\n``, ``\\r\\n``; a new line gets ``\\n``)."""

    def __init__(self, text: str, entry: Entry | None, end: str = '\n') -> None:
        self.text = text
        self.entry = entry
        self.end = end


def split_lines(text: str) -> list[tuple[str, str]]:
    """(text, line break) of each line; only ``\\n`` ends a line, a ``\\r``
    before it belongs to the break, and a last line without one gets ``\\n``
    (the file is written with it)."""
    lines = []
    for chunk in re.findall(r'[^\n]*\n|[^\n]+$', text):
        body = chunk[:-2] if chunk.endswith('\r\n') else chunk.rstrip('\n')
        lines.append((body, chunk[len(body):] or '\n'))
    return lines


def parse_line(text: str) -> Entry | None:
    stripped = text.strip()
    if not stripped or stripped.startswith('#'):
        return None
    fields = stripped.split()
    if len(fields) < 2:
        return None
    try:
        dump = int(fields[4]) if len(fields) > 4 else 0
        passno = int(fields[5]) if len(fields) > 5 else 0
    except ValueError:
        return None
    options = unescape(fields[3]).split(',') if len(fields) > 3 else ['defaults']
    return Entry(unescape(fields[0]), unescape(fields[1]), unescape(fields[2]) if len(fields) > 2 else 'auto',
                 options, dump, passno)


class Fstab:
    """The parsed file; ``render()`` gives back the same bytes when nothing
    was changed."""

    def __init__(self, text: str | None) -> None:
        self.existed = text is not None
        text = text or ''
        self.trailing_newline = text.endswith('\n') or not text
        self.lines = [Line(raw, parse_line(raw), end) for raw, end in split_lines(text)]
        # a line the module adds ends as the file's lines do
        self.newline = '\r\n' if self.lines and all(line.end == '\r\n' for line in self.lines) else '\n'

    def entries(self) -> list[Entry]:
        return [line.entry for line in self.lines if line.entry is not None]

    def find(self, target: str) -> list[Entry]:
        """Entries whose mount point is target, in file order."""
        want = normpath(target)
        return [entry for entry in self.entries() if normpath(entry.target) == want]

    def index_of(self, target: str) -> list[int]:
        want = normpath(target)
        return [i for i, line in enumerate(self.lines)
                if line.entry is not None and normpath(line.entry.target) == want]

    def ensure(self, wanted: Entry, same: t.Callable[[Entry, Entry], bool] | None = None,
               after: str | None = None) -> bool:
        """Make wanted the one entry for its mount point.

        An existing entry that ``same(existing, wanted)`` accepts is kept as
        written (the default compares all fields, options as a set). Otherwise
        the first entry of that mount point is replaced, later duplicates are
        dropped (mount(8) and systemd would otherwise see two), and a missing
        entry is appended -- after the entry of the mount point ``after``
        when that one comes later in the file, so ``mount -a`` keeps order.
        Returns whether the file changes."""
        same = same or same_entry
        found = self.index_of(wanted.target)
        if len(found) == 1 and same(t.cast(Entry, self.lines[found[0]].entry), wanted):
            return False
        if found:
            self.lines[found[0]] = Line(wanted.render(), wanted, self.lines[found[0]].end)
            for index in reversed(found[1:]):
                del self.lines[index]
            return True
        position = len(self.lines)
        if after is not None:
            before_me = self.index_of(after)
            if before_me:
                position = max(position, before_me[-1] + 1)
        self.lines.insert(position, Line(wanted.render(), wanted, self.newline))
        return True

    def keep_after(self, target: str, after: str) -> bool:
        """Move the entry of target right behind the entry of after when it
        comes before it (``mount -a`` mounts in file order). Returns whether
        a line moved."""
        mine = self.index_of(target)
        theirs = self.index_of(after)
        if not mine or not theirs or mine[0] > theirs[-1]:
            return False
        line = self.lines.pop(mine[0])
        self.lines.insert(self.index_of(after)[-1] + 1, line)
        return True

    def render(self) -> str:
        if not self.lines:
            return ''
        return ''.join(line.text + line.end for line in self.lines)


def same_entry(existing: Entry, wanted: Entry) -> bool:
    return (existing.source == wanted.source
            and normpath(existing.target) == normpath(wanted.target)
            and existing.fstype == wanted.fstype
            and existing.option_set() == wanted.option_set()
            and existing.dump == wanted.dump
            and existing.passno == wanted.passno)


def ensure_entries(text: str | None, wanted: list[Entry],
                   same: t.Callable[[Entry, Entry], bool] | None = None) -> tuple[str, bool]:
    """The file's new text with each wanted entry in place, in the given
    order (each one after the one before it), and whether it changed."""
    fstab = Fstab(text)
    changed = False
    previous: str | None = None
    for entry in wanted:
        changed = fstab.ensure(entry, same, after=previous) or changed
        if previous is not None:
            changed = fstab.keep_after(entry.target, previous) or changed
        previous = entry.target
    if not changed:
        return text or '', False
    return fstab.render(), True
