#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: lvm_thinpool
short_description: Docker's direct-lvm thin pool (PVs, VG, thin pool, autoextend profile, thin volume)
version_added: 0.1.0
description:
  - Builds Docker's direct-lvm layout from a list of devices, the way Docker's own guide does it by hand
    (C(pvcreate), C(vgcreate), a data LV and a metadata LV in percent of the VG, C(lvconvert --thinpool) with a chunk
    size and without zeroing, an LVM profile with autoextend threshold and percent attached to the pool, monitoring
    on). The pool is then usable as C(dm.thinpooldev=/dev/mapper/VG-POOL) or by containerd's devmapper snapshotter.
  - Optionally creates a thin volume in the pool and formats it XFS with C(ftype=1), for overlay2 on a thin LV
    (mount it with C(pquota) to use C(overlay2.size)).
  - Every check runs before the first change. A device in use is always refused, before O(wipe_signatures) is
    even considered, and the message names each use found, on the device or on one of its partitions - mounted
    (C(findmnt -J), C(lsblk -J)), used as swap (C(/proc/swaps)), held by device-mapper, md or another layer
    (sysfs C(holders)), an LVM physical volume of another volume group (or an C(LVM2_member) signature C(pvs) does not
    list), an md/RAID or ZFS pool member (C(wipefs -J)), open by a process (C(/proc/PID/fd)), or claimed by the kernel
    (an exclusive open fails, as for a filesystem mounted in another mount namespace). Devices that carry a
    filesystem, a partition table or any other signature are refused unless O(wipe_signatures=true); so are paths
    that do not exist, are not block devices or are too small, bad VG or LV names, and sizes that do not fit (the
    message says how much is needed). On a kernel without device-mapper the module fails before changing anything.
  - When a step fails halfway (a command, or writing the profile into a read-only or immutable O(profile_dir)), the
    changes this run made are undone in reverse order (LVs removed, the VG reduced or removed, PV labels removed, the
    profile file restored), so a failed run leaves no half-built VG. Erased signatures cannot be brought back. The
    failure reports C(changed=true) unless every change was undone, with RV(changes_made) and RV(changes_restored).
  - Idempotent. A second run issues no LVM command that changes anything. Adding a device to O(devices) grows the
    VG (C(vgextend)) and, with percentages, the pool to its share of the larger VG. Pools never shrink.
  - O(state=absent) removes the pool and its thin volumes, the VG and the PV labels when nothing else is left in the
    VG and all its PVs are listed in O(devices), and the profile file when no other LV or VG uses it. It is refused
    while the pool or one of its thin volumes is open or Docker's thin devices are active on it; stop Docker first.
author:
  - hostprep.container_host maintainers (@hostprep)
options:
  vg:
    description:
      - Name of the volume group. LVM's rules apply (letters, digits, C(+ _ . -), not starting with C(-), not
        C(.) or C(..), no reserved prefix such as C(snapshot) or C(pvmove)).
    type: str
    required: true
  devices:
    description:
      - Block devices (disks or partitions, C(/dev/disk/by-id/...) links allowed) for the VG.
      - Devices not yet in the VG are initialized as PVs and added; PVs of the VG that are not listed are left in it.
      - May be omitted when the VG exists already.
    type: list
    elements: path
    default: []
  pool:
    description:
      - Name of the thin-pool LV. The metadata LV is created as C(<pool>meta) and becomes hidden when converted.
    type: str
    default: thinpool
  data_percent:
    description:
      - Size of the pool's data LV in percent of the VG (C(lvcreate -l N%VG)). Defaults to V(95) when O(data_size)
        is not given.
      - Mutually exclusive with O(data_size).
    type: int
  data_size:
    description:
      - Absolute size of the data LV, like V(100G) (binary units; a bare number is MiB, as with C(lvcreate -L)).
    type: str
  metadata_percent:
    description:
      - Size of the metadata LV in percent of the VG. Defaults to V(1) when O(metadata_size) is not given.
      - LVM also keeps a spare metadata LV of the same size, so O(data_percent) plus twice O(metadata_percent) must
        be at most 100.
    type: int
  metadata_size:
    description:
      - Absolute size of the metadata LV, like V(2G); at least 2 MiB.
    type: str
  chunk_size:
    description:
      - Chunk size of the thin pool (C(lvconvert -c)), a multiple of 64 KiB between 64 KiB and 1 GiB. Cannot change
        after the pool is created (a different value on an existing pool gives a warning).
    type: str
    default: 512K
  profile:
    description:
      - Name of the LVM metadata profile attached to the pool (C(lvchange --metadataprofile)).
    type: str
    default: docker-thinpool
  profile_dir:
    description:
      - Directory of LVM profiles; must be LVM's C(config/profile_dir). The profile is written to
        C(<profile_dir>/<profile>.profile).
    type: path
    default: /etc/lvm/profile
  autoextend_threshold:
    description:
      - C(thin_pool_autoextend_threshold) of the profile, in percent of the pool's data or metadata space. V(100)
        turns autoextend off.
    type: int
    default: 80
  autoextend_percent:
    description:
      - C(thin_pool_autoextend_percent) of the profile, how much the pool grows each time.
    type: int
    default: 20
  thin_volume:
    description:
      - A thin volume to create in the pool, for overlay2 on a thin LV. An existing one is never resized or
        reformatted.
    type: dict
    suboptions:
      name:
        description: Name of the thin LV.
        type: str
        required: true
      size:
        description: Virtual size, like V(50G). Required with O(state=present).
        type: str
      filesystem:
        description:
          - V(xfs) formats it with C(mkfs.xfs -m crc=1 -n ftype=1) (what overlay2 needs) when it carries no
            filesystem; V(none) leaves it unformatted.
          - An existing thin volume without a filesystem that is in use (open by a process, mounted, held) is
            refused instead of formatted, naming the use.
        type: str
        choices: [xfs, none]
        default: xfs
  wipe_signatures:
    description:
      - Erase filesystem, partition-table and other signatures (C(wipefs --all)) on devices before C(pvcreate).
        Without it such devices are refused. Destroys the data on them.
      - Never overrides a device in use (see the description) - mounted or used as swap (the device or a partition
        of it), held, open by a process, an LVM PV of another volume group, an md/RAID member.
    type: bool
    default: false
  remove_data:
    description:
      - With O(state=absent), also remove a thin pool that holds data of thin devices LVM does not manage,
        such as the images and containers of Docker's devicemapper driver. Without it such a pool is refused.
        Destroys that data. Stop docker first.
    type: bool
    default: false
  state:
    description:
      - V(present) builds the layout; V(absent) removes it (see the description).
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - hostprep.container_host.attributes
  - hostprep.container_host.attributes.actiongroup_docker_storage
attributes:
  check_mode:
    description: Predicts the commands and the resulting layout from its own plan and changes nothing.
  diff_mode:
    description: Shows the VG, pool, thin volume and profile before and after.
  idempotent:
    description: A second run with the same options issues no changing command.
  platform:
    description: Linux with device-mapper (C(dm-thin-pool)), lvm2 and util-linux; xfsprogs for O(thin_volume).
requirements:
  - lvm2 (C(pvs), C(vgs), C(lvs) with C(--reportformat json), LVM 2.02.158 or later)
  - util-linux (C(wipefs), C(lsblk), C(findmnt)), C(dmsetup)
  - xfsprogs when O(thin_volume.filesystem=xfs)
notes:
  - Autoextend happens only while the pool is monitored by dmeventd; the module turns monitoring on and warns when it
    does not stick.
  - The data LV is created with C(-l) and the number of extents C(N%VG) stands for, so check mode can say exactly
    what it will create.
seealso:
  - name: Docker devicemapper storage driver, direct-lvm
    description: The manual recipe this module automates.
    link: https://docs.docker.com/engine/storage/drivers/device-mapper-driver/#configure-direct-lvm-mode-manually
  - module: hostprep.container_host.docker_daemon_config
  - module: community.general.lvg
'''

EXAMPLES = r'''
- name: Thin pool for Docker's devicemapper driver on two disks
  hostprep.container_host.lvm_thinpool:
    vg: docker
    devices:
      - /dev/disk/by-id/virtio-disk1
      - /dev/disk/by-id/virtio-disk2
  register: thinpool

- name: Point Docker at it
  hostprep.container_host.docker_daemon_config:
    config:
      storage-driver: devicemapper
      storage-opts:
        - "dm.thinpooldev={{ thinpool.pool.device }}"
        - dm.use_deferred_removal=true
        - dm.use_deferred_deletion=true

- name: overlay2 on an XFS thin volume, absolute sizes, a disk that had a filesystem
  hostprep.container_host.lvm_thinpool:
    vg: docker
    devices: [/dev/vdb]
    data_size: 40G
    metadata_size: 1G
    thin_volume:
      name: data
      size: 100G
    wipe_signatures: true

- name: Remove the pool (Docker stopped first)
  hostprep.container_host.lvm_thinpool:
    vg: docker
    devices: [/dev/vdb]
    state: absent
'''

RETURN = r'''
pool:
  description: The thin pool (predicted in check mode, where the percentages are null). Null with O(state=absent).
  returned: always
  type: dict
  contains:
    vg: {description: Volume group., type: str, sample: docker}
    name: {description: Pool LV name., type: str, sample: thinpool}
    device: {description: 'Device-mapper path, for C(dm.thinpooldev).', type: str, sample: /dev/mapper/docker-thinpool}
    lv_path: {description: LVM path., type: str, sample: /dev/docker/thinpool}
    size: {description: Data size in bytes., type: int, sample: 10196353024}
    metadata_size: {description: Metadata size in bytes., type: int, sample: 104857600}
    chunk_size: {description: Chunk size in bytes., type: int, sample: 524288}
    data_percent: {description: Data space used in percent (null while inactive)., type: float, sample: 0.0}
    metadata_percent: {description: Metadata space used in percent., type: float, sample: 0.02}
    profile: {description: Attached metadata profile., type: str, sample: docker-thinpool}
    monitored: {description: Whether dmeventd monitors the pool (needed for autoextend)., type: bool, sample: true}
thin_volume:
  description: The thin volume of O(thin_volume), or null.
  returned: always
  type: dict
  contains:
    name: {description: LV name., type: str, sample: data}
    device: {description: Device-mapper path., type: str, sample: /dev/mapper/docker-data}
    size: {description: Virtual size in bytes., type: int, sample: 21474836480}
    filesystem: {description: 'Filesystem found on it (or to be made), or null.', type: str, sample: xfs}
pvs_added:
  description: Devices this run initialized or added to the VG (would add, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/dev/vdb]
removed:
  description: What O(state=absent) removed (or would remove), LVs as VG/LV, then the VG, PVs and profile file.
  returned: always
  type: list
  elements: str
  sample: [docker/thinpool, docker, /dev/vdb, /etc/lvm/profile/docker-thinpool.profile]
commands:
  description: Commands run (planned, in check mode), as argument lists; a profile write shows as C(write PATH).
  returned: always
  type: list
  elements: list
  sample: [[pvcreate, /dev/vdb], [vgcreate, docker, /dev/vdb]]
diff:
  description: VG, pool, thin volume and profile text before and after.
  returned: always
  type: dict
changes_made:
  description: On failure, the steps this run had made before it failed.
  returned: failure
  type: list
  elements: str
  sample: ["initialize /dev/vdb as PV", "create VG docker"]
changes_restored:
  description: On failure, the undos that ran (the steps put back, in reverse order).
  returned: failure
  type: list
  elements: str
  sample: ["undid: create VG docker (vgremove -y docker)", "undid: initialize /dev/vdb as PV (pvremove -y /dev/vdb)"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostprep.container_host.plugins.module_utils._common import execute
from ansible_collections.hostprep.container_host.plugins.module_utils._thinpool import manage


def main():
    module = AnsibleModule(
        argument_spec=dict(
            vg=dict(type='str', required=True),
            devices=dict(type='list', elements='path', default=[]),
            pool=dict(type='str', default='thinpool'),
            data_percent=dict(type='int'),
            data_size=dict(type='str'),
            metadata_percent=dict(type='int'),
            metadata_size=dict(type='str'),
            chunk_size=dict(type='str', default='512K'),
            profile=dict(type='str', default='docker-thinpool'),
            profile_dir=dict(type='path', default='/etc/lvm/profile'),
            autoextend_threshold=dict(type='int', default=80),
            autoextend_percent=dict(type='int', default=20),
            thin_volume=dict(type='dict', options=dict(
                name=dict(type='str', required=True),
                size=dict(type='str'),
                filesystem=dict(type='str', choices=['xfs', 'none'], default='xfs'),
            )),
            wipe_signatures=dict(type='bool', default=False),
            remove_data=dict(type='bool', default=False),
            state=dict(type='str', default='present', choices=['present', 'absent']),
        ),
        mutually_exclusive=[('data_percent', 'data_size'), ('metadata_percent', 'metadata_size')],
        supports_check_mode=True,
    )
    execute(module, manage)


if __name__ == '__main__':
    main()
