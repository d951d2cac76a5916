"""Reading Flowable's paged lists (`{data, total, start, size}`) beyond one page.

A `Fetch` reads one engine page: `await fetch(start, size)` returns the engine's DataResponse body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Item = dict[str, Any]
Fetch = Callable[[int, int], Awaitable[dict[str, Any]]]
BATCH = 500


async def collect(
    fetch: Fetch, keep: Callable[[Item], bool] = lambda item: True, *, stop: Callable[[Item], bool] | None = None
) -> list[Item]:
    """Every item the engine lists that `keep` accepts, reading until the end or the first `stop` item.

    For filters the engine cannot apply itself; the cost grows with what the engine lists, so callers
    narrow the engine query as far as it allows and give `stop` when the order lets them end early.
    """
    kept: list[Item] = []
    start = 0
    while True:
        body = await fetch(start, BATCH)
        data = body["data"]
        for item in data:
            if stop is not None and stop(item):
                return kept
            if keep(item):
                kept.append(item)
        start += len(data)
        if not data or start >= body["total"]:
            return kept


async def page_across(sources: list[Fetch], offset: int, size: int) -> tuple[list[Item], int]:
    """One page over several engine lists read one after the other, with the exact total of all of them."""
    items: list[Item] = []
    total = 0
    for fetch in sources:
        body = await fetch(max(0, offset - total), size - len(items))
        items.extend(body["data"])
        total += body["total"]
    return items, total
