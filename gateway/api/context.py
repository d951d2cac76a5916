"""Per-request context: who calls, which engine, and how a change is carried out and recorded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Query, Request

from adapters.base import EngineAdapter
from gateway import journal
from gateway.db import Database
from gateway.errors import ConcurrentModification, GatewayError
from gateway.registry import EngineHandle, EngineRegistry
from gateway.uow import AuditDraft, UnitOfWork, transaction

T = TypeVar("T")
MAX_CONCURRENT_RETRIES = 3


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
        """Run one change in a unit of work with its audit row; audit failures too.

        The action emits its events on the unit of work. An embedded-engine write that lost an optimistic
        lock race (ConcurrentModification) is retried as a whole; nothing else is retried here.
        """
        for attempt in range(1, MAX_CONCURRENT_RETRIES + 1):
            try:
                async with transaction(self.db, actor=self.actor) as uow:
                    result = await action(uow)
                    uow.audit(
                        AuditDraft(
                            operation=operation,
                            resource_type=resource_type,
                            resource_id=resource_id(result) if callable(resource_id) else resource_id,
                            engine=self.engine.name,
                            request=request,
                            status=status,
                        )
                    )
                return result
            except ConcurrentModification as exc:
                if attempt < MAX_CONCURRENT_RETRIES:
                    continue
                await self._audit_failure(operation, resource_type, resource_id, request, exc)
                raise
            except GatewayError as exc:
                await self._audit_failure(operation, resource_type, resource_id, request, exc)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _audit_failure(
        self, operation: str, resource_type: str, resource_id: Any, request: dict[str, Any], exc: GatewayError
    ) -> None:
        await journal.record_failure(
            self.db,
            self.actor,
            AuditDraft(
                operation=operation,
                resource_type=resource_type,
                resource_id=resource_id if isinstance(resource_id, str) else None,
                engine=self.engine.name,
                request=request,
                status=exc.status,
                outcome="failure",
                detail=exc.detail,
            ),
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
