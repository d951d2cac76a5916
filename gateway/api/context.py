"""Per-request dependencies: who calls (`Caller`), which engine, and the process service for both."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.auth import Authenticator, Caller
from gateway.errors import BadRequest
from gateway.processes import ProcessService
from gateway.processes.merged import ALL_ENGINES, Complete, MergedPage, Q, T, merged_page
from gateway.registry import EngineRegistry
from gateway.schemas import Page

# Declares the bearer scheme in the OpenAPI document; the Authenticator reads the header itself.
bearer = HTTPBearer(auto_error=False, description="A JWT from the identity provider (PM_AUTH_MODE=jwt)")


AUTH_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "No valid bearer token (PM_AUTH_MODE=jwt); `WWW-Authenticate: Bearer`, problem+json"},
    403: {"description": "The caller lacks a permission; the problem's detail names it (README, Authentication)"},
}
"""The answers of routes behind authentication, for the OpenAPI document."""


# Dependencies are `async def` so FastAPI calls them inline instead of in its thread pool.
async def current_caller(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    x_user_id: Annotated[
        str | None, Header(description="The calling user with PM_AUTH_MODE=none; ignored when auth is on")
    ] = None,
) -> Caller:
    """The caller of this request: 401 (auth on) without a valid bearer token."""
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.caller(request.headers.get("authorization"), x_user_id)


CurrentCaller = Annotated[Caller, Depends(current_caller)]


async def operational_access(request: Request) -> None:
    """/ready, /metrics, /docs, /openapi.json: open when listed in PM_AUTH_OPEN_PATHS, else a valid token."""
    if request.url.path not in request.app.state.settings.auth_open_paths:
        await request.app.state.authenticator.caller(request.headers.get("authorization"), None)


async def process_service(
    request: Request,
    caller: CurrentCaller,
    engine: Annotated[str | None, Query(description="Engine name; the configured default when omitted")] = None,
) -> ProcessService:
    """The process use cases on the requested engine (404 listing the known ones when unknown), for the caller."""
    registry: EngineRegistry = request.app.state.registry
    return ProcessService(request.app.state.changes, registry.get(engine), caller)


Processes = Annotated[ProcessService, Depends(process_service)]


@dataclass(frozen=True)
class EngineSelection:
    """The engines a list asks: one (`engine=name` or the default), or every configured one (`engine=*`)."""

    services: list[ProcessService]
    merged: bool

    async def page(
        self,
        query: Q,
        cursor: str | None,
        fetch: Callable[[ProcessService, Q], Awaitable[Page[T]]],
        complete: Complete[T] | None = None,
    ) -> Page[T] | MergedPage[T]:
        """`fetch` on the one engine, or merged over every engine (`merged_page`); the items shown passed through
        `complete` (what `fetch` leaves out as too costly for items not shown). BadRequest for a `cursor` on a
        one-engine list, which pages with `page` (a cursor there would be ignored silently)."""
        if self.merged:
            return await merged_page(self.services, query, cursor, fetch, complete)
        if cursor is not None:
            raise BadRequest("cursor pages a list over every engine (engine=*); a one-engine list pages with page")
        page = await fetch(self.services[0], query)
        if complete is not None:
            page.items = await complete(self.services[0], page.items)
        return page


async def engine_selection(
    request: Request,
    caller: CurrentCaller,
    engine: Annotated[
        str | None,
        Query(
            description="Engine name; the configured default when omitted; `*` for every configured engine, merged "
            "into one list paged by `cursor`"
        ),
    ] = None,
) -> EngineSelection:
    """One process service per asked engine (404 listing the known ones for an unknown name)."""
    registry: EngineRegistry = request.app.state.registry
    changes = request.app.state.changes
    if engine == ALL_ENGINES:
        return EngineSelection([ProcessService(changes, registry.get(name), caller) for name in registry.engines], True)
    return EngineSelection([ProcessService(changes, registry.get(engine), caller)], False)


Engines = Annotated[EngineSelection, Depends(engine_selection)]
Cursor = Annotated[
    str | None, Query(description="With `engine=*`: the `next_cursor` of the previous page (leave out for the first)")
]
