# Entry points for users and CI. `make demo` and `make test` install what they
# need on a Debian or Ubuntu machine (as root), so both work on a fresh clone.

SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c

VENV        ?= .venv
PYTHON      ?= python3
BIN         := $(VENV)/bin
COLLECTIONS := $(CURDIR)/build/collections
COLLECTION  := $(COLLECTIONS)/ansible_collections/mip/federation
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PYTHONPATH := $(COLLECTIONS)
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_FORCE_COLOR ?= 0

.PHONY: help deps venv collection dist unit lint sanity labtests molecule test demo demo-down status bench clean

help:
	@echo "make demo       bring up the lab federation and deploy it from the pusher"
	@echo "make demo-down  remove the lab federation"
	@echo "make test       unit tests, ansible-lint, ansible-test sanity, lab tests, Molecule"
	@echo "make status     print the lab federation's status"
	@echo "make dist       build the collection archive into build/dist/"
	@echo "make bench      benchmarks (see docs/benchmarks.md)"

# Host packages and a running Docker daemon (no systemd needed).
deps:
	bash tests/lab/host-deps.sh

$(BIN)/ansible-playbook: requirements.txt
	if ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
	  echo "Installing python3-venv"; apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

venv: $(BIN)/ansible-playbook

# The collection must sit at ansible_collections/mip/federation for imports
# and for ansible-lint; a symbolic link to this checkout is enough.
collection:
	mkdir -p $(dir $(COLLECTION))
	ln -sfn $(CURDIR) $(COLLECTION)
	if [[ -e $(HOME)/.ansible/collections/ansible_collections/mip/federation ]]; then \
	  echo "WARNING: $(HOME)/.ansible/collections/ansible_collections/mip/federation is searched before" \
	       "this checkout by ansible-lint, so it tests that copy: remove it." >&2; \
	fi

# The collection archive to install on a pusher: build/dist/mip-federation-<version>.tar.gz
dist: venv
	$(BIN)/ansible-galaxy collection build --force --output-path build/dist .

unit: venv collection
	$(BIN)/pytest -q tests/unit tests/integration

lint: venv collection
	cd $(COLLECTION) && $(BIN)/ansible-lint --offline --profile production

sanity: venv
	bash tests/sanity/run.sh

molecule: deps venv collection
	$(BIN)/molecule test -s federation

# Lab tests of single roles and images (ui, registry, stand-ins): each starts
# containers of its own. The images are built first, because the tests skip
# themselves when an image is missing.
labtests: deps venv collection
	bash tests/lab/build-base-image.sh
	bash tests/lab/images/build.sh
	MIP_LAB_DOCKER_TESTS=1 $(BIN)/pytest -q -rs tests/integration/ui tests/integration/registry tests/integration/lab_images

test: unit lint sanity labtests molecule

demo: deps venv collection
	bash tests/lab/demo.sh up

demo-down: venv collection
	bash tests/lab/demo.sh down

status: venv collection
	bash tests/lab/demo.sh status

bench: venv collection
	bash bench/run.sh

clean:
	rm -rf build tests/output
