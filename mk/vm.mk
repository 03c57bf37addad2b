# VM lab (tests/lab/vm/) and the molecule scenarios under molecule/ that use it.
# Included by the main Makefile: uses its `timed` macro, BIN, VENV and `deps`.
#
#   make vm-image                 build (or reuse) the cached lab images
#   make test-vm                  run every molecule scenario, one after another
#   make test-vm VM_SCENARIOS=storage_network
#   make vm-image VM_SUITES=bookworm   only one suite
#   make bench-vm                 the copy-on-write benchmark per backend, one VM each (22 min at count 5)

# Debian packages the host needs to build and boot the lab images.
VM_APT_PACKAGES := qemu-system-x86 qemu-utils debootstrap e2fsprogs openssh-client busybox-static \
	cpio xz-utils zstd gzip debian-archive-keyring ca-certificates procps
VM_SUITES ?= bookworm trixie
VM_CACHE ?= /var/cache/hostprep-vm
# Every directory under molecule/ with a molecule.yml, unless given.
VM_SCENARIOS ?= $(sort $(patsubst molecule/%/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))
# storage_faults (issue 9's fault matrix for the thin-pool paths, one VM) runs only under `make test-vm`.
# The scenarios `make test` (and so CI) runs after the host tests: the three that need what this
# host's kernel lacks (device-mapper) or an engine it does not have (26). storage_network and btrfs
# run only under `make test-vm`: their modules and roles run in `make integration` on this host
# (veth pairs in namespaces, loop-backed btrfs); the VM adds systemd-networkd and a reboot, for
# about 12 more minutes under emulation. `make test TEST_VM_SCENARIOS="$(VM_SCENARIOS)"` runs all.
TEST_VM_SCENARIOS ?= devicemapper_direct devicemapper_loop modern_engine
export HOSTPREP_VM_CACHE := $(VM_CACHE)

.PHONY: vm-apt vm-image test-vm bench-vm vm-clean

vm-apt:
	@$(call apt_install,$(VM_APT_PACKAGES))
	for tool in qemu-system-x86_64 qemu-img debootstrap mkfs.ext4 ssh ssh-keygen cpio; do
	  command -v $$tool >/dev/null || { echo "$$tool is still missing after installing $(VM_APT_PACKAGES)"; exit 1; }
	done

vm-image: deps vm-apt
	@[ "$$(id -u)" = 0 ] || { echo "building lab images needs root (debootstrap, chroot)"; exit 1; }
	for suite in $(VM_SUITES); do
	  $(call timed,vm-image $$suite,$(BIN)/python tests/lab/vm/build_image.py --suite $$suite --cache $(VM_CACHE))
	done

test-vm: vm-image
	@all=$$(date +%s); failed=""
	# The lab's own faults first (missing tools, a boot timeout, cleanup).
	$(call timed,vm lab faults,$(BIN)/pytest -q -p no:cacheprovider tests/vm || failed=" vm-lab-faults")
	# docker_storage's controller killed at every journalled step (make integration kills it at two).
	$(call timed,interrupted runs,HOSTPREP_FAULTS=all $(BIN)/pytest -q -p no:cacheprovider \
	  tests/integration/test_docker_storage_rollback.py -k interrupted || failed="$$failed interrupted-runs")
	# One VM at a time (2 cores); a failed scenario does not stop the others.
	for s in $(VM_SCENARIOS); do
	  $(call timed,molecule $$s,$(BIN)/python tests/lab/vm/molecule_run.py $$s || failed="$$failed $$s")
	done
	# Nothing may be left behind, failed run or not: no qemu of the lab, no overlay or disk.
	$(BIN)/python tests/lab/vm/vm.py leftovers $${HOME}/.ansible/tmp || failed="$$failed leftovers"
	if [ -n "$$failed" ]; then echo "==> make test-vm: failed:$$failed ($$(( $$(date +%s) - all )) s)"; exit 1; fi
	echo "==> make test-vm: $(words $(VM_SCENARIOS)) scenario(s) passed in $$(( $$(date +%s) - all )) s"

bench-vm: vm-image
	@$(call timed,bench-vm,$(BIN)/python -m bench.vm_backends $(BENCH_VM_ARGS))

# Removes the cached images (they are rebuilt on the next vm-image).
vm-clean:
	rm -rf $(VM_CACHE)
