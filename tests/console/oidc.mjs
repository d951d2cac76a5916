// Sign-in by OIDC authorization code flow with PKCE, by clicking: the console sends the browser to the provider
// (which signs the user in at once and redirects back with a code), exchanges the code with its verifier, and
// shows the incident list with the user's name; the code does not stay in the address bar. The first attempt's
// challenge was swapped at the provider: its token endpoint refuses the verifier and the console says so.
import { baseUrl, check, run } from "./browser.mjs";

const [, , , , issuer] = process.argv;

await run("oidc", async (page, { shot }) => {
  const authorizations = [];
  page.on("request", (request) => { if (request.url().startsWith(`${issuer}/authorize`)) authorizations.push(new URL(request.url())); });
  await page.goto(`${baseUrl}/console#/login`);
  await shot("login");
  await page.getByRole("button", { name: "Sign in with the identity provider" }).click();
  await page.locator("#notice").getByText("Sign-in failed: PKCE verification failed").waitFor();
  check(await page.getByRole("link", { name: "Sign in" }).isVisible(), "a refused code signs nobody in");
  check(page.url() === `${baseUrl}/console#/login`, "the sign-in page is shown again");
  await shot("refused");

  await page.getByRole("button", { name: "Sign in with the identity provider" }).click();
  await page.getByRole("link", { name: "Signed in: nina" }).waitFor();
  await page.getByRole("link", { name: /Cannot evaluate/ }).waitFor();
  check(authorizations.length === 2, "the browser went to the provider's authorization endpoint for each attempt");
  const query = authorizations[1].searchParams;
  check(query.get("code_challenge_method") === "S256" && query.get("code_challenge")?.length === 43, "with an S256 code challenge");
  check(query.get("client_id") === "pm-console" && query.get("scope") === "openid profile", "for the configured client and scopes");
  check(query.get("redirect_uri") === `${baseUrl}/console`, "back to /console");
  check(page.url() === `${baseUrl}/console#/incidents`, `the code left the address bar (${page.url()})`);
  check(!(await page.evaluate(() => JSON.stringify(sessionStorage))).includes(query.get("code_challenge")), "nothing of the flow is left behind");
  await shot("incidents");
});
