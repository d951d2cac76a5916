"""User tasks: list, inspect, claim, unclaim, assign, delegate, complete."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import ConfigDict, Field

from gateway.api.context import Cursor, Engines, Processes
from gateway.processes import ProcessService
from gateway.processes.merged import MergedPage
from gateway.schemas import Page, RequestBody, Task, TaskDetails, TaskQuery
from gateway.variables import REQUEST_VARIABLES_DOC, parse_request_variables

router = APIRouter(prefix="/api/processes/tasks", tags=["tasks"])


class UserRef(RequestBody):
    user_id: str = Field(min_length=1, max_length=255)

    model_config = ConfigDict(json_schema_extra={"examples": [{"user_id": "alice"}]})


class Completion(RequestBody):
    variables: dict[str, Any] | None = Field(None, **REQUEST_VARIABLES_DOC)

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"variables": {"approved": {"value": True, "type": "Boolean"}}}]}
    )


@router.get(
    "", response_model=Page[Task] | MergedPage[Task], summary="List tasks (one engine, or every one with engine=*)"
)
async def list_tasks(engines: Engines, query: Annotated[TaskQuery, Query()], cursor: Cursor = None) -> Any:
    """A page of open user tasks, by assignee, candidate group or user, unassigned, instance, definition, status, due
    date, process instance variables (`variable`) or task-local variables (`task_variable`), sorted by created, due,
    follow_up, priority, name or assignee (ties broken by id, so pages keep one order).

    Variable conditions are `name:operator:value` with a JSON value, e.g.
    `?variable=amount:gt:10000&variable=customer:eq:"ACME"` or `?task_variable=decision:in:["approve","escalate"]`;
    an invalid one is a 400 naming it, an operator the engine lacks a 501 naming the engine and the operator.

    `engine=*` is one inbox over every configured engine: the engines' pages merged in the requested order, each
    task carrying its `engine`, paged with `cursor=<next_cursor>`; an engine that is down is left out and named in
    `unavailable_engines` (`partial: true`), never a 5xx for the whole list.
    """
    # candidates are read (one engine request per task on Camunda 7 and Flowable) for the tasks shown only
    return await engines.page(
        query, cursor, partial(ProcessService.list_tasks, candidates=False), ProcessService.task_candidates
    )


@router.get("/{task_id}", response_model=TaskDetails, summary="A task with its variables")
async def get_task(task_id: str, processes: Processes) -> TaskDetails:
    """One user task with its variables, delegation and suspension state."""
    return await processes.get_task(task_id)


@router.post("/{task_id}/claim", response_model=Task, summary="Claim a task (409 if another user holds it)")
async def claim(task_id: str, body: UserRef, processes: Processes) -> Task:
    """Claim a task for a user; 409 if another user holds it."""
    return await processes.claim_task(task_id, body.user_id)


@router.post("/{task_id}/unclaim", response_model=Task, summary="Give a task back")
async def unclaim(task_id: str, processes: Processes) -> Task:
    """Give a claimed task back to its candidates."""
    return await processes.unclaim_task(task_id)


@router.post("/{task_id}/assign", response_model=Task, summary="Assign a task to a user")
async def assign(task_id: str, body: UserRef, processes: Processes) -> Task:
    """Assign a task to a user, whoever held it before."""
    return await processes.assign_task(task_id, body.user_id)


@router.post("/{task_id}/delegate", response_model=Task, summary="Delegate a task (the assignee stays owner)")
async def delegate(task_id: str, body: UserRef, processes: Processes) -> Task:
    """Delegate a task to another user; the assignee stays its owner and gets it back when the delegate resolves it."""
    return await processes.delegate_task(task_id, body.user_id)


@router.post("/{task_id}/complete", status_code=status.HTTP_204_NO_CONTENT, summary="Complete a task")
async def complete(task_id: str, processes: Processes, body: Completion | None = None) -> Response:
    """Complete a task, optionally setting variables; answers 204. Unknown body fields are a 422 (so a misspelt
    `variables` never completes a task without them).
    """
    await processes.complete_task(task_id, parse_request_variables(body.variables if body else None))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
