"""Authentication and authorization: who calls (`Caller`), from a bearer token (PM_AUTH_MODE=jwt) or from
`X-User-Id` (PM_AUTH_MODE=none, local development only), and what they may do (`permissions`).

`Authenticator` is built once by the composition root; the FastAPI dependency in `gateway.api.context` asks
it for the caller of each request.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging

from gateway.auth.caller import Caller
from gateway.auth.keys import KeySource, OidcKeys, StaticKeys
from gateway.auth.permissions import PERMISSIONS, RoleMapping
from gateway.auth.tokens import TokenVerifier
from gateway.errors import ConfigError, Unauthorized
from gateway.settings import Settings

__all__ = ["PERMISSIONS", "Authenticator", "Caller", "RoleMapping", "build_authenticator", "check_protected_mode"]

log = logging.getLogger("gateway")


def actor_of(x_user_id: str | None) -> str:
    """The caller in PM_AUTH_MODE=none: the X-User-Id header, or `anonymous`. Header values reach the app decoded
    as Latin-1 (HTTP's rule); a user id sent as UTF-8 (`ünï`) is read as UTF-8, as clients send it."""
    text = (x_user_id or "").strip()
    with contextlib.suppress(UnicodeError):  # not UTF-8 bytes in Latin-1 clothing: kept as it came
        text = text.encode("latin-1").decode("utf-8")
    return text or "anonymous"


class Authenticator:
    """The caller of a request: from its bearer token with a `verifier`, else (auth off) from X-User-Id."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        self.verifier = verifier

    @property
    def enabled(self) -> bool:
        return self.verifier is not None

    async def caller(self, authorization: str | None, x_user_id: str | None) -> Caller:
        """Errors (auth on): Unauthorized when the Authorization header holds no valid bearer token."""
        if self.verifier is None:
            return Caller.unrestricted(actor_of(x_user_id))
        scheme, _, token = (authorization or "").partition(" ")
        if not authorization:
            raise Unauthorized("This route needs a bearer token (Authorization: Bearer <JWT>)", error="invalid_request")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("The Authorization header must be 'Bearer <JWT>'", error="invalid_request")
        return await self.verifier.caller(token.strip())

    async def close(self) -> None:
        if self.verifier is not None:
            await self.verifier.keys.close()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_protected_mode(settings: Settings) -> None:
    """Refuse to serve without authentication on a non-loopback address unless PM_AUTH_MODE=none was set
    explicitly (like Redis's protected mode). Errors: ConfigError."""
    if settings.auth_mode is None and not _loopback(settings.host):
        raise ConfigError(
            f"invalid configuration: PM_AUTH_MODE: the gateway listens on {settings.host}, beyond this machine, "
            "and no authentication is configured; set PM_AUTH_MODE=jwt (see README, Authentication) or, to run "
            "it open on purpose, PM_AUTH_MODE=none"
        )


def _key_source(settings: Settings) -> KeySource:
    if settings.auth_jwks_file is not None:
        return StaticKeys.from_jwks_file(settings.auth_jwks_file)
    if settings.auth_public_key_file is not None:
        return StaticKeys.from_pem_file(settings.auth_public_key_file, settings.auth_algorithms[0])
    return OidcKeys(
        issuer=settings.auth_issuer,
        jwks_url=settings.auth_jwks_url,
        cache_seconds=settings.auth_jwks_cache_seconds,
        refetch_cooldown=settings.auth_jwks_refetch_cooldown,
    )


def build_authenticator(settings: Settings) -> Authenticator:
    """The authenticator PM_AUTH_* configure. Errors: ConfigError (protected mode, unreadable keys or roles)."""
    check_protected_mode(settings)
    if settings.auth_mode != "jwt":
        log.warning(
            "authentication is off (PM_AUTH_MODE=none): anyone who reaches %s:%s acts as any user",
            settings.host,
            settings.port,
        )
        return Authenticator(None)
    verifier = TokenVerifier(
        _key_source(settings),
        RoleMapping.load(settings.auth_roles_file),
        issuer=settings.auth_issuer,
        audience=settings.auth_audience or "",
        algorithms=settings.auth_algorithms,
        leeway=settings.auth_leeway,
        actor_claim=settings.auth_actor_claim,
        roles_claim=settings.auth_roles_claim,
        groups_claim=settings.auth_groups_claim,
        tenants_claim=settings.auth_tenants_claim or None,
    )
    return Authenticator(verifier)
