#!/usr/bin/env bash
# `make dev`: Amazon's DynamoDB Local, moto (Secrets Manager), the Stripe emulator and every
# function under `cargo lambda watch`, all on loopback. Ctrl-C stops exactly the processes this
# script started. DynamoDB Local keeps its data in memory: a restart begins with an empty table.
set -euo pipefail
cd "$(dirname "$0")/.."

DEV_HOST=${DEV_HOST:-127.0.0.1}
MOTO_PORT=${MOTO_PORT:-5055}
DYNAMODB_PORT=${DYNAMODB_PORT:-8777}
LAMBDA_PORT=${LAMBDA_PORT:-9000}
STRIPE_EMULATOR_PORT=${STRIPE_EMULATOR_PORT:-12111}
STATE_DIR=${STATE_DIR:-.portico}
TABLE_NAME=${TABLE_NAME:-portico}
SECRET_ID=${SECRET_ID:-portico/stripe}
VENV=${VENV:-.venv}

pids=()
stop() {
  trap - EXIT INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    echo "stopping (pids ${pids[*]})"
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap stop EXIT
trap 'exit 130' INT TERM

wait_for_port() { # host port name
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$3 did not start listening on $1:$2" >&2
  return 1
}

for spec in "DYNAMODB_PORT:$DYNAMODB_PORT" "MOTO_PORT:$MOTO_PORT" "STRIPE_EMULATOR_PORT:$STRIPE_EMULATOR_PORT" "LAMBDA_PORT:$LAMBDA_PORT"; do
  if (exec 3<>"/dev/tcp/$DEV_HOST/${spec#*:}") 2>/dev/null; then
    echo "port ${spec#*:} is taken; set ${spec%%:*} to another port" >&2
    exit 1
  fi
done

echo "building the dev tools…"
cargo build --quiet -p devstack -p stripe-emulator -p portal-config-cli -p portico-gateway
devstack=target/debug/devstack

mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)
infra/dynamodb-local.sh "$DYNAMODB_PORT" >"$STATE_DIR/dynamodb-local.log" 2>&1 &
pids+=($!)
"$VENV/bin/python" infra/moto/serve.py --host "$DEV_HOST" --port "$MOTO_PORT" >"$STATE_DIR/moto.log" 2>&1 &
pids+=($!)
wait_for_port "$DEV_HOST" "$MOTO_PORT" moto
# The JVM takes about ten seconds to answer.
wait_for_port "$DEV_HOST" "$DYNAMODB_PORT" "DynamoDB Local"

# The emulator keeps its state in $STATE_DIR across restarts of make dev.
# It delivers every event, signed with the local test secret, to the webhook function.
WEBHOOK_SECRET=whsec_portico_FAKE_local_test_secret
target/debug/stripe-emulator --port "$STRIPE_EMULATOR_PORT" --state-file "$STATE_DIR/stripe-emulator.json" \
  --webhook-endpoint "http://$DEV_HOST:$LAMBDA_PORT/lambda-url/stripe-webhook/=$WEBHOOK_SECRET" \
  >"$STATE_DIR/stripe-emulator.log" 2>&1 &
pids+=($!)
wait_for_port "$DEV_HOST" "$STRIPE_EMULATOR_PORT" "the Stripe emulator"
STRIPE_API_BASE="http://$DEV_HOST:$STRIPE_EMULATOR_PORT"

"$devstack" keys --dir "$STATE_DIR"
"$devstack" init --dynamodb "http://$DEV_HOST:$DYNAMODB_PORT" --secrets "http://$DEV_HOST:$MOTO_PORT" --table "$TABLE_NAME" --secret-id "$SECRET_ID"

# Configuration as code: the checked-in portal configurations and workflow mapping, applied to
# the emulator and the table (a no-op when they are already there).
AWS_ENDPOINT_URL_DYNAMODB="http://$DEV_HOST:$DYNAMODB_PORT" AWS_ENDPOINT_URL_SECRETS_MANAGER="http://$DEV_HOST:$MOTO_PORT" \
  AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test \
  AWS_SECRET_ACCESS_KEY=test TABLE_NAME="$TABLE_NAME" SECRET_ID="$SECRET_ID" \
  STRIPE_API_BASE="$STRIPE_API_BASE" target/debug/portal-config-cli apply --file portal-config.json \
  >"$STATE_DIR/portal-config.json"
portal_configuration=$("$VENV/bin/python" -c \
  'import json,sys; print(json.load(open(sys.argv[1]))["configurations"]["default"]["id"])' \
  "$STATE_DIR/portal-config.json")

cat > "$STATE_DIR/dev.env" <<ENV
AWS_ENDPOINT_URL_DYNAMODB=http://$DEV_HOST:$DYNAMODB_PORT
AWS_ENDPOINT_URL_SECRETS_MANAGER=http://$DEV_HOST:$MOTO_PORT
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
TABLE_NAME=$TABLE_NAME
SECRET_ID=$SECRET_ID
JWT_ISSUER=https://portico.local/
JWT_AUDIENCE=portico-local
JWKS_FILE=$STATE_DIR/jwks.json
STRIPE_API_BASE=$STRIPE_API_BASE
DEFAULT_PORTAL_CONFIGURATION=$portal_configuration
FRONTEND_URL=${FRONTEND_URL:-http://localhost:5173}
ALLOWED_PRICES=${ALLOWED_PRICES:-price_pro_monthly,price_pro_yearly,price_team_monthly,price_team_yearly}
ALLOWED_ONE_TIME_PRICES=${ALLOWED_ONE_TIME_PRICES:-price_pro_lifetime}
RUST_LOG=${RUST_LOG:-info}
DYNAMODB_TIMEOUT_MS=${DYNAMODB_TIMEOUT_MS:-5000}
ENV

PATH="$PWD/$VENV/bin:$PATH" cargo lambda watch -A "$DEV_HOST" -P "$LAMBDA_PORT" \
  --env-file "$STATE_DIR/dev.env" &
pids+=($!)
wait_for_port "$DEV_HOST" "$LAMBDA_PORT" "cargo lambda watch"

# --- The SPA's side: the API as API Gateway serves it, and the reference SPA ----------------
# infra/gateway serves template.yaml's routes on one base URL, with the template's CORS rules
# and the JWT check, forwarding to cargo lambda watch; web/ (Vite) serves the SPA on
# FRONTEND_URL's port, with dev-only token minting for its sign-in page.
GATEWAY_PORT=${GATEWAY_PORT:-8787}
frontend_url=${FRONTEND_URL:-http://localhost:5173}
WEB_PORT=${WEB_PORT:-$(echo "$frontend_url" | sed -E 's#^[a-z]+://[^/:]+:?([0-9]*).*#\1#')}
WEB_PORT=${WEB_PORT:-80}
for spec in "GATEWAY_PORT:$GATEWAY_PORT" "WEB_PORT:$WEB_PORT"; do
  if (exec 3<>"/dev/tcp/$DEV_HOST/${spec#*:}") 2>/dev/null; then
    echo "port ${spec#*:} is taken; set ${spec%%:*} to another port" >&2
    exit 1
  fi
done
(set -a; . "$STATE_DIR/dev.env"; set +a
 GATEWAY_ADDR="$DEV_HOST:$GATEWAY_PORT" LAMBDA_URL="http://$DEV_HOST:$LAMBDA_PORT/lambda-url" \
   exec target/debug/gateway) >"$STATE_DIR/gateway.log" 2>&1 &
pids+=($!)
wait_for_port "$DEV_HOST" "$GATEWAY_PORT" "the API gateway"
api_url="http://$DEV_HOST:$GATEWAY_PORT"
spa="not started: run make dev (it runs npm ci in web/)"
if [ -x web/node_modules/.bin/vite ]; then
  (cd web && npm run --silent gen >/dev/null && VITE_API_BASE="$api_url" PORTICO_STATE_DIR="$STATE_DIR" \
     exec node_modules/.bin/vite --port "$WEB_PORT") >"$STATE_DIR/web.log" 2>&1 &
  pids+=($!)
  wait_for_port "$DEV_HOST" "$WEB_PORT" "the SPA (vite)"
  spa="$frontend_url  (the contract: $frontend_url/openapi.yaml)"
fi
# --- end of the SPA's side ------------------------------------------------------------------

base="http://$DEV_HOST:$LAMBDA_PORT/lambda-url"
cat <<MSG

Portico is running (Ctrl-C stops it):
  SPA                               $spa
  API (as API Gateway serves it)    $api_url  (openapi.yaml; JWT and CORS checked)
  DynamoDB Local                    http://$DEV_HOST:$DYNAMODB_PORT
  moto (Secrets Manager)            http://$DEV_HOST:$MOTO_PORT
  Stripe emulator                   $STRIPE_API_BASE  (portal configuration $portal_configuration)
  billing-account                   $base/billing-account/billing/account
  portal-session                    $base/portal-session/portal/sessions
  portal-return                     $base/portal-return/portal/return?session=<ref>
  portal-config (admin)             $base/portal-config/portal/configurations, .../portal/workflows
  portal-analytics (admin)          $base/portal-analytics/portal/analytics?start_date=&end_date=
  admin-users (admin)               $base/admin-users/admin/users/<sub>  (/sync, /link; DELETE erases)
  stripe-webhook                    $base/stripe-webhook/  (the emulator delivers here, secret $WEBHOOK_SECRET)

Try:
  TOKEN=\$(make -s token SUB=user-1 EMAIL=user-1@example.test)
  curl -s -H "Authorization: Bearer \$TOKEN" $base/billing-account/billing/account
MSG
wait -n "${pids[@]}"
