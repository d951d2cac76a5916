"""Change feeds: what an HTTP engine did on its own becomes the same events the embedded engine emits.

Each round asks the adapter for the changes after the stored high-water mark (`engine_change_marks`) up to a
horizon: the settle time ago, and never past the start of a change the gateway is still making on the engine
(an open `change_intents` row: its events are written after the engine answered). So the event the gateway
writes for its own change is in the outbox before the feed reads that change, and before anything the change
caused. Then, in one transaction, the feed emits every change the outbox does not already show and saves the
new mark: exactly one event per change.

"Already shows" compares states, per instance, against the latest outbox event of the same kind:
- `task.created`, `task.completed` (per task) and `instance.completed` / `instance.terminated` happen once;
- `task.assigned` is emitted when the task's latest assignment event names another assignee;
- `instance.suspended` / `instance.activated` when the instance's latest suspension event says otherwise.

Engines whose history keeps no assignments (Flowable, Camunda 8: `EngineAdapter.read_assignees`) get a second
round: the feed keeps the assignee of every open task it saw last (its `assignees` mark) and emits `task.assigned`
for each open task whose assignee is now another, compared like above against the outbox. What this reads is the
engine's state now, not history up to a horizon, so a task the gateway is changing itself (an open task
`change_intents` row older than the read) waits for the next round, when its own event is in the outbox; and a
task whose `task.created` is not in the outbox yet waits for it, so its events stay in order.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from datetime import timedelta
from typing import Any

from events import repository
from events.settings import EventSettings
from gateway.db import Database, utcnow
from gateway.engines.port import OpenTaskAssignee
from gateway.registry import EngineHandle
from gateway.uow import EVENT_PREFIX, transaction
from gateway.variables import parse_datetime

log = logging.getLogger(__name__)

SYSTEM = "system"
FEED = "changes"
ASSIGNEES = "assignees"
# Within one engine timestamp: the task that was completed, then what that caused.
ORDER_WITHIN_INSTANT = {
    "task.completed": 0,
    "task.created": 1,
    "task.assigned": 2,
    "instance.suspended": 3,
    "instance.activated": 3,
    "instance.completed": 4,
    "instance.terminated": 4,
}


def states_of(event_type: str, instance_id: str | None, data: dict[str, Any]) -> list[tuple[Hashable, Hashable]]:
    """The (what, state) pairs an event reports, the one that identifies its change first: two events whose
    first pairs are equal report the same change. A created task also reports its first assignee."""
    short = event_type.removeprefix(EVENT_PREFIX)
    if short == "task.assigned":
        return [(("assignment", data.get("task_id")), data.get("assignee"))]
    if short in ("instance.suspended", "instance.activated"):
        return [(("suspension", instance_id), short)]
    if short == "task.created":
        return [((short, data.get("task_id")), True), (("assignment", data.get("task_id")), data.get("assignee"))]
    if short.startswith("task."):
        return [((short, data.get("task_id")), True)]
    if short in ("instance.completed", "instance.terminated"):
        return [(("end", instance_id), True)]
    return [((short, instance_id), True)]


class ChangeFeed:
    """The change feed of one engine; the leader runs `run_once` every `PM_EVENTS_CHANGE_FEED_INTERVAL`."""

    def __init__(self, db: Database, handle: EngineHandle, settings: EventSettings) -> None:
        self.db = db
        self.handle = handle
        self.settings = settings

    @property
    def engine(self) -> str:
        return self.handle.name

    async def run_once(self) -> int:
        """Read and emit one batch of changes, then the assignments seen on open tasks; returns how many events it
        emitted."""
        return await self._read_history() + await self._compare_assignees()

    async def _read_history(self) -> int:
        settled_before = utcnow() - timedelta(seconds=self.settings.change_feed_settle)
        async with transaction(self.db, actor=SYSTEM) as uow:
            mark = await repository.lock_change_mark(uow.session, self.engine, FEED)
            in_flight = await repository.oldest_open_change(uow.session, self.engine)
        if in_flight is not None:
            settled_before = min(settled_before, in_flight)
        batch = await self.handle.adapter.read_changes(mark, settled_before)
        changes = sorted(batch.changes, key=lambda c: (c.occurred_at, ORDER_WITHIN_INSTANT.get(c.type, 9)))
        emitted = 0
        async with transaction(self.db, actor=SYSTEM) as uow:
            if await repository.lock_change_mark(uow.session, self.engine, FEED) != mark:
                return 0  # another replica moved the mark meanwhile: its round counts, this one is dropped
            latest = await self._latest_states(uow.session, {change.instance_id for change in changes})
            for change in changes:
                reported = states_of(change.type, change.instance_id, change.data)
                what, state = reported[0]
                if latest.get(what, _NOTHING) == state:
                    continue
                latest.update(reported)
                uow.emit(
                    change.type,
                    engine=self.engine,
                    instance_id=change.instance_id,
                    tenant_id=change.tenant_id,
                    data=change.data,
                )
                emitted += 1
            await repository.save_change_mark(uow.session, self.engine, FEED, batch.mark)
        return emitted

    async def _compare_assignees(self) -> int:
        """Emit `task.assigned` for each open task whose assignee changed since the last round (see the module)."""
        async with transaction(self.db, actor=SYSTEM) as uow:
            mark = await repository.lock_change_mark(uow.session, self.engine, ASSIGNEES)
        observed = await self.handle.adapter.read_assignees()
        if observed is None:
            return 0
        read_at = utcnow()
        async with transaction(self.db, actor=SYSTEM) as uow:
            if await repository.lock_change_mark(uow.session, self.engine, ASSIGNEES) != mark:
                return 0  # another replica compared meanwhile
            if "tasks" not in mark:  # the first round: what the tasks hold now is where the feed starts
                since = utcnow() - timedelta(seconds=self.settings.change_feed_settle)
                seen = {task.task_id: task.assignee for task in observed}
                await repository.save_change_mark(
                    uow.session, self.engine, ASSIGNEES, {"since": since.isoformat(), "tasks": seen}
                )
                return 0
            busy = await repository.tasks_being_changed(uow.session, self.engine, read_at)
            if None in busy:
                return 0  # a change that names no task (claim the next one) may hold any of them
            seen = mark["tasks"]
            waiting = {task_id for task_id in busy if task_id is not None}
            changed = [
                task
                for task in observed
                if task.task_id not in waiting and seen.get(task.task_id, _NOTHING) != task.assignee
            ]
            latest = await self._latest_states(uow.session, {task.instance_id for task in changed})
            since = parse_datetime(mark["since"])
            emitted = 0
            for task in changed:
                if ("task.created", task.task_id) not in latest and task.created_at >= since:
                    waiting.add(task.task_id)  # its task.created comes first, from history
                    continue
                if latest.get(("assignment", task.task_id), _NOTHING) == task.assignee:
                    continue  # the gateway's own event (or the created task's) says it already
                latest[("assignment", task.task_id)] = task.assignee
                uow.emit(
                    "task.assigned",
                    engine=self.engine,
                    instance_id=task.instance_id,
                    tenant_id=task.tenant_id,
                    data=_assignment(task),
                )
                emitted += 1
            # A waiting task keeps what was seen before, to be compared again next round.
            now_seen = {task.task_id: task.assignee for task in observed if task.task_id not in waiting}
            now_seen.update((task_id, seen[task_id]) for task_id in waiting if task_id in seen)
            if now_seen != seen:
                await repository.save_change_mark(
                    uow.session, self.engine, ASSIGNEES, {"since": mark["since"], "tasks": now_seen}
                )
        return emitted

    async def _latest_states(self, session: Any, instance_ids: set[str]) -> dict[Hashable, Hashable]:
        latest: dict[Hashable, Hashable] = {}
        for event in await repository.instance_events(session, self.engine, instance_ids):
            latest.update(states_of(event["type"], event["instance_id"], event["data"]))
        return latest


_NOTHING = object()


def _assignment(task: OpenTaskAssignee) -> dict[str, Any]:
    """The data of the `task.assigned` event for an assignee seen on an open task (Camunda 7's feed reports the same)."""
    return {
        "task_id": task.task_id,
        "task_name": task.task_name,
        "action": "assign" if task.assignee is not None else "unclaim",
        "assignee": task.assignee,
    }
