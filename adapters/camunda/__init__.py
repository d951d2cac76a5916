"""Camunda Platform 7 (`engine-rest`) adapter."""

from adapters.camunda.adapter import Camunda7Adapter

__all__ = ["Camunda7Adapter"]
