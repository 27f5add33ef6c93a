# The two commands of README.md, and the pieces they are made of.
#   make stack              bring the stack up locally (inventories/local)
#   make test               everything CI checks (.ci/run runs exactly this)
#   make molecule S=base    one Molecule scenario, full test sequence
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
CACHE := .cache
COLLECTION_LINK := $(CACHE)/collections/ansible_collections/ai_infra/langgraph_stack
SUITES := bookworm trixie
SCENARIOS := $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(CACHE)/collections
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PIP_CACHE_DIR ?= $(CURDIR)/$(CACHE)/pip

.PHONY: help stack test static-checks molecule-inputs lint sanity unit molecule molecule-all bench-quick images vllm-image models host-tools collection build clean

help:
	@echo "make stack | make test | make molecule S=<scenario> ($(SCENARIOS))"

# --- setup -------------------------------------------------------------------------
host-tools:
	@scripts/ensure-host-tools.sh

# Rebuilt when requirements.txt changes; pip's download cache lives under .cache/pip.
$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

# The repository is the collection: link it where Ansible looks for ai_infra.langgraph_stack.
$(COLLECTION_LINK):
	@scripts/cache-links.sh
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

collection: $(VENV)/.installed $(COLLECTION_LINK)

# The systemd base images Molecule runs as hosts, and the CPU vLLM image (saved as an
# archive under .cache/images) that the vllm scenario's container host loads.
images: host-tools vllm-image
	@for suite in $(SUITES); do molecule/resources/images/build.sh $$suite; done

vllm-image: host-tools
	@scripts/cache-links.sh
	@molecule/resources/images/build-vllm-cpu.sh

# The small real model vLLM serves on the CPU (cached under .cache/models).
models:
	@scripts/cache-links.sh
	@molecule/resources/models/build.sh >/dev/null

# --- the two commands ------------------------------------------------------------------
stack: host-tools collection models
	@for suite in bookworm trixie; do molecule/resources/images/build.sh $$suite >/dev/null; done
	ansible-playbook playbooks/local_hosts.yml
	ansible-playbook site.yml -i inventories/local
	@ansible-playbook playbooks/local_summary.yml -i inventories/local

# The static checks (CPU work) and the Molecule inputs (base images, the vLLM image, the
# model: mostly downloads and disk) side by side, each in order; then the scenarios.
test: host-tools collection
	$(MAKE) -j2 --output-sync=recurse static-checks molecule-inputs
	$(MAKE) bench-quick
	$(MAKE) molecule-all

static-checks:
	$(MAKE) -j1 lint sanity unit build

molecule-inputs:
	$(MAKE) -j1 images models

# --- the parts of `make test` -------------------------------------------------------------
lint: collection
	ansible-lint --profile production
	@for inv in inventories/*/; do ansible-playbook site.yml -i $$inv --syntax-check >/dev/null && echo "site.yml syntax ok with $$inv"; done

sanity: host-tools collection
	scripts/ansible-test.sh sanity --python 3.11

unit: collection
	scripts/ansible-test.sh units --python 3.11

# The benchmarks that need no Molecule host, in their quick mode: they must not rot (the
# figures come from full runs; bench/README.md). The ones that need hosts run their quick
# modes in the scenarios' verify steps, also part of make test: prune_checkpoints.py in
# molecule/postgresql, agent_server_engines.py in molecule/langgraph_server (Aegra) and
# molecule/caddy (langgraph dev), edge_latency.py in molecule/caddy, mesh_latency.py in
# molecule/wireguard. fleet_converge.py's
# quick mode starts no host (it lists site.yml against its layouts' inventories);
# eviction_to_serving.py's starts machines (bare containers) through the stand-in for
# Spheron's API and provisions none.
bench-quick: collection vllm-image models images
	python bench/vllm_readiness.py --quick --image langgraph-stack-vllm-cpu:0.32.0 \
	  --model $(CACHE)/models/SmolLM2-135M-Instruct
	python bench/fleet_converge.py --quick
	python bench/eviction_to_serving.py --quick

molecule: host-tools collection build images models
	@test -n "$(S)" || { echo "usage: make molecule S=<scenario>; one of: $(SCENARIOS)"; exit 2; }
	molecule test -s $(S)

# (build: molecule/reprovision_schedule installs the collection tarball on its hosts.)
# One after another by default: two lanes side by side (MOLECULE_LANES=2) gain nothing on
# 2 cores (each scenario's steps about twice as slow beside another; README.md).
# molecule/fleet is not in this list yet: measured 2026-12-02 with warm caches it took
# 27 min alone (its tests run about ten playbooks), which would take CI past its limit;
# run it with `make molecule S=fleet`.
MOLECULE_LANES ?= 1
export MOLECULE_LANES
CI_SCENARIOS := $(filter-out fleet,$(SCENARIOS))
molecule-all: host-tools collection build images models
	scripts/molecule-lanes.sh $(CI_SCENARIOS)

build: collection
	ansible-galaxy collection build --force --output-path $(CACHE)/dist

clean:
	-for s in $(SCENARIOS); do molecule destroy -s $$s; done
	rm -rf $(CACHE)/collections $(CACHE)/dist
