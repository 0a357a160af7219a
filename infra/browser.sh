#!/usr/bin/env bash
# `make browser`: the reference SPA in headless Chromium against the `make dev` stack (moto, the
# Stripe emulator, cargo lambda watch, the gateway, Vite), on ports of its own so it runs beside a
# developer's stack. The scenarios are web/tests/browser.mjs; screenshots land in target/browser.
set -euo pipefail
cd "$(dirname "$0")/.."

export MOTO_PORT=${BROWSER_MOTO_PORT:-15255} STRIPE_EMULATOR_PORT=${BROWSER_STRIPE_PORT:-22311}
export LAMBDA_PORT=${BROWSER_LAMBDA_PORT:-19200} GATEWAY_PORT=${BROWSER_GATEWAY_PORT:-18887}
export FRONTEND_URL=http://localhost:${BROWSER_WEB_PORT:-25173}
# The functions are built up front, one by one as cargo lambda watch builds them (the same
# features), so no request of the test waits for a compile.
for f in functions/*/; do cargo build --quiet -p "$(basename "$f")"; done
export STATE_DIR=$(mktemp -d)
log="$STATE_DIR/dev.log"
infra/dev.sh >"$log" 2>&1 &
dev=$!
cleanup() { kill "$dev" 2>/dev/null || true; wait "$dev" 2>/dev/null || true; rm -rf "$STATE_DIR"; }
trap cleanup EXIT
for _ in $(seq 1 900); do
  grep -q "Portico is running" "$log" && break
  kill -0 "$dev" 2>/dev/null || { cat "$log"; echo "browser: make dev stack failed" >&2; exit 1; }
  sleep 0.2
done
grep -q "Portico is running" "$log" || { cat "$log"; exit 1; }

rm -rf target/browser
if ! (cd web && BASE="$FRONTEND_URL" OUT="$PWD/../target/browser" node tests/browser.mjs); then
  echo "--- stack log (last lines)" >&2; tail -40 "$log" >&2
  for f in gateway web; do echo "--- $f.log" >&2; tail -20 "$STATE_DIR/$f.log" >&2; done
  exit 1
fi
