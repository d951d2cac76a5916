"""Process instances: start, list, inspect, terminate, suspend, variables."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import ConfigDict, Field, model_validator

from gateway.api.context import Cursor, Engines, Processes
from gateway.processes import ProcessService
from gateway.processes.merged import MergedPage
from gateway.schemas import (
    InstanceMigration,
    InstanceModification,
    InstanceQuery,
    ModificationInstruction,
    ModificationType,
    Page,
    ProcessInstance,
    ProcessInstanceDetails,
    RequestBody,
    StartInstance,
)
from gateway.variables import REQUEST_VARIABLES_DOC, TypedValue, parse_request_variables

router = APIRouter(prefix="/api/processes/instances", tags=["instances"])

VARIABLES_EXAMPLE: dict[str, Any] = {"amount": {"value": 250, "type": "Integer"}, "customer": {"value": "ACME"}}


class StartRequest(RequestBody):
    definition_key: str | None = Field(None, max_length=255)
    definition_id: str | None = Field(None, max_length=255)
    business_key: str | None = Field(None, max_length=255)
    variables: dict[str, Any] | None = Field(None, **REQUEST_VARIABLES_DOC)
    tenant_id: str | None = Field(None, min_length=1, max_length=100)
    start_message: str | None = Field(
        None,
        max_length=255,
        description="Start at the message start event of this message name (see `start_events` of the definition); "
        "without it the none start event is used, or the only message start event",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"definition_key": "order", "business_key": "order-4711", "variables": VARIABLES_EXAMPLE}]
        }
    )

    @model_validator(mode="after")
    def _one_definition(self) -> StartRequest:
        if bool(self.definition_key) == bool(self.definition_id):
            raise ValueError("give exactly one of definition_key or definition_id")
        return self


@router.get(
    "",
    response_model=Page[ProcessInstance] | MergedPage[ProcessInstance],
    summary="List process instances (one engine, or every one with engine=*)",
)
async def list_instances(engines: Engines, query: Annotated[InstanceQuery, Query()], cursor: Cursor = None) -> Any:
    """A page of process instances, filtered by definition, business key, status, start time, incidents or process
    variables (`variable`), sorted by start_time, end_time, business_key or definition_key (ties broken by id).

    Variable conditions are `name:operator:value` with a JSON value (quote strings), all of which must hold:
    `?variable=order_no:eq:"4711"`, `?variable=amount:gte:10000&variable=region:in:["EU","US"]`,
    `?variable=customer:like:"ACME%"`. An invalid condition is a 400 naming it; an operator the engine lacks (Camunda
    7 and Flowable have no `in`, Camunda 8 no `gt`/`gte`/`lt`/`lte`) a 501 naming the engine and the operator.

    `engine=*` lists the instances of every configured engine merged in the requested order (each names its
    `engine`), paged with `cursor=<next_cursor>`; an engine that is down is named in `unavailable_engines`.
    """
    return await engines.page(query, cursor, ProcessService.list_instances)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProcessInstance, summary="Start an instance")
async def start_instance(body: StartRequest, processes: Processes, response: Response) -> ProcessInstance:
    """Start a process instance by `definition_key` (latest version) or `definition_id`, with typed variables; answers
    201 with the instance and a `Location` header.
    """
    instance = await processes.start_instance(
        StartInstance(
            definition_key=body.definition_key,
            definition_id=body.definition_id,
            business_key=body.business_key,
            variables=parse_request_variables(body.variables),
            tenant_id=body.tenant_id,
            start_message=body.start_message,
        )
    )
    response.headers["Location"] = f"/api/processes/instances/{instance.id}"
    return instance


@router.get("/{instance_id}", response_model=ProcessInstanceDetails, summary="An instance with its activities")
async def get_instance(instance_id: str, processes: Processes) -> ProcessInstanceDetails:
    """One process instance with its variables, activities, current activities, incidents, execution path and the
    gateway's audit trail for it (rows the caller may read).
    """
    return await processes.get_instance(instance_id)


@router.delete("/{instance_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Terminate an instance")
async def terminate_instance(
    instance_id: str, processes: Processes, reason: Annotated[str | None, Query(max_length=4000)] = None
) -> Response:
    """Terminate a running process instance; `reason` is kept in the audit log."""
    await processes.terminate_instance(instance_id, reason)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class InstanceSuspension(RequestBody):
    suspended: bool


@router.put("/{instance_id}/suspended", response_model=ProcessInstance, summary="Suspend or activate")
async def set_suspended(instance_id: str, change: InstanceSuspension, processes: Processes) -> ProcessInstance:
    """Suspend or activate a process instance."""
    return await processes.set_instance_suspended(instance_id, suspended=change.suspended)


@router.get(
    "/{instance_id}/variables",
    response_model=dict[str, TypedValue],
    summary="The instance's variables",
    responses={200: {"content": {"application/json": {"example": VARIABLES_EXAMPLE}}}},
)
async def get_variables(instance_id: str, processes: Processes) -> dict[str, TypedValue]:
    """The process instance's variables, each as `{value, type}`."""
    return await processes.get_variables(instance_id)


class VariablesChange(RequestBody):
    variables: dict[str, Any] = Field(default_factory=dict, **REQUEST_VARIABLES_DOC)
    deletions: list[str] = Field(default_factory=list, description="Names of the variables to delete")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"variables": VARIABLES_EXAMPLE, "deletions": ["draft"]}]}
    )


@router.put("/{instance_id}/variables", response_model=dict[str, TypedValue], summary="Change variables")
async def update_variables(instance_id: str, change: VariablesChange, processes: Processes) -> dict[str, TypedValue]:
    """Set (`variables`) and delete (`deletions`) process instance variables in one change; answers the variables after
    it.
    """
    return await processes.update_variables(instance_id, parse_request_variables(change.variables), change.deletions)


class InstructionRequest(RequestBody):
    type: ModificationType = Field(
        description="`start_before`: start the activity (run it); `start_after`: take the activity's outgoing flow; "
        "`cancel`: cancel every running instance of the activity"
    )
    activity_id: str = Field(min_length=1, max_length=255, description="The BPMN element id")
    variables: dict[str, Any] | None = Field(None, **REQUEST_VARIABLES_DOC)


class ModificationRequest(RequestBody):
    instructions: list[InstructionRequest] = Field(
        min_length=1, max_length=100, description="Applied in order, all or none; at most 100"
    )
    skip_listeners: bool = Field(
        False, strict=True, description="Skip execution listeners (Camunda 7 `skipCustomListeners`)"
    )
    annotation: str | None = Field(None, max_length=4000, description="Why; kept in the audit log and by the engine")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "instructions": [
                        {"type": "cancel", "activity_id": "charge-card"},
                        {"type": "start_before", "activity_id": "review"},
                    ],
                    "annotation": "card service down; reviewed by hand",
                }
            ]
        }
    )


@router.post("/{instance_id}/modification", response_model=ProcessInstance, summary="Move an instance's tokens")
async def modify_instance(instance_id: str, body: ModificationRequest, processes: Processes) -> ProcessInstance:
    """Start activities before or after a given one and cancel running ones, in the order given: move a stuck instance
    past a failing activity or back to an earlier one. Answers the instance after the change; 400 naming an
    activity id the process does not have or the engine cannot start there; 501 on an engine that cannot.
    """
    return await processes.modify_instance(
        instance_id,
        InstanceModification(
            instructions=[
                ModificationInstruction(
                    type=i.type, activity_id=i.activity_id, variables=parse_request_variables(i.variables)
                )
                for i in body.instructions
            ],
            skip_listeners=body.skip_listeners,
            annotation=body.annotation,
        ),
    )


class MigrationRequest(RequestBody):
    target_definition_id: str = Field(
        min_length=1, max_length=255, description="The definition (version) to move the instance to"
    )
    mappings: dict[str, str] | None = Field(
        None, description="Source activity id to target activity id, where ids differ; equal ids map themselves"
    )


@router.post("/{instance_id}/migration", response_model=ProcessInstance, summary="Migrate to another definition")
async def migrate_instance(instance_id: str, body: MigrationRequest, processes: Processes) -> ProcessInstance:
    """Move a running instance to another definition version, its waiting activities mapped by id (`mappings` for ids
    that differ): Camunda 7 (`/migration/generate` + `/migration/execute`), Flowable (`/migrate`), Camunda 8
    (`/migration`), the embedded engine (SpiffWorkflow's `migrate_workflow`). Answers the instance on its new
    definition and emits `instance.migrated`. 400 naming the activity when a mapping names one the source or target
    lacks, or the engine refuses a waiting activity it cannot map (nothing moves); 409 for an ended instance.
    """
    return await processes.migrate_instance(
        instance_id, InstanceMigration(target_definition_id=body.target_definition_id, mappings=body.mappings or {})
    )
