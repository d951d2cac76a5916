"""The process use cases (deploy, start, terminate, suspend, variables, task actions): `ProcessService`."""

from gateway.processes.service import ProcessService

__all__ = ["ProcessService"]
