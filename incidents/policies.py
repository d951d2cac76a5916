"""The incident workflow, declared once: which action may happen in which status and where it leads,
the narrower rules on top of it, and the rules for severity, transient types and automatic-retry backoff.

`TRANSITIONS` is what anyone may do; each `Rule` narrows one action for one kind of change, declaring its
FROM and TO statuses beside the table (Prefect's orchestration rules): the automatic actions of the policies
act only on OPEN records, and a recurrence reopens a resolved record only after some resolutions. The service
asks the rules before it acts and the repository derives its queries from them, so a rule changes here only.
`transition` is the one place an illegal transition becomes a 409.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
        # itself (the rule REOPEN below) reopens a resolved record.
        Action.RECURRED: {OPEN: OPEN, ACKNOWLEDGED: ACKNOWLEDGED, RETRYING: OPEN, ESCALATED: ESCALATED, RESOLVED: OPEN},
        Action.RESOLVED: {status: RESOLVED for status in UNRESOLVED},
        Action.ESCALATED: {status: ESCALATED for status in UNRESOLVED},
        Action.SEVERITY_CHANGED: {status: status for status in UNRESOLVED},
    }
)


@dataclass(frozen=True)
class Rule:
    """A narrower form of one action of `TRANSITIONS`: it applies from `from_states` only, leading to
    `to_states` (each a part of what the table allows for `action`), and, for a RESOLVED record, only when it
    was resolved in one of `after_resolutions` (None: whatever the resolution)."""

    action: Action
    from_states: frozenset[IncidentStatus]
    to_states: frozenset[IncidentStatus]
    after_resolutions: frozenset[ResolutionType] | None = None

    def applies(self, status: IncidentStatus, resolution: ResolutionType | None = None) -> bool:
        if status not in self.from_states:
            return False
        return status is not RESOLVED or self.after_resolutions is None or resolution in self.after_resolutions


# The policies' automatic retry acts only on an open record: once a person acknowledged, escalated or retried
# it, the person decides.
AUTOMATIC_RETRY = Rule(Action.RETRIED, from_states=frozenset({OPEN}), to_states=frozenset({RETRYING}))
# The policies escalate only a record nobody acknowledged (still open after the escalation timeout).
AUTOMATIC_ESCALATION = Rule(Action.ESCALATED, from_states=frozenset({OPEN}), to_states=frozenset({ESCALATED}))
# A resolved record whose engine incident merely went away (a retry ran, or it was fixed outside the gateway) is
# reopened when the same place fails again; one a person closed (manual, skip, modify, abort) is not: a new
# failure there is a new incident.
REOPEN = Rule(
    Action.RECURRED,
    from_states=frozenset({RESOLVED}),
    to_states=frozenset({OPEN}),
    after_resolutions=frozenset({ResolutionType.RETRY, ResolutionType.EXTERNAL}),
)

RULES = (AUTOMATIC_RETRY, AUTOMATIC_ESCALATION, REOPEN)


def allows(status: IncidentStatus, action: Action) -> bool:
    return status in TRANSITIONS[action]


def statuses_allowing(action: Action) -> frozenset[IncidentStatus]:
    """Every status in which `action` may happen (for queries that select candidates for it)."""
    return frozenset(TRANSITIONS[action])


def takes_recurrence(status: IncidentStatus, resolution: ResolutionType | None) -> bool:
    """Whether a new failure at this record's place recurs on it (rather than being a new incident): an
    unresolved record always, a resolved one when `REOPEN` applies."""
    return status is not RESOLVED or REOPEN.applies(status, resolution)


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
