// The reference SPA's dev server. Two things exist only here, never in a production build:
// /dev/tokens mints local tokens for the dev users (the sign-in page's buttons), and
// /openapi.yaml serves the contract next to the app.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { defineConfig, type Plugin } from "vite";

const root = resolve(import.meta.dirname, "..");

// The dev users of the sign-in page: two customers and an administrator.
const DEV_USERS = [
  { sub: "alice", email: "alice@example.test", admin: false },
  { sub: "bob", email: "bob@example.test", admin: false },
  { sub: "ada-admin", email: "ada@example.test", admin: true },
];

function devstack(): Plugin {
  const stateDir = process.env.PORTICO_STATE_DIR ?? resolve(root, ".portico");
  const bin = resolve(root, "target/debug/devstack");
  return {
    name: "portico-devstack",
    apply: "serve",
    configureServer(server) {
      server.middlewares.use("/dev/tokens", (_req, res) => {
        try {
          const users = DEV_USERS.map((u) => {
            const args = ["token", "--dir", stateDir, "--sub", u.sub, "--email", u.email];
            if (u.admin) args.push("--admin");
            const token = execFileSync(bin, args, { encoding: "utf8" }).trim();
            return { ...u, token };
          });
          res.setHeader("content-type", "application/json");
          res.setHeader("cache-control", "no-store");
          res.end(JSON.stringify(users));
        } catch (e) {
          res.statusCode = 503;
          res.end(JSON.stringify({ error: `devstack token failed (is make dev running?): ${e}` }));
        }
      });
      server.middlewares.use("/openapi.yaml", (_req, res) => {
        res.setHeader("content-type", "application/yaml");
        res.end(readFileSync(resolve(root, "openapi.yaml")));
      });
    },
  };
}

export default defineConfig({
  plugins: [devstack()],
  server: { host: "127.0.0.1", strictPort: true },
  preview: { host: "127.0.0.1", strictPort: true },
});
