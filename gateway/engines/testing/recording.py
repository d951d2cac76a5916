"""Records every request an adapter sends, so they can be checked against the engine's official spec.

Set PM_RECORD_REQUESTS_DIR and run the conformance suite: each harness appends JSON lines to
`<dir>/<harness id>.jsonl`; `tools/validate_requests.py` validates them against the spec file.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import httpx


class RecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, path: Path) -> None:
        self.inner = inner
        self.path = path

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        response = await self.inner.handle_async_request(request)
        entry = {
            "method": request.method,
            "url": str(request.url),
            "path": request.url.path,
            "query": request.url.query.decode(),
            "content_type": request.headers.get("content-type"),
            "body_b64": base64.b64encode(body).decode(),
            "status": response.status_code,
        }
        with self.path.open("a") as out:
            out.write(json.dumps(entry) + "\n")
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def maybe_recording(inner: httpx.AsyncBaseTransport, harness_id: str) -> httpx.AsyncBaseTransport:
    directory = os.environ.get("PM_RECORD_REQUESTS_DIR")
    if not directory:
        return inner
    Path(directory).mkdir(parents=True, exist_ok=True)
    return RecordingTransport(inner, Path(directory) / f"{harness_id}.jsonl")
