# SPDX-License-Identifier: GPL-3.0-or-later
"""Install the collections of requirements.yml without Galaxy.

Galaxy is not reachable from the lab machines, but PyPI is, and PyPI's
`ansible` package carries the community collections. This takes that wheel
(one pinned version, downloaded with pip), extracts only the collections that
requirements.yml names into DEST/ansible_collections/NS/NAME, and checks each
against the version range requirements.yml asks for.

    vendor_collections.py --bundle ansible==12.2.0 --requirements requirements.yml --dest .build/link
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version


def wanted(requirements: str) -> dict[str, SpecifierSet]:
    with open(requirements, encoding='utf-8') as handle:
        data = yaml.safe_load(handle) or {}
    found = {}
    for entry in data.get('collections') or []:
        name, version = (entry, '*') if isinstance(entry, str) else (entry['name'], entry.get('version', '*'))
        found[name] = SpecifierSet('' if version == '*' else version.replace(' ', ''))
    return found


def extract(wheel: str, name: str, spec: SpecifierSet, dest: str) -> str:
    """Extract ansible_collections/NS/NAME from the wheel into dest; its version."""
    prefix = 'ansible_collections/%s/' % name.replace('.', '/')
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.startswith(prefix)]
        if not members:
            raise SystemExit('%s does not carry the collection %s' % (os.path.basename(wheel), name))
        manifest = json.loads(archive.read(prefix + 'MANIFEST.json'))
        version = manifest['collection_info']['version']
        if Version(version) not in spec:
            raise SystemExit('%s carries %s %s, but requirements.yml asks for %s: pick another bundle version'
                             % (os.path.basename(wheel), name, version, spec))
        target = os.path.join(dest, prefix)
        shutil.rmtree(target, ignore_errors=True)
        archive.extractall(dest, members)
    return version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--bundle', required=True, help='the PyPI requirement of the bundle, e.g. ansible==12.2.0')
    parser.add_argument('--requirements', required=True)
    parser.add_argument('--dest', required=True, help='the directory that holds ansible_collections/')
    args = parser.parse_args(argv)
    collections = wanted(args.requirements)
    with tempfile.TemporaryDirectory(prefix='hp-bundle-') as tmp:
        pip = [sys.executable, '-m', 'pip', 'download', '-q', '--disable-pip-version-check', '--no-deps',
               '-d', tmp, args.bundle]
        if subprocess.run(pip, check=False).returncode != 0:
            raise SystemExit('pip could not download %s from PyPI: check the PyPI mirror' % args.bundle)
        wheel = glob.glob(os.path.join(tmp, '*.whl'))[0]
        for name, spec in sorted(collections.items()):
            print('==> %s %s from %s' % (name, extract(wheel, name, spec, args.dest), os.path.basename(wheel)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
