"""The floor for this stack: a minimal FastAPI app in one uvicorn process that answers `GET /definitions` by
making the gateway's two Camunda 7 calls (list and count) over one aiohttp session and returning them.

Run: python -m bench.floor PORT ENGINE_URL
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import uvicorn
from fastapi import FastAPI


def create(engine_url: str) -> FastAPI:
    session: dict[str, aiohttp.ClientSession] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        session["engine"] = aiohttp.ClientSession(engine_url.rstrip("/") + "/")
        yield
        await session["engine"].close()

    app = FastAPI(lifespan=lifespan)

    async def get(path: str, params: dict[str, str]) -> Any:
        async with session["engine"].get(path, params=params) as response:
            return await response.json()

    @app.get("/definitions")
    async def definitions() -> dict[str, Any]:
        params = {"latestVersion": "true", "firstResult": "0", "maxResults": "50"}
        rows, count = await asyncio.gather(get("process-definition", params), get("process-definition/count", {}))
        return {"items": rows, "total": count["count"]}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    uvicorn.run(create(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
