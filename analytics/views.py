"""The Analytics API (API.md "Analytics") and the task queue (`POST /tasks/claim-next`). Each route hands the
request to `analytics.service`; answers come from the cache as stored JSON."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from analytics import service
from analytics.center import AnalyticsCenter
from analytics.models import (
    Bottlenecks,
    ClaimNextRequest,
    DefinitionElements,
    PerformanceMetrics,
    ProcessStatistics,
    TaskStatistics,
)
from analytics.service import Period
from gateway.api.context import Processes
from gateway.schemas import Task

router = APIRouter(prefix="/api/processes", tags=["analytics"])

PERIOD_NOTE = (
    " The period is `from` (inclusive) to `to` (exclusive): ISO dates (local midnight in `timezone`; `to` includes its "
    "day) or date-times; by default the 30 days up to now. Durations are milliseconds, rates 0..1, null when undefined."
    " Answers come from the gateway's projection of the engine's history and events (`data_as_of`) and are cached "
    "until an event changes them (`generated_at`). Needs `statistics:read`; a caller limited to tenants gets figures "
    "over their tenants' instances, runs, tasks and incidents only."
)


def analytics_center(request: Request) -> AnalyticsCenter:
    return request.app.state.analytics


async def period_of(
    center: Annotated[AnalyticsCenter, Depends(analytics_center)],
    start: Annotated[str | None, Query(alias="from", description="Start: ISO date or date-time")] = None,
    end: Annotated[
        str | None, Query(alias="to", description="End: ISO date (inclusive) or date-time (exclusive)")
    ] = None,
    timezone: Annotated[
        str | None, Query(description="IANA time zone of days and hours (PM_ANALYTICS_TIMEZONE)")
    ] = None,
) -> Period:
    return service.resolve_period(start, end, timezone, center.settings.timezone)


Center = Annotated[AnalyticsCenter, Depends(analytics_center)]
ThePeriod = Annotated[Period, Depends(period_of)]
DefinitionKey = Annotated[str | None, Query(description="Only this process definition key")]


def _json(body: bytes) -> Response:
    return Response(content=body, media_type="application/json")


@router.get(
    "/statistics",
    response_model=ProcessStatistics,
    summary="Process statistics: summary, per process, per day",
    description="Instances started in the period by status, completed durations (mean, nearest-rank median), user "
    "tasks created in it by status, incidents created in it; per process with success_rate = completed / (completed "
    "+ terminated) and its bottlenecks of severity medium or worse; per local day." + PERIOD_NOTE,
)
async def statistics(
    center: Center, processes: Processes, period: ThePeriod, definition_key: DefinitionKey = None
) -> Response:
    return _json(
        await center.service.statistics(
            service.readable_scope(processes.caller, processes.engine.name, period, definition_key), period
        )
    )


@router.get(
    "/statistics/definitions/{definition_key}/elements",
    response_model=DefinitionElements,
    summary="Per BPMN element of a process: active, completed, canceled, incidents, durations (for a heatmap)",
    description="active and incidents are now; completed, canceled and durations (mean, nearest-rank p50 and p95 of "
    "completed runs) cover the runs that started in the period." + PERIOD_NOTE,
)
async def elements(definition_key: str, center: Center, processes: Processes, period: ThePeriod) -> Response:
    return _json(
        await center.service.elements(
            service.readable_scope(processes.caller, processes.engine.name, period, definition_key), period
        )
    )


@router.get(
    "/tasks/statistics",
    response_model=TaskStatistics,
    summary="User task statistics: open, claimed, completed, overdue, claim and completion times",
    description="open, claimed and overdue (open past `due`) are now; completed and average_time_to_complete "
    "(completed − created) cover tasks completed in the period, average_time_to_claim (first claim − created) tasks "
    "claimed in it; per candidate group (with its oldest open task) and per assignee." + PERIOD_NOTE,
)
async def task_statistics(
    center: Center, processes: Processes, period: ThePeriod, definition_key: DefinitionKey = None
) -> Response:
    return _json(
        await center.service.task_statistics(
            service.readable_scope(processes.caller, processes.engine.name, period, definition_key), period
        )
    )


@router.get(
    "/performance",
    response_model=PerformanceMetrics,
    summary="Throughput, cycle, lead, processing and wait time, automation, error rate, SLA compliance",
    description="instances_per_hour = instances started / hours of the period; tasks_per_hour = user tasks completed "
    "/ hours; peak_load_time = the local clock hour with most starts; capacity_utilization = instances_per_hour / "
    "starts in that hour. Over the instances completed in the period: lead_time = mean(end − start); cycle_time = "
    "mean(end − start of the first task); processing_time = mean of the summed task durations; wait_time = lead_time − "
    "processing_time; first_pass_yield = share with no incident and no activity run twice; rework_rate = share with an "
    "activity run twice. automation_rate = share of task runs completed in the period that are not user or manual tasks; "
    "error_rate = share of instances started in the period with an incident; sla_compliance = share of tasks with a "
    "due date completed in the period by that date." + PERIOD_NOTE,
)
async def performance(
    center: Center, processes: Processes, period: ThePeriod, definition_key: DefinitionKey = None
) -> Response:
    return _json(
        await center.service.performance(
            service.readable_scope(processes.caller, processes.engine.name, period, definition_key), period
        )
    )


@router.get(
    "/bottlenecks",
    response_model=Bottlenecks,
    summary="Activities ranked by how long instances wait in them",
    description="An object `{generated_at, data_as_of, period, items}` rather than a bare array, so that this answer "
    "too says when it was computed and how fresh its data is; `items` is the list of bottlenecks. Per activity, over its runs that started in the period and completed (not canceled): average_wait_time = mean(end − "
    "start); z = (that mean − mean of the process's other runs) / standard deviation of the other runs; severity "
    "critical z ≥ 3, high z ≥ 2, medium z ≥ 1, else low (when the other runs do not vary: critical if longer, else "
    "low); instances_affected = instances with such a run. Longest wait first." + PERIOD_NOTE,
)
async def bottlenecks(
    center: Center, processes: Processes, period: ThePeriod, definition_key: DefinitionKey = None
) -> Response:
    return _json(
        await center.service.bottlenecks(
            service.readable_scope(processes.caller, processes.engine.name, period, definition_key), period
        )
    )


@router.post(
    "/tasks/claim-next",
    response_model=Task,
    responses={204: {"description": "No task the caller may claim is waiting"}},
    summary="Claim the next task of a queue: highest priority first, then oldest",
    description="Atomically claims for the caller the highest-priority, oldest unassigned open task offered to one of "
    "`candidate_groups` or to the caller by name (any unassigned task when `candidate_groups` is omitted), optionally "
    "of one process, and of the caller's tenants when they are limited to some. Concurrent callers never get the same "
    "task. Emits task.assigned (action claim).",
)
async def claim_next(processes: Processes, body: ClaimNextRequest | None = None) -> Task | Response:
    body = body or ClaimNextRequest()
    claimed = await processes.claim_next_task(body.candidate_groups, body.definition_key)
    return claimed if claimed is not None else Response(status_code=status.HTTP_204_NO_CONTENT)
