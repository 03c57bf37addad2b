#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: docker_storage_journal
short_description: Record a storage change on the host before it is made, and undo it
version_added: 0.2.0
description:
  - The record on the host of a Docker storage change in progress, so that a failed or interrupted change can be
    undone exactly. The M(hostprep.container_host.docker_storage) role uses it around every storage change.
  - V(begun) copies the files the change may rewrite (O(files), such as daemon.json, fstab and containerd's
    configuration) into O(path) and notes the mounts at and under O(data_root) and O(mount_roots). It refuses when an
    unfinished change is recorded there already. It also notes the signatures (type and UUID) on O(devices) and the
    VG O(vg) with its LVs (UUIDs), so that storage the change creates can be proven to be its own.
  - V(step) notes a step as it is taken, and where the old data root was moved aside (O(moved_aside)). With
    O(note_storage=true) it notes the devices and the VG again, as the change's storage step left them.
  - V(restored) undoes the recorded change as far as it is safe, then removes the record. It unmounts what the change
    mounted at or under the data root and the mount roots, moves the old data root back when the data root is empty,
    puts every file back byte for byte with its mode and owner (or removes a file that did not exist before) and mounts
    again, from the restored O(fstab), what was mounted before.
  - V(restored) also removes the storage the change created, with proof that it is the change's own - an LV, a VG, a
    PV or a filesystem that was not there when the change began, was noted after its storage step, and has the noted
    UUID now (thin LVs, then pools, then the VG, then C(pvremove) or C(wipefs -a) on a device that was blank before).
    Anything else new on the devices is left as it is and named in RV(left). What it cannot do safely is returned in RV(manual),
    and the record stays, so the next run tries again.
  - V(finished) removes the record of a change that is complete. V(read) only reads it (RV(unfinished)).
  - The engine must be stopped while files and mounts are put back; the role stops it first.
author:
  - hostprep.container_host maintainers (@hostprep)
options:
  path:
    description:
      - The directory of the record (C(journal.json) and the copies of the files). Created with mode 0700.
      - Only files this module wrote are ever removed from it.
    type: path
    default: /var/lib/hostprep/docker_storage
  phase:
    description:
      - What to do with the record.
    type: str
    choices: [read, begun, step, restored, finished]
    default: read
  data_root:
    description:
      - The engine's data root, whose mounts are noted and, with O(moved_aside), restored. Needed for V(begun).
    type: path
  mount_roots:
    description:
      - Other directories where the change may mount something (for example the btrfs mount point).
    type: list
    elements: path
    default: []
  files:
    description:
      - The files the change may rewrite. A symbolic link is followed; the file it points to is copied and restored.
    type: list
    elements: path
    default: []
  backend:
    description:
      - The backend the change sets up, for messages.
    type: str
    default: ''
  archive:
    description:
      - The image archive the change saves images to, noted so that an interrupted change names it.
    type: path
  step:
    description:
      - The step that is about to be taken (V(step)).
    type: str
    default: ''
  moved_aside:
    description:
      - Where the old data root was moved (V(step)); V(restored) moves it back.
    type: path
  devices:
    description:
      - The block devices the change may format or turn into PVs (V(begun)); their signatures are noted.
    type: list
    elements: path
    default: []
  vg:
    description:
      - The volume group the change may create or extend (V(begun)); its UUID and its LVs are noted.
    type: str
  note_storage:
    description:
      - With V(step), note O(devices) and O(vg) as they are now, after the change's storage step.
    type: bool
    default: false
  fstab:
    description:
      - The fstab from which V(restored) mounts again what was mounted before.
    type: path
    default: /etc/fstab
extends_documentation_fragment:
  - hostprep.container_host.attributes
  - hostprep.container_host.attributes.actiongroup_docker_storage
attributes:
  check_mode:
    description: V(restored) says what it would put back; nothing is written.
  diff_mode:
    support: none
    description: The record is not shown as a diff; RV(restored) lists what was put back.
  idempotent:
    description: V(restored) and V(finished) do nothing when no change is recorded.
seealso:
  - module: hostprep.container_host.docker_daemon_config
  - module: hostprep.container_host.btrfs_data_root
'''

EXAMPLES = r'''
- name: Note what the storage change may touch
  hostprep.container_host.docker_storage_journal:
    phase: begun
    data_root: /var/lib/docker
    files: [/etc/docker/daemon.json, /etc/fstab]
    backend: btrfs

- name: Put everything back after a failure (with dockerd stopped)
  hostprep.container_host.docker_storage_journal:
    phase: restored
  register: undo

- name: The change is complete
  hostprep.container_host.docker_storage_journal:
    phase: finished
'''

RETURN = r'''
path:
  description: The record's file.
  returned: always
  type: str
  sample: /var/lib/hostprep/docker_storage/journal.json
unfinished:
  description: Whether a change is recorded and not finished (after this task).
  returned: always
  type: bool
  sample: false
journal:
  description: The record (backend, data root, when it was begun, steps, the files kept and the mounts noted).
  returned: always
  type: dict
  sample: {backend: btrfs, data_root: /var/lib/docker, begun: "2026-11-29T21:30:00Z", steps: [], moved_aside: null}
restored:
  description: What V(restored) put back, in words.
  returned: always
  type: list
  elements: str
  sample: [unmounted /var/lib/docker, moved /var/lib/docker.hostprep-overlay2-20261129T213000Z back to /var/lib/docker]
left:
  description:
    - What V(restored) found new on the devices or in the VG but could not prove to be this change's own, or could not
      undo (a device formatted over an old signature, or a removal that failed, with the command to run by hand); left
      as it is, named. It does not keep the record; the files, mounts and data root are restored either way.
  returned: always
  type: list
  elements: str
  sample: ["btrfs (UUID 0b5e...) on /dev/sdb, made by this change over ext4, which cannot be brought back"]
manual:
  description: What V(restored) could not do safely and leaves to the operator; the record stays while this is not empty.
  returned: always
  type: list
  elements: str
  sample: []
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostprep.container_host.plugins.module_utils._common import changes_of, execute
from ansible_collections.hostprep.container_host.plugins.module_utils._journal import manage


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', default='/var/lib/hostprep/docker_storage'),
            phase=dict(type='str', default='read', choices=['read', 'begun', 'step', 'restored', 'finished']),
            data_root=dict(type='path'),
            mount_roots=dict(type='list', elements='path', default=[]),
            files=dict(type='list', elements='path', default=[]),
            backend=dict(type='str', default=''),
            archive=dict(type='path'),
            step=dict(type='str', default=''),
            moved_aside=dict(type='path'),
            devices=dict(type='list', elements='path', default=[]),
            vg=dict(type='str'),
            note_storage=dict(type='bool', default=False),
            fstab=dict(type='path', default='/etc/fstab'),
        ),
        required_if=[('phase', 'begun', ['data_root'])],
        supports_check_mode=True,
    )
    execute(module, lambda m: manage(m, changes_of(m)))


if __name__ == '__main__':
    main()
