"""Timer start events: the schedules on which the embedded engine starts instances by itself.

A deployed definition's timer start events become rows of `embedded_start_timers` (so they survive a
restart); the engine's timer loop starts an instance through each one that is due (see
`EmbeddedAdapter.fire_start_timers`), then moves it to its next occurrence or drops it. As in Camunda 7:
a `timeDate` fires once at that moment, a `timeDuration` once that long after the deployment, a `timeCycle`
`R[n]/...` n times (without n: without end); occurrences missed while the gateway was down start one
instance, not one each; deploying a new version of the process replaces the schedules of the older ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from SpiffWorkflow.bpmn.specs.defaults import StartEvent
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimerEventDefinition,
)

from adapters.embedded.parsing import ParsedProcess
from gateway.errors import InvalidBpmn

WITHOUT_END = -1  # `remaining` of a cycle without a repetition count (`R/PT1H`)


@dataclass(frozen=True)
class StartTimer:
    """When a timer start event first fires, how many times in all (WITHOUT_END) and how far apart."""

    activity_id: str
    due_at: datetime
    remaining: int
    interval: timedelta | None  # None: it fires once


def start_timers(process: ParsedProcess, deployed_at: datetime) -> list[StartTimer]:
    """The schedules of the process's timer start events (not those of event subprocesses: they wait in
    their instance). InvalidBpmn when a timer start event's timer is an expression (no instance, so no
    variables to evaluate it with) or a cycle has no length."""
    schedules = []
    for spec in process.spec.task_specs.values():
        definition = getattr(spec, "event_definition", None)
        if not isinstance(spec, StartEvent) or not isinstance(definition, TimerEventDefinition):
            continue
        try:
            schedule = _schedule(spec.bpmn_id, definition, deployed_at)
        except Exception:
            raise InvalidBpmn(
                f"The timer of timer start event {spec.bpmn_id!r} is the expression {definition.expression!r}: a "
                "timer start event has no instance whose variables it could read; give an ISO 8601 date-time, "
                "duration or repeating interval"
            ) from None
        if schedule.interval is not None and schedule.interval <= timedelta(0):
            raise InvalidBpmn(
                f"The timeCycle {definition.expression!r} of timer start event {spec.bpmn_id!r} repeats every 0 s"
            )
        schedules.append(schedule)
    return [schedule for schedule in schedules if schedule.remaining != 0]


def _schedule(activity_id: str, definition: TimerEventDefinition, deployed_at: datetime) -> StartTimer:
    text = definition.expression  # as parsing._check_timer normalised it
    if isinstance(definition, CycleTimerEventDefinition):
        cycles, start, interval = TimerEventDefinition.parse_iso_recurring_interval(text)
        return StartTimer(activity_id, start, WITHOUT_END if cycles < 0 else cycles, interval)
    if isinstance(definition, DurationTimerEventDefinition):
        duration = TimerEventDefinition.get_timedelta_from_start(TimerEventDefinition.parse_iso_duration(text))
        return StartTimer(activity_id, deployed_at + duration, 1, None)
    return StartTimer(activity_id, TimerEventDefinition.get_datetime(text), 1, None)


def next_occurrence(
    due_at: datetime, remaining: int, interval: timedelta | None, now: datetime
) -> tuple[datetime, int] | None:
    """After firing at `now` a schedule due at `due_at`: its next due time and the occurrences left, or None when
    it has fired its last. Occurrences that passed unfired count as fired (one instance stands for them)."""
    if interval is None:
        return None
    passed = (now - due_at) // interval + 1  # occurrences at or before now
    if remaining != WITHOUT_END:
        remaining -= passed
        if remaining <= 0:
            return None
    return due_at + passed * interval, remaining
