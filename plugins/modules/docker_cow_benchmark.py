#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: docker_cow_benchmark
short_description: Measure what containers and commits cost on a Docker storage backend
version_added: 0.1.0
description:
  - Runs the classic copy-on-write evaluation of a storage backend through the Docker SDK, with no docker CLI.
    V(oneshot) starts O(count) containers, each writing O(write_size) bytes with C(dd) and exiting;
    V(commit) commits each of them to a new image; V(run_from_commit) starts O(count) detached containers
    from those images, running C(sleep).
  - "After every operation it syncs the filesystem under O(data_root) and records: the operation's wall time
    (monotonic clock), the bytes used on that filesystem (statvfs, as C(df) shows them), and the backend's own
    storage counters: btrfs data and metadata allocation (C(btrfs --format json filesystem df)) when the data root
    is on btrfs, devicemapper C(Data Space Used) and C(Metadata Space Used) from the engine, or the data and
    metadata percent of the LVM thin pool named by O(thinpool)."
  - During the detached phase it also records memory, C(MemAvailable) and the resident memory of dockerd,
    its containerd and the shims of the benchmark's containers, after every start.
  - Returns every operation, and per scenario the min, median and max, the first operation against the median of
    the rest, and the growth of disk usage, data and metadata per operation.
  - Everything it creates (image, containers, commits) carries the label C(io.hostprep.cow-benchmark) with the
    run's id and is removed at the end, also when the run fails or gets SIGTERM. Objects of an earlier run that was
    interrupted are found by that label and removed first; the module reports how many. It fails instead when the
    run that made them is still going on this host.
  - When O(image) is not given it imports a minimal image from the host's static busybox (a tar of C(bin/busybox)
    and applet links, as C(docker import) of such a tar does), so an offline host needs no registry.
  - Refuses to run, with nothing created, when the engine does not answer, when no image can be had, and when the
    filesystem under O(data_root) has less free space than the run needs, estimated as O(count) x (O(write_size)
    + overhead) x phases, with overhead 4 MiB + twice the image size.
  - Before anything is started, for an engine on a local unix socket and with V(run_from_commit), checks that the
    O(count) detached containers fit on the host, and refuses naming what is short. Each counts as 16 MiB of memory
    and 16 tasks (its containerd shim had 12-13 threads and 12.9 MiB resident, and MemAvailable fell by 4.6 MiB per
    container, measured with 40 busybox containers on Engine 20.10.24); C(MemAvailable) must hold them plus 512 MiB
    for the host, the memory cgroup of the engine's containerd (where the shims run) its limit, the tasks in use
    plus theirs and 512 more must stay under C(kernel.pid_max) and C(kernel.threads-max), and C(pids.max) of the
    engine's cgroup must take them.
author:
  - hostprep.container_host maintainers (@hostprep)
options:
  image:
    description:
      - A local image to start the containers from; it needs C(dd) and C(sleep) on its E(PATH).
      - It is not pulled and not removed. When not given, an image is imported from O(busybox) and removed at the end.
    type: str
  busybox:
    description:
      - The statically linked busybox to import the image from when O(image) is not given
        (Debian and Ubuntu package C(busybox-static)).
    type: path
    default: /bin/busybox
  count:
    description: Containers (and commits) per scenario, from V(1) to V(1000).
    type: int
    default: 10
  write_size:
    description:
      - Bytes each V(oneshot) container writes to C(/data1), as a number or with a binary suffix (V(64K), V(1M), V(1.5G)).
      - From one byte to V(1G).
    type: str
    default: 64K
  sleep_seconds:
    description:
      - How long the V(run_from_commit) containers sleep. They are removed at the end of the run anyway; the time
        only needs to outlast the phase. From V(1) to V(86400).
    type: int
    default: 180
  scenarios:
    description:
      - The scenarios to measure. A later scenario needs the earlier ones (V(commit) commits the V(oneshot)
        containers); those then run without being measured.
    type: list
    elements: str
    choices: [oneshot, commit, run_from_commit]
    default: [oneshot, commit, run_from_commit]
  data_root:
    description:
      - A directory on the filesystem to measure. Default is the engine's C(DockerRootDir).
      - Must exist on this host; set it when the engine is reached over TCP.
      - For an engine on a local unix socket it must be on the filesystem of the engine's own data root; another
        directory is refused, since the engine writes elsewhere.
    type: path
  thinpool:
    description:
      - An LVM thin pool, as V(VG/POOL), whose data and metadata percent are read after every operation
        (for C(devicemapper) with C(dm.thinpooldev), or a data root on a thin LV).
    type: str
  network_mode:
    description:
      - Network of the benchmark containers. V(none) keeps network set-up out of the storage measurement.
    type: str
    default: none
  cleanup:
    description:
      - Remove everything the run created at the end. With V(false) the containers, commits and imported image stay
        (for inspection); the next run removes them as leftovers.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for one API call of the engine, from V(1) to V(3600).
    type: int
    default: 120
extends_documentation_fragment:
  - hostprep.container_host.attributes
  - hostprep.container_host.attributes.actiongroup_docker_storage_and_validate
  - hostprep.container_host.docker_host
  - hostprep.container_host.docker_host.sdk
attributes:
  check_mode:
    description:
      - Runs nothing; checks the engine, the input and the free space, counts leftovers of earlier runs and says
        what it would do.
  diff_mode:
    support: none
    description: The run leaves nothing behind to show a difference of.
  idempotent:
    support: none
    description: Every run measures anew; it reports a change only when it removed leftovers or left its objects.
  platform:
    description: Linux hosts with a Docker engine.
requirements:
  - C(btrfs) (btrfs-progs) for btrfs allocation figures
notes:
  - Memory of the engine's processes is read only when O(docker_host) is a unix socket on this host.
  - Times include what the engine does for each operation, not the start of a docker CLI process, which the classic
    shell loop also measured.
  - Run it on an otherwise idle engine; other containers starting at the same time change the disk and memory figures.
seealso:
  - name: Copy-on-write benchmark guide
    description: Each metric and how to read the fleet report of role C(hostprep.container_host.validate).
    link: https://github.com/hostprep/container_host/blob/main/docs/validate.md
'''

EXAMPLES = r'''
- name: Measure the storage backend with the classic procedure
  hostprep.container_host.docker_cow_benchmark:
  register: cow

- name: Show start and commit times
  ansible.builtin.debug:
    msg: >-
      start {{ cow.scenarios.oneshot.seconds.median | round(2) }} s,
      commit {{ cow.scenarios.commit.seconds.median | round(2) }} s,
      {{ (cow.scenarios.oneshot.fs_growth.median / 1024) | round(0) }} KiB per container

- name: A quick run of the oneshot scenario only, with a local image
  hostprep.container_host.docker_cow_benchmark:
    image: registry.example.com/tools/busybox:1.36
    count: 3
    write_size: 1M
    scenarios: [oneshot]

- name: devicemapper on an LVM thin pool
  hostprep.container_host.docker_cow_benchmark:
    thinpool: docker/thinpool

# The benchmark runs for minutes. With async and poll the task survives an SSH connection that drops or times
# out meanwhile; Ansible checks every 15 seconds and gives up after 30 minutes.
- name: Measure in the background, polled
  hostprep.container_host.docker_cow_benchmark:
  async: 1800
  poll: 15
  register: cow

# Or start it on every host at once and show progress while waiting (poll 0, then async_status).
- name: Start the benchmark on every host
  hostprep.container_host.docker_cow_benchmark:
  async: 1800
  poll: 0
  register: cow_job

- name: Wait for the benchmark on every host
  ansible.builtin.async_status:
    jid: "{{ cow_job.ansible_job_id }}"
  register: cow
  until: cow.finished
  retries: 120
  delay: 15
'''

RETURN = r'''
run_id:
  description: Id of this run; the value of the C(io.hostprep.cow-benchmark) label on everything it created.
  returned: always
  type: str
  sample: hostprep-cow-3f2a9c1b7e
label:
  description: The label, as C(key=value), that marks this run's objects.
  returned: always
  type: str
  sample: io.hostprep.cow-benchmark=hostprep-cow-3f2a9c1b7e
engine:
  description: The engine measured.
  returned: success
  type: dict
  sample: {"version": "20.10.24+dfsg1", "api_version": "1.41", "driver": "btrfs", "docker_root_dir": "/var/lib/docker",
           "backing_filesystem": null, "driver_status": {"Build Version": "Btrfs v6.2", "Library Version": "102"}}
filesystem:
  description: The filesystem under O(data_root) before the run (bytes).
  returned: success
  type: dict
  sample: {"path": "/var/lib/docker", "fstype": "btrfs", "source": "/dev/sdb", "target": "/var/lib/docker",
           "size": 10737418240, "used": 1048576, "free": 10633609216}
data_root:
  description: The directory measured.
  returned: success
  type: str
  sample: /var/lib/docker
plan:
  description:
    - What the run does, and the space estimate (C(space.required), C(space.free), C(space.per_operation), bytes).
    - C(capacity), with V(run_from_commit) on a local engine, the memory and task figures checked (C(mem_available),
      C(cgroup_memory), C(tasks) with C(pid_max), C(threads_max), C(cgroup_pids_max)).
  returned: success
  type: dict
  sample: {"count": 10, "write_size": "64K", "write_size_bytes": 65536, "scenarios": ["oneshot", "commit", "run_from_commit"],
           "phases": ["oneshot", "commit", "run_from_commit"], "sleep_seconds": 180,
           "space": {"per_operation": 8454144, "overhead_per_operation": 8388608, "operations": 30, "required": 253624320,
                     "free": 10633609216}}
image:
  description: The image the containers started from; C(imported) tells whether the run imported (and removed) it.
  returned: when the run started
  type: dict
  sample: {"name": "hostprep-cow-busybox:hostprep-cow-3f2a9c1b7e", "id": "sha256:0d5c...", "size": 1982256,
           "imported": true, "busybox": "/bin/busybox"}
leftovers_removed:
  description: Objects of earlier interrupted runs found by label and removed before this run.
  returned: success
  type: dict
  sample: {"containers": 4, "images": 3, "total": 7, "runs": ["hostprep-cow-0a1b2c3d4e"]}
leftovers_found:
  description: In check mode, the leftovers a real run would remove.
  returned: check mode
  type: dict
  sample: {"containers": 0, "images": 0, "total": 0, "runs": []}
operations:
  description:
    - Every measured operation in order. C(seconds) is its wall time; C(fs_used) the bytes used on the filesystem
      after it (after a sync), C(fs_growth) the change since the operation before; C(data_used)/C(data_growth) and
      C(metadata_used)/C(metadata_growth) the same from the backend's own counters (null when it has none);
      V(run_from_commit) operations also carry C(memory).
  returned: success
  type: list
  elements: dict
  sample: [{"scenario": "oneshot", "index": 1, "name": "hostprep-cow-3f2a9c1b7e-oneshot-1", "seconds": 0.61,
            "fs_used": 27197440, "fs_growth": 409600, "data_used": 2490368, "data_growth": 131072,
            "metadata_used": 393216, "metadata_growth": 65536}]
scenarios:
  description:
    - Per measured scenario, C(count) and for C(seconds), C(fs_growth), C(data_growth) and C(metadata_growth) the
      C(min), C(median), C(max), C(mean), C(total), C(first), C(rest_median) (median of all but the first) and
      C(first_extra) (first minus rest_median). Growth values are bytes; null where the backend has no counter.
  returned: success
  type: dict
  sample: {"oneshot": {"count": 10, "seconds": {"min": 0.52, "median": 0.58, "max": 1.41, "mean": 0.66, "total": 6.6,
           "first": 1.41, "rest_median": 0.57, "first_extra": 0.84}, "fs_growth": {"median": 262144}}}
memory:
  description:
    - Memory around the V(run_from_commit) phase (bytes), C(before) and C(after) snapshots (C(mem_available),
      C(dockerd_rss), C(containerd_rss), C(shims_rss), C(shim_count)), C(mem_available_drop) and per container,
      C(dockerd_rss_growth), C(containerd_rss_growth), C(shims_rss), C(shims_rss_per_container), and C(running),
      the detached containers still running when it was read. Process figures are null for a remote engine.
  returned: when V(run_from_commit) ran
  type: dict
  sample: {"mem_available_drop": 31457280, "mem_available_drop_per_container": 3145728, "shims_rss": 41943040,
           "running": 10}
counters:
  description: Where C(data_used) and C(metadata_used) come from, V(btrfs), V(devicemapper), V(thinpool) or V(none).
  returned: success
  type: str
  sample: btrfs
cleanup:
  description: What the end of the run removed (C(containers), C(images), C(seconds), C(errors)); null with O(cleanup=false).
  returned: when the run started
  type: dict
  sample: {"containers": 20, "images": 11, "errors": [], "seconds": 2.1}
seconds:
  description:
    - C(total) wall time of the module; C(benchmark) the scenarios alone; C(operations) the sum of all operation
      times (unmeasured prerequisite phases included) and C(measured_operations) of the reported ones;
      C(measurements) the time spent syncing and reading counters; C(overhead) = benchmark - operations - measurements,
      the module's own cost, and C(overhead_percent) of the benchmark time.
  returned: success
  type: dict
  sample: {"total": 31.2, "benchmark": 27.9, "operations": 24.1, "measured_operations": 24.1, "measurements": 3.5,
           "overhead": 0.3, "overhead_percent": 1.1}
check_mode:
  description: True when the module ran in check mode and measured nothing.
  returned: check mode
  type: bool
  sample: true
changes_made:
  description:
    - On failure, what the run had changed (leftovers of earlier runs it removed, objects it could not remove or
      left with O(cleanup=false)); C(changed) is then true.
  returned: failure
  type: list
  elements: str
  sample: ["removed 4 container(s) and 3 image(s) left by earlier runs (hostprep-cow-0a1b2c3d4e)"]
msg:
  description: In check mode, what a real run would do.
  returned: check mode
  type: str
  sample: "check mode: the benchmark did not run; it would run oneshot, commit, run_from_commit with 10 containers each"
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostprep.container_host.plugins.module_utils._common import execute
from ansible_collections.hostprep.container_host.plugins.module_utils._docker_client import engine_client, require_sdk
from ansible_collections.hostprep.container_host.plugins.module_utils._engine import mount_facts
from ansible_collections.hostprep.container_host.plugins.module_utils._cow_benchmark import (
    run_benchmark,
    validate_params,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            docker_host=dict(type='str', default='unix:///var/run/docker.sock'),
            image=dict(type='str'),
            busybox=dict(type='path', default='/bin/busybox'),
            count=dict(type='int', default=10),
            write_size=dict(type='str', default='64K'),
            sleep_seconds=dict(type='int', default=180),
            scenarios=dict(type='list', elements='str', choices=['oneshot', 'commit', 'run_from_commit'],
                           default=['oneshot', 'commit', 'run_from_commit']),
            data_root=dict(type='path'),
            thinpool=dict(type='str'),
            network_mode=dict(type='str', default='none'),
            cleanup=dict(type='bool', default=True),
            timeout=dict(type='int', default=120),
        ),
        supports_check_mode=True,
    )
    require_sdk(module)
    execute(module, benchmark)


def benchmark(module):
    validate_params(module.params)
    with engine_client(module.params['docker_host'], module.params['timeout'], low_level=True) as client:
        return run_benchmark(module, client, lambda path: mount_facts(module, path))


if __name__ == '__main__':
    main()
