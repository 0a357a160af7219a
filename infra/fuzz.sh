#!/usr/bin/env bash
# `make fuzz`: schemathesis against the `make dev` stack through infra/gateway (the API as API
# Gateway serves it) with openapi.yaml and an admin token (admins may call every route), on
# ports of its own. Fixed seed and a bounded number of examples per operation, so it ends in
# minutes and says the same thing twice. Fails on any 5xx and on any answer outside the spec.
set -euo pipefail
cd "$(dirname "$0")/.."

export DYNAMODB_PORT=${FUZZ_DYNAMODB_PORT:-19077} MOTO_PORT=${FUZZ_MOTO_PORT:-15355} STRIPE_EMULATOR_PORT=${FUZZ_STRIPE_PORT:-22411}
export LAMBDA_PORT=${FUZZ_LAMBDA_PORT:-19300} GATEWAY_PORT=${FUZZ_GATEWAY_PORT:-18987}
export FRONTEND_URL=http://localhost:${FUZZ_WEB_PORT:-25273}
VENV=${VENV:-.venv}
. infra/own-stack.sh

token=$(target/debug/devstack token --dir "$STATE_DIR" --sub fuzz-admin --email fuzz@example.test --admin --ttl 3600)
rm -rf target/fuzz && mkdir -p target/fuzz
root=$PWD
schemathesis=$(cd "$VENV" && pwd)/bin/schemathesis
# schemathesis keeps its caches in the working directory: target/fuzz, not the repository.
cd target/fuzz
# The webhook (POST /) is a function URL, not part of the HTTP API; its signature check is
# covered by the webhook's handler tests. Strings are UTF-8: cargo lambda watch cannot carry
# other bytes in a Lambda event (it answers 500 before any function runs). The timeout is API
# Gateway's 29 s: cargo lambda watch runs each function's invocations one at a time.
if ! "$schemathesis" run "$root/openapi.yaml" \
  --url "http://127.0.0.1:$GATEWAY_PORT" \
  --header "Authorization: Bearer $token" \
  --exclude-path / \
  --checks "${FUZZ_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,ignored_auth,missing_required_header}" \
  --seed "${FUZZ_SEED:-20261201}" \
  --max-examples "${FUZZ_EXAMPLES:-25}" \
  --workers 2 \
  --request-timeout 29 \
  --generation-codec utf-8 \
  --report junit --report-dir . \
  --no-color; then
  stack_logs
  exit 1
fi
