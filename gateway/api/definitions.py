"""Process definitions: deploy, list, inspect, version, suspend, delete."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from adapters.base import Capability
from gateway import bpmn
from gateway.api.context import Context
from gateway.errors import BadRequest, PayloadTooLarge
from gateway.schemas import (
    DefinitionQuery,
    Deployment,
    InstanceQuery,
    Page,
    ProcessDefinition,
    ProcessDefinitionDetails,
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
    tenant_id: str | None = Field(None, max_length=100)


class JsonDeploy(BaseModel):
    bpmn_xml: str = Field(min_length=1)
    name: str | None = Field(None, max_length=255)
    tenant_id: str | None = Field(None, max_length=100)


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


def _upload_summary(upload: Upload) -> dict[str, Any]:
    return {
        "filename": upload.filename,
        "bytes": len(upload.xml),
        "sha256": hashlib.sha256(upload.xml).hexdigest(),
        "name": upload.name,
        "tenant_id": upload.tenant_id,
    }


async def _deploy(ctx: Context, upload: Upload, operation: str, resource_id: str | None = None) -> Deployment:
    bpmn.validate(upload.xml, max_elements=ctx.registry.settings.max_bpmn_elements)

    async def action(uow: Any) -> Deployment:
        deployment = await ctx.adapter.deploy(
            upload.xml, filename=upload.filename, name=upload.name, tenant_id=upload.tenant_id, deployed_by=ctx.actor
        )
        uow.emit(
            "definition.deployed",
            engine=ctx.engine.name,
            tenant_id=upload.tenant_id,
            data={
                "deployment_id": deployment.deployment_id,
                "name": deployment.name,
                "definitions": [{"id": d.id, "key": d.key, "version": d.version} for d in deployment.definitions],
            },
        )
        return deployment

    return await ctx.mutate(
        operation=operation,
        resource_type="definition",
        resource_id=resource_id or (lambda d: d.deployment_id),
        request=_upload_summary(upload),
        action=action,
        status=201,
    )


@router.get("", response_model=Page[ProcessDefinition], summary="List process definitions")
async def list_definitions(
    ctx: Context,
    query: Annotated[DefinitionQuery, Query()],
    with_counts: Annotated[bool, Query(description="Add `instances`, the running count, to each")] = False,
) -> Page[ProcessDefinition]:
    page = await ctx.adapter.list_definitions(query)
    if with_counts:
        for definition in page.items:
            definition.instances = await _running_count(ctx, definition.id)
    return page


async def _running_count(ctx: Context, definition_id: str) -> int:
    running = await ctx.adapter.list_instances(InstanceQuery(definition_id=definition_id, status="active", size=1))
    return running.total


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Deployment,
    summary="Deploy a BPMN file",
    openapi_extra=DEPLOY_BODY,
)
async def deploy(request: Request, ctx: Context) -> Deployment:
    return await _deploy(ctx, await read_upload(request), "deploy")


@router.get("/{definition_id}", response_model=ProcessDefinitionDetails, summary="A definition with its tasks")
async def get_definition(
    definition_id: str, ctx: Context, with_counts: Annotated[bool, Query()] = False
) -> ProcessDefinitionDetails:
    definition = await ctx.adapter.get_definition(definition_id)
    tasks, start_form = bpmn.describe_process(await ctx.adapter.get_definition_xml(definition_id), definition.key)
    details = ProcessDefinitionDetails(**definition.model_dump(), tasks=tasks, start_form=start_form)
    if with_counts:
        details.instances = await _running_count(ctx, definition_id)
    return details


@router.get(
    "/{definition_id}/xml",
    response_class=Response,
    summary="The BPMN XML as deployed",
    responses={200: {"content": {"application/xml": {"example": EXAMPLE_XML}}}},
)
async def get_definition_xml(definition_id: str, ctx: Context) -> Response:
    return Response(await ctx.adapter.get_definition_xml(definition_id), media_type="application/xml")


@router.put(
    "/{definition_id}",
    status_code=status.HTTP_201_CREATED,
    response_model=Deployment,
    summary="Deploy a new version under the same key",
    openapi_extra=DEPLOY_BODY,
)
async def update_definition(definition_id: str, request: Request, ctx: Context) -> Deployment:
    current = await ctx.adapter.get_definition(definition_id)
    upload = await read_upload(request)
    processes = bpmn.validate(upload.xml)
    if current.key not in {p.id for p in processes if p.executable}:
        raise BadRequest(
            f"The new BPMN must contain the executable process '{current.key}' to be a new version of {definition_id}"
        )
    upload.tenant_id = upload.tenant_id or current.tenant_id
    return await _deploy(ctx, upload, "redeploy", resource_id=definition_id)


@router.delete("/{definition_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a definition")
async def delete_definition(
    definition_id: str,
    ctx: Context,
    cascade: Annotated[bool, Query(description="Also delete its instances")] = False,
) -> Response:
    async def action(uow: Any) -> None:
        await ctx.adapter.delete_definition(definition_id, cascade)

    await ctx.mutate(
        operation="delete",
        resource_type="definition",
        resource_id=definition_id,
        request={"cascade": cascade},
        action=action,
        status=204,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class SuspensionChange(BaseModel):
    suspended: bool
    include_instances: bool = False


@router.put("/{definition_id}/suspended", response_model=ProcessDefinition, summary="Suspend or activate")
async def set_suspended(definition_id: str, change: SuspensionChange, ctx: Context) -> ProcessDefinition:
    ctx.engine.require(Capability.SUSPEND_DEFINITION)

    async def action(uow: Any) -> ProcessDefinition:
        return await ctx.adapter.set_definition_suspended(definition_id, change.suspended, change.include_instances)

    return await ctx.mutate(
        operation="suspend" if change.suspended else "activate",
        resource_type="definition",
        resource_id=definition_id,
        request=change.model_dump(),
        action=action,
    )
