// Every call the console makes goes to the public API with the signed-in caller's credentials.
export const BASE = "/api/processes";

/** The caller: {user, groups, token} from the sign-in page, kept for this browser tab. */
export function session() {
  return JSON.parse(sessionStorage.getItem("pm-console-session") || "{}");
}
export function saveSession(value) {
  sessionStorage.setItem("pm-console-session", JSON.stringify(value));
}

/** The gateway's configuration for the console, written into the page: {oidc: {issuer, client_id, scopes}} when
 * sign-in goes through the OIDC provider (PM_CONSOLE_OIDC_CLIENT_ID), else {}. */
export const config = JSON.parse(document.getElementById("console-config")?.textContent || "{}");

/** The caller's headers: X-User-Id (development, auth off) and the bearer token when signed in with one. */
export function authHeaders(extra = {}) {
  const { user, token } = session();
  const result = { ...extra };
  if (user) result["X-User-Id"] = user;
  if (token) result["Authorization"] = `Bearer ${token}`;
  return result;
}

/** An API error carrying the RFC 9457 problem the gateway answered. */
export class Problem extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Calls `path` (relative to /api/processes unless it starts with "/"); answers parsed JSON, text or null. */
export async function api(path, { method = "GET", query, body, form } = {}) {
  const url = new URL(path.startsWith("/") ? path : `${BASE}/${path}`, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const init = { method, headers: authHeaders() };
  if (form) init.body = form;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, init);
  const type = response.headers.get("content-type") || "";
  const payload = response.status === 204 ? null : type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new Problem(response.status, typeof payload === "object" && payload ? payload : { detail: String(payload) });
  return payload;
}

// What the caller may do (GET /me): the console offers only the actions the gateway would not refuse with 403.
let caller = { permissions: {}, tenants: [] };
let granted = {};

/** Reads the caller's permissions again (after sign-in); with no valid token the caller may do nothing. */
export async function loadPermissions() {
  caller = await api("me").catch(() => ({ permissions: {}, tenants: [] }));
  granted = caller.permissions;
  return granted;
}


/** A definition-key glob (`order-*`, `?`) as a RegExp: the gateway matches grants with Python's fnmatch. */
function glob(pattern) {
  return new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`);
}

/** Whether the caller holds `permission` — for `definitionKey` when given, else for some definition (as the
 * gateway's own check before it knows the object). */
export function can(permission, definitionKey) {
  if (!(permission in granted)) return false;
  const patterns = granted[permission];
  if (patterns === null || definitionKey === undefined || definitionKey === null) return true;
  return patterns.some((p) => glob(p).test(definitionKey));
}
