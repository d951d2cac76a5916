"""The adapter conformance suite against a real Camunda 8.8 in Docker (testcontainers); skipped without Docker.

Every test gets a fresh Camunda: the official single image `camunda/camunda` (broker, REST API and an
in-memory H2 secondary storage, the setup Camunda Process Test uses) with the unprotected API, because
Camunda 8 never forgets versions or instances and the suite counts them. Expect about half a minute per
test. PM_TEST_CAMUNDA_IMAGE picks another image (an 8.9 one, say). The job worker of tests/zeebe/worker.py
plays the `charge` service.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from testcontainers.core.container import DockerContainer

from gateway.db import Database
from gateway.engines.port import EngineAdapter
from gateway.engines.testing import Harness, harness_fixture
from gateway.engines.testing.suite import *  # noqa: F403 - the behaviours of the suite, run here against the container
from gateway.registry import EngineRegistry
from gateway.settings import Settings
from tests.conformance.harnesses.zeebe import HARNESS
from tests.zeebe.worker import ChargeWorker, running

IMAGE = os.environ.get("PM_TEST_CAMUNDA_IMAGE", "camunda/camunda:8.8.0")
REST_PORT, MONITORING_PORT = 8080, 9600
STARTUP_TIMEOUT = 180.0
ENVIRONMENT = {
    "SPRING_PROFILES_ACTIVE": "broker,consolidated-auth",
    "CAMUNDA_SECURITY_AUTHENTICATION_UNPROTECTEDAPI": "true",
    "CAMUNDA_SECURITY_AUTHORIZATIONS_ENABLED": "false",
    "CAMUNDA_DATABASE_TYPE": "rdbms",
    "CAMUNDA_DATABASE_URL": "jdbc:h2:mem:camunda;DB_CLOSE_DELAY=-1;MODE=PostgreSQL",
    "CAMUNDA_DATABASE_USERNAME": "sa",
    "CAMUNDA_DATABASE_PASSWORD": "",
    "ZEEBE_BROKER_EXPORTERS_RDBMS_CLASSNAME": "io.camunda.exporter.rdbms.RdbmsExporter",
    "ZEEBE_BROKER_EXPORTERS_RDBMS_ARGS_FLUSH_INTERVAL": "PT0S",
}


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:  # any failure means no usable Docker engine
        return False


pytestmark = pytest.mark.skipif(not _docker_available(), reason="Camunda 8 integration: no Docker engine available")


def _wait_until_ready(rest_url: str, monitoring_url: str) -> None:
    """Until the broker is healthy, partition 1 has a leader and secondary storage answers searches."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            try:
                health = client.get(f"{monitoring_url}/actuator/health/status")
                topology = client.get(f"{rest_url}/topology")
                partitions = [p for broker in topology.json().get("brokers", []) for p in broker["partitions"]]
                search = client.post(f"{rest_url}/process-definitions/search", json={})
                if (
                    health.is_success
                    and search.is_success
                    and any(
                        p["partitionId"] == 1 and p["role"] == "leader" and p["health"] == "healthy" for p in partitions
                    )
                ):
                    return
            except (httpx.HTTPError, ValueError):
                pass  # still starting
            time.sleep(1.0)
    raise TimeoutError(f"Camunda ({IMAGE}) was not ready within {STARTUP_TIMEOUT:.0f} s")


@pytest.fixture
def camunda() -> Iterator[str]:
    """A fresh Camunda 8; yields the REST API's base URL (…/v2)."""
    container = DockerContainer(IMAGE).with_envs(**ENVIRONMENT).with_exposed_ports(REST_PORT, MONITORING_PORT)
    with container:
        host = container.get_container_host_ip()
        rest_url = f"http://{host}:{container.get_exposed_port(REST_PORT)}/v2"
        _wait_until_ready(rest_url, f"http://{host}:{container.get_exposed_port(MONITORING_PORT)}")
        yield rest_url


# The simulator harness without its transport; `adapter` points it at the container.
harness = harness_fixture(dataclasses.replace(HARNESS, make_transport=None, incident_timeout=30.0))


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """The gateway's own database; SQLite is enough next to a real engine."""
    path = tmp_path / "gateway.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def adapter(harness: Harness, database: Database, camunda: str) -> AsyncIterator[EngineAdapter]:
    engine = {**harness.engine, "url": camunda}
    settings = Settings(engines=[{"name": "under-test", "default": True, **engine}], database_url=database.url)
    registry = EngineRegistry(settings, database)
    await registry.start()
    try:
        async with httpx.AsyncClient(base_url=camunda, timeout=10.0) as client, running(ChargeWorker(client)):
            yield registry.get().adapter
    finally:
        await registry.close()
