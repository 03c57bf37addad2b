# SPDX-License-Identifier: GPL-3.0-or-later
"""daemon.json as a file: what a module that writes it refuses and what a module that only reads it accepts
(_daemon_json.read_config, config_text), on real files in tmp_path."""

from __future__ import annotations

import os

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _daemon_json
from ansible_collections.hostprep.container_host.plugins.module_utils._daemon_json import ConfigProblem


def test_a_link_is_followed_for_reading_and_writing(tmp_path):
    real = tmp_path / 'srv' / 'daemon.json'
    real.parent.mkdir()
    real.write_bytes(b'{"debug": true}\r\n')
    link = tmp_path / 'daemon.json'
    link.symlink_to(real)
    assert _daemon_json.read_config(str(link)) == (str(real), '{"debug": true}\r\n')
    assert _daemon_json.config_text(str(link)) == '{"debug": true}\r\n'


def test_a_hard_link_is_refused_for_writing_only(tmp_path):
    path = tmp_path / 'daemon.json'
    path.write_text('{}\n')
    os.link(path, tmp_path / 'other')
    with pytest.raises(ConfigProblem, match='has 2 hard links'):
        _daemon_json.read_config(str(path))
    assert _daemon_json.config_text(str(path)) == '{}\n'


def test_a_dangling_link_is_no_file_for_reading_only(tmp_path):
    link = tmp_path / 'daemon.json'
    link.symlink_to(tmp_path / 'none.json')
    with pytest.raises(ConfigProblem, match=r'^daemon_config .* is a symbolic link to .*none.json, which does not '):
        _daemon_json.read_config(str(link), 'daemon_config')
    assert _daemon_json.config_text(str(link)) is None
    assert _daemon_json.config_text(str(tmp_path / 'missing.json')) is None


@pytest.mark.parametrize('make, message', [
    (lambda p: p.mkdir(), 'daemon_config {path} is a directory'),
    (os.mkfifo, 'daemon_config {path} is not a regular file (it is a FIFO)'),
    (lambda p: p.write_bytes('{"a": "caf\xe9"}'.encode('latin-1')), '{path} is not UTF-8 text (byte 0xe9'),
    (lambda p: p.write_bytes(b' ' * (_daemon_json.MAX_CONFIG_BYTES + 1)), 'daemon.json files are a few KiB'),
])
def test_both_refuse_what_is_no_daemon_configuration(tmp_path, make, message):
    path = tmp_path / 'daemon.json'
    make(path)
    for read in (lambda: _daemon_json.read_config(str(path), 'daemon_config'), lambda: _daemon_json.config_text(str(path))):
        with pytest.raises(ConfigProblem) as info:
            read()
        assert message.format(path=path) in info.value.msg


def test_the_option_is_named(tmp_path):
    with pytest.raises(ConfigProblem, match="^path 'daemon.json' is not an absolute path"):
        _daemon_json.read_config('daemon.json')
    with pytest.raises(ConfigProblem, match="^daemon_config 'daemon.json' is not an absolute path"):
        _daemon_json.config_text('daemon.json')
