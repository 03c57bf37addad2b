# Release checks (issue 11), included by the main Makefile; `make test` runs both targets.
#
#   make release-check     its unit tests, changelog lint, the tarball from a dirty copy, the install block of docs/install.md
#                          without Galaxy (ansible-doc, --syntax-check), ansible-builder create (tests/release/release.py)
#   make core-versions     sanity, units and the install block on each ansible-core release of CORE_VERSIONS, each
#                          in its own venv under .build/ (2.19 is the main venv's: make sanity, units, release-check)
#   make core-versions CORE_VERSIONS=2.16.19

# unzip takes ansible.posix out of PyPI's ansible wheel in docs/install.md's block.
RELEASE_APT_PACKAGES := unzip
RELEASE_WORK := $(BUILD)/release
# requires_ansible is >=2.16.0: every release line from there that runs on the controller's Python 3.11
# (2.20 needs 3.12), at its newest patch release.
CORE_VERSIONS ?= 2.16.19 2.17.14 2.18.19

.PHONY: release-check core-versions

release-check: deps
	@$(call apt_install,$(RELEASE_APT_PACKAGES))
	$(call timed,release units,$(BIN)/pytest -q -p no:cacheprovider tests/release)
	for check in changelog tarball install ee; do
	  $(call timed,release $$check,$(BIN)/python tests/release/release.py $$check --work $(RELEASE_WORK))
	done

# A venv per ansible-core release, with the versions of requirements-test.txt for what the unit tests import.
$(BUILD)/core-%/.stamp: requirements-test.txt
	@rm -rf $(BUILD)/core-$*
	$(call timed,venv ansible-core $*,$(PYTHON) -m venv $(BUILD)/core-$* && $(BUILD)/core-$*/bin/pip install -q \
	  --disable-pip-version-check ansible-core==$* $$(grep -E '^(pytest|pyroute2|docker)==' requirements-test.txt))
	touch $@

# ansible-test 2.16 and 2.17 bootstrap pip 23.1.2 (2.18 and 2.19: 24.2); the stand-in reads the version from its name.
$(GETPIP_CACHE)/get_pip_%.py: hack/get_pip_standin.py
	mkdir -p $(GETPIP_CACHE)
	$(BIN)/pip download -q --disable-pip-version-check --no-deps -d $(GETPIP_CACHE) pip==$(subst _,.,$*)
	cp hack/get_pip_standin.py $@

# The main Makefile's sanity and units, with another release's ansible-test, ansible and pytest first on PATH;
# then docs/install.md's install block with that release's ansible-galaxy, ansible-doc and ansible-playbook.
core-versions: deps $(GETPIP_CACHE)/get_pip_23_1_2.py $(GETPIP_CACHE)/get_pip_24_2.py \
  $(foreach v,$(CORE_VERSIONS),$(BUILD)/core-$(v)/.stamp)
	@all=$$(date +%s)
	for v in $(CORE_VERSIONS); do
	  echo "==> ansible-core $$v"
	  $(MAKE) --no-print-directory sanity units BIN=$(BUILD)/core-$$v/bin SANITYROOT=$(SANITYROOT)-core-$$v
	  $(call timed,install ansible-core $$v,PATH=$(BUILD)/core-$$v/bin:$$PATH $(BIN)/python tests/release/release.py install \
	    --work $(RELEASE_WORK)-core-$$v)
	done
	echo "==> make core-versions: $(CORE_VERSIONS) passed in $$(( $$(date +%s) - all )) s"
