// The API client, generated from openapi.yaml (`npm run gen` writes schema.d.ts): every path,
// parameter and answer below is checked by the compiler against the contract.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";
import { current, signOut } from "./auth";

export type Account = components["schemas"]["Account"];
export type Workflow = components["schemas"]["Workflow"];
export type Branding = components["schemas"]["Branding"];
export type Configuration = components["schemas"]["Configuration"];
export type ConfigurationSpec = components["schemas"]["ConfigurationSpec"];
export type WorkflowView = components["schemas"]["WorkflowView"];
export type Analytics = components["schemas"]["Analytics"];
export type ApiError = components["schemas"]["Error"];

/** Locally infra/gateway (make dev); in AWS the stack's ApiUrl. */
export const API_BASE: string = import.meta.env.VITE_API_BASE ?? "http://127.0.0.1:8787";

const auth: Middleware = {
  onRequest({ request }) {
    const session = current();
    if (session) request.headers.set("Authorization", `Bearer ${session.token}`);
    return request;
  },
  onResponse({ response }) {
    // A token the API no longer accepts: back to sign-in rather than a page of errors.
    if (response.status === 401) {
      signOut();
      window.dispatchEvent(new Event("portico:signed-out"));
    }
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: API_BASE });
api.use(auth);

/** A friendly sentence for an error answer, with the code for support. */
export function explain(error: unknown, what: string): string {
  const e = error as Partial<ApiError> & { message?: string };
  const code = e?.error_code ?? (e?.message ? "gateway" : "network");
  const hints: Record<string, string> = {
    stripe_unavailable: "Stripe is not answering right now. Please try again in a moment.",
    storage_unavailable: "We could not reach our database. Please try again in a moment.",
    portal_not_configured: "The billing portal is not set up for this yet. Please contact support.",
    no_active_subscription: "You have no active subscription to manage here.",
    network: "We could not reach the server. Check your connection and try again.",
  };
  const hint = hints[code] ?? e?.error ?? e?.message ?? "Something went wrong.";
  return `${what}: ${hint} (${code})`;
}
