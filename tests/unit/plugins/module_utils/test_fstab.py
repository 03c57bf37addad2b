# SPDX-License-Identifier: GPL-3.0-or-later
"""fstab entries: parse, add or replace one entry by mount point, render
with every other line byte for byte (tests/unit/fixtures/btrfs/fstab_*)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _common
from ansible_collections.hostprep.container_host.plugins.module_utils import _fstab

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'btrfs')


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding='utf-8') as handle:
        return handle.read()


BTRFS = _fstab.Entry('UUID=ae7ae609-a51b-4fd5-b429-ba6a7e12fd85', '/mnt/docker-btrfs', 'btrfs', ['noatime'])
BIND = _fstab.Entry('/mnt/docker-btrfs', '/var/lib/docker', 'none',
                    ['bind', 'x-systemd.requires-mounts-for=/mnt/docker-btrfs'])
ADDED = ('UUID=ae7ae609-a51b-4fd5-b429-ba6a7e12fd85 /mnt/docker-btrfs btrfs noatime 0 0\n'
         '/mnt/docker-btrfs /var/lib/docker none bind,x-systemd.requires-mounts-for=/mnt/docker-btrfs 0 0\n')


@pytest.mark.parametrize('name', ['fstab_debian12', 'fstab_odd_no_newline'])
def test_parse_render_round_trip(name):
    text = fixture(name)
    rendered = _fstab.Fstab(text).render()
    assert rendered.rstrip('\n') == text.rstrip('\n')
    # unchanged files come back exactly
    assert _fstab.ensure_entries(text, [])[0] == text


def test_entries_are_parsed_with_escapes():
    entries = _fstab.Fstab(fixture('fstab_odd_no_newline')).entries()
    assert [e.target for e in entries] == ['/srv/with space', '/data']
    assert entries[1].as_dict() == {'source': '/dev/vdb', 'target': '/data', 'fstype': 'xfs',
                                    'options': ['noatime'], 'dump': 0, 'passno': 2}
    debian = _fstab.Fstab(fixture('fstab_debian12'))
    assert [e.target for e in debian.entries()] == ['/', 'none', '/media/cdrom0']
    assert debian.find('/media/cdrom0/')[0].options == ['user', 'noauto']


@pytest.mark.parametrize('raw', ['/srv/a b', 'tab\there', 'back\\slash', 'plain'])
def test_escape_round_trip(raw):
    assert _fstab.unescape(_fstab.escape(raw)) == raw
    assert ' ' not in _fstab.escape(raw) and '\t' not in _fstab.escape(raw)


def test_add_keeps_every_other_line_and_is_idempotent():
    text = fixture('fstab_debian12')
    new, changed = _fstab.ensure_entries(text, [BTRFS, BIND])
    assert changed
    assert new == text + ADDED
    again, changed_again = _fstab.ensure_entries(new, [BTRFS, BIND])
    assert not changed_again and again == new


def test_missing_trailing_newline_and_missing_file():
    text = fixture('fstab_odd_no_newline')
    new, changed = _fstab.ensure_entries(text, [BTRFS, BIND])
    assert changed and new == text + '\n' + ADDED
    assert _fstab.ensure_entries(None, [BTRFS, BIND]) == (ADDED, True)
    assert _fstab.ensure_entries('', [BTRFS, BIND]) == (ADDED, True)


def test_crlf_lines_stay_byte_for_byte(tmp_path):
    """An fstab written on Windows (CRLF), read through read_text as stored: every line the module does not
    change keeps its bytes, a replaced line keeps its line break and added lines end as the file's lines do."""
    path = tmp_path / 'fstab'
    path.write_bytes(fixture('fstab_debian12').replace('\n', '\r\n').encode())
    text = _common.read_text(str(path))
    assert text.encode() == path.read_bytes()
    new, changed = _fstab.ensure_entries(text, [BTRFS, BIND])
    assert changed and new == text + ADDED.replace('\n', '\r\n')
    assert _fstab.ensure_entries(new, [BTRFS, BIND]) == (new, False)
    moved = _fstab.Entry('/dev/vdc', '/media/cdrom0', 'udf,iso9660', ['user', 'noauto'])
    replaced, changed = _fstab.ensure_entries(text, [moved])
    assert changed and replaced.count('\r\n') == text.count('\r\n') and '\n/dev/vdc /media/cdrom0 ' in replaced
    mixed = 'LABEL=a / ext4 defaults 0 1\r\n/dev/vdb /data xfs noatime 0 2\n'
    assert _fstab.ensure_entries(mixed, [BTRFS])[0] == mixed + ADDED.splitlines(True)[0]


def test_equivalent_options_are_no_change():
    text = ('UUID=ae7ae609-a51b-4fd5-b429-ba6a7e12fd85\t/mnt/docker-btrfs/  btrfs  defaults,noatime  0  0\n'
            '/mnt/docker-btrfs /var/lib/docker none x-systemd.requires-mounts-for=/mnt/docker-btrfs,bind\n')
    assert _fstab.ensure_entries(text, [BTRFS, BIND]) == (text, False)


def test_replace_in_place_and_drop_duplicates():
    text = ('# head\n'
            '/dev/sdc /mnt/docker-btrfs btrfs defaults 0 0\n'
            '/dev/vdb /data xfs noatime 0 2\n'
            '/mnt/docker-btrfs /var/lib/docker none bind 0 0\n'
            '/dev/sdd /mnt/docker-btrfs btrfs defaults 0 0\n')
    new, changed = _fstab.ensure_entries(text, [BTRFS, BIND])
    assert changed
    assert new == '# head\n' + ADDED.splitlines(True)[0] + '/dev/vdb /data xfs noatime 0 2\n' + ADDED.splitlines(True)[1]


def test_bind_entry_before_btrfs_entry_is_moved_after_it():
    text = ('/mnt/docker-btrfs /var/lib/docker none bind,x-systemd.requires-mounts-for=/mnt/docker-btrfs 0 0\n'
            '# keep me\n')
    new, changed = _fstab.ensure_entries(text, [BTRFS, BIND])
    assert changed
    assert new == '# keep me\n' + ADDED


def test_custom_comparison_keeps_the_users_spelling():
    text = 'LABEL=docker /mnt/docker-btrfs btrfs noatime 0 0\n'

    def same(existing, wanted):
        return _fstab.same_entry(_fstab.Entry(wanted.source, existing.target, existing.fstype, existing.options,
                                              existing.dump, existing.passno), wanted)
    new, changed = _fstab.ensure_entries(text, [BTRFS], same)
    assert not changed and new == text


def test_render_escapes_paths():
    entry = _fstab.Entry('/mnt/a b', '/var/lib/my docker', 'none', ['bind'])
    line = entry.render()
    assert line == '/mnt/a\\040b /var/lib/my\\040docker none bind 0 0'
    assert _fstab.parse_line(line) == entry
