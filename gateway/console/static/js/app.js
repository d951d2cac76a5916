// The console's router: the URL fragment names the page (#/incidents, #/incidents/ID, #/instances/ID?engine=,
// #/tasks, #/definitions, #/definitions/ID, #/events, #/login); each page module renders into <main>.
import { api, can, config, loadPermissions, saveSession, session } from "./api.js";
import { notify } from "./ui.js";
import { incidentList, incidentDetail } from "./incidents.js";
import { instancePage } from "./instance.js";
import { taskPage } from "./tasks.js";
import { definitionList, definitionDetail } from "./definitions.js";
import { eventPage } from "./events.js";
import { loginPage } from "./login.js";

const routes = [
  [/^\/incidents$/, incidentList],
  [/^\/incidents\/([^/]+)$/, incidentDetail],
  [/^\/instances\/([^/]+)$/, instancePage],
  [/^\/tasks$/, taskPage],
  [/^\/definitions$/, definitionList],
  [/^\/definitions\/([^/]+)$/, definitionDetail],
  [/^\/events$/, eventPage],
  [/^\/login$/, loginPage],
];

let leave = null;  // the current page's clean-up (closes its event stream, stops its polling)
let shown = 0;  // counts navigations: a page still loading when the next one starts is cleaned up, never shown

/** Renders the page the fragment names; after a route change (not the first load) focus moves to <main>. */
async function show(event) {
  const [path, search = ""] = (location.hash.slice(1) || "/incidents").split("?");
  const params = new URLSearchParams(search);
  const main = document.getElementById("main");
  const navigation = ++shown;
  if (leave) leave();
  leave = null;
  notify("");
  for (const link of document.querySelectorAll("nav a")) {
    link.toggleAttribute("aria-current", path.startsWith(link.getAttribute("href").slice(1)));
    if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
  }
  const { user } = session();
  document.getElementById("who").textContent = user ? `Signed in: ${user}` : "Sign in";
  const route = routes.find(([pattern]) => pattern.test(path));
  // Each navigation renders into a view of its own: a slow page that finishes late writes into a detached view.
  const view = document.createElement("div");
  main.replaceChildren(view);
  if (!route) {
    view.append("No such page.");
    return;
  }
  const [pattern, page] = route;
  try {
    const cleanUp = (await page(view, params, ...path.match(pattern).slice(1).map(decodeURIComponent))) || null;
    if (navigation === shown) leave = cleanUp;
    else if (cleanUp) cleanUp();
  } catch (error) {
    if (navigation === shown) notify(error.message || String(error));
  }
  if (event && navigation === shown) main.focus();
}

/** Reads the caller's permissions (GET /me) and hides the navigation entries whose page they may not read; the
 * pages hide the actions likewise (`can`). */
async function learnPermissions() {
  await loadPermissions();
  for (const link of document.querySelectorAll("nav a[data-permission]")) link.hidden = !can(link.dataset.permission);
}

window.addEventListener("hashchange", async (event) => {
  if (event.oldURL.endsWith("#/login")) await learnPermissions();  // signed in anew
  show(event);
});
/** The return from the OIDC provider's sign-in: the access token is kept for this tab (sessionStorage); the user
 * and groups are the gateway's reading of it (GET /me). */
async function completeSignIn() {
  const { exchangeCode } = await import("./oidc.js");
  const token = await exchangeCode(config.oidc);
  saveSession({ token });
  const me = await api("me");
  saveSession({ user: me.user, groups: me.groups, token });
}

const search = new URLSearchParams(location.search);
let failure = "";
if (config.oidc && (search.has("code") || search.has("error"))) {
  await completeSignIn().catch((error) => {
    failure = `Sign-in failed: ${error.message}`;
    history.replaceState(null, "", "/console#/login");
  });
}
await learnPermissions();
await show();
if (failure) notify(failure);  // after show(), which clears the notice of the page before
