// Sign-in. With an OIDC provider configured (PM_CONSOLE_OIDC_CLIENT_ID) "Sign in with the identity provider" runs
// the authorization code flow with PKCE (oidc.js). With auth on (PM_AUTH_MODE=jwt) one may also paste a bearer
// token: the user id and groups are read from its claims (`sub`, `groups`) unless typed here, and every API call
// carries it. With auth off (development) the user id is sent as X-User-Id and the groups select the task queues.
import { config, saveSession, session } from "./api.js";
import { h, field, notify } from "./ui.js";

/** The JWT's payload (claims) without checking it: the gateway verifies every call; {} when it is not a JWT. */
function claims(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    return {};
  }
}

export async function loginPage(view) {
  const current = session();
  const form = h("form", { "aria-label": "Sign in" },
    field("User id", h("input", { name: "user", value: current.user || "", autocomplete: "username" })),
    field("Groups (comma-separated)", h("input", { name: "groups", value: (current.groups || []).join(", ") })),
    field("Bearer token (when the gateway requires one)", h("textarea", { name: "token", rows: 3, cols: 60 }, current.token || "")),
    h("p", {}, h("button", { type: "submit", class: "primary" }, "Sign in")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    const token = values.token.trim();
    const claimed = token ? claims(token) : {};
    const user = values.user.trim() || claimed.sub;
    if (!user) {
      notify("Give a user id, or a token that names one (sub).");
      return;
    }
    let groups = values.groups.split(",").map((g) => g.trim()).filter(Boolean);
    if (!groups.length && Array.isArray(claimed.groups)) groups = claimed.groups;
    saveSession({ user, groups, token: token || undefined });
    location.hash = "#/incidents";
  });
  view.append(h("h1", {}, "Sign in"));
  if (config.oidc) {
    const provider = h("button", { type: "button", class: "primary" }, "Sign in with the identity provider");
    provider.addEventListener("click", async () => {
      const { beginSignIn } = await import("./oidc.js");
      await beginSignIn(config.oidc).catch((error) => notify(`Sign-in failed: ${error.message}`));
    });
    view.append(h("p", {}, provider), h("h2", {}, "Or paste a token (development)"));
  }
  view.append(form);
}
