# aks-image-classifier: every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CHECKOV_VENV ?= .venv-checkov
PORT ?= 8080
STACK ?= dev
MANIFESTS ?= build/manifests/$(STACK)

.PHONY: help install serve test test-fast lint format manifests model bench bench-quick clean

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

install: $(VENV)/.installed $(CHECKOV_VENV)/.installed  ## Create the virtualenvs (.venv, .venv-checkov) from the pinned requirements.

serve: $(VENV)/.installed  ## Run the service on http://localhost:$(PORT) (MODEL_PATH, MODEL_ARCH... from the environment).
	PORT=$(PORT) $(PY) -m service

model: $(VENV)/.installed  ## Write a seeded random-weight model (offline demo): models/resnet50.pt + models/labels.txt.
	$(PY) -m tools.make_model --arch resnet50 --format torchscript --out models/resnet50.pt --labels models/labels.txt

test: install lint  ## Lint, then every test: service, browser, Pulumi mocks, manifests, Dockerfile, policy, benchmark (quick).
	CHECKOV=$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest

test-fast: install  ## Every test but the slow ones (benchmark, long fuzz, soak: `-m "not slow"`); CI runs `make test`.
	CHECKOV=$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest -m "not slow"

lint: $(VENV)/.installed  ## ruff on the whole tree.
	$(VENV)/bin/ruff check .

format: $(VENV)/.installed  ## Apply ruff's fixes and formatting.
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

manifests: $(VENV)/.installed  ## Render the Kubernetes objects stack $(STACK) would apply into $(MANIFESTS)/.
	$(PY) -m tools.render_manifests --stack $(STACK) --out $(MANIFESTS)

bench: $(VENV)/.installed  ## Full benchmark: model alone vs this service vs TorchServe (minutes).
	$(PY) -m bench

bench-quick: $(VENV)/.installed  ## The benchmark in quick mode (seconds), as CI runs it.
	$(PY) -m bench --quick

clean:  ## Remove build outputs (not the virtualenvs).
	rm -rf build bench/results .pytest_cache .ruff_cache
