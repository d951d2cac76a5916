"""What adapters of engines reached over HTTP share: the hooks `EngineHttp` calls to read an engine's errors."""

from __future__ import annotations

from typing import ClassVar

import httpx

from gateway.engines.port import EngineAdapter
from gateway.errors import Conflict, GatewayError, NotFound
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

    async def _refuse_if_ended(self, instance_id: str, action: str) -> None:
        """Raise `Conflict` ("has already ended") when the engine refused `action` on `instance_id` as unknown
        because the instance ended: engines forget ended instances in their runtime API but keep them in their
        history, and the unified API answers 409 for an ended instance, 404 only for an unknown one.

        Reads the instance with `get_instance`; returns quietly when it is unknown or still running (the caller
        then re-raises the engine's NotFound). Adapters with a cheaper history read override it.
        """
        try:
            instance = await self.get_instance(instance_id)
        except NotFound:
            return
        if instance.status not in ("active", "suspended"):
            raise Conflict(
                f"Cannot {action}: process instance {instance_id} has already ended ({instance.status})",
                engine=self.name,
            )
