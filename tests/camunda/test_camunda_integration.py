"""The conformance suite against a real Camunda Platform 7.23 (Docker image `camunda/camunda-bpm-platform:run-7.23.0`).

Runs wherever a Docker engine is available (testcontainers starts one container for the module) and skips with
the reason otherwise. The suite's tests expect an engine without other deployments of their processes, so the
deployments made through the gateway are deleted, with their instances and history, before each test.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from gateway.db import Database
from gateway.engines.port import EngineAdapter
from gateway.engines.testing import Harness, harness_fixture
from gateway.engines.testing.suite import *  # noqa: F403 - every behaviour of the suite, run here against the container
from gateway.registry import EngineRegistry
from gateway.settings import Settings
from tests.conformance.harnesses.camunda7 import HARNESS

IMAGE = "camunda/camunda-bpm-platform:run-7.23.0"
STARTUP_TIMEOUT = 180.0
# The job executor acquires jobs in cycles of a few seconds; a failing job's incident takes one or two.
INCIDENT_TIMEOUT = 60.0


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means no usable Docker engine
        return False


def _wait_until_ready(url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            if httpx.get(f"{url}/version", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"Camunda did not answer {url}/version within {STARTUP_TIMEOUT:.0f} s")
        time.sleep(1)


@pytest.fixture(scope="module")
def camunda_url() -> Iterator[str]:
    if not _docker_available():
        pytest.skip(f"Camunda 7 integration: no Docker engine is available to run {IMAGE}")
    from testcontainers.core.container import DockerContainer

    with DockerContainer(IMAGE).with_exposed_ports(8080) as container:
        url = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(8080)}/engine-rest"
        _wait_until_ready(url)
        yield url


def _delete_gateway_deployments(url: str) -> None:
    deployments = httpx.get(f"{url}/deployment", params={"source": "pm-gateway"}, timeout=30).json()
    for deployment in deployments:
        httpx.delete(f"{url}/deployment/{deployment['id']}", params={"cascade": True}, timeout=30).raise_for_status()


# The simulator harness without its transport; `adapter` points it at the container.
harness = harness_fixture(
    dataclasses.replace(HARNESS, make_transport=None, incident_timeout=INCIDENT_TIMEOUT, engine={**HARNESS.engine, "read_timeout": 30.0})
)


@pytest.fixture
async def adapter(harness: Harness, database: Database, camunda_url: str) -> AsyncIterator[EngineAdapter]:
    _delete_gateway_deployments(camunda_url)
    engine = {**harness.engine, "url": camunda_url}
    settings = Settings(engines=[{"name": "under-test", "default": True, **engine}], database_url=database.url)
    registry = EngineRegistry(settings, database)
    await registry.start()
    try:
        yield registry.get().adapter
    finally:
        await registry.close()
