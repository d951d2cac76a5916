"""Configuration is validated at start, with one clear message naming the bad field."""

from __future__ import annotations

import json

import pytest

from gateway.errors import ConfigError
from gateway.settings import load_settings


def test_default_is_the_embedded_engine_on_a_sqlite_file(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PM_ENGINES", "PM_CONFIG", "PM_ENGINE_TYPE", "PM_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///./pm-gateway.db"
    assert [(e.name, e.type) for e in settings.engine_configs] == [("default", "embedded")]
    assert (settings.host, settings.port) == ("127.0.0.1", 3007)


def test_single_engine_shorthand_with_basic_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PM_ENGINE_TYPE", "camunda7")
    monkeypatch.setenv("PM_ENGINE_URL", "http://camunda:8080/engine-rest")
    monkeypatch.setenv("PM_ENGINE_USERNAME", "demo")
    monkeypatch.setenv("PM_ENGINE_PASSWORD", "demo")
    (engine,) = load_settings().engine_configs
    assert (engine.type, engine.url, engine.auth.type, engine.auth.username) == (
        "camunda7",
        "http://camunda:8080/engine-rest",
        "basic",
        "demo",
    )


def test_several_engines_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "PM_ENGINES",
        json.dumps(
            [
                {"name": "local", "type": "embedded"},
                {
                    "name": "c8",
                    "type": "zeebe",
                    "url": "http://zeebe:8080/v2",
                    "default": True,
                    "auth": {"type": "oauth2", "token_url": "http://kc/token", "client_id": "gw", "client_secret": "s"},
                },
            ]
        ),
    )
    settings = load_settings()
    assert settings.default_engine_name() == "c8"
    monkeypatch.setenv("PM_DEFAULT_ENGINE", "local")
    assert load_settings().default_engine_name() == "local"


def test_engines_from_a_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "engines.json"
    path.write_text(
        json.dumps({"engines": [{"name": "fl", "type": "flowable", "url": "http://fl/flowable-rest/service"}]})
    )
    monkeypatch.delenv("PM_ENGINES", raising=False)
    monkeypatch.setenv("PM_CONFIG", str(path))
    assert [e.name for e in load_settings().engine_configs] == ["fl"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"PM_ENGINES": '[{"name": "c7", "type": "camunda7"}]'},
            "PM_ENGINES[0]: engine 'c7' of type camunda7 needs a url",
        ),
        (
            {"PM_ENGINES": '[{"name": "e", "type": "embedded", "options": {"timer_interval": 0}}]'},
            "PM_ENGINES[0].options.timer_interval",
        ),
        (
            {"PM_ENGINES": '[{"name": "e", "type": "embedded", "options": {"timer": 1}}]'},
            "PM_ENGINES[0].options.timer: Extra inputs",
        ),
        (
            {"PM_ENGINES": '[{"name": "c7", "type": "camunda7", "url": "http://c", "options": {"x": 1}}]'},
            "PM_ENGINES[0].options.x",
        ),
        (
            {"PM_ENGINES": '[{"name": "x", "type": "oracle-bpm", "url": "http://x"}]'},
            "type 'oracle-bpm' has no installed adapter",
        ),
        (
            {"PM_ENGINES": '[{"name": "c7", "type": "camunda7", "url": "http://c", "auth": {"type": "basic"}}]'},
            "needs username, password",
        ),
        ({"PM_ENGINES": '[{"name": "a", "type": "embedded"}, {"name": "a", "type": "embedded"}]'}, "repeated: a"),
        (
            {"PM_ENGINES": '[{"name": "a", "type": "embedded"}]', "PM_DEFAULT_ENGINE": "b"},
            "'b' is not a configured engine",
        ),
        ({"PM_PORT": "not-a-port"}, "PM_PORT"),
        ({"PM_CONSOLE_OIDC_CLIENT_ID": "pm-console"}, "PM_CONSOLE_OIDC_CLIENT_ID needs PM_AUTH_MODE=jwt"),
        (
            {"PM_ENGINES": '[{"name": "c7", "type": "camunda7", "url": "http://c", "read_timeout": -1}]'},
            "PM_ENGINES[0].read_timeout",
        ),
        ({"PM_CONFIG": "/nonexistent/engines.json"}, "PM_CONFIG"),
    ],
)
def test_invalid_configuration_fails_at_start_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name in ("PM_ENGINES", "PM_CONFIG", "PM_DEFAULT_ENGINE", "PM_EMBEDDED_TIMER_INTERVAL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert message in str(caught.value)
    assert str(caught.value).startswith("invalid configuration")


def test_embedded_options_come_from_its_environment_variables_or_the_engine_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from adapters.embedded.adapter import EmbeddedOptions

    monkeypatch.setenv("PM_EMBEDDED_TIMER_INTERVAL", "0.25")
    assert EmbeddedOptions.model_validate({}).timer_interval == 0.25
    assert EmbeddedOptions.model_validate({"timer_interval": 2}).timer_interval == 2


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("PM_PORT", "0", "PM_PORT"),
        ("PM_PORT", "70000", "PM_PORT"),
        ("PM_ENGINE_URL", "http://camunda:80800/engine-rest", "PM_ENGINE_URL"),
        ("PM_DATABASE_URL", "postgresql+asyncpg://pm@db:0/pm", "PM_DATABASE_URL"),
        ("PM_REDIS_URL", "redis://cache:123456/0", "PM_REDIS_URL"),
    ],
)
def test_ports_outside_1_to_65535_stop_the_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv("PM_ENGINE_TYPE", "camunda7")
    monkeypatch.setenv("PM_ENGINE_URL", "http://camunda:8080/engine-rest")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=rf"{named}: .*65535"):
        load_settings()


def test_durations_accept_seconds_and_iso_8601(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "PM_ENGINES",
        json.dumps(
            [
                {
                    "name": "a",
                    "type": "camunda7",
                    "url": "http://a:8080/engine-rest",
                    "read_timeout": "PT1M30S",
                    "connect_timeout": "2.5",
                    "breaker_reset_timeout": "PT0.5S",
                },
            ]
        ),
    )
    monkeypatch.setenv("PM_IDEMPOTENCY_TTL_HOURS", "P2D")
    settings = load_settings()
    (engine,) = settings.engine_configs
    assert (engine.read_timeout, engine.connect_timeout, engine.breaker_reset_timeout) == (90.0, 2.5, 0.5)
    assert settings.idempotency_ttl_hours == 48.0
    monkeypatch.setenv("PM_IDEMPOTENCY_TTL_HOURS", "an hour")
    with pytest.raises(ConfigError, match="PM_IDEMPOTENCY_TTL_HOURS"):
        load_settings()


def test_incident_poll_interval_accepts_iso_8601(monkeypatch: pytest.MonkeyPatch) -> None:
    from incidents.settings import load_incident_settings

    monkeypatch.setenv("PM_INCIDENTS_POLL_INTERVAL", "PT2S")
    assert load_incident_settings().poll_interval == 2.0


def test_a_second_engine_keeping_its_state_in_the_gateway_database_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two embedded engines would share the gateway's embedded tables: each would list the other's instances."""
    engines = [{"name": "local", "type": "embedded", "default": True}, {"name": "local2", "type": "embedded"}]
    monkeypatch.setenv("PM_ENGINES", json.dumps(engines))
    with pytest.raises(ConfigError, match=r"second embedded engine.*'local'"):
        load_settings()
