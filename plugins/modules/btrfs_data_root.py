#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: btrfs_data_root
short_description: Put the Docker data root on a btrfs filesystem through a persistent bind mount
version_added: 0.1.0
description:
  - Ensures a btrfs filesystem on O(device), mounts it at O(mount_point) and bind-mounts that onto the directory
    where the engine keeps its image layers, then persists both mounts in fstab. A second run changes nothing.
  - Formats only a device without any signature (as C(blkid -p) and C(wipefs) see it) unless O(force=true). A
    device that already holds btrfs is kept as it is, with its content.
  - A device in use is never wiped or formatted, whatever O(force) says, and the message names each use found, on
    the device or on one of its partitions - mounted (C(findmnt -J), C(lsblk -J)), used as swap (C(/proc/swaps)),
    held by device-mapper, md or another layer (sysfs C(holders)), an LVM physical volume (C(LVM2_member); C(pvs)
    names its volume group when LVM is installed), an md/RAID or ZFS pool member (C(wipefs -J)), open by a process
    (C(/proc/PID/fd)) or claimed by the kernel (an exclusive open fails, as for a filesystem mounted in another mount
    namespace).
  - The layer directory is O(data_root) when given. Otherwise it is detected - C(data-root) of O(daemon_config),
    else C(--data-root) in the dockerd systemd unit or environment files, else C(/var/lib/docker) - or, when the
    engine uses the containerd image store (C(features.containerd-snapshotter), default from Engine 29),
    containerd's btrfs snapshotter root C(/var/lib/containerd/io.containerd.snapshotter.v1.btrfs).
  - An existing bind mount is recognised from the kernel's mount table (C(findmnt -J)) by its device and the
    directory inside the filesystem it shows, not by comparing paths as text.
  - Refuses to change mounts while the engine runs (the engine at O(docker_host) answers, or a C(dockerd) or
    C(containerd) process uses the data root). A data root that is not empty is refused unless O(migrate=true).
  - Every refusal happens before anything changes. O(mount_point) and O(data_root) are compared with the kernel's
    mount table with symbolic links resolved, and fstab and the result name the resolved paths.
  - fstab is written last, after the kernel's mount table shows the mounts in place. When a step fails, what can be
    undone is undone in reverse order (fstab put back byte for byte, the mounts made unmounted, a copy onto the new
    filesystem removed, the directories created removed) and the failure names what was changed and what was
    restored (RV(changes_made), RV(changes_restored)). Wiping and formatting cannot be undone; after them a failure
    reports C(changed=true).
  - Does not set the storage driver; use M(hostprep.container_host.docker_daemon_config) with C(storage-driver=btrfs)
    afterwards and restart dockerd.
author:
  - hostprep.container_host maintainers (@hostprep)
options:
  device:
    description:
      - The block device for the btrfs filesystem (a disk, a partition or a loop device).
      - A path that does not exist or is not a block device is refused.
    type: path
    required: true
  mount_point:
    description:
      - Where the btrfs filesystem is mounted. Created when missing.
      - Must be neither the data root nor inside it (nor the other way round).
    type: path
    default: /mnt/docker-btrfs
  data_root:
    description:
      - The directory the filesystem is bind-mounted onto, where the engine keeps its layers.
      - Detected when not given (see the description); a missing directory is created.
    type: path
  label:
    description:
      - Label of a new filesystem (C(mkfs.btrfs --label)). An existing btrfs keeps its label; the task warns when
        it differs.
    type: str
  force:
    description:
      - Format O(device) even though it carries another filesystem, a partition table or another signature. All
        its signatures are wiped first (C(wipefs --all)). This destroys what is on the device.
      - Never overrides a device in use (see the description); such a device is refused before this is considered.
      - A device that already holds btrfs is never formatted, whatever this says.
    type: bool
    default: false
  migrate:
    description:
      - When the data root is not empty, copy its content onto the btrfs filesystem before the bind mount covers it,
        in one C(cp -a --preserve=xattr) run, which keeps owners, modes, ACLs, extended attributes, timestamps,
        symlinks, device files and hard links.
      - The old content stays on the old filesystem, hidden under the bind mount; see the notes on how to reclaim it.
      - Refused when the btrfs filesystem is not empty itself.
    type: bool
    default: false
  fstab:
    description:
      - The fstab file to persist the mounts in. Other lines stay byte for byte as they were.
    type: path
    default: /etc/fstab
  daemon_config:
    description:
      - The Docker daemon configuration file read to detect the data root when O(data_root) is not given.
    type: path
    default: /etc/docker/daemon.json
  mkfs_options:
    description:
      - Extra arguments for C(mkfs.btrfs) when the device is formatted, for example C([--metadata, dup]).
    type: list
    elements: str
  mount_options:
    description:
      - Mount options of the btrfs filesystem, used for the mount and in its fstab entry (V(defaults) when empty),
        for example C([noatime, compress=zstd]).
      - A filesystem already mounted with other options is not remounted; the task warns instead.
    type: list
    elements: str
extends_documentation_fragment:
  - hostprep.container_host.attributes
  - hostprep.container_host.attributes.actiongroup_docker_storage
  - hostprep.container_host.docker_host
attributes:
  check_mode:
    description: Reports what would be formatted, mounted, copied and written, and changes nothing.
  diff_mode:
    description: Shows fstab and the mounts at the mount point and the data root before and after.
  idempotent:
    description: A second run with the same options changes nothing, also while the engine runs.
  platform:
    description: Linux with btrfs support, btrfs-progs and util-linux (C(blkid), C(wipefs), C(findmnt), C(mount)).
requirements:
  - btrfs-progs (C(mkfs.btrfs)) and util-linux on the managed host.
  - The Docker SDK for Python only when O(docker_host) is not a unix socket (C(tcp://), C(ssh://)).
notes:
  - The btrfs entry in fstab names the device by C(UUID=) (an existing entry that names the same device another way
    keeps its spelling). The bind entry is C(MOUNT_POINT DATA_ROOT none bind,x-systemd.requires-mounts-for=MOUNT_POINT)
    and comes after the btrfs entry, so both systemd and C(mount -a) mount them in order.
  - In check mode a device that would be formatted has no UUID yet; the fstab diff shows an example one.
  - After O(migrate=true) the old data stays under the bind mount and keeps using space. To reclaim it with the engine
    stopped, look at the directory without the bind mount (C(mount --bind / /mnt/rootview), then remove the content
    of C(/mnt/rootview/var/lib/docker)), or unmount the bind mount, empty the directory and C(mount DATA_ROOT) again.
  - Copying a data root keeps the files, but a storage driver change makes the old driver's images unusable; the role
    C(hostprep.container_host.docker_storage) saves and loads images for such a switch.
seealso:
  - module: hostprep.container_host.docker_daemon_config
  - name: Use the BTRFS storage driver
    description: Docker's recipe this module automates.
    link: https://docs.docker.com/engine/storage/drivers/btrfs-driver/
'''

EXAMPLES = r'''
- name: Put /var/lib/docker on btrfs on an empty disk
  hostprep.container_host.btrfs_data_root:
    device: /dev/disk/by-id/virtio-docker
    mount_point: /mnt/butter
    label: docker
    mount_options: [noatime, compress=zstd]

- name: Move an existing data root onto btrfs (dockerd stopped)
  hostprep.container_host.btrfs_data_root:
    device: /dev/sdb
    migrate: true
  register: btrfs

- name: Then switch the storage driver
  hostprep.container_host.docker_daemon_config:
    config:
      storage-driver: btrfs
'''

RETURN = r'''
device:
  description: The device as it is after the task.
  returned: always
  type: dict
  contains:
    path:
      description: The device path given.
      type: str
      sample: /dev/sdb
    size:
      description: Size in bytes.
      type: int
      sample: 107374182400
    fstype:
      description: The filesystem (or partition table) type blkid reports, null when none.
      type: str
      sample: btrfs
    uuid:
      description: Filesystem UUID.
      type: str
      sample: ae7ae609-a51b-4fd5-b429-ba6a7e12fd85
    label:
      description: Filesystem label.
      type: str
      sample: docker
    signatures:
      description: Signatures wipefs reports (type, offset, uuid, label).
      type: list
      elements: dict
      sample: [{"type": "btrfs", "offset": "0x10040", "uuid": "ae7ae609-a51b-4fd5-b429-ba6a7e12fd85", "label": "docker"}]
formatted:
  description: Whether the device was (or in check mode would be) formatted.
  returned: always
  type: bool
  sample: true
mount_point:
  description: Where the btrfs filesystem is mounted (symbolic links resolved).
  returned: always
  type: str
  sample: /mnt/docker-btrfs
data_root:
  description: The directory the filesystem is bind-mounted onto (symbolic links resolved).
  returned: always
  type: str
  sample: /var/lib/docker
containerd_image_store:
  description: Whether the detected layer directory is containerd's btrfs snapshotter root.
  returned: always
  type: bool
  sample: false
engine_version:
  description: Version of the installed engine, when it was read to detect the data root.
  returned: always
  type: str
  sample: 20.10.24
mounts:
  description: The two mounts the task ensures, the btrfs mount first, then the bind mount.
  returned: always
  type: list
  elements: dict
  contains:
    source:
      description: The device, or for the bind mount the mount point.
      type: str
      sample: /dev/sdb
    target:
      description: Where it is mounted.
      type: str
      sample: /mnt/docker-btrfs
    fstype:
      description: V(btrfs), or V(none) for the bind mount.
      type: str
      sample: btrfs
    options:
      description: Mount options as given (V(bind) for the bind mount).
      type: list
      elements: str
      sample: [noatime]
    changed:
      description: Whether the task made (or would make) this mount.
      type: bool
      sample: true
    kernel:
      description: What the kernel reports for it afterwards (source, target, fstype, options, fsroot); not in
        check mode.
      type: dict
      sample: {"source": "/dev/sdb", "target": "/var/lib/docker", "fstype": "btrfs", "fsroot": "/",
               "options": ["rw", "noatime", "space_cache=v2", "subvolid=5", "subvol=/"]}
migrated:
  description: What was (or would be) copied from the old data root, null when nothing was copied.
  returned: always
  type: dict
  contains:
    files:
      description: Files, symlinks and other non-directories copied (hard-linked files count once).
      type: int
      sample: 1234
    bytes:
      description: Bytes of regular files copied.
      type: int
      sample: 52428800
fstab:
  description: The fstab file.
  returned: always
  type: str
  sample: /etc/fstab
fstab_changed:
  description: Whether fstab was (or would be) changed.
  returned: always
  type: bool
  sample: true
uses:
  description: On a refusal of a device in use, each use found.
  returned: failure
  type: list
  elements: str
  sample: ["mounted (/dev/sdb1 on /srv)", "used as swap (/dev/sdb2)"]
changes_made:
  description: On failure, what the run had changed before it failed.
  returned: failure
  type: list
  elements: str
  sample: ["made a btrfs filesystem on /dev/sdb (this cannot be undone)", "created directory /mnt/docker-btrfs"]
changes_restored:
  description: On failure, what the run put back.
  returned: failure
  type: list
  elements: str
  sample: ["unmounted /mnt/docker-btrfs", "removed directory /mnt/docker-btrfs"]
fstab_entries:
  description: The two entries fstab holds for the mounts (source, target, fstype, options, dump, passno).
  returned: always
  type: list
  elements: dict
  sample: [{"source": "UUID=ae7ae609-a51b-4fd5-b429-ba6a7e12fd85", "target": "/mnt/docker-btrfs", "fstype": "btrfs",
            "options": ["defaults"], "dump": 0, "passno": 0}]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostprep.container_host.plugins.module_utils._common import execute
from ansible_collections.hostprep.container_host.plugins.module_utils._btrfs import manage


def main():
    module = AnsibleModule(
        argument_spec=dict(
            device=dict(type='path', required=True),
            mount_point=dict(type='path', default='/mnt/docker-btrfs'),
            data_root=dict(type='path'),
            label=dict(type='str'),
            force=dict(type='bool', default=False),
            migrate=dict(type='bool', default=False),
            fstab=dict(type='path', default='/etc/fstab'),
            docker_host=dict(type='str', default='unix:///var/run/docker.sock'),
            daemon_config=dict(type='path', default='/etc/docker/daemon.json'),
            mkfs_options=dict(type='list', elements='str'),
            mount_options=dict(type='list', elements='str'),
        ),
        supports_check_mode=True,
    )
    execute(module, manage, device=module.params['device'])


if __name__ == '__main__':
    main()
