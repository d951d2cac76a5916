"""Real engines beside the tests: the Maven projects under `engines/`, built once and started once per session.

`RealEngines.get(name)` builds the engine with `engines/run NAME --build-only` (offline from the local Maven
repository when it holds everything, online otherwise), starts `engines/run NAME` on a free loopback port,
waits at most `STARTUP_TIMEOUT` seconds for its REST API and returns a `RunningEngine`. `close()` stops every
engine started. A build or start that fails raises `EngineUnavailable` with the tail of the engine's log.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ENGINES_DIR = Path(__file__).resolve().parents[2] / "engines"
BUILD_TIMEOUT = 900.0  # seconds; a first build downloads the engine's dependencies from Maven Central
STARTUP_TIMEOUT = 180.0  # seconds from `java -jar` until the REST API answers
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class EngineKind:
    """How to reach one engine project's REST API: its base path, readiness path and basic-auth user."""

    rest_path: str
    ready_path: str
    credentials: tuple[str, str]


KINDS = {
    "camunda7": EngineKind("/engine-rest", "/version", ("demo", "demo")),
    "operaton": EngineKind("/engine-rest", "/version", ("demo", "demo")),
    "flowable": EngineKind("/process-api", "/management/engine", ("rest-admin", "test")),
}


class EngineUnavailable(RuntimeError):
    """The engine could not be built or did not answer in time; the message ends with its log tail."""


class ArtifactsNotServed(EngineUnavailable):
    """Maven could not download the engine's artifacts: the registry this machine reaches does not serve them."""


NOT_SERVED = ("Could not find artifact", "Could not resolve dependencies")


def missing_tools() -> str | None:
    """Why real engines cannot run on this machine (`java`/`mvn` not on PATH), or None when they can."""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    return f"real engines need {' and '.join(missing)} on PATH" if missing else None


@dataclass
class RunningEngine:
    """One engine process: `url` is its REST base URL (e.g. http://127.0.0.1:PORT/engine-rest)."""

    name: str
    url: str
    credentials: tuple[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=self.credentials, timeout=30.0)

    def reset(self) -> None:
        """Delete every deployment with its instances and history: each test starts from an empty engine."""
        with self.client() as client:
            if self.name == "flowable":
                listed = client.get("/repository/deployments", params={"size": 10000}).raise_for_status()
                ids = [d["id"] for d in listed.json()["data"]]
                path = "/repository/deployments/{}"
            else:
                ids = [d["id"] for d in client.get("/deployment").raise_for_status().json()]
                path = "/deployment/{}"
            for deployment_id in ids:
                client.delete(path.format(deployment_id), params={"cascade": "true"}).raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RealEngines:
    """The engines of one test session, started on first use; logs go to `log_dir/<name>.log`."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: dict[str, RunningEngine] = {}
        self.failed: dict[str, EngineUnavailable] = {}

    def get(self, name: str) -> RunningEngine:
        if name in self.failed:
            raise self.failed[name]
        if name not in self.running:
            try:
                self.running[name] = self._start(name)
            except EngineUnavailable as error:
                self.failed[name] = error
                raise
        return self.running[name]

    def _start(self, name: str) -> RunningEngine:
        kind = KINDS[name]
        run = ENGINES_DIR / "run"
        build_log = self.log_dir / f"{name}-build.log"
        with build_log.open("wb") as out:
            built = subprocess.run(
                [str(run), name, "--build-only"], stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT
            )
        if built.returncode != 0:
            lines = build_log.read_text(errors="replace").splitlines()
            not_served = [line for line in lines if any(marker in line for marker in NOT_SERVED)]
            if not_served:
                plain = re.sub(r"\x1b\[[0-9;]*m", "", not_served[0])  # Maven colours its log even in a file
                reason = re.sub(r"^.*?\[ERROR\] |\s*-> \[Help 1\]$", "", plain)
                raise ArtifactsNotServed(f"engines/{name}: Maven Central does not serve its artifacts here: {reason}")
            raise EngineUnavailable(f"building engines/{name} failed (exit {built.returncode}):\n{log_tail(build_log)}")

        port = free_port()
        log = self.log_dir / f"{name}.log"
        env = {**os.environ, "PM_ENGINE_PORT": str(port), "PM_ENGINE_BASIC_AUTH": "true"}
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(run), name], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        engine = RunningEngine(name, f"http://127.0.0.1:{port}{kind.rest_path}", kind.credentials, process, log)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        with engine.client() as client:
            while True:
                if process.poll() is not None:
                    raise EngineUnavailable(f"engines/{name} exited with {process.returncode}:\n{log_tail(log)}")
                try:
                    if client.get(kind.ready_path, timeout=2.0).status_code == 200:
                        return engine
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    engine.stop()
                    raise EngineUnavailable(
                        f"engines/{name} did not answer {engine.url}{kind.ready_path} within "
                        f"{STARTUP_TIMEOUT:.0f} s:\n{log_tail(log)}"
                    )
                time.sleep(0.5)

    def close(self) -> None:
        for engine in self.running.values():
            engine.stop()
        self.running.clear()
