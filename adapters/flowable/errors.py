"""Flowable's error bodies and the errors whose HTTP status alone would misclassify them.

Flowable REST answers errors with `{"message": "<status phrase>", "exception": "<the engine's text>"}`
(ErrorInfo): `message` is only "Bad request", "Not found", "Internal server error" and the like, the real
reason is in `exception`. Its exception handler maps FlowableObjectNotFoundException to 404, illegal
arguments and states to 400, conflicts and FlowableTaskAlreadyClaimedException to 409, and every other
engine exception to 500, among them several that are plainly conflicts or bad input.
"""

from __future__ import annotations

import httpx

from gateway.errors import (
    BadRequest,
    ConcurrentModification,
    Conflict,
    EngineError,
    GatewayError,
    InvalidBpmn,
    NotFound,
)
from gateway.resilience import default_engine_message

# FlowableException texts of operations refused because of the object's state (they come as 500):
# "Cannot start process instance. Process definition ... is suspended", "Cannot complete a suspended Task[...]",
# "A delegated Task[...] cannot be completed, but should be resolved instead."
STATE_CONFLICTS = ("is suspended", "a suspended", "cannot be completed, but should be resolved")
# FlowableOptimisticLockingException: another transaction changed the same row first.
CONCURRENT_UPDATE = "was updated by another transaction concurrently"
# FlowableObjectNotFoundException texts that Flowable re-throws as 400: starting an instance of an unknown
# definition (7.2 by key: "No process definition found for key 'x'", with a tenant: "Process definition with
# key 'x' and tenantId 't' was not found"; 6.x: "no processes deployed with key 'x'"), and (as the spec
# documents it) listing the variables of an unknown process instance.
NOT_FOUND_AS_BAD_REQUEST = (
    "no process definition found",
    "process definition with key",
    "no processes deployed with key",
    "no deployed process definition found",
    "could not find",
)
# FlowableException texts of a migration the instance does not allow (they come as 500): a waiting activity
# neither mapped nor in the target ("Migration Activity mapping missing for activity definition Id:'x' or its MI
# Parent"), a mapping to an activity the target lacks, an instance and target of different tenants.
MIGRATION_REFUSED = ("migration activity mapping missing", "cannot find activity", "tenant mismatch")
# What the texts of a deployment's parse and validation failures begin with (BpmnParse, XMLException) or
# hold (the XSD validator's cvc- messages, wrapped by 7.2 in "javax.xml.transform.TransformerException: ...
# SAXParseException; lineNumber: 9; columnNumber: 8; cvc-id.2: ..."); they come as 500.
BPMN_REJECTED = (
    "errors while parsing",
    "error while reading the bpmn",
    "the bpmn 2.0 xml",
    "error reading xml",
    "error processing bpmn",
    "cvc-",
)


def engine_message(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("exception"), str) and body["exception"]:
        return body["exception"]
    return default_engine_message(response)


def classify(response: httpx.Response, message: str | None) -> type[GatewayError] | None:
    text = (message or "").lower()
    status = response.status_code
    if status == 400 and text.startswith(NOT_FOUND_AS_BAD_REQUEST):
        return NotFound
    if status < 500 or not text:
        return None
    if CONCURRENT_UPDATE in text:
        return ConcurrentModification
    if any(marker in text for marker in STATE_CONFLICTS):
        return Conflict
    request = response.request
    if request.method != "POST":
        return None
    if request.url.path.endswith("/repository/deployments") and (
        text.startswith(BPMN_REJECTED) or "saxparseexception" in text
    ):
        return InvalidBpmn
    if request.url.path.endswith("/migrate") and any(marker in text for marker in MIGRATION_REFUSED):
        return BadRequest
    if "/management/jobs/" in request.url.path:
        # Running a failed job again (action "execute") answers 500 with the job's own exception when it
        # fails again. That is the process failing, not the engine: no fault for the circuit breaker.
        return EngineError
    return None
