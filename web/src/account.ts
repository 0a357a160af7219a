// The Account page of the seed documents, the portal entry (with the workflow's branding) and
// the return from the portal.
import { api, explain, type Account, type Branding, type Workflow } from "./api";
import { date, h, money, toast } from "./ui";

type Navigate = (path: string) => void;

/** The plans the SPA offers through Checkout (prices in ALLOWED_PRICES). */
const PLANS = [
  { price: "price_pro_monthly", label: "Pro — monthly" },
  { price: "price_pro_yearly", label: "Pro — yearly" },
];

/** One entry per workflow of the portal, as the seeds name them. */
const WORKFLOWS: { workflow: Workflow; label: string; hint: string; subscribers?: boolean }[] = [
  { workflow: "payment_update", label: "Change payment method", hint: "Use another card" },
  { workflow: "billing_review", label: "Billing history", hint: "Invoices and receipts" },
  { workflow: "subscription_management", label: "Change plan", hint: "Switch plan or interval", subscribers: true },
  { workflow: "cancellation_process", label: "Cancel subscription", hint: "Cancel at the end of the period", subscribers: true },
  { workflow: "profile_update", label: "Edit billing profile", hint: "Email, name and address" },
];

const BRANDING_KEY = "portico.branding.";

/** Shows the workflow's branding while the browser leaves for the portal. */
function brandedInterstitial(branding: Branding | null | undefined): HTMLElement {
  const colour = branding?.primary_color ?? "#1e40af";
  return h(
    "div",
    { class: "interstitial", "data-testid": "portal-entry", style: `--brand:${colour};--brand2:${branding?.secondary_color ?? "#e0e7ff"}` },
    branding?.logo_url ? h("img", { src: branding.logo_url, alt: "", class: "logo" }) : null,
    h("p", {}, `Opening ${branding?.company_name ?? "your"} billing portal…`),
    branding?.headline ? h("p", { class: "muted" }, branding.headline) : null,
  );
}

/** Opens a portal session for the workflow and sends the browser there. */
async function openPortal(workflow: Workflow, button: HTMLButtonElement, errorBox: HTMLElement): Promise<void> {
  const label = button.textContent ?? "";
  button.disabled = true;
  button.classList.add("loading");
  button.textContent = "Opening…";
  errorBox.replaceChildren();
  const { data, error } = await api.POST("/portal/sessions", { body: { workflow } });
  if (!data) {
    button.disabled = false;
    button.classList.remove("loading");
    button.textContent = label;
    errorBox.replaceChildren(h("p", { class: "error", role: "alert" }, explain(error, "We could not open the billing portal")));
    return;
  }
  const session = data.portal_session;
  sessionStorage.setItem(BRANDING_KEY + session.id, JSON.stringify(session.branding ?? null));
  document.body.append(brandedInterstitial(session.branding));
  location.assign(session.url);
}

async function subscribe(price: string, button: HTMLButtonElement, errorBox: HTMLElement): Promise<void> {
  button.disabled = true;
  button.textContent = "Starting checkout…";
  const { data, error } = await api.POST("/billing/checkout-sessions", {
    params: { header: { "Idempotency-Key": crypto.randomUUID() } },
    body: { price, success_path: "/dashboard/billing/checkout-complete", cancel_path: "/account" },
  });
  if (!data?.checkout_session.url) {
    button.disabled = false;
    button.textContent = "Subscribe";
    errorBox.replaceChildren(h("p", { class: "error", role: "alert" }, explain(error, "We could not start the checkout")));
    return;
  }
  location.assign(data.checkout_session.url);
}

async function changeCancellation(kind: "cancel" | "resume", id: string, refresh: () => void, errorBox: HTMLElement): Promise<void> {
  const path = kind === "cancel" ? "/billing/subscriptions/{id}/cancel" : "/billing/subscriptions/{id}/resume";
  const { data, error } = await api.POST(path, { params: { path: { id } } });
  if (!data) {
    errorBox.replaceChildren(h("p", { class: "error", role: "alert" }, explain(error, `We could not ${kind} the subscription`)));
    return;
  }
  toast(kind === "cancel" ? "Subscription will end at the period end" : "Subscription resumed", data.result.changes);
  refresh();
}

function status(account: Account): HTMLElement {
  const sub = account.subscription;
  const until = account.premium_until ?? (sub?.cancel_at_period_end ? sub.current_period_end : null);
  return h(
    "section",
    { class: "card status", "data-testid": "premium" },
    h("h2", {}, account.premium ? "Premium" : "Free plan"),
    account.premium
      ? h(
          "p",
          { "data-testid": "premium-until" },
          sub?.cancel_at_period_end || account.premium_until
            ? `Premium until ${date(until)}${sub?.cancel_at_period_end ? " — your subscription ends then" : ""}`
            : `Renews on ${date(sub?.current_period_end)}`,
        )
      : h("p", { class: "muted" }, "Subscribe to get premium features."),
    account.plan
      ? h("p", { "data-testid": "plan" }, `${account.plan.product_name ?? "Plan"} · ${money(account.plan.amount, account.plan.currency)} / ${account.plan.interval ?? "period"}`)
      : null,
  );
}

function card(account: Account): HTMLElement {
  const pm = account.default_payment_method;
  return h(
    "section",
    { class: "card" },
    h("h2", {}, "Card on file"),
    pm
      ? h("p", { "data-testid": "card" }, `${pm.brand} •••• ${pm.last4}`, h("span", { class: "muted" }, ` expires ${String(pm.exp_month).padStart(2, "0")}/${pm.exp_year}`))
      : h("p", { class: "muted", "data-testid": "card" }, "No card on file"),
  );
}

function invoices(account: Account): HTMLElement {
  return h(
    "section",
    { class: "card wide" },
    h("h2", {}, "Recent invoices"),
    account.invoices.length
      ? h(
          "table",
          { "data-testid": "invoices" },
          h("thead", {}, h("tr", {}, h("th", {}, "Invoice"), h("th", {}, "Date"), h("th", {}, "Amount"), h("th", {}, "Status"), h("th", {}, ""))),
          h(
            "tbody",
            {},
            ...account.invoices.map((i) =>
              h(
                "tr",
                {},
                h("td", {}, i.number ?? i.id),
                h("td", {}, date(i.created)),
                h("td", {}, money(i.amount_due, i.currency)),
                h("td", {}, h("span", { class: `pill ${i.status ?? ""}` }, i.status ?? "—")),
                h(
                  "td",
                  {},
                  i.hosted_invoice_url ? h("a", { href: i.hosted_invoice_url, target: "_blank", rel: "noopener" }, "View") : null,
                  " ",
                  i.invoice_pdf ? h("a", { href: i.invoice_pdf, target: "_blank", rel: "noopener" }, "PDF") : null,
                ),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No invoices yet."),
  );
}

export async function accountPage(app: HTMLElement, navigate: Navigate): Promise<void> {
  // Back from Checkout the subscription is new: re-sync from Stripe instead of the stored state.
  const refresh = location.pathname.endsWith("/checkout-complete");
  app.replaceChildren(h("h1", {}, "Account"), h("p", { class: "muted", "data-testid": "loading" }, "Loading your account…"));
  const { data, error } = await api.GET("/billing/account", { params: { query: refresh ? { refresh: "true" } : {} } });
  if (!data) {
    app.replaceChildren(h("h1", {}, "Account"), h("p", { class: "error", role: "alert" }, explain(error, "We could not load your account")));
    return;
  }
  if (refresh) history.replaceState(null, "", "/account");
  const account = data.account;
  const sub = account.subscription;
  const subscribed = !!sub && !["canceled", "incomplete_expired"].includes(sub.status);
  const errorBox = h("div", { class: "errors" });
  const again = () => void accountPage(app, navigate);

  const main = h(
    "button",
    { class: "primary", "data-testid": "manage", onclick: (e: Event) => void openPortal(subscribed ? "subscription_management" : "billing_review", e.currentTarget as HTMLButtonElement, errorBox) },
    subscribed ? "Manage Subscription" : "Manage Billing",
  );

  const entries = h(
    "section",
    { class: "card wide" },
    h("h2", {}, "Billing"),
    h(
      "div",
      { class: "workflows" },
      ...WORKFLOWS.filter((w) => subscribed || !w.subscribers).map((w) =>
        h(
          "button",
          { class: "workflow", "data-testid": `workflow-${w.workflow}`, onclick: (e: Event) => void openPortal(w.workflow, e.currentTarget as HTMLButtonElement, errorBox) },
          w.label,
          h("small", {}, w.hint),
        ),
      ),
    ),
  );

  const actions = h("div", { class: "actions" }, main);
  if (sub && subscribed) {
    actions.append(
      sub.cancel_at_period_end
        ? h("button", { "data-testid": "resume", onclick: () => void changeCancellation("resume", sub.id, again, errorBox) }, "Resume subscription")
        : h("button", { "data-testid": "cancel", onclick: () => void changeCancellation("cancel", sub.id, again, errorBox) }, "Cancel at period end"),
    );
  }

  const plans = subscribed
    ? null
    : h(
        "section",
        { class: "card wide" },
        h("h2", {}, "Subscribe"),
        h(
          "div",
          { class: "plans" },
          ...PLANS.map((p) =>
            h(
              "div",
              { class: "plan" },
              h("strong", {}, p.label),
              h("button", { class: "primary", "data-testid": `subscribe-${p.price}`, onclick: (e: Event) => void subscribe(p.price, e.currentTarget as HTMLButtonElement, errorBox) }, "Subscribe"),
            ),
          ),
        ),
      );

  app.replaceChildren(
    h("h1", {}, "Account"),
    h("p", { class: "muted" }, account.email ?? ""),
    actions,
    errorBox,
    h("div", { class: "grid" }, status(account), card(account), plans, entries, invoices(account)),
  );
}

/** The page the portal returns to: re-sync, show what changed, then go where the answer says. */
export async function returnFromPortal(app: HTMLElement, ref: string, navigate: Navigate): Promise<void> {
  app.replaceChildren(h("h1", {}, "Welcome back"), h("p", { class: "muted", "data-testid": "syncing" }, "Synchronizing your changes…"));
  const { data, error } = await api.GET("/portal/return", { params: { query: { session: ref } } });
  const branding = JSON.parse(sessionStorage.getItem(BRANDING_KEY + ref) ?? "null") as Branding | null;
  if (!data) {
    toast("We could not synchronize your changes", [explain(error, "Return")], "error");
    navigate("/account");
    return;
  }
  const changes = data.synchronized_data.changes;
  const title = branding?.company_name ? `Changes synchronized · ${branding.company_name}` : "Changes synchronized";
  toast(title, changes.length ? changes : ["Nothing changed"], "ok", branding?.primary_color ?? undefined);
  navigate(data.redirect_url);
}
