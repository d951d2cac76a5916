"""Analytics configuration: environment variables with the prefix `PM_ANALYTICS_` (see README)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.settings import ConfigError


class AnalyticsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PM_ANALYTICS_", env_file=".env", extra="ignore")

    event_interval: float = Field(1.0, gt=0, description="Seconds between two reads of the event outbox")
    sync_interval: float = Field(
        15.0, gt=0, description="Seconds between two reads of each engine's history when no event names the engine"
    )
    task_reconcile_interval: float = Field(
        300.0,
        gt=0,
        description="Seconds between two reads of every open task of each engine (other reads take the tasks "
        "created since the last one); tasks that end without an event, interrupted by a boundary event or deleted "
        "in the engine, close at the next full read",
    )
    cache_ttl: float = Field(
        300.0, gt=0, description="Seconds a cached answer lives at most; events invalidate it sooner"
    )
    timezone: str = Field("UTC", description="Default time zone of `by_day` and peak hours (IANA name)")
    overdue_interval: float = Field(30.0, gt=0, description="Seconds between two checks for tasks past their due")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


def load_analytics_settings(**overrides: Any) -> AnalyticsSettings:
    """Read and check the analytics settings now, naming the bad variable if one is wrong."""
    try:
        return AnalyticsSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"PM_ANALYTICS_{'.'.join(str(p) for p in error['loc']).upper()}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
