"""The conformance suite against a real Flowable 7.2: `flowable/flowable-rest:7.2.0` started by testcontainers.

The behaviours are the tests of the shipped suite (`gateway.engines.testing.suite`), imported here and given
this module's `harness` and `adapter` fixtures: the same harness BPMN, an EngineRegistry pointed at the container. Every
test starts from an empty engine (all deployments deleted with their instances and history). Skipped when
no Docker engine is available.
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
from gateway.engines.testing.suite import *  # noqa: F403 - the behaviours, run here against the container
from gateway.registry import EngineRegistry
from gateway.settings import Settings
from tests.conformance.harnesses.flowable import AUTH, HARNESS

IMAGE = "flowable/flowable-rest:7.2.0"
PORT = 8080
BASE_PATH = "/flowable-rest/service"
STARTUP_TIMEOUT = 300.0


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means no usable Docker engine
        return False


pytestmark = pytest.mark.skipif(
    not _docker_available(), reason=f"Flowable integration: no Docker engine is available to run {IMAGE}"
)


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, auth=(AUTH["username"], AUTH["password"]), timeout=10.0)


def _wait_until_ready(url: str) -> None:
    """The REST app answers once Spring and the process engine (schema creation included) are up."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with _client(url) as client:
        while True:
            try:
                if client.get("/management/engine").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{IMAGE} did not become ready within {STARTUP_TIMEOUT:.0f} s")
            time.sleep(2.0)


def _delete_all_deployments(url: str) -> None:
    with _client(url) as client:
        deployments = client.get("/repository/deployments", params={"size": 1000}).raise_for_status().json()
        for deployment in deployments["data"]:
            client.delete(f"/repository/deployments/{deployment['id']}", params={"cascade": "true"}).raise_for_status()


@pytest.fixture(scope="module")
def flowable_url() -> Iterator[str]:
    from testcontainers.core.container import DockerContainer

    with DockerContainer(IMAGE).with_exposed_ports(PORT) as container:
        url = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(PORT)}{BASE_PATH}"
        _wait_until_ready(url)
        yield url


# The harness without a simulator; `adapter` points it at the container.
harness = harness_fixture(dataclasses.replace(HARNESS, make_transport=None))


@pytest.fixture
async def adapter(harness: Harness, database: Database, flowable_url: str) -> AsyncIterator[EngineAdapter]:
    _delete_all_deployments(flowable_url)
    engine = {**harness.engine, "url": flowable_url}
    settings = Settings(engines=[{"name": "under-test", "default": True, **engine}], database_url=database.url)
    registry = EngineRegistry(settings, database)
    await registry.start()
    try:
        yield registry.get().adapter
    finally:
        await registry.close()
