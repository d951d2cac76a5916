"""A job worker for the `charge` service task of the conformance scenario, on the Camunda 8 REST API.

On a real Camunda 8 something has to work the service task's jobs: this worker fails a job without retries
(which raises an incident) while the variable `fail` is true, and completes it otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

JOB_TYPE = "charge"
FAILURE = "Card declined: the variable 'fail' is true"


class ChargeWorker:
    def __init__(self, client: httpx.AsyncClient, *, idle_pause: float = 0.1) -> None:
        self.client = client  # with base_url at the REST API, e.g. http://localhost:8080/v2
        self.idle_pause = idle_pause

    async def run(self) -> None:
        while True:
            response = await self.client.post(
                "/jobs/activation",  # activateJobs, long polling for up to a second
                json={
                    "type": JOB_TYPE,
                    "worker": "pm-gateway-tests",
                    "timeout": 30_000,
                    "maxJobsToActivate": 10,
                    "requestTimeout": 1_000,
                },
            )
            response.raise_for_status()
            jobs = response.json()["jobs"]
            for job in jobs:
                await self.work(job)
            if not jobs:
                await asyncio.sleep(self.idle_pause)

    async def work(self, job: dict[str, Any]) -> None:
        if job["variables"].get("fail"):
            # failJob with no retries left: Camunda 8 raises an incident (JOB_NO_RETRIES)
            failure = {"retries": 0, "errorMessage": FAILURE}
            response = await self.client.post(f"/jobs/{job['jobKey']}/failure", json=failure)
        else:
            response = await self.client.post(f"/jobs/{job['jobKey']}/completion", json={})  # completeJob
        response.raise_for_status()


@contextlib.asynccontextmanager
async def running(worker: ChargeWorker) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
