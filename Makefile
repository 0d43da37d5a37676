# eddo: the two commands the README leads with are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CARGO ?= cargo
# The jsii tools warn at length on Node.js 20 (past its end of life), which they still run on.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

CDK := infra/cdk
# The policy is checked at synth by the workspace's eddo binary (built by the targets that synth).
EDDO_CLI := $(CURDIR)/target/debug/eddo

.PHONY: help setup demo up test lint docs docs-check cfn-lint unit cdk-test cdk-package cdk-consumer bench size measure sam-build cdk-synth eddo-cli

help:
	@echo "make demo   run eddo locally: moto on loopback and the scripted scenario"
	@echo "make test   the whole test suite: fmt, clippy, cfn-lint, unit, corpus and moto tests"
	@echo "make docs   the book (docs/, mdBook) into docs/book/, every link checked"
	@echo "make bench  every figure in BENCHMARKS.md, measured here and written into it (criterion,"
	@echo "            the bench runner on the local runtime, arm64 sizes); about 30 minutes"
	@echo "make up     moto and the webhook function URL on 127.0.0.1:9000, until Ctrl-C"
	@echo "make size   stripped arm64 bootstrap and zip sizes of the four functions"
	@echo "make sam-build  sam build (arm64, cargo-lambda) into .aws-sam/ and sam validate --lint, as a deploy does"
	@echo "make measure  the bench runner alone: cold start, warm latency, memory, cost per function"
	@echo "make cdk-package  the construct library as published: npm tarball and Python wheel (jsii-pacmak),"
	@echo "            with the arm64 functions (run make sam-build first) and the WebAssembly policy checker"
	@echo "make cdk-consumer  TypeScript and Python apps of the packed construct, without cargo: same template, demo"
	@echo "make cdk-synth  cdk synth of the CDK app (infra/cdk): the functions built for arm64 by cargo-lambda, as cdk deploy does"

# The virtualenv with moto, cfn-lint and AWS's SAM translator; rebuilt when the requirements change.
$(VENV)/.installed: infra/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	touch $@

# The CDK app's packages (npm ci, from the lockfile) and its compiled TypeScript.
$(CDK)/node_modules/.installed: $(CDK)/package-lock.json
	cd $(CDK) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# jsii compiles the construct library (lib/, checked to be usable from every jsii language) and
# writes its assembly (.jsii); tsc compiles it with the example app and the tests.
$(CDK)/dist/.built: $(CDK)/node_modules/.installed $(CDK)/tsconfig.json $(CDK)/tsconfig.jsii.json $(CDK)/package.json $(wildcard $(CDK)/bin/*.ts $(CDK)/lib/*.ts $(CDK)/test/*.ts)
	cd $(CDK) && npx jsii && npx tsc -p .
	touch $@

setup: $(VENV)/.installed $(CDK)/dist/.built

eddo-cli:
	$(CARGO) build --quiet --locked -p eddo-cli --bin eddo

demo: setup
	$(CARGO) build --quiet --workspace --bins
	$(CARGO) run --quiet -p eddo-local --bin eddo-local -- demo

up: setup
	$(CARGO) build --quiet --workspace --bins
	$(CARGO) run --quiet -p eddo-local --bin eddo-local -- up

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# The source templates, and template.yaml as CloudFormation runs it (after its transforms), for
# the parameter choices a user has.
cfn-lint: setup eddo-cli
	EDDO_CLI=$(EDDO_CLI) VENV=$(VENV) infra/scripts/cfn-lint.sh

unit: setup
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --locked --no-fail-fast; \
	else \
		$(CARGO) test --workspace --locked --no-fail-fast; \
	fi

# The CDK construct's tests (aws-cdk-lib/assertions, node's test runner).
cdk-test: setup eddo-cli
	cd $(CDK) && EDDO_CLI=$(EDDO_CLI) node --test dist/test/

# Every link of the README and the book resolves (files and headings), every chapter is in it.
docs-check:
	python3 infra/scripts/docs-check.py

# The book (docs/, mdBook, installed from crates.io on first use) into docs/book/, its links checked.
docs: docs-check
	@command -v mdbook >/dev/null || $(CARGO) install --locked --quiet mdbook --version "^0.4" --no-default-features --features search
	mdbook build docs

test: lint docs-check cfn-lint cdk-test unit

bench: setup
	infra/scripts/bench.sh

size: setup
	infra/scripts/size.sh

# The construct library as it is published: the npm tarball and the Python wheel (jsii-pacmak),
# into infra/cdk/dist/packages, each checked to hold the library and nothing else.
cdk-package: setup
	infra/scripts/cdk-package.sh

# The packed construct as a user gets it: TypeScript and Python apps in a fresh folder, without
# cargo, synthesize the same template from it; cfn-lint and the demo on that template.
cdk-consumer: cdk-package
	VENV=$(VENV) infra/scripts/cdk-consumer.sh

# What a user runs before sam deploy, with the SAM CLI and cargo-lambda from PyPI (.venv-sam).
sam-build:
	infra/scripts/sam-build.sh

# What a user runs before cdk deploy: the CDK app synthesized with its functions built for arm64
# by cargo-lambda (from .venv-sam, as make sam-build installs it) into the workspace's target/,
# which make sam-build shares.
cdk-synth: setup eddo-cli
	EDDO_CLI=$(EDDO_CLI) infra/scripts/cdk-synth.sh

measure: setup
	BENCH_PARTS=functions infra/scripts/bench.sh
