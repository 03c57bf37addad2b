#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: docker_images_archive
short_description: Save all images of a Docker engine to one archive and load them back
version_added: 0.1.0
description:
  - With O(state=saved), writes every image the engine lists (or the tagged ones only) into one tar archive, as
    C(docker save) does, with all tags, so layers shared by several images are stored once.
  - With O(state=loaded), loads the archive into the engine, as C(docker load) does. Image IDs stay the same.
  - Carries images across a storage driver switch, where the images of the old driver become invisible to the
    engine. The role C(hostprep.container_host.docker_storage) uses it with C(docker_storage_preserve_images).
  - The archive must not be under the engine's data root nor on the filesystem that holds it, since a storage
    change may wipe, reformat or mount over that filesystem; the module refuses such a place, and one without
    enough free space for all layers, before writing anything.
  - Idempotent by image ID and tag. A saved archive that already holds exactly the engine's images is not
    rewritten; loading is skipped when every image of the archive is present with its tags.
author:
  - hostprep.container_host maintainers (@hostprep)
options:
  path:
    description:
      - The archive file. Written atomically (temporary file in the same directory, then rename) with mode
        V(0600); its directory is created (mode V(0700)) when missing, and removed again when saving fails.
      - "The module appends a member C(hostprep-images-archive.json) to every archive it writes (C(docker load)
        ignores it). An existing file without it (an archive made by C(docker save) or anything else) is never
        replaced: the task fails and names it. A link, a directory or a device at O(path) is refused."
      - "When the filesystem fills up while saving, the partial archive is removed and the task fails with
        nothing changed."
      - Refused, with nothing written, when the file is on the data root's filesystem (see O(data_root)) or when a
        component of its directory is a file.
    type: path
    required: true
  state:
    description:
      - V(saved) writes the engine's images to O(path).
      - V(loaded) loads the images of O(path) into the engine.
    type: str
    choices: [saved, loaded]
    default: saved
  data_root:
    description:
      - The engine's data root, which O(path) must be outside of and on another filesystem than.
      - Default is the C(DockerRootDir) the engine reports.
    type: path
  include_dangling:
    description:
      - Also save images that have no tag (they are saved by ID and come back untagged).
    type: bool
    default: true
  timeout:
    description:
      - Seconds one API call may take; saving and loading big images takes long. At least V(1).
    type: int
    default: 600
extends_documentation_fragment:
  - hostprep.container_host.attributes
  - hostprep.container_host.attributes.actiongroup_docker_storage
  - hostprep.container_host.docker_host
  - hostprep.container_host.docker_host.sdk
attributes:
  check_mode:
    description: Reports whether the archive would be written or loaded; writes and loads nothing.
  diff_mode:
    description: Shows the image IDs in the archive (saved) or the engine (loaded) before and after.
  idempotent:
    description: A second run with the same engine state changes nothing.
  platform:
    description: Hosts with a Docker engine reachable at O(docker_host).
notes:
  - Containers, volumes and build cache are not saved; only images.
seealso:
  - module: hostprep.container_host.docker_storage_info
  - name: docker save
    description: The command this module does through the API.
    link: https://docs.docker.com/reference/cli/docker/image/save/
'''

EXAMPLES = r'''
- name: Save every image before switching the storage driver
  hostprep.container_host.docker_images_archive:
    path: /srv/docker-images/all.tar
    state: saved

- name: Load them back once the engine runs on the new driver
  hostprep.container_host.docker_images_archive:
    path: /srv/docker-images/all.tar
    state: loaded

# Saving and loading many gigabytes takes minutes: run it in the background so a dropped or timed-out SSH
# connection does not fail the task; Ansible checks every 10 seconds and gives up after an hour.
- name: Save every image, polled
  hostprep.container_host.docker_images_archive:
    path: /srv/docker-images/all.tar
  async: 3600
  poll: 10

# Or start it on every host at once and wait with async_status.
- name: Start saving the images
  hostprep.container_host.docker_images_archive:
    path: /srv/docker-images/all.tar
  async: 3600
  poll: 0
  register: save_job

- name: Wait until the archive is written
  ansible.builtin.async_status:
    jid: "{{ save_job.ansible_job_id }}"
  register: saved
  until: saved.finished
  retries: 360
  delay: 10
'''

RETURN = r'''
path:
  description: The archive file.
  returned: always
  type: str
  sample: /srv/docker-images/all.tar
size:
  description: Size of the archive in bytes (0 when it does not exist, for example in check mode).
  returned: always
  type: int
  sample: 1444864
images:
  description: The images saved (state V(saved)) or held by the archive (state V(loaded)).
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: Image ID.
      type: str
      sample: sha256:9b1ec2ab9a2d0c0ba1e6d0a5e9a8c10b1dd4e71d0d3cfcd9c54ae4b0ba0b3ff2
    tags:
      description: Repository tags of the image.
      type: list
      elements: str
      sample: [busybox:latest]
loaded:
  description: Images that were missing from the engine and were loaded (or would be, in check mode).
  returned: when O(state=loaded)
  type: list
  elements: dict
  sample: [{"id": "sha256:9b1e...", "tags": ["busybox:latest"]}]
data_root:
  description: The data root the archive location was checked against.
  returned: when O(state=saved)
  type: str
  sample: /var/lib/docker
changes_made:
  description: On failure, what the task had changed (a directory created, images loaded before the error).
  returned: failure
  type: list
  elements: str
  sample: ["created directory /srv/docker-images"]
changes_restored:
  description: On failure, what the task put back (directories it had created).
  returned: failure
  type: list
  elements: str
  sample: ["removed directory /srv/docker-images"]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    HostprepError,
    changes_of,
    execute,
)
from ansible_collections.hostprep.container_host.plugins.module_utils._docker_client import (
    ENGINE_ERRORS,
    engine_client,
    require_sdk,
)
from ansible_collections.hostprep.container_host.plugins.module_utils._images_archive import manage


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            state=dict(type='str', default='saved', choices=['saved', 'loaded']),
            data_root=dict(type='path'),
            include_dangling=dict(type='bool', default=True),
            docker_host=dict(type='str', default='unix:///var/run/docker.sock'),
            timeout=dict(type='int', default=600),
        ),
        supports_check_mode=True,
    )
    require_sdk(module)
    execute(module, archive, path=module.params['path'])


def archive(module):
    params = module.params
    if params['timeout'] <= 0:
        raise HostprepError('timeout must be at least 1 second (got %d)' % params['timeout'])
    try:
        with engine_client(params['docker_host'], params['timeout']) as client:
            return manage(client, params, module.check_mode, changes_of(module))
    except ENGINE_ERRORS as exc:
        raise HostprepError('Docker engine at %s: %s; start dockerd or set docker_host' % (params['docker_host'], exc),
                            path=params['path']) from exc


if __name__ == '__main__':
    main()
