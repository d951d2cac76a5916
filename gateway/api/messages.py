"""Messages and signals: correlate a message to waiting instances (or start one), broadcast a signal."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response, status
from pydantic import ConfigDict, Field, StringConstraints

from gateway.api.context import Processes
from gateway.schemas import MessageCorrelation, MessageResults, RequestBody, SignalBroadcast, SignalResult
from gateway.variables import REQUEST_VARIABLES_DOC, parse_request_variables

router = APIRouter(prefix="/api/processes", tags=["messages"])


class MessageRequest(RequestBody):
    message_name: str = Field(min_length=1, max_length=255, description="The BPMN message's name")
    business_key: str | None = Field(
        None, max_length=255, description="Only instances with this business key; a started one gets it"
    )
    correlation_keys: dict[Annotated[str, StringConstraints(min_length=1, max_length=255)], Any] | None = Field(
        None,
        description="Only instances whose process variables have these values (Camunda 7 `correlationKeys`). "
        "Camunda 8 correlates by one value: give exactly one key there.",
    )
    process_instance_id: str | None = Field(None, max_length=255, description="Only this instance")
    variables: dict[str, Any] | None = Field(None, **REQUEST_VARIABLES_DOC)
    all: bool = Field(
        False, strict=True, description="Deliver to every matching instance; without it several matches are a 409"
    )
    tenant_id: str | None = Field(None, min_length=1, max_length=100)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message_name": "payment-received",
                    "business_key": "order-4711",
                    "variables": {"paid": {"value": True}},
                }
            ]
        }
    )


class SignalRequest(RequestBody):
    signal_name: str = Field(min_length=1, max_length=255, description="The BPMN signal's name")
    variables: dict[str, Any] | None = Field(None, **REQUEST_VARIABLES_DOC)
    tenant_id: str | None = Field(None, min_length=1, max_length=100)

    model_config = ConfigDict(json_schema_extra={"examples": [{"signal_name": "order-cancelled"}]})


@router.post(
    "/messages",
    response_model=MessageResults,
    summary="Correlate a message",
    responses={202: {"model": MessageResults, "description": "The engine buffered the message (Camunda 8)"}},
)
async def correlate_message(body: MessageRequest, processes: Processes, response: Response) -> MessageResults:
    """Deliver a message to the instances waiting for it (message intermediate catch event, boundary event, receive
    task) that match `business_key`, `correlation_keys` and `process_instance_id`, or start an instance at the
    message start event of that name. Answers 200 with one result per instance (`started` or `correlated`);
    404 when nothing waits for it, 409 when several instances match and `all` is false (nothing is delivered).
    An engine that buffers messages (Camunda 8, with a time-to-live) answers 202 with `published: true`.
    """
    outcome = await processes.correlate_message(
        MessageCorrelation(
            message_name=body.message_name,
            business_key=body.business_key,
            correlation_keys=parse_request_variables(body.correlation_keys, loc="correlation_keys"),
            process_instance_id=body.process_instance_id,
            variables=parse_request_variables(body.variables),
            all=body.all,
            tenant_id=body.tenant_id,
        )
    )
    if outcome.published:
        response.status_code = status.HTTP_202_ACCEPTED
    return outcome


@router.post(
    "/signals", status_code=status.HTTP_202_ACCEPTED, response_model=SignalResult, summary="Broadcast a signal"
)
async def broadcast_signal(body: SignalRequest, processes: Processes) -> SignalResult:
    """Throw a signal to every instance waiting for it (signal catch and boundary events) and start the definitions
    whose start event it is. Answers 202 with `executions`, the number it reached, where the engine tells (the embedded
    engine; Camunda 7, Flowable and Camunda 8 do not report it: null).
    """
    return await processes.broadcast_signal(
        SignalBroadcast(
            signal_name=body.signal_name, variables=parse_request_variables(body.variables), tenant_id=body.tenant_id
        )
    )
