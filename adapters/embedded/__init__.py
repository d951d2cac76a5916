"""The embedded engine: SpiffWorkflow inside the gateway, with its state in the gateway's database."""

from adapters.embedded.adapter import EmbeddedAdapter
from adapters.embedded.errors import BpmnError, ConcurrentModification

__all__ = ["BpmnError", "ConcurrentModification", "EmbeddedAdapter"]
