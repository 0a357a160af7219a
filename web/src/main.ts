// The router: the sign-in page, the Account page (every /dashboard/... return path lands on it),
// the portal return (any page opened with ?session=<ref>), and the admin pages.
import "./style.css";
import { current, devUsers, signIn, signOut } from "./auth";
import { accountPage, returnFromPortal } from "./account";
import { analyticsPage, configurationsPage, workflowsPage } from "./admin";
import { h } from "./ui";

const app = document.getElementById("app") as HTMLElement;

export function navigate(path: string): void {
  history.pushState(null, "", path);
  void render();
}

async function signInPage(): Promise<void> {
  app.replaceChildren(h("h1", {}, "Sign in"), h("p", { class: "muted" }, "Loading the dev users…"));
  try {
    const users = await devUsers();
    app.replaceChildren(
      h("h1", {}, "Sign in"),
      h("p", { class: "muted" }, "Local development: each button signs in with a token from the devstack. In production this is your identity provider's login."),
      h(
        "div",
        { class: "users" },
        ...users.map((u) =>
          h(
            "button",
            {
              class: "user",
              "data-testid": `sign-in-${u.sub}`,
              onclick: () => {
                signIn(u);
                navigate(u.admin ? "/admin/analytics" : "/account");
              },
            },
            h("strong", {}, u.sub),
            h("span", {}, u.email),
            u.admin ? h("span", { class: "badge" }, "admin") : null,
          ),
        ),
      ),
    );
  } catch (e) {
    app.replaceChildren(h("h1", {}, "Sign in"), h("p", { class: "error" }, `No dev sign-in here: ${e}`));
  }
}

function chrome(): void {
  const session = current();
  const nav = document.getElementById("nav") as HTMLElement;
  const link = (href: string, text: string) =>
    h("a", { href, class: location.pathname.startsWith(href) ? "active" : undefined }, text);
  nav.replaceChildren(
    ...(session
      ? [
          link("/account", "Account"),
          ...(session.admin
            ? [link("/admin/configurations", "Configurations"), link("/admin/workflows", "Workflows"), link("/admin/analytics", "Analytics")]
            : []),
        ]
      : []),
  );
  const who = document.getElementById("who") as HTMLElement;
  who.replaceChildren(
    ...(session
      ? [
          h("span", {}, session.email),
          h("button", { class: "link", onclick: () => { signOut(); navigate("/signin"); } }, "Sign out"),
        ]
      : []),
  );
}

export async function render(): Promise<void> {
  const session = current();
  const path = location.pathname;
  if (!session) {
    chrome();
    if (path !== "/signin") history.replaceState(null, "", "/signin");
    return signInPage();
  }
  if (path === "/signin" || path === "/") {
    history.replaceState(null, "", session.admin ? "/admin/analytics" : "/account");
  }
  chrome();
  const ref = new URLSearchParams(location.search).get("session");
  if (ref) return returnFromPortal(app, ref, navigate);
  const at = location.pathname;
  if (at.startsWith("/admin/configurations")) return configurationsPage(app);
  if (at.startsWith("/admin/workflows")) return workflowsPage(app);
  if (at.startsWith("/admin/analytics")) return analyticsPage(app);
  return accountPage(app, navigate);
}

document.addEventListener("click", (event) => {
  const a = (event.target as Element).closest("a");
  if (a && a.origin === location.origin && !a.target && !a.hasAttribute("download")) {
    event.preventDefault();
    navigate(a.pathname + a.search);
  }
});
window.addEventListener("popstate", () => void render());
window.addEventListener("portico:signed-out", () => navigate("/signin"));
void render();
