"""What adapters of engines reached over HTTP share: the hooks `EngineHttp` calls to read an engine's errors."""

from __future__ import annotations

from typing import ClassVar

import httpx

from gateway.engines.port import EngineAdapter
from gateway.errors import GatewayError
from gateway.resilience import default_engine_message


class HttpEngineAdapter(EngineAdapter):
    """An adapter whose engine answers at `config.url`; the registry builds its `context.http` client."""

    needs_url: ClassVar[bool] = True

    def engine_message(self, response: httpx.Response) -> str | None:
        """The engine's own error text from an error response (`message`, `detail`, ... of its JSON body)."""
        return default_engine_message(response)

    def classify_error(self, response: httpx.Response, message: str | None) -> type[GatewayError] | None:
        """Override to map an engine error that its status alone misclassifies (e.g. a 500 that is a conflict).

        None keeps the mapping by status (4xx → 400/404/409/422, 5xx → 502/503/504).
        """
        return None
