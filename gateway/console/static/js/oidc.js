// Sign-in by OIDC authorization code flow with PKCE (RFC 7636, S256) against the gateway's issuer
// (PM_AUTH_ISSUER), as the public client PM_CONSOLE_OIDC_CLIENT_ID. The protocol work (discovery, PKCE, state
// and nonce, the token response and ID token checks) is oauth4webapi's; this module only wires it to the page.
// A chunk of its own, loaded on demand: only a sign-in and the return from the provider need it.
// It imports nothing of the console's, so the bundle gives it a chunk of its own (no shared chunk on first load).
import * as oauth from "oauth4webapi";

const PENDING = "pm-console-oidc";  // sessionStorage: {verifier, state, nonce} from the redirect to the return

const redirectUri = () => `${location.origin}/console`;
const wantsIdToken = (config) => config.scopes.split(/\s+/).includes("openid");

/** The provider's metadata (OIDC discovery) and the request options: plain http only where the issuer is. */
async function provider(config) {
  const issuer = new URL(config.issuer);
  const options = { [oauth.allowInsecureRequests]: issuer.protocol === "http:" };
  return [await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, options)), options];
}

/** Sends the browser to the provider's authorization endpoint with a fresh code challenge, state and nonce. */
export async function beginSignIn(config) {
  const [server] = await provider(config);
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const nonce = wantsIdToken(config) ? oauth.generateRandomNonce() : undefined;
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, nonce }));
  const url = new URL(server.authorization_endpoint);
  url.search = new URLSearchParams({
    client_id: config.client_id,
    redirect_uri: redirectUri(),
    response_type: "code",
    scope: config.scopes,
    state,
    ...(nonce ? { nonce } : {}),
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
  });
  location.assign(url.href);
}

/**
 * The return from the provider (`/console?code=...&state=...`, or `?error=...`): checks the state, exchanges the
 * code with the verifier at the token endpoint and answers the access token. The code leaves the address bar at
 * once. Throws an Error saying what failed (the provider's error_description where it gave one).
 */
export async function exchangeCode(config) {
  const returned = new URL(location.href);
  history.replaceState(null, "", "/console#/incidents");
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  if (!pending) throw new Error("this tab did not start a sign-in; sign in again");
  const [server, options] = await provider(config);
  const client = { client_id: config.client_id };
  try {
    const callback = oauth.validateAuthResponse(server, client, returned, pending.state);
    const response = await oauth.authorizationCodeGrantRequest(server, client, oauth.None(), callback, redirectUri(), pending.verifier, options);
    const tokens = await oauth.processAuthorizationCodeResponse(server, client, response,
      wantsIdToken(config) ? { expectedNonce: pending.nonce, requireIdToken: true } : {});
    return tokens.access_token;
  } catch (error) {
    throw new Error(error.error_description || error.cause?.error_description || error.message);
  }
}
