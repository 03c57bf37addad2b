#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: containerd_snapshotter
short_description: Configure containerd's devmapper or btrfs snapshotter for Docker's containerd image store
version_added: 0.1.0
description:
  - For engines that keep images in containerd (the containerd image store, that is Engine 24 to 28 with
    C(features.containerd-snapshotter), the default for fresh installs from Engine 29), configures containerd's
    C(devmapper) snapshotter on an existing thin pool or its C(btrfs) snapshotter on a btrfs filesystem, and pairs it
    with C(storage-driver) and C(features.containerd-snapshotter=true) in the Docker daemon configuration.
  - Keeps the rest of containerd's configuration. The settings go into a drop-in file of their own (O(drop_in)), and
    the main file O(containerd_config) only gets that file added to its top-level C(imports) list; every other line
    of the main file stays byte for byte, and the result is parsed again to check that nothing else changed.
    containerd replaces a plugin section from an imported file whole, so keys the host already had for the
    snapshotter are carried over into the drop-in.
  - Checks the storage first. For C(devmapper), C(/dev/mapper/)O(pool_name) must be a block device; for C(btrfs), the
    snapshotter root (O(root_path), by default C(io.containerd.snapshotter.v1.btrfs) under containerd's C(root))
    must be on btrfs.
  - On an engine without the containerd image store (before Engine 24, such as Debian 12's 20.10) the task fails,
    says so (RV(supported=false) with RV(reason)) and changes nothing. Use the devicemapper graph driver with
    C(dm.thinpooldev) on an LVM thin pool (backend C(devicemapper_direct)) or the btrfs graph driver there.
  - Restarts nothing; restart containerd and dockerd when RV(restart_required) is true.
  - When a write fails (a read-only file, an immutable directory, a full disk), the files written before it in the
    same run are put back byte for byte, mode and owner kept, or removed when the run created them, so containerd and
    dockerd never see half a configuration; the failure lists RV(changes_made) and RV(changes_restored).
  - Refuses a O(containerd_config) or O(drop_in) that is a symbolic link, a directory or not UTF-8. O(daemon_config) is
    read and written as M(hostprep.container_host.docker_daemon_config) does it, through a symbolic link to the file it
    names (the link stays); a dangling link, a directory, a file with other hard links or one that is not UTF-8 is
    refused.
  - Lines of O(containerd_config) that the module does not change keep their bytes, line breaks (CRLF) included.
author:
  - hostprep.container_host maintainers (@hostprep)
options:
  snapshotter:
    description:
      - The containerd snapshotter, also written as C(storage-driver) into the daemon configuration.
    type: str
    required: true
    choices: [devmapper, btrfs]
  pool_name:
    description:
      - Name of the device-mapper thin pool as it appears under C(/dev/mapper) (for an LVM thin pool C(VG-POOL), for
        example V(docker-thinpool)). Required with O(snapshotter=devmapper).
    type: str
  root_path:
    description:
      - Directory where the snapshotter keeps its metadata (devmapper) or its subvolumes (btrfs; must be on btrfs).
      - By default containerd's own default, C(io.containerd.snapshotter.v1.NAME) under its C(root) directory.
    type: path
  base_image_size:
    description:
      - Size of the thin device each image's base layer gets, as containerd reads sizes (V(10GB), V(8192MB)).
        Used with O(snapshotter=devmapper).
    type: str
    default: 10GB
  containerd_config:
    description:
      - containerd's main configuration file. Only its top-level C(imports) list is edited. Created with
        C(version = 2) and the C(imports) list when it does not exist.
      - Files of configuration version 1 are refused; migrate them to version 2 first.
    type: path
    default: /etc/containerd/config.toml
  drop_in:
    description:
      - The drop-in file that holds the snapshotter section. It is written whole; keys it has beyond the module's
        options stay.
    type: path
    default: /etc/containerd/conf.d/50-hostprep-snapshotter.toml
  daemon_config:
    description:
      - The Docker daemon configuration file; C(storage-driver) and C(features.containerd-snapshotter) are merged
        into it and every other key stays.
    type: path
    default: /etc/docker/daemon.json
  check_storage:
    description:
      - Check that the thin pool (devmapper) or the btrfs root (btrfs) is there before anything is written.
      - Set V(false) only to plan in check mode when the storage is created later in the same run (for example by
        M(hostprep.container_host.lvm_thinpool) after a preflight); RV(storage) then says it was not checked.
    type: bool
    default: true
  dockerd_path:
    description:
      - The dockerd binary whose version decides whether the containerd image store exists. By default dockerd is
        looked up on E(PATH) and in C(/usr/bin), C(/usr/sbin), C(/usr/local/bin). When no dockerd binary is found,
        the engine at O(docker_host) is asked for its version.
    type: path
extends_documentation_fragment:
  - hostprep.container_host.attributes
  - hostprep.container_host.attributes.actiongroup_docker_storage
  - hostprep.container_host.docker_host
attributes:
  check_mode:
    description: Reports what would change in the three files and writes nothing.
  diff_mode:
    description: Shows the imports list, the drop-in's data and the daemon configuration before and after.
  platform:
    description: Linux hosts with the Docker engine and containerd.
requirements:
  - Python 3.11 (tomllib) or the tomli package on the managed host.
  - C(findmnt) (util-linux) for O(snapshotter=btrfs).
notes:
  - Switching the image store or the snapshotter makes the images of the old one invisible to the engine; the role
    C(hostprep.container_host.docker_storage) plans such a switch.
  - The thin pool for devmapper can come from M(hostprep.container_host.lvm_thinpool).
seealso:
  - module: hostprep.container_host.docker_daemon_config
  - name: containerd devmapper snapshotter
    description: Its configuration keys.
    link: https://github.com/containerd/containerd/blob/main/docs/snapshotters/devmapper.md
  - name: containerd configuration file
    description: Versions and the imports list.
    link: https://github.com/containerd/containerd/blob/main/docs/man/containerd-config.toml.5.md
'''

EXAMPLES = r'''
- name: Use containerd's devmapper snapshotter on the LVM thin pool docker/thinpool
  hostprep.container_host.containerd_snapshotter:
    snapshotter: devmapper
    pool_name: docker-thinpool
    root_path: /var/lib/containerd/devmapper
    base_image_size: 20GB
  register: snapshotter

- name: Restart containerd and docker when the configuration changed
  ansible.builtin.service:
    name: "{{ item }}"
    state: restarted
  loop: [containerd, docker]
  when: snapshotter.restart_required

- name: Use the btrfs snapshotter on a btrfs filesystem mounted at /mnt/containerd-btrfs
  hostprep.container_host.containerd_snapshotter:
    snapshotter: btrfs
    root_path: /mnt/containerd-btrfs/snapshots
'''

RETURN = r'''
supported:
  description: Whether the engine has the containerd image store. The task fails when it is V(false).
  returned: always
  type: bool
  sample: true
reason:
  description: Why the engine cannot use a containerd snapshotter, and what to use instead.
  returned: when RV(supported=false)
  type: str
  sample: Engine 20.10.24 has no containerd image store ...
snapshotter:
  description: The snapshotter configured.
  returned: always
  type: str
  sample: devmapper
engine:
  description: The engine the decision was made for.
  returned: always
  type: dict
  contains:
    version:
      description: Engine version.
      type: str
      sample: 26.1.5
containerd_config_changed:
  description: Whether the drop-in or the main file's imports changed.
  returned: success
  type: bool
  sample: true
daemon_config_changed:
  description: Whether the daemon configuration changed.
  returned: success
  type: bool
  sample: true
restart_required:
  description: Whether containerd and dockerd must be restarted to use the new configuration.
  returned: success
  type: bool
  sample: true
drop_in:
  description: The drop-in file.
  returned: success
  type: str
  sample: /etc/containerd/conf.d/50-hostprep-snapshotter.toml
imports:
  description: containerd's top-level imports list after the task.
  returned: success
  type: list
  elements: str
  sample: [/etc/containerd/conf.d/50-hostprep-snapshotter.toml]
settings:
  description: The snapshotter section written to the drop-in.
  returned: success
  type: dict
  sample: {"pool_name": "docker-thinpool", "base_image_size": "10GB", "root_path": "/var/lib/containerd/devmapper"}
root_path:
  description: The snapshotter root containerd will use.
  returned: success
  type: str
  sample: /var/lib/containerd/io.containerd.snapshotter.v1.btrfs
storage:
  description:
    - What was checked, the pool device (devmapper) or the filesystem of the root (btrfs, as C(findmnt) reports it).
    - "V({\"checked\": false}) with O(check_storage=false)."
  returned: success
  type: dict
  sample: {"pool_device": "/dev/mapper/docker-thinpool"}
changes_made:
  description:
    - On failure, the files this run had written before it failed (the drop-in, the main file, daemon.json are
      written in that order).
  returned: failure
  type: list
  elements: str
  sample: ["created /etc/containerd/conf.d/50-hostprep-snapshotter.toml"]
changes_restored:
  description: On failure, the files put back byte for byte (or removed when the run had created them), newest first.
  returned: failure
  type: list
  elements: str
  sample: ["removed /etc/containerd/conf.d/50-hostprep-snapshotter.toml"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostprep.container_host.plugins.module_utils._common import execute
from ansible_collections.hostprep.container_host.plugins.module_utils._containerd import configure


def main():
    module = AnsibleModule(
        argument_spec=dict(
            snapshotter=dict(type='str', required=True, choices=['devmapper', 'btrfs']),
            pool_name=dict(type='str'),
            root_path=dict(type='path'),
            base_image_size=dict(type='str', default='10GB'),
            containerd_config=dict(type='path', default='/etc/containerd/config.toml'),
            drop_in=dict(type='path', default='/etc/containerd/conf.d/50-hostprep-snapshotter.toml'),
            daemon_config=dict(type='path', default='/etc/docker/daemon.json'),
            docker_host=dict(type='str', default='unix:///var/run/docker.sock'),
            check_storage=dict(type='bool', default=True),
            dockerd_path=dict(type='path'),
        ),
        required_if=[('snapshotter', 'devmapper', ['pool_name'])],
        supports_check_mode=True,
    )
    execute(module, configure, snapshotter=module.params['snapshotter'])


if __name__ == '__main__':
    main()
