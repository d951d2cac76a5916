"""URL details of Camunda 7's `engine-rest`: ids as path segments, and the root of a named engine's URL."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

_NAMED_ENGINE = re.compile(r"^(?P<root>.+)/engine/(?P<name>[^/]+)/?$")


def segment(value: str) -> str:
    """An id as one percent-encoded path segment, so that no id can address another resource."""
    encoded = quote(value, safe=":")
    # A segment of dots alone would be resolved as a relative step ("..") by the URL parser.
    return encoded if value.strip(".") else encoded.replace(".", "%2E")


@dataclass(frozen=True)
class EngineLocation:
    """Where the REST root is: `/version` and `/engine` live there, not under `/engine/{name}`."""

    root: str
    engine_name: str | None  # None: the default engine, served at the root itself


def locate(url: str) -> EngineLocation:
    match = _NAMED_ENGINE.match(url)
    if match is None:
        return EngineLocation(root=url.rstrip("/"), engine_name=None)
    return EngineLocation(root=match["root"], engine_name=match["name"])
