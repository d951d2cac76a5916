"""The SSE stream (on a real HTTP server) and the Redis Streams relay (on a real Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis

from gateway.db import Database
from gateway.engines.testing.polling import eventually
from tests.events.conftest import ServedGateway, serve, unique_stream, write_events
from tests.events.receiver import Receiver


class SseReader:
    """Reads an SSE response message by message (blank-line separated), keeping comments and fields."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()
        self.comments: list[str] = []
        self.retry: int | None = None
        self.opening_id: str | None = None  # the `id:` of a message without data: the cursor the stream starts after

    async def next_event(self) -> dict[str, Any]:
        """The next event (id, event, data); TimeoutError when none comes within 5 seconds."""
        async with asyncio.timeout(5.0):
            return await self._next_event()

    async def _next_event(self) -> dict[str, Any]:
        fields: dict[str, str] = {}
        async for line in self.lines:
            if line == "":
                if "data" in fields:
                    return {"id": fields.get("id"), "event": fields.get("event"), "data": json.loads(fields["data"])}
                if "id" in fields:
                    self.opening_id = fields["id"]
                fields = {}
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "retry":
                self.retry = int(value)
            fields[name] = value
        raise EOFError("the stream ended")


@contextlib.asynccontextmanager
async def stream(
    gateway: ServedGateway, headers: dict[str, str] | None = None, **params: Any
) -> AsyncIterator[SseReader]:
    async with gateway.client.stream(
        "GET", "/api/processes/events/stream", params=params, headers=headers or {}, timeout=None
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseReader(response)


async def test_sse_streams_new_events_with_cursor_ids_filters_retry_and_heartbeats(
    served: ServedGateway, database: Database
) -> None:
    await write_events(database, [("task.created", "old", {"task_id": "before-connect"})])
    async with stream(served, types="task.created", definition_key="order") as reader:
        await asyncio.sleep(0.2)
        await write_events(
            database,
            [
                ("instance.started", "i-1", {"definition_key": "order"}),
                ("task.created", "i-1", {"task_id": "t-1", "definition_key": "order"}),
                ("task.created", "i-2", {"task_id": "t-2", "definition_key": "other"}),
            ],
        )
        first = await reader.next_event()
        assert first["event"] == "process_manager.task.created" and first["data"]["data"]["task_id"] == "t-1"
        assert first["id"] == first["data"]["cursor"]
        assert reader.retry == 3000
        await asyncio.sleep(1.2)  # the heartbeat is 0.5 s in these tests
        await write_events(database, [("task.created", "i-3", {"task_id": "t-3", "definition_key": "order"})])
        second = await reader.next_event()
        assert second["data"]["data"]["task_id"] == "t-3"  # t-2 (other definition) and instance.started skipped
        assert "ping" in " ".join(reader.comments)


async def test_a_reconnection_before_the_first_event_resumes_from_the_opening_id(
    served: ServedGateway, database: Database
) -> None:
    """A client that drops before any event arrived still has an id to resume from: the opening message's."""
    await write_events(database, [("task.created", "old", {"task_id": "before-connect"})])
    async with stream(served) as reader:
        await write_events(database, [("task.created", "i-1", {"task_id": "t-1"})])
        first = await reader.next_event()  # reads the opening message on the way
        opening = reader.opening_id
    assert opening is not None and int(opening) == int(first["id"]) - 1
    await write_events(database, [("task.created", "i-1", {"task_id": "t-2"})])  # while disconnected
    async with stream(served, headers={"Last-Event-ID": opening}) as reader:
        resumed = [await reader.next_event() for _ in range(2)]
    assert [event["data"]["data"]["task_id"] for event in resumed] == ["t-1", "t-2"]


async def test_sse_resumes_after_a_gateway_restart_from_last_event_id_without_gaps(
    event_env: Any, gateway_settings: Any, database: Database
) -> None:
    async with serve(gateway_settings()) as gateway, stream(gateway, after="0", instance_id="i-1") as reader:
        await write_events(database, [("task.created", "i-1", {"task_id": f"t-{n}"}) for n in range(3)])
        seen = [await reader.next_event() for _ in range(3)]
    last_id = seen[-1]["id"]
    # While no gateway runs, more events are committed (by another replica, say).
    await write_events(database, [("task.created", "i-1", {"task_id": f"t-{n}"}) for n in range(3, 6)])
    async with serve(gateway_settings()) as gateway:
        async with stream(gateway, headers={"Last-Event-ID": last_id}) as reader:
            rest = [await reader.next_event() for _ in range(3)]
        bad = await gateway.client.get("/api/processes/events/stream", headers={"Last-Event-ID": "abc"})
        assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["detail"]
    assert [e["data"]["data"]["task_id"] for e in seen + rest] == [f"t-{n}" for n in range(6)]
    cursors = [int(e["id"]) for e in seen + rest]
    assert cursors == sorted(cursors) and len(set(cursors)) == 6


async def test_the_relay_appends_every_event_to_the_redis_stream_for_consumer_groups(
    event_env: Any, gateway_settings: Any, database: Database, redis_url: str
) -> None:
    stream_name = unique_stream()
    event_env(REDIS_STREAM=stream_name, REDIS_MAXLEN="1000")
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        async with serve(gateway_settings(redis_url=redis_url)):
            await write_events(database, [("task.created", f"i-{n % 3}", {"task_id": f"t-{n}"}) for n in range(15)])
            tenant_events = [("task.created", f"i-{n % 3}", {"task_id": f"t-{n}"}) for n in range(15, 20)]
            await write_events(database, tenant_events, tenant_id="acme")
            length = await eventually(lambda: redis.xlen(stream_name), lambda n: n >= 20)
            assert length == 20
        await redis.xgroup_create(stream_name, "billing", id="0")
        entries = await redis.xreadgroup("billing", "worker-1", {stream_name: ">"}, count=100)
        [(_, messages)] = entries
        assert len(messages) == 20
        fields = [message for _, message in messages]
        assert [json.loads(f["event"])["data"]["task_id"] for f in fields] == [f"t-{n}" for n in range(20)]
        assert all(
            f["id"] == json.loads(f["event"])["id"] and f["type"] == "process_manager.task.created" for f in fields
        )
        assert [f["tenant_id"] for f in fields] == [""] * 15 + ["acme"] * 5  # for consumers serving one tenant
        assert all(f["tenant_id"] == (json.loads(f["event"])["tenant_id"] or "") for f in fields)
        assert [int(f["cursor"]) for f in fields] == sorted(int(f["cursor"]) for f in fields)
        # worker-1 dies before acknowledging; worker-2 claims its entries, handles them and acknowledges.
        claimed = (await redis.xautoclaim(stream_name, "billing", "worker-2", min_idle_time=0, count=100))[1]
        assert [message_id for message_id, _ in claimed] == [message_id for message_id, _ in messages]
        await redis.xack(stream_name, "billing", *[message_id for message_id, _ in claimed])
        assert (await redis.xpending(stream_name, "billing"))["pending"] == 0
    finally:
        await redis.delete(stream_name)
        await redis.aclose()


async def test_on_postgresql_an_idle_gateway_does_not_poll_the_outbox(
    event_env: Any,
    gateway_settings: Any,
    database: Database,
    redis_url: str,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With nothing written, the watch, the Redis relay and the webhook fan-out wait to be woken: for seconds on end
    no statement reads the outbox or the relays' positions, and the dispatcher looks for due deliveries once a
    second (at the poll interval, 0.1 s, they sent about 38 statements a second between them)."""
    if database.is_sqlite:
        pytest.skip("SQLite has no notifications: its one process polls")
    monkeypatch.setenv("PM_ANALYTICS_EVENT_INTERVAL", "3600")  # the analytics projection reads the outbox too
    looks: list[str] = []
    dispatcher_looks: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if any(table in statement for table in ("outbox", "event_relay_positions")):
            looks.append(" ".join(statement.split())[:80])
        elif "event_deliveries" in statement:
            dispatcher_looks.append(statement)

    async with serve(gateway_settings(redis_url=redis_url)) as gateway:
        await gateway.subscribe(receiver, filter={"instance_id": "idle"})
        await asyncio.sleep(0.5)  # the loops' first rounds (at start) are over
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", note)
        try:
            await asyncio.sleep(2)
        finally:
            sa.event.remove(sa.engine.Engine, "before_cursor_execute", note)
        assert looks == []
        assert 1 <= len(dispatcher_looks) <= 3
        await write_events(database, [("task.created", "idle", {"task_id": "t-1"})])
        received = await receiver.wait_for(lambda received: len(received) == 1)
    assert received[0].event["data"]["task_id"] == "t-1"


async def test_on_postgresql_a_commit_notifies_the_relays_which_move_its_events_without_polling(
    event_env: Any, gateway_settings: Any, database: Database, redis_url: str, receiver: Receiver
) -> None:
    """The outbox's trigger notifies `pm_outbox` at commit; the gateway listens and relays at once. With an hour
    between polls, only the notification can bring these events to the Redis stream and the webhook receiver."""
    if database.is_sqlite:
        pytest.skip("SQLite has no notifications: its one process polls")
    stream_name = unique_stream()
    event_env(REDIS_STREAM=stream_name, POLL_INTERVAL="3600")
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        async with serve(gateway_settings(redis_url=redis_url)) as gateway:
            await gateway.subscribe(receiver, filter={"instance_id": "notified"})
            await asyncio.sleep(0.5)  # the relays' first rounds (at start) are over: they wait for a wake-up now
            await write_events(database, [("task.created", "notified", {"task_id": f"t-{n}"}) for n in range(3)])

            async def streamed() -> list[str]:
                entries = await redis.xrange(stream_name)
                return [json.loads(f["event"])["data"]["task_id"] for _, f in entries if f["instance_id"] == "notified"]

            assert await eventually(streamed, lambda ids: len(ids) == 3, timeout=10) == ["t-0", "t-1", "t-2"]
            received = await receiver.wait_for(lambda received: len(received) == 3)
        assert [r.event["data"]["task_id"] for r in received] == ["t-0", "t-1", "t-2"]
    finally:
        await redis.delete(stream_name)
        await redis.aclose()


async def test_only_the_leader_relays_and_another_replica_takes_over(
    event_env: Any, gateway_settings: Any, database: Database, redis_url: str
) -> None:
    if database.is_sqlite:
        pytest.skip("a SQLite deployment is one process: there is no second replica to elect")
    stream_name = unique_stream()
    event_env(REDIS_STREAM=stream_name)
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        first_cm = serve(gateway_settings(redis_url=redis_url))
        first = await first_cm.__aenter__()
        try:
            async with serve(gateway_settings(redis_url=redis_url)) as second:
                assert first.events.leadership.held and not second.events.leadership.held
                await write_events(database, [("task.created", "i-1", {"task_id": "t-1"})])
                await eventually(lambda: redis.xlen(stream_name), lambda n: n >= 1)
                await first_cm.__aexit__(None, None, None)
                first_cm = None
                # The leader is gone; the other replica takes the lock at its next refresh (every second).
                await eventually(lambda: asyncio.sleep(0, second.events.leadership.held), bool, timeout=5)
                assert second.events.leadership.held
                await write_events(database, [("task.created", "i-1", {"task_id": "t-2"})])
                await eventually(lambda: redis.xlen(stream_name), lambda n: n >= 2)
        finally:
            if first_cm is not None:
                await first_cm.__aexit__(None, None, None)
        # At least once: a leader stopped between XADD and saving its position leaves a duplicate (same `id`).
        first_seen: dict[str, str] = {}
        for _, fields in await redis.xrange(stream_name):
            first_seen.setdefault(fields["id"], json.loads(fields["event"])["data"]["task_id"])
        assert list(first_seen.values()) == ["t-1", "t-2"]
    finally:
        await redis.delete(stream_name)
        await redis.aclose()


async def test_a_last_event_id_that_is_no_cursor_is_a_400_before_the_stream_starts(
    event_env: Any, gateway_settings: Any
) -> None:
    # Beyond the 64-bit cursors the database holds, a non-ASCII digit, more digits than int() parses: each once
    # opened the stream (or failed with a 500) instead of saying what is wrong.
    async with serve(gateway_settings()) as gateway:
        for value in ["9" * 20, "²", "9" * 5000]:
            async with gateway.client.stream(
                "GET", "/api/processes/events/stream", headers={"Last-Event-ID": value.encode("latin-1")}
            ) as response:
                await response.aread()
            assert response.status_code == 400, (value[:30], response.status_code)
            assert response.headers["content-type"] == "application/problem+json"
            assert "Last-Event-ID must be an event cursor" in response.json()["detail"]
            assert len(response.json()["detail"]) < 200
