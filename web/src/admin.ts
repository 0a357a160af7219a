// The admin pages: portal configurations (list, create, edit, deactivate), the workflows with
// their branding, and analytics for a period with charts.
import { api, explain, type Configuration, type ConfigurationSpec, type Workflow, type WorkflowView } from "./api";
import { barChart, columnChart, date, h, rateRing, toast } from "./ui";

function field(label: string, input: HTMLElement): HTMLElement {
  return h("label", { class: "field" }, h("span", {}, label), input);
}

function input(name: string, value = "", attrs: Record<string, string> = {}): HTMLInputElement {
  return h("input", { name, value, ...attrs }) as HTMLInputElement;
}

function checkbox(name: string, checked: boolean): HTMLInputElement {
  return h("input", { type: "checkbox", name, checked }) as HTMLInputElement;
}

function fail(box: HTMLElement, error: unknown, what: string): void {
  const e = error as { field?: string };
  box.replaceChildren(h("p", { class: "error", role: "alert" }, explain(error, what) + (e?.field ? ` — field ${e.field}` : "")));
}

/** The form's values as a configuration spec; on edit only what the form shows is sent. */
function specFrom(form: HTMLFormElement): ConfigurationSpec {
  const get = (n: string) => (form.elements.namedItem(n) as HTMLInputElement).value.trim();
  const on = (n: string) => (form.elements.namedItem(n) as HTMLInputElement).checked;
  return {
    name: get("name") || undefined,
    business_profile: get("headline") ? { headline: get("headline") } : undefined,
    features: {
      invoice_history: { enabled: on("invoice_history") },
      payment_method_update: { enabled: on("payment_method_update") },
      customer_update: { enabled: on("customer_update"), allowed_updates: on("customer_update") ? ["email", "name", "address"] : [] },
      subscription_cancel: {
        enabled: on("subscription_cancel"),
        mode: "at_period_end",
        cancellation_reason: { enabled: on("subscription_cancel"), options: on("subscription_cancel") ? ["too_expensive", "missing_features", "unused", "other"] : [] },
      },
    },
  };
}

function configurationForm(existing: Configuration | null, done: () => void): HTMLElement {
  const features = (existing?.features ?? {}) as Record<string, { enabled?: boolean }>;
  const enabled = (f: string) => (existing ? features[f]?.enabled === true : true);
  const errors = h("div", {});
  const profile = (existing?.business_profile ?? {}) as { headline?: string };
  const form = h(
    "form",
    { class: "card form", "data-testid": existing ? "edit-configuration" : "create-configuration" },
    h("h2", {}, existing ? `Edit ${existing.name ?? existing.id}` : "New configuration"),
    field("Name", input("name", existing?.name ?? "", { required: "required", maxlength: "256" })),
    field("Headline", input("headline", profile.headline ?? "", { maxlength: "60" })),
    h(
      "fieldset",
      {},
      h("legend", {}, "Features"),
      ...["invoice_history", "payment_method_update", "customer_update", "subscription_cancel"].map((f) =>
        h("label", { class: "check" }, checkbox(f, enabled(f)), f.replace(/_/g, " ")),
      ),
    ),
    errors,
    h("button", { class: "primary", type: "submit" }, existing ? "Save" : "Create"),
  ) as HTMLFormElement;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = specFrom(form);
    const { data, error } = existing
      ? await api.POST("/portal/configurations/{id}", { params: { path: { id: existing.id } }, body })
      : await api.POST("/portal/configurations", { params: { header: { "Idempotency-Key": crypto.randomUUID() } }, body });
    if (!data) return fail(errors, error, "Not saved");
    toast(existing ? "Configuration saved" : "Configuration created", [data.configuration.id]);
    done();
  });
  return form;
}

export async function configurationsPage(app: HTMLElement): Promise<void> {
  app.replaceChildren(h("h1", {}, "Portal configurations"), h("p", { class: "muted" }, "Loading…"));
  const { data, error } = await api.GET("/portal/configurations");
  if (!data) {
    app.replaceChildren(h("h1", {}, "Portal configurations"), h("p", { class: "error" }, explain(error, "Could not list them")));
    return;
  }
  const again = () => void configurationsPage(app);
  const side = h("div", {}, configurationForm(null, again));
  const errors = h("div", {});
  const deactivate = async (c: Configuration) => {
    const { data: done, error: e } = await api.POST("/portal/configurations/{id}", { params: { path: { id: c.id } }, body: { active: !c.active } });
    if (!done) return fail(errors, e, c.active ? "Not deactivated" : "Not activated");
    toast(c.active ? "Configuration deactivated" : "Configuration activated", [c.id]);
    again();
  };
  const rows = data.configurations.map((c) =>
    h(
      "tr",
      { "data-testid": `configuration-${c.id}` },
      h("td", {}, h("code", {}, c.id)),
      h("td", {}, c.name ?? "—"),
      h("td", {}, h("span", { class: `pill ${c.active ? "paid" : "void"}` }, c.active ? "active" : "inactive")),
      h("td", {}, c.workflows.join(", ") || "—", c.portico_default ? h("span", { class: "badge" }, "default") : null),
      h("td", {}, date(c.created)),
      h(
        "td",
        {},
        h("button", { class: "link", onclick: () => side.replaceChildren(configurationForm(c, again)) }, "Edit"),
        " ",
        h("button", { class: "link", onclick: () => void deactivate(c) }, c.active ? "Deactivate" : "Activate"),
      ),
    ),
  );
  app.replaceChildren(
    h("h1", {}, "Portal configurations"),
    errors,
    h(
      "div",
      { class: "split" },
      h(
        "table",
        { class: "card" },
        h("thead", {}, h("tr", {}, ...["Id", "Name", "State", "Used by", "Created", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, ...rows),
      ),
      side,
    ),
  );
}

function workflowCard(w: WorkflowView, configurations: Configuration[], done: () => void): HTMLElement {
  const b = w.settings.branding ?? {};
  const errors = h("div", {});
  const select = h(
    "select",
    { name: "configuration_id" },
    h("option", { value: "" }, "— the default —"),
    ...configurations.filter((c) => c.active).map((c) => h("option", { value: c.id, selected: c.id === w.settings.configuration_id }, `${c.name ?? c.id}`)),
  );
  const after = h(
    "select",
    { name: "after_completion" },
    ...["redirect", "hosted_confirmation", "portal_homepage"].map((v) => h("option", { value: v, selected: v === w.after_completion }, v.replace(/_/g, " "))),
  );
  const form = h(
    "form",
    { class: "card form workflow-card", "data-testid": `workflow-${w.workflow}`, style: `--brand:${b.primary_color ?? "#1e40af"}` },
    h("h2", {}, w.workflow.replace(/_/g, " ")),
    h("p", { class: "muted" }, `opens with ${w.configuration_id ?? "no configuration"}${w.uses_default_configuration ? " (the default)" : ""}`),
    field("Configuration", select),
    field("Return path", input("return_path", w.settings.return_path ?? "", { placeholder: w.return_path })),
    field("After completion", after),
    h(
      "fieldset",
      {},
      h("legend", {}, "Branding"),
      field("Company name", input("company_name", b.company_name ?? "")),
      field("Logo URL", input("logo_url", b.logo_url ?? "", { placeholder: "https://…" })),
      field("Primary colour", input("primary_color", b.primary_color ?? "", { placeholder: "#1e40af" })),
      field("Secondary colour", input("secondary_color", b.secondary_color ?? "", { placeholder: "#e0e7ff" })),
      field("Headline", input("headline", b.headline ?? "", { maxlength: "60" })),
    ),
    errors,
    h("button", { class: "primary", type: "submit" }, "Save"),
  ) as HTMLFormElement;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const get = (n: string) => ((form.elements.namedItem(n) as HTMLInputElement).value.trim() || undefined);
    const branding = {
      company_name: get("company_name"),
      logo_url: get("logo_url"),
      primary_color: get("primary_color"),
      secondary_color: get("secondary_color"),
      headline: get("headline"),
    };
    const hasBranding = Object.values(branding).some((v) => v !== undefined);
    const { data, error } = await api.PUT("/portal/workflows/{workflow}", {
      params: { path: { workflow: w.workflow as Workflow } },
      body: {
        configuration_id: get("configuration_id"),
        return_path: get("return_path"),
        after_completion: get("after_completion") as WorkflowView["after_completion"] | undefined,
        branding: hasBranding ? branding : undefined,
      },
    });
    if (!data) return fail(errors, error, "Not saved");
    toast(data.changed ? "Workflow saved" : "Nothing to save", [w.workflow]);
    done();
  });
  return form;
}

export async function workflowsPage(app: HTMLElement): Promise<void> {
  app.replaceChildren(h("h1", {}, "Workflows"), h("p", { class: "muted" }, "Loading…"));
  const [workflows, configurations] = await Promise.all([api.GET("/portal/workflows"), api.GET("/portal/configurations")]);
  if (!workflows.data || !configurations.data) {
    app.replaceChildren(h("h1", {}, "Workflows"), h("p", { class: "error" }, explain(workflows.error ?? configurations.error, "Could not load them")));
    return;
  }
  const list = configurations.data.configurations;
  app.replaceChildren(
    h("h1", {}, "Workflows"),
    h("p", { class: "muted" }, "Each workflow opens the portal with its configuration; its branding is shown around the portal entry."),
    h("div", { class: "grid" }, ...workflows.data.workflows.map((w) => workflowCard(w, list, () => void workflowsPage(app)))),
  );
}

const day = (d: Date) => d.toISOString().slice(0, 10);

export async function analyticsPage(app: HTMLElement): Promise<void> {
  const params = new URLSearchParams(location.search);
  const today = new Date();
  const end = params.get("end_date") ?? day(today);
  const start = params.get("start_date") ?? day(new Date(today.getTime() - 13 * 86400000));
  const form = h(
    "form",
    { class: "period" },
    field("From", input("start_date", start, { type: "date" })),
    field("To", input("end_date", end, { type: "date" })),
    h("button", { type: "submit" }, "Show"),
  ) as HTMLFormElement;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const get = (n: string) => (form.elements.namedItem(n) as HTMLInputElement).value;
    history.pushState(null, "", `/admin/analytics?start_date=${get("start_date")}&end_date=${get("end_date")}`);
    void analyticsPage(app);
  });
  app.replaceChildren(h("h1", {}, "Portal analytics"), form, h("p", { class: "muted" }, "Loading…"));
  const { data, error } = await api.GET("/portal/analytics", { params: { query: { start_date: start, end_date: end } } });
  if (!data) {
    app.replaceChildren(h("h1", {}, "Portal analytics"), form, h("p", { class: "error", role: "alert" }, explain(error, "Could not load analytics")));
    return;
  }
  const a = data.analytics;
  // The API answers for a period; the per-day chart asks for each day of the last 14 at most.
  const days: string[] = [];
  for (let d = new Date(`${end}T00:00:00Z`); days.length < Math.min(14, a.period.days); d = new Date(d.getTime() - 86400000)) days.unshift(day(d));
  const perDay = await Promise.all(
    days.map(async (d) => {
      const r = await api.GET("/portal/analytics", { params: { query: { start_date: d, end_date: d } } });
      return [d, r.data?.analytics.total_sessions ?? 0] as [string, number];
    }),
  );
  const stat = (label: string, value: string | number, id: string) => h("div", { class: "stat", "data-testid": id }, h("strong", {}, String(value)), h("span", {}, label));
  const median = a.session_duration_stats.median_duration_minutes;
  app.replaceChildren(
    h("h1", {}, "Portal analytics"),
    form,
    h(
      "div",
      { class: "stats" },
      stat("sessions", a.total_sessions, "total-sessions"),
      stat("customers", a.unique_customers_estimated ? `≈${a.unique_customers}` : a.unique_customers, "unique-customers"),
      stat("returned", a.returned_sessions, "returned-sessions"),
      stat("median minutes in the portal", median === null ? "—" : median.toFixed(1), "median-duration"),
    ),
    h(
      "div",
      { class: "grid" },
      h("section", { class: "card wide" }, h("h2", {}, "Sessions per day"), columnChart(perDay, "sessions per day")),
      h("section", { class: "card", "data-testid": "features" }, h("h2", {}, "Most used features"), barChart(a.most_used_features as [string, number][], "most used features")),
      h("section", { class: "card", "data-testid": "reasons" }, h("h2", {}, "Cancellation reasons"), barChart(a.cancellation_reasons as [string, number][], "cancellation reasons")),
      h("section", { class: "card" }, h("h2", {}, "Return rate"), rateRing(a.return_rate, "return rate")),
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Sessions by workflow"),
        barChart(Object.entries(a.sessions_by_workflow) as [string, number][], "sessions by workflow"),
      ),
    ),
  );
}
