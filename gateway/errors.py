"""The small set of typed errors that adapters and services raise, and their RFC 9457 rendering.

Every error the API can answer is one of these classes; the FastAPI handlers in `gateway.app`
turn them (and FastAPI's own validation errors) into `application/problem+json`.
"""

from __future__ import annotations

from typing import Any, TypeVar

PROBLEM_BASE = "https://pm-gateway.dev/problems/"


class GatewayError(Exception):
    status: int = 500
    title: str = "Internal error"
    slug: str = "internal"

    def __init__(
        self,
        detail: str,
        *,
        engine: str | None = None,
        engine_status: int | None = None,
        engine_message: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.engine = engine
        self.engine_status = engine_status
        self.engine_message = engine_message
        self.errors = errors
        self.headers = headers or {}

    def restated(self, kind: type[Restated], detail: str, *, engine: str | None = None) -> Restated:
        """This engine answer told as `kind` with `detail` (what it means for the caller), keeping the engine's own
        status and message for the problem body; `engine` names the engine when this error does not."""
        return kind(
            detail,
            engine=engine or self.engine,
            engine_status=self.engine_status,
            engine_message=self.engine_message,
        )

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        for field in ("engine", "engine_status", "engine_message", "errors"):
            value = getattr(self, field)
            if value is not None:
                body[field] = value
        return body


Restated = TypeVar("Restated", bound=GatewayError)


class BadRequest(GatewayError):
    status, title, slug = 400, "Bad request", "bad-request"


class InvalidBpmn(BadRequest):
    title, slug = "Invalid BPMN", "invalid-bpmn"


class Unauthorized(GatewayError):
    """No valid bearer token (PM_AUTH_MODE=jwt); answered with `WWW-Authenticate: Bearer` (RFC 6750)."""

    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str, *, error: str = "invalid_token") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": f'Bearer error="{error}"'})


class Forbidden(GatewayError):
    """The caller is known but lacks the permission the detail names."""

    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(GatewayError):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(GatewayError):
    status, title, slug = 409, "Conflict", "conflict"


class ConcurrentModification(Conflict):
    """Someone else changed the same object first; the whole unit of work may be retried."""

    title, slug = "Concurrent modification", "concurrent-modification"


class PayloadTooLarge(GatewayError):
    status, title, slug = 413, "Payload too large", "payload-too-large"


class ValidationFailed(GatewayError):
    status, title, slug = 422, "Validation failed", "validation"


class NotSupported(GatewayError):
    status, title, slug = 501, "Not supported by this engine", "not-supported"


class EngineError(GatewayError):
    """The engine answered with an error it should not have, or an answer we cannot read."""

    status, title, slug = 502, "Engine error", "engine-error"


class EngineUnavailable(GatewayError):
    status, title, slug = 503, "Engine unavailable", "engine-unavailable"


class EngineTimeout(GatewayError):
    status, title, slug = 504, "Engine timed out", "engine-timeout"


class ServiceUnavailable(GatewayError):
    """A dependency of the gateway itself (database, Redis) is down."""

    status, title, slug = 503, "Service unavailable", "service-unavailable"


ERRORS_BY_STATUS: dict[int, type[GatewayError]] = {
    cls.status: cls for cls in (BadRequest, NotFound, Conflict, PayloadTooLarge, ValidationFailed, NotSupported)
}


class ConfigError(Exception):
    """Raised at start when the configuration is invalid; the message names the bad field."""
