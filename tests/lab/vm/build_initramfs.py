# SPDX-License-Identifier: GPL-3.0-or-later
"""A small busybox initramfs for the lab images.

It loads the modules that the root disk needs (virtio_pci, virtio_blk, ext4
and what modules.dep says they depend on), mounts /dev/vda and switch_roots
into systemd. Debian's own initramfs boots about 9 s slower under TCG.

It also reads ``hostprep.ssh_key=<base64 of an OpenSSH public key line>``
from the kernel command line and writes it to /root/.ssh/authorized_keys of
the (throwaway, copy-on-write) root, so one cached image serves every lab
with its own generated key.

    python3 build_initramfs.py ROOTFS KERNEL_VERSION OUTPUT
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import shutil
import subprocess
import sys
import tempfile

# crc32c_generic: ext4 needs the crc32c hash ("softdep ext4 pre: crc32c" in
# modules.softdep, which insmod does not read) and cannot mount without it.
MODULES = ['virtio_pci', 'virtio_blk', 'virtio_net', 'crc32c_generic', 'ext4']

INIT = r'''#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /newroot
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "hostprep-initramfs: loading modules"
for m in @MODULES@; do insmod /lib/modules/$m.ko 2>/dev/null || echo "hostprep-initramfs: insmod $m failed"; done
root=/dev/vda
key=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=/dev/*) root="${arg#root=}" ;;
    hostprep.ssh_key=*) key="${arg#hostprep.ssh_key=}" ;;
  esac
done
i=0
while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if ! mount -t ext4 -o rw "$root" /newroot; then
  echo "hostprep-initramfs: cannot mount $root; powering off"
  poweroff -f
fi
if [ -n "$key" ]; then
  mkdir -p /newroot/root/.ssh
  echo "$key" | base64 -d > /newroot/root/.ssh/authorized_keys
  chmod 700 /newroot/root/.ssh
  chmod 600 /newroot/root/.ssh/authorized_keys
fi
umount /proc /sys
mount --move /dev /newroot/dev
echo "hostprep-initramfs: switching to $root"
exec switch_root /newroot /sbin/init
'''


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """modules.dep: 'kernel/x/y.ko[.xz]: dep1.ko dep2.ko' -> path -> deps."""
    deps = {}
    for line in text.splitlines():
        if ':' not in line:
            continue
        path, rest = line.split(':', 1)
        deps[path.strip()] = rest.split()
    return deps


def module_name(path: str) -> str:
    base = os.path.basename(path)
    for ext in ('.ko.xz', '.ko.zst', '.ko.gz', '.ko'):
        if base.endswith(ext):
            base = base[:-len(ext)]
            break
    return base.replace('-', '_')


def load_order(deps: dict[str, list[str]], wanted: list[str]) -> list[str]:
    """Module paths in an order insmod accepts (dependencies first)."""
    by_name = {module_name(p): p for p in deps}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in wanted:
        path = by_name.get(name.replace('-', '_'))
        if path is not None:  # not in modules.dep: built into the kernel
            visit(path)
    return order


def read_module(path: str) -> bytes:
    with open(path, 'rb') as handle:
        data = handle.read()
    if path.endswith('.xz'):
        return lzma.decompress(data)
    if path.endswith('.gz'):
        return gzip.decompress(data)
    if path.endswith('.zst'):
        return subprocess.run(['zstd', '-dc', path], check=True, capture_output=True).stdout
    return data


def find_busybox(rootfs: str) -> str:
    for candidate in ('usr/bin/busybox', 'bin/busybox'):
        path = os.path.join(rootfs, candidate)
        if os.path.isfile(path) and not os.path.islink(path):
            return path
    raise SystemExit('no busybox in %s: install busybox-static in the image' % rootfs)


def build(rootfs: str, kver: str, output: str) -> list[str]:
    moddir = os.path.join(rootfs, 'usr/lib/modules', kver)
    if not os.path.isdir(moddir):
        moddir = os.path.join(rootfs, 'lib/modules', kver)
    with open(os.path.join(moddir, 'modules.dep'), encoding='utf-8') as handle:
        deps = parse_modules_dep(handle.read())
    order = load_order(deps, MODULES)
    with tempfile.TemporaryDirectory() as tmp:
        for sub in ('bin', 'lib/modules', 'proc', 'sys', 'dev', 'newroot'):
            os.makedirs(os.path.join(tmp, sub))
        shutil.copy2(find_busybox(rootfs), os.path.join(tmp, 'bin/busybox'))
        names = []
        for path in order:
            name = module_name(path)
            names.append(name)
            with open(os.path.join(tmp, 'lib/modules', name + '.ko'), 'wb') as handle:
                handle.write(read_module(os.path.join(moddir, path)))
        with open(os.path.join(tmp, 'init'), 'w', encoding='utf-8') as handle:
            handle.write(INIT.replace('@MODULES@', ' '.join(names)))
        os.chmod(os.path.join(tmp, 'init'), 0o755)
        files = subprocess.run(['find', '.', '-mindepth', '1'], cwd=tmp, check=True,
                               capture_output=True, text=True).stdout
        cpio = subprocess.run(['cpio', '--quiet', '-o', '-H', 'newc', '-R', '0:0'], cwd=tmp, check=True,
                              input=files.encode(), capture_output=True).stdout
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode='wb', mtime=0) as gz:
        gz.write(cpio)
    with open(output, 'wb') as handle:
        handle.write(buf.getvalue())
    return names


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    names = build(*argv)
    print('initramfs %s: %s' % (argv[2], ' '.join(names)))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
