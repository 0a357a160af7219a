// Who is signed in. Locally a dev token from the devstack (the sign-in page's buttons); in
// production replace `signIn`/`token` with your identity provider's SDK, e.g. Auth0's
// `getTokenSilently()` or Amplify's `fetchAuthSession()` for Cognito: Portico only needs a JWT
// from the issuer and audience it was deployed with (JWT_ISSUER, JWT_AUDIENCE).

export interface DevUser {
  sub: string;
  email: string;
  admin: boolean;
  token: string;
}

const KEY = "portico.session";

export interface Session {
  sub: string;
  email: string;
  admin: boolean;
  token: string;
}

export function current(): Session | null {
  const raw = sessionStorage.getItem(KEY);
  if (!raw) return null;
  try {
    const session = JSON.parse(raw) as Session;
    // An expired token signs the user out instead of failing every call.
    const payload = JSON.parse(atob(session.token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    if (typeof payload.exp === "number" && payload.exp * 1000 < Date.now()) {
      signOut();
      return null;
    }
    return session;
  } catch {
    signOut();
    return null;
  }
}

export function signIn(user: DevUser): void {
  sessionStorage.setItem(KEY, JSON.stringify(user));
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
}

/** The dev users the dev server can mint tokens for (404 outside `vite` dev: no dev sign-in). */
export async function devUsers(): Promise<DevUser[]> {
  const response = await fetch("/dev/tokens");
  if (!response.ok) throw new Error(`dev tokens unavailable (${response.status})`);
  return (await response.json()) as DevUser[];
}
