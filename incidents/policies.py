"""The incident workflow, declared once: which action may happen in which status and where it leads,
and the rules for severity, transient types and automatic-retry backoff.

`transition` is the one place an illegal transition becomes a 409.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType

from gateway.errors import Conflict
from incidents.models import UNRESOLVED, Action, IncidentSeverity, IncidentStatus, ResolutionType
from incidents.settings import IncidentSettings

OPEN, ACKNOWLEDGED, RETRYING, ESCALATED, RESOLVED = IncidentStatus

# action -> {status it may happen in: status it leads to}
TRANSITIONS: Mapping[Action, Mapping[IncidentStatus, IncidentStatus]] = MappingProxyType(
    {
        Action.ACKNOWLEDGED: {OPEN: ACKNOWLEDGED},
        Action.ASSIGNED: {OPEN: ACKNOWLEDGED, ACKNOWLEDGED: ACKNOWLEDGED, RETRYING: RETRYING, ESCALATED: ESCALATED},
        Action.COMMENTED: {status: status for status in IncidentStatus},
        Action.RETRIED: {OPEN: RETRYING, ACKNOWLEDGED: RETRYING, ESCALATED: RETRYING},
        # The engine failed again: a failed retry reopens; a failure after the engine incident went away by
        # itself (see REOPENING_RESOLUTIONS) reopens a resolved record.
        Action.RECURRED: {OPEN: OPEN, ACKNOWLEDGED: ACKNOWLEDGED, RETRYING: OPEN, ESCALATED: ESCALATED, RESOLVED: OPEN},
        Action.RESOLVED: {status: RESOLVED for status in UNRESOLVED},
        Action.ESCALATED: {status: ESCALATED for status in UNRESOLVED},
        Action.SEVERITY_CHANGED: {status: status for status in UNRESOLVED},
    }
)

# A resolved record whose engine incident merely went away is reopened when the same place fails again;
# one a person closed (manual, skip, modify, abort) is not: a new failure there is a new incident.
REOPENING_RESOLUTIONS = frozenset({ResolutionType.RETRY, ResolutionType.EXTERNAL})


def allows(status: IncidentStatus, action: Action) -> bool:
    return status in TRANSITIONS[action]


def transition(incident_id: str, status: IncidentStatus, action: Action) -> IncidentStatus:
    """The status after `action`, or a Conflict naming the statuses in which it is allowed."""
    allowed = TRANSITIONS[action]
    if status not in allowed:
        names = [s.value for s in allowed]
        when = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        raise Conflict(f"Incident {incident_id} is {status.value}; it can be {action.value} only when {when}")
    return allowed[status]


def resolution_when_engine_incident_gone(status: IncidentStatus) -> ResolutionType:
    """Why a record resolves when its last engine incident disappears."""
    return ResolutionType.RETRY if status is RETRYING else ResolutionType.EXTERNAL


def severity(settings: IncidentSettings, incident_type: str, age: timedelta) -> IncidentSeverity:
    """The type's severity, raised one level per full `severity_age_step` the incident stays unresolved."""
    base = settings.severity_by_type.get(incident_type, settings.default_severity)
    steps = int(age / settings.severity_age_step) if settings.severity_age_step else 0
    levels = list(IncidentSeverity)
    return levels[min(base.rank + max(steps, 0), len(levels) - 1)]


def is_transient(settings: IncidentSettings, incident_type: str) -> bool:
    return settings.auto_retry_attempts > 0 and incident_type in settings.auto_retry_types


def next_auto_retry(
    settings: IncidentSettings, incident_type: str, attempts_made: int, now: datetime
) -> datetime | None:
    """When the auto-retry policy retries next: backoff doubling per attempt; None once attempts are used up."""
    if not is_transient(settings, incident_type) or attempts_made >= settings.auto_retry_attempts:
        return None
    delay = min(settings.auto_retry_backoff * 2**attempts_made, settings.auto_retry_max_backoff)
    return now + delay
