# SPDX-License-Identifier: GPL-3.0-or-later
"""Boot and stop one lab VM (qemu) from a cached image made by build_image.py.

    vm.py up   --workdir DIR [--suite bookworm] [--disks 2 --disk-size 10G]
               [--memory 1536] [--smp 2] [--timeout 300] [--accel auto|kvm|tcg]
    vm.py down --workdir DIR [--purge]
    vm.py ssh  --workdir DIR -- COMMAND...
    vm.py leftovers [DIR...]

``up`` builds or reuses the image, creates in DIR a throwaway qcow2 overlay
on it (the cached image is never written), sparse raw extra disks (serials
``hostprep-disk1``..., so /dev/disk/by-id/virtio-hostprep-disk1), an SSH key
pair, and boots qemu with user-mode networking restricted to the guest
(``restrict=on``: no traffic leaves it) and SSH forwarded from a free port
on 127.0.0.1. The serial console goes to DIR/console.log. It waits until
``ssh root@127.0.0.1 true`` works and prints the VM's description as JSON.
When the VM does not come up within --timeout it prints the last 30 console
lines, stops the VM, removes overlay and disks and exits 1.

``down`` stops the VM (by the pid qemu wrote, after checking that the
process is that qemu) and removes overlay, disks and pid file; ``--purge``
removes DIR too. It succeeds when there is nothing to stop.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

if __package__:
    from . import build_image
else:  # run as a script: python tests/lab/vm/vm.py (molecule's create and destroy playbooks)
    import build_image

QEMU = os.environ.get('HOSTPREP_VM_QEMU', 'qemu-system-x86_64')
STATE = 'vm.json'
OVERLAY = 'overlay.qcow2'
SSH_OPTIONS = ['-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
               '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=5', '-o', 'IdentitiesOnly=yes']


def log(msg: str) -> None:
    print('vm: %s' % msg, file=sys.stderr, flush=True)


def tail(path: str, lines: int = 30) -> str:
    try:
        with open(path, 'rb') as handle:
            text = handle.read().decode(errors='replace')
    except OSError:
        return '(no console log at %s)' % path
    return '\n'.join(text.replace('\r', '').splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def read_cmdline(pid: int | str) -> list[str] | None:
    """The argv of a running process, or None when it is gone."""
    try:
        with open('/proc/%s/cmdline' % pid, 'rb') as handle:
            return handle.read().decode(errors='replace').split('\0')
    except OSError:
        return None


def qemu_alive(pid: int, workdir: str) -> bool:
    """pid is running and is the qemu of this workdir (pids get reused)."""
    cmdline = ' '.join(read_cmdline(pid) or [])
    return os.path.abspath(workdir) in cmdline and 'qemu' in cmdline


def is_vm_file(name: str) -> bool:
    """What a VM writes into its work directory and `down` removes: the
    overlay and the extra disks (the console log and the key stay)."""
    return name == OVERLAY or (name.startswith('disk') and name.endswith('.raw'))


# ---------------------------------------------------------------------------
# accelerator

def kvm_works(kernel: str, cache: str, timeout: float = 15.0) -> bool:
    """Boot the kernel without a root disk under KVM: a working KVM reaches
    the 'unable to mount root' panic in a few seconds. The answer is cached
    per boot of this host (a broken /dev/kvm hangs or fails the guest)."""
    if not os.access('/dev/kvm', os.R_OK | os.W_OK):
        return False
    with open('/proc/sys/kernel/random/boot_id', encoding='utf-8') as handle:
        boot_id = handle.read().strip()
    probe_file = os.path.join(cache, 'kvm-probe.json')
    try:
        with open(probe_file, encoding='utf-8') as handle:
            cached = json.load(handle)
        if cached.get('boot_id') == boot_id and cached.get('kernel') == kernel:
            return bool(cached['works'])
    except (OSError, ValueError, KeyError):
        pass
    log_path = os.path.join(cache, 'kvm-probe.log')
    cmd = [QEMU, '-accel', 'kvm', '-cpu', 'host', '-m', '256', '-nodefaults', '-no-user-config', '-display', 'none',
           '-no-reboot', '-serial', 'file:' + log_path, '-kernel', kernel,
           '-append', 'console=ttyS0 panic=-1 root=/dev/nonexistent']
    started = time.monotonic()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        output = tail(log_path, 200)
        works = res.returncode == 0 and ('Kernel panic' in output or 'VFS' in output)
    except subprocess.TimeoutExpired:
        works = False
    log('KVM probe: %s (%.1f s)' % ('works' if works else 'does not boot a guest, using TCG',
                                    time.monotonic() - started))
    with open(probe_file, 'w', encoding='utf-8') as handle:
        json.dump({'boot_id': boot_id, 'kernel': kernel, 'works': works}, handle)
    return works


def accel_args(mode: str, kernel: str, cache: str) -> tuple[str, list[str]]:
    if mode == 'kvm' or (mode == 'auto' and kvm_works(kernel, cache)):
        return 'kvm', ['-accel', 'kvm', '-cpu', 'host']
    return 'tcg', ['-accel', 'tcg,thread=multi', '-cpu', 'max']


# ---------------------------------------------------------------------------
# up / down

def ssh_cmd(state: dict, *command: str) -> list[str]:
    return (['ssh'] + SSH_OPTIONS + ['-i', state['identity_file'], '-p', str(state['port']),
                                     '%s@%s' % (state['user'], state['address'])] + list(command))


def ensure_key(workdir: str) -> str:
    key = os.path.join(workdir, 'id_ed25519')
    if not os.path.exists(key):
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'hostprep-lab', '-f', key], check=True)
    return key


def up(args: argparse.Namespace) -> int:
    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, exist_ok=True)
    old = load_state(workdir)
    if old and qemu_alive(old.get('pid', 0), workdir):
        log('a VM of %s is already running (pid %d); reusing it' % (workdir, old['pid']))
        print(json.dumps(old, indent=2, sort_keys=True))
        return 0
    if shutil.which(QEMU) is None or shutil.which('qemu-img') is None:
        raise SystemExit('vm: %s or qemu-img is missing; run "make vm-image" (installs qemu-system-x86 and '
                         'qemu-utils)' % QEMU)
    image = build_image.ensure(args.suite, args.cache)
    key = ensure_key(workdir)
    with open(key + '.pub', encoding='utf-8') as handle:
        pubkey = base64.b64encode(handle.read().strip().encode()).decode()
    overlay = os.path.join(workdir, OVERLAY)
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', image['image_path'], overlay],
                   check=True)
    disks = []
    for index in range(1, args.disks + 1):
        path = os.path.join(workdir, 'disk%d.raw' % index)
        subprocess.run(['truncate', '-s', args.disk_size, path], check=True)
        disks.append(path)
    console = os.path.join(workdir, 'console.log')
    pidfile = os.path.join(workdir, 'qemu.pid')
    accel, accel_opts = accel_args(args.accel, image['kernel_path'], args.cache)
    append = ('root=/dev/vda rw console=ttyS0 apparmor=0 panic=10 mitigations=off '
              'hostprep.ssh_key=%s' % pubkey)
    state = {
        'instance': args.name, 'address': '127.0.0.1', 'user': 'root', 'identity_file': key,
        'workdir': workdir, 'suite': args.suite, 'image': image['dir'], 'kernel_version': image['kernel_version'],
        'accel': accel, 'memory': args.memory, 'smp': args.smp, 'overlay': overlay, 'disks': disks,
        'disk_size': args.disk_size, 'console_log': console,
    }
    for attempt in range(5):
        port = free_port()
        cmd = [QEMU, '-name', 'hostprep-%s' % args.name, '-machine', 'pc'] + accel_opts + [
            '-smp', str(args.smp), '-m', str(args.memory), '-nodefaults', '-no-user-config', '-display', 'none',
            '-serial', 'file:' + console, '-kernel', image['kernel_path'], '-initrd', image['initrd_path'],
            '-append', append,
            '-drive', 'file=%s,if=none,id=root,format=qcow2,cache=unsafe,discard=unmap' % overlay,
            '-device', 'virtio-blk-pci,drive=root,serial=hostprep-root',
            '-netdev', 'user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22' % port,
            '-device', 'virtio-net-pci,netdev=net0',
            '-device', 'virtio-rng-pci',
            '-pidfile', pidfile, '-daemonize']
        for index, path in enumerate(disks, 1):
            cmd += ['-drive', 'file=%s,if=none,id=disk%d,format=raw,cache=unsafe,discard=unmap' % (path, index),
                    '-device', 'virtio-blk-pci,drive=disk%d,serial=hostprep-disk%d' % (index, index)]
        started = time.monotonic()
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode == 0:
            break
        if 'hostfwd' in res.stderr or 'forwarding' in res.stderr:
            log('port %d was taken, trying another (%s)' % (port, res.stderr.strip()))
            continue
        cleanup(workdir, state)
        raise SystemExit('vm: qemu failed to start (rc %d): %s' % (res.returncode, res.stderr.strip()))
    else:
        cleanup(workdir, state)
        raise SystemExit('vm: no free port for SSH forwarding after 5 tries')
    with open(pidfile, encoding='utf-8') as handle:
        state['pid'] = int(handle.read().strip())
    state['port'] = port
    save_state(workdir, state)
    log('booting %s (%s, %s, pid %d, ssh 127.0.0.1:%d, %d extra disk(s))' % (
        args.name, args.suite, accel, state['pid'], port, len(disks)))
    deadline = started + args.timeout
    while True:
        if not qemu_alive(state['pid'], workdir):
            cleanup(workdir, state)
            raise SystemExit('vm: qemu (pid %d) exited while booting %s; last console lines:\n%s' % (
                state['pid'], args.name, tail(console)))
        try:
            probe = subprocess.run(ssh_cmd(state, 'true'), capture_output=True, timeout=20, check=False)
            if probe.returncode == 0:
                break
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() > deadline:
            cleanup(workdir, state)
            raise SystemExit('vm: %s did not answer on ssh 127.0.0.1:%d within %d s (%s); last 30 console '
                             'lines of %s:\n%s' % (args.name, port, args.timeout, accel, console, tail(console)))
        time.sleep(1)
    state['boot_seconds'] = round(time.monotonic() - started, 1)
    save_state(workdir, state)
    log('%s answers on ssh after %.1f s' % (args.name, state['boot_seconds']))
    print(json.dumps(state, indent=2, sort_keys=True))
    return 0


def inventory_vars(state: dict) -> dict:
    """The Ansible connection variables of a VM that `up` described. Ansible
    logs in as root, and the image has no sudo: `become: true` of the
    collection's playbooks is switched off for the VM (it would only be root
    becoming root)."""
    return {
        'ansible_host': state['address'], 'ansible_port': state['port'], 'ansible_user': state['user'],
        'ansible_become': False,
        'ansible_ssh_private_key_file': state['identity_file'], 'ansible_python_interpreter': '/usr/bin/python3',
        'ansible_ssh_common_args': '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null',
    }


def cli(*args: str) -> subprocess.CompletedProcess:
    """Run this script in a child process (so a failed boot cannot take the
    caller with it); stdout (the JSON of `up`) is captured, the log is not."""
    return subprocess.run([sys.executable, os.path.abspath(__file__)] + list(args), stdout=subprocess.PIPE,
                          text=True, check=False)


@contextlib.contextmanager
def booted(workdir: str, *up_args: str, keep: bool = False):
    """Boot a VM (`up --workdir workdir *up_args` in a child process) and
    yield its description; stop it and remove its work directory on the way
    out, failed or not, unless keep. A VM that does not come up raises
    SystemExit after `up` has printed its console tail and cleaned up."""
    res = cli('up', '--workdir', workdir, *up_args)
    if res.returncode != 0:
        raise SystemExit('the lab VM of %s did not come up (see above)' % workdir)
    try:
        yield json.loads(res.stdout)
    finally:
        if not keep:
            cli('down', '--purge', '--workdir', workdir)


def load_state(workdir: str) -> dict:
    try:
        with open(os.path.join(workdir, STATE), encoding='utf-8') as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def save_state(workdir: str, state: dict) -> None:
    tmp = os.path.join(workdir, STATE + '.tmp')
    with open(tmp, 'w', encoding='utf-8') as handle:
        json.dump(state, handle, indent=2, sort_keys=True)
    os.rename(tmp, os.path.join(workdir, STATE))


def stop(workdir: str, pid: int) -> bool:
    if not pid or not qemu_alive(pid, workdir):
        return False
    os.kill(pid, signal.SIGTERM)
    for dummy in range(100):
        if not qemu_alive(pid, workdir):
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    for dummy in range(50):
        if not qemu_alive(pid, workdir):
            return True
        time.sleep(0.1)
    raise SystemExit('vm: qemu pid %d of %s does not stop' % (pid, workdir))


def cleanup(workdir: str, state: dict) -> list[str]:
    """Stop the VM and remove what it wrote; the console log stays."""
    removed = []
    pid = state.get('pid')
    if not pid:
        try:
            with open(os.path.join(workdir, 'qemu.pid'), encoding='utf-8') as handle:
                pid = int(handle.read().strip())
        except (OSError, ValueError):
            pid = 0
    if stop(workdir, pid):
        removed.append('qemu pid %d' % pid)
    for path in [state.get('overlay') or os.path.join(workdir, OVERLAY), os.path.join(workdir, 'qemu.pid')]:
        if os.path.exists(path):
            os.unlink(path)
            removed.append(path)
    for name in sorted(os.listdir(workdir)) if os.path.isdir(workdir) else []:
        if is_vm_file(name):
            os.unlink(os.path.join(workdir, name))
            removed.append(os.path.join(workdir, name))
    return removed


def down(args: argparse.Namespace) -> int:
    workdir = os.path.abspath(args.workdir)
    if not os.path.isdir(workdir):
        log('%s does not exist: nothing to stop' % workdir)
        return 0
    removed = cleanup(workdir, load_state(workdir))
    if args.purge:
        shutil.rmtree(workdir)
        removed.append(workdir)
    log('down %s: %s' % (workdir, ', '.join(removed) or 'nothing was running'))
    return 0


def ssh(args: argparse.Namespace) -> int:
    state = load_state(os.path.abspath(args.workdir))
    if not state.get('port'):
        raise SystemExit('vm: no VM described in %s' % args.workdir)
    command = args.command[1:] if args.command[:1] == ['--'] else args.command
    return subprocess.run(ssh_cmd(state, *command), check=False).returncode


def lab_processes() -> list[tuple[int, str]]:
    """Running qemu processes of the lab (qemu -name hostprep-NAME)."""
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        argv = read_cmdline(pid)
        if argv and 'qemu' in os.path.basename(argv[0]) and any(a.startswith('hostprep-') for a in argv):
            found.append((int(pid), ' '.join(argv).strip()))
    return found


def leftover_files(roots: list[str]) -> list[str]:
    """Overlays and extra disks a VM left under the given directories."""
    found = []
    for root in roots:
        for dirpath, dummy, filenames in os.walk(root):
            for name in filenames:
                if is_vm_file(name):
                    found.append(os.path.join(dirpath, name))
    return sorted(found)


def leftovers(args: argparse.Namespace) -> int:
    """Exit 1 and name them when a lab VM whose work directory is under one
    of the roots still runs, or an overlay or disk is left under them."""
    roots = [os.path.abspath(root) for root in args.roots]
    procs = [(pid, cmdline) for pid, cmdline in lab_processes() if any(root in cmdline for root in roots)]
    files = leftover_files(roots)
    for pid, cmdline in procs:
        log('left running: pid %d: %s' % (pid, cmdline[:200]))
    for path in files:
        log('left behind: %s' % path)
    if not procs and not files:
        log('no lab VM runs and no overlay or disk is left under %s' % ', '.join(args.roots))
    return 1 if procs or files else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    sub = parser.add_subparsers(dest='action', required=True)
    p_up = sub.add_parser('up', help='boot a VM and wait for SSH')
    p_up.add_argument('--workdir', required=True)
    p_up.add_argument('--name', default='lab')
    p_up.add_argument('--suite', default='bookworm', choices=build_image.SUITES)
    p_up.add_argument('--cache', default=build_image.DEFAULT_CACHE)
    p_up.add_argument('--disks', type=int, default=0, help='number of extra sparse raw virtio disks')
    p_up.add_argument('--disk-size', default='10G')
    p_up.add_argument('--memory', type=int, default=1536, help='MiB')
    p_up.add_argument('--smp', type=int, default=2)
    p_up.add_argument('--timeout', type=int, default=int(os.environ.get('HOSTPREP_VM_TIMEOUT', '600')),
                      help='seconds until SSH must answer')
    p_up.add_argument('--accel', default=os.environ.get('HOSTPREP_VM_ACCEL', 'auto'), choices=['auto', 'kvm', 'tcg'])
    p_down = sub.add_parser('down', help='stop the VM, remove overlay and disks')
    p_down.add_argument('--workdir', required=True)
    p_down.add_argument('--purge', action='store_true', help='remove the work directory too')
    p_ssh = sub.add_parser('ssh', help='run a command in the VM')
    p_ssh.add_argument('--workdir', required=True)
    p_ssh.add_argument('command', nargs=argparse.REMAINDER)
    p_left = sub.add_parser('leftovers', help='fail when a lab VM runs or left its overlay or disks behind')
    p_left.add_argument('roots', nargs='+', help='directories where VMs had their work directories')
    args = parser.parse_args(argv)
    return {'up': up, 'down': down, 'ssh': ssh, 'leftovers': leftovers}[args.action](args)


if __name__ == '__main__':
    sys.exit(main())
