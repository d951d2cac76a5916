// Sign-in for development: the user id (sent as X-User-Id), the user's groups (for the task queues) and, when
// the gateway requires one, a bearer token pasted from the identity provider.
import { saveSession, session } from "./api.js";
import { h, field, notify } from "./ui.js";

export async function loginPage(main) {
  const current = session();
  const form = h("form", { "aria-label": "Sign in" },
    field("User id", h("input", { name: "user", value: current.user || "", required: true, autocomplete: "username" })),
    field("Groups (comma-separated)", h("input", { name: "groups", value: (current.groups || []).join(", ") })),
    field("Bearer token (when the gateway requires one)", h("textarea", { name: "token", rows: 3, cols: 60 }, current.token || "")),
    h("p", {}, h("button", { type: "submit", class: "primary" }, "Sign in")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    const groups = values.groups.split(",").map((g) => g.trim()).filter(Boolean);
    saveSession({ user: values.user.trim(), groups, token: values.token.trim() || undefined });
    notify(`Signed in as ${values.user.trim()}`, true);
    location.hash = "#/incidents";
  });
  main.append(h("h1", {}, "Sign in"), form);
}
