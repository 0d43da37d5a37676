# eddo: the two commands the README leads with are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CARGO ?= cargo

.PHONY: help setup demo test check lint cfn-lint unit bench size clean-venv

help:
	@echo "make demo   run eddo locally: moto on loopback and the scripted scenario"
	@echo "make test   the whole test suite: fmt, clippy, cfn-lint, unit, corpus and moto tests"
	@echo "make bench  criterion benchmarks of the hot paths"
	@echo "make size   stripped arm64 bootstrap sizes"

# The virtualenv with moto and cfn-lint; rebuilt when the requirements change.
$(VENV)/.installed: infra/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(CARGO) build --quiet --workspace --bins
	$(CARGO) run --quiet -p eddo-local --bin eddo-local -- demo

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

cfn-lint: setup
	$(VENV)/bin/cfn-lint template.yaml

unit: setup
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --locked --no-fail-fast; \
	else \
		$(CARGO) test --workspace --locked --no-fail-fast; \
	fi

test: lint cfn-lint unit

bench:
	$(CARGO) bench -p eddo-webhook --bench handler

size:
	infra/scripts/size.sh
