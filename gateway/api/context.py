"""Per-request dependencies: who calls, which engine, and the process service for both."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request

from gateway.processes import ProcessService
from gateway.registry import EngineRegistry


def actor_of(x_user_id: str | None) -> str:
    """The caller as recorded in audit and events: the X-User-Id header, or `anonymous`."""
    return (x_user_id or "").strip() or "anonymous"


# Dependencies are `async def` so FastAPI calls them inline instead of in its thread pool.
async def caller(
    x_user_id: Annotated[str | None, Header(description="The calling user (recorded in audit and events)")] = None,
) -> str:
    return actor_of(x_user_id)


async def process_service(
    request: Request,
    actor: Annotated[str, Depends(caller)],
    engine: Annotated[str | None, Query(description="Engine name; the configured default when omitted")] = None,
) -> ProcessService:
    """The process use cases on the requested engine (404 listing the known ones when unknown), for the caller."""
    registry: EngineRegistry = request.app.state.registry
    return ProcessService(request.app.state.changes, registry.get(engine), actor)


Processes = Annotated[ProcessService, Depends(process_service)]
