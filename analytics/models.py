"""The answers of the Analytics API (API.md "Analytics"; service specification "Analytics and Statistics
Models"). Durations are milliseconds, rates are shares from 0 to 1; a value that is undefined for the data
(an average of nothing, a rate of zero cases) is null rather than 0."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from gateway.schemas import Model, RequestBody

BottleneckSeverity = Literal["low", "medium", "high", "critical"]


class StatisticsPeriod(Model):
    start_date: datetime = Field(description="Start of the period (inclusive), UTC")
    end_date: datetime = Field(description="End of the period (exclusive), UTC")
    timezone: str = Field(description="IANA time zone of `by_day` dates and the peak hour")


class Answer(Model):
    generated_at: datetime = Field(description="When this answer was computed (a cached answer keeps its time)")
    data_as_of: datetime | None = Field(
        description="The engine's history is reflected up to this time (the projection's last read of the engine); "
        "null when the engine has not been read yet"
    )


class ProcessSummary(Model):
    total_instances: int = Field(description="Instances started in the period")
    active_instances: int = Field(description="Of those, still active (not suspended)")
    completed_instances: int = Field(description="Of those, completed")
    terminated_instances: int = Field(description="Of those, terminated (by a user or the engine)")
    suspended_instances: int = Field(description="Of those, suspended")
    average_duration: float | None = Field(description="Mean duration (ms) of the completed ones")
    median_duration: int | None = Field(description="Median duration (ms, nearest rank) of the completed ones")
    total_tasks: int = Field(description="User tasks created in the period")
    completed_tasks: int = Field(description="Of those, completed")
    open_tasks: int = Field(description="Of those, still open")
    overdue_tasks: int = Field(description="Of those, open and past their due date now")
    incidents: int = Field(description="Incidents created in the period")
    resolved_incidents: int = Field(description="Of those, resolved")


class ProcessBottleneck(Model):
    process_definition_key: str
    activity_id: str
    activity_name: str | None = None
    activity_type: str = Field(description="BPMN element type (userTask, serviceTask, ...)")
    average_wait_time: float = Field(
        description="Mean time (ms) from an activity's start to its end, over its completed runs"
    )
    instances_affected: int = Field(description="Instances that passed through the activity in the period")
    severity: BottleneckSeverity = Field(
        description="z = (mean wait of the activity − mean wait of the process's other activities) / their standard "
        "deviation (population, per activity instance): critical z ≥ 3, high z ≥ 2, medium z ≥ 1, else low; when the "
        "other waits do not vary, critical if the activity waits longer than they do"
    )


class ProcessStats(Model):
    process_definition_key: str
    process_definition_name: str | None = None
    instances: int = Field(description="Instances started in the period")
    active_instances: int
    completed_instances: int
    average_duration: float | None = Field(description="Mean duration (ms) of the completed ones")
    success_rate: float | None = Field(description="completed / (completed + terminated) of the finished ones")
    tasks: int = Field(description="User tasks created in the period")
    completed_tasks: int
    open_tasks: int
    bottlenecks: list[ProcessBottleneck] = Field(description="Its activities of severity medium or worse")


class DailyStats(Model):
    date: str = Field(description="The day (YYYY-MM-DD) in the period's time zone")
    instances: int = Field(description="Instances started that day")
    completed_instances: int = Field(description="Instances completed that day")
    average_duration: float | None = Field(description="Mean duration (ms) of the instances completed that day")
    tasks_completed: int = Field(description="User tasks completed that day")
    incidents: int = Field(description="Incidents created that day")


class ProcessStatistics(Answer):
    period: StatisticsPeriod
    summary: ProcessSummary
    by_process: list[ProcessStats]
    by_day: list[DailyStats] = Field(description="Every day of the period, empty days included")


class OldestOpenTask(Model):
    id: str
    name: str | None = None
    instance_id: str | None = None
    created: datetime | None = None


class GroupTaskStats(Model):
    candidate_group: str
    open: int = Field(description="Open tasks of the group nobody has claimed")
    claimed: int = Field(description="Open tasks of the group someone holds")
    completed: int = Field(description="Tasks of the group completed in the period")
    overdue: int = Field(description="Open tasks of the group past their due date")
    average_time_to_claim: float | None = Field(
        description="Mean ms from creation to first claim (claimed in the period)"
    )
    average_time_to_complete: float | None = Field(
        description="Mean ms from creation to completion (completed in the period)"
    )
    oldest_open_task: OldestOpenTask | None = None


class AssigneeTaskStats(Model):
    assignee: str
    claimed: int = Field(description="Open tasks the user holds")
    completed: int = Field(description="Tasks the user completed in the period")
    average_time_to_complete: float | None = Field(description="Mean ms from creation to completion of those")


class TaskStatistics(Answer):
    period: StatisticsPeriod
    open: int = Field(description="Open tasks nobody has claimed (now)")
    claimed: int = Field(description="Open tasks someone holds (now)")
    completed: int = Field(description="Tasks completed in the period")
    overdue: int = Field(description="Open tasks past their due date (now)")
    average_time_to_claim: float | None = Field(
        description="Mean ms from creation to first claim, of the tasks claimed in the period"
    )
    average_time_to_complete: float | None = Field(
        description="Mean ms from creation to completion, of the tasks completed in the period"
    )
    by_candidate_group: list[GroupTaskStats]
    by_assignee: list[AssigneeTaskStats]


class ThroughputMetrics(Model):
    instances_per_hour: float = Field(description="Instances started in the period / hours in the period")
    tasks_per_hour: float = Field(description="User tasks completed in the period / hours in the period")
    peak_load_time: datetime | None = Field(
        description="Start (local time) of the clock hour in which most instances started"
    )
    capacity_utilization: float | None = Field(description="instances_per_hour / instances started in the peak hour")


class EfficiencyMetrics(Model):
    lead_time: float | None = Field(description="Mean ms from start to end of the instances completed in the period")
    cycle_time: float | None = Field(
        description="Mean ms from the start of an instance's first task to its end (same instances)"
    )
    processing_time: float | None = Field(
        description="Mean per instance of the summed durations of its tasks (same instances)"
    )
    wait_time: float | None = Field(description="lead_time − processing_time")
    automation_rate: float | None = Field(
        description="Share of the task runs completed in the period that are not user or manual tasks"
    )


class QualityMetrics(Model):
    first_pass_yield: float | None = Field(
        description="Share of the completed instances with no incident and no activity run twice"
    )
    rework_rate: float | None = Field(
        description="Share of the completed instances in which some activity ran more than once"
    )
    error_rate: float | None = Field(description="Share of the instances started in the period that had an incident")
    sla_compliance: float | None = Field(
        description="Share of the tasks with a due date completed in the period that were completed by their due date"
    )


class ResourceUtilization(Model):
    human_resources: dict[str, int] = Field(description="User tasks completed in the period, per user")


class PerformanceMetrics(Answer):
    period: StatisticsPeriod
    throughput: ThroughputMetrics
    efficiency: EfficiencyMetrics
    quality: QualityMetrics
    resource_utilization: ResourceUtilization


class Bottlenecks(Answer):
    """GET /bottlenecks: the list in `items`, wrapped so that the answer carries generated_at and data_as_of."""

    period: StatisticsPeriod
    items: list[ProcessBottleneck] = Field(
        description="Every activity with a finished run in the period, longest wait first"
    )


class ElementStatistics(Model):
    activity_id: str
    activity_name: str | None = None
    activity_type: str
    active: int = Field(description="Runs of the element active now (whenever they started)")
    completed: int = Field(description="Runs that started in the period and completed")
    canceled: int = Field(description="Runs that started in the period and ended because their instance was terminated")
    incidents: int = Field(description="Unresolved incidents at the element now")
    average_duration: float | None = Field(description="Mean ms of the completed runs")
    p50_duration: int | None = Field(description="Median ms of the completed runs (nearest rank)")
    p95_duration: int | None = Field(description="95th percentile ms of the completed runs (nearest rank)")


class DefinitionElements(Answer):
    definition_key: str
    period: StatisticsPeriod
    elements: list[ElementStatistics] = Field(description="One per BPMN element that ran or has an incident, by id")


class ClaimNextRequest(RequestBody):
    candidate_groups: list[str] | None = Field(
        None, description="The caller's groups: only tasks offered to one of them (or to the caller by name)"
    )
    definition_key: str | None = Field(None, description="Only tasks of this process")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"candidate_groups": ["sales"], "definition_key": "approval"}]}
    )
