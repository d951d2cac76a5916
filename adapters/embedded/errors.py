"""The errors the embedded engine adds: a BPMN error thrown by a service task handler, and the lost-race conflict."""

from __future__ import annotations

from typing import Any

from gateway.errors import ConcurrentModification

__all__ = ["BpmnError", "ConcurrentModification"]


class BpmnError(Exception):
    """Raise from a service task handler to throw a BPMN error instead of failing.

    A boundary error event on the service task whose errorCode matches (or that names no error) catches it
    and the process continues on its path, with `variables` set first. An error nobody catches becomes an
    incident, like any other failure.
    """

    def __init__(self, code: str, message: str | None = None, variables: dict[str, Any] | None = None) -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message
        self.variables = variables or {}
