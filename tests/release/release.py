# SPDX-License-Identifier: GPL-3.0-or-later
"""What a user gets from the tarball, checked the way a user gets it (make release-check).

    release.py tarball --work DIR   build from a copy made dirty on purpose; the file list must be git's
    release.py install --work DIR   run docs/install.md's install block in an empty HOME, without Galaxy,
                                    then ansible-doc every module and role and syntax-check playbooks
    release.py ee --work DIR        ansible-builder create and the build's own introspection list
                                    requirements.txt and bindep.txt (after `install`)
    release.py changelog            antsibull-changelog lint, a release summary, internal items trivial

Each check copies the checkout's tracked files (git ls-files, as they are in the work tree) into DIR
and works there: the checkout itself is never built in or written to.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
NAME = 'hostprep.container_host'
# Tracked files that are development tooling, not the collection: CI, make, demos, benchmarks, the
# molecule scenarios of the VM lab and the linters' configuration. galaxy.yml's build_ignore leaves
# them out; everything else git tracks belongs in the tarball.
DEV_ONLY = ('.ansible-lint', '.ci/', '.config/', '.gitignore', '.yamllint', 'Makefile', 'mk/', 'hack/',
            'bench/', 'molecule/', 'requirements-test.txt', 'galaxy.yml')
# What local tools leave in a checkout (pytest, pytest-ansible, ansible-test, ansible-lint, molecule,
# editors, linters, earlier builds and downloads): none of it may reach the tarball.
DIRT = (
    '.pytest_cache/v/cache/nodeids', 'tests/unit/.pytest_cache/CACHEDIR.TAG', '.ansible/collections/x.json',
    'collections/ansible_collections/hostprep/README.md', 'tests/output/junit/python3.11.xml',
    'plugins/modules/__pycache__/link_mtu.cpython-311.pyc', 'tests/unit/__pycache__/conftest.cpython-311.pyc',
    '.venv/bin/python', '.build/link/x', '.tox/py311/x', '.mypy_cache/3.11/x.json', '.ruff_cache/CACHEDIR.TAG',
    '.cache/x', 'molecule/btrfs/.cache/x', 'roles/docker_storage/tasks/.main.yml.swp', 'roles/validate/.cache/x',
    'roles/docker_storage/tasks/main.yml~', 'plugins/modules/link_mtu.py.orig', 'plugins/modules/link_mtu.py.rej',
    'README.md.bak', 'changelogs/.plugin-cache.yaml', 'hostprep-container_host-0.0.1.tar.gz',
    'dist/ansible-12.2.0-py3-none-any.whl', 'dist/ansible_collections/ansible/posix/MANIFEST.json',
    'htmlcov/index.html', '.coverage', 'bench/results/run.json', 'docs/.DS_Store', '.idea/workspace.xml',
    '.vscode/settings.json', '.env',
)


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run argv; fail with its output when it fails."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise SystemExit('%s failed (rc %d):\n%s%s' % (' '.join(argv), result.returncode, result.stdout, result.stderr))
    return result


def tracked_files() -> list[str]:
    out = run(['git', '-C', ROOT, 'ls-files', '-z']).stdout
    return sorted(p for p in out.split('\0') if p and os.path.lexists(os.path.join(ROOT, p)))


def copy_checkout(dest: str) -> list[str]:
    """Copy the tracked files (as they are in the work tree) to dest; their list."""
    shutil.rmtree(dest, ignore_errors=True)
    files = tracked_files()
    for rel in files:
        os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), os.path.join(dest, rel), follow_symlinks=False)
    return files


def belongs(files: list[str]) -> set[str]:
    return {f for f in files if not any(f.startswith(d) if d.endswith('/') else f == d for d in DEV_ONLY)}


def make_dirty(tree: str) -> None:
    for rel in DIRT:
        path = os.path.join(tree, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write('local cache\n')
    # pytest-ansible's tree links back into the checkout, .git included.
    os.symlink('../../../..', os.path.join(tree, 'collections/ansible_collections/hostprep/container_host'))
    os.symlink('..', os.path.join(tree, 'collections/.git'))


def build(tree: str, out: str) -> str:
    os.makedirs(out, exist_ok=True)
    run(['ansible-galaxy', 'collection', 'build', '--force', '--output-path', out], cwd=tree)
    (tarball,) = [os.path.join(out, f) for f in os.listdir(out) if f.endswith('.tar.gz')]
    return tarball


def tarball_files(tarball: str) -> set[str]:
    with tarfile.open(tarball) as archive:
        return {m.name for m in archive.getmembers() if not m.isdir()} - {'MANIFEST.json', 'FILES.json'}


def check_tarball(work: str) -> str:
    """Build from a dirty copy; the tarball holds exactly the tracked files that belong. Its path."""
    tree = os.path.join(work, 'dirty')
    expected = belongs(copy_checkout(tree))
    make_dirty(tree)
    tarball = build(tree, os.path.join(work, 'out'))
    got = tarball_files(tarball)
    extra, missing = sorted(got - expected), sorted(expected - got)
    if extra or missing:
        raise SystemExit('%s does not hold what belongs in it:\n  extra (add to build_ignore in galaxy.yml): %s\n'
                         '  missing (tracked, not development tooling): %s' % (tarball, extra, missing))
    with tarfile.open(tarball) as archive:
        manifest = json.load(archive.extractfile('MANIFEST.json'))['collection_info']
        license_text = archive.extractfile('LICENSE').read().decode()
    if manifest['license'] != ['GPL-3.0-or-later'] or 'GNU GENERAL PUBLIC LICENSE\n                       Version 3' \
            not in license_text:
        raise SystemExit('%s: the license (%s) and the LICENSE file (GPLv3 text) must agree' % (tarball, manifest['license']))
    print('==> %s: %d files, as git tracks them (%d caches left out)' % (os.path.basename(tarball), len(got), len(DIRT)))
    return tarball


def install_block() -> str:
    """The commands of docs/install.md between the install-check markers; README.md must show the same."""
    with open(os.path.join(ROOT, 'docs', 'install.md'), encoding='utf-8') as handle:
        found = re.search(r'<!-- install-check -->\n```sh\n(.*?)```\n', handle.read(), re.S)
    if not found:
        raise SystemExit('docs/install.md has no ```sh block after <!-- install-check -->')
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as handle:
        if found.group(1) not in handle.read():
            raise SystemExit('README.md does not show the install block of docs/install.md word for word')
    return found.group(1)


def user_env(home: str) -> dict[str, str]:
    """A user's environment: an empty HOME, no collections path given, none from the Python path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_')}
    env.update(HOME=home, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false')
    return env


def tracked_names(pattern: str) -> set[str]:
    """NAME.X for each tracked file whose path matches pattern (X is its group)."""
    return {'%s.%s' % (NAME, m.group(1)) for m in map(re.compile(pattern).fullmatch, tracked_files()) if m}


def ansible_doc(env: dict[str, str], cwd: str, kind: str, names: set[str]) -> None:
    """ansible-doc lists exactly names and documents each one, without an error."""
    listed = json.loads(run(['ansible-doc', '-t', kind, '-l', NAME, '--json'], env=env, cwd=cwd).stdout)
    if set(listed) != names:
        raise SystemExit('ansible-doc -t %s -l %s lists %s; the checkout has %s' % (kind, NAME, sorted(listed), sorted(names)))
    result = run(['ansible-doc', '-t', kind, '--json'] + sorted(names), env=env, cwd=cwd)
    docs = json.loads(result.stdout)
    undocumented = sorted(n for n in names if not (docs.get(n) or {}).get('doc' if kind == 'module' else 'entry_points'))
    if undocumented or 'ERROR' in result.stderr:
        raise SystemExit('ansible-doc -t %s: no documentation for %s\n%s' % (kind, undocumented, result.stderr))
    print('==> ansible-doc -t %s: %d documented' % (kind, len(names)))


def syntax_check(env: dict[str, str], cwd: str) -> None:
    """A user's playbook with every role, and the collection's playbooks by name."""
    shutil.copy(os.path.join(HERE, 'playbook.yml'), cwd)
    playbooks = ['playbook.yml'] + sorted(tracked_names(r'playbooks/([a-z0-9_]+)\.yml'))
    for playbook in playbooks:
        run(['ansible-playbook', '-i', 'localhost,', '--syntax-check', playbook], env=env, cwd=cwd)
    print('==> ansible-playbook --syntax-check: %s' % ', '.join(playbooks))


def check_install(work: str) -> str:
    """docs/install.md's block in a clean copy with an empty HOME; what it installs works. The collections path."""
    tree, home, play = (os.path.join(work, d) for d in ('clean', 'home', 'play'))
    for path in (home, play):
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
    copy_checkout(tree)
    env = user_env(home)
    block = install_block()
    result = subprocess.run(['bash', '-euo', 'pipefail', '-c', block], cwd=tree, env=env, capture_output=True, text=True,
                            check=False)
    print(result.stdout + result.stderr, end='')
    if result.returncode != 0:
        raise SystemExit('docs/install.md\'s install block failed (rc %d)' % result.returncode)
    collections = os.path.join(home, '.ansible', 'collections')
    installed = sorted(os.path.relpath(p, collections) for p in _collection_dirs(collections))
    if installed != ['ansible_collections/ansible/posix', 'ansible_collections/hostprep/container_host']:
        raise SystemExit('the install block installed %s, not ansible.posix and %s' % (installed, NAME))
    env['ANSIBLE_COLLECTIONS_PATH'] = collections
    ansible_doc(env, play, 'module', tracked_names(r'plugins/modules/([a-z0-9_]+)\.py'))
    ansible_doc(env, play, 'role', tracked_names(r'roles/([a-z0-9_]+)/meta/argument_specs\.yml'))
    syntax_check(env, play)
    return collections


def _collection_dirs(collections: str) -> list[str]:
    base = os.path.join(collections, 'ansible_collections')
    return [os.path.join(base, ns, name) for ns in os.listdir(base) for name in os.listdir(os.path.join(base, ns))]


def requirement_lines(path: str) -> list[str]:
    with open(path, encoding='utf-8') as handle:
        return [line.split('#')[0].strip() for line in handle if line.split('#')[0].strip()]


def check_ee(work: str) -> None:
    """ansible-builder create takes the example definition, and the build's introspection lists our files."""
    collections = os.path.join(work, 'home', '.ansible', 'collections')
    if not os.path.isdir(collections):
        raise SystemExit('run `release.py install` first: the introspection reads the installed collection')
    ee = os.path.join(work, 'ee')
    shutil.rmtree(ee, ignore_errors=True)
    shutil.copytree(os.path.join(work, 'out'), os.path.join(ee, 'dist'))
    shutil.copytree(os.path.join(work, 'clean', 'dist', 'ansible_collections'), os.path.join(ee, 'dist', 'ansible_collections'))
    shutil.copy(os.path.join(HERE, 'execution-environment.yml'), ee)
    run(['ansible-builder', 'create', '--file', 'execution-environment.yml', '--context', 'context'], cwd=ee)
    context = os.path.join(ee, 'context')
    with open(os.path.join(context, 'Containerfile' if os.path.exists(os.path.join(context, 'Containerfile'))
                           else 'Dockerfile'), encoding='utf-8') as handle:
        if 'introspect.py introspect' not in handle.read():
            raise SystemExit('the build context does not run the collections\' introspection')
    with open(os.path.join(context, '_build', 'requirements.yml'), encoding='utf-8') as handle:
        galaxy = handle.read()
    for wanted in ('hostprep-container_host-', 'ansible_collections/ansible/posix'):
        if wanted not in galaxy or not _in_context(context, wanted):
            raise SystemExit('the build context does not carry %s (requirements.yml:\n%s)' % (wanted, galaxy))
    pip, sysreq = os.path.join(ee, 'requirements.txt'), os.path.join(ee, 'bindep.txt')
    run([sys.executable, os.path.join(context, '_build', 'scripts', 'introspect.py'), 'introspect',
         '--write-pip', pip, '--write-bindep', sysreq, collections])
    for ours, theirs in (('requirements.txt', pip), ('bindep.txt', sysreq)):
        lines = requirement_lines(theirs)
        lost = [line for line in requirement_lines(os.path.join(ROOT, ours)) if not any(t.startswith(line) for t in lines)]
        if lost:
            raise SystemExit('the introspection of %s does not list %s from %s:\n%s' % (collections, lost, ours, lines))
    run(['bindep', '--file', os.path.join(ROOT, 'bindep.txt'), '--list_all', 'newline'])
    print('==> ansible-builder create: build context with the tarball and ansible.posix; introspection lists %s'
          % ', '.join(requirement_lines(pip) + requirement_lines(sysreq)))


def _in_context(context: str, wanted: str) -> bool:
    return any(wanted in os.path.join(d, f) for d, dirs, files in os.walk(context) for f in dirs + files)


# Entries about the checkout's own tooling, not what users install: they belong in `trivial`.
INTERNAL = re.compile(r'(tests?|test lab|VM lab|lab|molecule|make [a-z-]+|bench|hack|CI|changelogs)\b', re.I)


def check_changelog(work: str) -> None:
    """antsibull-changelog lint; a release_summary; internal items only under trivial."""
    del work
    run(['antsibull-changelog', 'lint'], cwd=ROOT)
    run(['antsibull-changelog', 'lint-changelog-yaml', os.path.join('changelogs', 'changelog.yaml')], cwd=ROOT)
    fragments = os.path.join(ROOT, 'changelogs', 'fragments')
    summaries, misplaced = [], []
    for name in sorted(f for f in os.listdir(fragments) if f.endswith(('.yml', '.yaml'))):
        with open(os.path.join(fragments, name), encoding='utf-8') as handle:
            sections = yaml.safe_load(handle) or {}
        summaries += [name] if 'release_summary' in sections else []
        misplaced += ['%s (%s): %s' % (name, section, entry.split(' - ')[0])
                      for section, entries in sections.items() if section not in ('trivial', 'release_summary')
                      for entry in entries if INTERNAL.fullmatch(entry.split(' - ')[0].strip())]
    if not summaries:
        raise SystemExit('changelogs/fragments: no fragment has a release_summary')
    if misplaced:
        raise SystemExit('changelog entries about the test lab, make targets or CI belong in trivial:\n  %s' % '\n  '.join(misplaced))
    print('==> antsibull-changelog lint: fragments valid, release summary in %s, internal items trivial' % ', '.join(summaries))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('check', choices=('tarball', 'install', 'ee', 'changelog'))
    parser.add_argument('--work', required=True, help='a scratch directory (removed and recreated per check)')
    args = parser.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    {'tarball': check_tarball, 'install': check_install, 'ee': check_ee, 'changelog': check_changelog}[args.check](os.path.abspath(args.work))
    return 0


if __name__ == '__main__':
    sys.exit(main())
