# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Copy-on-write benchmark of a Docker storage backend, private to hostprep.container_host.

The classic evaluation, run through the Docker SDK instead of a shell loop:

1. ``oneshot``: start COUNT containers from a small image, each writing
   WRITE_SIZE bytes with dd, and wait for them to exit;
2. ``commit``: commit each of them to a new image;
3. ``run_from_commit``: start COUNT detached containers from those images,
   running sleep.

After every operation the filesystem under the data root is synced and
read with statvfs, and the engine's own storage counters are read (btrfs
allocation, devicemapper data/metadata, an LVM thin pool); around and during
the detached phase, memory (MemAvailable, resident memory of dockerd,
containerd and the shims).

Everything the run creates carries the label ``io.hostprep.cow-benchmark``
(value: the run id) and the owner label (boot id, pid and start time of the
process), is removed at the end, also on failure or SIGTERM, and leftovers
of an earlier interrupted run are found by label and removed first.

Pure functions (statistics, parsers, the tar of a static busybox, the space
estimate) are unit-tested on recorded output; ``Benchmark`` does the work.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import json
import os
import signal
import statistics
import struct
import tarfile
import time
import typing as t
import uuid

from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    Changes,
    HostprepError,
    changes_of,
    run,
)
from ansible_collections.hostprep.container_host.plugins.module_utils import _memory
from ansible_collections.hostprep.container_host.plugins.module_utils import _processes
from ansible_collections.hostprep.container_host.plugins.module_utils._sizes import (
    format_size,
    parse_engine_size,
    parse_size,
)

from ansible_collections.hostprep.container_host.plugins.module_utils import _lvm

LABEL = 'io.hostprep.cow-benchmark'
OWNER_LABEL = LABEL + '.owner'
SCENARIOS = ('oneshot', 'commit', 'run_from_commit')
DEFAULT_BUSYBOX = '/bin/busybox'
# The applets the scenarios run, plus a shell for anyone who looks inside.
APPLETS = ('sh', 'dd', 'sleep', 'sync', 'true')
# Space a container or commit may take beyond what it writes: its layer
# metadata and, on backends that copy (vfs), whole copies of the image.
BASE_OVERHEAD = 4 * 1024 * 1024
IMAGE_COPIES = 2
# Bounds of the input: the classic evaluation uses tens of containers of a
# few KiB to MiB; beyond these a typo (count: 1000000000, write_size: 1P) is
# far likelier than a wish.
COUNT_MAX = 1000
WRITE_SIZE_MAX = 1024 ** 3
SLEEP_SECONDS_MAX = 86400
TIMEOUT_MAX = 3600
# What one detached container of run_from_commit costs, measured on Debian
# 12's Engine 20.10.24 (runc 1.1.5, containerd 1.6.20) with 40 containers of
# the busybox image running sleep: its containerd-shim-runc-v2 has 12-13
# threads and 12.9 MiB resident (2.6 MiB proportional), the container's
# cgroup 0.3 MiB, and MemAvailable fell by 4.6 MiB per container. The check
# counts the shim's whole resident memory plus the container, rounded up,
# and keeps a reserve for the host.
MEMORY_PER_CONTAINER = 16 * 1024 * 1024
MEMORY_RESERVE = 512 * 1024 * 1024
TASKS_PER_CONTAINER = 16
TASKS_RESERVE = 512


# ---- pure helpers -----------------------------------------------------------

def needed_phases(scenarios: t.Iterable[str]) -> list[tuple[str, bool]]:
    """The phases to run, in order, and whether each is measured: a later
    scenario needs the earlier ones (commit needs the oneshot containers,
    run_from_commit the commits), which then run unmeasured."""
    wanted = set(scenarios)
    unknown = wanted - set(SCENARIOS)
    if unknown:
        raise HostprepError('unknown scenario(s) %s; choose from %s' % (', '.join(sorted(unknown)), ', '.join(SCENARIOS)))
    if not wanted:
        raise HostprepError('scenarios is empty; name at least one of %s' % ', '.join(SCENARIOS))
    last = max(SCENARIOS.index(name) for name in wanted)
    return [(name, name in wanted) for name in SCENARIOS[:last + 1]]


def dd_blocks(write_size: int) -> tuple[int, int]:
    """(bs, count) for dd writing exactly write_size bytes with blocks of at
    most 1 MiB (a single huge block would need as much memory)."""
    if write_size <= 0:
        raise HostprepError('write_size must be at least 1 byte')
    for block in (1024 * 1024, 65536, 4096, 512, 1):
        if write_size % block == 0 and write_size >= block:
            return block, write_size // block
    return 1, write_size  # pragma: no cover (1 always divides)


def estimate_required(count: int, write_size: int, phases: int, image_size: int) -> dict[str, int]:
    """Free space the run needs: count x (write_size + overhead) x phases,
    overhead = 4 MiB + 2 x the image size (vfs copies the image for each
    container's init and read-write layers)."""
    overhead = BASE_OVERHEAD + IMAGE_COPIES * max(0, image_size)
    return {'per_operation': write_size + overhead, 'overhead_per_operation': overhead,
            'operations': count * phases, 'required': count * phases * (write_size + overhead)}


def capacity_problems(count: int, mem_available: int | None, cgroup_memory: dict[str, t.Any] | None,
                      tasks: dict[str, t.Any]) -> list[str]:
    """What is short for count detached containers (each with its shim):
    MemAvailable, the engine's memory cgroup, kernel.pid_max,
    kernel.threads-max and the engine's pids cgroup. Empty when all fit."""
    memory = count * MEMORY_PER_CONTAINER
    need = count * TASKS_PER_CONTAINER
    problems = []
    if mem_available is not None and memory + MEMORY_RESERVE > mem_available:
        problems.append('memory: MemAvailable is %s, the containers need about %s (%s each) and %s stays for the host'
                        % (format_size(mem_available), format_size(memory), format_size(MEMORY_PER_CONTAINER),
                           format_size(MEMORY_RESERVE)))
    if cgroup_memory and memory > cgroup_memory['limit'] - cgroup_memory['usage']:
        problems.append('memory: the engine\'s cgroup %s allows %s and uses %s, the containers\' shims need about %s'
                        % (cgroup_memory['cgroup'], format_size(cgroup_memory['limit']),
                           format_size(cgroup_memory['usage']), format_size(memory)))
    used = tasks.get('tasks') or 0
    for key, name in (('pid_max', 'kernel.pid_max'), ('threads_max', 'kernel.threads-max')):
        limit = tasks.get(key)
        if limit is not None and used + need + TASKS_RESERVE > limit:
            problems.append('processes: %s is %d with %d tasks in use, the containers need about %d (%d each) and %d '
                            'stay for the host' % (name, limit, used, need, TASKS_PER_CONTAINER, TASKS_RESERVE))
    limit = tasks.get('cgroup_pids_max')
    if limit is not None and (tasks.get('cgroup_pids_current') or 0) + need > limit:
        problems.append('processes: pids.max of the engine\'s cgroup %s is %d with %d in use, the containers need '
                        'about %d' % (tasks.get('cgroup'), limit, tasks.get('cgroup_pids_current') or 0, need))
    return problems


def describe(values: list[float]) -> dict[str, t.Any] | None:
    """min/median/max/mean/total plus first-versus-rest of a series."""
    clean = [v for v in values if v is not None]
    if not clean:
        return None
    rest = clean[1:]
    rest_median = statistics.median(rest) if rest else None
    return {
        'min': min(clean), 'median': statistics.median(clean), 'max': max(clean),
        'mean': sum(clean) / len(clean), 'total': sum(clean), 'first': clean[0],
        'rest_median': rest_median,
        'first_extra': (clean[0] - rest_median) if rest_median is not None else None,
    }


def growth(before: dict[str, t.Any], after: dict[str, t.Any], key: str) -> int | None:
    if before.get(key) is None or after.get(key) is None:
        return None
    return after[key] - before[key]


def summarize(operations: list[dict[str, t.Any]]) -> dict[str, dict[str, t.Any]]:
    """Per scenario: seconds and per-operation growth of the filesystem and
    of the engine's data and metadata counters."""
    out: dict[str, dict[str, t.Any]] = {}
    for name in SCENARIOS:
        ops = [op for op in operations if op['scenario'] == name]
        if not ops:
            continue
        out[name] = {
            'count': len(ops),
            'seconds': describe([op['seconds'] for op in ops]),
            'fs_growth': describe([op['fs_growth'] for op in ops]),
            'data_growth': describe([op.get('data_growth') for op in ops]),
            'metadata_growth': describe([op.get('metadata_growth') for op in ops]),
        }
    return out


def memory_summary(before: dict[str, t.Any], after: dict[str, t.Any], count: int) -> dict[str, t.Any]:
    """What the detached phase cost in memory, total and per container."""
    def delta(key: str, sign: int = 1) -> int | None:
        if before.get(key) is None or after.get(key) is None:
            return None
        return sign * (after[key] - before[key])

    drop = delta('mem_available', -1)
    engine = None
    if after.get('dockerd_rss') is not None:
        engine = sum(after.get(k) or 0 for k in ('dockerd_rss', 'containerd_rss', 'shims_rss'))
    return {
        'before': before, 'after': after,
        'mem_available_drop': drop,
        'mem_available_drop_per_container': (drop / count) if (drop is not None and count) else None,
        'dockerd_rss_growth': delta('dockerd_rss'),
        'containerd_rss_growth': delta('containerd_rss'),
        'shims_rss': after.get('shims_rss'),
        'engine_rss_after': engine,
        'shims_rss_per_container': (after['shims_rss'] / count) if (after.get('shims_rss') is not None and count) else None,
    }


def parse_btrfs_df(text: str) -> dict[str, int]:
    """``btrfs --format json filesystem df PATH`` -> data/metadata/system used
    and total (logical bytes; DUP metadata takes twice that on disk)."""
    data = json.loads(text)
    out: dict[str, int] = {}
    for entry in data.get('filesystem-df') or []:
        kind = str(entry.get('bg-type', '')).lower()
        if kind not in ('data', 'metadata', 'system'):
            continue
        out[kind + '_used'] = out.get(kind + '_used', 0) + int(entry.get('used', 0))
        out[kind + '_total'] = out.get(kind + '_total', 0) + int(entry.get('total', 0))
        out[kind + '_profile'] = entry.get('bg-profile')  # type: ignore[assignment]
    if 'data_used' not in out:
        raise HostprepError('btrfs filesystem df reported no Data block group')
    return out


DM_KEYS = {
    'Data Space Used': 'data_used', 'Data Space Total': 'data_total',
    'Metadata Space Used': 'metadata_used', 'Metadata Space Total': 'metadata_total',
}


def parse_driver_status(pairs: list[list[str]] | None) -> dict[str, t.Any]:
    """``info()['DriverStatus']`` ([[key, value], ...]) -> dict; the
    devicemapper space counters also as bytes (``*_used``/``*_total``)."""
    status = {str(k): str(v) for k, v in (pairs or []) if k is not None}
    out: dict[str, t.Any] = {'raw': status}
    for key, name in DM_KEYS.items():
        if key in status:
            out[name] = parse_engine_size(status[key])
    return out


def busybox_tar(busybox: str, applets: t.Iterable[str] = APPLETS) -> bytes:
    """The root filesystem ``docker import`` gets from ``tar -c bin``: the
    static busybox as bin/busybox and one symlink per applet."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w') as tar:
        info = tarfile.TarInfo('bin')
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
        tar.add(busybox, arcname='bin/busybox')
        for applet in applets:
            link = tarfile.TarInfo('bin/' + applet)
            link.type = tarfile.SYMTYPE
            link.linkname = 'busybox'
            tar.addfile(link)
    return buf.getvalue()


_ELF_PT_INTERP = 3


def elf_is_static(head: bytes) -> bool | None:
    """Whether an ELF image has no program interpreter (statically linked).
    None when it is not an ELF file or the header is cut short."""
    if len(head) < 64 or head[:4] != b'\x7fELF':
        return None
    is64 = head[4] == 2
    endian = '<' if head[5] == 1 else '>'
    if is64:
        phoff, = struct.unpack_from(endian + 'Q', head, 32)
        phentsize, phnum = struct.unpack_from(endian + 'HH', head, 54)
    else:
        phoff, = struct.unpack_from(endian + 'I', head, 28)
        phentsize, phnum = struct.unpack_from(endian + 'HH', head, 42)
    for index in range(phnum):
        offset = phoff + index * phentsize
        if offset + 4 > len(head):
            return None
        p_type, = struct.unpack_from(endian + 'I', head, offset)
        if p_type == _ELF_PT_INTERP:
            return False
    return True


def owner_id(proc: str = '/proc') -> str:
    """boot id / pid / start time of this process: tells a leftover of a dead
    run from the objects of a run that is still going."""
    return '%s/%d/%s' % (_boot_id(proc), os.getpid(), _start_time(os.getpid(), proc))


def _boot_id(proc: str) -> str:
    try:
        with open(os.path.join(proc, 'sys/kernel/random/boot_id'), encoding='ascii') as handle:
            return handle.read().strip()
    except OSError:
        return 'unknown'


def _start_time(pid: int, proc: str) -> str:
    try:
        with open(os.path.join(proc, str(pid), 'stat'), encoding='ascii', errors='replace') as handle:
            return handle.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return '?'


def owner_alive(owner: str | None, proc: str = '/proc') -> bool:
    """Whether the process named by an owner label still runs on this boot."""
    if not owner:
        return False
    parts = owner.split('/')
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    boot, pid, start = parts
    if boot != _boot_id(proc) or int(pid) == os.getpid():
        return False
    return _start_time(int(pid), proc) == start


def fs_usage(path: str) -> dict[str, int]:
    """statvfs of the filesystem under path, in bytes (used as df shows it)."""
    st = os.statvfs(path)
    return {'size': st.f_blocks * st.f_frsize, 'used': (st.f_blocks - st.f_bfree) * st.f_frsize,
            'free': st.f_bavail * st.f_frsize}


def sync_filesystem(path: str) -> None:
    """syncfs(2) the filesystem under path (only that one, not the whole
    host, as sync(1) would); sync(2) where syncfs is missing."""
    libc_name = ctypes.util.find_library('c') or 'libc.so.6'
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def unix_socket_path(docker_host: str) -> str | None:
    if docker_host.startswith('unix://'):
        return docker_host[len('unix://'):]
    if docker_host.startswith('/'):
        return docker_host
    return None


# ---- signals ----------------------------------------------------------------

class Interrupted(HostprepError):
    """The run got SIGTERM/SIGHUP/SIGINT; cleanup still runs."""


class _SignalGuard:
    """Turn SIGTERM and SIGHUP into an exception so ``finally`` cleans up."""

    SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)

    def __init__(self) -> None:
        self._old: dict[int, t.Any] = {}

    def _handler(self, signum: int, dummy_frame: t.Any) -> None:
        raise Interrupted('the benchmark was interrupted by %s' % signal.Signals(signum).name)

    def __enter__(self) -> '_SignalGuard':
        for sig in self.SIGNALS:
            self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: t.Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def hold(self) -> None:
        """Ignore further signals while cleaning up."""
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


# ---- the run ------------------------------------------------------------------

class Benchmark:
    """One benchmark run against one engine.

    ``client`` is a ``docker.APIClient``; ``run_cmd`` runs argument lists
    (``_common.run`` bound to the module).
    """

    def __init__(self, client: t.Any, params: dict[str, t.Any], run_cmd: t.Callable[[list[str]], tuple[int, str, str]],
                 btrfs: str | None = None, clock: t.Callable[[], float] = time.monotonic,
                 lvm_run: t.Any = None) -> None:
        self.client = client
        # an AnsibleModule (or a runner) for _lvm, which finds lvs in sbin itself
        self.lvm_run = lvm_run
        self.params = params
        self.run_cmd = run_cmd
        self.btrfs = btrfs
        self.clock = clock
        self.run_id = 'hostprep-cow-%s' % uuid.uuid4().hex[:10]
        self.owner = owner_id()
        self.labels = {LABEL: self.run_id, OWNER_LABEL: self.owner}
        self.count = params['count']
        self.write_size = params['write_size_bytes']
        self.socket = unix_socket_path(params['docker_host'])
        self.measure_seconds = 0.0
        self.operation_seconds = 0.0
        self.operations: list[dict[str, t.Any]] = []
        self.oneshot_ids: list[str] = []
        self.commit_ids: list[str] = []
        self.detached_ids: list[str] = []
        self.image: dict[str, t.Any] = {}
        self.counters = 'none'
        self.warnings: list[str] = []
        self.info: dict[str, t.Any] = {}
        self.driver: str | None = None
        self.driver_status: dict[str, t.Any] = {}
        self.data_root = ''
        self.mount: dict[str, t.Any] = {}

    # -- engine facts and checks --

    def engine(self) -> dict[str, t.Any]:
        try:
            version = self.client.version()
            info = self.client.info()
        except Exception as exc:  # pylint: disable=broad-except
            raise HostprepError('the Docker engine at %s does not answer (%s); start dockerd or point docker_host '
                                'at its socket' % (self.params['docker_host'], exc)) from exc
        self.info = info
        self.driver = info.get('Driver')
        self.driver_status = parse_driver_status(info.get('DriverStatus'))
        data_root = self.params.get('data_root') or info.get('DockerRootDir')
        if not data_root or not os.path.isdir(data_root):
            raise HostprepError('data_root %s is not a directory on this host; the engine at %s may not be local: '
                                'set data_root to the directory (on the measured filesystem) that holds its data'
                                % (data_root, self.params['docker_host']))
        self.check_data_root(data_root, info.get('DockerRootDir'))
        self.data_root = data_root
        return {'version': version.get('Version'), 'api_version': version.get('ApiVersion'),
                'driver': self.driver, 'driver_status': self.driver_status['raw'],
                'docker_root_dir': info.get('DockerRootDir'), 'backing_filesystem':
                    self.driver_status['raw'].get('Backing Filesystem')}

    def check_data_root(self, data_root: str, engine_root: str | None) -> None:
        """A data_root given for a local engine must be on the filesystem of
        the engine's own data root: another one would be measured while the
        engine writes elsewhere."""
        if not self.socket or not engine_root or not os.path.isdir(engine_root):
            return
        if os.stat(data_root).st_dev != os.stat(engine_root).st_dev:
            raise HostprepError('data_root %s is not on the filesystem of the engine\'s data root %s (the engine at %s '
                                'writes there, so %s would measure nothing); leave data_root unset or give a '
                                'directory on that filesystem' % (data_root, engine_root, self.params['docker_host'],
                                                                  data_root))

    def filesystem(self, mount: dict[str, t.Any]) -> dict[str, t.Any]:
        self.mount = mount
        usage = fs_usage(self.data_root)
        return {'path': self.data_root, 'fstype': mount.get('fstype'), 'source': mount.get('source'),
                'target': mount.get('target'), 'size': usage['size'], 'used': usage['used'], 'free': usage['free']}

    def list_labelled(self) -> tuple[list[dict[str, t.Any]], list[dict[str, t.Any]]]:
        containers = self.client.containers(all=True, filters={'label': LABEL})
        images = self.client.images(all=True, filters={'label': LABEL})
        return containers, images

    def leftovers(self) -> dict[str, t.Any]:
        """Objects of earlier runs; fails when their run is still going."""
        containers, images = self.list_labelled()
        live = set()
        for obj in containers + images:
            labels = obj.get('Labels') or {}
            if labels.get(LABEL) != self.run_id and owner_alive(labels.get(OWNER_LABEL)):
                live.add('%s (owner %s)' % (labels.get(LABEL), labels.get(OWNER_LABEL)))
        if live:
            raise HostprepError('another benchmark run is using this engine now: %s; wait until it ends '
                                '(its objects carry the label %s)' % (', '.join(sorted(live)), LABEL))
        runs = sorted({(obj.get('Labels') or {}).get(LABEL) for obj in containers + images} - {None})
        return {'containers': containers, 'images': images, 'runs': runs}

    def remove(self, containers: list[dict[str, t.Any]], images: list[dict[str, t.Any]]) -> dict[str, t.Any]:
        """Remove containers (forced, with their anonymous volumes), then
        images, children before parents (a parent with children cannot go)."""
        removed = {'containers': 0, 'images': 0, 'errors': []}
        for cont in containers:
            try:
                self.client.remove_container(cont['Id'], v=True, force=True)
                removed['containers'] += 1
            except Exception as exc:  # pylint: disable=broad-except
                if _not_found(exc):
                    continue
                removed['errors'].append('container %s: %s' % (cont['Id'][:12], exc))
        pending = sorted(images, key=lambda img: img.get('Created', 0), reverse=True)
        for dummy in range(len(pending) + 1):
            if not pending:
                break
            left = []
            for img in pending:
                try:
                    self.client.remove_image(img['Id'], force=True, noprune=False)
                    removed['images'] += 1
                except Exception as exc:  # pylint: disable=broad-except
                    if _not_found(exc):
                        continue
                    left.append((img, exc))
            if len(left) == len(pending):
                removed['errors'].extend('image %s: %s' % (img['Id'][7:19], exc) for img, exc in left)
                break
            pending = [img for img, dummy_exc in left]
        return removed

    def remove_leftovers(self, changes: Changes | None = None) -> dict[str, t.Any]:
        found = self.leftovers()
        result = self.remove(found['containers'], found['images'])
        if changes is not None and result['containers'] + result['images']:
            changes.made('removed %d container(s) and %d image(s) left by earlier runs (%s)'
                         % (result['containers'], result['images'], ', '.join(found['runs'])))
        if result['errors']:
            raise HostprepError('could not remove the leftovers of earlier runs (%s): %s; remove them by hand '
                                '(docker rm -f / docker rmi of objects labelled %s)'
                                % (', '.join(found['runs']), '; '.join(result['errors']), LABEL))
        return {'containers': result['containers'], 'images': result['images'],
                'total': result['containers'] + result['images'], 'runs': found['runs']}

    def cleanup(self) -> dict[str, t.Any]:
        containers = self.client.containers(all=True, filters={'label': '%s=%s' % (LABEL, self.run_id)})
        images = self.client.images(all=True, filters={'label': '%s=%s' % (LABEL, self.run_id)})
        return self.remove(containers, images)

    # -- image --

    def image_size_hint(self) -> int:
        image = self.params.get('image')
        if image:
            return int(self.inspect_image(image).get('Size') or 0)
        return os.path.getsize(self.busybox_path())

    def inspect_image(self, image: str) -> dict[str, t.Any]:
        try:
            return self.client.inspect_image(image)
        except Exception as exc:  # pylint: disable=broad-except
            if _not_found(exc):
                raise HostprepError('image %s is not on the engine at %s; load it first (docker load / import) or '
                                    'leave image unset to import the host\'s static busybox'
                                    % (image, self.params['docker_host'])) from exc
            raise

    def busybox_path(self) -> str:
        path = self.params['busybox']
        if not os.path.isfile(path):
            raise HostprepError('cannot import an image: %s does not exist and no image was given; install '
                                'busybox-static (it provides %s) or pass image (a local image with dd and sleep)'
                                % (path, DEFAULT_BUSYBOX))
        with open(path, 'rb') as handle:
            head = handle.read(4096)
        static = elf_is_static(head)
        if static is None:
            raise HostprepError('cannot import an image: %s is not an ELF executable; point busybox at the '
                                'static busybox binary or pass image' % path)
        if not static:
            raise HostprepError('cannot import an image: %s is dynamically linked and would not run in an empty '
                                'image; install busybox-static or pass image' % path)
        return path

    def prepare_image(self) -> dict[str, t.Any]:
        image = self.params.get('image')
        if image:
            data = self.inspect_image(image)
            self.image = {'name': image, 'id': data['Id'], 'size': data.get('Size'), 'imported': False}
            return self.image
        path = self.busybox_path()
        repository = 'hostprep-cow-busybox'
        changes = ['LABEL %s=%s' % (key, value) for key, value in self.labels.items()]
        try:
            self.client.import_image_from_data(busybox_tar(path), repository=repository, tag=self.run_id,
                                               changes=changes)
        except Exception as exc:  # pylint: disable=broad-except
            raise HostprepError('cannot import an image from %s: %s' % (path, exc)) from exc
        name = '%s:%s' % (repository, self.run_id)
        data = self.inspect_image(name)
        self.image = {'name': name, 'id': data['Id'], 'size': data.get('Size'), 'imported': True, 'busybox': path}
        return self.image

    # -- measurements --

    def measure(self, containers: t.Iterable[str] = (), memory: bool = False) -> dict[str, t.Any]:
        start = self.clock()
        sync_filesystem(self.data_root)
        point: dict[str, t.Any] = {'fs_used': fs_usage(self.data_root)['used']}
        counters = self.engine_counters()
        point.update(counters)
        if memory:
            point['memory'] = _memory.snapshot(self.socket, containers)
        self.measure_seconds += self.clock() - start
        return point

    def engine_counters(self) -> dict[str, t.Any]:
        """data_used/metadata_used from the backend's own accounting."""
        if self.params.get('thinpool'):
            vg, dummy, lv = self.params['thinpool'].partition('/')
            usage = _lvm.thinpool_usage(self.lvm_run or self.run_cmd, vg, lv)
            size = usage.get('size') or 0
            self.counters = 'thinpool'
            return {'data_used': int(size * (usage.get('data_percent') or 0) / 100),
                    'data_percent': usage.get('data_percent'), 'metadata_percent': usage.get('metadata_percent'),
                    'metadata_used': None}
        if self.driver == 'devicemapper':
            status = parse_driver_status(self.client.info().get('DriverStatus'))
            self.counters = 'devicemapper'
            return {'data_used': status.get('data_used'), 'metadata_used': status.get('metadata_used')}
        if self.btrfs and (self.mount or {}).get('fstype') == 'btrfs':
            dummy_rc, out, dummy_err = self.run_cmd([self.btrfs, '--format', 'json', 'filesystem', 'df', self.data_root])
            df = parse_btrfs_df(out)
            self.counters = 'btrfs'
            return {'data_used': df['data_used'], 'metadata_used': df.get('metadata_used')}
        return {}

    def record(self, scenario: str, index: int, name: str, seconds: float, before: dict[str, t.Any],
               after: dict[str, t.Any], measured: bool) -> None:
        self.operation_seconds += seconds
        if not measured:
            return
        op = {'scenario': scenario, 'index': index, 'name': name, 'seconds': seconds,
              'fs_used': after['fs_used'], 'fs_growth': growth(before, after, 'fs_used'),
              'data_used': after.get('data_used'), 'data_growth': growth(before, after, 'data_used'),
              'metadata_used': after.get('metadata_used'), 'metadata_growth': growth(before, after, 'metadata_used')}
        for key in ('data_percent', 'metadata_percent', 'memory'):
            if key in after:
                op[key] = after[key]
        self.operations.append(op)

    # -- scenarios --

    def name(self, scenario: str, index: int) -> str:
        return '%s-%s-%d' % (self.run_id, scenario.replace('_', '-'), index)

    def host_config(self) -> t.Any:
        return self.client.create_host_config(network_mode=self.params['network_mode'])

    def oneshot(self, measured: bool, last: dict[str, t.Any]) -> dict[str, t.Any]:
        bs, blocks = dd_blocks(self.write_size)
        command = ['dd', 'if=/dev/zero', 'of=/data1', 'bs=%d' % bs, 'count=%d' % blocks]
        for index in range(1, self.count + 1):
            name = self.name('oneshot', index)
            start = self.clock()
            cont = self.client.create_container(self.image['id'], command=command, name=name, labels=self.labels,
                                                host_config=self.host_config())
            self.oneshot_ids.append(cont['Id'])
            self.client.start(cont['Id'])
            status = self.client.wait(cont['Id'])
            seconds = self.clock() - start
            code = status.get('StatusCode') if isinstance(status, dict) else status
            if code != 0:
                logs = self.client.logs(cont['Id'], stdout=True, stderr=True, tail=20)
                raise HostprepError('container %s (%s) exited with status %s: %s; the image needs dd and a writable '
                                    'root filesystem' % (name, ' '.join(command), code, logs.decode('utf-8', 'replace').strip()))
            after = self.measure()
            self.record('oneshot', index, name, seconds, last, after, measured)
            last = after
        return last

    def commit(self, measured: bool, last: dict[str, t.Any]) -> dict[str, t.Any]:
        for index, cont_id in enumerate(self.oneshot_ids, 1):
            name = self.name('commit', index)
            start = self.clock()
            res = self.client.commit(cont_id, repository=name, tag='latest', conf={'Labels': dict(self.labels)})
            seconds = self.clock() - start
            self.commit_ids.append(res['Id'])
            after = self.measure()
            self.record('commit', index, name, seconds, last, after, measured)
            last = after
        return last

    def run_from_commit(self, measured: bool, last: dict[str, t.Any]) -> dict[str, t.Any]:
        command = ['sleep', str(self.params['sleep_seconds'])]
        for index, image_id in enumerate(self.commit_ids, 1):
            name = self.name('run-from-commit', index)
            start = self.clock()
            cont = self.client.create_container(image_id, command=command, name=name, labels=self.labels,
                                                detach=True, host_config=self.host_config())
            self.detached_ids.append(cont['Id'])
            self.client.start(cont['Id'])
            seconds = self.clock() - start
            after = self.measure(self.detached_ids, memory=True)
            self.record('run_from_commit', index, name, seconds, last, after, measured)
            last = after
        return last

    def run_phases(self, phases: list[tuple[str, bool]]) -> dict[str, t.Any]:
        """Run the phases; returns memory figures of the detached phase."""
        last = self.measure()
        memory: dict[str, t.Any] = {}
        for phase, measured in phases:
            if phase == 'run_from_commit':
                before = _memory.snapshot(self.socket, ())
                last = self.run_from_commit(measured, last)
                after = _memory.snapshot(self.socket, self.detached_ids)
                running = sum(1 for cid in self.detached_ids
                              if self.client.inspect_container(cid)['State'].get('Running'))
                memory = memory_summary(before, after, len(self.detached_ids))
                memory['running'] = running
                if running != len(self.detached_ids):
                    self.warnings.append('%d of %d detached containers had stopped when memory was read; raise '
                                         'sleep_seconds' % (len(self.detached_ids) - running, len(self.detached_ids)))
            else:
                last = getattr(self, phase)(measured, last)
        return memory


def _not_found(exc: Exception) -> bool:
    return getattr(getattr(exc, 'response', None), 'status_code', None) == 404


# ---- entry point used by the module ----------------------------------------

def validate_params(params: dict[str, t.Any]) -> dict[str, t.Any]:
    """Check the input before touching the engine; returns normalized params."""
    out = dict(params)
    count = params['count']
    if count is None or count <= 0 or count > COUNT_MAX:
        raise HostprepError('count must be between 1 and %d (got %s): it is the number of containers per scenario'
                            % (COUNT_MAX, count))
    try:
        out['write_size_bytes'] = parse_size(params['write_size'])
    except (ValueError, TypeError) as exc:
        raise HostprepError('write_size: %s' % exc) from exc
    if out['write_size_bytes'] <= 0 or out['write_size_bytes'] > WRITE_SIZE_MAX:
        raise HostprepError('write_size must be between 1 byte and %s (got %r)'
                            % (format_size(WRITE_SIZE_MAX), params['write_size']))
    if params['sleep_seconds'] <= 0 or params['sleep_seconds'] > SLEEP_SECONDS_MAX:
        raise HostprepError('sleep_seconds must be between 1 and %d (got %s): the detached containers must still run '
                            'when memory is read' % (SLEEP_SECONDS_MAX, params['sleep_seconds']))
    if params['timeout'] <= 0 or params['timeout'] > TIMEOUT_MAX:
        raise HostprepError('timeout must be between 1 and %d seconds (got %s)' % (TIMEOUT_MAX, params['timeout']))
    if params.get('image') is not None and not params['image'].strip():
        raise HostprepError('image is empty; name a local image, or leave image unset to import the host\'s static '
                            'busybox')
    if params.get('thinpool') and '/' not in params['thinpool']:
        raise HostprepError('thinpool %s must be VG/POOL (for example docker/thinpool)' % params['thinpool'])
    out['phases'] = needed_phases(params['scenarios'])
    return out


def host_capacity(socket: str | None) -> dict[str, t.Any]:
    """Memory and task limits of the host and of the engine's containerd
    (whose cgroup the shims join), for capacity_problems."""
    engine = _memory.engine_processes(socket) if socket else None
    holder = None
    if engine:
        holder = (engine['containerd'] or engine['dockerd'])[0]
    return {'mem_available': _memory.mem_available(), 'cgroup_memory': _memory.cgroup_memory(holder) if holder else None,
            'tasks': _processes.task_limits(holder)}


def check_capacity(count: int, socket: str | None) -> dict[str, t.Any]:
    """Refuse, before anything is started, a detached phase the host cannot
    hold; returns the facts it checked."""
    facts = host_capacity(socket)
    problems = capacity_problems(count, facts['mem_available'], facts['cgroup_memory'], facts['tasks'])
    if problems:
        raise HostprepError('the %d detached containers of run_from_commit would not fit on this host: %s; lower count '
                            'or leave run_from_commit out of scenarios; nothing was started'
                            % (count, '; '.join(problems)), capacity=facts)
    return facts


def run_benchmark(module: t.Any, client: t.Any, mount_facts: t.Callable[[str], dict[str, t.Any]]) -> dict[str, t.Any]:
    """Validate, check, (in check mode stop), clean leftovers, run, clean up."""
    started = time.monotonic()
    params = validate_params(module.params)
    btrfs = module.get_bin_path('btrfs', required=False)
    bench = Benchmark(client, params, lambda args: run(module, args), btrfs=btrfs, lvm_run=module)
    result: dict[str, t.Any] = {'changed': False, 'run_id': bench.run_id, 'label': '%s=%s' % (LABEL, bench.run_id)}
    result['engine'] = bench.engine()
    result['filesystem'] = bench.filesystem(mount_facts(bench.data_root))
    result['data_root'] = bench.data_root
    phases = params['phases']
    estimate = estimate_required(params['count'], params['write_size_bytes'], len(phases), bench.image_size_hint())
    estimate['free'] = result['filesystem']['free']
    result['plan'] = {'count': params['count'], 'write_size': params['write_size'],
                      'write_size_bytes': params['write_size_bytes'], 'scenarios': [p for p, m in phases if m],
                      'phases': [p for p, dummy in phases], 'sleep_seconds': params['sleep_seconds'],
                      'space': estimate}
    if estimate['free'] < estimate['required']:
        raise HostprepError(
            'the filesystem under %s (%s) has %s free, but the run needs about %s: %d operations x (write_size %s + '
            '%s overhead each); free space there, lower count or write_size, or run fewer scenarios'
            % (bench.data_root, result['filesystem']['fstype'], format_size(estimate['free']),
               format_size(estimate['required']), estimate['operations'], format_size(params['write_size_bytes']),
               format_size(estimate['overhead_per_operation'])),
            plan=result['plan'])
    if 'run_from_commit' in result['plan']['phases'] and bench.socket:
        result['plan']['capacity'] = check_capacity(params['count'], bench.socket)
    found = bench.leftovers()
    if module.check_mode:
        result['leftovers_removed'] = {'containers': 0, 'images': 0, 'total': 0, 'runs': []}
        result['leftovers_found'] = {'containers': len(found['containers']), 'images': len(found['images']),
                                     'total': len(found['containers']) + len(found['images']), 'runs': found['runs']}
        result['check_mode'] = True
        result['msg'] = ('check mode: the benchmark did not run; it would run %s with %d containers each on %s '
                         '(driver %s) and first remove %d leftover object(s) of earlier runs'
                         % (', '.join(result['plan']['phases']), params['count'], bench.data_root,
                            bench.driver, result['leftovers_found']['total']))
        result['changed'] = result['leftovers_found']['total'] > 0
        return result

    changes = changes_of(module)
    result['leftovers_removed'] = bench.remove_leftovers(changes)
    result['changed'] = result['leftovers_removed']['total'] > 0
    failure: HostprepError | None = None
    memory: dict[str, t.Any] = {}
    with _SignalGuard() as guard:
        try:
            result['image'] = bench.prepare_image()
            bench_start = time.monotonic()
            memory = bench.run_phases(phases)
            bench_seconds = time.monotonic() - bench_start
        except HostprepError as exc:
            failure = exc
        except Exception as exc:  # pylint: disable=broad-except
            failure = HostprepError('the benchmark failed: %s' % exc)
        finally:
            guard.hold()
            if params['cleanup']:
                cleanup_start = time.monotonic()
                try:
                    removed = bench.cleanup()
                except Exception as exc:  # pylint: disable=broad-except
                    removed = {'containers': 0, 'images': 0, 'errors': [str(exc)]}
                removed['seconds'] = time.monotonic() - cleanup_start
                result['cleanup'] = removed
                if removed['errors']:
                    result['cleanup']['note'] = ('some objects of run %s were left; the next run removes them '
                                                 '(label %s)' % (bench.run_id, LABEL))
                    result['changed'] = True
                    changes.made('left objects of run %s that could not be removed (label %s)' % (bench.run_id, LABEL))
            else:
                result['cleanup'] = None
                result['changed'] = True
                changes.made('left the containers, commits and image of run %s (cleanup=false)' % bench.run_id)
    result['operations'] = bench.operations
    result['scenarios'] = summarize(bench.operations)
    result['memory'] = memory or None
    result['counters'] = bench.counters
    for warning in bench.warnings:
        module.warn(warning)
    if failure is not None:
        failure.details.update(result)
        raise failure
    ops = bench.operation_seconds
    overhead = bench_seconds - ops - bench.measure_seconds
    result['seconds'] = {
        'total': time.monotonic() - started, 'benchmark': bench_seconds, 'operations': ops,
        'measured_operations': sum(op['seconds'] for op in bench.operations),
        'measurements': bench.measure_seconds, 'overhead': overhead,
        'overhead_percent': 100.0 * overhead / bench_seconds if bench_seconds else None,
    }
    return result
