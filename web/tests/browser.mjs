// The SPA in a real browser (Debian's Chromium, headless) against a make-dev-style stack:
// a new user subscribes through Checkout, switches to the Mastercard in the portal and sees the
// toast and the new card, cancels at period end in the portal and resumes; an admin sees the
// day's sessions and features. Every step leaves a screenshot in $OUT.
//
// Env: BASE (the SPA), OUT (screenshot folder), CHROMIUM (default /usr/bin/chromium).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.BASE ?? "http://localhost:5173";
const OUT = process.env.OUT ?? "../target/browser";
mkdirSync(OUT, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), "portico-chromium-"));

let passed = 0;
let failed = 0;
let shot = 0;

const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1200, height: 900 },
});
context.setDefaultTimeout(20000);
const page = context.pages()[0] ?? (await context.newPage());
const consoleErrors = [];
page.on("pageerror", (e) => consoleErrors.push(String(e)));

async function snap(name) {
  shot += 1;
  const file = join(OUT, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

async function step(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`browser ok: ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`browser FAILED: ${name}: ${e.message ?? e}`);
    await snap(`failed-${name.replace(/\W+/g, "-")}`).catch(() => {});
    throw e;
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

const text = (selector) => page.locator(selector).first().innerText();

try {
  await step("the dev sign-in lists the dev users, an admin among them", async () => {
    await page.goto(`${BASE}/`);
    await page.getByTestId("sign-in-alice").waitFor();
    assert(await page.getByTestId("sign-in-ada-admin").isVisible(), "no admin button");
    await snap("sign-in");
    await page.getByTestId("sign-in-alice").click();
    await page.getByTestId("manage").waitFor();
    assert((await text("[data-testid=manage]")) === "Manage Billing", "a new user is offered Manage Billing");
    assert((await text("[data-testid=premium] h2")) === "Free plan", "a new user is not premium");
    await snap("account-new-user");
  });

  await step("a new user subscribes through Checkout and becomes premium", async () => {
    await page.getByTestId("subscribe-price_pro_monthly").click();
    await page.waitForURL(/\/c\/pay\//);
    await snap("checkout-page");
    await page.getByLabel(/Visa •••• 4242/).check();
    await page.locator("form button[type=submit]").click();
    await page.waitForURL(`${BASE}/account`);
    await page.getByTestId("manage").waitFor();
    assert((await text("[data-testid=premium] h2")) === "Premium", `premium after checkout: ${await text("[data-testid=premium]")}`);
    assert((await text("[data-testid=manage]")) === "Manage Subscription", "a subscriber is offered Manage Subscription");
    assert((await text("[data-testid=card]")).startsWith("visa •••• 4242"), "the checkout card is on file");
    assert((await text("[data-testid=plan]")).includes("Portico Pro"), "the plan is shown");
    await page.getByTestId("invoices").waitFor();
    assert((await page.locator("[data-testid=invoices] a", { hasText: "PDF" }).count()) > 0, "invoices link their PDF");
    await snap("account-premium");
  });

  // Stripe's portal sets the new card as the customer's invoice default; the subscription keeps
  // the card Checkout saved on it as its own default, which is what the Account page shows.
  await step("the user makes the Mastercard the default in the portal, comes back and sees the toast", async () => {
    await page.getByTestId("workflow-payment_update").click();
    await page.waitForURL(/\/p\/session\//);
    await snap("portal-payment-method");
    await page.getByLabel(/Mastercard •••• 4444/).check();
    await page.getByRole("button", { name: "Use this card" }).click();
    await page.waitForURL(`${BASE}/dashboard/billing/payment-methods`);
    const toast = page.getByTestId("toast").filter({ hasText: "Changes synchronized" });
    await toast.waitFor();
    const said = await toast.innerText();
    assert(said.includes("Payment method added: mastercard 4444"), `toast lists the change: ${said}`);
    assert(said.includes("Saved payment methods: 1 → 2"), `toast lists the new saved card: ${said}`);
    await page.getByTestId("card").filter({ hasText: "visa •••• 4242" }).waitFor();
    await snap("account-after-card-change");
  });

  await step("the subscriber cancels at period end in the portal; Account says until when; then resumes", async () => {
    await page.getByTestId("workflow-cancellation_process").click();
    await page.waitForURL(/\/p\/session\//);
    await page.locator("select[name=reason]").selectOption("too_expensive");
    await snap("portal-cancel");
    await page.getByRole("button", { name: /Cancel at the end of the period/ }).click();
    await page.waitForURL(`${BASE}/dashboard/billing/cancellation-survey`);
    await page.getByTestId("toast").filter({ hasText: "Changes synchronized" }).waitFor();
    const until = page.getByTestId("premium-until");
    await until.filter({ hasText: "Premium until" }).waitFor();
    const said = await until.innerText();
    assert(/Premium until [A-Z][a-z]+ \d{1,2}, \d{4} — your subscription ends then/.test(said), `until when: ${said}`);
    await snap("account-cancelling");
    await page.getByTestId("resume").click();
    await page.getByTestId("toast").filter({ hasText: "Subscription resumed" }).waitFor();
    await until.filter({ hasText: "Renews on" }).waitFor();
    assert(await page.getByTestId("cancel").isVisible(), "cancel is offered again");
    await snap("account-resumed");
  });

  await step("an admin sees today's sessions and features on the analytics page", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByTestId("sign-in-ada-admin").click();
    await page.waitForURL(/\/admin\/analytics/);
    await page.getByTestId("total-sessions").waitFor();
    const sessions = Number(await text("[data-testid=total-sessions] strong"));
    assert(sessions >= 2, `today's sessions: ${sessions}`);
    const features = await text("[data-testid=features]");
    assert(features.includes("payment method update") && features.includes("subscription cancel"), `features: ${features}`);
    assert((await text("[data-testid=reasons]")).includes("too expensive"), "the cancellation reason is charted");
    await snap("admin-analytics");
    await page.getByRole("link", { name: "Workflows" }).click();
    await page.getByTestId("workflow-cancellation_process").waitFor();
    await snap("admin-workflows");
  });

  await step("an admin creates a portal configuration and deactivates it", async () => {
    await page.getByRole("link", { name: "Configurations" }).click();
    const form = page.getByTestId("create-configuration");
    await form.waitFor();
    await form.locator("input[name=name]").fill("Browser test configuration");
    await form.locator("input[name=headline]").fill("Made in a browser");
    await form.getByRole("button", { name: "Create" }).click();
    await page.getByTestId("toast").filter({ hasText: "Configuration created" }).waitFor();
    const row = page.locator("tr", { hasText: "Browser test configuration" });
    await row.waitFor();
    assert((await row.innerText()).includes("active"), "created active");
    await snap("admin-configurations");
    await row.getByRole("button", { name: "Deactivate" }).click();
    await page.getByTestId("toast").filter({ hasText: "Configuration deactivated" }).waitFor();
    await page.locator("tr", { hasText: "Browser test configuration" }).filter({ hasText: "inactive" }).waitFor();
  });

  await step("the page raised no script errors", async () => {
    assert(consoleErrors.length === 0, consoleErrors.join("; "));
  });
} catch {
  // The failing step has printed itself and left a screenshot.
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`browser: screenshots in ${OUT}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
