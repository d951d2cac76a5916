"""The analytics projection: the gateway's own record of each engine's runs, kept from two sources.

- The engine's history (`history_instances`, `history_activities`) and its open tasks (`list_tasks`): what
  started, finished or was created since the last read (`Projector.sync_engine`), all of it the first time:
  instances, activity runs and user tasks as every engine reports them, in the unified models, so one process
  run projects the same on every engine.
- The gateway's own events (the outbox, `journal.list_events`): who claimed a task and when, who completed
  it, and which engine changed, so that engine is read again at once rather than at the next interval.

Every write replaces or sets values (never adds to them), so a round that runs twice, or on two replicas at
once, leaves the same rows. After a round, the cache entries of the changed processes are invalidated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from analytics import repository
from analytics.cache import StatisticsCache
from analytics.settings import AnalyticsSettings
from analytics.tables import SLOT_SECONDS
from gateway import journal
from gateway.db import Database, utcnow
from gateway.journal import EVENT_PREFIX
from gateway.leader import cancel_tasks, wait_for_wake
from gateway.logs import log_failed_round
from gateway.registry import EngineRegistry
from gateway.schemas import ActivityRecord, HistoryQuery, Page, ProcessInstance, SortOrder, Task, TaskQuery
from gateway.uow import reading, transaction

log = logging.getLogger(__name__)
T = TypeVar("T")

PAGE_SIZE = 500
RECENT_PAGE_SIZE = 50
EVENT_BATCH = 1000
YIELD_EVERY = 500
EVENTS_STATE = "events"
SYSTEM = "system:analytics"
# Records that are not BPMN elements a user placed on the diagram, and engine-specific names of the same element.
SKIPPED_ACTIVITY_TYPES = frozenset({"sequenceFlow", "processDefinition", "process", "multiInstanceBody"})
ACTIVITY_TYPE_NAMES = {"noneStartEvent": "startEvent", "noneEndEvent": "endEvent"}
# An activity that ended within this long of its terminated instance's end was canceled by the termination
# (engines end the running activities in the same step as the instance).
CANCEL_TOLERANCE = timedelta(milliseconds=50)
TASK_EVENTS = (EVENT_PREFIX + "task.assigned", EVENT_PREFIX + "task.completed")


def slot(moment: datetime | None) -> int | None:
    """The 15-minute slot of a time: Unix seconds // 900 (see `analytics.tables`)."""
    return None if moment is None else int(moment.timestamp()) // SLOT_SECONDS


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    return None if start is None or end is None else max(0, round((end - start).total_seconds() * 1000))


def instance_row(engine: str, instance: ProcessInstance) -> dict[str, Any]:
    return {
        "engine": engine,
        "instance_id": instance.id,
        "definition_key": instance.definition_key,
        "definition_name": instance.definition_name,
        "tenant_id": instance.tenant_id,
        "status": instance.status,
        "start_time": instance.start_time,
        "end_time": instance.end_time,
        "duration_ms": instance.duration_ms
        if instance.duration_ms is not None
        else _ms(instance.start_time, instance.end_time),
        "start_slot": slot(instance.start_time),
        "end_slot": slot(instance.end_time),
    }


def activity_row(engine: str, record: ActivityRecord, instances: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The projected row of one activity run, None for records that are not diagram elements."""
    if record.activity_type in SKIPPED_ACTIVITY_TYPES or record.start_time is None:
        return None
    instance = instances.get(record.instance_id, {})
    ended_by_termination = (
        instance.get("status") in repository.TERMINATED
        and record.end_time is not None
        and instance.get("end_time") is not None
        and record.end_time >= instance["end_time"] - CANCEL_TOLERANCE
    )
    return {
        "engine": engine,
        "instance_id": record.instance_id,
        "definition_key": record.definition_key or instance.get("definition_key") or "",
        "activity_id": record.activity_id,
        "activity_name": record.activity_name,
        "activity_type": ACTIVITY_TYPE_NAMES.get(record.activity_type, record.activity_type),
        "start_time": record.start_time,
        "end_time": record.end_time,
        "duration_ms": record.duration_ms
        if record.duration_ms is not None
        else _ms(record.start_time, record.end_time),
        "start_slot": slot(record.start_time),
        "canceled": ended_by_termination,
        "first_run": False,  # set by repository.refresh_derived
        "assignee": record.assignee,
    }


async def _all(fetch: Callable[[int], Awaitable[Page[T]]]) -> list[T]:
    """Every item of a paged engine query."""
    items: list[T] = []
    page = 1
    while True:
        found = await fetch(page)
        items += found.items
        if len(found.items) < PAGE_SIZE or len(items) >= found.total:
            return items
        page += 1


Run = TypeVar("Run", ProcessInstance, ActivityRecord)


def _started_before(moment: datetime, runs: list[Run]) -> list[Run]:
    return [run for run in runs if run.start_time is not None and run.start_time < moment]


async def _created_since(adapter: Any, since: datetime | None) -> list[Task]:
    """The engine's open tasks created at or after `since`: newest first, read until an older one, in small pages
    (an HTTP engine looks up each listed task's candidates)."""
    found: dict[str, Task] = {}
    page = 1
    while True:
        listed = await adapter.list_tasks(
            TaskQuery(page=page, size=RECENT_PAGE_SIZE, sort="created", order=SortOrder.DESC)
        )
        for task in listed.items:
            if since is not None and (task.created is None or task.created < since):
                return list(found.values())
            found[task.id] = task  # a task created meanwhile moves the others one place on: read twice, kept once
        if len(listed.items) < RECENT_PAGE_SIZE:
            return list(found.values())
        page += 1


async def _written_task(session: Any, engine: str, task_id: str) -> repository.Row:
    """The task row this transaction has just written (LookupError if it is not there: a broken invariant)."""
    row = await repository.get_task(session, engine, task_id)
    if row is None:
        raise LookupError(f"analytics task {engine}/{task_id} is missing right after it was written")
    return row


class Projector:
    """Keeps the projection of every configured engine; `run_once` is one round (tests call it directly)."""

    def __init__(
        self, db: Database, registry: EngineRegistry, settings: AnalyticsSettings, cache: StatisticsCache
    ) -> None:
        self.db = db
        self.registry = registry
        self.settings = settings
        self.cache = cache
        self._synced: dict[str, float] = {}
        self._reconciled: dict[str, float] = {}  # when each engine's open tasks were last read in full
        self._wake = asyncio.Event()
        self._round = asyncio.Lock()  # one round at a time in this process
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(
                self._loop(self.run_once, self.settings.event_interval, self._wake), name="analytics: projection"
            ),
            asyncio.create_task(
                self._loop(self.emit_overdue, self.settings.overdue_interval), name="analytics: overdue"
            ),
        ]

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)
        self._tasks = []

    def nudge(self) -> None:
        self._wake.set()

    async def run_once(self, *, full: bool = False) -> None:
        """Read the events since the last round; read what changed in every engine they name, and in every engine
        not read for `sync_interval` (`full`: every engine's whole history and open tasks); then apply the task
        events."""
        async with self._round:
            await self._run(full)

    async def _run(self, full: bool) -> None:
        async with reading(self.db) as session:
            cursor_row = await repository.get_state(session, EVENTS_STATE)
            cursor = int(cursor_row["cursor"] or 0) if cursor_row else 0
            events, next_cursor = await journal.list_events(session, after=cursor, types=None, limit=EVENT_BATCH)
        now = asyncio.get_running_loop().time()
        named = {event["engine"] for event in events if event["engine"] in self.registry.engines}
        stale = {
            name for name in self.registry.engines if now - self._synced.get(name, -1e12) >= self.settings.sync_interval
        }
        for name in sorted(named | stale if not full else set(self.registry.engines)):
            await self.sync_engine(name, full=full)
            self._synced[name] = now
        if not events:
            return  # no write: on SQLite the writer lock stays free for the changes users make
        changed: dict[str, set[str] | None] = {}
        async with transaction(self.db, actor=SYSTEM) as uow:
            await repository.lock_projection(uow.session)
            # Another replica may have applied them meanwhile (applying twice changes nothing).
            await repository.set_state(uow.session, EVENTS_STATE, cursor=next_cursor)
            for event in events:
                if event["engine"] not in self.registry.engines:
                    continue
                if event["type"] in TASK_EVENTS:
                    key = await self._apply_task_event(uow.session, event)
                    keys = changed.setdefault(event["engine"], set())
                    if keys is not None:  # None: an incident event already invalidates all the engine's answers
                        keys.add(key or "")
                elif event["type"].startswith(EVENT_PREFIX + "incident."):
                    changed[event["engine"]] = None  # incidents count in every process's answers
        for engine, keys in changed.items():
            await self.cache.invalidate(engine, keys)
        if len(events) == EVENT_BATCH:
            self.nudge()  # more are waiting

    async def sync_engine(self, name: str, *, full: bool = False) -> None:
        """Read what changed in the engine since its last read and apply it to the projection.

        The first read (and a `full` one) takes the whole history and every open task. Later reads take the
        instances and activity runs that started or finished since the last read (`repository.sync_since`) and the
        open tasks created since. Every `task_reconcile_interval` seconds a read takes every open task, since tasks can end without
        an event (interrupted by a boundary event, deleted in the engine), and the history of that interval
        again, since an engine stamps a run with the time its transaction began and may commit it much later.
        """
        adapter = self.registry.get(name).adapter
        started = utcnow()
        now = asyncio.get_running_loop().time()
        since = None
        if not full:
            async with reading(self.db) as session:
                since = await repository.sync_since(session, name)
        reconcile = since is None or now - self._reconciled.get(name, -1e12) >= self.settings.task_reconcile_interval
        if reconcile and since is not None:  # also the runs an engine committed late (stamped when they began)
            since -= timedelta(seconds=self.settings.task_reconcile_interval)

        def history(page: int, **window: datetime | None) -> HistoryQuery:
            return HistoryQuery(page=page, size=PAGE_SIZE, sort="start_time", order=SortOrder.ASC, **window)

        new_instances = await _all(lambda page: adapter.history_instances(history(page, started_after=since)))
        new_runs = await _all(lambda page: adapter.history_activities(history(page, started_after=since)))
        ended_instances: list[ProcessInstance] = []
        ended_runs: list[ActivityRecord] = []
        if since is not None:  # runs that started before the window and ended in it
            ended_instances = _started_before(
                since, await _all(lambda page: adapter.history_instances(history(page, finished_after=since)))
            )
            ended_runs = _started_before(
                since, await _all(lambda page: adapter.history_activities(history(page, finished_after=since)))
            )
        if reconcile:
            open_now = await _all(
                lambda page: adapter.list_tasks(
                    TaskQuery(page=page, size=PAGE_SIZE, sort="created", order=SortOrder.ASC)
                )
            )
        else:
            open_now = await _created_since(adapter, since)
        instance_rows = {
            i.id: instance_row(name, i) for i in new_instances + ended_instances if i.start_time is not None
        }
        run_rows = [row for r in new_runs if (row := activity_row(name, r, instance_rows)) is not None]
        ended_run_rows = [row for r in ended_runs if (row := activity_row(name, r, instance_rows)) is not None]
        ended_ids = {i.id for i in new_instances + ended_instances if i.end_time is not None}
        async with transaction(self.db, actor=SYSTEM) as uow:
            await repository.lock_projection(uow.session)
            changed = await repository.replace_history(
                uow.session,
                name,
                since,
                [instance_rows[i.id] for i in new_instances if i.id in instance_rows],
                run_rows,
            )
            merged = await repository.merge_ended(
                uow.session, name, [instance_rows[i.id] for i in ended_instances], ended_run_rows
            )
            changed |= merged.keys
            if changed:
                await repository.refresh_derived(uow.session, name, since, merged)
            changed |= await self._sync_tasks(uow.session, name, open_now, started, reconcile, ended_ids)
            await repository.set_state(uow.session, f"engine:{name}", synced_at=started)
        if reconcile:
            self._reconciled[name] = now
        if changed:
            await self.cache.invalidate(name, changed)

    async def _sync_tasks(
        self, session: Any, engine: str, listed: list[Task], now: datetime, complete: bool, ended: set[str]
    ) -> set[str]:
        """Apply the engine's open tasks `listed` (every one when `complete`, else those created since the last
        read) to the projection. Projected open tasks that are not listed are closed: all of them when the list
        is complete, else those of the `ended` instances. Returns the definition keys that changed."""
        changed: set[str] = set()
        if complete:
            projected = await repository.open_tasks(session, engine)
        else:
            projected = await repository.tasks_of(session, engine, [task.id for task in listed], ended)
        groups = await repository.task_groups_of(session, engine, projected)
        for number, task in enumerate(listed):
            if number % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a full read compares every open task: let requests in between
            row = projected.get(task.id)
            values = {
                "instance_id": task.instance_id,
                "definition_key": task.definition_key,
                "task_definition_key": task.task_definition_key,
                "name": task.name,
                "assignee": task.assignee,
                "priority": task.priority,
                "due": task.due,
                "tenant_id": task.tenant_id,
            }
            if row is not None and row["status"] != "open":
                continue  # closed by an event while the engine still listed it open
            if row is None:
                known = await repository.get_task(session, engine, task.id)
                if known is not None:  # closed by an event while the engine still listed it open
                    continue
                claimed_at = task.created if task.assignee else None  # assigned on creation, as far as is known
                await repository.insert_task(
                    session,
                    {
                        "engine": engine,
                        "task_id": task.id,
                        **values,
                        "status": "open",
                        "created": task.created,
                        "created_slot": slot(task.created),
                        "claimed_at": claimed_at,
                        "claim_wait_ms": _ms(task.created, claimed_at),
                    },
                    task.candidate_groups,
                )
                changed.add(task.definition_key or "")
                continue
            updates = {column: value for column, value in values.items() if row[column] != value}
            if task.assignee and row["claimed_at"] is None:  # claimed in the engine itself: seen now
                updates.update(claimed_at=now, claim_wait_ms=_ms(row["created"], now))
            if row["created"] is None and task.created is not None:
                updates.update(created=task.created, created_slot=slot(task.created))
            if updates:
                await repository.update_task(session, engine, task.id, **updates)
                changed.add(task.definition_key or "")
            if groups.get(task.id, set()) != set(task.candidate_groups):
                await repository.set_task_groups(session, engine, task.id, task.candidate_groups)
                changed.add(task.definition_key or "")
        ids = {task.id for task in listed}
        for task_id, row in projected.items():
            if row["status"] == "open" and task_id not in ids and (complete or row["instance_id"] in ended):
                await self._close_task(session, row, now)
                changed.add(row["definition_key"] or "")
        return changed

    async def _close_task(self, session: Any, row: Any, now: datetime) -> None:
        """A task the engine no longer lists open: completed when its activity completed, else cancelled."""
        run = await repository.user_task_end(session, row["engine"], row["instance_id"], row["task_definition_key"])
        ended = (run["end_time"] if run else None) or now
        status = "cancelled" if run is not None and run["canceled"] else "completed"
        await repository.update_task(
            session,
            row["engine"],
            row["task_id"],
            status=status,
            completed_at=ended,
            completed_slot=slot(ended),
            completion_ms=_ms(row["created"], ended),
        )

    async def _apply_task_event(self, session: Any, event: dict[str, Any]) -> str | None:
        """Claim and completion times from the gateway's task events; returns the task's definition key."""
        engine, data, at = event["engine"], event["data"], event["occurred_at"]
        task_id = data.get("task_id")
        if not task_id:
            return None
        row = await repository.get_task(session, engine, task_id)
        if row is None:  # opened and closed between two reads of the engine: known from events only
            await repository.insert_task(
                session,
                {
                    "engine": engine,
                    "task_id": task_id,
                    "instance_id": event["instance_id"],
                    "tenant_id": event["tenant_id"],
                    "name": data.get("task_name"),
                    "priority": 50,
                    "status": "open",
                },
                (),
            )
            row = await _written_task(session, engine, task_id)
        if row["created"] is None and data.get("task_definition_key"):  # task.completed names the activity
            run = await repository.user_task_end(session, engine, row["instance_id"], data["task_definition_key"])
            created = run["start_time"] if run else None
            await repository.update_task(
                session,
                engine,
                task_id,
                created=created,
                created_slot=slot(created),
                definition_key=data.get("definition_key"),
                task_definition_key=data["task_definition_key"],
                claim_wait_ms=_ms(created, row["claimed_at"]),
            )
            row = await _written_task(session, engine, task_id)
        if event["type"].endswith("task.assigned"):
            assignee = data.get("assignee")
            updates: dict[str, Any] = {"assignee": assignee} if row["status"] == "open" else {}
            if assignee and row["claimed_at"] is None:
                updates.update(claimed_at=at, claim_wait_ms=_ms(row["created"], at))
            if updates:
                await repository.update_task(session, engine, task_id, **updates)
        else:
            run = await repository.user_task_end(session, engine, row["instance_id"], row["task_definition_key"])
            ended = row["completed_at"] or (run["end_time"] if run else None) or at  # the engine's time when known
            await repository.update_task(
                session,
                engine,
                task_id,
                status="completed",
                completed_at=ended,
                completed_slot=slot(ended),
                completed_by=data.get("completed_by"),
                completion_ms=_ms(row["created"], ended),
            )
        return row["definition_key"]

    async def emit_overdue(self) -> int:
        """Emit `task.overdue` once for every open task past its due date; returns how many."""
        async with transaction(self.db, actor=SYSTEM) as uow:
            stamped = await repository.mark_overdue(uow.session, utcnow())
            for task in stamped:
                uow.emit(
                    "task.overdue",
                    engine=task["engine"],
                    instance_id=task["instance_id"],
                    data={
                        "task_id": task["task_id"],
                        "task_name": task["name"],
                        "task_definition_key": task["task_definition_key"],
                        "definition_key": task["definition_key"],
                        "assignee": task["assignee"],
                        "due": task["due"].isoformat(),
                    },
                )
        for engine in {task["engine"] for task in stamped}:
            await self.cache.invalidate(
                engine, {task["definition_key"] or "" for task in stamped if task["engine"] == engine}
            )
        return len(stamped)

    async def _loop(
        self, work: Callable[[], Awaitable[Any]], interval: float, wake: asyncio.Event | None = None
    ) -> None:
        failing = False
        while True:
            try:
                await work()
                failing = False
            except Exception as exc:  # a failed round (an engine down, the database restarting) is tried again
                if not failing:
                    log_failed_round(log, exc, "Analytics: a projection round", interval)
                failing = True
            if wake is None:
                await asyncio.sleep(interval)
                continue
            await wait_for_wake(wake, interval)
