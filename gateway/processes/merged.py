"""One list over every configured engine (`?engine=*`): each engine's own page in the requested order, merged.

Each engine is asked, through its `ProcessService` (so permissions, tenants and 501s are the same as for one
engine), for the window of its list that starts where the previous page left it; the windows are merged by the
sort field, then engine name, then id, and the first `size` items are the page. The cursor (`next_cursor`) is
opaque to callers: base64 JSON of how far each engine's list was read, and a digest of the query, so a cursor
used with other filters or another order is refused (400). What is costly to read per item (a task's candidates
on Camunda 7 and Flowable) is left out of the windows and read by `complete` for the items on the page only. An engine that is down, slow or answers wrongly
(503, 504, 502) is left out of the page and named in `unavailable_engines` with `partial: true`; the list never
fails as a whole because of one engine. A 501 (an operator or sort an engine lacks) fails the list, naming the
engine: a page that silently lacks what one engine cannot filter would be wrong, not partial.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import heapq
import itertools
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import Field

from gateway.errors import BadRequest, EngineError, EngineTimeout, EngineUnavailable
from gateway.processes.scoping import window
from gateway.processes.service import ProcessService
from gateway.schemas import ListQuery, Model, Page, SortOrder

Q = TypeVar("Q", bound=ListQuery)
T = TypeVar("T")

ALL_ENGINES = "*"
DOWN = (EngineUnavailable, EngineTimeout, EngineError)
# What a merged list sorts by when the query names no field (each list's own default).
DEFAULT_SORT = {"TaskQuery": "created", "InstanceQuery": "start_time"}


class UnavailableEngine(Model):
    engine: str = Field(description="The engine's configured name")
    status: int = Field(description="The problem status the engine's list gave (502, 503 or 504)")
    detail: str = Field(description="Why it was left out")


class MergedPage(Model, Generic[T]):
    """A page of a list over every engine (`engine=*`); page on with `cursor=next_cursor`."""

    items: list[T] = Field(description="In the requested order; each item names its `engine`")
    total: int = Field(description="Items matching on the engines that answered")
    size: int
    next_cursor: str | None = Field(None, description="Opaque; pass as `cursor` for the next page; null on the last")
    partial: bool = Field(False, description="True when an engine could not be asked: its items are missing")
    unavailable_engines: list[UnavailableEngine] = Field(default_factory=list)


def _digest(query: ListQuery) -> str:
    fields = query.model_dump(mode="json", exclude={"page", "size"})
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def _encode(offsets: dict[str, int], query: ListQuery) -> str:
    raw = json.dumps({"o": offsets, "q": _digest(query)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str | None, query: ListQuery, engines: list[str]) -> dict[str, int]:
    """Each engine's read position from `cursor` (all 0 without one). Errors: BadRequest for a cursor that is not
    ours or belongs to another query."""
    if cursor is None:
        return dict.fromkeys(engines, 0)
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offsets = {name: int(data["o"].get(name, 0)) for name in engines}
        digest = data["q"]
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise BadRequest("The cursor is not a next_cursor of this list") from None
    if digest != _digest(query) or any(offset < 0 for offset in offsets.values()):
        raise BadRequest("The cursor belongs to a list with other filters or another order; start without a cursor")
    return offsets


def _sort_key(item: Any, field: str, engine: str) -> tuple[Any, ...]:
    """Missing values last ascending, first descending (as the engines' databases put NULLs); then engine, id."""
    value = getattr(item, field)
    if isinstance(value, datetime):
        value = value.timestamp()
    return (value is None, 0 if value is None else value, engine, str(getattr(item, "id", "")))


Complete = Callable[[ProcessService, list[T]], Awaitable[list[T]]]
"""Adds to one engine's items what its list left out (same items, same order)."""


async def merged_page(
    services: list[ProcessService],
    query: Q,
    cursor: str | None,
    fetch: Callable[[ProcessService, Q], Awaitable[Page[T]]],
    complete: Complete[T] | None = None,
) -> MergedPage[T]:
    """The next page of `fetch` over every engine of `services`, each engine's items on it passed through
    `complete` (see the module docstring).

    Errors: BadRequest (a foreign cursor, or `page` other than 1: merged lists page by cursor), NotSupported (an
    engine lacks the query's sort or operator), Forbidden (as `fetch` raises it).
    """
    if query.page != 1:
        raise BadRequest("A list over every engine (engine=*) pages with cursor=next_cursor, not page")
    engines = [service.engine.name for service in services]
    offsets = _decode(cursor, query, engines)
    field = query.sort or DEFAULT_SORT[type(query).__name__]

    async def one(service: ProcessService) -> tuple[list[T], int]:
        offset = offsets[service.engine.name]
        first = await fetch(service, query.model_copy(update={"page": offset // query.size + 1}))
        if offset >= first.total:
            return [], first.total
        if offset % query.size == 0:
            return first.items, first.total
        # the window starts inside a page: read on into the next one
        items = await window(lambda q: fetch(service, q), query, offset, min(offset + query.size, first.total))
        return items, first.total

    answers = await asyncio.gather(*(one(service) for service in services), return_exceptions=True)
    windows: list[list[tuple[tuple[Any, ...], str, T]]] = []
    totals: dict[str, int] = {}
    unavailable: list[UnavailableEngine] = []
    for name, answer in zip(engines, answers, strict=True):
        if isinstance(answer, DOWN):
            unavailable.append(UnavailableEngine(engine=name, status=answer.status, detail=answer.detail))
            continue
        if isinstance(answer, BaseException):
            raise answer
        items, totals[name] = answer
        windows.append([(_sort_key(item, field, name), name, item) for item in items])
    # A k-way merge takes each engine's items in the engine's own order, so what a page takes of an engine is
    # always the front of its window, and the cursor's positions stay exact.
    merged = heapq.merge(*windows, key=lambda entry: entry[0], reverse=query.order is SortOrder.DESC)
    page = [(name, item) for _, name, item in itertools.islice(merged, query.size)]
    if complete is not None:
        page, failed = await _completed(page, {service.engine.name: service for service in services}, complete)
        for outage in failed:  # left out like an engine that is down: its read position stays
            unavailable.append(outage)
            del totals[outage.engine]
    read = dict(offsets)
    for name, _ in page:
        read[name] += 1
    more = any(read[name] < total for name, total in totals.items())
    return MergedPage(
        items=[item for _, item in page],
        total=sum(totals.values()),
        size=query.size,
        next_cursor=_encode(read, query) if more else None,
        partial=bool(unavailable),
        unavailable_engines=unavailable,
    )


async def _completed(
    page: list[tuple[str, T]], services: dict[str, ProcessService], complete: Complete[T]
) -> tuple[list[tuple[str, T]], list[UnavailableEngine]]:
    """`page` with each engine's items passed through `complete`, all engines at once, and the engines that failed
    there (down, slow or answering wrongly), whose items are left out."""
    names = sorted({name for name, _ in page})
    answers = await asyncio.gather(
        *(complete(services[name], [item for engine, item in page if engine == name]) for name in names),
        return_exceptions=True,
    )
    completed: dict[str, Iterator[T]] = {}
    failed: list[UnavailableEngine] = []
    for name, answer in zip(names, answers, strict=True):
        if isinstance(answer, DOWN):
            failed.append(UnavailableEngine(engine=name, status=answer.status, detail=answer.detail))
        elif isinstance(answer, BaseException):
            raise answer
        else:
            completed[name] = iter(answer)
    return [(name, next(completed[name])) for name, _ in page if name in completed], failed
