# Portico — `make dev` runs it locally, `make test` checks it. `make help` lists the rest.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
STATE_DIR ?= .portico
STRIPE_REFERENCE_DIR ?= $(if $(wildcard ../shared/stripe/spec3.json),$(abspath ../shared/stripe),)
export STRIPE_REFERENCE_DIR

.PHONY: help dev test fmt lint token clean

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# The venv is rebuilt whenever the requirements change.
$(VENV)/.installed: infra/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	touch $@

dev: $(VENV)/.installed ## run Portico locally: moto + every function under cargo lambda watch
	STATE_DIR=$(STATE_DIR) VENV=$(VENV) infra/dev.sh

test: $(VENV)/.installed ## formatting, lints and every test (starts its own moto per test process)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings
	PORTICO_PYTHON=$(abspath $(VENV))/bin/python cargo test --workspace --all-features

fmt: ## format the code
	cargo fmt --all

lint: ## clippy with warnings as errors
	cargo clippy --workspace --all-targets --all-features -- -D warnings

SUB ?= dev-user
EMAIL ?=
ADMIN ?=
token: ## print a JWT for the local stack: make token SUB=... EMAIL=... ADMIN=1
	@cargo build --quiet -p devstack
	@target/debug/devstack token --dir $(STATE_DIR) --sub '$(SUB)' $(if $(EMAIL),--email '$(EMAIL)') $(if $(ADMIN),--admin)

clean: ## remove build output and the venv (keeps the dev signing key in .portico)
	cargo clean
	rm -rf $(VENV)
