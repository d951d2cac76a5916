"""What the gateway adds to an engine call (issue: engine registry and resilience).

Side by side in one run, against a minimal local stub engine: a direct GET of an instance's variables
versus the same read through the gateway (`GET /api/processes/instances/{id}/variables` on a Camunda 7
engine), at concurrency 1 and 16. Targets: ≤ 1 ms added at p50 (concurrency 1); ≥ 25 % of the direct
throughput at concurrency 16.
"""

from __future__ import annotations

import asyncio
import tempfile

import httpx

from bench.common import free_port, percentile, server, summary, timed

WARMUP = 300
COUNTS = {1: 2000, 16: 4000}


async def measure(url: str, concurrency: int) -> tuple[list[float], float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def call() -> None:
            response = await client.get(url)
            response.raise_for_status()

        await timed(call, WARMUP, concurrency)
        return await timed(call, COUNTS[concurrency], concurrency)


def main() -> None:
    stub_port, gateway_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        gateway_env = {
            "PM_ENGINE_TYPE": "camunda7",
            "PM_ENGINE_NAME": "stub",
            "PM_ENGINE_URL": f"http://127.0.0.1:{stub_port}/engine-rest",
            "PM_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
            "PM_PORT": str(gateway_port),
            "PM_LOG_LEVEL": "warning",
        }
        with (
            server(["-m", "bench.stub_engine", str(stub_port)], stub_port, ready_path="/engine-rest/version") as stub,
            server(["-m", "gateway.cli"], gateway_port, env=gateway_env) as gateway,
        ):
            direct_url = f"{stub}/engine-rest/process-instance/abc/variables"
            gateway_url = f"{gateway}/api/processes/instances/abc/variables"
            print("gateway overhead against a local stub engine (GET instance variables)")
            for concurrency in (1, 16):
                direct, direct_rps = asyncio.run(measure(direct_url, concurrency))
                through, through_rps = asyncio.run(measure(gateway_url, concurrency))
                added = percentile(through, 0.5) - percentile(direct, 0.5)
                print(f"  concurrency {concurrency:>2} direct : {summary(direct)} throughput={direct_rps:,.0f}/s")
                print(f"  concurrency {concurrency:>2} gateway: {summary(through)} throughput={through_rps:,.0f}/s")
                print(
                    f"  concurrency {concurrency:>2} added p50 = {added:.2f} ms; "
                    f"gateway keeps {through_rps / direct_rps:.0%} of direct throughput"
                )


if __name__ == "__main__":
    main()
