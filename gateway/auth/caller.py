"""The caller of one request: who (the actor of audit rows and events), their roles, groups and tenants, and
what they may do. Every access decision of the gateway is a question to a `Caller`."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.auth.permissions import ALL_GRANTS, Grants, may
from gateway.errors import BadRequest, Forbidden, NotFound


@dataclass(frozen=True)
class Caller:
    """`tenants` None: every tenant (PM_AUTH_MODE=none, tenant isolation off, or the `*` tenant in the token).
    Otherwise the caller sees only objects of those tenants; an object without a tenant belongs to none."""

    actor: str
    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    tenants: frozenset[str] | None = None
    grants: Grants = field(default_factory=lambda: ALL_GRANTS)
    expires_at: float | None = None  # the token's `exp` + leeway (Unix seconds); None without a token (auth off)

    def expired(self) -> bool:
        """Whether the token this caller came with has expired: what outlives one request (an SSE stream) ends."""
        return self.expires_at is not None and time.time() >= self.expires_at

    @classmethod
    def unrestricted(cls, actor: str) -> Caller:
        """Anyone, with every permission on every tenant: PM_AUTH_MODE=none."""
        return cls(actor=actor)

    def may(self, permission: str, definition_key: str | None = None) -> bool:
        return may(self.grants, permission, definition_key)

    def require(self, permission: str, definition_key: str | None = None) -> None:
        """Raise Forbidden naming `permission` unless granted (for `definition_key` when scoped by key).

        With `definition_key` None, a permission granted for some definition keys passes: the caller must
        then check it again once the object's key is known (`require_for`)."""
        if permission not in self.grants:
            raise Forbidden(f"This needs the permission '{permission}', which none of your roles grants")
        if definition_key is not None:
            self.require_for(permission, definition_key)

    def require_for(self, permission: str, definition_key: str | None) -> None:
        if not may(self.grants, permission, definition_key):
            if permission not in self.grants:
                self.require(permission)
            raise Forbidden(
                f"This needs the permission '{permission}' for process definition '{definition_key}'; your roles "
                f"grant it only for {', '.join(self.grants[permission] or ())}"
            )

    @property
    def home_tenant(self) -> str | None:
        """The caller's only tenant, if they have exactly one: where their refused requests are audited."""
        return next(iter(self.tenants)) if self.tenants is not None and len(self.tenants) == 1 else None

    def sees_tenant(self, tenant_id: str | None) -> bool:
        return self.tenants is None or (tenant_id is not None and tenant_id in self.tenants)

    def tenant_for_new(self, tenant_id: str | None, what: str) -> str | None:
        """The tenant a new object (deployment, instance, message, signal, webhook subscription) goes to: the one
        asked for, which must be the caller's, or the caller's only tenant; for a caller of every tenant, the one
        asked for (None: no tenant). `what` completes "You may ... only in your tenants".

        Errors: Forbidden (a tenant not theirs, or a token naming none), BadRequest (several tenants, none asked)."""
        if self.tenants is None:
            return tenant_id
        if tenant_id is not None:
            if tenant_id not in self.tenants:
                raise Forbidden(f"You may {what} only in your tenants ({', '.join(sorted(self.tenants)) or 'none'})")
            return tenant_id
        if len(self.tenants) == 1:
            return next(iter(self.tenants))
        if not self.tenants:
            raise Forbidden(f"Your token names no tenant to {what} in")
        raise BadRequest(f"Give tenant_id: you belong to several tenants ({', '.join(sorted(self.tenants))})")

    def visible(self, tenant_id: str | None, what: str, *, engine: str | None = None) -> None:
        """Raise NotFound(`what` does not exist) for an object of another tenant: no existence leak."""
        if not self.sees_tenant(tenant_id):
            raise NotFound(f"{what} does not exist", engine=engine)

    def sees_task(self, assignee: str | None, candidate_users: Iterable[str], candidate_groups: Iterable[str]) -> bool:
        """The task-level rule: without `task:admin`, only tasks one is the assignee or a candidate user of, or
        whose candidate groups include one of one's groups."""
        if self.may("task:admin"):
            return True
        return assignee == self.actor or self.actor in candidate_users or bool(self.groups & set(candidate_groups))
