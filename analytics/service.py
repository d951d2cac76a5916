"""The Analytics answers, computed from the projection (`analytics.repository`) and cached
(`analytics.cache`), and the task queue (`claim_next`).

Formulas (durations in ms, rates 0..1, null when the data leaves a value undefined):
- Statistics, per period [from, to): instances started in it by their current status; average and median
  (nearest rank: the ⌈n/2⌉-th smallest) duration of those completed; user tasks created in it by status,
  overdue = open and past due now; incidents created in it. success_rate = completed / (completed +
  terminated). by_day: per local day, instances started, instances completed and their mean duration, user
  tasks completed, incidents created.
- Bottlenecks: per activity, over its runs that started in the period and completed (not canceled): average_wait_time = mean(end −
  start); z = (that mean − mean of the process's other runs) / population standard deviation of the other runs;
  critical z ≥ 3, high z ≥ 2, medium z ≥ 1, low otherwise; when the other runs do not vary (σ = 0), critical if
  the activity's mean is above theirs, else low.
- Performance: see `analytics.models.PerformanceMetrics` (each field's description is its formula).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel

from analytics import repository
from analytics.cache import StatisticsCache
from analytics.models import (
    AssigneeTaskStats,
    Bottlenecks,
    DailyStats,
    DefinitionElements,
    EfficiencyMetrics,
    ElementStatistics,
    GroupTaskStats,
    OldestOpenTask,
    PerformanceMetrics,
    ProcessBottleneck,
    ProcessStatistics,
    ProcessStats,
    ProcessSummary,
    QualityMetrics,
    ResourceUtilization,
    StatisticsPeriod,
    TaskStatistics,
    ThroughputMetrics,
)
from analytics.repository import Scope
from analytics.tables import SLOT_SECONDS
from gateway.auth import Caller
from gateway.db import Database, utcnow
from gateway.errors import Forbidden, ValidationFailed
from gateway.uow import reading

DEFAULT_DAYS = 30
MAX_DAYS = 400


# ---------------------------------------------------------------- periods
@dataclass(frozen=True)
class Period:
    """[start, end) in UTC and the time zone its days and hours are counted in."""

    start: datetime
    end: datetime
    zone: ZoneInfo
    asked: str = ""  # the period as the request gave it: the cache key, so "the last 30 days" is one entry

    @property
    def public(self) -> StatisticsPeriod:
        return StatisticsPeriod(start_date=self.start, end_date=self.end, timezone=self.zone.key)

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    def days(self) -> list[date]:
        first = self.start.astimezone(self.zone).date()
        last = (self.end - timedelta(microseconds=1)).astimezone(self.zone).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    def day_starts(self, days: list[date]) -> list[int]:
        """The slot each day starts in (a day begins on a slot boundary in every time zone)."""
        return [int(datetime.combine(day, time(), self.zone).timestamp()) // SLOT_SECONDS for day in days]


def readable_scope(caller: Caller, engine: str, period: Period, definition_key: str | None) -> Scope:
    """What `caller` may read statistics of: `statistics:read` (for `definition_key` when the grant is scoped by
    key). A caller limited to tenants gets figures over their tenants' instances, activity runs, tasks and
    incidents only (rows without a tenant count only for callers of every tenant)."""
    caller.require("statistics:read", definition_key)
    if definition_key is None and not caller.may("statistics:read"):
        raise Forbidden("Your roles grant 'statistics:read' only for some process definitions; give definition_key")
    return Scope(engine, period.start, period.end, definition_key, caller.tenants)


def resolve_period(start: str | None, end: str | None, timezone: str | None, default_zone: str) -> Period:
    """The period of `from`/`to`: ISO dates (local midnight in `timezone`; `to` takes its whole day) or
    date-times (without an offset: local time). Defaults: to = now, from = to − 30 days. 422 when a value is
    malformed, the zone unknown, from ≥ to, or the period longer than 400 days."""
    try:
        zone = ZoneInfo(timezone or default_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"Unknown time zone {timezone!r}; use an IANA name such as Europe/Berlin") from None
    until = _moment("to", end, zone) if end else utcnow()
    since = _moment("from", start, zone) if start else until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise ValidationFailed(
            f"The period is empty: from ({since.isoformat()}) must be before to ({until.isoformat()})"
        )
    if until - since > timedelta(days=MAX_DAYS):
        raise ValidationFailed(f"The period is longer than {MAX_DAYS} days; ask for a shorter one")
    return Period(start=since, end=until, zone=zone, asked=f"{start or ''}..{end or 'now'}")


def _moment(name: str, text: str, zone: ZoneInfo) -> datetime:
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if name == "to":
                day += timedelta(days=1)
            return datetime.combine(day, time(), zone).astimezone(ZoneInfo("UTC"))
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(
            f"`{name}` is not an ISO 8601 date or date-time: {text!r}",
            errors=[{"loc": ["query", name], "msg": "invalid date"}],
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(ZoneInfo("UTC"))


def _mean(total: float | None, count: int | None) -> float | None:
    return None if not count else float(total or 0) / count


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


# ---------------------------------------------------------------- bottlenecks
def rank_bottlenecks(rows: list[Any]) -> list[ProcessBottleneck]:
    """Severity of each activity from its mean wait against the process's other runs (module docstring)."""
    per_process: dict[str, list[Any]] = {}
    for row in rows:
        per_process.setdefault(row["definition_key"], []).append(row)
    found = []
    for key, activities in per_process.items():
        runs = sum(a["runs"] for a in activities)
        total = sum(float(a["total"] or 0) for a in activities)
        squares = sum(float(a["squares"] or 0) for a in activities)
        for activity in activities:
            mean = float(activity["total"] or 0) / activity["runs"]
            others = runs - activity["runs"]
            severity = "low"
            if others > 0:
                other_mean = (total - float(activity["total"] or 0)) / others
                variance = max(0.0, (squares - float(activity["squares"] or 0)) / others - other_mean**2)
                deviation = math.sqrt(variance)
                if deviation < 1e-9:
                    severity = "critical" if mean > other_mean else "low"
                else:
                    z = (mean - other_mean) / deviation
                    severity = "critical" if z >= 3 else "high" if z >= 2 else "medium" if z >= 1 else "low"
            found.append(
                ProcessBottleneck(
                    process_definition_key=key,
                    activity_id=activity["activity_id"],
                    activity_name=activity["activity_name"],
                    activity_type=activity["activity_type"],
                    average_wait_time=mean,
                    instances_affected=activity["instances"],
                    severity=severity,
                )
            )
    return sorted(found, key=lambda b: (-b.average_wait_time, b.process_definition_key, b.activity_id))


# ---------------------------------------------------------------- the service
class AnalyticsService:
    """Computes each answer on a cache miss; `now` is read once per answer."""

    def __init__(self, db: Database, cache: StatisticsCache, default_zone: str) -> None:
        self.db = db
        self.cache = cache
        self.default_zone = default_zone

    async def _cached(
        self,
        endpoint: str,
        scope: Scope,
        period: Period,
        compute: Callable[[datetime], Awaitable[BaseModel]],
        **extra: Any,
    ) -> bytes:
        tenants = None if scope.tenants is None else sorted(scope.tenants)  # one entry per tenant set
        params = {"period": period.asked, "tz": period.zone.key, "tenants": tenants, **extra}

        async def answer() -> bytes:
            return (await compute(utcnow())).model_dump_json().encode()

        return await self.cache.get_or_compute(endpoint, scope.engine, scope.definition_key, params, answer)

    async def _as_of(self, session: Any, engine: str) -> datetime | None:
        state = await repository.get_state(session, f"engine:{engine}")
        return state["synced_at"] if state else None

    # ------------------------------------------------------------ GET /statistics
    async def statistics(self, scope: Scope, period: Period) -> bytes:
        return await self._cached("statistics", scope, period, lambda now: self.compute_statistics(scope, period, now))

    async def compute_statistics(self, scope: Scope, period: Period, now: datetime) -> ProcessStatistics:
        async with reading(self.db) as session:
            as_of = await self._as_of(session, scope.engine)
            counts = await repository.instance_counts(session, scope)
            completed_total = sum(r["count"] for r in counts if r["status"] == "completed")
            median = await repository.median_completed_duration(session, scope, completed_total)
            task_rows = await repository.task_counts(session, scope, now)
            incidents, resolved = await repository.incident_counts(session, scope)
            waits = await repository.activity_waits(session, scope)
            days = period.day_starts(period.days())  # by_day needs sums per local day, not per slot
            started = await repository.started_per_slot(session, scope, days)
            completed = await repository.completed_per_slot(session, scope, days)
            tasks_done = await repository.tasks_completed_per_slot(session, scope, days)
            incident_times = await repository.incident_times(session, scope)

        def instances(key: str | None, *statuses: str) -> tuple[int, int]:
            rows = [
                r
                for r in counts
                if (key is None or r["definition_key"] == key) and (not statuses or r["status"] in statuses)
            ]
            return sum(r["count"] for r in rows), sum(int(r["duration_sum"] or 0) for r in rows)

        def tasks(key: str | None, *statuses: str) -> int:
            return sum(
                r["count"]
                for r in task_rows
                if (key is None or r["definition_key"] == key) and (not statuses or r["status"] in statuses)
            )

        completed_count, completed_sum = instances(None, "completed")
        summary = ProcessSummary(
            total_instances=instances(None)[0],
            active_instances=instances(None, "active")[0],
            completed_instances=completed_count,
            terminated_instances=instances(None, *repository.TERMINATED)[0],
            suspended_instances=instances(None, "suspended")[0],
            average_duration=_mean(completed_sum, completed_count),
            median_duration=median,
            total_tasks=tasks(None),
            completed_tasks=tasks(None, "completed"),
            open_tasks=tasks(None, "open"),
            overdue_tasks=sum(int(r["overdue"] or 0) for r in task_rows),
            incidents=incidents,
            resolved_incidents=resolved,
        )
        bottlenecks = rank_bottlenecks(waits)
        names = {r["definition_key"]: r["definition_name"] for r in counts}
        by_process = []
        for key in sorted(
            {r["definition_key"] for r in counts} | {r["definition_key"] for r in task_rows if r["definition_key"]}
        ):
            done, done_sum = instances(key, "completed")
            finished = done + instances(key, *repository.TERMINATED)[0]
            by_process.append(
                ProcessStats(
                    process_definition_key=key,
                    process_definition_name=names.get(key),
                    instances=instances(key)[0],
                    active_instances=instances(key, "active")[0],
                    completed_instances=done,
                    average_duration=_mean(done_sum, done),
                    success_rate=_share(done, finished),
                    tasks=tasks(key),
                    completed_tasks=tasks(key, "completed"),
                    open_tasks=tasks(key, "open"),
                    bottlenecks=[b for b in bottlenecks if b.process_definition_key == key and b.severity != "low"],
                )
            )
        return ProcessStatistics(
            generated_at=utcnow(),
            data_as_of=as_of,
            period=period.public,
            summary=summary,
            by_process=by_process,
            by_day=self._by_day(period, started, completed, tasks_done, incident_times),
        )

    @staticmethod
    def _by_day(
        period: Period,
        started: list[tuple[int, int]],
        completed: list[tuple[int, int, int]],
        tasks_done: list[tuple[int, int]],
        incident_times: list[datetime],
    ) -> list[DailyStats]:
        days = period.days()
        starts = period.day_starts(days)
        totals = [{"instances": 0, "completed": 0, "duration": 0, "tasks": 0, "incidents": 0} for _ in days]

        def add(slot: int | None, field: str, amount: int) -> None:
            index = bisect.bisect_right(starts, slot) - 1 if slot is not None else -1
            if 0 <= index < len(days):
                totals[index][field] += amount

        for slot, count in started:
            add(slot, "instances", count)
        for slot, count, duration in completed:
            add(slot, "completed", count)
            add(slot, "duration", duration)
        for slot, count in tasks_done:
            add(slot, "tasks", count)
        for moment in incident_times:
            add(int(moment.timestamp()) // SLOT_SECONDS, "incidents", 1)
        return [
            DailyStats(
                date=day.isoformat(),
                instances=total["instances"],
                completed_instances=total["completed"],
                average_duration=_mean(total["duration"], total["completed"]),
                tasks_completed=total["tasks"],
                incidents=total["incidents"],
            )
            for day, total in zip(days, totals, strict=True)
        ]

    # ------------------------------------------------------------ GET /bottlenecks
    async def bottlenecks(self, scope: Scope, period: Period) -> bytes:
        return await self._cached("bottlenecks", scope, period, lambda now: self.compute_bottlenecks(scope, period))

    async def compute_bottlenecks(self, scope: Scope, period: Period) -> Bottlenecks:
        async with reading(self.db) as session:
            as_of = await self._as_of(session, scope.engine)
            waits = await repository.activity_waits(session, scope)
        return Bottlenecks(generated_at=utcnow(), data_as_of=as_of, period=period.public, items=rank_bottlenecks(waits))

    # ------------------------------------------------------------ GET /statistics/definitions/{key}/elements
    async def elements(self, scope: Scope, period: Period) -> bytes:
        return await self._cached("elements", scope, period, lambda now: self.compute_elements(scope, period))

    async def compute_elements(self, scope: Scope, period: Period) -> DefinitionElements:
        async with reading(self.db) as session:
            as_of = await self._as_of(session, scope.engine)
            counted = {r["activity_id"]: r for r in await repository.element_counts(session, scope)}
            active = {r["activity_id"]: r for r in await repository.active_elements(session, scope)}
            percentiles = await repository.element_percentiles(session, scope, (50, 95))
            failing = await repository.open_incidents_per_activity(session, scope)
        elements = []
        for activity_id in sorted(set(counted) | set(active) | set(failing)):
            row = counted.get(activity_id) or active.get(activity_id)
            done = int(counted[activity_id]["completed"] or 0) if activity_id in counted else 0
            elements.append(
                ElementStatistics(
                    activity_id=activity_id,
                    activity_name=row["activity_name"] if row else failing[activity_id][0],
                    activity_type=row["activity_type"] if row else "unknown",
                    active=int(active[activity_id]["active"]) if activity_id in active else 0,
                    completed=done,
                    canceled=int(counted[activity_id]["canceled"] or 0) if activity_id in counted else 0,
                    incidents=failing.get(activity_id, (None, 0))[1],
                    average_duration=_mean(counted[activity_id]["duration_sum"], done) if done else None,
                    p50_duration=percentiles.get((activity_id, 50)),
                    p95_duration=percentiles.get((activity_id, 95)),
                )
            )
        return DefinitionElements(
            generated_at=utcnow(),
            data_as_of=as_of,
            definition_key=scope.definition_key or "",
            period=period.public,
            elements=elements,
        )

    # ------------------------------------------------------------ GET /tasks/statistics
    async def task_statistics(self, scope: Scope, period: Period) -> bytes:
        return await self._cached(
            "task_statistics", scope, period, lambda now: self.compute_task_statistics(scope, period, now)
        )

    async def compute_task_statistics(self, scope: Scope, period: Period, now: datetime) -> TaskStatistics:
        async with reading(self.db) as session:
            as_of = await self._as_of(session, scope.engine)
            open_now = await repository.open_task_counts(session, scope, now)
            averages = await repository.task_period_averages(session, scope)
            groups = await repository.group_task_stats(session, scope, now)
            oldest = await repository.oldest_open_per_group(session, scope)
            users = await repository.assignee_task_stats(session, scope)

        def optional(value: Any) -> float | None:
            return None if value is None else float(value)

        return TaskStatistics(
            generated_at=utcnow(),
            data_as_of=as_of,
            period=period.public,
            open=int(open_now["open"] or 0),
            claimed=int(open_now["claimed"] or 0),
            completed=int(averages["completed"] or 0),
            overdue=int(open_now["overdue"] or 0),
            average_time_to_claim=optional(averages["average_claim"]),
            average_time_to_complete=optional(averages["average_completion"]),
            by_candidate_group=[
                GroupTaskStats(
                    candidate_group=g["group_id"],
                    open=int(g["open"] or 0),
                    claimed=int(g["claimed"] or 0),
                    completed=int(g["completed"] or 0),
                    overdue=int(g["overdue"] or 0),
                    average_time_to_claim=optional(g["average_claim"]),
                    average_time_to_complete=optional(g["average_completion"]),
                    oldest_open_task=(
                        OldestOpenTask(
                            id=oldest[g["group_id"]]["task_id"],
                            name=oldest[g["group_id"]]["name"],
                            instance_id=oldest[g["group_id"]]["instance_id"],
                            created=oldest[g["group_id"]]["created"],
                        )
                        if g["group_id"] in oldest
                        else None
                    ),
                )
                for g in sorted(groups, key=lambda g: g["group_id"])
            ],
            by_assignee=[
                AssigneeTaskStats(
                    assignee=u["assignee"],
                    claimed=int(u["claimed"] or 0),
                    completed=int(u["completed"] or 0),
                    average_time_to_complete=optional(u["average_completion"]),
                )
                for u in sorted(users, key=lambda u: u["assignee"])
            ],
        )

    # ------------------------------------------------------------ GET /performance
    async def performance(self, scope: Scope, period: Period) -> bytes:
        return await self._cached("performance", scope, period, lambda now: self.compute_performance(scope, period))

    async def compute_performance(self, scope: Scope, period: Period) -> PerformanceMetrics:
        async with reading(self.db) as session:
            as_of = await self._as_of(session, scope.engine)
            started = await repository.started_per_slot(session, scope)
            work = await repository.completed_instance_work(session, scope)
            task_runs, human_runs = await repository.task_type_counts(session, scope)
            failed = await repository.instances_with_incidents(session, scope)
            done_tasks = await repository.completed_task_rows(session, scope)
        started_total = sum(count for _, count in started)
        per_hour: Counter[datetime] = Counter()
        for slot, count in started:
            local = datetime.fromtimestamp(slot * SLOT_SECONDS, period.zone)
            per_hour[local.replace(minute=0, second=0, microsecond=0)] += count
        peak = min(per_hour, key=lambda hour: (-per_hour[hour], hour)) if per_hour else None
        instances_per_hour = started_total / period.hours
        completed = len(work)
        lead = _mean(sum(w["duration_ms"] or 0 for w in work), completed)
        processing = _mean(sum(int(w["task_time"] or 0) for w in work), completed)
        cycles = [
            (w["end_time"] - w["first_task_start"]).total_seconds() * 1000
            for w in work
            if w["first_task_start"] is not None
        ]
        rework = sum(1 for w in work if w["rework"])
        clean = sum(1 for w in work if not w["rework"] and not w["failed"])
        with_due = [t for t in done_tasks if t["due"] is not None]
        users = Counter(t["assignee"] or t["completed_by"] for t in done_tasks if (t["assignee"] or t["completed_by"]))
        return PerformanceMetrics(
            generated_at=utcnow(),
            data_as_of=as_of,
            period=period.public,
            throughput=ThroughputMetrics(
                instances_per_hour=instances_per_hour,
                tasks_per_hour=len(done_tasks) / period.hours,
                peak_load_time=peak,
                capacity_utilization=instances_per_hour / per_hour[peak] if peak is not None else None,
            ),
            efficiency=EfficiencyMetrics(
                lead_time=lead,
                cycle_time=_mean(sum(cycles), len(cycles)),
                processing_time=processing,
                wait_time=None if lead is None or processing is None else lead - processing,
                automation_rate=_share(task_runs - human_runs, task_runs),
            ),
            quality=QualityMetrics(
                first_pass_yield=_share(clean, completed),
                rework_rate=_share(rework, completed),
                error_rate=_share(failed, started_total),
                sla_compliance=_share(sum(1 for t in with_due if t["completed_at"] <= t["due"]), len(with_due)),
            ),
            resource_utilization=ResourceUtilization(human_resources=dict(sorted(users.items()))),
        )
