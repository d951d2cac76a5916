"""Camunda 8 (Zeebe) adapter: the Orchestration Cluster REST API v2."""

from adapters.zeebe.adapter import ZeebeAdapter

__all__ = ["ZeebeAdapter"]
