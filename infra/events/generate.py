"""Writes the API Gateway v2 sample events in events/ (run from the repository root).

The events are checked in; this script only keeps their shape consistent. `${TOKEN}` and other
`${...}` placeholders are filled by the tests and by `make invoke`.
"""
import json
import os

FUNCTION_URL_HOST = "abcdefghijklmnop.lambda-url.us-east-1.on.aws"


def event(name, method, path, token=True, body=None, query="", auth=None, host="api.portico.example",
          extra_headers=None):
    headers = {"accept": "application/json", "host": host, "user-agent": "portico-events/1.0",
               "x-forwarded-proto": "https"}
    if token:
        headers["authorization"] = auth or "Bearer ${TOKEN}"
    if body is not None:
        headers["content-type"] = "application/json"
    headers.update(extra_headers or {})
    if path == "/" and body == "${BODY}":
        headers["stripe-signature"] = "${SIGNATURE}"
    ev = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "portico", "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10",
                     "userAgent": "portico-events/1.0"},
            "requestId": f"req-{name.split('/')[-1]}", "routeKey": "$default", "stage": "$default",
            "time": "21/Nov/2026:10:00:00 +0000", "timeEpoch": 1795255200000},
        "isBase64Encoded": False,
    }
    if query:
        ev["queryStringParameters"] = dict(kv.split("=", 1) for kv in query.split("&"))
    if body is not None:
        ev["body"] = body if isinstance(body, str) else json.dumps(body)
    os.makedirs(os.path.dirname(f"events/{name}.json"), exist_ok=True)
    with open(f"events/{name}.json", "w") as f:
        json.dump(ev, f, indent=2)
        f.write("\n")


event("billing-account/get-account", "GET", "/billing/account")
event("billing-account/get-account-unauthenticated", "GET", "/billing/account", token=False)
event("billing-account/get-account-invalid-token", "GET", "/billing/account", auth="Bearer not.a-jwt")
event("billing-account/get-account-wrong-method", "DELETE", "/billing/account")
event("billing-account/unknown-route", "GET", "/billing/nothing-here")
event("billing-account/get-account-refresh", "GET", "/billing/account", query="refresh=true")
event("billing-account/cancel", "POST", "/billing/subscriptions/${SUBSCRIPTION}/cancel", body="")
event("billing-account/cancel-immediately", "POST", "/billing/subscriptions/${SUBSCRIPTION}/cancel",
      body={"immediately": True})
event("billing-account/resume", "POST", "/billing/subscriptions/${SUBSCRIPTION}/resume", body="")
event("billing-account/checkout", "POST", "/billing/checkout-sessions",
      body={"price": "price_pro_monthly", "success_path": "/welcome", "cancel_path": "/pricing"},
      extra_headers={"idempotency-key": "${IDEMPOTENCY_KEY}"})
event("billing-account/checkout-lifetime", "POST", "/billing/checkout-sessions",
      body={"price": "price_pro_lifetime", "success_path": "/welcome", "cancel_path": "/pricing"},
      extra_headers={"idempotency-key": "${IDEMPOTENCY_KEY}"})
event("billing-account/preview-plan-change", "GET", "/billing/subscriptions/${SUBSCRIPTION}/preview",
      query="price=${PRICE}")
event("billing-account/checkout-without-key", "POST", "/billing/checkout-sessions",
      body={"price": "price_pro_monthly"})

for workflow in ["payment_update", "billing_review", "subscription_management", "cancellation_process",
                 "profile_update"]:
    event(f"portal-session/create-{workflow.replace('_', '-')}", "POST", "/portal/sessions",
          body={"workflow": workflow})
event("portal-session/create-default", "POST", "/portal/sessions", body="")
event("portal-session/create-with-return-url", "POST", "/portal/sessions",
      body={"workflow": "payment_update", "return_url": "https://app.portico.test/settings/billing?tab=cards",
            "locale": "de"})
event("portal-session/create-open-redirect", "POST", "/portal/sessions",
      body={"workflow": "billing_review", "return_url": "https://app.portico.test.evil.example/phish"})
event("portal-session/create-bad-body", "POST", "/portal/sessions", body={"workflow": "upgrade_everything"})
event("portal-session/create-unauthenticated", "POST", "/portal/sessions", token=False, body={})

event("portal-return/return", "GET", "/portal/return", query="session=${SESSION}")
event("portal-return/return-with-action", "GET", "/portal/return", query="session=${SESSION}&action=payment_updated")
event("portal-return/return-unknown-session", "GET", "/portal/return",
      query="session=00000000000000000000000000000000")
event("portal-return/return-unauthenticated", "GET", "/portal/return", token=False,
      query="session=00000000000000000000000000000000")

# Stripe's deliveries to the function URL. Tests and `make invoke` put a real event in the body
# and sign it with the local test secret (whsec_portico_FAKE_local_test_secret).
event("stripe-webhook/event", "POST", "/", token=False, body="${BODY}", host=FUNCTION_URL_HOST)
event("stripe-webhook/event-unsigned", "POST", "/", token=False,
      body='{"id":"evt_unsigned","object":"event","type":"customer.updated","created":1795255200,"livemode":false,"data":{"object":{"id":"cus_X","object":"customer"}}}',
      host=FUNCTION_URL_HOST)

# Admin: portal configurations and the workflow mapping (tokens carry the admin claim).
NEW_CONFIGURATION = {
    "name": "Retention",
    "business_profile": {"headline": "Before you go", "privacy_policy_url": "https://app.portico.test/privacy"},
    "features": {
        "invoice_history": {"enabled": True},
        "payment_method_update": {"enabled": True},
        "subscription_cancel": {
            "enabled": True, "mode": "at_period_end",
            "cancellation_reason": {"enabled": True, "options": ["too_expensive", "missing_features", "other"]},
        },
    },
    "metadata": {"team": "growth"},
}
event("portal-config/list-configurations", "GET", "/portal/configurations")
event("portal-config/create-configuration", "POST", "/portal/configurations", body=NEW_CONFIGURATION,
      extra_headers={"idempotency-key": "${IDEMPOTENCY_KEY}"})
event("portal-config/create-configuration-invalid", "POST", "/portal/configurations",
      body={"features": {"subscription_cancel": {"enabled": True, "mode": "sometime"}}})
event("portal-config/get-configuration", "GET", "/portal/configurations/${CONFIGURATION}")
event("portal-config/update-configuration", "POST", "/portal/configurations/${CONFIGURATION}",
      body={"business_profile": {"headline": "Manage your plan"}, "features": {"invoice_history": {"enabled": False}}})
event("portal-config/deactivate-configuration", "POST", "/portal/configurations/${CONFIGURATION}",
      body={"active": False})
event("portal-config/list-workflows", "GET", "/portal/workflows")
event("portal-config/put-workflow", "PUT", "/portal/workflows/cancellation_process",
      body={"configuration_id": "${CONFIGURATION}", "return_path": "/goodbye", "after_completion": "hosted_confirmation",
            "branding": {"company_name": "Portico", "logo_url": "https://app.portico.test/logo.svg",
                         "primary_color": "#1e40af", "secondary_color": "#3b82f6",
                         "support_url": "https://app.portico.test/support", "headline": "Sorry to see you go"}})
event("portal-config/put-workflow-unknown", "PUT", "/portal/workflows/upgrade_everything", body={})
event("portal-config/list-configurations-unauthenticated", "GET", "/portal/configurations", token=False)

event("portal-analytics/analytics", "GET", "/portal/analytics", query="start_date=${START}&end_date=${END}")
event("portal-analytics/analytics-end-before-start", "GET", "/portal/analytics",
      query="start_date=2026-11-30&end_date=2026-11-01")
event("portal-analytics/analytics-unauthenticated", "GET", "/portal/analytics", token=False,
      query="start_date=2026-11-01&end_date=2026-11-30")
