// Every call the console makes goes to the public API with the signed-in caller's credentials.
export const BASE = "/api/processes";

/** The caller: {user, groups, token} from the sign-in page, kept for this browser tab. */
export function session() {
  return JSON.parse(sessionStorage.getItem("pm-console-session") || "{}");
}
export function saveSession(value) {
  sessionStorage.setItem("pm-console-session", JSON.stringify(value));
}

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
