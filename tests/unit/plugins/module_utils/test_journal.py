# SPDX-License-Identifier: GPL-3.0-or-later
"""The undo plan of a recorded storage change (pure), and the record's files on a temp directory."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _journal
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError

ROOT = '/var/lib/docker'


def record(mounts=(), aside=None, files=()):
    return {'data_root': ROOT, 'roots': [ROOT, '/mnt/docker-btrfs'], 'mounts': list(mounts),
            'moved_aside': aside, 'files': list(files)}


def entry(path, sha, existed=True):
    return {'path': path, 'real_path': path, 'sha256': sha, 'existed': existed}


@pytest.mark.parametrize('case, rec, now, digests, entries, aside_exists, expect', [
    ('nothing happened', record(files=[entry('/etc/docker/daemon.json', 'a')]), [], {'/etc/docker/daemon.json': 'a'},
     ['image'], False, {'unmount': [], 'move_back': [], 'files': [], 'mount': [], 'manual': []}),
    ('btrfs bound over the data root',
     record(aside='/var/lib/docker.hostprep-overlay2-1', files=[entry('/etc/fstab', 'f')]),
     [{'target': ROOT, 'source': '/dev/vdb[/]'}, {'target': '/mnt/docker-btrfs', 'source': '/dev/vdb'},
      {'target': ROOT + '/containers/x/mounts/shm', 'source': 'shm'}],
     {'/etc/fstab': 'g'}, None, True,
     {'unmount': [ROOT + '/containers/x/mounts/shm', '/mnt/docker-btrfs', ROOT],
      'move_back': [['/var/lib/docker.hostprep-overlay2-1', ROOT]],
      'files': [entry('/etc/fstab', 'f')], 'mount': [], 'manual': []}),
    ('thin LV unmounted by a failed option change',
     record(mounts=[{'target': ROOT, 'source': '/dev/mapper/docker-dockerdata'}]), [], {}, [], False,
     {'unmount': [], 'move_back': [], 'files': [], 'mount': [ROOT], 'manual': []}),
    ('move noted, never made', record(aside='/var/lib/docker.old'), [], {}, ['image', 'overlay2'], False,
     {'unmount': [], 'move_back': [], 'files': [], 'mount': [], 'manual': []}),
    ('moved and lost', record(aside='/var/lib/docker.old'), [], {}, [], False,
     {'unmount': [], 'move_back': [], 'files': [], 'mount': [],
      'manual': ['the old data root was moved to /var/lib/docker.old, which is gone; look for it before starting the engine']}),
    ('new content in the data root', record(aside='/var/lib/docker.old'), [], {}, ['image'], True,
     {'unmount': [], 'move_back': [], 'files': [], 'mount': [],
      'manual': ['the old data root is at /var/lib/docker.old, but /var/lib/docker holds image now; move them apart by hand']}),
    ('a file that did not exist', record(files=[entry('/etc/docker/daemon.json', None, existed=False)]), [],
     {'/etc/docker/daemon.json': 'x'}, [], False,
     {'unmount': [], 'move_back': [], 'files': [entry('/etc/docker/daemon.json', None, existed=False)], 'mount': [],
      'manual': []}),
    ('a mount elsewhere is not ours', record(), [{'target': '/srv', 'source': '/dev/vdc'}], {}, [], False,
     {'unmount': [], 'move_back': [], 'files': [], 'mount': [], 'manual': []}),
])
def test_plan_restore(case, rec, now, digests, entries, aside_exists, expect):
    assert _journal.plan_restore(rec, now, digests, entries, aside_exists) == expect, case


def test_describe():
    plan = {'unmount': [ROOT], 'move_back': [['/a', ROOT]], 'files': [entry('/etc/fstab', 'f'),
                                                                      entry('/etc/x', None, existed=False)],
            'mount': ['/m'], 'manual': []}
    assert _journal.describe(plan) == ['unmounted /var/lib/docker', 'moved /a back to /var/lib/docker',
                                       'put back /etc/fstab as it was', 'removed /etc/x, which did not exist before',
                                       'mounted /m again']


class FakeModule:
    """atomic_move as AnsibleModule does it for a file in the same directory: a rename."""

    @staticmethod
    def atomic_move(src, dest, unsafe_writes=False):
        os.replace(src, dest)


def test_begin_keeps_bytes_and_refuses_a_second_change(tmp_path):
    daemon = tmp_path / 'daemon.json'
    daemon.write_bytes(b'{"log-level": "info"}\r\n')
    os.chmod(daemon, 0o600)
    missing = tmp_path / 'conf.d' / 'x.toml'
    journal = tmp_path / 'journal'
    rec = _journal.begin(str(journal), [str(daemon), str(missing), str(daemon)], ROOT, [ROOT], [], 'vfs', None, 0.0)
    assert [f['existed'] for f in rec['files']] == [True, False]
    assert rec['begun'] == '1970-01-01T00:00:00Z'
    daemon.write_text('{}')
    missing.parent.mkdir()
    missing.write_text('new')
    for item in _journal.plan_restore(rec, [], {f['real_path']: _journal.sha256_of(f['real_path']) for f in rec['files']},
                                      [], False)['files']:
        _journal.put_back(FakeModule(), item)
    assert daemon.read_bytes() == b'{"log-level": "info"}\r\n' and oct(os.stat(daemon).st_mode & 0o777) == '0o600'
    assert not missing.exists()
    with pytest.raises(HostprepError, match='an unfinished storage change'):
        _journal.begin(str(journal), [], ROOT, [ROOT], [], 'vfs', None, 0.0)
    assert _journal.finish(str(journal)) and not journal.exists()
    assert not _journal.finish(str(journal))


def test_a_foreign_file_is_never_taken_for_a_journal(tmp_path):
    (tmp_path / 'journal.json').write_text(json.dumps({'steps': []}))
    with pytest.raises(HostprepError, match='not a journal of this collection'):
        _journal.load(str(tmp_path))
    with pytest.raises(HostprepError):
        _journal.finish(str(tmp_path))
    assert (tmp_path / 'journal.json').exists()


def test_a_second_change_is_refused_while_one_is_recorded(tmp_path):
    """The module's own path: phase=begun with a record already there names the unfinished change."""
    journal = tmp_path / 'journal'
    _journal.begin(str(journal), [], ROOT, [ROOT], [], 'btrfs', None, 0.0)

    class Module(FakeModule):
        check_mode = False
        params = {'path': str(journal), 'phase': 'begun', 'data_root': ROOT, 'mount_roots': [], 'files': [],
                  'backend': 'vfs', 'archive': None, 'step': '', 'moved_aside': None, 'fstab': '/etc/fstab'}

    with pytest.raises(HostprepError, match=r'an unfinished storage change \(backend btrfs, begun 1970-01-01T00:00:00Z\)'):
        _journal.manage(Module(), None)
