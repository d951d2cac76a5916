"""Process instances: start, list, inspect, terminate, suspend, variables."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field, model_validator

from adapters.base import Capability
from gateway import journal
from gateway.api.context import Context, variable_summary
from gateway.errors import BadRequest
from gateway.schemas import InstanceQuery, Page, ProcessInstance, ProcessInstanceDetails, StartInstance
from gateway.uow import UnitOfWork, reading
from gateway.variables import TypedValue, parse_request_variables

router = APIRouter(prefix="/api/processes/instances", tags=["instances"])

VARIABLES_EXAMPLE = {"amount": {"value": 250, "type": "Integer"}, "customer": {"value": "ACME"}}


class StartRequest(BaseModel):
    definition_key: str | None = Field(None, max_length=255)
    definition_id: str | None = Field(None, max_length=255)
    business_key: str | None = Field(None, max_length=255)
    variables: dict[str, Any] | None = None
    tenant_id: str | None = Field(None, max_length=100)

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


def _instance_event_data(instance: ProcessInstance, **extra: Any) -> dict[str, Any]:
    return {
        "definition_id": instance.definition_id,
        "definition_key": instance.definition_key,
        "business_key": instance.business_key,
        **extra,
    }


@router.get("", response_model=Page[ProcessInstance], summary="List process instances")
async def list_instances(ctx: Context, query: Annotated[InstanceQuery, Query()]) -> Page[ProcessInstance]:
    return await ctx.adapter.list_instances(query)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProcessInstance, summary="Start an instance")
async def start_instance(body: StartRequest, ctx: Context, response: Response) -> ProcessInstance:
    variables = parse_request_variables(body.variables)
    request = StartInstance(
        definition_key=body.definition_key,
        definition_id=body.definition_id,
        business_key=body.business_key,
        variables=variables,
        tenant_id=body.tenant_id,
    )

    async def action(uow: UnitOfWork) -> ProcessInstance:
        mark = uow.mark()
        instance = await ctx.adapter.start_instance(request, started_by=ctx.actor)
        uow.emit(
            "instance.started",
            at=mark,
            engine=ctx.engine.name,
            instance_id=instance.id,
            tenant_id=instance.tenant_id,
            data=_instance_event_data(
                instance,
                started_by=ctx.actor,
                variables={name: typed.model_dump(mode="json") for name, typed in variables.items()},
            ),
        )
        return instance

    instance = await ctx.mutate(
        operation="start",
        resource_type="instance",
        resource_id=lambda i: i.id,
        request={
            "definition_key": body.definition_key,
            "definition_id": body.definition_id,
            "business_key": body.business_key,
            "tenant_id": body.tenant_id,
            "variables": variable_summary(variables),
        },
        action=action,
        status=201,
    )
    response.headers["Location"] = f"/api/processes/instances/{instance.id}"
    return instance


@router.get("/{instance_id}", response_model=ProcessInstanceDetails, summary="An instance with its activities")
async def get_instance(instance_id: str, ctx: Context) -> ProcessInstanceDetails:
    details = await ctx.adapter.get_instance(instance_id)
    async with reading(ctx.db) as session:
        trail, _ = await journal.list_audit(
            session, resource_type="instance", resource_id=instance_id, limit=100, newest_first=False
        )
    details.audit_trail = trail
    return details


@router.delete("/{instance_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Terminate an instance")
async def terminate_instance(
    instance_id: str, ctx: Context, reason: Annotated[str | None, Query(max_length=4000)] = None
) -> Response:
    async def action(uow: UnitOfWork) -> None:
        mark = uow.mark()
        await ctx.adapter.terminate_instance(instance_id, reason)
        uow.emit("instance.terminated", at=mark, engine=ctx.engine.name, instance_id=instance_id, data={"reason": reason})

    await ctx.mutate(
        operation="terminate",
        resource_type="instance",
        resource_id=instance_id,
        request={"reason": reason},
        action=action,
        status=204,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class InstanceSuspension(BaseModel):
    suspended: bool


@router.put("/{instance_id}/suspended", response_model=ProcessInstance, summary="Suspend or activate")
async def set_suspended(instance_id: str, change: InstanceSuspension, ctx: Context) -> ProcessInstance:
    ctx.engine.require(Capability.SUSPEND_INSTANCE)

    async def action(uow: UnitOfWork) -> ProcessInstance:
        instance = await ctx.adapter.set_instance_suspended(instance_id, change.suspended)
        uow.emit(
            "instance.suspended" if change.suspended else "instance.activated",
            engine=ctx.engine.name,
            instance_id=instance_id,
            tenant_id=instance.tenant_id,
            data=_instance_event_data(instance),
        )
        return instance

    return await ctx.mutate(
        operation="suspend" if change.suspended else "activate",
        resource_type="instance",
        resource_id=instance_id,
        request=change.model_dump(),
        action=action,
    )


@router.get(
    "/{instance_id}/variables",
    response_model=dict[str, TypedValue],
    summary="The instance's variables",
    responses={200: {"content": {"application/json": {"example": VARIABLES_EXAMPLE}}}},
)
async def get_variables(instance_id: str, ctx: Context) -> dict[str, TypedValue]:
    return await ctx.adapter.get_variables(instance_id)


class VariablesChange(BaseModel):
    variables: dict[str, Any] = Field(default_factory=dict)
    deletions: list[str] = Field(default_factory=list)

    model_config = {"json_schema_extra": {"examples": [{"variables": VARIABLES_EXAMPLE, "deletions": ["draft"]}]}}


@router.put("/{instance_id}/variables", response_model=dict[str, TypedValue], summary="Change variables")
async def update_variables(instance_id: str, change: VariablesChange, ctx: Context) -> dict[str, TypedValue]:
    modifications = parse_request_variables(change.variables)
    both = sorted(set(modifications) & set(change.deletions))
    if both:
        raise BadRequest(f"Variables both modified and deleted: {', '.join(both)}")

    async def action(uow: UnitOfWork) -> dict[str, TypedValue]:
        return await ctx.adapter.update_variables(instance_id, modifications, change.deletions)

    return await ctx.mutate(
        operation="update_variables",
        resource_type="instance",
        resource_id=instance_id,
        request={"variables": variable_summary(modifications), "deletions": change.deletions},
        action=action,
    )
