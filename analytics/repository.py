"""Every query of analytics: the projection's writes (for `analytics.projection`) and the aggregates the
answers are made of (for `analytics.service`). Aggregates are computed by the database; only small results
(one row per 15-minute slot, per process, per activity) come back to Python."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from analytics.tables import (
    SLOT_SECONDS,
    SLOTS_PER_DAY,
    analytics_activities as activities,
    analytics_activity_days as activity_days,
    analytics_activity_slots as activity_slots,
    analytics_completion_slots as completion_slots,
    analytics_instance_days as instance_days,
    analytics_instance_slots as instance_slots,
    analytics_instances as instances,
    analytics_state as state,
    analytics_task_completion_slots as task_completion_slots,
    analytics_task_groups as task_groups,
    analytics_task_slots as task_slots,
    analytics_tasks as tasks,
)
from gateway.db import rowcount
from incidents.models import UNRESOLVED, incidents

Row = sa.RowMapping
TERMINATED = ("terminated", "externally_terminated")
HUMAN_TASK_TYPES = ("userTask", "manualTask")
TASK_TYPES = ("userTask", "manualTask", "serviceTask", "scriptTask", "sendTask", "receiveTask", "businessRuleTask")
SYNC_MARGIN = timedelta(minutes=1)
SLOT = timedelta(seconds=SLOT_SECONDS)
UNRESOLVED_VALUES = [status.value for status in UNRESOLVED]


@dataclass(frozen=True)
class Scope:
    """What an answer covers: one engine, the period [start, end), optionally one process definition key, and
    the tenants whose rows count (None: every row, with or without a tenant)."""

    engine: str
    start: datetime
    end: datetime
    definition_key: str | None = None
    tenants: frozenset[str] | None = None


def _key(column: sa.Column[Any], scope: Scope) -> list[sa.ColumnElement[bool]]:
    """The scope's conditions on a table: its definition key and, for a caller limited to tenants, its tenants
    (`column` is the table's definition_key column; the table has a tenant_id column)."""
    conditions = [] if scope.definition_key is None else [column == scope.definition_key]
    if scope.tenants is not None:
        conditions.append(column.table.c.tenant_id.in_(sorted(scope.tenants)))
    return conditions


def _between(column: sa.ColumnElement[Any], scope: Scope) -> list[sa.ColumnElement[bool]]:
    return [column >= scope.start, column < scope.end]


def _nearest_rank(count: int, percent: int) -> int:
    """The 0-based offset of the nearest-rank percentile among `count` sorted values: ceil(p/100 · n) − 1."""
    return max(0, -(-count * percent // 100) - 1)


@dataclass(frozen=True)
class Pieces:
    """A period [start, end) cut by what each part is read from (see `analytics.tables`): `edges`, the parts of
    a 15-minute slot at either end (from the rows themselves); `whole`, every whole slot ([first, last) or
    None); of those, `slots`, the ranges outside whole UTC days, and `days`, the whole UTC days ([first, last)
    or None)."""

    edges: list[tuple[datetime, datetime]]
    whole: tuple[int, int] | None
    slots: list[tuple[int, int]]
    days: tuple[int, int] | None


def pieces(scope: Scope) -> Pieces:
    """Cut the scope's period into edges, whole slots and whole UTC days (`Pieces`). For a scope limited to
    tenants the whole period is one edge: the roll-ups sum every tenant's rows, so only the rows can answer."""
    start, end = scope.start, scope.end
    if scope.tenants is not None:
        return Pieces([(start, end)], None, [], None)
    first = math.ceil(start.timestamp() / SLOT_SECONDS)  # the first slot wholly inside the period
    last = math.floor(end.timestamp() / SLOT_SECONDS)  # the slot the period ends in (not wholly inside)
    if first >= last:
        return Pieces([(start, end)], None, [], None)
    first_day, last_day = -(-first // SLOTS_PER_DAY), last // SLOTS_PER_DAY
    if first_day < last_day:
        slots = [(first, first_day * SLOTS_PER_DAY), (last_day * SLOTS_PER_DAY, last)]
        days: tuple[int, int] | None = (first_day, last_day)
    else:
        slots, days = [(first, last)], None
    edges = [(start, _slot_start(first)), (_slot_start(last), end)]
    return Pieces(
        [(since, until) for since, until in edges if since < until],
        (first, last),
        [(since, until) for since, until in slots if since < until],
        days,
    )


def _bucketed(column: sa.ColumnElement[Any], buckets: Sequence[int]) -> sa.ColumnElement[Any]:
    """A slot column as is, or with `buckets` (ascending slots, e.g. where each local day starts) the latest bucket
    at or before it: grouping by it, the database returns a row per day instead of one per slot. The bounds are
    inlined integers, so that the GROUP BY expression is the selected one's text."""
    return _bucket_case(column, tuple(buckets)) if buckets else column


@functools.lru_cache(maxsize=32)
def _bucket_case(column: sa.ColumnElement[Any], buckets: tuple[int, ...]) -> sa.ColumnElement[Any]:
    # Built once per column and period: a month's CASE of 31 bounds took a cold /statistics ~60 ms of Python,
    # built twice (select, group by) for every part of three per-slot reads.
    bound: list[sa.ColumnElement[Any]] = [sa.literal_column(str(int(bucket))) for bucket in reversed(buckets)]
    return sa.case(*((column >= b, b) for b in bound), else_=column)


def _in_ranges(column: sa.ColumnElement[int], ranges: Sequence[tuple[int, int]]) -> sa.ColumnElement[bool]:
    return sa.or_(*(sa.and_(column >= first, column < last) for first, last in ranges))


async def _summed(session: AsyncSession, parts: Sequence[sa.Select[Any]], keys: int, names: int) -> list[list[Any]]:
    """The rows of every part merged: each row is `keys` key columns, `names` columns taken from the first part
    that gives one (names and types), then sums, added up over the parts' rows with the same keys."""
    merged: dict[tuple[Any, ...], list[Any]] = {}
    for part in parts:
        for row in await session.execute(part):
            found = merged.get(tuple(row[:keys]))
            if found is None:
                merged[tuple(row[:keys])] = [*row[: keys + names], *(value or 0 for value in row[keys + names :])]
                continue
            for index in range(keys, keys + names):
                found[index] = found[index] if found[index] is not None else row[index]
            for index in range(keys + names, len(row)):
                found[index] += row[index] or 0
    return list(merged.values())


# ---------------------------------------------------------------- projection state
PROJECTION_LOCK_ID = 7_301_014  # PostgreSQL advisory lock: one projection write at a time across replicas


async def lock_projection(session: AsyncSession) -> None:
    """Serialise projection writes (held to the end of the transaction). SQLite has one writer anyway."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(PROJECTION_LOCK_ID)))


async def get_state(session: AsyncSession, name: str) -> Row | None:
    return (await session.execute(sa.select(state).where(state.c.name == name))).mappings().first()


async def set_state(
    session: AsyncSession, name: str, *, cursor: int | None = None, synced_at: datetime | None = None
) -> None:
    values = {key: value for key, value in (("cursor", cursor), ("synced_at", synced_at)) if value is not None}
    updated = await session.execute(state.update().where(state.c.name == name).values(**values))
    if rowcount(updated) == 0:
        await session.execute(state.insert().values(name=name, **values))


async def sync_since(session: AsyncSession, engine: str) -> datetime | None:
    """Where the next read of an engine's history starts (None: never read, read everything): the start of the
    last read minus SYNC_MARGIN, since an engine's clock and its stamping of times may lag the gateway's. Runs
    that started or finished since then are read again; nothing else changed."""
    row = await get_state(session, f"engine:{engine}")
    synced_at = None if row is None else row["synced_at"]
    return None if synced_at is None else synced_at - SYNC_MARGIN


async def replace_history(
    session: AsyncSession,
    engine: str,
    since: datetime | None,
    instance_rows: Sequence[dict[str, Any]],
    activity_rows: Sequence[dict[str, Any]],
) -> set[str]:
    """Replace the engine's projected instances and activities started at or after `since` (all when None) by
    the rows just read. Returns the definition keys whose rows changed (for cache invalidation); the caller
    then calls `refresh_derived`."""
    conditions = [instances.c.engine == engine] + ([] if since is None else [instances.c.start_time >= since])
    activity_conditions = [activities.c.engine == engine] + (
        [] if since is None else [activities.c.start_time >= since]
    )
    before = {
        tuple(r)
        for r in await session.execute(
            sa.select(
                instances.c.definition_key, instances.c.instance_id, instances.c.status, instances.c.end_time
            ).where(*conditions)
        )
    }
    before_activities = {
        tuple(r)
        for r in await session.execute(
            sa.select(
                activities.c.definition_key, activities.c.instance_id, activities.c.activity_id, activities.c.end_time
            ).where(*activity_conditions)
        )
    }
    after = {(r["definition_key"], r["instance_id"], r["status"], r["end_time"]) for r in instance_rows}
    after_activities = {(r["definition_key"], r["instance_id"], r["activity_id"], r["end_time"]) for r in activity_rows}
    changed = {row[0] for row in before ^ after} | {row[0] for row in before_activities ^ after_activities}
    if not changed:
        return changed
    await session.execute(instances.delete().where(*conditions))
    await session.execute(activities.delete().where(*activity_conditions))
    if instance_rows:
        await session.execute(instances.insert(), list(instance_rows))
    if activity_rows:
        await session.execute(activities.insert(), list(activity_rows))
    return changed


@dataclass
class EndedMerge:
    """What `merge_ended` changed: definition keys (cache), 15-minute slots (roll-ups) and the instances whose
    runs it inserted (first runs and tenants)."""

    keys: set[str] = field(default_factory=set)
    slots: set[int] = field(default_factory=set)
    instance_ids: set[str] = field(default_factory=set)


async def merge_ended(
    session: AsyncSession, engine: str, instance_rows: Sequence[dict[str, Any]], activity_rows: Sequence[dict[str, Any]]
) -> EndedMerge:
    """Instances and activity runs that started before the window `replace_history` replaced and ended since the
    last read: each instance row replaces its projected row; each run ends a projected unfinished run with the
    same instance, activity and start (runs that share all three are interchangeable for every figure), or is
    inserted when none is projected. Applying the same rows twice changes nothing."""
    merged = EndedMerge()
    ids = sorted({r["instance_id"] for r in instance_rows} | {r["instance_id"] for r in activity_rows})
    known: dict[str, Row] = {}
    runs: dict[tuple[str, str, datetime], list[Row]] = {}
    for chunk in range(0, len(ids), 500):
        some = ids[chunk : chunk + 500]
        for row in (
            await session.execute(
                sa.select(instances).where(instances.c.engine == engine, instances.c.instance_id.in_(some))
            )
        ).mappings():
            known[row["instance_id"]] = row
        for row in (
            await session.execute(
                sa.select(activities).where(activities.c.engine == engine, activities.c.instance_id.in_(some))
            )
        ).mappings():
            runs.setdefault((row["instance_id"], row["activity_id"], row["start_time"]), []).append(row)
    for new in instance_rows:
        old = known.get(new["instance_id"])
        if old is not None and all(old[column] == value for column, value in new.items()):
            continue
        merged.keys.add(new["definition_key"])
        merged.slots |= {new["start_slot"]} | ({new["end_slot"]} if new["end_slot"] is not None else set())
        if old is None:
            await session.execute(instances.insert().values(**new))
        else:
            await session.execute(
                instances.update()
                .where(instances.c.engine == engine, instances.c.instance_id == new["instance_id"])
                .values(**new)
            )
    ended = ("end_time", "duration_ms", "canceled", "assignee")
    for new in activity_rows:
        same = runs.setdefault((new["instance_id"], new["activity_id"], new["start_time"]), [])
        merged_before = next((row for row in same if row["end_time"] == new["end_time"]), None)
        if merged_before is not None:
            same.remove(merged_before)
            continue
        merged.keys.add(new["definition_key"])
        merged.slots.add(new["start_slot"])
        unfinished = next((row for row in same if row["end_time"] is None), None)
        if unfinished is None:
            await session.execute(activities.insert().values(**new))
            merged.instance_ids.add(new["instance_id"])
            continue
        same.remove(unfinished)
        await session.execute(
            activities.update().where(activities.c.id == unfinished["id"]).values({c: new[c] for c in ended})
        )
    return merged


async def refresh_derived(
    session: AsyncSession, engine: str, since: datetime | None, merged: EndedMerge | None = None
) -> None:
    """After `replace_history` (and `merge_ended`): first runs and tenants of the runs written, and the roll-ups
    of the slots they fall in."""
    merged = merged or EndedMerge()
    await _mark_first_runs(session, engine, since, merged.instance_ids)
    await _copy_instance_tenants(session, engine, since, merged.instance_ids)
    await rebuild_rollups(session, engine, since, merged.slots)


def _written_runs(since: datetime | None, instance_ids: Iterable[str]) -> list[sa.ColumnElement[bool]]:
    """The activity runs a round wrote: started at or after `since` (all when None), or of `instance_ids`."""
    if since is None:
        return []
    window = activities.c.start_time >= since
    ids = sorted(instance_ids)
    return [sa.or_(window, activities.c.instance_id.in_(ids))] if ids else [window]


def _from_on(column: sa.ColumnElement[int], first: int | None, also: Iterable[int]) -> list[sa.ColumnElement[bool]]:
    """`column >= first` (everything when None), or in `also`."""
    if first is None:
        return []
    extra = sorted(also)
    return [sa.or_(column >= first, column.in_(extra))] if extra else [column >= first]


async def _copy_instance_tenants(
    session: AsyncSession, engine: str, since: datetime | None, instance_ids: Iterable[str] = ()
) -> None:
    """tenant_id of the runs started at or after `since`: their instance's (engines report it on the instance).
    A run whose instance is not projected (yet) has none: it counts only for callers of every tenant."""
    tenant = (
        sa.select(instances.c.tenant_id)
        .where(instances.c.engine == activities.c.engine, instances.c.instance_id == activities.c.instance_id)
        .scalar_subquery()
    )
    conditions = [activities.c.engine == engine, *_written_runs(since, instance_ids)]
    await session.execute(activities.update().where(*conditions).values(tenant_id=tenant))


async def _mark_first_runs(
    session: AsyncSession, engine: str, since: datetime | None, instance_ids: Iterable[str] = ()
) -> None:
    """first_run: no run of the same activity in the same instance started before (ties: lower id)."""
    earlier = activities.alias("earlier")
    before = sa.exists().where(
        earlier.c.engine == activities.c.engine,
        earlier.c.instance_id == activities.c.instance_id,
        earlier.c.activity_id == activities.c.activity_id,
        sa.or_(
            earlier.c.start_time < activities.c.start_time,
            sa.and_(earlier.c.start_time == activities.c.start_time, earlier.c.id < activities.c.id),
        ),
    )
    conditions = [activities.c.engine == engine, *_written_runs(since, instance_ids)]
    await session.execute(activities.update().where(*conditions).values(first_run=~before))


async def rebuild_rollups(
    session: AsyncSession, engine: str, since: datetime | None, slots: Iterable[int] = ()
) -> None:
    """Recompute the engine's roll-ups (`analytics.tables`) of the instances and activity runs from the slot
    `since` falls in on (all when None), and of `slots` (15-minute slots of older runs that ended since): what
    a round replaced, and nothing else changed."""
    first_slot = None if since is None else int(since.timestamp()) // SLOT_SECONDS
    slots = set(slots)
    await _rebuild_activity_slots(session, engine, first_slot, slots)
    await _rebuild_instance_slots(session, engine, first_slot, slots)
    first_day = None if first_slot is None else first_slot // SLOTS_PER_DAY
    days = {one // SLOTS_PER_DAY for one in slots}
    sums = ("runs", "first_runs", "total_ms", "squares")
    await _rebuild_days(session, activity_slots, activity_days, engine, (first_day, days), ("activity_id",), sums)
    await _rebuild_days(
        session, instance_slots, instance_days, engine, (first_day, days), ("status",), ("instances", "duration_ms")
    )


async def _rebuild_days(
    session: AsyncSession,
    slots: sa.Table,
    days: sa.Table,
    engine: str,
    rebuilt: tuple[int | None, set[int]],
    keys: tuple[str, ...],
    sums: tuple[str, ...],
) -> None:
    """Sum a slot roll-up (keyed by engine, definition_key, `keys`, start_slot) into its day roll-up from
    the first day of `rebuilt` on (all when None) and on its other days. Name and type columns (the others)
    take any slot's value."""
    first_day, other_days = rebuilt
    day = (slots.c.start_slot // SLOTS_PER_DAY).label("day")
    named = [c.name for c in days.columns if c.name not in {"engine", "definition_key", "day", *keys, *sums}]
    await session.execute(days.delete().where(days.c.engine == engine, *_from_on(days.c.day, first_day, other_days)))
    grouped = (
        sa.select(
            slots.c.engine,
            slots.c.definition_key,
            *(slots.c[key] for key in keys),
            day,
            *(sa.func.max(slots.c[name]) for name in named),
            *(sa.func.sum(slots.c[name]) for name in sums),
        )
        .where(
            slots.c.engine == engine,
            *_from_on(slots.c.start_slot // SLOTS_PER_DAY, first_day, other_days),
        )
        .group_by(slots.c.engine, slots.c.definition_key, *(slots.c[key] for key in keys), day)
    )
    await session.execute(days.insert().from_select(["engine", "definition_key", *keys, "day", *named, *sums], grouped))


async def _rebuild_instance_slots(
    session: AsyncSession, engine: str, first_slot: int | None, other_slots: set[int]
) -> None:
    """Instances per (process, status, start slot) and completed instances per (process, end slot), from
    `first_slot` on and in `other_slots`."""
    for table, column in (
        (instance_slots, instance_slots.c.start_slot),
        (completion_slots, completion_slots.c.end_slot),
    ):
        await session.execute(
            table.delete().where(table.c.engine == engine, *_from_on(column, first_slot, other_slots))
        )
    since = _from_on(instances.c.start_slot, first_slot, other_slots)
    duration = sa.func.coalesce(sa.func.sum(instances.c.duration_ms), 0)
    started = (
        sa.select(
            instances.c.engine,
            instances.c.definition_key,
            instances.c.status,
            instances.c.start_slot,
            sa.func.max(instances.c.definition_name),
            sa.func.count(),
            duration,
        )
        .where(instances.c.engine == engine, *since)
        .group_by(instances.c.engine, instances.c.definition_key, instances.c.status, instances.c.start_slot)
    )
    await session.execute(
        instance_slots.insert().from_select(
            ["engine", "definition_key", "status", "start_slot", "definition_name", "instances", "duration_ms"],
            started,
        )
    )
    ended = (
        sa.select(instances.c.engine, instances.c.definition_key, instances.c.end_slot, sa.func.count(), duration)
        .where(
            instances.c.engine == engine,
            instances.c.status == "completed",
            *_from_on(instances.c.end_slot, first_slot, other_slots),
        )
        .group_by(instances.c.engine, instances.c.definition_key, instances.c.end_slot)
    )
    await session.execute(
        completion_slots.insert().from_select(
            ["engine", "definition_key", "end_slot", "instances", "duration_ms"], ended
        )
    )


async def _rebuild_activity_slots(
    session: AsyncSession, engine: str, first_slot: int | None, other_slots: set[int]
) -> None:
    """Recompute the per-slot sums of completed runs from `first_slot` on (all when None) and in `other_slots`."""
    slot_conditions = [activity_slots.c.engine == engine]
    run_conditions = [
        activities.c.engine == engine,
        activities.c.end_time.is_not(None),
        activities.c.canceled.is_(False),
    ]
    slot_conditions += _from_on(activity_slots.c.start_slot, first_slot, other_slots)
    run_conditions += _from_on(activities.c.start_slot, first_slot, other_slots)
    await session.execute(activity_slots.delete().where(*slot_conditions))
    duration = sa.cast(activities.c.duration_ms, sa.Float)
    sums = (
        sa.select(
            activities.c.engine,
            activities.c.definition_key,
            activities.c.activity_id,
            activities.c.start_slot,
            sa.func.max(activities.c.activity_name),
            sa.func.max(activities.c.activity_type),
            sa.func.count(),
            sa.func.sum(sa.case((activities.c.first_run.is_(True), 1), else_=0)),
            sa.func.coalesce(sa.func.sum(duration), 0.0),
            sa.func.coalesce(sa.func.sum(duration * duration), 0.0),
        )
        .where(*run_conditions)
        .group_by(activities.c.engine, activities.c.definition_key, activities.c.activity_id, activities.c.start_slot)
    )
    await session.execute(
        activity_slots.insert().from_select(
            [
                "engine",
                "definition_key",
                "activity_id",
                "start_slot",
                "activity_name",
                "activity_type",
                "runs",
                "first_runs",
                "total_ms",
                "squares",
            ],
            sums,
        )
    )


async def open_tasks(session: AsyncSession, engine: str) -> dict[str, Row]:
    """Every open projected task of the engine, by task id."""
    rows = await session.execute(sa.select(tasks).where(tasks.c.engine == engine, tasks.c.status == "open"))
    return {row["task_id"]: row for row in rows.mappings()}


async def tasks_of(
    session: AsyncSession, engine: str, task_ids: Iterable[str] = (), open_of_instances: Iterable[str] = ()
) -> dict[str, Row]:
    """Projected tasks by task id: those of `task_ids` (any status), and the open ones of `open_of_instances`."""
    found: dict[str, Row] = {}
    for column, values, extra in (
        (tasks.c.task_id, sorted(set(task_ids)), []),
        (tasks.c.instance_id, sorted(set(open_of_instances)), [tasks.c.status == "open"]),
    ):
        for chunk in range(0, len(values), 500):
            rows = await session.execute(
                sa.select(tasks).where(tasks.c.engine == engine, column.in_(values[chunk : chunk + 500]), *extra)
            )
            found.update({row["task_id"]: row for row in rows.mappings()})
    return found


async def task_groups_of(session: AsyncSession, engine: str, task_ids: Iterable[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    ids = list(task_ids)
    for chunk in range(0, len(ids), 500):
        rows = await session.execute(
            sa.select(task_groups.c.task_id, task_groups.c.group_id).where(
                task_groups.c.engine == engine, task_groups.c.task_id.in_(ids[chunk : chunk + 500])
            )
        )
        for task_id, group_id in rows:
            found.setdefault(task_id, set()).add(group_id)
    return found


async def get_task(session: AsyncSession, engine: str, task_id: str) -> Row | None:
    return (
        (await session.execute(sa.select(tasks).where(tasks.c.engine == engine, tasks.c.task_id == task_id)))
        .mappings()
        .first()
    )


async def insert_task(session: AsyncSession, values: dict[str, Any], groups: Iterable[str]) -> None:
    await session.execute(tasks.insert().values(**values))
    await set_task_groups(session, values["engine"], values["task_id"], groups)
    await _recount_task_slots(session, values["engine"], [values])


async def update_task(session: AsyncSession, engine: str, task_id: str, **values: Any) -> None:
    before = await get_task(session, engine, task_id)
    await session.execute(tasks.update().where(tasks.c.engine == engine, tasks.c.task_id == task_id).values(**values))
    after = await get_task(session, engine, task_id)
    await _recount_task_slots(session, engine, [row for row in (before, after) if row is not None])


def _task_key() -> sa.ColumnElement[str]:
    """A task's definition key, '' when not known (a literal, not a parameter: PostgreSQL matches the GROUP BY
    expression to the selected one only when they are the same text)."""
    return sa.func.coalesce(tasks.c.definition_key, sa.literal_column("''"))


def _task_slot_counts(engine: str, *conditions: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """Rows for analytics_task_slots: tasks per (process, status, creation slot) among those matching."""
    return (
        sa.select(tasks.c.engine, _task_key(), tasks.c.status, tasks.c.created_slot, sa.func.count())
        .where(tasks.c.engine == engine, tasks.c.created_slot.is_not(None), *conditions)
        .group_by(tasks.c.engine, _task_key(), tasks.c.status, tasks.c.created_slot)
    )


def _task_completion_counts(engine: str, *conditions: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """Rows for analytics_task_completion_slots: completed tasks per (process, completion slot)."""
    return (
        sa.select(tasks.c.engine, _task_key(), tasks.c.completed_slot, sa.func.count())
        .where(
            tasks.c.engine == engine, tasks.c.status == "completed", tasks.c.completed_slot.is_not(None), *conditions
        )
        .group_by(tasks.c.engine, _task_key(), tasks.c.completed_slot)
    )


TASK_SLOT_COLUMNS = ["engine", "definition_key", "status", "created_slot", "tasks"]
TASK_COMPLETION_COLUMNS = ["engine", "definition_key", "completed_slot", "tasks"]


async def _recount_task_slots(session: AsyncSession, engine: str, rows: Iterable[Any]) -> None:
    """Recount the task roll-up slots that these task rows (a task before and after a write) lie in."""
    for row in rows:
        key, created, completed = row.get("definition_key") or "", row.get("created_slot"), row.get("completed_slot")
        same_key = [_task_key() == key]
        if created is not None:
            await session.execute(
                task_slots.delete().where(
                    task_slots.c.engine == engine,
                    task_slots.c.definition_key == key,
                    task_slots.c.created_slot == created,
                )
            )
            since = _slot_start(created)
            in_slot = [tasks.c.created >= since, tasks.c.created < since + SLOT, tasks.c.created_slot == created]
            await session.execute(
                task_slots.insert().from_select(TASK_SLOT_COLUMNS, _task_slot_counts(engine, *same_key, *in_slot))
            )
        if completed is not None:
            await session.execute(
                task_completion_slots.delete().where(
                    task_completion_slots.c.engine == engine,
                    task_completion_slots.c.definition_key == key,
                    task_completion_slots.c.completed_slot == completed,
                )
            )
            since = _slot_start(completed)
            in_slot = [
                tasks.c.completed_at >= since,
                tasks.c.completed_at < since + SLOT,
                tasks.c.completed_slot == completed,
            ]
            await session.execute(
                task_completion_slots.insert().from_select(
                    TASK_COMPLETION_COLUMNS, _task_completion_counts(engine, *same_key, *in_slot)
                )
            )


async def rebuild_task_rollups(session: AsyncSession, engine: str) -> None:
    """Recount every slot of the engine's task roll-ups (for rows written other than by insert/update_task)."""
    await session.execute(task_slots.delete().where(task_slots.c.engine == engine))
    await session.execute(task_completion_slots.delete().where(task_completion_slots.c.engine == engine))
    await session.execute(task_slots.insert().from_select(TASK_SLOT_COLUMNS, _task_slot_counts(engine)))
    await session.execute(
        task_completion_slots.insert().from_select(TASK_COMPLETION_COLUMNS, _task_completion_counts(engine))
    )


async def set_task_groups(session: AsyncSession, engine: str, task_id: str, groups: Iterable[str]) -> None:
    await session.execute(task_groups.delete().where(task_groups.c.engine == engine, task_groups.c.task_id == task_id))
    rows = [{"engine": engine, "task_id": task_id, "group_id": group} for group in sorted(set(groups))]
    if rows:
        await session.execute(task_groups.insert(), rows)


async def user_task_end(
    session: AsyncSession, engine: str, instance_id: str | None, activity_id: str | None
) -> Row | None:
    """The latest run of a user task's activity in its instance (when the task ended, and whether canceled)."""
    if instance_id is None or activity_id is None:
        return None
    return (
        (
            await session.execute(
                sa.select(activities.c.start_time, activities.c.end_time, activities.c.canceled)
                .where(
                    activities.c.engine == engine,
                    activities.c.instance_id == instance_id,
                    activities.c.activity_id == activity_id,
                )
                .order_by(activities.c.start_time.desc())
                .limit(1)
            )
        )
        .mappings()
        .first()
    )


async def mark_overdue(session: AsyncSession, now: datetime) -> list[Row]:
    """Stamp open tasks past their due that were not stamped yet and return them. The UPDATE's condition makes
    each task stamped once, however many replicas run this at the same time."""
    due = sa.and_(tasks.c.status == "open", tasks.c.due < now, tasks.c.overdue_at.is_(None))
    candidates = (await session.execute(sa.select(tasks.c.engine, tasks.c.task_id).where(due))).all()
    stamped: list[Row] = []
    for engine, task_id in candidates:
        result = await session.execute(
            tasks.update().where(due, tasks.c.engine == engine, tasks.c.task_id == task_id).values(overdue_at=now)
        )
        if rowcount(result) == 1 and (row := await get_task(session, engine, task_id)) is not None:
            stamped.append(row)
    return stamped


# ---------------------------------------------------------------- statistics
async def instance_counts(session: AsyncSession, scope: Scope) -> list[dict[str, Any]]:
    """Per (definition_key, status): instances started in the period (`count`), their name and summed duration
    (`duration_sum`, ms). Read from the instance roll-ups for whole slots and days (`pieces`)."""
    cut = pieces(scope)
    parts: list[sa.Select[Any]] = [
        sa.select(
            instances.c.definition_key,
            instances.c.status,
            sa.func.max(instances.c.definition_name),
            sa.func.count(),
            sa.func.sum(instances.c.duration_ms),
        )
        .where(
            instances.c.engine == scope.engine,
            instances.c.start_time >= since,
            instances.c.start_time < until,
            *_key(instances.c.definition_key, scope),
        )
        .group_by(instances.c.definition_key, instances.c.status)
        for since, until in cut.edges
    ]
    for table, column, ranges in (
        (instance_slots, instance_slots.c.start_slot, cut.slots),
        (instance_days, instance_days.c.day, [cut.days] if cut.days else []),
    ):
        if ranges:
            parts.append(
                sa.select(
                    table.c.definition_key,
                    table.c.status,
                    sa.func.max(table.c.definition_name),
                    sa.func.sum(table.c.instances),
                    sa.func.sum(table.c.duration_ms),
                )
                .where(table.c.engine == scope.engine, _in_ranges(column, ranges), *_key(table.c.definition_key, scope))
                .group_by(table.c.definition_key, table.c.status)
            )
    return [
        {"definition_key": key, "status": status, "definition_name": name, "count": int(count), "duration_sum": total}
        for key, status, name, count, total in await _summed(session, parts, keys=2, names=1)
    ]


async def median_completed_duration(session: AsyncSession, scope: Scope, completed: int) -> int | None:
    """Nearest-rank median duration of the completed instances started in the period (`completed` of them)."""
    if completed == 0:
        return None
    return await session.scalar(
        sa.select(instances.c.duration_ms)
        .where(
            instances.c.engine == scope.engine,
            instances.c.status == "completed",
            *_between(instances.c.start_time, scope),
            *_key(instances.c.definition_key, scope),
        )
        .order_by(instances.c.duration_ms)
        .offset(_nearest_rank(completed, 50))
        .limit(1)
    )


async def task_counts(session: AsyncSession, scope: Scope, now: datetime) -> list[dict[str, Any]]:
    """Per (definition_key, status): tasks created in the period (`count`; whole slots from the task roll-up),
    and how many of the open ones are past due now (`overdue`)."""
    cut = pieces(scope)
    parts: list[sa.Select[Any]] = [
        sa.select(_task_key(), tasks.c.status, sa.func.count(), sa.literal(0))
        .where(tasks.c.engine == scope.engine, tasks.c.created >= since, tasks.c.created < until)
        .where(*_key(tasks.c.definition_key, scope))
        .group_by(_task_key(), tasks.c.status)
        for since, until in cut.edges
    ]
    if cut.whole:
        parts.append(
            sa.select(task_slots.c.definition_key, task_slots.c.status, sa.func.sum(task_slots.c.tasks), sa.literal(0))
            .where(task_slots.c.engine == scope.engine, _in_ranges(task_slots.c.created_slot, [cut.whole]))
            .where(*_key(task_slots.c.definition_key, scope))
            .group_by(task_slots.c.definition_key, task_slots.c.status)
        )
    parts.append(
        sa.select(_task_key(), tasks.c.status, sa.literal(0), sa.func.count())
        .where(tasks.c.status == "open", tasks.c.due < now, tasks.c.engine == scope.engine)
        .where(*_between(tasks.c.created, scope), *_key(tasks.c.definition_key, scope))
        .group_by(_task_key(), tasks.c.status)
    )
    return [
        {"definition_key": key or None, "status": status, "count": int(count), "overdue": int(overdue)}
        for key, status, count, overdue in await _summed(session, parts, keys=2, names=0)
    ]


async def incident_counts(session: AsyncSession, scope: Scope) -> tuple[int, int]:
    """(incidents created in the period, of those resolved)."""
    resolved = sa.func.sum(sa.case((incidents.c.status == "resolved", 1), else_=0))
    row = (
        await session.execute(
            sa.select(sa.func.count(), resolved).where(
                incidents.c.engine == scope.engine,
                *_between(incidents.c.created, scope),
                *_key(incidents.c.definition_key, scope),
            )
        )
    ).one()
    return int(row[0] or 0), int(row[1] or 0)


async def started_per_slot(session: AsyncSession, scope: Scope, buckets: Sequence[int] = ()) -> list[tuple[int, int]]:
    """(slot, instances started in it) for instances started in the period, whole slots from the roll-up; per
    bucket instead of per slot when `buckets` are given (`_bucketed`)."""
    cut = pieces(scope)
    parts: list[sa.Select[Any]] = [
        sa.select(_bucketed(instances.c.start_slot, buckets), sa.func.count())
        .where(
            instances.c.engine == scope.engine,
            instances.c.start_time >= since,
            instances.c.start_time < until,
            *_key(instances.c.definition_key, scope),
        )
        .group_by(_bucketed(instances.c.start_slot, buckets))
        for since, until in cut.edges
    ]
    if cut.whole:
        parts.append(
            sa.select(_bucketed(instance_slots.c.start_slot, buckets), sa.func.sum(instance_slots.c.instances))
            .where(
                instance_slots.c.engine == scope.engine,
                _in_ranges(instance_slots.c.start_slot, [cut.whole]),
                *_key(instance_slots.c.definition_key, scope),
            )
            .group_by(_bucketed(instance_slots.c.start_slot, buckets))
        )
    return [(slot, int(count)) for slot, count in await _summed(session, parts, keys=1, names=0)]


async def completed_per_slot(
    session: AsyncSession, scope: Scope, buckets: Sequence[int] = ()
) -> list[tuple[int, int, int]]:
    """(slot, instances completed in it, their duration sum) for instances completed in the period; whole slots
    from the roll-up; per bucket when `buckets` are given (`_bucketed`)."""
    cut = pieces(scope)
    parts: list[sa.Select[Any]] = [
        sa.select(_bucketed(instances.c.end_slot, buckets), sa.func.count(), sa.func.sum(instances.c.duration_ms))
        .where(
            instances.c.engine == scope.engine,
            instances.c.status == "completed",
            instances.c.end_time >= since,
            instances.c.end_time < until,
            *_key(instances.c.definition_key, scope),
        )
        .group_by(_bucketed(instances.c.end_slot, buckets))
        for since, until in cut.edges
    ]
    if cut.whole:
        parts.append(
            sa.select(
                _bucketed(completion_slots.c.end_slot, buckets),
                sa.func.sum(completion_slots.c.instances),
                sa.func.sum(completion_slots.c.duration_ms),
            )
            .where(
                completion_slots.c.engine == scope.engine,
                _in_ranges(completion_slots.c.end_slot, [cut.whole]),
                *_key(completion_slots.c.definition_key, scope),
            )
            .group_by(_bucketed(completion_slots.c.end_slot, buckets))
        )
    return [(slot, int(count), int(total)) for slot, count, total in await _summed(session, parts, keys=1, names=0)]


async def tasks_completed_per_slot(
    session: AsyncSession, scope: Scope, buckets: Sequence[int] = ()
) -> list[tuple[int, int]]:
    """(slot, tasks completed in it) for tasks completed in the period; whole slots from the task roll-up; per
    bucket when `buckets` are given (`_bucketed`)."""
    cut = pieces(scope)
    parts: list[sa.Select[Any]] = [
        sa.select(_bucketed(tasks.c.completed_slot, buckets), sa.func.count())
        .where(
            tasks.c.engine == scope.engine,
            tasks.c.status == "completed",
            tasks.c.completed_at >= since,
            tasks.c.completed_at < until,
            *_key(tasks.c.definition_key, scope),
        )
        .group_by(_bucketed(tasks.c.completed_slot, buckets))
        for since, until in cut.edges
    ]
    if cut.whole:
        parts.append(
            sa.select(
                _bucketed(task_completion_slots.c.completed_slot, buckets), sa.func.sum(task_completion_slots.c.tasks)
            )
            .where(
                task_completion_slots.c.engine == scope.engine,
                _in_ranges(task_completion_slots.c.completed_slot, [cut.whole]),
                *_key(task_completion_slots.c.definition_key, scope),
            )
            .group_by(_bucketed(task_completion_slots.c.completed_slot, buckets))
        )
    return [(slot, int(count)) for slot, count in await _summed(session, parts, keys=1, names=0)]


async def incident_times(session: AsyncSession, scope: Scope) -> list[datetime]:
    rows = await session.execute(
        sa.select(incidents.c.created).where(
            incidents.c.engine == scope.engine,
            *_between(incidents.c.created, scope),
            *_key(incidents.c.definition_key, scope),
        )
    )
    return [row[0] for row in rows]


# ---------------------------------------------------------------- activities
async def activity_waits(session: AsyncSession, scope: Scope) -> list[dict[str, Any]]:
    """Per (definition_key, activity_id), over its runs that started in the period and completed (not canceled):
    `runs`, the sum (`total`) and sum of squares (`squares`) of their durations in ms, and `instances` (runs that
    were their instance's first run of the activity). Whole days and slots are summed from the activity
    roll-ups, the period's partial first and last slots from the runs themselves (`pieces`)."""
    cut = pieces(scope)
    duration = sa.cast(activities.c.duration_ms, sa.Float)
    parts: list[sa.Select[Any]] = [
        sa.select(
            activities.c.definition_key,
            activities.c.activity_id,
            sa.func.max(activities.c.activity_name),
            sa.func.max(activities.c.activity_type),
            sa.func.count(),
            sa.func.sum(duration),
            sa.func.sum(duration * duration),
            sa.func.sum(sa.case((activities.c.first_run.is_(True), 1), else_=0)),
        )
        .where(
            activities.c.engine == scope.engine,
            activities.c.end_time.is_not(None),
            activities.c.canceled.is_(False),
            activities.c.start_time >= since,
            activities.c.start_time < until,
            *_key(activities.c.definition_key, scope),
        )
        .group_by(activities.c.definition_key, activities.c.activity_id)
        for since, until in cut.edges
    ]
    for table, column, ranges in (
        (activity_slots, activity_slots.c.start_slot, cut.slots),
        (activity_days, activity_days.c.day, [cut.days] if cut.days else []),
    ):
        if ranges:
            parts.append(
                sa.select(
                    table.c.definition_key,
                    table.c.activity_id,
                    sa.func.max(table.c.activity_name),
                    sa.func.max(table.c.activity_type),
                    sa.func.sum(table.c.runs),
                    sa.func.sum(table.c.total_ms),
                    sa.func.sum(table.c.squares),
                    sa.func.sum(table.c.first_runs),
                )
                .where(table.c.engine == scope.engine, _in_ranges(column, ranges), *_key(table.c.definition_key, scope))
                .group_by(table.c.definition_key, table.c.activity_id)
            )
    return [
        {
            "definition_key": key,
            "activity_id": activity_id,
            "activity_name": name,
            "activity_type": kind,
            "runs": int(runs),
            "total": float(total),
            "squares": float(squares),
            "instances": int(first_runs),
        }
        for key, activity_id, name, kind, runs, total, squares, first_runs in await _summed(
            session, parts, keys=2, names=2
        )
        if runs
    ]


def _slot_start(slot: int) -> datetime:
    return datetime.fromtimestamp(slot * SLOT_SECONDS, UTC)


async def element_counts(session: AsyncSession, scope: Scope) -> list[Row]:
    """Per activity of one definition: runs that started in the period (completed, canceled, duration sum)."""
    completed = sa.and_(activities.c.end_time.is_not(None), activities.c.canceled.is_(False))
    return list(
        (
            await session.execute(
                sa.select(
                    activities.c.activity_id,
                    sa.func.max(activities.c.activity_name).label("activity_name"),
                    sa.func.max(activities.c.activity_type).label("activity_type"),
                    sa.func.sum(sa.case((completed, 1), else_=0)).label("completed"),
                    sa.func.sum(sa.case((activities.c.canceled.is_(True), 1), else_=0)).label("canceled"),
                    sa.func.sum(sa.case((completed, activities.c.duration_ms), else_=None)).label("duration_sum"),
                )
                .where(
                    activities.c.engine == scope.engine,
                    *_between(activities.c.start_time, scope),
                    *_key(activities.c.definition_key, scope),
                )
                .group_by(activities.c.activity_id)
            )
        ).mappings()
    )


async def active_elements(session: AsyncSession, scope: Scope) -> list[Row]:
    """Per activity of one definition: runs active now, whenever they started."""
    return list(
        (
            await session.execute(
                sa.select(
                    activities.c.activity_id,
                    sa.func.max(activities.c.activity_name).label("activity_name"),
                    sa.func.max(activities.c.activity_type).label("activity_type"),
                    sa.func.count().label("active"),
                )
                .where(
                    activities.c.engine == scope.engine,
                    activities.c.end_time.is_(None),
                    *_key(activities.c.definition_key, scope),
                )
                .group_by(activities.c.activity_id)
            )
        ).mappings()
    )


async def element_percentiles(
    session: AsyncSession, scope: Scope, percents: Sequence[int]
) -> dict[tuple[str, int], int]:
    """Nearest-rank percentiles of completed run durations per activity: {(activity_id, percent): ms}."""
    ranked = (
        sa.select(
            activities.c.activity_id,
            activities.c.duration_ms,
            sa.func.row_number()
            .over(partition_by=activities.c.activity_id, order_by=activities.c.duration_ms)
            .label("rank"),
            sa.func.count().over(partition_by=activities.c.activity_id).label("runs"),
        )
        .where(
            activities.c.engine == scope.engine,
            activities.c.end_time.is_not(None),
            activities.c.canceled.is_(False),
            *_between(activities.c.start_time, scope),
            *_key(activities.c.definition_key, scope),
        )
        .subquery()
    )
    wanted = [(p, (ranked.c.runs * p + 99) // 100) for p in percents]  # ceil(p/100 · n), integer arithmetic
    rows = await session.execute(
        sa.select(ranked.c.activity_id, ranked.c.duration_ms, ranked.c.rank, ranked.c.runs).where(
            sa.or_(*(ranked.c.rank == rank for _, rank in wanted))
        )
    )
    found: dict[tuple[str, int], int] = {}
    for activity_id, duration, rank, runs in rows:
        for percent in percents:
            if rank == _nearest_rank(runs, percent) + 1:
                found[(activity_id, percent)] = duration
    return found


async def open_incidents_per_activity(session: AsyncSession, scope: Scope) -> dict[str, tuple[str | None, int]]:
    rows = await session.execute(
        sa.select(incidents.c.activity_id, sa.func.max(incidents.c.activity_name), sa.func.count())
        .where(
            incidents.c.engine == scope.engine,
            incidents.c.status.in_(UNRESOLVED_VALUES),
            incidents.c.activity_id.is_not(None),
            *_key(incidents.c.definition_key, scope),
        )
        .group_by(incidents.c.activity_id)
    )
    return {activity_id: (name, count) for activity_id, name, count in rows}


# ---------------------------------------------------------------- performance
async def completed_instance_work(session: AsyncSession, scope: Scope) -> list[Row]:
    """Per instance completed in the period: its duration, end, the start of its first task and the summed
    duration of its tasks, whether an activity ran twice in it, and whether it had an incident."""
    task_runs = (
        sa.select(
            activities.c.instance_id,
            sa.func.min(activities.c.start_time).label("first_task_start"),
            sa.func.sum(activities.c.duration_ms).label("task_time"),
        )
        .where(
            activities.c.engine == scope.engine,
            activities.c.activity_type.in_(TASK_TYPES),
            activities.c.end_time.is_not(None),
        )
        .group_by(activities.c.instance_id)
        .subquery()
    )
    repeated = (
        sa.select(activities.c.instance_id)
        .where(activities.c.engine == scope.engine)
        .group_by(activities.c.instance_id, activities.c.activity_id)
        .having(sa.func.count() > 1)
    )
    failed = sa.select(incidents.c.instance_id).where(
        incidents.c.engine == scope.engine, incidents.c.instance_id.is_not(None)
    )
    return list(
        (
            await session.execute(
                sa.select(
                    instances.c.instance_id,
                    instances.c.duration_ms,
                    instances.c.end_time,
                    task_runs.c.first_task_start,
                    task_runs.c.task_time,
                    instances.c.instance_id.in_(repeated).label("rework"),
                    instances.c.instance_id.in_(failed).label("failed"),
                )
                .select_from(instances.outerjoin(task_runs, task_runs.c.instance_id == instances.c.instance_id))
                .where(
                    instances.c.engine == scope.engine,
                    instances.c.status == "completed",
                    *_between(instances.c.end_time, scope),
                    *_key(instances.c.definition_key, scope),
                )
            )
        ).mappings()
    )


async def task_type_counts(session: AsyncSession, scope: Scope) -> tuple[int, int]:
    """(task runs completed in the period, of those user or manual tasks)."""
    human = sa.func.sum(sa.case((activities.c.activity_type.in_(HUMAN_TASK_TYPES), 1), else_=0))
    row = (
        await session.execute(
            sa.select(sa.func.count(), human).where(
                activities.c.engine == scope.engine,
                activities.c.activity_type.in_(TASK_TYPES),
                activities.c.canceled.is_(False),
                *_between(activities.c.end_time, scope),
                *_key(activities.c.definition_key, scope),
            )
        )
    ).one()
    return int(row[0] or 0), int(row[1] or 0)


async def instances_with_incidents(session: AsyncSession, scope: Scope) -> int:
    """Instances started in the period that had at least one incident."""
    started = sa.select(instances.c.instance_id).where(
        instances.c.engine == scope.engine,
        *_between(instances.c.start_time, scope),
        *_key(instances.c.definition_key, scope),
    )
    return int(
        await session.scalar(
            sa.select(sa.func.count(sa.distinct(incidents.c.instance_id))).where(
                incidents.c.engine == scope.engine, incidents.c.instance_id.in_(started)
            )
        )
        or 0
    )


async def completed_task_rows(session: AsyncSession, scope: Scope) -> list[Row]:
    """Tasks completed in the period: who, when, and their due date."""
    return list(
        (
            await session.execute(
                sa.select(tasks.c.assignee, tasks.c.completed_by, tasks.c.completed_at, tasks.c.due).where(
                    tasks.c.engine == scope.engine,
                    tasks.c.status == "completed",
                    *_between(tasks.c.completed_at, scope),
                    *_key(tasks.c.definition_key, scope),
                )
            )
        ).mappings()
    )


# ---------------------------------------------------------------- task statistics
def _task_scope(scope: Scope) -> list[sa.ColumnElement[bool]]:
    return [tasks.c.engine == scope.engine, *_key(tasks.c.definition_key, scope)]


async def open_task_counts(session: AsyncSession, scope: Scope, now: datetime) -> Row:
    """Open tasks now: unclaimed, claimed, past due."""
    return (
        (
            await session.execute(
                sa.select(
                    sa.func.sum(sa.case((tasks.c.assignee.is_(None), 1), else_=0)).label("open"),
                    sa.func.sum(sa.case((tasks.c.assignee.is_not(None), 1), else_=0)).label("claimed"),
                    sa.func.sum(sa.case((tasks.c.due < now, 1), else_=0)).label("overdue"),
                ).where(*_task_scope(scope), tasks.c.status == "open")
            )
        )
        .mappings()
        .one()
    )


async def task_period_averages(session: AsyncSession, scope: Scope) -> dict[str, Any]:
    """Tasks completed in the period and their mean completion time; mean claim wait of those claimed in it."""
    completed = (
        await session.execute(
            sa.select(sa.func.count(), sa.func.avg(tasks.c.completion_ms)).where(
                *_task_scope(scope), tasks.c.status == "completed", *_between(tasks.c.completed_at, scope)
            )
        )
    ).one()
    claim = await session.scalar(
        sa.select(sa.func.avg(tasks.c.claim_wait_ms)).where(*_task_scope(scope), *_between(tasks.c.claimed_at, scope))
    )
    return {"completed": completed[0], "average_completion": completed[1], "average_claim": claim}


async def group_task_stats(session: AsyncSession, scope: Scope, now: datetime) -> list[Row]:
    open_ = tasks.c.status == "open"
    in_period = sa.and_(
        tasks.c.status == "completed", tasks.c.completed_at >= scope.start, tasks.c.completed_at < scope.end
    )
    claimed_in_period = sa.and_(tasks.c.claimed_at >= scope.start, tasks.c.claimed_at < scope.end)
    return list(
        (
            await session.execute(
                sa.select(
                    task_groups.c.group_id,
                    sa.func.sum(sa.case((sa.and_(open_, tasks.c.assignee.is_(None)), 1), else_=0)).label("open"),
                    sa.func.sum(sa.case((sa.and_(open_, tasks.c.assignee.is_not(None)), 1), else_=0)).label("claimed"),
                    sa.func.sum(sa.case((sa.and_(open_, tasks.c.due < now), 1), else_=0)).label("overdue"),
                    sa.func.sum(sa.case((in_period, 1), else_=0)).label("completed"),
                    sa.func.avg(sa.case((in_period, tasks.c.completion_ms), else_=None)).label("average_completion"),
                    sa.func.avg(sa.case((claimed_in_period, tasks.c.claim_wait_ms), else_=None)).label("average_claim"),
                )
                .select_from(
                    task_groups.join(
                        tasks, sa.and_(tasks.c.engine == task_groups.c.engine, tasks.c.task_id == task_groups.c.task_id)
                    )
                )
                .where(*_task_scope(scope))
                .group_by(task_groups.c.group_id)
            )
        ).mappings()
    )


async def oldest_open_per_group(session: AsyncSession, scope: Scope) -> dict[str, Row]:
    ranked = (
        sa.select(
            task_groups.c.group_id,
            tasks.c.task_id,
            tasks.c.name,
            tasks.c.instance_id,
            tasks.c.created,
            sa.func.row_number()
            .over(partition_by=task_groups.c.group_id, order_by=(tasks.c.created, tasks.c.task_id))
            .label("rank"),
        )
        .select_from(
            task_groups.join(
                tasks, sa.and_(tasks.c.engine == task_groups.c.engine, tasks.c.task_id == task_groups.c.task_id)
            )
        )
        .where(*_task_scope(scope), tasks.c.status == "open")
        .subquery()
    )
    rows = await session.execute(sa.select(ranked).where(ranked.c.rank == 1))
    return {row["group_id"]: row for row in rows.mappings()}


async def assignee_task_stats(session: AsyncSession, scope: Scope) -> list[Row]:
    user = sa.func.coalesce(tasks.c.assignee, tasks.c.completed_by)
    in_period = sa.and_(
        tasks.c.status == "completed", tasks.c.completed_at >= scope.start, tasks.c.completed_at < scope.end
    )
    open_held = sa.and_(tasks.c.status == "open", tasks.c.assignee.is_not(None))
    return list(
        (
            await session.execute(
                sa.select(
                    user.label("assignee"),
                    sa.func.sum(sa.case((open_held, 1), else_=0)).label("claimed"),
                    sa.func.sum(sa.case((in_period, 1), else_=0)).label("completed"),
                    sa.func.avg(sa.case((in_period, tasks.c.completion_ms), else_=None)).label("average_completion"),
                )
                .where(*_task_scope(scope), user.is_not(None), sa.or_(open_held, in_period))
                .group_by(user)
            )
        ).mappings()
    )
