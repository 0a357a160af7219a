#!/usr/bin/env bash
# `make browser`: the reference SPA in headless Chromium against the `make dev` stack (moto, the
# Stripe emulator, cargo lambda watch, the gateway, Vite) on ports of its own. The scenarios are
# web/tests/browser.mjs; screenshots land in target/browser.
set -euo pipefail
cd "$(dirname "$0")/.."

export DYNAMODB_PORT=${BROWSER_DYNAMODB_PORT:-18977} MOTO_PORT=${BROWSER_MOTO_PORT:-15255} STRIPE_EMULATOR_PORT=${BROWSER_STRIPE_PORT:-22311}
export LAMBDA_PORT=${BROWSER_LAMBDA_PORT:-19200} GATEWAY_PORT=${BROWSER_GATEWAY_PORT:-18887}
export FRONTEND_URL=http://localhost:${BROWSER_WEB_PORT:-25173}
. infra/own-stack.sh

rm -rf target/browser
if ! (cd web && BASE="$FRONTEND_URL" OUT="$PWD/../target/browser" node tests/browser.mjs); then
  stack_logs
  exit 1
fi
