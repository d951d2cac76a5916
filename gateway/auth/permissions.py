"""Permissions (`resource:action`, grant-only) and the role mapping that grants them (PM_AUTH_ROLES_FILE).

The mapping file is JSON: `{"roles": {"<role>": ["<grant>", ...]}}`. A grant is a permission
(`instance:start`), a wildcard (`*`, `task:*`), or a permission scoped to process definition keys with
`@` and a glob (`instance:start@order-*`). The default mapping (`roles.json` next to this module) gives the
roles of the service specification ("Security & Compliance"); README "Authentication and authorization"
lists it.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from gateway.errors import ConfigError

PERMISSIONS: frozenset[str] = frozenset(
    {
        "definition:deploy",
        "definition:read",
        "definition:delete",
        "definition:suspend",
        "instance:start",
        "instance:read",
        "instance:terminate",
        "instance:suspend",
        "instance:write-variables",
        "instance:modify",
        "message:correlate",
        "signal:broadcast",
        "task:read",
        "task:claim",
        "task:complete",
        "task:assign",
        "task:delegate",
        "task:admin",
        "incident:read",
        "incident:act",
        "incident:bulk-retry",
        "audit:read",
        "events:read",
        "subscriptions:manage",
        "engines:read",
        "statistics:read",
    }
)

DEFAULT_ROLES_FILE = Path(__file__).with_name("roles.json")

# permission -> the definition-key globs it is granted for; None: every definition.
Grants = Mapping[str, tuple[str, ...] | None]

ALL_GRANTS: Grants = {permission: None for permission in PERMISSIONS}


def may(grants: Grants, permission: str, definition_key: str | None = None) -> bool:
    """Whether `grants` hold `permission` — for `definition_key` when given; with None, for every definition."""
    if permission not in grants:
        return False
    patterns = grants[permission]
    if patterns is None:
        return True
    return definition_key is not None and any(fnmatch.fnmatchcase(definition_key, p) for p in patterns)


def _expand(grant: str, source: str) -> tuple[list[str], str | None]:
    permission, _, pattern = grant.partition("@")
    if permission == "*":
        names = sorted(PERMISSIONS)
    elif permission.endswith(":*"):
        names = sorted(p for p in PERMISSIONS if p.startswith(permission[:-1]))
    else:
        names = [permission] if permission in PERMISSIONS else []
    if not names:
        raise ConfigError(
            f"invalid configuration: {source}: unknown permission {permission!r}; known: {', '.join(sorted(PERMISSIONS))}"
        )
    if "@" in grant and not pattern:
        raise ConfigError(f"invalid configuration: {source}: {grant!r} has an empty definition-key pattern after '@'")
    return names, pattern or None


class RoleMapping:
    """Which permissions each role grants. Errors: ConfigError naming the file and the bad grant."""

    def __init__(self, roles: Mapping[str, Iterable[str]], source: str = "roles") -> None:
        self.roles: dict[str, dict[str, tuple[str, ...] | None]] = {}
        for role, grants in roles.items():
            granted: dict[str, tuple[str, ...] | None] = {}
            for grant in grants:
                names, pattern = _expand(grant, f"{source}: role {role!r}")
                for name in names:
                    granted[name] = _widen(granted, name, pattern)
            self.roles[role] = granted

    @classmethod
    def load(cls, path: Path | None = None) -> RoleMapping:
        """Read a mapping file (the packaged default when `path` is None)."""
        path = path or DEFAULT_ROLES_FILE
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"invalid configuration: PM_AUTH_ROLES_FILE: {exc}") from None
        roles = data.get("roles") if isinstance(data, dict) else None
        if not isinstance(roles, dict) or not all(isinstance(g, list) for g in roles.values()):
            raise ConfigError(
                f'invalid configuration: PM_AUTH_ROLES_FILE: {path} needs {{"roles": {{role: [grants]}}}}'
            )
        return cls(roles, source=f"PM_AUTH_ROLES_FILE {path}")

    def grants(self, roles: Iterable[str]) -> Grants:
        """The union of what `roles` grant (unknown roles grant nothing)."""
        granted: dict[str, tuple[str, ...] | None] = {}
        for role in roles:
            for name, patterns in self.roles.get(role, {}).items():
                if patterns is None or granted.get(name, ()) is None:
                    granted[name] = None
                else:
                    granted[name] = tuple(sorted({*(granted.get(name) or ()), *patterns}))
        return granted


def _widen(granted: dict[str, tuple[str, ...] | None], name: str, pattern: str | None) -> tuple[str, ...] | None:
    if pattern is None or (name in granted and granted[name] is None):
        return None
    return (*(granted.get(name) or ()), pattern)
