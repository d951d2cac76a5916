"""Auth test kit: RSA keys generated here, an OIDC provider (discovery + JWKS) served over real HTTP on
loopback, tokens minted with PyJWT, and a gateway with PM_AUTH_MODE=jwt on a SQLite copy of the template."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.bootstrap import create_app
from gateway.settings import Settings

AUDIENCE = "pm-gateway"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


@dataclass
class Provider:
    """A minimal OIDC provider on 127.0.0.1: discovery document, JWKS (mutable), a switch to make it fail."""

    keys: dict[str, rsa.RSAPrivateKey]
    url: str = ""
    down: bool = False
    jwks_requests: int = 0  # attempts to read the JWKS, including those answered 503
    published: list[str] = field(default_factory=list)  # kids in the JWKS

    def mint(self, claims: dict[str, Any] | None = None, *, kid: str = "k1", **header: Any) -> str:
        now = int(time.time())
        body = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "alice",
            "iat": now,
            "exp": now + 300,
            "tenants": ["t1"],
            **(claims or {}),
        }
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, self.keys[kid], algorithm="RS256", headers={"kid": kid, **header})


@pytest.fixture(scope="session")
def signing_keys() -> dict[str, rsa.RSAPrivateKey]:
    return {"k1": rsa_key(), "k2": rsa_key(), "intruder": rsa_key()}


@pytest.fixture
def provider(signing_keys: dict[str, rsa.RSAPrivateKey]) -> Iterator[Provider]:
    state = Provider(keys=signing_keys, published=["k1"])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's naming
            if self.path == "/jwks":
                state.jwks_requests += 1  # every attempt, answered or not
            if state.down:
                self.send_error(503)
                return
            if self.path == "/.well-known/openid-configuration":
                body: dict[str, Any] = {"issuer": state.url, "jwks_uri": f"{state.url}/jwks"}
            elif self.path == "/jwks":
                body = {"keys": [public_jwk(state.keys[kid], kid) for kid in state.published]}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "gateway.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@dataclass
class Gateway:
    client: httpx.AsyncClient
    app: Any


@pytest.fixture
def make_gateway(sqlite_url: str, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """A gateway with auth on (keys from `provider` by OIDC discovery unless settings say otherwise)."""

    @asynccontextmanager
    async def factory(
        engine_transports: dict[str, httpx.AsyncBaseTransport] | None = None, **settings: Any
    ) -> AsyncIterator[Gateway]:
        for name, value in {"POLL_INTERVAL": "0.05", "ESCALATION_TIMEOUT": "0", "SEVERITY_AGE_STEP": "0"}.items():
            monkeypatch.setenv(f"PM_INCIDENTS_{name}", value)
        merged: dict[str, Any] = {
            "database_url": sqlite_url,
            "auto_migrate": False,
            "engines": [{"name": "local", "type": "embedded", "default": True}],
            "auth_mode": "jwt",
            "auth_issuer": provider.url,
            "auth_audience": AUDIENCE,
            **settings,
        }
        app = create_app(Settings(**merged), engine_transports=engine_transports)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
                yield Gateway(client=client, app=app)

    return factory


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
