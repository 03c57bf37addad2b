# SPDX-License-Identifier: GPL-3.0-or-later
"""Lab hosts that Ansible reaches over SSH: one network namespace per host with its own sshd.

The hosts are the fleet namespaces of the netns lab (``Lab(prefix, fleet=N)``:
``PREFIX-f001`` ... each with eth0 on its own 198.18.(100+i).0/24 behind r1).
Each gets an sshd made for the test: its own ed25519 host key, config and pid
file, listening on the host's fabric address only. The controller stays in
the root namespace (no address is added there): its ssh connects through a
ProxyCommand that opens the TCP connection from the lab's ``host`` namespace,
so every SSH session crosses the storage fabric (host -> r1 -> fNNN). Host
keys are checked (a known_hosts file written here); the client key is made
here too. The managed host's Python is this venv's (the namespaces share the
file system).

    with SshHosts(lab_info, workdir) as hosts:
        inventory = ansible.inventory(hosts.inventory_hosts())
        hosts.stop('f003')   # unreachable from now on

Everything is removed at the end, each sshd stopped by its pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import typing as t

SSHD = '/usr/sbin/sshd'
# The TCP relay the ProxyCommand runs inside the lab's host namespace (stdin/stdout <-> host:port).
RELAY = r'''import os, select, socket, sys
try:
    sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
except OSError as exc:
    sys.exit('lab relay: cannot connect to %s port %s: %s' % (sys.argv[1], sys.argv[2], exc.strerror or exc))
sock.settimeout(None)
fds = [0, sock.fileno()]
while fds:
    for fd in select.select(fds, [], [])[0]:
        if fd == 0:
            data = os.read(0, 65536)
            if data:
                sock.sendall(data)
            else:
                sock.shutdown(socket.SHUT_WR)
                fds.remove(0)
        else:
            data = sock.recv(65536)
            if not data:
                sys.exit(0)
            os.write(1, data)
'''
SSHD_CONFIG = '''ListenAddress {address}
Port 22
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 100:30:200
MaxSessions 50
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
'''


def require_sshd() -> None:
    if not os.path.exists(SSHD) or shutil.which('ssh-keygen') is None:
        raise RuntimeError('openssh-server is missing: apt-get install openssh-server (make deps installs it)')


def keygen(path: str, comment: str) -> str:
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path], check=True)
    with open(path + '.pub', encoding='utf-8') as handle:
        return handle.read().strip()


class SshHosts:
    """One sshd per fleet namespace of a netns lab (lab_info: Lab.describe() or up())."""

    def __init__(self, lab_info: dict[str, t.Any], workdir: str | None = None) -> None:
        require_sshd()
        self.lab = lab_info
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix='hp-ssh-')
        self.members = {m['name']: m for m in lab_info['fleet']}
        self.pids: dict[str, int] = {}

    def path(self, *parts: str) -> str:
        return os.path.join(self.workdir, *parts)

    # building ----------------------------------------------------------------
    def up(self) -> SshHosts:
        os.makedirs('/run/sshd', mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        with open(self.path('relay.py'), 'w', encoding='utf-8') as handle:
            handle.write(RELAY)
        client = keygen(self.path('id_ed25519'), 'hostprep-lab-controller')
        with open(self.path('authorized_keys'), 'w', encoding='utf-8') as handle:
            handle.write(client + '\n')
        known = []
        for name, member in self.members.items():
            known.append('%s %s' % (member['v4'], self._configure(name, member)))
        with open(self.path('known_hosts'), 'w', encoding='utf-8') as handle:
            handle.write('\n'.join(known) + '\n')
        for name in self.members:
            self.start(name)
        self.wait()
        return self

    def _configure(self, name: str, member: dict[str, t.Any]) -> str:
        """Host key and sshd config of one host; returns its public host key."""
        os.makedirs(self.path(name), exist_ok=True)
        public = keygen(self.path(name, 'ssh_host_ed25519_key'), name)
        with open(self.path(name, 'sshd_config'), 'w', encoding='utf-8') as handle:
            handle.write(SSHD_CONFIG.format(address=member['v4'], host_key=self.path(name, 'ssh_host_ed25519_key'),
                                            pid_file=self.path(name, 'sshd.pid'),
                                            authorized_keys=self.path('authorized_keys')))
        return ' '.join(public.split()[:2])

    def start(self, name: str) -> None:
        """Start (or start again) the sshd of one host; it daemonizes and writes its pid file."""
        member = self.members[name]
        pid_file = self.path(name, 'sshd.pid')
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pid_file)
        subprocess.run(['ip', 'netns', 'exec', member['netns'], SSHD, '-f', self.path(name, 'sshd_config'),
                        '-E', self.path(name, 'sshd.log')], check=True)
        deadline = time.monotonic() + 10
        while not os.path.exists(pid_file):
            if time.monotonic() > deadline:
                raise RuntimeError('sshd of %s wrote no pid file; see %s' % (name, self.path(name, 'sshd.log')))
            time.sleep(0.02)
        with open(pid_file, encoding='utf-8') as handle:
            self.pids[name] = int(handle.read().strip())

    def stop(self, name: str) -> None:
        """Stop one host's sshd (its listener and every session it started): the host becomes unreachable."""
        pid = self.pids.pop(name, None)
        if pid is None:
            return
        for session in self._children(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(session, signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while os.path.exists('/proc/%d' % pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    @staticmethod
    def _children(pid: int) -> list[int]:
        found = []
        for entry in os.listdir('/proc'):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    with open('/proc/%s/stat' % entry, encoding='utf-8') as handle:
                        if int(handle.read().rsplit(')', 1)[1].split()[1]) == pid:
                            found.append(int(entry))
        return found

    def wait(self, timeout: float = 20.0) -> None:
        """Until every host answers an SSH command."""
        deadline = time.monotonic() + timeout
        for name in self.pids:
            while True:
                proc = subprocess.run(['ssh'] + self.ssh_options(name) + ['root@%s' % self.members[name]['v4'], 'true'],
                                      capture_output=True, check=False, timeout=30)
                if proc.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError('ssh to %s does not answer: %s' % (name, proc.stderr.decode(errors='replace')))
                time.sleep(0.1)

    def down(self) -> None:
        for name in list(self.pids):
            self.stop(name)
        # Ansible's persistent connections (ControlPersist) to these hosts end with them
        for socket_name in os.listdir(self.path('cp')) if os.path.isdir(self.path('cp')) else []:
            subprocess.run(['ssh', '-O', 'exit', '-o', 'ControlPath=%s' % self.path('cp', socket_name), 'lab'],
                           capture_output=True, check=False, timeout=10)
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SshHosts:
        return self.up()

    def __exit__(self, *exc_info: t.Any) -> None:
        self.down()

    # the controller's side ---------------------------------------------------
    def proxy_command(self) -> str:
        return 'ip netns exec %s %s %s %%h %%p' % (self.lab['host_ns'], sys.executable, self.path('relay.py'))

    def ssh_options(self, name: str | None = None) -> list[str]:  # pylint: disable=unused-argument
        """Options of every ssh to the lab hosts: the lab's keys, host keys checked, through the fabric."""
        return ['-o', 'ProxyCommand=%s' % self.proxy_command(), '-o', 'UserKnownHostsFile=%s' % self.path('known_hosts'),
                '-o', 'StrictHostKeyChecking=yes', '-o', 'IdentitiesOnly=yes', '-i', self.path('id_ed25519'),
                '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10']

    def hostvars(self, name: str, pipelining: bool = True) -> dict[str, t.Any]:
        """Inventory variables that make Ansible reach name over SSH."""
        return {'ansible_connection': 'ssh', 'ansible_pipelining': pipelining, 'ansible_host': self.members[name]['v4'], 'ansible_user': 'root',
                'ansible_ssh_private_key_file': self.path('id_ed25519'),
                'ansible_ssh_common_args': ' '.join("'%s'" % o if ' ' in o else o for o in self.ssh_options()
                                                    if o not in ('-i', self.path('id_ed25519'))),
                'ansible_control_path_dir': self.path('cp'),
                'ansible_python_interpreter': sys.executable, 'lab_netns': self.members[name]['netns']}

    def inventory_hosts(self, pipelining: bool = True) -> dict[str, dict[str, t.Any]]:
        return {name: self.hostvars(name, pipelining) for name in self.members}
