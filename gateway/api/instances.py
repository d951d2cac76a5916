"""Process instances: start, list, inspect, terminate, suspend, variables."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field, model_validator

from gateway.api.context import Processes
from gateway.schemas import InstanceQuery, Page, ProcessInstance, ProcessInstanceDetails, StartInstance
from gateway.variables import TypedValue, parse_request_variables

router = APIRouter(prefix="/api/processes/instances", tags=["instances"])

VARIABLES_EXAMPLE = {"amount": {"value": 250, "type": "Integer"}, "customer": {"value": "ACME"}}


class StartRequest(BaseModel):
    definition_key: str | None = None
    definition_id: str | None = None
    business_key: str | None = None
    variables: dict[str, Any] | None = None
    tenant_id: str | None = None

    model_config = {
        "json_schema_extra": {
            "examples": [{"definition_key": "order", "business_key": "order-4711", "variables": VARIABLES_EXAMPLE}]
        }
    }

    @model_validator(mode="after")
    def _one_definition(self) -> StartRequest:
        if bool(self.definition_key) == bool(self.definition_id):
            raise ValueError("give exactly one of definition_key or definition_id")
        return self


@router.get("", response_model=Page[ProcessInstance], summary="List process instances")
async def list_instances(processes: Processes, query: Annotated[InstanceQuery, Query()]) -> Page[ProcessInstance]:
    return await processes.list_instances(query)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProcessInstance, summary="Start an instance")
async def start_instance(body: StartRequest, processes: Processes, response: Response) -> ProcessInstance:
    instance = await processes.start_instance(
        StartInstance(
            definition_key=body.definition_key,
            definition_id=body.definition_id,
            business_key=body.business_key,
            variables=parse_request_variables(body.variables),
            tenant_id=body.tenant_id,
        )
    )
    response.headers["Location"] = f"/api/processes/instances/{instance.id}"
    return instance


@router.get("/{instance_id}", response_model=ProcessInstanceDetails, summary="An instance with its activities")
async def get_instance(instance_id: str, processes: Processes) -> ProcessInstanceDetails:
    return await processes.get_instance(instance_id)


@router.delete("/{instance_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Terminate an instance")
async def terminate_instance(
    instance_id: str, processes: Processes, reason: Annotated[str | None, Query(max_length=4000)] = None
) -> Response:
    await processes.terminate_instance(instance_id, reason)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class InstanceSuspension(BaseModel):
    suspended: bool


@router.put("/{instance_id}/suspended", response_model=ProcessInstance, summary="Suspend or activate")
async def set_suspended(instance_id: str, change: InstanceSuspension, processes: Processes) -> ProcessInstance:
    return await processes.set_instance_suspended(instance_id, suspended=change.suspended)


@router.get(
    "/{instance_id}/variables",
    response_model=dict[str, TypedValue],
    summary="The instance's variables",
    responses={200: {"content": {"application/json": {"example": VARIABLES_EXAMPLE}}}},
)
async def get_variables(instance_id: str, processes: Processes) -> dict[str, TypedValue]:
    return await processes.get_variables(instance_id)


class VariablesChange(BaseModel):
    variables: dict[str, Any] = Field(default_factory=dict)
    deletions: list[str] = Field(default_factory=list)

    model_config = {"json_schema_extra": {"examples": [{"variables": VARIABLES_EXAMPLE, "deletions": ["draft"]}]}}


@router.put("/{instance_id}/variables", response_model=dict[str, TypedValue], summary="Change variables")
async def update_variables(instance_id: str, change: VariablesChange, processes: Processes) -> dict[str, TypedValue]:
    return await processes.update_variables(instance_id, parse_request_variables(change.variables), change.deletions)
