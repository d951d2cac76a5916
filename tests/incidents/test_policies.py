"""The workflow table and the severity, transient and backoff rules, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.errors import ConfigError, Conflict
from incidents import policies
from incidents.models import Action, IncidentSeverity, IncidentStatus, ResolutionType
from incidents.settings import IncidentSettings, load_incident_settings

O, A, R, E, X = IncidentStatus  # noqa: E741 - open, acknowledged, retrying, escalated, resolved: one letter each keeps the table a matrix

# The workflow as the issue states it; every (action, status) pair not listed must be refused.
EXPECTED = {
    Action.ACKNOWLEDGED: {O: A},
    Action.ASSIGNED: {O: A, A: A, R: R, E: E},
    Action.COMMENTED: {O: O, A: A, R: R, E: E, X: X},
    Action.RETRIED: {O: R, A: R, E: R},
    Action.RECURRED: {O: O, A: A, R: O, E: E, X: O},
    Action.RESOLVED: {O: X, A: X, R: X, E: X},
    Action.ESCALATED: {O: E, A: E, R: E, E: E},
    Action.SEVERITY_CHANGED: {O: O, A: A, R: R, E: E},
}
PAIRS = [(action, status) for action in EXPECTED for status in IncidentStatus]


@pytest.mark.parametrize(("action", "status"), PAIRS, ids=[f"{a.value}-from-{s.value}" for a, s in PAIRS])
def test_every_transition_is_allowed_or_refused_with_409(action: Action, status: IncidentStatus) -> None:
    if status in EXPECTED[action]:
        assert policies.transition("inc-1", status, action) is EXPECTED[action][status]
    else:
        with pytest.raises(Conflict) as refused:
            policies.transition("inc-1", status, action)
        assert refused.value.status == 409
        assert f"Incident inc-1 is {status.value}; it can be {action.value} only when" in refused.value.detail


@pytest.mark.parametrize("rule", policies.RULES, ids=lambda rule: rule.action.value)
def test_every_rule_narrows_the_workflow_table(rule: policies.Rule) -> None:
    """A rule may forbid what the table allows, never allow what it forbids or lead elsewhere."""
    assert rule.from_states <= set(policies.TRANSITIONS[rule.action])
    assert {policies.TRANSITIONS[rule.action][status] for status in rule.from_states} <= rule.to_states


@pytest.mark.parametrize("status", list(IncidentStatus), ids=lambda s: s.value)
def test_the_policies_retry_automatically_only_open_incidents(status: IncidentStatus) -> None:
    assert policies.AUTOMATIC_RETRY.applies(status) is (status is O)
    assert policies.AUTOMATIC_RETRY.to_states == {R}


@pytest.mark.parametrize("status", list(IncidentStatus), ids=lambda s: s.value)
def test_the_policies_escalate_only_open_incidents(status: IncidentStatus) -> None:
    assert policies.AUTOMATIC_ESCALATION.applies(status) is (status is O)
    assert policies.AUTOMATIC_ESCALATION.to_states == {E}


@pytest.mark.parametrize("resolution", list(ResolutionType), ids=lambda r: r.value)
def test_a_recurrence_reopens_a_resolved_incident_only_after_a_retry_or_an_external_fix(
    resolution: ResolutionType,
) -> None:
    reopens = resolution in (ResolutionType.RETRY, ResolutionType.EXTERNAL)
    assert policies.REOPEN.applies(X, resolution) is reopens
    assert policies.takes_recurrence(X, resolution) is reopens
    assert policies.REOPEN.to_states == {O}


@pytest.mark.parametrize("status", [O, A, R, E], ids=lambda s: s.value)
def test_an_unresolved_incident_always_takes_a_recurrence(status: IncidentStatus) -> None:
    assert policies.takes_recurrence(status, None)
    assert not policies.REOPEN.applies(status, None)  # the rule is about resolved records only


def test_severity_comes_from_the_type_and_rises_with_age_up_to_critical() -> None:
    settings = IncidentSettings(severity_age_step=timedelta(hours=1))
    assert policies.severity(settings, "failedJob", timedelta(minutes=5)) is IncidentSeverity.MEDIUM
    assert policies.severity(settings, "deadLetterJob", timedelta(0)) is IncidentSeverity.HIGH
    assert policies.severity(settings, "failedJob", timedelta(hours=1)) is IncidentSeverity.HIGH
    assert policies.severity(settings, "failedJob", timedelta(hours=30)) is IncidentSeverity.CRITICAL
    assert (
        policies.severity(IncidentSettings(severity_age_step=0), "failedJob", timedelta(days=9))
        is IncidentSeverity.MEDIUM
    )


def test_auto_retry_backoff_doubles_up_to_the_maximum_and_stops_after_the_attempts() -> None:
    settings = IncidentSettings(
        auto_retry_attempts=5, auto_retry_backoff=timedelta(seconds=10), auto_retry_max_backoff=timedelta(seconds=30)
    )
    now = datetime(2026, 11, 22, 10, tzinfo=UTC)
    delays = [policies.next_auto_retry(settings, "failedJob", attempt, now) for attempt in range(6)]
    assert [d - now for d in delays[:5] if d] == [timedelta(seconds=s) for s in (10, 20, 30, 30, 30)]
    assert delays[5] is None
    assert policies.next_auto_retry(settings, "conditionError", 0, now) is None  # not transient
    assert policies.next_auto_retry(IncidentSettings(), "failedJob", 0, now) is None  # off by default


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PM_INCIDENTS_AUTO_RETRY_TYPES", "failedJob, deadLetterJob")
    monkeypatch.setenv("PM_INCIDENTS_ESCALATION_TIMEOUT", "PT30M")
    monkeypatch.setenv("PM_INCIDENTS_SEVERITY_BY_TYPE", '{"failedJob": "low"}')
    monkeypatch.setenv("PM_INCIDENTS_SEVERITY_AGE_STEP", "7200")
    settings = load_incident_settings()
    assert settings.severity_age_step == timedelta(hours=2)
    assert settings.auto_retry_types == ["failedJob", "deadLetterJob"]
    assert settings.escalation_timeout == timedelta(minutes=30)
    assert settings.severity_by_type == {"failedJob": IncidentSeverity.LOW}
    assert settings.poll_interval == 1.0


def test_a_bad_setting_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PM_INCIDENTS_POLL_INTERVAL", "0")
    with pytest.raises(ConfigError, match="PM_INCIDENTS_POLL_INTERVAL"):
        load_incident_settings()
