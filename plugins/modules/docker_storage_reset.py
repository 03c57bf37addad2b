#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: docker_storage_reset
short_description: Reset a Docker data root, for example a broken devicemapper loopback setup
version_added: 0.1.0
description:
  - The classic devicemapper loopback reset as one checked step. Removes the storage of a Docker data root (images,
    containers, layers, networks, build cache, everything under O(data_root)) while keeping named volumes, and
    recreates the sparse loopback files C(devicemapper/devicemapper/data) and C(devicemapper/devicemapper/metadata)
    that devicemapper in loop-lvm mode uses.
  - Destructive. Runs only with O(force=true); without it the task fails and says what would be removed.
  - dockerd must be stopped. The task refuses while an engine answers on O(docker_host), while a C(dockerd) process
    uses this data root (its C(--data-root) flag or the C(data-root) of its configuration file), or while O(pidfile)
    names a running dockerd.
  - Resets only a data root it can prove is Docker's. O(data_root) must be the data root the engine is configured
    with (C(--data-root) in dockerd's flags from O(flags_sources), else C(data-root) of O(daemon_config) or of the file
    dockerd's C(--config-file) flag names, else V(/var/lib/docker)), the same directory after symbolic links are
    resolved, as dockerd resolves them. Another path is refused, naming the configured one.
  - Every top-level entry of the data root must be one that dockerd makes (Engines 20.10 to 28 make C(buildkit),
    C(containerd), C(containers), C(engine-id), C(image), C(network), C(plugins), C(rootfs), C(runtimes), C(swarm),
    C(tmp), C(trust), C(volumes), the storage drivers' directories, and a few left by older engines). Any other entry
    is refused by name, since it would be deleted with the data root; move it out first. C(lost+found) is kept when the
    data root is the root of its own filesystem.
  - Also refuses a system directory (such as V(/) or V(/var)), a path that is not a directory, a data root with other
    filesystems mounted in what would be removed (one mounted on a kept C(volumes/) stays), a data root whose files
    another mount point shows too (its filesystem mounted twice), and top-level entries that are symbolic links
    (only the link would go). Nothing is changed then.
  - A removal that fails halfway (an immutable file, a read-only filesystem) stops at that entry and fails with
    C(changed=true), naming what was removed (RV(changes_made)), what is left of that entry and what was not
    touched; running again removes what is left.
  - Counts what goes from the data root's own files, so it works with dockerd stopped. Containers are the
    C(containers/*/config.v2.json) files, images the image configs under C(image/<driver>/imagedb/content/sha256),
    volumes the directories under C(volumes/); bytes are the space allocated on disk, hard links counted once.
  - Starting dockerd again is left to the play (see the examples and the C(reset_loopback.yml) playbook).
extends_documentation_fragment:
  - hostprep.container_host.attributes
  - hostprep.container_host.attributes.actiongroup_docker_storage
  - hostprep.container_host.docker_host
  - hostprep.container_host.dockerd_flags
author:
  - hostprep.container_host maintainers (@hostprep)
options:
  data_root:
    description:
      - The Docker data root to reset. It must be the data root the engine is configured with (see the description).
      - A symbolic link is followed; the directory it points to is reset, the link stays.
    type: path
    default: /var/lib/docker
  daemon_config:
    description:
      - The daemon configuration file whose C(data-root) names the engine's data root. A missing file counts as no
        settings; a file that is not valid JSON is refused, since the data root cannot be told then.
      - dockerd's C(--config-file) flag in O(flags_sources) takes precedence, as it does for dockerd.
    type: path
    default: /etc/docker/daemon.json
  force:
    description:
      - Must be V(true) for anything to be removed. Without it the task fails, naming what would be removed.
    type: bool
    default: false
  keep_volumes:
    description:
      - Keep the whole C(volumes/) directory, which holds the named volumes' data and their metadata
        (C(volumes/metadata.db)), so the volumes are there again when dockerd starts.
      - V(false) removes the volumes too.
    type: bool
    default: true
  loopback:
    description:
      - Recreate the sparse files C(devicemapper/devicemapper/data) and C(devicemapper/devicemapper/metadata) of
        O(data_size) and O(metadata_size) bytes, as dockerd's devicemapper driver in loop-lvm mode expects them.
      - The files allocate no disk space until the driver writes to them.
      - With V(false), the data root is left empty apart from what is kept.
    type: bool
    default: true
  data_size:
    description:
      - Apparent size of the sparse data file, with binary units (C(100G) is 100 GiB, like dockerd's
        C(dm.loopdatasize)).
    type: str
    default: 100G
  metadata_size:
    description:
      - Apparent size of the sparse metadata file (like dockerd's C(dm.loopmetadatasize)).
    type: str
    default: 2G
  pidfile:
    description:
      - dockerd's pid file. The task refuses while it names a running dockerd.
    type: path
    default: /var/run/docker.pid
  timeout:
    description:
      - Seconds to wait for an answer on O(docker_host).
    type: int
    default: 5
attributes:
  check_mode:
    description: Reports what would be removed (counts, paths and bytes) and changes nothing.
  diff_mode:
    description: Shows the data root's top-level entries and the loopback files before and after.
  idempotent:
    description: A second run finds only the kept volumes and the sparse files of the right size, and changes nothing.
  platform:
    description: Linux hosts with a Docker data root.
notes:
  - Stop dockerd first, for example with C(systemctl stop docker.socket docker), and start it after the reset.
  - A reset data root of the devicemapper loopback layout allocates almost no space; devicemapper in loop-lvm mode is
    slow and was removed in Engine 25, so prefer C(dm.thinpooldev) on an LVM thin pool
    (M(hostprep.container_host.lvm_thinpool)) or overlay2.
seealso:
  - module: hostprep.container_host.docker_storage_info
  - module: hostprep.container_host.lvm_thinpool
'''

EXAMPLES = r'''
- name: Stop docker
  ansible.builtin.service:
    name: docker
    state: stopped

- name: See what a reset would remove
  hostprep.container_host.docker_storage_reset:
    force: true
  check_mode: true
  register: preview

- name: Reset the devicemapper loopback setup, keep named volumes
  hostprep.container_host.docker_storage_reset:
    force: true
    data_size: 100G
    metadata_size: 2G
  register: reset

- name: Start docker on the fresh data root
  ansible.builtin.service:
    name: docker
    state: started

- name: Wipe an overlay2 data root completely, volumes included, without loopback files
  hostprep.container_host.docker_storage_reset:
    data_root: /srv/docker
    force: true
    keep_volumes: false
    loopback: false
'''

RETURN = r'''
data_root:
  description: The data root as given.
  returned: always
  type: str
  sample: /var/lib/docker
removed:
  description: What the task removed (in check mode, would remove).
  returned: always
  type: dict
  contains:
    containers:
      description: Containers (C(containers/*/config.v2.json)).
      type: int
      sample: 3
    images:
      description: Images (image configs of every driver's image store).
      type: int
      sample: 12
    volumes:
      description: Named and anonymous volumes removed; V(0) with O(keep_volumes=true).
      type: int
      sample: 0
    bytes:
      description: Disk space allocated by what is removed, hard links counted once.
      type: int
      sample: 1073741824
    paths:
      description: The top-level entries of the data root that are removed.
      type: list
      elements: str
      sample: [/var/lib/docker/containers, /var/lib/docker/devicemapper, /var/lib/docker/image]
reclaimed_bytes:
  description: Disk space freed, that is RV(removed.bytes) less what the new loopback files allocate.
  returned: always
  type: int
  sample: 1073741824
loopback_files:
  description: The loopback files (in check mode, the ones that would be made); empty with O(loopback=false).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: File path.
      type: str
      sample: /var/lib/docker/devicemapper/devicemapper/data
    size:
      description: Apparent size in bytes.
      type: int
      sample: 107374182400
    allocated:
      description: Bytes allocated on disk (V(0) for a fresh sparse file).
      type: int
      sample: 0
configured_data_root:
  description: The data root the engine is configured with, and where that is set.
  returned: always
  type: dict
  contains:
    path:
      description: The configured data root.
      type: str
      sample: /var/lib/docker
    source:
      description: Where it is set (a flag and its file and line, daemon.json, or the default).
      type: str
      sample: "the default: neither /etc/docker/daemon.json nor dockerd's flags set one"
changes_made:
  description: On failure, what the run had removed or created before it failed.
  returned: failure
  type: list
  elements: str
  sample: ["removed /var/lib/docker/buildkit", "removed 1200 of the 1480 files and directories of /var/lib/docker/overlay2"]
partly_removed:
  description: On a failed removal, the top-level entry that is partly removed.
  returned: failure
  type: str
  sample: /var/lib/docker/overlay2
not_removed:
  description: On a failed removal, the top-level entries that were not touched.
  returned: failure
  type: list
  elements: str
  sample: [/var/lib/docker/plugins, /var/lib/docker/runtimes]
kept:
  description:
    - Top-level entries of the data root that stay (the volumes, loopback files already in shape, and C(lost+found)
      of a data root that is the root of its filesystem).
  returned: always
  type: list
  elements: str
  sample: [/var/lib/docker/volumes]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostprep.container_host.plugins.module_utils._common import execute
from ansible_collections.hostprep.container_host.plugins.module_utils._daemon_config import DEFAULT_FLAGS_SOURCES, DEFAULT_PATH
from ansible_collections.hostprep.container_host.plugins.module_utils._reset import reset


def main():
    module = AnsibleModule(
        argument_spec=dict(
            data_root=dict(type='path', default='/var/lib/docker'),
            daemon_config=dict(type='path', default=DEFAULT_PATH),
            flags_sources=dict(type='list', elements='path', default=list(DEFAULT_FLAGS_SOURCES)),
            force=dict(type='bool', default=False),
            keep_volumes=dict(type='bool', default=True),
            loopback=dict(type='bool', default=True),
            data_size=dict(type='str', default='100G'),
            metadata_size=dict(type='str', default='2G'),
            docker_host=dict(type='str', default='unix:///var/run/docker.sock'),
            pidfile=dict(type='path', default='/var/run/docker.pid'),
            timeout=dict(type='int', default=5),
        ),
        supports_check_mode=True,
    )
    execute(module, reset, data_root=module.params['data_root'])


if __name__ == '__main__':
    main()
