# -*- coding: utf-8 -*-
# Copyright (c) hostprep.container_host contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""btrfs under the Docker data root, private to hostprep.container_host.

Put a btrfs filesystem on a device, mount it, bind-mount it onto the
directory where the engine keeps its layers and persist both mounts in
fstab. The steps: read the device (``blkid -p -o export``, ``wipefs
--json``), the mount table (``findmnt -J``), fstab and the running engines;
``plan()`` decides -- or refuses -- without touching anything; ``apply()``
does the work outside check mode and rolls the mounts back when a step
fails. Parsers and ``plan()`` are pure functions.
"""

from __future__ import annotations

import os
import shutil
import typing as t
import uuid

from ansible_collections.hostprep.container_host.plugins.module_utils import _common
from ansible_collections.hostprep.container_host.plugins.module_utils._common import (
    HostprepError,
    atomic_write,
    read_text,
    run,
)
from ansible_collections.hostprep.container_host.plugins.module_utils import _blockdev
from ansible_collections.hostprep.container_host.plugins.module_utils import _daemon_config
from ansible_collections.hostprep.container_host.plugins.module_utils._daemon_json import config_text
from ansible_collections.hostprep.container_host.plugins.module_utils._dockerd_flags import read_flags
from ansible_collections.hostprep.container_host.plugins.module_utils import _engine
from ansible_collections.hostprep.container_host.plugins.module_utils import _engine_use
from ansible_collections.hostprep.container_host.plugins.module_utils import _fstab
from ansible_collections.hostprep.container_host.plugins.module_utils import _lvm
from ansible_collections.hostprep.container_host.plugins.module_utils import _mounts

SNAPSHOTTER_ROOT = os.path.join(_engine.CONTAINERD_ROOT, 'io.containerd.snapshotter.v1.btrfs')
DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock'
# mkfs.btrfs (btrfs-progs 6.2) refuses smaller devices: "minimum size for each
# btrfs device is 114294784" (tests/unit/fixtures/btrfs/mkfs_btrfs_too_small.txt).
BTRFS_MIN_BYTES = 114294784


# ---- the device ----------------------------------------------------------------

def parse_blkid_export(text: str) -> dict[str, str]:
    """``blkid -p -o export DEV``: KEY=value lines (empty when blkid finds
    nothing and exits 2)."""
    found: dict[str, str] = {}
    for line in (text or '').splitlines():
        key, eq, value = line.partition('=')
        if eq and key.strip():
            found[key.strip()] = value.strip()
    return found


class DeviceFacts:
    """What is on the device now."""

    def __init__(self, path: str, size: int, blkid: dict[str, str],
                 signatures: list[dict[str, t.Any]], uses: list[str] | None = None) -> None:
        self.path = path
        self.size = size
        self.blkid = blkid
        self.signatures = signatures
        self.uses = list(uses or [])  # _blockdev.uses(): mounted, swap, holders, PV, RAID, open

    @property
    def fstype(self) -> str | None:
        return self.blkid.get('TYPE') or self.blkid.get('PTTYPE')

    @property
    def is_btrfs(self) -> bool:
        return self.blkid.get('TYPE') == 'btrfs'

    @property
    def is_empty(self) -> bool:
        return not self.signatures and not self.blkid.get('TYPE') and not self.blkid.get('PTTYPE')

    @property
    def uuid(self) -> str | None:
        return self.blkid.get('UUID')

    @property
    def label(self) -> str | None:
        return self.blkid.get('LABEL')

    def describe_signatures(self) -> str:
        if self.signatures:
            return ', '.join('%s at offset %s' % (sig['type'], sig['offset']) for sig in self.signatures)
        return self.fstype or 'unknown'

    def as_dict(self) -> dict[str, t.Any]:
        return {'path': self.path, 'size': self.size, 'fstype': self.fstype, 'uuid': self.uuid,
                'label': self.label, 'signatures': self.signatures}


def device_size(path: str) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def check_device_path(path: str) -> None:
    """Refuse what is not an existing block device, naming what it is."""
    if not os.path.exists(path):
        raise HostprepError('device %s does not exist; give the path of a block device (a disk, a partition or '
                            'a loop device)' % path)
    if not _engine.is_block_device(path):
        what = 'a directory' if os.path.isdir(path) else 'a regular file' if os.path.isfile(path) else 'not a block device'
        hint = ('; to use an image file, attach it to a loop device first (losetup --find --show %s) and give '
                'that device' % path if os.path.isfile(path) else '')
        raise HostprepError('device %s is %s, not a block device%s' % (path, what, hint))


def read_device(module: t.Any, path: str, mounts: list[_mounts.Mount] | None = None) -> DeviceFacts:
    """blkid and wipefs of the device and, when mounts is given, every use of
    it and its partitions (_blockdev.probe)."""
    check_device_path(path)
    blkid = module.get_bin_path('blkid', required=True)
    rc, out, err = run(module, [blkid, '-p', '-o', 'export', path], check_rc=False)
    if rc not in (0, 2):  # 2: nothing found
        raise HostprepError('blkid cannot read device %s (exit status %d: %s); check that the device is readable '
                            'and not ambiguous (wipefs %s lists its signatures)'
                            % (path, rc, (err or out).strip(), path), rc=rc, stderr=err)
    wipefs = module.get_bin_path('wipefs', required=True)
    dummy_rc, wout, dummy_err = run(module, [wipefs, '--json', '--no-act', path])
    uses: list[str] = []
    if mounts is not None:
        facts = _blockdev.probe(lambda argv, check_rc=True: run(module, argv, check_rc), path, mounts)
        pvs = None  # LVM is not needed here; when installed, it names the volume group of a PV
        if module.get_bin_path('pvs', opt_dirs=_lvm.SBIN_DIRS):
            try:
                pvs = _lvm.lvm_report(module, 'pv', [])
            except HostprepError:
                pvs = None
        uses = _blockdev.uses(facts, pvs)
    return DeviceFacts(path, device_size(path), parse_blkid_export(out if rc == 0 else ''),
                       _blockdev.parse_wipefs(wout), uses)


# ---- where the engine keeps its layers --------------------------------------------

def layer_root(version: _engine.Version | None, config: dict[str, t.Any],
               flags: list[_daemon_config.FlagUse] | None = None) -> tuple[str, bool]:
    """The directory that holds the image layers, and whether that is
    containerd's btrfs snapshotter root (containerd image store) rather than
    dockerd's data root. Without an engine installed, the daemon.json
    feature flag alone decides."""
    if version is None:
        features = config.get('features') if isinstance(config.get('features'), dict) else {}
        containerd = features.get('containerd-snapshotter') is True
    else:
        containerd = _engine.uses_containerd_store(version, config)
    if containerd:
        return SNAPSHOTTER_ROOT, True
    return _daemon_config.data_root_of(config, flags), False


def detect_layer_root(module: t.Any, daemon_config: str) -> tuple[str, bool, str | None]:
    """layer_root() for this host: daemon.json, dockerd flags in the systemd
    unit and environment files, and the installed engine's version."""
    config, dummy_warnings = _daemon_config.parse_config(config_text(daemon_config), daemon_config)
    flags = read_flags(list(_daemon_config.DEFAULT_FLAGS_SOURCES))
    engine = _engine.engine_facts(module)
    version = engine.version if engine else None
    root, containerd = layer_root(version, config or {}, flags)
    return root, containerd, _engine.version_string(version) if version else None


# ---- fstab -------------------------------------------------------------------------

def _unquote(value: str) -> str:
    return value[1:-1] if len(value) > 1 and value[0] == value[-1] and value[0] in '"\'' else value


def source_refers_to(spec: str, device: DeviceFacts,
                     same_device: t.Callable[[str, str], bool] = _mounts.same_block_device) -> bool:
    """Whether an fstab source (UUID=, LABEL=, PARTUUID=, PARTLABEL= or a
    path such as /dev/disk/by-id/...) names the device."""
    tag, eq, value = spec.partition('=')
    if eq and tag in ('UUID', 'LABEL', 'PARTUUID', 'PARTLABEL'):
        have = {'UUID': device.uuid, 'LABEL': device.label,
                'PARTUUID': device.blkid.get('PART_ENTRY_UUID'),
                'PARTLABEL': device.blkid.get('PART_ENTRY_NAME')}[tag]
        value = _unquote(value)
        if tag.endswith('UUID'):
            return bool(have) and value.lower() == str(have).lower()
        return bool(have) and value == have
    return spec.startswith('/') and (os.path.normpath(spec) == os.path.normpath(device.path)
                                     or same_device(spec, device.path))


def wanted_entries(device: DeviceFacts, uuid_value: str | None, mount_point: str, target: str,
                   mount_options: list[str], current: _fstab.Fstab,
                   same_device: t.Callable[[str, str], bool] = _mounts.same_block_device,
                   ) -> tuple[list[_fstab.Entry], t.Callable[[_fstab.Entry, _fstab.Entry], bool]]:
    """The btrfs entry and the bind entry, and how to compare them with what
    fstab holds. A btrfs entry that already names the device another way
    (a path, LABEL=, ...) keeps its spelling; a new one uses UUID=."""
    source = 'UUID=%s' % uuid_value if uuid_value else device.path
    for entry in current.find(mount_point):
        if source_refers_to(entry.source, device, same_device):
            source = entry.source
            break
    btrfs = _fstab.Entry(source, mount_point, 'btrfs', list(mount_options) or ['defaults'], 0, 0)
    # x-systemd.requires-mounts-for orders the bind mount after the btrfs
    # mount under systemd (systemd.mount(5)); mount(8) ignores x-* options.
    bind = _fstab.Entry(mount_point, target, 'none',
                        ['bind', 'x-systemd.requires-mounts-for=%s' % _fstab.escape(mount_point)], 0, 0)

    def same(existing: _fstab.Entry, wanted: _fstab.Entry) -> bool:
        if existing.fstype != wanted.fstype or existing.option_set() != wanted.option_set() \
                or (existing.dump, existing.passno) != (wanted.dump, wanted.passno):
            return False
        if wanted is btrfs:
            return source_refers_to(existing.source, device, same_device)
        return _fstab.normpath(existing.source) == _fstab.normpath(wanted.source)

    return [btrfs, bind], same


# ---- the plan ----------------------------------------------------------------------

def expected_fsroot(mount_options: list[str]) -> str:
    """FSROOT the btrfs mount will show: ``/`` or the subvolume named in
    ``subvol=``."""
    for opt in mount_options:
        key, eq, value = opt.partition('=')
        if key == 'subvol' and eq:
            return '/' + value.strip('/')
    return '/'


class Plan:
    """What the module will do, decided before anything changes."""

    def __init__(self) -> None:
        self.wipe = False
        self.format = False
        self.mount = False
        self.bind = False
        self.migrate = False
        self.fsroot = '/'
        self.warnings: list[str] = []

    @property
    def changes_mounts(self) -> bool:
        return self.format or self.mount or self.bind or self.migrate


def _check_paths(mount_point: str, target: str) -> None:
    for name, path in (('mount_point', mount_point), ('data_root', target)):
        if not path.startswith('/'):
            raise HostprepError('%s %s is not an absolute path; give an absolute path' % (name, path))
        if _fstab.normpath(path) == '/':
            raise HostprepError('%s cannot be /; give a directory of its own' % name)
    if _mounts.is_within(mount_point, target) or _mounts.is_within(target, mount_point):
        raise HostprepError('mount_point %s and data_root %s must be separate directories, neither inside the '
                            'other; choose another mount_point (for example /mnt/docker-btrfs)'
                            % (mount_point, target))


def plan(device: DeviceFacts, mounts: list[_mounts.Mount], mount_point: str, target: str,
         target_listing: list[str] | None, target_is_dir: bool, params: dict[str, t.Any],
         engines: list[str],
         same_device: t.Callable[[str, str], bool] = _mounts.same_block_device) -> Plan:
    """Decide every step, or refuse with a message that names the object and
    says what to do. target_listing is the data root's entries (None when it
    does not exist); engines describes running engines using the paths."""
    result = Plan()
    _check_paths(mount_point, target)
    mount_options = list(params.get('mount_options') or [])
    result.fsroot = expected_fsroot(mount_options)

    # A running engine blocks every change, so say that first (dockerd also
    # bind-mounts its data root onto itself, which would look like a conflict).
    at_mount_point = _mounts.visible_at(mounts, mount_point)
    at_target = _mounts.visible_at(mounts, target)
    if engines:
        fsroot = at_mount_point.fsroot if at_mount_point is not None else result.fsroot
        complete = (device.is_btrfs and at_mount_point is not None and at_target is not None
                    and _mounts.shows_same_files(at_mount_point, device.path, fsroot, same_device)
                    and _mounts.shows_same_files(at_target, device.path, fsroot, same_device))
        if not complete:
            raise HostprepError('the container engine is running: %s; stop it (and its containers) before its '
                                'storage is moved, then run this again' % '; '.join(engines), engines=engines)

    # The device: one in use is never wiped or formatted, whatever force says.
    if not device.is_btrfs and device.uses:
        raise HostprepError(_blockdev.refusal(device.path, device.uses, 'force=true'), uses=device.uses)
    if device.is_btrfs:
        if params.get('label') and device.label != params['label']:
            result.warnings.append('device %s already holds btrfs labelled %r, not %r; it is kept as it is (set '
                                   'the label with: btrfs filesystem label %s %s)'
                                   % (device.path, device.label, params['label'], device.path, params['label']))
    elif not device.is_empty:
        if not params.get('force'):
            raise HostprepError('device %s carries a signature (%s); it is not formatted unless you pass '
                                'force=true, which destroys what is on it' % (device.path, device.describe_signatures()))
        result.wipe = bool(device.signatures)
        result.format = True
    else:
        result.format = True
    if result.format:
        device_mounts = _mounts.mounts_of(mounts, device.path, same_device)
        if device_mounts:  # read_device() without mounts finds no uses: keep this guard in the pure plan too
            found = ['mounted (%s)' % ', '.join('%s on %s' % (device.path, m.target) for m in device_mounts)]
            raise HostprepError(_blockdev.refusal(device.path, found, 'force=true'), uses=found)
        if device.size < BTRFS_MIN_BYTES:
            raise HostprepError('device %s is too small for btrfs: %d bytes, mkfs.btrfs needs at least %d; give a '
                                'larger device' % (device.path, device.size, BTRFS_MIN_BYTES))

    # The btrfs mount.
    if at_mount_point is None:
        result.mount = True
    elif not _mounts.shows_same_files(at_mount_point, device.path, result.fsroot, same_device):
        raise HostprepError('mount_point %s already has %s mounted on it, not device %s; unmount it or choose '
                            'another mount_point' % (mount_point, at_mount_point.describe(), device.path))
    else:
        result.fsroot = at_mount_point.fsroot or '/'

    # The bind mount onto the data root.
    if at_target is None:
        result.bind = True
    elif not _mounts.shows_same_files(at_target, device.path, result.fsroot, same_device):
        raise HostprepError('data root %s already has %s mounted on it, not %s of device %s; unmount it first, or '
                            'choose another data_root' % (target, at_target.describe(), result.fsroot, device.path))
    if result.bind and target_listing is not None and not target_is_dir:
        raise HostprepError('data root %s exists and is not a directory; remove it or choose another data_root'
                            % target)

    if result.bind and target_listing:
        if not params.get('migrate'):
            shown = ', '.join(sorted(target_listing)[:5]) + (', ...' if len(target_listing) > 5 else '')
            raise HostprepError('data root %s is not empty (%s); pass migrate=true to copy its content onto the '
                                'btrfs filesystem first, or empty it' % (target, shown))
        result.migrate = True
    return result


# ---- copying the data root -----------------------------------------------------------

def tree_size(root: str) -> dict[str, int]:
    """Files (everything but directories) and bytes of regular files under
    root; a file with several hard links counts once."""
    files = 0
    size = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            info = os.lstat(os.path.join(dirpath, name))
            key = (info.st_dev, info.st_ino)
            if key in seen:
                continue
            seen.add(key)
            files += 1
            if os.path.isfile(os.path.join(dirpath, name)) and not os.path.islink(os.path.join(dirpath, name)):
                size += info.st_size
    return {'files': files, 'bytes': size}


def copy_tree(module: t.Any, source: str, destination: str) -> None:
    """Copy source's content and its own mode/owner into destination in ONE
    cp invocation, so hard links between files stay hard links. -a keeps
    ownership, modes (with ACLs), timestamps and symlinks; the explicit
    --preserve=xattr makes a lost extended attribute an error."""
    cp = module.get_bin_path('cp', required=True)
    run(module, [cp, '-a', '--preserve=xattr', '--reflink=auto', '--',
                 os.path.join(source, '.'), destination.rstrip('/') + '/'])


def empty_directory(path: str) -> None:
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)


# ---- the module's work ----------------------------------------------------------------

def _mount_lines(mounts: list[_mounts.Mount], paths: list[str]) -> str:
    lines = []
    for path in paths:
        for mount in _mounts.mounts_at(mounts, path):
            source = mount.describe().rsplit(' (', 1)[0]
            lines.append('%s on %s type %s (%s)\n' % (source, mount.target, mount.fstype, ','.join(mount.options)))
    return ''.join(lines)


def _listing(path: str) -> tuple[list[str] | None, bool]:
    if not os.path.lexists(path):
        return None, False
    if not os.path.isdir(path) or os.path.islink(path):
        return [os.path.basename(path)], False
    return os.listdir(path), True


def manage(module: t.Any) -> dict[str, t.Any]:
    """btrfs_data_root's run: read the device, the mounts, the layer directory and the engines; plan (or refuse);
    plan fstab; apply outside check mode; report the mounts as the kernel shows them (or, in check mode, as
    they would be)."""
    params = module.params
    # The kernel reports mount targets with symbolic links resolved: so are
    # both paths here, in the plan, the check after mounting and fstab.
    mount_point = _mounts.resolve(params['mount_point'])
    check_device_path(params['device'])
    host = read_host(module, params, mount_point)
    device, mounts, target = host['device'], host['mounts'], host['target']
    the_plan = plan(device, mounts, mount_point, target, host['listing'], host['is_dir'], params, host['engines'])
    new_uuid = str(uuid.uuid4()) if the_plan.format else None
    fstab = plan_fstab(params, device, new_uuid or device.uuid, mount_point, target)

    migrated = tree_size(target) if the_plan.migrate else None
    changed = the_plan.changes_mounts or fstab['changed']
    mounts_after = mounts
    if changed and not module.check_mode:
        mounts_after, migrated = apply(module, the_plan, device, mount_point, target, new_uuid, fstab['path'],
                                       fstab['after'] if fstab['changed'] else None, migrated)
        device = read_device(module, params['device'])
    for warning in the_plan.warnings + late_warnings(params, the_plan, mounts, mount_point, host):
        module.warn(warning)
    result_mounts, predicted = mounts_report(module, params, the_plan, mount_point, target, mounts, mounts_after)
    return {
        'changed': changed,
        'device': device.as_dict(),
        'formatted': the_plan.format,
        'mount_point': mount_point,
        'data_root': target,
        'containerd_image_store': host['containerd_store'],
        'engine_version': host['engine_version'],
        'mounts': result_mounts,
        'migrated': migrated,
        'fstab': fstab['path'],
        'fstab_changed': fstab['changed'],
        'fstab_entries': [entry.as_dict() for entry in fstab['entries']],
        'diff': [
            {'before_header': fstab['path'], 'after_header': fstab['path'],
             'before': fstab['before'] or '', 'after': fstab['after']},
            {'before_header': 'mounts at %s and %s' % (mount_point, target),
             'after_header': 'mounts at %s and %s' % (mount_point, target),
             'before': _mount_lines(mounts, [mount_point, target]),
             'after': _mount_lines(predicted, [mount_point, target])},
        ],
    }


def read_host(module: t.Any, params: dict[str, t.Any], mount_point: str) -> dict[str, t.Any]:
    """Everything the plan needs, read before anything changes: the mount table, the device, the layer directory
    (given, or detected with the engine's version) and its listing, and the engines using the paths."""
    mounts = _mounts.read_mounts(module)
    device = read_device(module, params['device'], mounts)
    containerd_store = False
    engine_version = None
    if params.get('data_root'):
        target = _mounts.resolve(params['data_root'])
    else:
        target, containerd_store, engine_version = detect_layer_root(module, params['daemon_config'])
        target = _mounts.resolve(target)
    listing, is_dir = _listing(target)
    answering = _engine_use.ping_engine(params['docker_host'])
    engines = _engine_use.engines_using([target, mount_point], _engine_use.read_processes())
    if answering:
        engines.insert(0, 'the engine answering at %s (data root %s)'
                       % (params['docker_host'], answering.get('data_root') or 'unknown'))
    return {'mounts': mounts, 'device': device, 'target': target, 'containerd_store': containerd_store,
            'engine_version': engine_version, 'listing': listing, 'is_dir': is_dir, 'engines': engines}


def plan_fstab(params: dict[str, t.Any], device: t.Any, uuid_: str | None, mount_point: str,
               target: str) -> dict[str, t.Any]:
    """fstab before and after, with the btrfs entry (by UUID) and the bind entry after it."""
    path = params['fstab']
    if os.path.isdir(path):
        raise HostprepError('fstab %s is a directory; give the path of the fstab file' % path)
    before = read_text(path)
    entries, same = wanted_entries(device, uuid_, mount_point, target, list(params.get('mount_options') or []),
                                   _fstab.Fstab(before))
    after, changed = _fstab.ensure_entries(before, entries, same)
    return {'path': path, 'before': before, 'after': after, 'changed': changed, 'entries': entries}


def late_warnings(params: dict[str, t.Any], the_plan: t.Any, mounts: list[_mounts.Mount], mount_point: str,
                  host: dict[str, t.Any]) -> list[str]:
    """Mount options a mounted filesystem lacks until its next mount, and where the containerd image store
    puts the layers."""
    warnings = []
    if not the_plan.mount and not the_plan.bind:
        kernel = _mounts.visible_at(mounts, mount_point)
        if kernel is not None:
            missing = [opt for opt in params.get('mount_options') or []
                       if opt != 'defaults' and not _option_shown(opt, kernel.options)]
            if missing:
                warnings.append('%s is mounted without %s; the fstab entry has them from the next mount on '
                                '(remount it while the engine is stopped to use them now)'
                                % (mount_point, ','.join(missing)))
    if host['containerd_store'] and params.get('data_root') is None:
        warnings.append('the engine uses the containerd image store: the btrfs filesystem is bind-mounted onto '
                        'containerd\'s btrfs snapshotter root %s, where the image layers live' % host['target'])
    return warnings


def mounts_report(module: t.Any, params: dict[str, t.Any], the_plan: t.Any, mount_point: str, target: str,
                  mounts: list[_mounts.Mount], mounts_after: list[_mounts.Mount]) -> tuple[list[dict], list]:
    """The two mounts of the result (with the kernel's view after a real run) and the mount table for the diff:
    the kernel's after a run, predicted in check mode."""
    device_path = params['device']
    options = list(params.get('mount_options') or []) or ['defaults']
    result_mounts = [
        {'source': device_path, 'target': mount_point, 'fstype': 'btrfs', 'options': options,
         'changed': the_plan.mount},
        {'source': mount_point, 'target': target, 'fstype': 'none', 'options': ['bind'], 'changed': the_plan.bind},
    ]
    if not module.check_mode:
        for item in result_mounts:
            kernel = _mounts.visible_at(mounts_after, item['target'])
            if kernel is not None:
                item['kernel'] = kernel.as_dict()
        return result_mounts, mounts_after
    predicted = list(mounts)
    if the_plan.mount:
        predicted.append(_mounts.Mount(mount_point, device_path, 'btrfs', options, the_plan.fsroot))
    if the_plan.bind:
        predicted.append(_mounts.Mount(target, device_path, 'btrfs', options, the_plan.fsroot))
    return result_mounts, predicted


def _option_shown(option: str, kernel_options: list[str]) -> bool:
    """The kernel shows compress=zstd as compress=zstd:3."""
    return any(opt == option or opt.startswith(option + ':') for opt in kernel_options)


class _Undo:
    """The steps apply() made, with how to undo each, recorded in the run's
    Changes as they happen."""

    def __init__(self, changes: _common.Changes) -> None:
        self.changes = changes
        self.steps: list[tuple[str, str, t.Callable[[], None]]] = []
        self.permanent = False  # wipefs and mkfs cannot be undone

    def made(self, what: str, undo: tuple[str, t.Callable[[], None]] | None = None) -> None:
        """Record a change; undo is (what the undo says when done, how)."""
        self.changes.made(what)
        if undo is None:
            self.permanent = True
        else:
            self.steps.append((what, undo[0], undo[1]))

    def roll_back(self) -> list[str]:
        """Undo in reverse order; returns the undos that failed."""
        done, failed = [], []
        for what, undone, action in reversed(self.steps):
            try:
                action()
                done.append(undone)
            except (HostprepError, OSError) as exc:
                failed.append('could not undo "%s": %s' % (what, exc.msg if isinstance(exc, HostprepError) else exc))
        for index, undone in enumerate(done):
            last = index == len(done) - 1
            self.changes.restored(undone, complete=last and not failed and not self.permanent)
        return failed


def apply(module: t.Any, the_plan: Plan, device: DeviceFacts, mount_point: str, target: str,
          new_uuid: str | None, fstab_path: str, fstab_text: str | None,
          migrated: dict[str, int] | None) -> tuple[list[_mounts.Mount], dict[str, int] | None]:
    """Do the planned steps. The mounts are checked against the kernel's
    table before fstab is written, so fstab is the last change. On a failure
    every step that can be undone is undone in reverse (fstab put back byte
    for byte, mounts unmounted, a copy onto the new filesystem removed,
    directories this run created removed) and the failure says what changed
    and what was restored; a wipe or a new filesystem cannot be undone and
    keeps the result changed=true."""
    params = module.params
    steps = _Undo(_common.changes_of(module))
    try:
        if the_plan.wipe:
            run(module, [module.get_bin_path('wipefs', required=True), '--all', '--', device.path])
            steps.made('erased the signatures on %s (%s; this cannot be undone)'
                       % (device.path, device.describe_signatures()))
        if the_plan.format:
            args = [module.get_bin_path('mkfs.btrfs', required=True), '--uuid', t.cast(str, new_uuid)]
            if params.get('label'):
                args += ['--label', params['label']]
            if the_plan.wipe:
                args.append('--force')
            run(module, args + list(params.get('mkfs_options') or []) + ['--', device.path])
            steps.made('made a btrfs filesystem on %s (this cannot be undone)' % device.path)
        if the_plan.mount:
            _created(steps, _common.make_directories(mount_point, 0o755))
            _mounts.mount(module, device.path, mount_point, 'btrfs', list(params.get('mount_options') or []))
            steps.made('mounted %s on %s' % (device.path, mount_point),
                       ('unmounted %s' % mount_point, lambda: _mounts.unmount(module, mount_point)))
        if the_plan.bind and os.path.isdir(target):
            # The data root keeps its own mode and owner once the bind mount covers it.
            info = os.stat(target)
            if the_plan.migrate:
                leftover = os.listdir(mount_point)
                if leftover:
                    raise HostprepError('cannot migrate data root %s: the btrfs filesystem at %s is not empty (%s); '
                                        'empty it or leave migrate off to use its content as it is'
                                        % (target, mount_point, ', '.join(sorted(leftover)[:5])))
                steps.made('copied data root %s onto %s' % (target, mount_point),
                           ('removed the copy under %s' % mount_point, lambda: empty_directory(mount_point)))
                copy_tree(module, target, mount_point)
                migrated = tree_size(mount_point)
                source_size = tree_size(target)
                if migrated != source_size:
                    raise HostprepError('the copy of data root %s onto %s is incomplete: %s copied of %s'
                                        % (target, mount_point, migrated, source_size))
            else:
                os.chown(mount_point, info.st_uid, info.st_gid)
                os.chmod(mount_point, info.st_mode & 0o7777)
        if the_plan.bind:
            _created(steps, _common.make_directories(target, 0o711))
            _mounts.bind_mount(module, mount_point, target)
            steps.made('bind-mounted %s onto %s' % (mount_point, target),
                       ('unmounted %s' % target, lambda: _mounts.unmount(module, target)))
        mounts_after = _mounts.read_mounts(module)
        at_target = _mounts.visible_at(mounts_after, target)
        if at_target is None or not _mounts.shows_same_files(at_target, device.path, the_plan.fsroot):
            raise HostprepError('after mounting, data root %s does not show device %s: the kernel reports %s'
                                % (target, device.path, at_target.describe() if at_target else 'no mount'))
        if fstab_text is not None:
            fstab_bytes = _common.read_bytes(fstab_path)  # what the undo puts back, exactly
            atomic_write(module, fstab_path, fstab_text, mode=0o644)
            steps.made('wrote %s' % fstab_path,
                       ('put back %s byte for byte' % fstab_path, lambda: _common.put_back(module, fstab_path, fstab_bytes)))
        return mounts_after, migrated
    except (HostprepError, OSError) as exc:
        failed = steps.roll_back()
        msg = exc.msg if isinstance(exc, HostprepError) else '%s%s: %s' % (
            type(exc).__name__, ' (%s)' % exc.filename if exc.filename else '', exc.strerror or exc)
        details = dict(exc.details) if isinstance(exc, HostprepError) else {}
        if failed:
            msg += '; rolling back failed: %s' % '; '.join(failed)
        raise HostprepError(msg, **details) from exc


def _created(steps: _Undo, directories: list[str]) -> None:
    if directories:
        steps.made('created directory %s' % directories[0],
                   ('removed directory %s' % directories[0], lambda: _remove_dirs(directories)))


def _remove_dirs(directories: list[str]) -> None:
    for path in reversed(directories):
        os.rmdir(path)
