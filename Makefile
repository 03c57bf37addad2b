# hostprep.container_host: one entry point for set-up, tests and the demo.
# On a fresh Debian 12 machine as root: `make test`, then `make demo`.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
BUILD := $(CURDIR)/.build
# A symlinked collection tree for ansible-playbook / pytest, and a copy (outside
# this git work tree, or ansible-test sees no files) for
# ansible-test, which must run from inside ansible_collections/NS/NAME.
LINKROOT := $(BUILD)/link
SANITYROOT ?= /tmp/hostprep-sanity
SANITYCOLL := $(SANITYROOT)/ansible_collections/hostprep/container_host
APT_PACKAGES := python3 python3-venv python3-dev gcc iproute2 iputils-ping iputils-tracepath rsync git procps \
  docker.io busybox-static xfsprogs btrfs-progs e2fsprogs mount util-linux lvm2 fdisk python3-docker python3-pyroute2 \
  openssh-server
export ANSIBLE_COLLECTIONS_PATH := $(LINKROOT)
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := false
export PATH := $(BIN):$(PATH)

# `timed NAME cmd...` prints how long each step took, so slow steps show in CI logs.
timed = start=$$(date +%s); echo "==> $(1)"; $(2); echo "==> $(1): $$(( $$(date +%s) - start )) s"

.PHONY: help deps apt venv link collections test sanity units lint integration demo demo-netns demo-down bench clean

help:
	@echo "make test         install what is needed (apt, PyPI) and run sanity, units, lint, integration and the CI VM scenarios"
	@echo "make demo         site.yml, validate.yml and the fleet report against a disposable lab VM (about 9 minutes)"
	@echo "make demo-netns   the quick demo on this host: a netns lab and private dockerds (about 90 s)"
	@echo "make test-vm      every molecule scenario of the VM lab (mk/vm.mk)"
	@echo "make bench        run the benchmarks under bench/ (figures go to docs/benchmarks.md)"

deps: apt venv link collections

# `apt_install,PACKAGES` installs the Debian packages of the list that are missing (mk/vm.mk uses it too).
define apt_install
missing=""
for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done
if [ -n "$$missing" ]; then
  echo "==> installing Debian packages:$$missing"
  [ "$$(id -u)" = 0 ] || { echo "installing$$missing needs root"; exit 1; }
  timeout 900 apt-get update -qq || { echo "apt-get update failed: check the Debian mirror"; exit 1; }
  DEBIAN_FRONTEND=noninteractive timeout 1800 apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
    || { echo "apt-get install$$missing failed: install them by hand, then rerun"; exit 1; }
fi
endef

apt:
	@$(call apt_install,$(APT_PACKAGES))

venv: $(VENV)/.stamp
$(VENV)/.stamp: requirements-test.txt requirements.txt
	@$(call timed,venv,$(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q --disable-pip-version-check -r requirements-test.txt -r requirements.txt)
	touch $@

link:
	@mkdir -p $(LINKROOT)/ansible_collections/hostprep
	ln -sfn $(CURDIR) $(LINKROOT)/ansible_collections/hostprep/container_host

# The collections of requirements.yml (ansible.posix), without Galaxy: from the
# `ansible` package on PyPI, which carries them (ansible 12.2.0: ansible.posix 2.1.0).
COLLECTIONS_BUNDLE := ansible==12.2.0
COLLECTIONS_STAMP := $(LINKROOT)/.collections-$(subst ==,-,$(COLLECTIONS_BUNDLE))
collections: $(COLLECTIONS_STAMP)
$(COLLECTIONS_STAMP): requirements.yml hack/vendor_collections.py | venv
	@$(call timed,collections,$(BIN)/python hack/vendor_collections.py --bundle $(COLLECTIONS_BUNDLE) --requirements requirements.yml --dest $(LINKROOT))
	touch $@

# ansible-test downloads a get-pip script from a host this network cannot
# reach; give it a stand-in that installs pip from PyPI's pip 24.2 wheel.
GETPIP_CACHE := $(HOME)/.ansible/test/cache
$(GETPIP_CACHE)/get_pip_24_2.py: hack/get_pip_standin.py
	mkdir -p $(GETPIP_CACHE)
	$(BIN)/pip download -q --disable-pip-version-check --no-deps -d $(GETPIP_CACHE) pip==24.2
	cp hack/get_pip_standin.py $@

sanity: deps $(GETPIP_CACHE)/get_pip_24_2.py
	@mkdir -p $(SANITYCOLL)
	rsync -a --delete --exclude=/.venv --exclude=/.build --exclude=/.git --exclude=tests/output \
	  --exclude=__pycache__ --exclude=.pytest_cache --exclude=/collections ./ $(SANITYCOLL)/
	cd $(SANITYCOLL)
	$(call timed,sanity,$(BIN)/ansible-test sanity --venv --python 3.11 --color no $(SANITY_ARGS))

units: deps
	@$(call timed,units,$(BIN)/pytest -q tests/unit)

lint: deps
	@$(call timed,lint,ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.build/link $(BIN)/ansible-lint --offline -q)

integration: deps
	@[ "$$(id -u)" = 0 ] || { echo "integration tests need root (network namespaces, loop devices, dockerd)"; exit 1; }
	$(call timed,integration,$(BIN)/pytest -q -p no:cacheprovider tests/integration)

test: deps
	@all=$$(date +%s)
	$(MAKE) --no-print-directory sanity
	$(MAKE) --no-print-directory units
	$(MAKE) --no-print-directory lint
	# What a user installs (mk/release.mk): the tarball, the install without Galaxy, the changelog, the EE context;
	# then sanity and units on ansible-core 2.16, 2.17 and 2.18 (requires_ansible >=2.16).
	$(MAKE) --no-print-directory release-check
	$(MAKE) --no-print-directory core-versions
	$(MAKE) --no-print-directory integration
	# The VM lab's molecule scenarios (mk/vm.mk): LVM, devicemapper, Engine 26, reboots.
	$(MAKE) --no-print-directory test-vm VM_SCENARIOS="$(TEST_VM_SCENARIOS)"
	echo "==> make test: all steps passed in $$(( $$(date +%s) - all )) s"

DEMO_PREFIX ?= hpdemo
# The main job against a disposable VM of the lab (builds or reuses the image; about 9 minutes under TCG).
demo: deps vm-apt
	@$(BIN)/python -m hack.demo_vm $(DEMO_ARGS)

# The quick demo on this host: a netns lab and private dockerds (about 90 s; no device-mapper needed).
demo-netns: deps
	@$(BIN)/python -m hack.demo --prefix $(DEMO_PREFIX)

demo-down: deps
	@$(BIN)/python -m hack.demo_vm --down
	$(BIN)/python -m tests.lab.netns_lab down $(DEMO_PREFIX)

bench: deps
	@$(BIN)/python -m bench.run_all

# Areas with their own targets live in mk/*.mk: the VM lab (mk/vm.mk), which `make test` needs.
include mk/*.mk

clean:
	rm -rf $(BUILD) tests/output
