"""Incident Center configuration: environment variables with the prefix `PM_INCIDENTS_` (see README)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.errors import ConfigError
from gateway.settings import Seconds
from incidents.models import IncidentSeverity


class IncidentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PM_INCIDENTS_", env_file=".env", extra="ignore")

    poll_interval: Seconds = Field(1.0, gt=0, description="Seconds between two reads of each engine's incidents")

    auto_retry_attempts: int = Field(0, ge=0, description="Automatic retries of a transient incident; 0 turns them off")
    auto_retry_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["failedJob", "failedExternalTask"],
        description="Incident types treated as transient (comma-separated)",
    )
    auto_retry_backoff: timedelta = Field(
        timedelta(seconds=30), gt=timedelta(0), description="Wait before the first automatic retry"
    )
    auto_retry_max_backoff: timedelta = Field(
        timedelta(hours=1), gt=timedelta(0), description="The wait doubles up to this"
    )

    escalation_timeout: timedelta = Field(
        timedelta(hours=1), ge=timedelta(0), description="Escalate incidents still open after this long; 0 never does"
    )

    default_severity: IncidentSeverity = IncidentSeverity.MEDIUM
    severity_by_type: dict[str, IncidentSeverity] = Field(
        default_factory=lambda: {
            "deadLetterJob": IncidentSeverity.HIGH,
            "unhandledBpmnError": IncidentSeverity.HIGH,
            "conditionError": IncidentSeverity.HIGH,
        },
        description="Severity of a new incident by type (JSON object); other types get default_severity",
    )
    severity_age_step: timedelta = Field(
        timedelta(hours=24), ge=timedelta(0), description="Each full step unresolved raises the severity; 0 never does"
    )

    @field_validator(
        "auto_retry_backoff", "auto_retry_max_backoff", "escalation_timeout", "severity_age_step", mode="before"
    )
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        """Durations are seconds (`3600`) or ISO 8601 (`PT1H`)."""
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
        return value

    @field_validator("auto_retry_types", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


def load_incident_settings(**overrides: Any) -> IncidentSettings:
    """Read and check the Incident Center settings now, naming the bad variable if one is wrong."""
    try:
        return IncidentSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"PM_INCIDENTS_{'.'.join(str(p) for p in error['loc']).upper()}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
