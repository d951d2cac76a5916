"""Outbound authentication to engines: none, basic, a static bearer token, or OAuth2 client credentials."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Generator

import httpx

from gateway.errors import EngineError
from gateway.settings import AuthConfig


class BearerToken(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class OAuth2ClientCredentials(httpx.Auth):
    """Client-credentials tokens (Camunda SaaS, Keycloak/Identity), cached and refreshed before expiry.

    A 401 from the engine forces one refresh and one resend, for tokens revoked before their expiry.
    """

    def __init__(
        self,
        config: AuthConfig,
        *,
        engine: str,
        transport: httpx.AsyncBaseTransport | None = None,
        refresh_margin: float = 30.0,
    ) -> None:
        assert config.token_url and config.client_id and config.client_secret
        self._config = config
        self._engine = engine
        self._transport = transport
        self._margin = refresh_margin
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"Bearer {await self._get(force=False)}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {await self._get(force=True)}"
            yield request

    async def _get(self, *, force: bool) -> str:
        async with self._lock:
            if not force and self._token and time.monotonic() < self._expires_at - self._margin:
                return self._token
            form = {
                "grant_type": "client_credentials",
                "client_id": self._config.client_id,
                "client_secret": self._config.client_secret.get_secret_value(),  # type: ignore[union-attr]
            }
            if self._config.audience:
                form["audience"] = self._config.audience
            if self._config.scope:
                form["scope"] = self._config.scope
            async with httpx.AsyncClient(transport=self._transport, timeout=10.0) as client:
                response = await client.post(self._config.token_url, data=form)  # type: ignore[arg-type]
            try:
                body = response.json()
                token = body["access_token"]
            except (ValueError, KeyError, TypeError):
                raise EngineError(
                    f"The token endpoint of engine '{self._engine}' gave no access token ({response.status_code})",
                    engine=self._engine,
                    engine_status=response.status_code,
                    engine_message=response.text[:200] or None,
                ) from None
            self._token = token
            self._expires_at = time.monotonic() + float(body.get("expires_in", 300))
            return token


def build_auth(
    config: AuthConfig, *, engine: str, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.Auth | None:
    match config.type:
        case "basic":
            return httpx.BasicAuth(config.username or "", config.password.get_secret_value() if config.password else "")
        case "bearer":
            return BearerToken(config.token.get_secret_value())  # type: ignore[union-attr]
        case "oauth2":
            return OAuth2ClientCredentials(config, engine=engine, transport=transport)
    return None
