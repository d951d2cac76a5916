"""Event delivery configuration: environment variables with the prefix `PM_EVENTS_` (see README "Events")."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.settings import ConfigError

# Standard Webhooks' recommended schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_RETRY_SCHEDULE = [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]


class EventSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PM_EVENTS_", env_file=".env", extra="ignore")

    poll_interval: float = Field(
        0.1,
        gt=0,
        description="Seconds between two looks at the outbox for new events where PostgreSQL does not notify them "
        "(SQLite; a listening connection being replaced)",
    )
    batch_size: int = Field(500, ge=1, le=5000, description="Events the relays move per round")

    sse_heartbeat: float = Field(15.0, gt=0, le=15, description="Seconds between two SSE heartbeat comments")
    sse_retry_ms: int = Field(3000, ge=0, description="The `retry:` an SSE client waits before reconnecting (ms)")

    redis_stream: str = Field("pm:events", min_length=1, description="Redis stream the relay appends events to")
    redis_maxlen: int = Field(1_000_000, ge=1, description="Approximate MAXLEN of the stream (XADD MAXLEN ~)")

    webhook_timeout: float = Field(15.0, gt=0, description="Seconds a webhook receiver has to answer")
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE),
        description="Delay in seconds before each attempt (comma-separated); its length is the number of attempts",
    )
    webhook_jitter: float = Field(0.1, ge=0, le=1, description="Each retry delay varies by up to this fraction")
    webhook_concurrency: int = Field(64, ge=1, description="Webhook requests in flight at once")
    webhook_disable_after: timedelta = Field(
        timedelta(days=5), gt=timedelta(0), description="A subscription failing without a success this long is disabled"
    )
    webhook_secret_overlap: timedelta = Field(
        timedelta(hours=24), ge=timedelta(0), description="After a secret rotation, the old secret also signs this long"
    )
    allow_private_targets: bool = Field(
        False, description="Allow webhook URLs on private, loopback or link-local addresses (tests, local setups)"
    )

    change_feed_interval: float = Field(0.5, gt=0, description="Seconds between two reads of each engine's changes")
    change_feed_settle: float = Field(
        0.5, ge=0, description="Changes younger than this are read next round, so the gateway's own events land first"
    )

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [float(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _not_empty(cls, value: list[float]) -> list[float]:
        if not value or any(delay < 0 for delay in value):
            raise ValueError("needs at least one delay, none negative")
        return value

    @field_validator("webhook_disable_after", "webhook_secret_overlap", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        """Durations are seconds (`3600`) or ISO 8601 (`PT1H`)."""
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
        return value


def load_event_settings(**overrides: Any) -> EventSettings:
    """Read and check the event settings now, naming the bad variable if one is wrong."""
    try:
        return EventSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"PM_EVENTS_{'.'.join(str(p) for p in error['loc']).upper()}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
