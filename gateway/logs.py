"""Logging: text or JSON lines (PM_LOG_FORMAT), a request id on every line written while serving a request,
one access line per request, and libraries kept below the gateway's own level.

JSON lines come from python-json-logger, a formatter for the standard `logging` package: every module keeps
its plain `logging.getLogger(__name__)` and the format is a deployment choice.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from gateway.errors import GatewayError

LogFormat = Literal["text", "json"]

# Loggers that talk per task or per statement: SpiffWorkflow logs each task state change, the drivers each
# statement. They stay at WARNING whatever the gateway's own level.
CHATTY_LOGGERS = (
    "spiff",
    "spiff.task",
    "spiff.workflow",
    "spiff.data",
    "spiff.dmn",
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "aiosqlite",
    "asyncpg",
    "alembic",
    "httpx",
    "httpcore",
    "aiohttp",
)

access_log = logging.getLogger("gateway.access")


@dataclass(slots=True)
class RequestContext:
    """What the access line reports about the request being served: its id, the engine it used (set by the
    engine registry) and the title of the problem it was answered with, if any."""

    request_id: str
    engine: str | None = None
    problem: str | None = None


current_request: ContextVar[RequestContext | None] = ContextVar("pm_current_request", default=None)


def note_engine(name: str) -> None:
    """Record which engine the current request uses (a no-op outside requests)."""
    context = current_request.get()
    if context is not None:
        context.engine = name


def note_problem(title: str) -> None:
    """Record the problem title the current request is answered with (a no-op outside requests)."""
    context = current_request.get()
    if context is not None:
        context.problem = title


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = current_request.get()
        record.request_id = context.request_id if context is not None else "-"
        return True


def configure_logging(level: str, log_format: LogFormat = "text", *, access_lines: bool = True) -> None:
    """Send every log line to stderr as text (`time LEVEL logger request-id: message`) or as one JSON object
    per line (`time`, `level`, `logger`, `message`, `request_id` and the line's extra fields). Without
    `access_lines` (PM_ACCESS_LOG=false) the per-request lines are off."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(request_id)s: %(message)s"))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    access_log.disabled = not access_lines


def log_failed_round(logger: logging.Logger, exc: Exception, what: str, interval: float) -> None:
    """Log the first failure of a background loop's round (`what` failed; tried again every `interval` seconds):
    one line with the reason for a failure the gateway explains (a GatewayError: an engine down, a refused
    call), the traceback for anything unexpected."""
    if isinstance(exc, GatewayError):
        logger.warning("%s failed: %s; trying again every %ss", what, exc.detail, interval)
    else:
        logger.error("%s failed; trying again every %ss", what, interval, exc_info=exc)
