"""Waiting for engines that do their work asynchronously (job executors, pollers, secondary storage)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], timeout: float = 5.0) -> T:
    """Poll until `accept(probe())` holds or `timeout` seconds pass; return the last value either way."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if accept(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.02)
