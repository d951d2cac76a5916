"""The production start command: worker processes and the start banner."""

from __future__ import annotations

import os

import pytest

from gateway.cli import start_banner, worker_count
from gateway.errors import ConfigError
from gateway.settings import load_settings

PG = "postgresql+asyncpg://pm:s3cret@db.internal:5432/pm"


def test_workers_default_to_one_per_core_on_postgresql_and_one_on_sqlite() -> None:
    assert worker_count(load_settings(database_url=PG)) == (os.cpu_count() or 1)
    assert worker_count(load_settings(database_url=PG, workers=3)) == 3
    assert worker_count(load_settings(database_url="sqlite+aiosqlite:///./x.db")) == 1


def test_several_workers_on_sqlite_are_refused() -> None:
    with pytest.raises(ConfigError, match="PM_WORKERS"):
        worker_count(load_settings(database_url="sqlite+aiosqlite:///./x.db", workers=2))


def test_the_banner_names_version_engines_database_without_password_and_docs() -> None:
    settings = load_settings(
        database_url=PG,
        engines=[
            {"name": "local", "type": "embedded", "default": True},
            {"name": "c7", "type": "camunda7", "url": "http://demo:pw@camunda:8080/engine-rest"},
        ],
    )
    banner = start_banner(settings, 2)
    assert banner.startswith(
        "pm-gateway 0.1.0 listening on http://127.0.0.1:3007 (API docs http://127.0.0.1:3007/docs)"
    )
    assert "local (embedded, default), c7 (camunda7 at http://camunda:8080/engine-rest)" in banner
    assert "postgresql+asyncpg://pm:***@db.internal:5432/pm" in banner
    assert "s3cret" not in banner and ":pw@" not in banner


def test_workers_get_the_configured_healthcheck_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's supervisor kills a worker that leaves its ping unanswered for timeout_worker_healthcheck; its 5 s
    default killed busy workers, with their requests, on a loaded machine."""
    import uvicorn

    from gateway.cli import serve

    started: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(options))
    # serve() hands PM_AUTO_MIGRATE=false to its workers through os.environ; monkeypatch restores it afterwards,
    # or every gateway process a later test starts would skip its migrations.
    monkeypatch.setenv("PM_AUTO_MIGRATE", "true")
    settings = load_settings(database_url=PG, workers=2, auto_migrate=False, worker_healthcheck_timeout="PT45S")
    assert serve(settings) == 0
    assert started["workers"] == 2
    assert started["timeout_worker_healthcheck"] == 45
    assert load_settings(database_url=PG).worker_healthcheck_timeout == 30
