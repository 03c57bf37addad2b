#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: docker_daemon_config
short_description: Manage keys of the Docker daemon configuration file (daemon.json)
version_added: 0.1.0
description:
  - Sets or removes keys of the Docker daemon configuration file and keeps every other key untouched.
  - Compares the file as data, not text, so key order and whitespace never cause a change.
  - Refuses an existing file that is not a JSON object and says where the JSON breaks; nothing is changed then.
  - Writes through a symbolic link at O(path), keeping the link.
  - Before writing, checks the storage keys against the engine installed on the host and the filesystem under the
    data root, runs C(dockerd --validate) where the engine has it (Engine 23 and later), and finds keys that
    dockerd is also given as command-line flags (dockerd refuses to start with a directive in both places).
  - Writes atomically (temporary file, fsync, rename). Does not restart dockerd; RV(restart_required) tells when
    the engine must be restarted to use the new file.
author:
  - hostprep.container_host maintainers (@hostprep)
extends_documentation_fragment:
  - hostprep.container_host.attributes
  - hostprep.container_host.attributes.actiongroup_docker_storage
  - hostprep.container_host.dockerd_flags
options:
  path:
    description:
      - Absolute path of the daemon configuration file.
      - A new file gets mode V(0644); an existing file keeps its mode and owner.
      - When O(path) is a symbolic link, the file it points to is written and the link stays. A dangling link, a
        link to a directory, a directory, a file that is not a regular file, a file with other hard links (an atomic
        write would leave them stale) and a file bigger than 1 MiB (daemon.json files are a few KiB) are refused
        before the file is read.
      - A file that is not UTF-8 text, not a JSON object, or that sets a key more than once (dockerd uses the last
        value, so a rewrite would silently drop the others) is refused; nothing is changed then.
      - A write that fails (a full filesystem, an immutable directory or file, a bind mount) leaves the old file
        as it was, removes the backup and directories it had made, and says so.
    type: path
    default: /etc/docker/daemon.json
  state:
    description:
      - V(present) sets the keys given in O(config).
      - V(absent) removes the keys given in O(config) (whatever their value) and in O(keys).
    type: str
    choices: [present, absent]
    default: present
  config:
    description:
      - Daemon settings, as they appear in daemon.json (for example C(storage-driver), C(storage-opts), C(log-opts)).
      - With O(state=present), required. Lists and scalar values replace the current value whole. Objects are merged
        key by key when O(recursive=true).
      - With O(state=absent), each key named here is removed. A non-empty object value names keys inside that
        object to remove instead (C(features) with C(containerd-snapshotter) removes only that feature).
      - A C(data-root), C(graph), C(exec-root) or C(pidfile) the task sets must be an absolute path (an empty value
        is usually a templated variable that came out empty). NaN and Infinity are refused (dockerd reads none).
    type: dict
  keys:
    description:
      - Top-level keys to remove, with O(state=absent).
    type: list
    elements: str
  recursive:
    description:
      - With O(state=present), merge object values (such as C(log-opts) or C(features)) key by key into the current
        object instead of replacing it.
    type: bool
    default: true
  backup:
    description:
      - Keep a copy of the previous file, with a timestamp in its name, when the file changes.
    type: bool
    default: false
  validate:
    description:
      - Check the resulting configuration against the Docker engine installed on the host before writing.
      - C(storage-driver) must be a driver this engine version has (Engine 24 removed C(aufs) and C(overlay),
        Engine 25 removed C(devicemapper)); C(storage-opts) must belong to that driver; C(btrfs) needs the data root
        on btrfs; C(overlay2) needs d_type, and C(overlay2.size) needs XFS mounted with project quota; C(dm.thinpooldev)
        must name an existing block device under C(/dev/mapper).
      - Runs C(dockerd --validate --config-file) on the result where the engine has it (Engine 23 and later); on
        Engine 20.10 the keys are checked against the ones that engine accepts.
      - Fails when no dockerd is found; set O(validate=false) to write a file before the engine is installed.
      - Only runs when the file would change.
    type: bool
    default: true
  dockerd_path:
    description:
      - Path of the dockerd binary to validate against. By default dockerd is looked up on E(PATH) and in the usual
        C(/usr/bin), C(/usr/sbin), C(/usr/local/bin) directories.
    type: path
attributes:
  check_mode:
    description: Reports what would change and changes nothing (validation still runs).
  diff_mode:
    description: Shows the configuration before and after as data.
  platform:
    description: Linux hosts with the Docker engine (C(dockerd)) installed, unless O(validate=false).
requirements:
  - C(findmnt) (util-linux) for the filesystem checks.
notes:
  - The module writes the file only; restart dockerd (for example with a handler) when RV(restart_required) is true.
  - A storage driver change makes images and containers of the old driver invisible to the engine. The role
    C(hostprep.container_host.docker_storage) plans such a switch safely.
seealso:
  - name: dockerd daemon configuration file
    description: Every key daemon.json accepts.
    link: https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file
  - name: Docker storage drivers
    description: Which driver to choose and what each needs.
    link: https://docs.docker.com/engine/storage/drivers/select-storage-driver/
'''

EXAMPLES = r'''
- name: Use overlay2 with a per-container size limit (data root on XFS with pquota)
  hostprep.container_host.docker_daemon_config:
    config:
      storage-driver: overlay2
      storage-opts:
        - overlay2.size=20G
  register: daemon_config

- name: Restart dockerd when the configuration changed
  ansible.builtin.service:
    name: docker
    state: restarted
  when: daemon_config.restart_required

- name: Use btrfs (the data root must be on btrfs already)
  hostprep.container_host.docker_daemon_config:
    config:
      storage-driver: btrfs
    backup: true

- name: Remove the storage options and one log option, keep everything else
  hostprep.container_host.docker_daemon_config:
    state: absent
    keys:
      - storage-opts
    config:
      log-opts:
        max-file: null

- name: Write a file for an engine installed later
  hostprep.container_host.docker_daemon_config:
    path: /srv/image/etc/docker/daemon.json
    config:
      log-driver: local
    validate: false
    flags_sources: []
'''

RETURN = r'''
restart_required:
  description: Whether the file changed (or would change in check mode), so dockerd must be restarted to use it.
  returned: always
  type: bool
  sample: true
path:
  description: The configuration file.
  returned: always
  type: str
  sample: /etc/docker/daemon.json
config:
  description: The whole configuration as it is after the task (or would be, in check mode).
  returned: always
  type: dict
  sample: {"log-driver": "local", "storage-driver": "overlay2", "storage-opts": ["overlay2.size=20G"]}
changed_keys:
  description: Top-level keys whose value the task set, changed or removed.
  returned: always
  type: list
  elements: str
  sample: [storage-driver]
diff:
  description: The configuration before and after, as data.
  returned: always
  type: dict
  sample: {"before": {"log-driver": "local"}, "after": {"log-driver": "local", "storage-driver": "btrfs"}}
backup_file:
  description: The copy of the previous file, when O(backup=true) and the file changed.
  returned: always
  type: str
  sample: /etc/docker/daemon.json.12345.2026-01-01@10:00:00~
flags:
  description: The dockerd command-line flags found in O(flags_sources).
  returned: always
  type: list
  elements: dict
  sample: [{"flag": "--host", "value": "fd://", "key": "hosts", "source": "/lib/systemd/system/docker.service", "line": 14}]
engine:
  description: The engine validated against.
  returned: when the file changes and O(validate=true)
  type: dict
  contains:
    path:
      description: Path of dockerd.
      type: str
      sample: /usr/sbin/dockerd
    version:
      description: Engine version.
      type: str
      sample: 20.10.24
    has_validate:
      description: Whether this dockerd has C(--validate) (Engine 23 and later).
      type: bool
      sample: false
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostprep.container_host.plugins.module_utils._common import execute
from ansible_collections.hostprep.container_host.plugins.module_utils._daemon_config import manage
from ansible_collections.hostprep.container_host.plugins.module_utils._dockerd_flags import DEFAULT_FLAGS_SOURCES


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', default='/etc/docker/daemon.json'),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            config=dict(type='dict'),
            keys=dict(type='list', elements='str', no_log=False),
            recursive=dict(type='bool', default=True),
            backup=dict(type='bool', default=False),
            validate=dict(type='bool', default=True),
            dockerd_path=dict(type='path'),
            flags_sources=dict(type='list', elements='path', default=list(DEFAULT_FLAGS_SOURCES)),
        ),
        required_if=[('state', 'present', ['config'])],
        required_one_of=[('config', 'keys')],
        supports_check_mode=True,
    )
    execute(module, manage, path=module.params['path'])


if __name__ == '__main__':
    main()
