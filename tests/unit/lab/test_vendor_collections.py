# SPDX-License-Identifier: GPL-3.0-or-later
"""hack/vendor_collections.py on a wheel laid out like PyPI's `ansible` package."""

import json
import zipfile

import pytest

from hack import vendor_collections


def bundle(path, versions):
    """A wheel holding ansible_collections/NS/NAME for each name: version."""
    with zipfile.ZipFile(path, 'w') as archive:
        for name, version in versions.items():
            prefix = 'ansible_collections/%s/' % name.replace('.', '/')
            archive.writestr(prefix + 'MANIFEST.json', json.dumps({'collection_info': {'version': version}}))
            archive.writestr(prefix + 'plugins/modules/mount.py', '# %s %s\n' % (name, version))
        archive.writestr('ansible-12.2.0.dist-info/METADATA', 'Name: ansible\n')
    return str(path)


def requirements(path, text):
    path.write_text(text, encoding='utf-8')
    return str(path)


def test_wanted_reads_names_and_ranges(tmp_path):
    found = vendor_collections.wanted(requirements(tmp_path / 'r.yml', (
        'collections:\n  - name: ansible.posix\n    version: ">= 1.5.0"\n  - community.general\n')))
    assert sorted(found) == ['ansible.posix', 'community.general']
    assert '2.1.0' in found['ansible.posix'] and '1.4.9' not in found['ansible.posix']
    assert '0.1' in found['community.general']


def test_extract_only_the_named_collection(tmp_path):
    wheel = bundle(tmp_path / 'ansible.whl', {'ansible.posix': '2.1.0', 'community.general': '11.0.0'})
    spec = vendor_collections.wanted(requirements(tmp_path / 'r.yml', (
        'collections:\n  - name: ansible.posix\n    version: ">=1.5.0"\n')))['ansible.posix']
    dest = tmp_path / 'link'
    stale = dest / 'ansible_collections' / 'ansible' / 'posix' / 'stale.py'
    stale.parent.mkdir(parents=True)
    stale.write_text('old\n', encoding='utf-8')
    assert vendor_collections.extract(wheel, 'ansible.posix', spec, str(dest)) == '2.1.0'
    assert (dest / 'ansible_collections' / 'ansible' / 'posix' / 'plugins' / 'modules' / 'mount.py').is_file()
    assert not stale.exists(), 'an older copy must be replaced, not merged'
    assert not (dest / 'ansible_collections' / 'community').exists()
    assert not (dest / 'ansible-12.2.0.dist-info').exists()


def test_a_version_out_of_range_is_named(tmp_path):
    wheel = bundle(tmp_path / 'ansible.whl', {'ansible.posix': '1.4.0'})
    spec = vendor_collections.wanted(requirements(tmp_path / 'r.yml', (
        'collections:\n  - name: ansible.posix\n    version: ">=1.5.0"\n')))['ansible.posix']
    with pytest.raises(SystemExit, match=r'carries ansible.posix 1.4.0, but requirements.yml asks for >=1.5.0'):
        vendor_collections.extract(wheel, 'ansible.posix', spec, str(tmp_path / 'link'))
    assert not (tmp_path / 'link').exists()


def test_a_missing_collection_is_named(tmp_path):
    wheel = bundle(tmp_path / 'ansible.whl', {'ansible.posix': '2.1.0'})
    with pytest.raises(SystemExit, match='does not carry the collection community.docker'):
        vendor_collections.extract(wheel, 'community.docker', vendor_collections.SpecifierSet(''), str(tmp_path))
