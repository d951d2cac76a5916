"""User tasks: list, inspect, claim, unclaim, assign, delegate, complete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field

from gateway.engines.port import Capability
from gateway.api.context import Context, variable_summary
from gateway.schemas import Page, Task, TaskDetails, TaskQuery
from gateway.uow import UnitOfWork
from gateway.variables import parse_request_variables

router = APIRouter(prefix="/api/processes/tasks", tags=["tasks"])


class UserRef(BaseModel):
    user_id: str = Field(min_length=1, max_length=255)

    model_config = {"json_schema_extra": {"examples": [{"user_id": "alice"}]}}


class Completion(BaseModel):
    variables: dict[str, Any] | None = None

    model_config = {"json_schema_extra": {"examples": [{"variables": {"approved": {"value": True, "type": "Boolean"}}}]}}


@router.get("", response_model=Page[Task], summary="List tasks")
async def list_tasks(ctx: Context, query: Annotated[TaskQuery, Query()]) -> Page[Task]:
    return await ctx.adapter.list_tasks(query)


@router.get("/{task_id}", response_model=TaskDetails, summary="A task with its variables")
async def get_task(task_id: str, ctx: Context) -> TaskDetails:
    return await ctx.adapter.get_task(task_id)


async def _assignment(ctx: Context, task_id: str, action_name: str, user_id: str | None) -> Task:
    adapter = ctx.adapter
    calls = {
        "claim": lambda: adapter.claim_task(task_id, user_id),
        "unclaim": lambda: adapter.unclaim_task(task_id),
        "assign": lambda: adapter.assign_task(task_id, user_id),
        "delegate": lambda: adapter.delegate_task(task_id, user_id),
    }

    async def action(uow: UnitOfWork) -> Task:
        task = await calls[action_name]()
        uow.emit(
            "task.assigned",
            engine=ctx.engine.name,
            instance_id=task.instance_id,
            tenant_id=task.tenant_id,
            data={
                "task_id": task.id,
                "task_name": task.name,
                "action": action_name,
                "assignee": task.assignee,
                "owner": task.owner,
            },
        )
        return task

    return await ctx.mutate(
        operation=action_name,
        resource_type="task",
        resource_id=task_id,
        request={"user_id": user_id} if user_id is not None else {},
        action=action,
    )


@router.post("/{task_id}/claim", response_model=Task, summary="Claim a task (409 if another user holds it)")
async def claim(task_id: str, body: UserRef, ctx: Context) -> Task:
    return await _assignment(ctx, task_id, "claim", body.user_id)


@router.post("/{task_id}/unclaim", response_model=Task, summary="Give a task back")
async def unclaim(task_id: str, ctx: Context) -> Task:
    return await _assignment(ctx, task_id, "unclaim", None)


@router.post("/{task_id}/assign", response_model=Task, summary="Assign a task to a user")
async def assign(task_id: str, body: UserRef, ctx: Context) -> Task:
    return await _assignment(ctx, task_id, "assign", body.user_id)


@router.post("/{task_id}/delegate", response_model=Task, summary="Delegate a task (the assignee stays owner)")
async def delegate(task_id: str, body: UserRef, ctx: Context) -> Task:
    ctx.engine.require(Capability.DELEGATE_TASK)
    return await _assignment(ctx, task_id, "delegate", body.user_id)


@router.post("/{task_id}/complete", status_code=status.HTTP_204_NO_CONTENT, summary="Complete a task")
async def complete(task_id: str, ctx: Context, body: Completion | None = None) -> Response:
    variables = parse_request_variables(body.variables if body else None)

    async def action(uow: UnitOfWork) -> None:
        mark = uow.mark()
        task = await ctx.adapter.complete_task(task_id, variables, user_id=ctx.actor)
        uow.emit(
            "task.completed",
            at=mark,
            engine=ctx.engine.name,
            instance_id=task.instance_id,
            tenant_id=task.tenant_id,
            data={
                "task_id": task_id,
                "task_name": task.name,
                "task_definition_key": task.task_definition_key,
                "definition_key": task.definition_key,
                "completed_by": ctx.actor,
                "variables": {name: typed.model_dump(mode="json") for name, typed in variables.items()},
            },
        )

    await ctx.mutate(
        operation="complete",
        resource_type="task",
        resource_id=task_id,
        request={"variables": variable_summary(variables)},
        action=action,
        status=204,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
