"""How the gateway finds adapters: entry points of the group `pm_gateway.adapters`, loaded only when configured."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.engines.port import EngineAdapter
    from gateway.settings import EngineConfig

ADAPTER_ENTRY_POINTS = "pm_gateway.adapters"


def installed_adapters() -> dict[str, EntryPoint]:
    """Adapter entry points by engine type (not loaded: a broken optional adapter harms no other engine)."""
    return {entry.name: entry for entry in entry_points(group=ADAPTER_ENTRY_POINTS)}


def adapter_class(config: EngineConfig) -> type[EngineAdapter]:
    """The adapter class for an engine's `type`. Raises ConfigError when no installed adapter has that type."""
    adapters = installed_adapters()
    if config.type not in adapters:
        raise ConfigError(
            f"invalid configuration: engine {config.name!r}: type {config.type!r} has no installed adapter; "
            f"installed: {', '.join(sorted(adapters))}"
        )
    return adapters[config.type].load()


def adapter_options(cls: type[EngineAdapter], config: EngineConfig, field: str) -> BaseModel:
    """Check an engine's configuration against what its adapter declares; `field` names it in errors.

    Returns the adapter's options (its `options_schema` validated from `config.options`). Raises ConfigError
    naming the field: a missing `url` for an adapter that needs one, or an invalid option.
    """
    if cls.needs_url and not config.url:
        raise ConfigError(f"invalid configuration: {field}: engine {config.name!r} of type {config.type} needs a url")
    try:
        return cls.options_schema.model_validate(config.options)
    except ValidationError as exc:
        problems = "; ".join(
            f"{field}.options.{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
