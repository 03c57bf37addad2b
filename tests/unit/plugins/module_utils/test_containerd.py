# SPDX-License-Identifier: GPL-3.0-or-later
"""containerd snapshotter configuration on real config.toml files:
``containerd config default`` of containerd 1.6.20 and Debian 12's
/etc/containerd/config.toml (both recorded on this host), and hand-edited
files that containerd 1.6.20 itself accepts (``containerd --config FILE
config dump``; tests/unit/fixtures/containerd)."""

from __future__ import annotations

import os
import tomllib

import pytest

from ansible_collections.hostprep.container_host.plugins.module_utils import _containerd
from ansible_collections.hostprep.container_host.plugins.module_utils._common import HostprepError

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'containerd')
DROP_IN = '/etc/containerd/conf.d/50-hostprep-snapshotter.toml'
CONFIGS = ['containerd_1.6.20_config_default.toml', 'debian12_containerd_config.toml', 'customised_config.toml',
           'crlf_no_imports_config.toml', 'table_only_config.toml']


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding='utf-8', newline='') as handle:
        return handle.read()


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """Lines only in before, lines only in after (as multisets in order)."""
    old = before.splitlines(keepends=True)
    new = after.splitlines(keepends=True)
    # every old line must appear in the new text in order, apart from the imports statement
    gone = []
    rest = list(new)
    for line in old:
        if line in rest:
            rest.remove(line)
        else:
            gone.append(line)
    return gone, rest


@pytest.mark.parametrize('name', CONFIGS)
def test_set_imports_keeps_everything_else(name):
    text = fixture(name)
    data = tomllib.loads(text)
    imports = list(data.get('imports', [])) + [DROP_IN]
    result = _containerd.set_imports(text, imports, name)
    parsed = tomllib.loads(result)
    assert parsed['imports'] == imports
    assert {k: v for k, v in parsed.items() if k != 'imports'} == {k: v for k, v in data.items() if k != 'imports'}
    gone, added = changed_lines(text, result)
    assert len(added) == 1 and added[0].startswith('imports = [')
    span, dummy = _containerd.top_level_layout(text)
    old_lines = text.splitlines(keepends=True)
    assert gone == (old_lines[span[0]:span[1]] if span else [])
    # setting the same list again changes nothing
    assert _containerd.set_imports(result, imports, name) == result


def test_default_config_replaces_empty_imports_in_place():
    text = fixture('containerd_1.6.20_config_default.toml')
    result = _containerd.set_imports(text, [DROP_IN], 'config.toml')
    assert result.splitlines()[1] == 'imports = ["%s"]' % DROP_IN
    assert text.replace('imports = []', 'imports = ["%s"]' % DROP_IN) == result


def test_debian_config_gets_imports_after_version():
    text = fixture('debian12_containerd_config.toml')
    result = _containerd.set_imports(text, [DROP_IN], 'config.toml')
    assert result.splitlines()[:2] == ['version = 2', 'imports = ["%s"]' % DROP_IN]
    assert result.replace('imports = ["%s"]\n' % DROP_IN, '') == text


def test_multiline_imports_with_comments_replaced():
    text = fixture('customised_config.toml')
    span, dummy = _containerd.top_level_layout(text)
    lines = text.splitlines()
    assert lines[span[0]].startswith('imports = [') and lines[span[1] - 1] == ']'
    result = _containerd.set_imports(text, ['/etc/containerd/site.toml', 'conf.d/*.toml', DROP_IN], 'c')
    assert '# site-wide settings first' not in result  # the comments inside the old list go with it
    assert '# config format of containerd 1.5 to 1.7' in result and 'oom_score = -999' in result


def test_crlf_kept():
    # stored with LF (sanity forbids CRLF in the tree); the test makes it CRLF
    text = fixture('crlf_no_imports_config.toml').replace('\n', '\r\n')
    result = _containerd.set_imports(text, [DROP_IN], 'c')
    assert 'imports = ["%s"]\r\n' % DROP_IN in result and '\n' not in result.replace('\r\n', '')


def test_table_only_config_gets_top_level_imports():
    text = fixture('table_only_config.toml')
    result = _containerd.set_imports(text, [DROP_IN], 'c')
    parsed = tomllib.loads(result)
    assert parsed['imports'] == [DROP_IN]
    assert parsed['plugins']['io.containerd.internal.v1.opt']['imports'] == ['not/top/level.toml']
    assert result.startswith('imports = ')


def test_no_trailing_newline():
    result = _containerd.set_imports('version = 2', [DROP_IN], 'c')
    assert result == 'version = 2\nimports = ["%s"]\n' % DROP_IN


def test_invalid_toml_refused():
    with pytest.raises(HostprepError, match='is not valid TOML'):
        _containerd.set_imports('version = 2\n[grpc\n', [DROP_IN], '/etc/containerd/config.toml')


@pytest.mark.parametrize('imports, covered', [
    ([], False),
    ([DROP_IN], True),
    (['conf.d/*.toml'], True),               # relative to the main file's directory
    (['/etc/containerd/conf.d/*.toml'], True),
    (['/etc/containerd/conf.d/*.conf'], False),
    (['conf.d/50-hostprep-snapshotter.toml'], True),
    (['/etc/other/*.toml'], False),
])
def test_imports_cover(imports, covered):
    assert _containerd.imports_cover(imports, DROP_IN, '/etc/containerd') is covered


def test_config_version():
    assert _containerd.config_version(tomllib.loads(fixture('containerd_1.6.20_config_default.toml'))) == 2
    assert _containerd.config_version(tomllib.loads(fixture('version1_config.toml'))) == 1


@pytest.mark.parametrize('version, supported', [
    ((20, 10, 24), False), ((23, 0, 6), False), ((24, 0, 0), True), ((26, 1, 5), True), ((29, 0, 0), True),
])
def test_support(version, supported):
    ok, reason = _containerd.support(version)
    assert ok is supported
    if not supported:
        assert 'no containerd image store' in reason and 'dm.thinpooldev' in reason


def test_drop_in_renders_and_carries_existing_keys():
    main = tomllib.loads(fixture('customised_config.toml'))
    plugin = _containerd.PLUGINS['devmapper']
    current = main['plugins'][plugin]
    section = _containerd.wanted_section('devmapper', {'pool_name': 'docker-thinpool', 'base_image_size': '10GB',
                                                       'root_path': None}, current)
    text = _containerd.render_drop_in(2, plugin, section, '/etc/containerd/config.toml')
    parsed = tomllib.loads(text)
    assert parsed == {'version': 2, 'plugins': {plugin: {'async_remove': True, 'discard_blocks': True,
                                                         'fs_type': 'xfs', 'pool_name': 'docker-thinpool',
                                                         'base_image_size': '10GB'}}}
    assert '[plugins."io.containerd.snapshotter.v1.devmapper"]' in text


@pytest.mark.parametrize('params, message', [
    ({'pool_name': 'docker/thinpool', 'base_image_size': '10GB'}, 'pool_name'),
    ({'pool_name': 'docker-thinpool', 'base_image_size': 'big'}, 'base_image_size'),
    ({'pool_name': 'docker-thinpool', 'base_image_size': '10GB', 'root_path': 'relative'}, 'absolute'),
])
def test_check_params(params, message):
    with pytest.raises(HostprepError, match=message):
        _containerd.check_params('devmapper', params)


def test_toml_value_escapes():
    assert tomllib.loads('a = %s' % _containerd.toml_value('C:\\x "q"\n'))['a'] == 'C:\\x "q"\n'
    assert _containerd.toml_value([True, 3, 'x']) == '[true, 3, "x"]'
