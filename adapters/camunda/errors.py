"""Camunda 7 error answers that their HTTP status alone misclassifies.

Camunda answers `{type, message, code}`. Many engine exceptions surface as 500 (or as 400) although the spec
documents them as "does not exist" or they are plain conflicts: a task claimed by someone else
(`TaskAlreadyClaimedException`), work on a suspended task or definition (`SuspendedEntityInteractionException`),
a concurrent change (`OptimisticLockingException`: the engine rolled its command back, so a retry is safe).
REST resources often wrap the engine exception in a `RestException` that only keeps its message, so the
message decides when the type cannot.
"""

from __future__ import annotations

import re

import httpx

from gateway.errors import ConcurrentModification, Conflict, GatewayError, InvalidBpmn, NotFound

_CONFLICT_TYPES = frozenset({"TaskAlreadyClaimedException", "SuspendedEntityInteractionException"})
_CONFLICT_MESSAGES = re.compile(
    r"is already claimed by someone else"  # TaskAlreadyClaimedException
    r"|\bis suspended\b"  # ENGINE-03043 ... with id '...' is suspended.
    r"|deletion of process definition without cascading",  # ENGINE-03076: instances still run
    re.IGNORECASE,
)
_CONCURRENT_MESSAGES = re.compile(r"updated by another transaction concurrently", re.IGNORECASE)  # ENGINE-03005
# Anchored on the id, so that an unrelated "does not exist" (say, a missing database table) stays an engine error.
_NOT_FOUND_MESSAGES = re.compile(
    r"with id \S+ does not exist"  # Process instance with id 42 does not exist
    r"|\b(?:execution|task) \S+ doesn't exist"  # execution 42 doesn't exist: execution is null
    r"|cannot find \w+ with id"  # Cannot find task with id 42: task is null
    r"|no matching [\w ]+ with (?:id|key)"  # No matching definition with id 42
    r"|\bno\b[\w ]* found (?:for|with) id",  # No process instance found for id '42'
    re.IGNORECASE,
)


def error_type(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("type") if isinstance(body, dict) else None


def classify(status: int, kind: str | None, message: str | None) -> type[GatewayError] | None:
    """The typed error for a Camunda error answer, or None to map it by its status."""
    if kind == "ParseException":
        return InvalidBpmn
    if status not in (400, 500):
        return None
    if kind == "OptimisticLockingException" or (message and _CONCURRENT_MESSAGES.search(message)):
        return ConcurrentModification
    if kind in _CONFLICT_TYPES or (message and _CONFLICT_MESSAGES.search(message)):
        return Conflict
    if message and _NOT_FOUND_MESSAGES.search(message):
        return NotFound
    return None


def migration_failures(response: httpx.Response) -> dict[str, list[str]]:
    """Activity id -> failures of a migration Camunda refused, from the `validationReport` of its 400 answer: a
    `MigratingProcessInstanceValidationException` (activity and transition instance reports, by `sourceScopeId`)
    or a `MigrationPlanValidationException` (instruction reports, by `sourceActivityIds`). Empty for any other
    answer."""
    try:
        body = response.json()
    except ValueError:
        return {}
    report = body.get("validationReport") if isinstance(body, dict) else None
    if not isinstance(report, dict):
        return {}
    failures: dict[str, list[str]] = {}
    for key in ("activityInstanceValidationReports", "transitionInstanceValidationReports"):
        for item in report.get(key) or []:
            failures.setdefault(str(item.get("sourceScopeId")), []).extend(item.get("failures") or [])
    for item in report.get("instructionReports") or []:
        for activity in (item.get("instruction") or {}).get("sourceActivityIds") or []:
            failures.setdefault(str(activity), []).extend(item.get("failures") or [])
    return failures
