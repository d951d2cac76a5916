"""Per-request context: who calls, which engine, and how a change is carried out and recorded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Query, Request

from gateway.engines.port import EngineAdapter
from gateway import journal
from gateway.db import Database
from gateway.registry import EngineHandle, EngineRegistry
from gateway.uow import AuditDraft, UnitOfWork

T = TypeVar("T")


@dataclass
class RequestContext:
    actor: str
    engine: EngineHandle
    db: Database
    registry: EngineRegistry

    @property
    def adapter(self) -> EngineAdapter:
        return self.engine.adapter

    async def mutate(
        self,
        *,
        operation: str,
        resource_type: str,
        resource_id: str | Callable[[Any], str | None] | None,
        request: dict[str, Any],
        action: Callable[[UnitOfWork], Awaitable[T]],
        status: int = 200,
    ) -> T:
        """Run one change in a unit of work with its audit row, its failure audited too (`journal.audited`).

        The action emits its events on the unit of work.
        """

        def draft(resource: str | None, outcome_status: int) -> AuditDraft:
            return AuditDraft(operation, resource_type, resource, self.engine.name, request, outcome_status)

        return await journal.audited(
            self.db,
            self.actor,
            action,
            success=lambda result: draft(resource_id(result) if callable(resource_id) else resource_id, status),
            failure=lambda exc: draft(resource_id if isinstance(resource_id, str) else None, exc.status),
        )


def actor_of(x_user_id: str | None) -> str:
    """The caller as recorded in audit and events: the X-User-Id header, or `anonymous`."""
    return (x_user_id or "").strip() or "anonymous"


# Dependencies are `async def` so FastAPI calls them inline instead of in its thread pool.
async def caller(x_user_id: Annotated[str | None, Header(description="The calling user (recorded in audit and events)")] = None) -> str:
    return actor_of(x_user_id)


async def request_context(
    request: Request,
    actor: Annotated[str, Depends(caller)],
    engine: Annotated[str | None, Query(description="Engine name; the configured default when omitted")] = None,
) -> RequestContext:
    registry: EngineRegistry = request.app.state.registry
    return RequestContext(actor=actor, engine=registry.get(engine), db=request.app.state.db, registry=registry)


Context = Annotated[RequestContext, Depends(request_context)]


def variable_summary(variables: dict[str, Any]) -> dict[str, str]:
    """What the audit log keeps of variables: names and types, never values (they may be personal data)."""
    return {name: getattr(typed, "type", "inferred") for name, typed in variables.items()}
