"""The console's end-to-end tests: the whole gateway under uvicorn on a loopback port (SQLite), and each scenario a
node script (`*.mjs` here) driving Debian's headless chromium through playwright-core, which `make console` installs.
Screenshots go to `test-output/console/` at the repository root."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.db import Database
from gateway.settings import Settings
from tests.auth.conftest import Provider, provider, public_jwk, signing_keys  # noqa: F401 - fixtures
from tests.conftest import OPTIONAL_SUITES
from tests.events.conftest import ServedGateway, serve

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
SCREENSHOTS = ROOT / "test-output" / "console"
PLAYWRIGHT = ROOT / "console" / "node_modules" / "playwright-core"
SCENARIO_TIMEOUT = 180.0  # seconds


def chromium() -> str | None:
    return os.environ.get("PM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser_tools() -> str:
    """The chromium to drive; skips (reported in the summary line) where chromium, node or the npm packages are absent."""
    path = chromium()
    missing = [
        what
        for what, present in (
            ("Debian's chromium (apt-get install chromium)", path),
            ("node", shutil.which("node")),
            ("playwright-core (make console)", PLAYWRIGHT.is_dir()),
        )
        if not present
    ]
    if missing:
        reason = "missing " + ", ".join(missing)
        OPTIONAL_SUITES["Console end-to-end"] = f"skipped ({reason})"
        pytest.skip(f"Console end-to-end: {reason}")
    OPTIONAL_SUITES["Console end-to-end"] = f"ran ({path})"
    return str(path)


@pytest.fixture
async def console(
    browser_tools: str, database: Database, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ServedGateway]:
    """The gateway on the embedded engine, served on loopback, with the Incident Center polling every 0.2 s."""
    monkeypatch.setenv("PM_INCIDENTS_POLL_INTERVAL", "0.2")
    settings = Settings(database_url=database.url, auto_migrate=False, engine_type="embedded")
    async with serve(settings) as gateway:
        yield gateway


async def run_scenario(gateway: ServedGateway, script: str, *arguments: str) -> str:
    """Runs `node tests/console/<script> BASE_URL SCREENSHOT_DIR ARGUMENTS...`; fails with its output unless it
    exits 0. Answers its output (it lists the screenshots taken)."""
    process = await asyncio.create_subprocess_exec(
        "node",
        str(HERE / script),
        gateway.url,
        str(SCREENSHOTS),
        *arguments,
        env={**os.environ, "PM_CHROMIUM": chromium() or ""},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), SCENARIO_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"{script} did not finish within {SCENARIO_TIMEOUT:.0f} s")
    text = output.decode()
    assert process.returncode == 0, f"{script} failed:\n{text}"
    return text


CLIENT_ID = "pm-console"


@dataclass
class AuthorizationServer:
    """A tiny OIDC provider for the console's sign-in: discovery, JWKS, an authorization endpoint that signs in
    `user` at once and redirects back with a code, and a token endpoint that checks the PKCE verifier (S256)
    against the challenge before it answers an access token (for the gateway) and an ID token (for the console)."""

    tokens: Provider
    user: dict[str, Any] = field(default_factory=dict)  # the claims of whoever "signs in"
    challenges: dict[str, dict[str, str]] = field(default_factory=dict)  # code -> the authorization request
    exchanges: list[str] = field(default_factory=list)  # the outcome of each token request
    forge_next_challenge: bool = False  # as if an attacker had swapped the challenge: the verifier cannot match

    @property
    def url(self) -> str:
        return self.tokens.url

    def authorize(self, query: dict[str, str]) -> str:
        """The redirect back: `redirect_uri?code&state`, or `?error` for a request the flow must not send."""
        back = query.get("redirect_uri", "")
        if query.get("client_id") != CLIENT_ID or query.get("code_challenge_method") != "S256":
            return f"{back}?{urlencode({'error': 'invalid_request', 'state': query.get('state', '')})}"
        code = secrets.token_urlsafe(16)
        self.challenges[code] = query
        if self.forge_next_challenge:
            self.forge_next_challenge = False
            self.challenges[code] = {**query, "code_challenge": secrets.token_urlsafe(32)}
        return f"{back}?{urlencode({'code': code, 'state': query['state']})}"

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        request = self.challenges.pop(form.get("code", ""), None)
        if request is None or form.get("grant_type") != "authorization_code":
            self.exchanges.append("unknown code")
            return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != request["code_challenge"]:
            self.exchanges.append("wrong verifier")
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        if form.get("redirect_uri") != request["redirect_uri"] or form.get("client_id") != CLIENT_ID:
            self.exchanges.append("wrong client")
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri or client_id differ"}
        self.exchanges.append("ok")
        id_claims = {"aud": CLIENT_ID, "nonce": request.get("nonce"), "sub": self.user["sub"], "tenants": None}
        return 200, {
            "access_token": self.tokens.mint(self.user),
            "id_token": self.tokens.mint(id_claims),
            "token_type": "Bearer",
            "expires_in": 300,
        }


@pytest.fixture
def authorization_server(signing_keys: dict[str, rsa.RSAPrivateKey]) -> Iterator[AuthorizationServer]:  # noqa: F811
    state = AuthorizationServer(tokens=Provider(keys=signing_keys, published=["k1"]))

    class Handler(BaseHTTPRequestHandler):
        def reply(self, status: int, body: dict[str, Any] | None = None, location: str | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Access-Control-Allow-Origin", "*")  # the console calls it from the gateway's origin
            self.send_header("Access-Control-Allow-Headers", "*")
            if location:
                self.send_header("Location", location)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_OPTIONS(self) -> None:  # http.server's naming
            self.reply(204)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/.well-known/openid-configuration":
                self.reply(
                    200,
                    {
                        "issuer": state.url,
                        "jwks_uri": f"{state.url}/jwks",
                        "authorization_endpoint": f"{state.url}/authorize",
                        "token_endpoint": f"{state.url}/token",
                        "response_types_supported": ["code"],
                        "code_challenge_methods_supported": ["S256"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                    },
                )
            elif url.path == "/jwks":
                self.reply(200, {"keys": [public_jwk(state.tokens.keys["k1"], "k1")]})
            elif url.path == "/authorize":
                query = {name: values[0] for name, values in parse_qs(url.query).items()}
                self.reply(302, location=state.authorize(query))
            else:
                self.reply(404, {"error": "not_found"})

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/token":
                self.reply(404, {"error": "not_found"})
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            self.reply(*state.token({name: values[0] for name, values in parse_qs(body).items()}))

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.tokens.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()
