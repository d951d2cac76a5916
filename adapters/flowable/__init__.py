"""Flowable 7.2 engine adapter (process REST API)."""

from adapters.flowable.adapter import FlowableAdapter

__all__ = ["FlowableAdapter"]
