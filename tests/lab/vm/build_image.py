# SPDX-License-Identifier: GPL-3.0-or-later
"""Build (or reuse) a Debian lab image for the VM lab, without booting a VM.

    build_image.py --suite bookworm [--cache DIR] [--json] [--force]

Steps: ``debootstrap --variant=minbase`` with the packages below and the
host packages the roles install (roles/host_packages: the Python libraries
python3-docker and python3-pyroute2 come from the suite, as on a user's
host); the suite's own ``linux-image-*-amd64`` unpacked with
``dpkg-deb --fsys-tarfile | tar -x --keep-directory-symlink`` (``dpkg -x``
would replace the merged-/usr ``/lib`` symlink); a busybox initramfs
(build_initramfs.py); ``mkfs.ext4 -d ROOTFS`` makes the sparse raw disk.
The apt lists and the .debs of the host packages stay in the image, so a
scenario can purge them and let the roles install them again offline
(molecule/prerequisites).

The result lives in ``CACHE/<suite>-<hash of the inputs>/`` (rootfs.raw,
vmlinuz, initrd.img, manifest.json), outside the checkout. It is reused
while it exists; VMs boot from qcow2 overlays on it and never write to it.
``--json`` prints the manifest (paths included) on stdout for vm.py.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..', '..'))
DEFAULT_CACHE = os.environ.get('HOSTPREP_VM_CACHE', '/var/cache/hostprep-vm')
MIRROR = os.environ.get('HOSTPREP_VM_MIRROR', 'http://deb.debian.org/debian')
IMAGE_SIZE = os.environ.get('HOSTPREP_VM_IMAGE_SIZE', '8G')

# What the roles install on a Debian host (roles/host_packages/vars/main.yml, every feature): in the
# image, and kept as .debs in its apt cache for offline reinstalls.
HOST_PACKAGES_VARS = os.path.join(ROOT, 'roles', 'host_packages', 'vars', 'main.yml')


def host_packages() -> list[str]:
    with open(HOST_PACKAGES_VARS, encoding='utf-8') as handle:
        names = yaml.safe_load(handle)['__host_packages_names']['Debian']
    return sorted({name for feature in names.values() for name in feature or []})


PACKAGES = [
    'systemd-sysv', 'udev', 'kmod', 'dbus', 'iproute2', 'openssh-server', 'python3', 'python3-apt',
    'ca-certificates', 'e2fsprogs', 'docker.io', 'busybox-static', 'procps', 'less', 'util-linux', 'xz-utils',
] + host_packages()
# Suite-specific additions.
SUITE_PACKAGES = {
    'bookworm': [],
    'trixie': ['docker-cli'],  # trixie's docker.io no longer ships the CLI
}
SUITES = sorted(SUITE_PACKAGES)
GUEST_FILES = os.path.join(HERE, 'guest')


def log(msg: str) -> None:
    print('build_image: %s' % msg, file=sys.stderr, flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, LC_ALL='C', DEBIAN_FRONTEND='noninteractive')
    kwargs.setdefault('check', True)
    try:
        return subprocess.run(cmd, env=env, **kwargs)  # pylint: disable=subprocess-run-check  # check is in kwargs
    except subprocess.CalledProcessError as exc:
        out = (exc.stdout or b'') if isinstance(exc.stdout, bytes) else (exc.stdout or '').encode()
        err = (exc.stderr or b'') if isinstance(exc.stderr, bytes) else (exc.stderr or '').encode()
        tail = (out + err).decode(errors='replace').strip().splitlines()[-30:]
        raise SystemExit('build_image: %s failed with rc %d\n%s' % (' '.join(cmd), exc.returncode, '\n'.join(tail)))


def input_hash(suite: str) -> str:
    """Everything that decides the image's content (the mirror's package
    versions aside: remove the cache directory to pick up new ones)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([suite, PACKAGES, SUITE_PACKAGES[suite], IMAGE_SIZE]).encode())
    # The steps that decide what goes into the image; the rest of this file
    # (caching, pruning, the command line) can change without a rebuild.
    for step in (configure, install_kernel, keep_host_debs, build):
        digest.update(inspect.getsource(step).encode())
    paths = [os.path.join(HERE, 'build_initramfs.py')]
    paths += sorted(glob.glob(os.path.join(GUEST_FILES, '**', '*'), recursive=True))
    for path in paths:
        if os.path.isfile(path):
            digest.update(os.path.relpath(path, HERE).encode())
            with open(path, 'rb') as handle:
                digest.update(handle.read())
    return digest.hexdigest()[:12]


def image_dir(cache: str, suite: str) -> str:
    return os.path.join(cache, '%s-%s' % (suite, input_hash(suite)))


def load_manifest(directory: str) -> dict | None:
    path = os.path.join(directory, 'manifest.json')
    try:
        with open(path, encoding='utf-8') as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        return None
    if all(os.path.isfile(os.path.join(directory, manifest[k])) for k in ('image', 'kernel', 'initrd')):
        return manifest
    return None


@contextlib.contextmanager
def mounted_chroot(rootfs: str):
    """/proc, /sys and /dev for apt inside the chroot, always unmounted."""
    mounts = []
    try:
        for fstype, src, target, opts in (('proc', 'proc', 'proc', []), ('sysfs', 'sysfs', 'sys', []),
                                          (None, '/dev', 'dev', ['--bind'])):
            dest = os.path.join(rootfs, target)
            cmd = ['mount'] + (opts or ['-t', fstype]) + [src, dest]
            run(cmd)
            mounts.append(dest)
        yield
    finally:
        for dest in reversed(mounts):
            subprocess.run(['umount', '-l', dest], check=False)


def unmount_all(rootfs: str) -> None:
    """Unmount everything under rootfs (debootstrap or a failed step may
    leave /proc, /sys or a /dev bind mount) before anything removes it."""
    prefix = os.path.realpath(rootfs) + '/'
    for dummy in range(3):
        with open('/proc/self/mountinfo', encoding='utf-8') as handle:
            points = [line.split()[4] for line in handle]
        inside = sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)
        if not inside:
            return
        for point in inside:
            subprocess.run(['umount', '-l', point], check=False, capture_output=True)
    raise SystemExit('build_image: cannot unmount everything under %s; remove it by hand' % rootfs)


def chroot(rootfs: str, *cmd: str, capture: bool = False) -> str:
    res = run(['chroot', rootfs] + list(cmd), capture_output=True, text=True)
    if not capture and res.stdout.strip():
        log(res.stdout.strip().splitlines()[-1])
    return res.stdout


def write(rootfs: str, relpath: str, text: str, mode: int = 0o644) -> None:
    path = os.path.join(rootfs, relpath.lstrip('/'))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(text)
    os.chmod(path, mode)


def configure(rootfs: str, suite: str) -> None:
    write(rootfs, '/etc/hostname', 'hostprep-lab\n')
    write(rootfs, '/etc/hosts', '127.0.0.1 localhost\n127.0.1.1 hostprep-lab\n::1 localhost ip6-localhost\n')
    write(rootfs, '/etc/fstab', '/dev/vda / ext4 rw,errors=remount-ro 0 0\n')
    # The user-mode NIC (virtio-net) gets its address by DHCP from qemu.
    write(rootfs, '/etc/systemd/network/10-lab-uplink.network',
          '[Match]\nName=en* eth*\nType=ether\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n')
    write(rootfs, '/etc/ssh/sshd_config.d/hostprep-lab.conf',
          'PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n'
          'UseDNS no\n')
    # A lab VM has no DNS and no route out (qemu runs it with restrict=on).
    write(rootfs, '/etc/resolv.conf', '')
    # Fresh machine-id on first boot of each overlay.
    write(rootfs, '/etc/machine-id', '')
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(rootfs, 'var/lib/dbus/machine-id'))
    chroot(rootfs, 'systemctl', 'enable', 'systemd-networkd.service')
    # Scenarios start the engine when they have configured its storage;
    # starting it on every boot costs about 13 s under emulation.
    chroot(rootfs, 'systemctl', 'disable', 'docker.service', 'docker.socket', 'containerd.service')
    # Nothing waits for "network online" here, and the storage links may stay down.
    chroot(rootfs, 'systemctl', 'mask', 'systemd-networkd-wait-online.service')
    for unit in ('apt-daily.timer', 'apt-daily-upgrade.timer', 'e2scrub_all.timer', 'fstrim.timer'):
        subprocess.run(['chroot', rootfs, 'systemctl', 'disable', unit], check=False, capture_output=True)
    # Boot time under TCG: no graphical target, no e2scrub pass over a root
    # that lives for one scenario (about 30 s of a 100 s boot on a busy host).
    chroot(rootfs, 'systemctl', 'set-default', 'multi-user.target')
    chroot(rootfs, 'systemctl', 'mask', 'e2scrub_reap.service')
    run(['chroot', rootfs, 'passwd', '-l', 'root'], capture_output=True)


def install_kernel(rootfs: str, workdir: str) -> str:
    """Download the suite's kernel package with the chroot's apt and unpack it."""
    run(['chroot', rootfs, 'apt-get', 'update', '-q'], capture_output=True)
    deps = chroot(rootfs, 'apt-cache', 'depends', '--no-recommends', '--no-suggests', 'linux-image-amd64',
                  capture=True)
    names = [line.split(':', 1)[1].strip() for line in deps.splitlines()
             if line.strip().startswith('Depends:') and 'linux-image-' in line]
    if not names:
        raise SystemExit('build_image: cannot find the kernel package behind linux-image-amd64:\n%s' % deps)
    pkg = names[0]
    run(['chroot', rootfs, 'sh', '-c', 'cd /tmp && apt-get download -q %s' % pkg], capture_output=True)
    debs = glob.glob(os.path.join(rootfs, 'tmp', pkg + '_*.deb'))
    if len(debs) != 1:
        raise SystemExit('build_image: apt-get download %s left %r' % (pkg, debs))
    tar = subprocess.Popen(['tar', '-x', '--keep-directory-symlink', '-C', rootfs], stdin=subprocess.PIPE)
    run(['dpkg-deb', '--fsys-tarfile', debs[0]], stdout=tar.stdin)
    tar.stdin.close()
    if tar.wait() != 0:
        raise SystemExit('build_image: unpacking %s failed' % debs[0])
    os.unlink(debs[0])
    kver = pkg[len('linux-image-'):]
    chroot(rootfs, 'depmod', '-a', kver)
    shutil.copy2(os.path.join(rootfs, 'boot', 'vmlinuz-' + kver), os.path.join(workdir, 'vmlinuz'))
    return kver


def versions(rootfs: str, packages: list[str]) -> dict[str, str]:
    out = subprocess.run(['chroot', rootfs, 'dpkg-query', '-W', '-f', '${Package} ${Version}\\n'] + packages,
                         capture_output=True, text=True, check=False).stdout
    return dict(line.split(' ', 1) for line in out.splitlines() if ' ' in line)


def keep_host_debs(rootfs: str) -> None:
    """The .debs of the host packages into the image's apt cache, next to the apt lists kept from
    install_kernel's update: apt installs them again without a network (update_cache false)."""
    # apt-get download as root into a root-owned directory (apt's _apt user cannot write there).
    run(['chroot', rootfs, 'sh', '-c', 'cd /var/cache/apt/archives && apt-get download -q -o APT::Sandbox::User=root "$@"',
         'sh'] + host_packages(), capture_output=True)


def python_versions(rootfs: str) -> dict[str, str]:
    """The Python libraries as the image's python3 sees them (from the suite's packages)."""
    code = ('import importlib.metadata as m, json; '
            'print(json.dumps({n: m.version(n) for n in ("pyroute2", "docker")}))')
    return json.loads(chroot(rootfs, 'python3', '-c', code, capture=True))


def build(suite: str, target: str) -> dict:
    started = time.monotonic()
    workdir = target + '.build-%d' % os.getpid()
    rootfs = os.path.join(workdir, 'rootfs')
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    try:
        packages = PACKAGES + SUITE_PACKAGES[suite]
        log('debootstrap %s (%d packages) from %s' % (suite, len(packages), MIRROR))
        t0 = time.monotonic()
        debs = os.path.join(os.path.dirname(target), 'debs-' + suite)  # downloaded .debs, kept for rebuilds
        os.makedirs(debs, exist_ok=True)
        run(['debootstrap', '--variant=minbase', '--cache-dir=' + debs, '--include=' + ','.join(packages),
             suite, rootfs, MIRROR], capture_output=True)
        timings = {'debootstrap': round(time.monotonic() - t0, 1)}
        shutil.copy2('/etc/resolv.conf', os.path.join(rootfs, 'etc/resolv.conf'))
        with mounted_chroot(rootfs):
            t0 = time.monotonic()
            kver = install_kernel(rootfs, workdir)
            timings['kernel'] = round(time.monotonic() - t0, 1)
            run(['chroot', rootfs, 'apt-get', 'clean'])
            keep_host_debs(rootfs)  # before configure() empties resolv.conf
            configure(rootfs, suite)
            pkg_versions = versions(rootfs, ['systemd', 'docker.io', 'docker-cli', 'containerd', 'lvm2', 'python3',
                                             'openssh-server', 'btrfs-progs', 'xfsprogs', 'python3-docker',
                                             'python3-pyroute2', 'python3-requests', 'python3-urllib3'])
            py_versions = python_versions(rootfs)
        for sub in ('usr/share/doc', 'usr/share/man', 'usr/share/info', 'tmp', 'var/tmp',
                    'var/cache/debconf/templates.dat-old'):
            path = os.path.join(rootfs, sub)
            if os.path.isdir(path):
                for entry in os.listdir(path):
                    p = os.path.join(path, entry)
                    shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
        os.chmod(os.path.join(rootfs, 'tmp'), 0o1777)
        write(rootfs, '/etc/resolv.conf', '')
        t0 = time.monotonic()
        modules = build_initramfs(rootfs, kver, os.path.join(workdir, 'initrd.img'))
        timings['initramfs'] = round(time.monotonic() - t0, 1)
        unmount_all(rootfs)
        rootfs_bytes = int(subprocess.run(['du', '-sb', rootfs], capture_output=True, text=True,
                                          check=True).stdout.split()[0])
        t0 = time.monotonic()
        image = os.path.join(workdir, 'rootfs.raw')
        run(['truncate', '-s', IMAGE_SIZE, image])
        run(['mkfs.ext4', '-q', '-F', '-L', 'hostprep-root', '-d', rootfs, image], capture_output=True)
        timings['mkfs'] = round(time.monotonic() - t0, 1)
        unmount_all(rootfs)
        shutil.rmtree(rootfs)
        disk_bytes = os.stat(image).st_blocks * 512
        manifest = {
            'suite': suite, 'hash': os.path.basename(target).rsplit('-', 1)[1],
            'kernel_version': kver, 'image': 'rootfs.raw', 'image_format': 'raw', 'image_size': IMAGE_SIZE,
            'kernel': 'vmlinuz', 'initrd': 'initrd.img', 'initramfs_modules': modules,
            'packages': pkg_versions, 'python': py_versions,
            'rootfs_bytes': rootfs_bytes, 'image_allocated_bytes': disk_bytes,
            'build_seconds': round(time.monotonic() - started, 1), 'timings': timings,
            'built': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        }
        with open(os.path.join(workdir, 'manifest.json'), 'w', encoding='utf-8') as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True)
        shutil.rmtree(target, ignore_errors=True)
        os.rename(workdir, target)
        return manifest
    finally:
        if os.path.isdir(workdir):
            unmount_all(rootfs)
            shutil.rmtree(workdir, ignore_errors=True)


def build_initramfs(rootfs: str, kver: str, output: str) -> list[str]:
    if __package__:
        from . import build_initramfs as bi  # pylint: disable=import-outside-toplevel
    else:  # run as a script: python tests/lab/vm/build_image.py (make vm-image)
        import build_initramfs as bi  # pylint: disable=import-outside-toplevel
    return bi.build(rootfs, kver, output)


def open_by_a_process(directory: str) -> bool:
    """Some process (a running lab's qemu) has a file under directory open."""
    prefix = os.path.realpath(directory) + '/'
    for pid in filter(str.isdigit, os.listdir('/proc')):
        fd_dir = '/proc/%s/fd' % pid
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(os.path.join(fd_dir, fd)).startswith(prefix):
                    return True
            except OSError:
                continue
    return False


def prune(cache: str, suite: str, keep: str) -> None:
    """Remove older builds of the suite (other input hashes), each about
    1 GB, unless a running VM still reads one through its overlay."""
    for path in sorted(glob.glob(os.path.join(cache, suite + '-*'))):
        name = os.path.basename(path)
        if path == keep or not os.path.isdir(path) or '.build-' in name or len(name) != len(suite) + 13:
            continue
        if open_by_a_process(path):
            log('keeping the older image %s: a running VM uses it' % path)
            continue
        log('removing the older image %s' % path)
        shutil.rmtree(path, ignore_errors=True)


def ensure(suite: str, cache: str, force: bool = False) -> dict:
    """The manifest of the cached image, built first when missing."""
    if suite not in SUITE_PACKAGES:
        raise SystemExit('build_image: unknown suite %r; use one of %s' % (suite, ', '.join(SUITES)))
    for tool in ('debootstrap', 'mkfs.ext4', 'dpkg-deb', 'cpio', 'chroot'):
        if shutil.which(tool) is None:
            raise SystemExit('build_image: %s is missing; run "make vm-image" (it installs the Debian packages '
                             'listed in mk/vm.mk as VM_APT_PACKAGES)' % tool)
    os.makedirs(cache, exist_ok=True)
    target = image_dir(cache, suite)
    with open(os.path.join(cache, '.lock-%s' % suite), 'w', encoding='utf-8') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build per suite at a time; others wait and reuse it
        manifest = None if force else load_manifest(target)
        if manifest is not None:
            log('reusing %s (%s, kernel %s)' % (target, suite, manifest['kernel_version']))
        else:
            if os.geteuid() != 0:
                raise SystemExit('build_image: building %s needs root (debootstrap, chroot)' % target)
            log('building %s' % target)
            manifest = build(suite, target)
            log('built %s in %.0f s: root %d MB, image %s sparse (%d MB allocated)' % (
                suite, manifest['build_seconds'], manifest['rootfs_bytes'] // 2**20, manifest['image_size'],
                manifest['image_allocated_bytes'] // 2**20))
        prune(cache, suite, target)
    manifest = dict(manifest, dir=target)
    for key in ('image', 'kernel', 'initrd'):
        manifest[key + '_path'] = os.path.join(target, manifest[key])
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--suite', default='bookworm', choices=SUITES)
    parser.add_argument('--cache', default=DEFAULT_CACHE)
    parser.add_argument('--force', action='store_true', help='rebuild even when a cached image exists')
    parser.add_argument('--json', action='store_true', help='print the manifest as JSON')
    args = parser.parse_args(argv)
    manifest = ensure(args.suite, os.path.abspath(args.cache), args.force)
    if args.json:
        print(json.dumps(manifest, indent=2, sort_keys=True))
    else:
        print('%s: %s (kernel %s, built in %s s, root %d MB)' % (
            args.suite, manifest['dir'], manifest['kernel_version'], manifest['build_seconds'],
            manifest['rootfs_bytes'] // 2**20))
    return 0


if __name__ == '__main__':
    sys.exit(main())
