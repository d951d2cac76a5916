"""Background loops sleep until woken or until their interval passes, and always end when cancelled: a loop that
outlived a cancellation kept the application's shutdown waiting (tests timed out tearing down the app)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.leader import wait_for_wake


async def test_a_loop_woken_as_it_is_cancelled_still_ends() -> None:
    wake = asyncio.Event()

    async def loop() -> None:
        while True:
            await wait_for_wake(wake, 60)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    wake.set()  # the wake and the cancellation arrive in the same turn of the event loop
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)


async def test_a_wake_ends_the_wait_and_is_cleared() -> None:
    wake = asyncio.Event()
    waiting = asyncio.create_task(wait_for_wake(wake, 60))
    await asyncio.sleep(0)
    wake.set()
    await asyncio.wait_for(waiting, 1)
    assert not wake.is_set()


async def test_without_a_wake_the_wait_ends_after_its_interval() -> None:
    wake = asyncio.Event()
    await asyncio.wait_for(wait_for_wake(wake, 0.01), 1)
    assert not wake.is_set()
