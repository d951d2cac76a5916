"""Where the keys that sign bearer tokens come from: an OIDC provider's JWKS (found by issuer discovery, or
given), or a static JWKS file / PEM public key for sites without a reachable provider.

The provider's JWKS is fetched with httpx (asynchronously: the event loop never waits on the network), kept
for `cache_seconds`, fetched again at once when a token names an unknown `kid` (key rotation) — at most once
per `refetch_cooldown` seconds, so forged kids cannot make the gateway hammer the provider — and the last
good keys stay in use while the provider is down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError

from gateway.errors import ConfigError, ServiceUnavailable, Unauthorized

log = logging.getLogger(__name__)


class KeySource:
    """Gives the verification key for a token's `kid` (None when the token names none)."""

    async def key_for(self, kid: str | None) -> PyJWK:  # pragma: no cover - interface
        raise NotImplementedError

    async def close(self) -> None:
        return None


def _pick(keys: dict[str | None, PyJWK], kid: str | None) -> PyJWK | None:
    if kid is not None:
        return keys.get(kid)
    if len(keys) == 1:
        return next(iter(keys.values()))
    return None


def _parse_jwks(document: Any, source: str) -> dict[str | None, PyJWK]:
    """The signing keys of a JWKS document by kid (keys for encryption, or of unknown types, are left out)."""
    try:
        keyset = PyJWKSet.from_dict(document)
    except (PyJWKSetError, PyJWKError, TypeError, AttributeError) as exc:
        raise ValueError(f"{source} is not a usable JWKS: {exc}") from None
    return {key.key_id: key for key in keyset.keys if key.public_key_use in (None, "sig")}


class StaticKeys(KeySource):
    """Keys read once at start from a JWKS file or a PEM public key (PM_AUTH_JWKS_FILE / PM_AUTH_PUBLIC_KEY_FILE)."""

    def __init__(self, keys: dict[str | None, PyJWK]) -> None:
        self.keys = keys

    @classmethod
    def from_jwks_file(cls, path: Path) -> StaticKeys:
        try:
            return cls(_parse_jwks(json.loads(Path(path).read_text()), str(path)))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"invalid configuration: PM_AUTH_JWKS_FILE: {exc}") from None

    @classmethod
    def from_pem_file(cls, path: Path, algorithm: str) -> StaticKeys:
        try:
            pem = Path(path).read_bytes()
            key = jwt.get_algorithm_by_name(algorithm).prepare_key(pem)
        except (OSError, ValueError, jwt.InvalidKeyError, NotImplementedError) as exc:
            raise ConfigError(f"invalid configuration: PM_AUTH_PUBLIC_KEY_FILE: {exc}") from None
        jwk = PyJWK.from_dict(json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(key)), algorithm=algorithm)
        return cls({None: jwk})

    async def key_for(self, kid: str | None) -> PyJWK:
        key = _pick(self.keys, kid) or (self.keys.get(None) if len(self.keys) == 1 else None)
        if key is None:
            raise Unauthorized(f"The token's signing key {kid!r} is not among the configured keys")
        return key


class OidcKeys(KeySource):
    """The JWKS of an OIDC provider: `jwks_url`, or the `jwks_uri` of `{issuer}/.well-known/openid-configuration`."""

    def __init__(
        self,
        *,
        issuer: str | None,
        jwks_url: str | None,
        cache_seconds: float,
        refetch_cooldown: float,
        client: httpx.AsyncClient | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.issuer, self.jwks_url = issuer, jwks_url
        self.cache_seconds, self.refetch_cooldown = cache_seconds, refetch_cooldown
        self.client = client or httpx.AsyncClient(timeout=httpx.Timeout(5.0))
        self.clock = clock
        self.keys: dict[str | None, PyJWK] = {}
        self.fetched_at: float | None = None  # last successful fetch
        self.tried_at: float | None = None  # last attempt, successful or not
        self.failed_at: float | None = None  # last failed attempt
        self.lock = asyncio.Lock()

    async def key_for(self, kid: str | None) -> PyJWK:
        now = self.clock()
        expired = self.fetched_at is None or now - self.fetched_at >= self.cache_seconds
        failing = self.failed_at is not None and now - self.failed_at < self.refetch_cooldown
        if expired and not failing:  # a provider that is down is asked again once per cooldown
            await self._refresh(now, reason="expired")
        key = _pick(self.keys, kid)
        if key is None and not self._cooling_down(self.clock()):
            await self._refresh(self.clock(), reason=f"unknown kid {kid!r}")
            key = _pick(self.keys, kid)
        if key is None:
            if not self.keys:
                raise ServiceUnavailable("The token cannot be checked: the identity provider's keys are unavailable")
            raise Unauthorized(f"The token's signing key {kid!r} is not one of the identity provider's keys")
        return key

    def _cooling_down(self, now: float) -> bool:
        return self.tried_at is not None and now - self.tried_at < self.refetch_cooldown

    async def _refresh(self, now: float, *, reason: str) -> None:
        async with self.lock:
            if self.tried_at is not None and self.tried_at >= now:
                return  # another request refreshed while this one waited
            self.tried_at = self.clock()
            try:
                self.keys = _parse_jwks(await self._get(await self._jwks_url()), "the provider's JWKS")
                self.fetched_at, self.failed_at = self.clock(), None
                log.info("fetched the identity provider's JWKS (%s): %d signing keys", reason, len(self.keys))
            except (httpx.HTTPError, ValueError) as exc:
                self.failed_at = self.clock()
                if self.keys:
                    log.warning("JWKS refresh failed (%s); keeping the last good keys: %s", reason, exc)
                else:
                    log.error("JWKS fetch failed (%s): %s", reason, exc)

    async def _jwks_url(self) -> str:
        if self.jwks_url is None:
            discovery = await self._get(f"{(self.issuer or '').rstrip('/')}/.well-known/openid-configuration")
            uri = discovery.get("jwks_uri") if isinstance(discovery, dict) else None
            if not isinstance(uri, str):
                raise ValueError("the OIDC discovery document has no jwks_uri")
            self.jwks_url = uri
        return self.jwks_url

    async def _get(self, url: str) -> Any:
        response = await self.client.get(url, headers={"Accept": "application/json"})
        response.raise_for_status()
        return response.json()

    async def close(self) -> None:
        await self.client.aclose()
