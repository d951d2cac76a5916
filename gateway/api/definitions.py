"""Process definitions: deploy, list, inspect, version, suspend, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from gateway import bpmn
from gateway.api.context import Processes
from gateway.errors import BadRequest, PayloadTooLarge
from gateway.schemas import (
    DefinitionQuery,
    Deployment,
    Page,
    ProcessDefinition,
    ProcessDefinitionDetails,
    RequestBody,
)

router = APIRouter(prefix="/api/processes/definitions", tags=["definitions"])

EXAMPLE_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'id="d" targetNamespace="http://example.com"><bpmn:process id="approval" name="Approval" isExecutable="true">'
    '<bpmn:startEvent id="start"/></bpmn:process></bpmn:definitions>'
)

DEPLOY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "BPMN 2.0 XML"},
                        "name": {"type": "string"},
                        "tenant_id": {"type": "string"},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["bpmn_xml"],
                    "properties": {
                        "bpmn_xml": {"type": "string"},
                        "name": {"type": "string"},
                        "tenant_id": {"type": "string"},
                    },
                },
                "example": {"bpmn_xml": EXAMPLE_XML, "name": "approval"},
            },
        },
    }
}


class Upload(BaseModel):
    xml: bytes
    filename: str = Field(max_length=255)
    name: str | None = Field(None, max_length=255)
    tenant_id: str | None = Field(None, min_length=1, max_length=100)


class JsonDeploy(RequestBody):
    bpmn_xml: str = Field(min_length=1)
    name: str | None = Field(None, max_length=255)
    tenant_id: str | None = Field(None, min_length=1, max_length=100)


async def read_upload(request: Request) -> Upload:
    """A BPMN file from multipart `file` or JSON `bpmn_xml`, within the upload limit."""
    limit: int = request.app.state.settings.max_upload_bytes
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=10)
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise BadRequest("The multipart body needs a 'file' part with the BPMN XML")
        xml = await file.read(limit + 1)
        name, tenant_id = form.get("name"), form.get("tenant_id")
        upload = Upload(
            xml=xml,
            filename=file.filename or "process.bpmn",
            name=name if isinstance(name, str) and name else None,
            tenant_id=tenant_id if isinstance(tenant_id, str) and tenant_id else None,
        )
    elif content_type.startswith("application/json"):
        body = JsonDeploy.model_validate_json(await request.body())
        xml = bpmn.encode_text(body.bpmn_xml)
        upload = Upload(xml=xml, filename="process.bpmn", name=body.name, tenant_id=body.tenant_id)
    else:
        raise BadRequest("Send the BPMN as multipart/form-data (part 'file') or as JSON {\"bpmn_xml\": ...}")
    if len(upload.xml) > limit:
        raise PayloadTooLarge(f"The BPMN file is larger than the limit of {limit} bytes (PM_MAX_UPLOAD_BYTES)")
    return upload


@router.get("", response_model=Page[ProcessDefinition], summary="List process definitions")
async def list_definitions(
    processes: Processes,
    query: Annotated[DefinitionQuery, Query()],
    with_counts: Annotated[bool, Query(description="Add `instances`, the running count, to each")] = False,
) -> Page[ProcessDefinition]:
    """A page of deployed process definitions (latest versions unless `latest_only=false`), filtered and sorted; on the
    engine chosen by `engine` (default engine otherwise).
    """
    return await processes.list_definitions(query, with_counts=with_counts)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Deployment,
    summary="Deploy a BPMN file",
    openapi_extra=DEPLOY_BODY,
)
async def deploy(request: Request, processes: Processes) -> Deployment:
    """Deploy a BPMN 2.0 file (multipart part `file`, or JSON `bpmn_xml`) to the engine; answers the deployment with
    every process definition it created. Invalid BPMN is a 400 naming the line or element.
    """
    upload = await read_upload(request)
    return await processes.deploy(upload.xml, filename=upload.filename, name=upload.name, tenant_id=upload.tenant_id)


@router.get("/{definition_id}", response_model=ProcessDefinitionDetails, summary="A definition with its tasks")
async def get_definition(
    definition_id: str, processes: Processes, with_counts: Annotated[bool, Query()] = False
) -> ProcessDefinitionDetails:
    """One process definition with its user and service tasks and its start form; `with_counts` adds the number of
    running instances.
    """
    return await processes.get_definition(definition_id, with_counts=with_counts)


@router.get(
    "/{definition_id}/xml",
    response_class=Response,
    summary="The BPMN XML as deployed",
    responses={200: {"content": {"application/xml": {"example": EXAMPLE_XML}}}},
)
async def get_definition_xml(definition_id: str, processes: Processes) -> Response:
    """The BPMN 2.0 XML of a process definition exactly as deployed."""
    return Response(await processes.get_definition_xml(definition_id), media_type="application/xml")


@router.put(
    "/{definition_id}",
    status_code=status.HTTP_201_CREATED,
    response_model=Deployment,
    summary="Deploy a new version under the same key",
    openapi_extra=DEPLOY_BODY,
)
async def update_definition(definition_id: str, request: Request, processes: Processes) -> Deployment:
    """Deploy a new version of a process definition: the uploaded BPMN must define the same process key."""
    upload = await read_upload(request)
    return await processes.redeploy(
        definition_id, upload.xml, filename=upload.filename, name=upload.name, tenant_id=upload.tenant_id
    )


@router.delete("/{definition_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a definition")
async def delete_definition(
    definition_id: str,
    processes: Processes,
    cascade: Annotated[bool, Query(description="Also delete its instances")] = False,
) -> Response:
    """Delete a process definition; with running instances it is a 409 unless `cascade=true`, which deletes them too."""
    await processes.delete_definition(definition_id, cascade=cascade)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class SuspensionChange(RequestBody):
    suspended: bool
    include_instances: bool = False


@router.put("/{definition_id}/suspended", response_model=ProcessDefinition, summary="Suspend or activate")
async def set_suspended(definition_id: str, change: SuspensionChange, processes: Processes) -> ProcessDefinition:
    """Suspend (no new instances, optionally its instances paused too) or activate a process definition."""
    return await processes.set_definition_suspended(
        definition_id, suspended=change.suspended, include_instances=change.include_instances
    )
