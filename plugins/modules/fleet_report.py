#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The documentation of the action plugin plugins/action/fleet_report.py, which runs on the controller.

from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = r'''
---
module: fleet_report
short_description: Record hosts' validation results on the controller and write the fleet report
version_added: 0.2.0
description:
  - Runs on the controller (an action plugin); nothing runs on the managed host.
  - With O(operation=record), checks one host's result (what M(hostprep.container_host.docker_cow_benchmark) and
    M(hostprep.container_host.path_mtu_info) returned), compares it with O(limits) and stores it as
    O(dir)C(/runs/HOST/TIMESTAMP.json), keeping the host's last O(keep) runs for the trend. A result that cannot be
    used (a string where a number belongs, a missing key) is stored as it came, its limits are not checked, and
    RV(msg) says what is wrong. A result with C(failed) (why the benchmark failed) and an empty C(benchmark) is
    a run of a failed host; the report shows it as failed, not missing.
  - With O(operation=render), writes the report for 10 to 1,000 hosts from the newest usable run of every host
    (records written by earlier versions of the collection read the same) - C(report.html), one self-contained
    page (inline SVG, no script, nothing fetched) that starts with a headline (hosts, hosts over a limit, failed
    and missing hosts, backends and engine versions, when measured) and the violations, then the distribution of
    every metric per backend and engine version (min, quartiles, median, max as box plots; hosts beyond 1.5
    interquartile ranges of their own group named as outliers), then every host and the trends folded away;
    C(report.md); C(report.json); C(report.csv) (one row per host) and C(report-runs.csv) (every run).
  - Host names and timestamps never become paths outside O(dir), no link below it is followed, every file is
    written to a temporary name and renamed, and every host string is escaped in the HTML, Markdown and CSV.
    A run file that cannot be used is skipped and named at the top of the report and in RV(not_used).
author:
  - hostprep.container_host maintainers (@hostprep)
extends_documentation_fragment:
  - hostprep.container_host.attributes.actiongroup_validate
attributes:
  action:
    support: full
    description: Runs on the controller.
  async:
    support: none
    description: Writing a few files on the controller does not need it.
  check_mode:
    support: full
    description: Writes nothing and reports a change.
  diff_mode:
    support: none
    description: The report is new on every run; there is nothing to compare.
  idempotent:
    support: none
    description: Every record is a new run of the host, and every report carries when it was generated.
  platform:
    support: full
    platforms: posix
    description: The controller.
options:
  operation:
    description: Store one host's result (V(record)), or write the report from every stored run (V(render)).
    type: str
    required: true
    choices: [record, render]
  dir:
    description:
      - The report directory on the controller. A relative path is relative to where ansible-playbook runs.
      - It may be a link (the operator chose it); nothing below it is followed.
    type: path
    required: true
  result:
    description:
      - With O(operation=record), the host's result, V({host, timestamp, benchmark, pmtu}) as role
        hostprep.container_host.validate builds it; C(timestamp) is V(YYYYMMDDTHHMMSSZ), C(benchmark) the
        result of M(hostprep.container_host.docker_cow_benchmark) (V({}) when it did not run), C(pmtu) the
        C(targets) of M(hostprep.container_host.path_mtu_info), and C(failed) why the benchmark failed, if it did.
    type: raw
  limits:
    description:
      - With O(operation=record), the limits the host's medians are compared with - C(max_start_seconds),
        C(max_detached_start_seconds), C(max_commit_seconds), C(max_disk_per_container), C(max_disk_per_commit),
        C(max_memory_per_container) (sizes in bytes or with a binary suffix), C(expected_mtu); null for none.
      - A limit that is not a finite number or size at or above zero fails the task, and nothing is stored.
    type: dict
    default: {}
  keep:
    description: Runs kept per host; V(0) keeps all.
    type: int
    default: 0
  host:
    description: The host the result belongs to (its directory under C(runs/)); by default the inventory name.
    type: str
  title:
    description: The report's title, with O(operation=render).
    type: str
    default: Container host validation
  hosts:
    description:
      - With O(operation=render), every host that should have a result (for example V(ansible_play_hosts_all));
        a host of the list without any usable run is in the report as missing.
    type: list
    elements: str
    default: []
'''

EXAMPLES = r'''
- name: Record this host's result
  hostprep.container_host.fleet_report:
    operation: record
    dir: /srv/validate-report
    result:
      host: "{{ inventory_hostname }}"
      timestamp: "{{ now(utc=true, fmt='%Y%m%dT%H%M%SZ') }}"
      benchmark: "{{ bench }}"
      pmtu: "{{ paths.targets }}"
    limits:
      max_start_seconds: 2
      max_disk_per_container: 1M
  register: recorded

- name: Write the report once, after every host recorded
  hostprep.container_host.fleet_report:
    operation: render
    dir: /srv/validate-report
    title: Rack 12
    hosts: "{{ ansible_play_hosts_all }}"
  run_once: true
'''

RETURN = r'''
file:
  description: The run file written (O(operation=record)).
  returned: record
  type: str
  sample: /srv/validate-report/runs/web01/20261129T020000Z.json
used:
  description: Whether the result can be used; if not, RV(problems) and RV(msg) say why and its limits were not checked.
  returned: record
  type: bool
  sample: true
problems:
  description: What keeps the result out of the report.
  returned: record
  type: list
  elements: str
  sample: ['benchmark.scenarios.oneshot.seconds.median is the string "fast", not a finite number within +-1e18']
msg:
  description: The host, the file and what is wrong, for a result that cannot be used; why, when the task fails.
  returned: record of a result that cannot be used, or failure
  type: str
violations:
  description: Every limit a median exceeds and every path MTU below the expected one, each with C(host), C(metric),
    C(limit_name), C(limit), C(value), C(unit) and C(msg).
  returned: record
  type: list
  elements: dict
backend:
  description: The storage under the engine, as the report names it.
  returned: record
  type: str
  sample: overlay2 on xfs
pruned:
  description: Run files removed beyond O(keep).
  returned: record
  type: list
  elements: str
html:
  description: The report page.
  returned: render
  type: str
  sample: /srv/validate-report/report.html
markdown:
  description: The report in Markdown.
  returned: render
  type: str
json:
  description: The report as JSON (every group's distributions and every host's latest figures).
  returned: render
  type: str
csv:
  description: One row per host, the medians in seconds and bytes.
  returned: render
  type: str
runs_csv:
  description: One row per stored run (the trends).
  returned: render
  type: str
hosts:
  description: The hosts in the report.
  returned: render
  type: list
  elements: str
missing:
  description: Hosts of O(hosts) without any usable run.
  returned: render
  type: list
  elements: str
failed:
  description: Hosts whose latest benchmark failed, and why.
  returned: render
  type: dict
over_limit:
  description: Hosts whose latest run exceeds a limit.
  returned: render
  type: list
  elements: str
metrics:
  description: The metrics the report shows.
  returned: render
  type: list
  elements: str
not_used:
  description: The run files skipped, each with C(host), C(file), C(problem) and C(msg).
  returned: render
  type: list
  elements: dict
'''
