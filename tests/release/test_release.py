# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure parts of release.py: what belongs in the tarball, which changelog entries are internal, the install block."""

import pytest

from tests.release import release


def test_development_tooling_stays_out_and_the_collection_goes_in():
    files = ['Makefile', 'mk/vm.mk', 'molecule/btrfs/molecule.yml', '.ci/run', 'hack/demo.py', 'bench/run_all.py',
             'requirements-test.txt', 'galaxy.yml', '.gitignore', 'README.md', 'LICENSE', 'bindep.txt', 'requirements.txt',
             'meta/runtime.yml', 'plugins/modules/link_mtu.py', 'roles/validate/tasks/main.yml', 'tests/unit/test_x.py',
             'docs/install.md', 'changelogs/fragments/x.yml', 'Makefile.d/x', 'hacking.md']
    assert release.belongs(files) == {'README.md', 'LICENSE', 'bindep.txt', 'requirements.txt', 'meta/runtime.yml',
                                      'plugins/modules/link_mtu.py', 'roles/validate/tasks/main.yml', 'tests/unit/test_x.py',
                                      'docs/install.md', 'changelogs/fragments/x.yml', 'Makefile.d/x', 'hacking.md'}


@pytest.mark.parametrize('subject, internal', [
    ('VM lab', True), ('molecule', True), ('make demo', True), ('make deps', True), ('tests', True), ('bench', True),
    ('CI', True), ('changelogs', True),
    ('docker_storage role', False), ('lvm_thinpool', False), ('collection', False), ('docs', False),
    ('btrfs_data_root, lvm_thinpool', False), ('validate role and validate.yml playbook', False),
])
def test_internal_subjects(subject, internal):
    assert bool(release.INTERNAL.fullmatch(subject)) is internal


def test_the_readme_shows_the_install_block_that_ci_runs():
    block = release.install_block()
    assert 'ansible-galaxy collection install --offline' in block
    assert 'ansible_collections/ansible/posix' in block
