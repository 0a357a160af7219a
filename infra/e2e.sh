#!/usr/bin/env bash
# End to end through the `make dev` stack (moto, the Stripe emulator, cargo lambda watch), on
# ports of its own so it runs beside a developer's stack: a user opens the portal, changes their
# email there, comes back, and the return reports the change; then a cancellation reaches the
# webhook function and shows in the account without any return call; a lifetime purchase grants
# premium with no end; a plan change is priced by the preview, then made in the portal.
set -euo pipefail
cd "$(dirname "$0")/.."

export DYNAMODB_PORT=${E2E_DYNAMODB_PORT:-18777} MOTO_PORT=${E2E_MOTO_PORT:-15055} STRIPE_EMULATOR_PORT=${E2E_STRIPE_PORT:-22111} LAMBDA_PORT=${E2E_LAMBDA_PORT:-19000}
export GATEWAY_PORT=${E2E_GATEWAY_PORT:-18787} WEB_PORT=${E2E_WEB_PORT:-25073}
export STATE_DIR=$(mktemp -d)
log="$STATE_DIR/dev.log"
infra/dev.sh >"$log" 2>&1 &
dev=$!
# The stack's log is kept in target/e2e-dev.log for a failed run's reader.
cleanup() { kill "$dev" 2>/dev/null || true; wait "$dev" 2>/dev/null || true; cp "$log" target/e2e-dev.log 2>/dev/null || true; rm -rf "$STATE_DIR"; }
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
  # The verdict comes after the log's tail, so that a reader of only the last lines sees it.
  if [ "$2" != "$3" ]; then tail -30 "$log" >&2; echo "e2e FAILED: $1: got '$2', wanted '$3'" >&2; exit 1; fi
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
expect "a second return is not counted again" "$(echo "$back" | json "['first_return']")" "False"

# A subscriber cancels in the emulator's portal page; the emulator's signed webhook reaches the
# webhook function through cargo lambda watch, and the account shows it with no return call.
token2=$(target/debug/devstack token --dir "$STATE_DIR" --sub e2e-subscriber --email e2e-sub@example.test)
auth2=(-H "Authorization: Bearer $token2")
curl -sf -X POST "${auth2[@]}" -H 'content-type: application/json' -d '{}' "$base/portal-session/portal/sessions" >/dev/null
customer2=$(curl -sf "${auth2[@]}" "$base/billing-account/billing/account" | json "['account']['customer_id']")
curl -sf -u sk_test_portico_FAKE_key: "$stripe/v1/payment_methods/pm_card_visa/attach" -d customer="$customer2" >/dev/null
pm=$(curl -sf -u sk_test_portico_FAKE_key: "$stripe/v1/payment_methods?customer=$customer2&type=card" | json "['data'][0]['id']")
sub=$(curl -sf -u sk_test_portico_FAKE_key: "$stripe/v1/subscriptions" -d customer="$customer2" \
  -d "items[0][price]=price_pro_monthly" -d default_payment_method="$pm" | json "['id']")
portal=$(curl -sf -X POST "${auth2[@]}" -H 'content-type: application/json' -d '{"workflow": "cancellation_process"}' \
  "$base/portal-session/portal/sessions" | json "['portal_session']['url']")
curl -sf -X POST -H 'content-type: application/json' -d '{"reason": "too_expensive"}' "$portal/cancel" >/dev/null
for _ in $(seq 1 100); do
  state=$(curl -sf "${auth2[@]}" "$base/billing-account/billing/account" | json "['account']['subscription'] and d['account']['subscription']['cancel_at_period_end']")
  [ "$state" = "True" ] && break
  sleep 0.2
done
expect "a portal cancellation reaches the account by webhook alone" "$state" "True"
expect "premium stays until the period ends" \
  "$(curl -sf "${auth2[@]}" "$base/billing-account/billing/account" | json "['account']['premium']")" "True"
deliveries=$(curl -sf "$stripe/_emulator/deliveries" | python3 -c "import json,sys; print(sum(1 for d in json.load(sys.stdin)['data'] if d.get('succeeded')))")
[ "$deliveries" -gt 0 ] || { echo "e2e FAILED: no successful webhook deliveries" >&2; exit 1; }
echo "e2e ok: $deliveries webhook deliveries answered 2xx"

# An administrator sees the configuration-as-code mapping make dev applied, and the day's portal
# analytics: three sessions of two customers, one email change, one cancellation and its reason.
admin=(-H "Authorization: Bearer $(target/debug/devstack token --dir "$STATE_DIR" --sub e2e-admin --admin)")
cancellation=$(json "['configurations']['cancellation']['id']" <"$STATE_DIR/portal-config.json")
workflows=$(curl -sf "${admin[@]}" "$base/portal-config/portal/workflows")
expect "cancellation_process is mapped to the file's cancellation configuration" \
  "$(echo "$workflows" | json " and [w['configuration_id'] for w in d['workflows'] if w['workflow'] == 'cancellation_process'][0]")" \
  "$cancellation"
expect "non-admins are refused the admin API" \
  "$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "$base/portal-config/portal/configurations")" "403"
analytics=$(curl -sf "${admin[@]}" "$base/portal-analytics/portal/analytics")
expect "analytics counts today's sessions" \
  "$(echo "$analytics" | json " and [d['analytics'][k] for k in ('total_sessions', 'unique_customers')]")" "[3, 2]"
expect "analytics counts the portal's uses" \
  "$(echo "$analytics" | json " and sorted(f for f in d['analytics']['most_used_features'] if f[0] in ('customer_update', 'subscription_cancel'))")" \
  "[['customer_update', 1], ['subscription_cancel', 1]]"
expect "analytics reports the cancellation reason" \
  "$(echo "$analytics" | json "['analytics']['cancellation_reasons']")" "[['too_expensive', 1]]"

# The emulator's clock passes the period end: the subscription ends, the deletion is delivered,
# and premium turns false.
curl -sf -X POST -H 'content-type: application/json' -d '{"seconds": 3000000}' "$stripe/_emulator/clock/advance" >/dev/null
for _ in $(seq 1 100); do
  premium=$(curl -sf "${auth2[@]}" "$base/billing-account/billing/account" | json "['account']['premium']")
  [ "$premium" = "False" ] && break
  sleep 0.2
done
expect "premium ends when the clock passes the period end" "$premium" "False"

# Lifetime access: a payment-mode Checkout paid on the emulator's page; its webhook alone makes the
# account premium with no end and no subscription.
token3=$(target/debug/devstack token --dir "$STATE_DIR" --sub e2e-lifer --email e2e-life@example.test)
auth3=(-H "Authorization: Bearer $token3")
checkout=$(curl -sf -X POST "${auth3[@]}" -H 'content-type: application/json' -H 'Idempotency-Key: e2e-life-1' \
  -d '{"price": "price_pro_lifetime"}' "$base/billing-account/billing/checkout-sessions" | json "['checkout_session']['url']")
curl -sf -X POST -H 'content-type: application/json' -d '{"payment_method": "pm_card_visa"}' "$checkout/complete" >/dev/null
for _ in $(seq 1 100); do
  kind=$(curl -sf "${auth3[@]}" "$base/billing-account/billing/account" | json "['account']['plan']['kind']")
  [ "$kind" = "lifetime" ] && break
  sleep 0.2
done
expect "a lifetime purchase reaches the account by webhook alone" "$kind" "lifetime"
expect "lifetime premium has no end" \
  "$(curl -sf "${auth3[@]}" "$base/billing-account/billing/account" | json " and [d['account'][k] for k in ('premium', 'premium_until', 'subscription')]")" \
  "[True, None, None]"
expect "a second lifetime checkout is refused" \
  "$(curl -s -o /dev/null -w '%{http_code}' -X POST "${auth3[@]}" -H 'content-type: application/json' -H 'Idempotency-Key: e2e-life-2' \
    -d '{"price": "price_pro_lifetime"}' "$base/billing-account/billing/checkout-sessions")" "409"

# A plan change: subscribe through Checkout, price the switch to yearly, confirm it in the portal.
token4=$(target/debug/devstack token --dir "$STATE_DIR" --sub e2e-upgrader --email e2e-up@example.test)
auth4=(-H "Authorization: Bearer $token4")
checkout=$(curl -sf -X POST "${auth4[@]}" -H 'content-type: application/json' -H 'Idempotency-Key: e2e-up-1' \
  -d '{"price": "price_pro_monthly"}' "$base/billing-account/billing/checkout-sessions" | json "['checkout_session']['url']")
curl -sf -X POST -H 'content-type: application/json' -d '{"payment_method": "pm_card_visa"}' "$checkout/complete" >/dev/null
account=$(curl -sf "${auth4[@]}" "$base/billing-account/billing/account?refresh=true")
expect "checkout's card is the one shown" "$(echo "$account" | json "['account']['default_payment_method']['last4']")" "4242"
sub4=$(echo "$account" | json "['account']['subscription']['id']")
preview=$(curl -sf "${auth4[@]}" "$base/billing-account/billing/subscriptions/$sub4/preview?price=price_pro_yearly")
expect "the preview bills the new interval today" \
  "$(echo "$preview" | json "['preview']['amount_due_today'] > 0 and d['preview']['next_invoice']['amount']")" "12000"
portal=$(curl -sf -X POST "${auth4[@]}" -H 'content-type: application/json' \
  -d '{"workflow": "subscription_management", "price": "price_pro_yearly"}' \
  "$base/portal-session/portal/sessions" | json "['portal_session']['url']")
curl -sf -X POST -H 'content-type: application/json' -d '{"price": "price_pro_yearly"}' "$portal/update" >/dev/null
for _ in $(seq 1 100); do
  price=$(curl -sf "${auth4[@]}" "$base/billing-account/billing/account" | json "['account']['plan']['price_id']")
  [ "$price" = "price_pro_yearly" ] && break
  sleep 0.2
done
expect "the confirmed plan change reaches the account" "$price" "price_pro_yearly"

# What the stack did, as its metrics say: the functions' EMF lines in their logs (cargo lambda
# watch writes the functions' stdout into the dev log), with no personal data in any function line.
expect "the logs hold the metrics and the INFO lines of what the stack did" "$("$VENV/bin/python" - "$log" "$customer" <<'PY'
import json, re, sys
emf, logs = [], []
for raw in open(sys.argv[1], errors="replace"):
    start = raw.find("{")
    if start < 0:
        continue
    try:
        line = json.loads(raw[start:])
    except ValueError:
        continue
    if "_aws" in line:
        emf.append(line)
    elif "level" in line and "fields" in line:
        logs.append(line)
def total(name, function, **dims):
    return sum(l.get(name, 0) for l in emf if l.get("Function") == function
               and all(l.get(k) == v for k, v in dims.items()) and isinstance(l.get(name), int))
wanted = {
    "profile_update sessions": total("PortalSessions", "portal-session", Workflow="profile_update") >= 1,
    "returns with changes": total("PortalReturns", "portal-return", Changes="with") >= 1,
    # Both returns sync. Whether the return or the customer.updated delivery stores the email
    # change first is a race, so the return's sync outcome is not asserted.
    "a sync on each return": total("Syncs", "portal-return") >= 2,
    "changed syncs by webhook": total("Syncs", "stripe-webhook", Outcome="changed") >= 1,
    "processed webhooks": total("WebhookDeliveries", "stripe-webhook", Outcome="processed") >= 1,
    "cancellation events": total("WebhookEvents", "stripe-webhook", EventType="customer.subscription.updated", Outcome="processed") >= 1,
    "failed webhooks": total("WebhookDeliveries", "stripe-webhook", Outcome="failed") == 0,
    "cold starts": total("ColdStarts", "stripe-webhook") >= 1,
    "request ids on every function line": bool(logs) and all(l["span"].get("request_id") or l["span"].get("requestId") for l in logs if "span" in l),
}
# One INFO line per return and per session, in the request's span: who, which customer, which
# request. The user's two returns, before and after the email change.
def info(function, message):
    return [l for l in logs if l.get("level") == "INFO" and l["fields"].get("message") == message
            and l.get("span", {}).get("function") == function]
def in_request(line, user):
    span = line.get("span", {})
    return span.get("user_id") == user and span.get("customer_id") == sys.argv[2] and bool(span.get("request_id"))
returns = info("portal-return", "portal return handled")
wanted["the returns' INFO lines"] = [(l["fields"].get("first_return"), l["fields"].get("changes")) for l in returns] \
    == [(True, 0), (False, 1)] and all(in_request(l, "e2e-user") for l in returns)
sessions = [l for l in info("portal-session", "portal session created") if l["span"].get("user_id") == "e2e-user"]
wanted["the session's INFO line"] = len(sessions) == 1 and sessions[0]["fields"].get("workflow") == "profile_update" \
    and in_request(sessions[0], "e2e-user")
text = json.dumps(emf + logs)
for label, pattern in [("an email", r"[\w.+-]+@[\w-]+\.[\w.]+"), ("a token", r"eyJ[\w-]+\.[\w-]+\.[\w-]+"),
                       ("a secret", r"sk_(test|live)_\w+|whsec_\w+")]:
    wanted["no " + label + " in function lines"] = re.search(pattern, text) is None
missing = [k for k, ok in wanted.items() if not ok]
print("ok" if not missing else "missing: " + ", ".join(missing))
PY
)" "ok"

echo "e2e: all passed"
