"""Bearer tokens → `Caller` (PM_AUTH_MODE=jwt), with PyJWT: signature by a key of the configured source
(`gateway.auth.keys`), algorithm pinned by PM_AUTH_ALGORITHMS, `exp` required, `iss`, `aud` and `nbf`
checked with at most PM_AUTH_LEEWAY seconds of clock skew. The claims named by the PM_AUTH_*_CLAIM settings
give the actor, roles, groups and tenants."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import jwt

from gateway.auth.caller import Caller
from gateway.auth.keys import KeySource
from gateway.auth.permissions import RoleMapping
from gateway.errors import Unauthorized

ALL_TENANTS = "*"
MAX_ACTOR_LENGTH = 255  # characters, as X-User-Id and the audit log's actor column
VERIFIED_CACHE_SIZE = 10_000  # tokens
VERIFIED_CACHE_SECONDS = 60.0  # how long a checked token is trusted without checking again (never past `exp`)


def claim(claims: dict[str, Any], path: str) -> Any:
    """The value at a dotted claim path (`realm_access.roles`), None when absent."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any) -> frozenset[str]:
    """A claim as a set of strings: a list, or one string of space-separated names (like `scope`)."""
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, Iterable) and not isinstance(value, dict):
        return frozenset(str(item) for item in value if isinstance(item, (str, int)))
    return frozenset()


class TokenVerifier:
    """Checks bearer tokens and maps their claims (see the module docstring)."""

    def __init__(
        self,
        keys: KeySource,
        roles: RoleMapping,
        *,
        issuer: str | None,
        audience: str,
        algorithms: list[str],
        leeway: float,
        actor_claim: str = "sub",
        roles_claim: str = "roles",
        groups_claim: str = "groups",
        tenants_claim: str | None = "tenants",
    ) -> None:
        self.keys, self.roles = keys, roles
        self.issuer, self.audience, self.algorithms, self.leeway = issuer, audience, algorithms, leeway
        self.actor_claim, self.roles_claim, self.groups_claim = actor_claim, roles_claim, groups_claim
        self.tenants_claim = tenants_claim
        # token -> (unix time until which it is trusted, its caller): a client sends the same token many times
        self.verified: OrderedDict[str, tuple[float, Caller]] = OrderedDict()

    async def caller(self, token: str) -> Caller:
        """The caller a token speaks for. Errors: Unauthorized (invalid, expired, not for this gateway),
        ServiceUnavailable (the provider's keys were never obtained).

        A token that passed is remembered for VERIFIED_CACHE_SECONDS (never past its `exp`), so repeated
        requests with it skip the signature check."""
        now = time.time()
        known = self.verified.get(token)
        if known is not None:
            if now < known[0]:
                return known[1]
            del self.verified[token]
        claims = await self._verified_claims(token)
        caller = self.caller_from_claims(claims)
        self.verified[token] = (min(float(claims["exp"]), now + VERIFIED_CACHE_SECONDS), caller)
        if len(self.verified) > VERIFIED_CACHE_SIZE:
            self.verified.popitem(last=False)
        return caller

    async def _verified_claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise Unauthorized("The bearer token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise Unauthorized(
                f"The token is signed with {algorithm!r}; this gateway accepts only {', '.join(self.algorithms)}"
            )
        key = await self.keys.key_for(header.get("kid"))
        if key.key_type != _key_type(algorithm):
            raise Unauthorized(f"The token's algorithm {algorithm!r} does not match its key ({key.key_type})")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"] if self.issuer else ["exp", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("The token is not valid yet (nbf)") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized(f"The token was not issued by {self.issuer}") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(f"The token is not meant for this gateway (audience {self.audience})") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"The token lacks the claim '{exc.claim}'") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"The token is invalid: {exc}") from None
        return claims

    def caller_from_claims(self, claims: dict[str, Any]) -> Caller:
        actor = claim(claims, self.actor_claim)
        if not isinstance(actor, str) or not actor:
            raise Unauthorized(f"The token has no '{self.actor_claim}' claim naming the user")
        if len(actor) > MAX_ACTOR_LENGTH:
            # the actor is kept in audit rows, events and records, like X-User-Id (at most 255 characters)
            raise Unauthorized(
                f"The token's '{self.actor_claim}' claim is longer than {MAX_ACTOR_LENGTH} characters; "
                "it cannot name the user in the audit log"
            )
        roles = _strings(claim(claims, self.roles_claim))
        groups = _strings(claim(claims, self.groups_claim))
        tenants: frozenset[str] | None = None
        if self.tenants_claim:
            tenants = _strings(claim(claims, self.tenants_claim))
        claimed: dict[str, Iterable[str]] = {
            self.actor_claim: [actor],
            self.roles_claim: roles,
            self.groups_claim: groups,
        }
        if self.tenants_claim and tenants is not None:
            claimed[self.tenants_claim] = tenants
        for path, values in claimed.items():
            if any("\x00" in value for value in values):  # PostgreSQL stores no NUL, so no query could use it
                raise Unauthorized(f"The token's '{path}' claim contains a NUL character, which no string may contain")
        if tenants is not None and ALL_TENANTS in tenants:
            tenants = None
        return Caller(
            actor=actor,
            roles=roles,
            groups=groups,
            tenants=tenants,
            grants=self.roles.grants(roles),
            # as long as the token is accepted: `exp` and the leeway on it
            expires_at=float(claims["exp"]) + self.leeway if isinstance(claims.get("exp"), int | float) else None,
        )


def _key_type(algorithm: str) -> str:
    return {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}.get(algorithm[:2], "?")
