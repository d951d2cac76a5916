"""Optional OpenTelemetry tracing: a span per request, with child spans per engine call and per database
transaction, exported over OTLP. Off unless the `otel` extra is installed (`pip install 'pm-gateway[otel]'`)
and an exporter is configured through the standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, and `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, ... as the SDK
reads them). While off, `span()` costs one attribute read.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

_tracer: Any = None


def configure_tracing(exporter: Any = None) -> bool:
    """Install the OTLP (HTTP/protobuf) exporter when OTEL_* asks for it, or the given span exporter (tests);
    returns whether tracing is on."""
    global _tracer
    wanted = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if exporter is None and (not wanted or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true"):
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the otel extra is not installed: no tracing")
        return False
    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "pm-gateway")})
    )
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _tracer = provider.get_tracer("pm-gateway")
    return True


def stop_tracing() -> None:
    global _tracer
    _tracer = None


def enabled() -> bool:
    return _tracer is not None


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A child span of the current one (or nothing while tracing is off); yields the span or None."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(
        name, attributes={k: v for k, v in attributes.items() if v is not None}
    ) as current:
        yield current
