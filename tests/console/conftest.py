"""The console's end-to-end tests: the whole gateway under uvicorn on a loopback port (SQLite), and each scenario a
node script (`*.mjs` here) driving Debian's headless chromium through playwright-core, which `make console` installs.
Screenshots go to `test-output/console/` at the repository root."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.db import Database
from gateway.settings import Settings
from tests.auth.conftest import provider, signing_keys  # noqa: F401 - fixtures of the tenant-limited test
from tests.conftest import OPTIONAL_SUITES
from tests.events.conftest import ServedGateway, serve

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
SCREENSHOTS = ROOT / "test-output" / "console"
PLAYWRIGHT = ROOT / "console" / "node_modules" / "playwright-core"
SCENARIO_TIMEOUT = 180.0  # seconds


def chromium() -> str | None:
    return os.environ.get("PM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser_tools() -> str:
    """The chromium to drive; skips (reported in the summary line) where chromium, node or the npm packages are absent."""
    path = chromium()
    missing = [
        what
        for what, present in (
            ("Debian's chromium (apt-get install chromium)", path),
            ("node", shutil.which("node")),
            ("playwright-core (make console)", PLAYWRIGHT.is_dir()),
        )
        if not present
    ]
    if missing:
        reason = "missing " + ", ".join(missing)
        OPTIONAL_SUITES["Console end-to-end"] = f"skipped ({reason})"
        pytest.skip(f"Console end-to-end: {reason}")
    OPTIONAL_SUITES["Console end-to-end"] = f"ran ({path})"
    return str(path)


@pytest.fixture
async def console(
    browser_tools: str, database: Database, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ServedGateway]:
    """The gateway on the embedded engine, served on loopback, with the Incident Center polling every 0.2 s."""
    monkeypatch.setenv("PM_INCIDENTS_POLL_INTERVAL", "0.2")
    settings = Settings(database_url=database.url, auto_migrate=False, engine_type="embedded")
    async with serve(settings) as gateway:
        yield gateway


async def run_scenario(gateway: ServedGateway, script: str, *arguments: str) -> str:
    """Runs `node tests/console/<script> BASE_URL SCREENSHOT_DIR ARGUMENTS...`; fails with its output unless it
    exits 0. Answers its output (it lists the screenshots taken)."""
    process = await asyncio.create_subprocess_exec(
        "node",
        str(HERE / script),
        gateway.url,
        str(SCREENSHOTS),
        *arguments,
        env={**os.environ, "PM_CHROMIUM": chromium() or ""},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), SCENARIO_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"{script} did not finish within {SCENARIO_TIMEOUT:.0f} s")
    text = output.decode()
    assert process.returncode == 0, f"{script} failed:\n{text}"
    return text
