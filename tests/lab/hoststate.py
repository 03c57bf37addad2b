# SPDX-License-Identifier: GPL-3.0-or-later
"""The state of a host as a comparable fingerprint, for "nothing changed" checks.

Bad-input and fault tests take a fingerprint before the module runs and
another after it, and compare them: files byte for byte (a SHA-256 of each
regular file, its mode, owner and link target), the mounts under given
roots (what findmnt -J reports), links (ip -j) and anything else a test adds.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import typing as t


def _file_entry(path: str, with_mtime: bool) -> tuple:
    st = os.lstat(path)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        entry: tuple = ('link', mode, os.readlink(path))
    elif stat.S_ISDIR(st.st_mode):
        entry = ('dir', mode, st.st_uid, st.st_gid)
    elif stat.S_ISREG(st.st_mode):
        digest = hashlib.sha256()
        with open(path, 'rb') as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b''):
                digest.update(chunk)
        entry = ('file', mode, st.st_uid, st.st_gid, st.st_size, digest.hexdigest())
    else:
        entry = ('other', stat.S_IFMT(st.st_mode), mode, st.st_rdev)
    if with_mtime:
        entry += (st.st_mtime_ns,)
    return entry


def files(*paths: str, with_mtime: bool = False) -> dict[str, t.Any]:
    """Every file, directory and link at and under each path (not following
    links); a missing path is recorded as missing."""
    state: dict[str, t.Any] = {}
    for top in paths:
        if not os.path.lexists(top):
            state[top] = 'missing'
            continue
        state[top] = _file_entry(top, with_mtime)
        if os.path.isdir(top) and not os.path.islink(top):
            for root, dirs, names in os.walk(top):
                for name in sorted(dirs + names):
                    path = os.path.join(root, name)
                    state[path] = _file_entry(path, with_mtime)
    return state


def mounts(*roots: str) -> list[tuple]:
    """The mounts at and under each root: (target, source, fstype, options)."""
    out = subprocess.run(['findmnt', '-J', '-l', '-o', 'TARGET,SOURCE,FSTYPE,OPTIONS'],
                         capture_output=True, text=True, check=True).stdout
    found = []
    for entry in json.loads(out)['filesystems']:
        target = entry['target']
        if not roots or any(target == r or target.startswith(r.rstrip('/') + '/') for r in roots):
            found.append((target, entry['source'], entry['fstype'], entry['options']))
    return sorted(found)


def links(netns: str | None = None) -> list[tuple]:
    """Every link of a namespace: (name, mtu, state, master)."""
    cmd = ['ip', '-j', 'link', 'show']
    if netns:
        cmd = ['ip', '-n', netns, '-j', 'link', 'show']
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return sorted((l['ifname'], l.get('mtu'), l.get('operstate'), l.get('master')) for l in json.loads(out))


def sysctls(keys: t.Iterable[str], netns: str | None = None) -> dict[str, str]:
    """The values of sysctl keys (from /proc/sys) in a namespace."""
    values = {}
    for key in keys:
        cmd = ['cat', '/proc/sys/' + key.replace('.', '/')]
        if netns:
            cmd = ['ip', 'netns', 'exec', netns] + cmd
        values[key] = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    return values


def differences(before: dict | list, after: dict | list) -> list[str]:
    """Readable differences of two fingerprints (empty when equal)."""
    if isinstance(before, dict) and isinstance(after, dict):
        diffs = []
        for key in sorted(set(before) | set(after), key=str):
            if before.get(key) != after.get(key):
                diffs.append('%s: %r -> %r' % (key, before.get(key, 'absent'), after.get(key, 'absent')))
        return diffs
    if before != after:
        return ['%r -> %r' % (before, after)]
    return []


def assert_unchanged(before: t.Any, after: t.Any, what: str = 'host state') -> None:
    diffs = differences(before, after)
    assert not diffs, '%s changed:\n%s' % (what, '\n'.join(diffs[:40]))
