"""All configuration, in one place: environment variables with the prefix `PM_` (see README)."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.engines.plugins import adapter_class, adapter_options
from gateway.errors import ConfigError

_TIMEDELTA = TypeAdapter(timedelta)


def duration_in(unit_seconds: float) -> Any:
    """A validator for duration settings: a number is already in the setting's unit (seconds, or hours for
    `*_hours`); a string may also be ISO 8601 (`PT30S`, `PT1H`, `P1D`)."""

    def parse(value: Any) -> Any:
        if isinstance(value, str) and value.strip().upper().startswith(("P", "-P")):
            return _TIMEDELTA.validate_python(value.strip()).total_seconds() / unit_seconds
        return value

    return BeforeValidator(parse)


Seconds = Annotated[float, duration_in(1)]
Hours = Annotated[float, duration_in(3600)]


def _port_in_range(port: int) -> int:
    if not 1 <= port <= 65535:
        raise ValueError("the port must be a number from 1 to 65535")
    return port


Port = Annotated[int, AfterValidator(_port_in_range)]


def _url_port_in_range(url: str | None) -> str | None:
    """A URL whose explicit port, if any, is 1..65535 (a typo like `:80800` stops the start, not a call)."""
    if url:
        try:
            port = urlsplit(url).port
        except ValueError:
            raise ValueError("the port must be a number from 1 to 65535") from None
        if port == 0:
            raise ValueError("the port must be a number from 1 to 65535")
    return url


Url = Annotated[str, AfterValidator(_url_port_in_range)]


class AuthConfig(BaseModel):
    type: Literal["none", "basic", "bearer", "oauth2"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    token_url: Url | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    audience: str | None = None
    scope: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> AuthConfig:
        needed = {
            "basic": ("username", "password"),
            "bearer": ("token",),
            "oauth2": ("token_url", "client_id", "client_secret"),
        }.get(self.type, ())
        missing = [field for field in needed if getattr(self, field) is None]
        if missing:
            raise ValueError(f"auth type {self.type!r} needs {', '.join(missing)}")
        return self


class EngineConfig(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    type: str = Field(description="An installed adapter: embedded, camunda7, flowable, zeebe, or a plugin's name")
    url: Url | None = None
    auth: AuthConfig = Field(default_factory=AuthConfig)
    connect_timeout: Seconds = Field(2.0, gt=0)
    read_timeout: Seconds = Field(10.0, gt=0)
    pool_size: int = Field(20, ge=1)
    tenant_id: str | None = None
    default: bool = False
    breaker_fail_max: int = Field(5, ge=1)
    breaker_reset_timeout: Seconds = Field(30.0, gt=0)
    retry_attempts: int = Field(3, ge=1, le=10)
    retry_budget_ratio: float = Field(0.2, ge=0, le=1)
    options: dict[str, Any] = Field(
        default_factory=dict, description="Settings of the engine's adapter (its `options_schema`, see README)"
    )

    def public_url(self) -> str | None:
        """The URL without any user:password part."""
        if not self.url or "@" not in self.url:
            return self.url
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{rest.split('@', 1)[1]}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PM_", env_file=".env", extra="ignore")

    database_url: Url = "sqlite+aiosqlite:///./pm-gateway.db"
    redis_url: Url | None = None
    host: str = "127.0.0.1"
    port: Port = 3007
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    access_log: bool = True
    workers: int | None = Field(None, ge=1, description="Server processes; default: one per CPU core (PostgreSQL)")
    worker_healthcheck_timeout: Seconds = Field(
        30.0,
        ge=1,
        description="With several workers: how long a worker may leave the supervisor's ping unanswered before it "
        "is killed and replaced (uvicorn's timeout_worker_healthcheck, 5 s by default, killed busy workers with "
        "their requests on a loaded machine)",
    )
    max_upload_bytes: int = 5 * 1024 * 1024
    client_header_timeout: Seconds = Field(10.0, gt=0)
    client_body_timeout: Seconds = Field(30.0, gt=0)
    auto_migrate: bool = True

    # Engines: either the single-engine shorthand or PM_ENGINES (JSON list) / PM_CONFIG (a JSON file).
    engine_type: str = "embedded"
    engine_name: str = "default"
    engine_url: Url | None = None
    engine_username: str | None = None
    engine_password: SecretStr | None = None
    engine_token: SecretStr | None = None
    engines: list[EngineConfig] | None = None
    config: Path | None = None
    default_engine: str | None = None  # overrides the engine marked default

    max_bpmn_elements: int = Field(10_000, ge=1)

    idempotency_ttl_hours: Hours = Field(24.0, gt=0)
    idempotency_lease_seconds: Seconds = Field(10.0, gt=0)

    audit_anchor_key: SecretStr | None = None
    audit_checkpoint_seconds: Seconds = Field(60.0, gt=0)

    # Authentication and authorization (README "Authentication and authorization").
    auth_mode: Literal["none", "jwt"] | None = None  # unset: none on loopback, refusal elsewhere
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["RS256"])
    auth_jwks_url: str | None = None  # default: the issuer's OIDC discovery document names it
    auth_jwks_file: Path | None = None
    auth_public_key_file: Path | None = None
    auth_jwks_cache_seconds: float = Field(300.0, gt=0)
    auth_jwks_refetch_cooldown: float = Field(30.0, ge=0)
    auth_leeway: float = Field(10.0, ge=0, le=30)
    auth_actor_claim: str = "sub"
    auth_roles_claim: str = "roles"
    auth_groups_claim: str = "groups"
    auth_tenants_claim: str = "tenants"  # empty: no tenant isolation
    auth_roles_file: Path | None = None  # default: gateway/auth/roles.json
    auth_open_paths: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["/ready", "/metrics", "/docs", "/openapi.json"]
    )
    # The console's sign-in by OIDC authorization code with PKCE (README "Operator console"): the public client
    # registered at PM_AUTH_ISSUER for the redirect URI <gateway>/console, and the scopes it asks for.
    console_oidc_client_id: str | None = None
    console_oidc_scopes: str = "openid"

    @field_validator(
        "auth_issuer", "auth_jwks_url", "auth_jwks_file", "auth_public_key_file", "auth_roles_file", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("auth_algorithms", "auth_open_paths", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("auth_algorithms")
    @classmethod
    def _asymmetric_algorithms(cls, value: list[str]) -> list[str]:
        allowed = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
        wrong = [a for a in value if a not in allowed]
        if wrong or not value:
            raise ValueError(
                f"give one or more of {', '.join(sorted(allowed))} (public-key algorithms only); got {', '.join(wrong) or 'none'}"
            )
        return value

    @model_validator(mode="after")
    def _jwt_complete(self) -> Settings:
        if self.auth_mode != "jwt":
            return self
        if not self.auth_audience:
            raise ValueError("PM_AUTH_MODE=jwt needs PM_AUTH_AUDIENCE (the `aud` tokens must carry)")
        if not (self.auth_jwks_file or self.auth_public_key_file or self.auth_jwks_url or self.auth_issuer):
            raise ValueError(
                "PM_AUTH_MODE=jwt needs where the signing keys are: PM_AUTH_ISSUER (OIDC discovery), "
                "PM_AUTH_JWKS_URL, PM_AUTH_JWKS_FILE or PM_AUTH_PUBLIC_KEY_FILE"
            )
        return self

    @model_validator(mode="after")
    def _console_oidc_needs_issuer(self) -> Settings:
        if self.console_oidc_client_id and not (self.auth_mode == "jwt" and self.auth_issuer):
            raise ValueError(
                "PM_CONSOLE_OIDC_CLIENT_ID needs PM_AUTH_MODE=jwt and PM_AUTH_ISSUER (the provider the console "
                "signs in with)"
            )
        return self

    @field_validator("engines", mode="before")
    @classmethod
    def _engines_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else None
        return value

    @model_validator(mode="after")
    def _one_default_engine(self) -> Settings:
        configs = self.engine_configs
        names = [engine.name for engine in configs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"engine names must be unique; repeated: {', '.join(duplicates)}")
        defaults = [engine.name for engine in configs if engine.default]
        if len(defaults) > 1:
            raise ValueError(f"only one engine may be the default; marked default: {', '.join(defaults)}")
        if self.default_engine is not None and self.default_engine not in names:
            raise ValueError(f"default_engine {self.default_engine!r} is not a configured engine ({', '.join(names)})")
        return self

    @cached_property
    def engine_configs(self) -> list[EngineConfig]:
        if self.engines:
            return self.engines
        if self.config is not None:
            data = json.loads(Path(self.config).read_text())
            return [EngineConfig.model_validate(item) for item in data.get("engines", [])]
        auth: dict[str, Any] = {"type": "none"}
        if self.engine_token is not None:
            auth = {"type": "bearer", "token": self.engine_token}
        elif self.engine_username is not None:
            auth = {"type": "basic", "username": self.engine_username, "password": self.engine_password}
        return [
            EngineConfig(name=self.engine_name, type=self.engine_type, url=self.engine_url, auth=auth, default=True)
        ]

    def default_engine_name(self) -> str:
        if self.default_engine is not None:
            return self.default_engine
        configs = self.engine_configs
        return next((engine.name for engine in configs if engine.default), configs[0].name)


def _field_name(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "settings"
    name = f"PM_{str(loc[0]).upper()}"
    for part in loc[1:]:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name


def load_settings(**overrides: Any) -> Settings:
    """Read and check the whole configuration now, so a mistake stops the start, not the first request."""
    try:
        settings = Settings(**overrides)
        in_gateway_database: dict[str, str] = {}
        for index, engine in enumerate(settings.engine_configs):
            field = f"PM_ENGINES[{index}]" if settings.engines else "PM_CONFIG" if settings.config else "PM_ENGINE_URL"
            cls = adapter_class(engine)
            adapter_options(cls, engine, field)
            if cls.transactional:
                # Its state lives in the gateway's own tables, which a second engine of the type would share.
                if engine.type in in_gateway_database:
                    raise ConfigError(
                        f"invalid configuration: {field}: engine {engine.name!r} is a second {engine.type} engine; "
                        f"{engine.type} keeps its state in the gateway's database, so engine "
                        f"{in_gateway_database[engine.type]!r} would see its definitions, instances and tasks"
                    )
                in_gateway_database[engine.type] = engine.name
        return settings
    except ValidationError as exc:
        problems = "; ".join(f"{_field_name(tuple(error['loc']))}: {error['msg']}" for error in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"invalid configuration: PM_CONFIG: {exc}") from None
