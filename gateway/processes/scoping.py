"""Lists limited to what the caller may see: their tenants (`tenant_page`) and, for tasks, the task-level
rule (`visible_task_page`). Adapters filter by one `tenant_id`; a caller of several tenants gets their pages
one after the other (tenants in name order), with exact totals and paging."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gateway.auth import Caller
from gateway.schemas import ListQuery, Page, SortOrder, Task, TaskQuery

Q = TypeVar("Q", bound=ListQuery)
T = TypeVar("T")

FULL_PAGE = 500  # the largest page an adapter is asked for


def _empty(query: ListQuery) -> Page[Any]:
    return Page(items=[], total=0, page=query.page, size=query.size)


def tenant_scopes(caller: Caller, requested: str | None) -> list[str | None] | None:
    """The tenant filters to query with: [None] for no filter, [] when the caller sees none of what was asked."""
    if caller.tenants is None:
        return [requested]
    if requested is not None:
        return [requested] if requested in caller.tenants else []
    return [*sorted(caller.tenants)]


async def tenant_page(caller: Caller, query: Q, fetch: Callable[[Q], Awaitable[Page[T]]]) -> Page[T]:
    """One page of `fetch` limited to the caller's tenants (see the module docstring)."""
    scopes = tenant_scopes(caller, getattr(query, "tenant_id", None))
    if not scopes:
        return _empty(query)
    if len(scopes) == 1:
        return await fetch(query.model_copy(update={"tenant_id": scopes[0]}))
    totals = [(await fetch(query.model_copy(update={"tenant_id": t, "page": 1, "size": 1}))).total for t in scopes]
    start, end = query.offset, query.offset + query.size
    items: list[T] = []
    base = 0
    for tenant, total in zip(scopes, totals, strict=True):
        low, high = max(start - base, 0), min(end - base, total)
        if low < high:
            items += await window(fetch, query.model_copy(update={"tenant_id": tenant}), low, high)
        base += total
    return Page(items=items, total=sum(totals), page=query.page, size=query.size)


async def window(fetch: Callable[[Q], Awaitable[Page[T]]], query: Q, low: int, high: int) -> list[T]:
    """Items low..high-1 of one tenant's list, in pages of the asked size (two at most: high - low <= size)."""
    size = query.size
    first, last = low // size, (high - 1) // size
    rows: list[T] = []
    for page in range(first, last + 1):
        rows += (await fetch(query.model_copy(update={"page": page + 1}))).items
    return rows[low - first * size : high - first * size]


async def visible_task_page(
    caller: Caller, query: TaskQuery, fetch: Callable[[TaskQuery], Awaitable[Page[Task]]]
) -> Page[Task]:
    """Tasks the caller is assignee or candidate user of, or a candidate group of theirs is on (no `task:admin`):
    one query per criterion and tenant, merged, sorted as asked (default: newest first), then paged."""
    criteria: list[dict[str, Any]] = [{"assignee": caller.actor}, {"candidate_user": caller.actor}]
    criteria += [{"candidate_group": group} for group in sorted(caller.groups)]
    found: dict[str, Task] = {}
    for tenant in tenant_scopes(caller, query.tenant_id) or []:
        for criterion in criteria:
            if any(getattr(query, name) not in (None, value) for name, value in criterion.items()):
                continue  # the caller's own filter excludes this criterion's tasks
            update = {**criterion, "tenant_id": tenant, "size": FULL_PAGE}
            page_number = 1
            while True:
                page = await fetch(query.model_copy(update={**update, "page": page_number}))
                for task in page.items:
                    if caller.sees_task(task.assignee, task.candidate_users, task.candidate_groups):
                        found[task.id] = task
                if page_number * FULL_PAGE >= page.total or not page.items:
                    break
                page_number += 1
    field = query.sort or "created"
    present = [t for t in found.values() if getattr(t, field) is not None]
    missing = [t for t in found.values() if getattr(t, field) is None]
    present.sort(key=lambda t: getattr(t, field), reverse=query.order is SortOrder.DESC)
    ordered = present + missing
    return Page(
        items=ordered[query.offset : query.offset + query.size], total=len(ordered), page=query.page, size=query.size
    )
