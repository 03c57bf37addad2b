#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: docker_storage_info
short_description: Report how a Docker host stores images, containers and volumes
version_added: 0.1.0
description:
  - Gathers the storage facts of a Docker host, read-only, with dockerd running or stopped.
  - With the engine running (and O(api=true)), asks it through the Docker SDK for its version, storage driver and
    driver status (for devicemapper the pool, loop-lvm or direct-lvm, data and metadata space, deferred removal and
    deletion), its data root, and the counts and sizes of images, containers and volumes with what is reclaimable.
    The sizes come from one C(df) call, so the cost grows linearly with the number of objects.
  - Always reads what the files say, which is all there is with dockerd stopped (RV(storage.engine.reachable=false)).
    The configured driver (daemon.json, then dockerd's command-line flags, then the one driver directory under the
    data root), the data root's filesystem (type, source, mount options, size, used and free bytes, d_type), the
    image, container and volume counts from the data root's stores, and devicemapper's loopback files.
  - For devicemapper on an LVM thin pool (C(dm.thinpooldev), or a running engine in direct-lvm mode), reports the
    pool's usage from C(lvs --reportformat json).
author:
  - hostprep.container_host maintainers (@hostprep)
extends_documentation_fragment:
  - hostprep.container_host.attributes.info_module
  - hostprep.container_host.attributes.actiongroup_docker_storage
  - hostprep.container_host.docker_host
  - hostprep.container_host.docker_host.sdk
  - hostprep.container_host.dockerd_flags
options:
  data_root:
    description:
      - The engine's data root.
      - By default the running engine's own (C(DockerRootDir)); with the engine stopped or O(api=false),
        C(data-root) of O(daemon_config), else C(--data-root) of dockerd's flags, else C(/var/lib/docker).
    type: path
  daemon_config:
    description:
      - The daemon configuration file to read C(storage-driver), C(storage-opts) and C(data-root) from.
      - A missing file counts as no settings; a file that is not valid JSON gives a warning and is ignored.
    type: path
    default: /etc/docker/daemon.json
  api:
    description:
      - Ask the engine at O(docker_host). An engine that does not answer gives a warning, not a failure, and
        RV(storage.engine.reachable=false).
      - V(false) reports file-level facts only and needs no Docker SDK.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for each answer of the engine. Sizing many objects takes a while; an engine that answers
        but does not size its objects in time gives a warning and file-level counts.
    type: int
    default: 60
attributes:
  platform:
    description: Linux hosts with the Docker engine (C(dockerd)) installed, running or not.
requirements:
  - C(findmnt) (util-linux).
  - With O(api=false) the Docker SDK for Python is not needed.
notes:
  - Sizes in devicemapper's driver status are printed by the engine with four significant digits (C(19.92MB));
    the bytes reported are converted from that and therefore approximate.
  - RV(storage.images.reclaimable) is what C(docker system df) calls reclaimable (the layers no container's image
    holds alone); RV(storage.images.dangling_size) is what C(docker image prune) frees.
  - With the containerd image store (Engine 24 and later, opt-in; default from 29), image layers live under
    C(/var/lib/containerd), not under the data root.
seealso:
  - module: hostprep.container_host.docker_daemon_config
  - name: docker system df
    description: The engine's own disk usage report.
    link: https://docs.docker.com/reference/cli/docker/system/df/
'''

EXAMPLES = r'''
- name: Read the storage facts
  hostprep.container_host.docker_storage_info:
  register: docker_storage

- name: Refuse a driver switch while images exist
  ansible.builtin.assert:
    that: docker_storage.storage.images.count == 0
    fail_msg: "{{ docker_storage.storage.images.count }} images would be lost"

- name: Warn when the thin pool fills up
  ansible.builtin.debug:
    msg: "thin pool {{ docker_storage.storage.thinpool.vg }}/{{ docker_storage.storage.thinpool.lv }} is
      {{ docker_storage.storage.thinpool.data_percent }} % full"
  when:
    - docker_storage.storage.thinpool is not none
    - docker_storage.storage.thinpool.data_percent | float > 80

- name: File-level facts of a data root, engine stopped or not
  hostprep.container_host.docker_storage_info:
    api: false
    data_root: /srv/docker
'''

RETURN = r'''
storage:
  description: The storage facts.
  returned: always
  type: dict
  contains:
    engine:
      description: The engine.
      type: dict
      contains:
        reachable:
          description: Whether the engine answered at O(docker_host); null with O(api=false).
          type: bool
          sample: true
        version:
          description: Engine version (from the API, else from C(dockerd --version)); null when no dockerd is found.
          type: str
          sample: 20.10.24
        api_version:
          description: The API version the engine speaks; null when it did not answer.
          type: str
          sample: "1.41"
        containerd_image_store:
          description: Whether images live in containerd (the driver then names a containerd snapshotter).
          type: bool
          sample: false
    driver:
      description: The storage driver; null when neither the engine nor the files tell.
      type: str
      sample: overlay2
    driver_source:
      description: Where RV(storage.driver) comes from.
      type: str
      choices: [api, daemon_config, flags, data_root]
      sample: api
    driver_status:
      description: The engine's DriverStatus pairs as a dict; null when the engine did not answer.
      type: dict
      sample: {"Backing Filesystem": "extfs", "Supports d_type": "true", "Native Overlay Diff": "true"}
    devicemapper:
      description:
        - devicemapper facts, when the driver is devicemapper (else null).
        - From the driver status with the engine running; from O(daemon_config) and the loopback files otherwise
          (used is the loopback file's allocated bytes, total its apparent size).
      type: dict
      contains:
        pool_name:
          description: The thin pool (C(docker-thinpool), or the loop-lvm pool C(docker-8:1-1234-pool)).
          type: str
        loopback:
          description: Whether the pool sits on loopback files (loop-lvm).
          type: bool
        data_file:
          description: The loopback data file (or its loop device); null in direct-lvm mode.
          type: str
        metadata_file:
          description: The loopback metadata file (or its loop device); null in direct-lvm mode.
          type: str
        data_used:
          description: Data space used, bytes.
          type: int
        data_total:
          description: Data space total, bytes.
          type: int
        data_available:
          description: Data space available, bytes (engine running only).
          type: int
        metadata_used:
          description: Metadata space used, bytes.
          type: int
        metadata_total:
          description: Metadata space total, bytes.
          type: int
        metadata_available:
          description: Metadata space available, bytes (engine running only).
          type: int
        deferred_removal:
          description: Whether deferred device removal is on.
          type: bool
        deferred_deletion:
          description: Whether deferred device deletion is on.
          type: bool
        loopback_files:
          description: The loopback files under the data root, with apparent and allocated bytes.
          type: list
          elements: dict
          sample: [{"path": "/var/lib/docker/devicemapper/devicemapper/data", "apparent_size": 107374182400,
                    "allocated_size": 21495808}]
    data_root:
      description: The data root the facts are about.
      type: str
      sample: /var/lib/docker
    backing_fs:
      description: The filesystem holding the data root (or its nearest existing parent).
      type: dict
      contains:
        fstype:
          description: Filesystem type as the kernel names it.
          type: str
          sample: xfs
        source:
          description: The mounted device.
          type: str
          sample: /dev/mapper/docker-data
        target:
          description: The mount point.
          type: str
          sample: /var/lib/docker
        options:
          description: Mount options.
          type: list
          elements: str
          sample: [rw, relatime, attr2, inode64, prjquota]
        size:
          description: Size in bytes.
          type: int
        used:
          description: Used bytes.
          type: int
        free:
          description: Bytes free for unprivileged writers (as df counts them).
          type: int
        d_type:
          description: Whether the filesystem fills in d_type (overlay2 needs it); null when no entry tells.
          type: bool
    thinpool:
      description: The LVM thin pool devicemapper uses directly, with its usage from C(lvs); else null.
      type: dict
      contains:
        vg:
          description: Volume group.
          type: str
          sample: docker
        lv:
          description: Thin-pool logical volume.
          type: str
          sample: thinpool
        device:
          description: Its device.
          type: str
          sample: /dev/mapper/docker-thinpool
        data_percent:
          description: Data usage in percent.
          type: float
          sample: 2.31
        metadata_percent:
          description: Metadata usage in percent.
          type: float
          sample: 0.15
        size:
          description: Pool size, bytes.
          type: int
    images:
      description: Images. Sizes need the engine; with it stopped they are null and counts come from the image store.
      type: dict
      contains:
        count:
          description: Number of images.
          type: int
        active:
          description: Images some container uses.
          type: int
        size:
          description: Bytes of image layers on disk, shared layers once.
          type: int
        reclaimable:
          description: What C(docker system df) reports as reclaimable for images.
          type: int
        dangling:
          description: Number of dangling images (no tag, no child image).
          type: int
        dangling_size:
          description: Bytes removing the dangling images that no container uses frees.
          type: int
    containers:
      description: Containers.
      type: dict
      contains:
        count:
          description: Number of containers.
          type: int
        running:
          description: Running containers (engine running only).
          type: int
        size:
          description: Bytes of their writable layers.
          type: int
        reclaimable:
          description: Bytes of the writable layers of containers that are not running.
          type: int
    volumes:
      description: Volumes.
      type: dict
      contains:
        count:
          description: Number of volumes.
          type: int
        size:
          description: Bytes in local volumes.
          type: int
        reclaimable:
          description: Bytes in volumes no container uses.
          type: int
  sample:
    engine: {reachable: true, version: 20.10.24, api_version: "1.41", containerd_image_store: false}
    driver: overlay2
    driver_source: api
    driver_status: {"Backing Filesystem": "extfs", "Supports d_type": "true"}
    devicemapper: null
    data_root: /var/lib/docker
    backing_fs: {fstype: ext4, source: /dev/vda1, target: /, options: [rw, relatime], size: 52521566208,
                 used: 10737418240, free: 39093702656, d_type: true}
    thinpool: null
    images: {count: 3, active: 2, size: 1982320, reclaimable: 1982314, dangling: 1, dangling_size: 9}
    containers: {count: 3, running: 1, size: 3, reclaimable: 3}
    volumes: {count: 2, size: 12, reclaimable: 0}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostprep.container_host.plugins.module_utils._common import execute
from ansible_collections.hostprep.container_host.plugins.module_utils._daemon_config import (
    DEFAULT_FLAGS_SOURCES,
)
from ansible_collections.hostprep.container_host.plugins.module_utils._storage_info import (
    DEFAULT_DOCKER_HOST,
    SdkEngine,
    gather,
)
from ansible_collections.hostprep.container_host.plugins.module_utils._docker_client import require_sdk


def main():
    module = AnsibleModule(
        argument_spec=dict(
            docker_host=dict(type='str', default=DEFAULT_DOCKER_HOST),
            data_root=dict(type='path'),
            daemon_config=dict(type='path', default='/etc/docker/daemon.json'),
            flags_sources=dict(type='list', elements='path', default=list(DEFAULT_FLAGS_SOURCES)),
            api=dict(type='bool', default=True),
            timeout=dict(type='int', default=60),
        ),
        supports_check_mode=True,
    )
    execute(module, report)


def report(module):
    engine = None
    if module.params['api']:
        require_sdk(module, '; or set api=false to read the files only')
        engine = SdkEngine(module.params['docker_host'], module.params['timeout'])
    storage, warnings = gather(module, engine)
    for warning in warnings:
        module.warn(warning)
    return {'changed': False, 'storage': storage}


if __name__ == '__main__':
    main()
