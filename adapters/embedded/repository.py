"""Every query of the embedded engine, one function per question or change (SQLAlchemy Core).

Functions take the session of the running unit of work (or a read session) and return rows; turning
rows into API models is `mapping`'s job.

Changes lock rows in one order, so that concurrent changes on PostgreSQL wait for each other instead of
deadlocking: the instance, then its tasks, their candidates, activities, incidents and jobs.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.embedded.runtime import Activity, ActivityUpdate, Failure, HumanTask, Job, Subscription
from adapters.embedded.tables import (
    activities,
    definitions,
    deployments,
    event_subscriptions,
    incidents,
    instances,
    jobs,
    start_timers,
    task_candidates,
    task_inbox,
    tasks,
    variable_index,
)
from adapters.embedded.variables import index_rows, stored, typed
from gateway.conditions import VariableCondition, VariableOperator, VariableScope
from gateway.db import rowcount
from gateway.engines.port import CLAIM_NEXT_BATCH, CLAIM_NEXT_ROUNDS
from gateway.errors import ConcurrentModification
from gateway.schemas import (
    DefinitionQuery,
    EngineIncidentQuery,
    HistoryQuery,
    InstanceQuery,
    ListQuery,
    SortOrder,
    TaskQuery,
)

Row = sa.Row[Any]
RUNNING = ("active", "suspended")
OPEN_TASK_STATUSES = ("created", "assigned", "delegated")
# A list counts at most this many matches past the requested page: counting a 100,000-task inbox exactly costs far
# more than reading its page (every match's row is visited). `total` is exact when fewer follow the page, else a
# lower bound that still tells a pager there is more.
COUNT_LIMIT = 1_000

# The columns a list is read with: never the run state, which only a change to the instance loads.
INSTANCE_COLUMNS = [column for column in instances.c if column.name != "state"]
DEFINITION_COLUMNS = list(definitions.c)


# ------------------------------------------------------------------ definitions
async def insert_deployment(session: AsyncSession, row: dict[str, Any], definition_rows: list[dict[str, Any]]) -> None:
    await session.execute(deployments.insert(), row)
    await session.execute(definitions.insert(), definition_rows)


async def latest_versions(session: AsyncSession, keys: Sequence[str], tenant_id: str | None) -> dict[str, int]:
    rows = await session.execute(
        sa.select(definitions.c.key, sa.func.max(definitions.c.version))
        .where(definitions.c.key.in_(keys), _same_tenant(definitions.c.tenant_id, tenant_id))
        .group_by(definitions.c.key)
    )
    return {key: version for key, version in rows}


async def get_definition(session: AsyncSession, definition_id: str) -> Row | None:
    result = await session.execute(sa.select(*DEFINITION_COLUMNS).where(definitions.c.id == definition_id))
    return result.first()


async def latest_definition(session: AsyncSession, key: str, tenant_id: str | None) -> Row | None:
    result = await session.execute(
        sa.select(*DEFINITION_COLUMNS)
        .where(definitions.c.key == key, _same_tenant(definitions.c.tenant_id, tenant_id))
        .order_by(definitions.c.version.desc())
        .limit(1)
    )
    return result.first()


async def definition_by_version(session: AsyncSession, key: str, version: int, tenant_id: str | None) -> Row | None:
    """Version `version` of the definition `key` in the tenant (Camunda's calledElementBinding="version")."""
    result = await session.execute(
        sa.select(*DEFINITION_COLUMNS).where(
            definitions.c.key == key, definitions.c.version == version, _same_tenant(definitions.c.tenant_id, tenant_id)
        )
    )
    return result.first()


async def definitions_of_deployment(session: AsyncSession, deployment_id: str) -> list[Row]:
    result = await session.execute(
        sa.select(*DEFINITION_COLUMNS).where(definitions.c.deployment_id == deployment_id).order_by(definitions.c.key)
    )
    return list(result)


async def definition_xml(session: AsyncSession, definition_id: str) -> bytes | None:
    return await session.scalar(
        sa.select(deployments.c.resource)
        .join(definitions, definitions.c.deployment_id == deployments.c.id)
        .where(definitions.c.id == definition_id)
    )


async def list_definitions(session: AsyncSession, query: DefinitionQuery) -> tuple[list[Row], int]:
    conditions: list[sa.ColumnElement[bool]] = []
    if query.key is not None:
        conditions.append(definitions.c.key == query.key)
    if query.name is not None:
        conditions.append(definitions.c.name == query.name)
    if query.suspended is not None:
        conditions.append(definitions.c.suspended == query.suspended)
    if query.tenant_id is not None:
        conditions.append(definitions.c.tenant_id == query.tenant_id)
    if query.latest_only:
        newer = definitions.alias("newer")
        conditions.append(
            ~sa.exists().where(
                newer.c.key == definitions.c.key,
                sa.func.coalesce(newer.c.tenant_id, "") == sa.func.coalesce(definitions.c.tenant_id, ""),
                newer.c.version > definitions.c.version,
            )
        )
    sortable = {
        "key": definitions.c.key,
        "name": definitions.c.name,
        "version": definitions.c.version,
        "deployed_at": definitions.c.deployed_at,
    }
    return await _page(
        session, definitions, DEFINITION_COLUMNS, conditions, query, sortable, "deployed_at", definitions.c.id
    )


async def set_definition_suspended(session: AsyncSession, definition_id: str, suspended: bool) -> None:
    await session.execute(definitions.update().where(definitions.c.id == definition_id).values(suspended=suspended))


async def delete_definition(session: AsyncSession, definition: Row) -> None:
    await session.execute(definitions.delete().where(definitions.c.id == definition.id))
    remaining = await session.scalar(
        sa.select(sa.func.count())
        .select_from(definitions)
        .where(definitions.c.deployment_id == definition.deployment_id)
    )
    if not remaining:
        await session.execute(deployments.delete().where(deployments.c.id == definition.deployment_id))


# ------------------------------------------------------------------ instances
async def insert_instance(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(instances.insert(), row)
    await _index_variables(session, row["id"], row["id"], row["variables"], replacing=False)


async def get_instance(session: AsyncSession, instance_id: str) -> Row | None:
    result = await session.execute(sa.select(*INSTANCE_COLUMNS).where(instances.c.id == instance_id))
    return result.first()


async def load_instance(session: AsyncSession, instance_id: str) -> Row | None:
    """The instance with its run state, to change it (saved back with `save_instance`)."""
    result = await session.execute(sa.select(instances).where(instances.c.id == instance_id))
    return result.first()


async def save_instance(session: AsyncSession, instance: Row, **values: Any) -> None:
    """Write a change made on the instance as loaded; a change someone else saved in between wins."""
    result = await session.execute(
        instances.update()
        .where(instances.c.id == instance.id, instances.c.version == instance.version)
        .values(version=instance.version + 1, **values)
    )
    if rowcount(result) != 1:
        raise ConcurrentModification(f"Instance {instance.id} was changed by someone else at the same time; try again")
    if "variables" in values:
        await _index_variables(session, instance.id, instance.id, values["variables"])


async def migrate_records(
    session: AsyncSession, instance_id: str, target: Row, moved: Sequence[tuple[str, str, str | None, str]]
) -> None:
    """After a migration: the open tasks and activity records `moved` (task id, new activity id, its name, its
    type) and the instance's open incidents name the target definition `target` and their new activities."""
    on_target = {"definition_id": target.id, "definition_key": target.key}
    for task_id, activity_id, name, kind in moved:
        await session.execute(
            tasks.update()
            .where(tasks.c.id == task_id, tasks.c.ended_at.is_(None))
            .values(task_definition_key=activity_id, name=name, **on_target)
        )
        await refresh_inbox(session, task_id)  # the inbox carries the name and process key
        await session.execute(
            activities.update()
            .where(activities.c.id == task_id)
            .values(activity_id=activity_id, activity_name=name, activity_type=kind, **on_target)
        )
        await session.execute(
            incidents.update()
            .where(incidents.c.task_id == task_id, incidents.c.resolved_at.is_(None))
            .values(activity_id=activity_id, activity_name=name)
        )
    await session.execute(
        incidents.update()
        .where(incidents.c.instance_id == instance_id, incidents.c.resolved_at.is_(None))
        .values(**on_target)
    )


async def set_instances_status(
    session: AsyncSession,
    *,
    status: str,
    instance_id: str | None = None,
    definition_id: str | None = None,
    current: str,
) -> None:
    """Suspend or activate (bumping the version, so a change racing with it fails instead of slipping through)."""
    target = instances.c.id == instance_id if instance_id is not None else instances.c.definition_id == definition_id
    await session.execute(
        instances.update()
        .where(target, instances.c.status == current)
        .values(status=status, version=instances.c.version + 1)
    )


async def running_instances(session: AsyncSession, definition_id: str) -> Sequence[sa.Row[Any, Any, Any]]:
    """The active and suspended instances of a definition (id, tenant_id, business_key), oldest first."""
    result = await session.execute(
        sa.select(instances.c.id, instances.c.tenant_id, instances.c.business_key)
        .where(instances.c.definition_id == definition_id, instances.c.status.in_(RUNNING))
        .order_by(instances.c.start_time, instances.c.id)
    )
    return result.all()


async def delete_instances_of(session: AsyncSession, definition_id: str) -> None:
    """Every instance of a definition, running or finished, with all that belongs to it."""
    ids = sa.select(instances.c.id).where(instances.c.definition_id == definition_id)
    task_ids = sa.select(tasks.c.id).where(tasks.c.instance_id.in_(ids.scalar_subquery()))
    await session.execute(ids.with_for_update())  # the lock order: instances, then their tasks
    await session.execute(task_ids.with_for_update())
    await session.execute(task_candidates.delete().where(task_candidates.c.task_id.in_(task_ids.scalar_subquery())))
    await session.execute(task_inbox.delete().where(task_inbox.c.task_id.in_(task_ids.scalar_subquery())))
    for table in (tasks, activities, incidents, jobs, event_subscriptions, variable_index):
        await session.execute(table.delete().where(table.c.instance_id.in_(ids.scalar_subquery())))
    await session.execute(instances.delete().where(instances.c.definition_id == definition_id))


async def list_instances(session: AsyncSession, query: InstanceQuery) -> tuple[list[Row], int]:
    conditions = _instance_conditions(query.definition_key, query.started_after, query.started_before)
    for column, value in (
        (instances.c.definition_id, query.definition_id),
        (instances.c.business_key, query.business_key),
        (instances.c.status, query.status),
        (instances.c.tenant_id, query.tenant_id),
    ):
        if value is not None:
            conditions.append(column == value)
    if query.has_incident is not None:
        has_incident = sa.exists().where(incidents.c.instance_id == instances.c.id, incidents.c.resolved_at.is_(None))
        conditions.append(has_incident if query.has_incident else ~has_incident)
    # with variable conditions only, the total is counted in the variable index without reading the instances
    counted = _instances_with_variables(query.conditions) if query.conditions and not conditions else None
    conditions += [_variable_condition(instances.c.id, condition) for condition in query.conditions]
    async with _planner(session, INSTANCES_FOR_THE_VALUES if query.conditions else {}):
        return await _page(
            session,
            instances,
            INSTANCE_COLUMNS,
            conditions,
            query,
            _INSTANCE_SORT,
            "start_time",
            instances.c.id,
            counted=counted,
        )


async def history_instances(session: AsyncSession, query: HistoryQuery) -> tuple[list[Row], int]:
    conditions = _instance_conditions(query.definition_key, query.started_after, query.started_before)
    if query.finished is not None:
        conditions.append(instances.c.end_time.is_not(None) if query.finished else instances.c.end_time.is_(None))
    if query.finished_after is not None:
        conditions.append(instances.c.end_time >= query.finished_after)
    return await _page(
        session, instances, INSTANCE_COLUMNS, conditions, query, _INSTANCE_SORT, "start_time", instances.c.id
    )


_INSTANCE_SORT = {
    "start_time": instances.c.start_time,
    "end_time": instances.c.end_time,
    "business_key": instances.c.business_key,
    "definition_key": instances.c.definition_key,
}


def _instance_conditions(
    definition_key: str | None, started_after: datetime | None, started_before: datetime | None
) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if definition_key is not None:
        conditions.append(instances.c.definition_key == definition_key)
    if started_after is not None:
        conditions.append(instances.c.start_time >= started_after)
    if started_before is not None:
        conditions.append(instances.c.start_time <= started_before)
    return conditions


# ------------------------------------------------------------------ activities
async def insert_activities(session: AsyncSession, instance: Row, new: Sequence[Activity]) -> None:
    if new:
        await session.execute(
            activities.insert(),
            [
                {
                    "id": activity.id,
                    "instance_id": instance.id,
                    "definition_id": instance.definition_id,
                    "definition_key": instance.definition_key,
                    "activity_id": activity.activity_id,
                    "activity_name": activity.activity_name,
                    "activity_type": activity.activity_type,
                    "status": activity.status,
                    "started_at": activity.started_at,
                    "ended_at": activity.ended_at,
                    "assignee": activity.assignee,
                }
                for activity in new
            ],
        )


async def update_activities(
    session: AsyncSession, updates: Sequence[ActivityUpdate], worked_by: dict[str, str]
) -> None:
    """Record status changes; `worked_by` names who completed an activity that had no assignee."""
    if updates:
        await session.execute(
            activities.update()
            .where(activities.c.id == sa.bindparam("activity"))
            .values(
                status=sa.bindparam("new_status"),
                ended_at=sa.bindparam("ended"),
                assignee=sa.func.coalesce(activities.c.assignee, sa.bindparam("worker", type_=sa.String)),
            ),
            [
                {"activity": u.id, "new_status": u.status, "ended": u.ended_at, "worker": worked_by.get(u.id)}
                for u in updates
            ],
        )


async def close_activities(session: AsyncSession, instance_id: str, ended_at: datetime) -> None:
    await session.execute(
        activities.update()
        .where(activities.c.instance_id == instance_id, activities.c.ended_at.is_(None))
        .values(status="cancelled", ended_at=ended_at)
    )


async def instance_activities(session: AsyncSession, instance_id: str) -> list[Row]:
    result = await session.execute(
        sa.select(activities)
        .where(activities.c.instance_id == instance_id)
        .order_by(activities.c.started_at, activities.c.ended_at.is_(None), activities.c.ended_at)
    )
    return list(result)


async def open_activities(session: AsyncSession, instance_ids: Sequence[str]) -> list[Row]:
    if not instance_ids:
        return []
    result = await session.execute(
        sa.select(activities)
        .where(activities.c.instance_id.in_(instance_ids), activities.c.ended_at.is_(None))
        .order_by(activities.c.started_at)
    )
    return list(result)


async def history_activities(session: AsyncSession, query: HistoryQuery) -> tuple[list[Row], int]:
    conditions: list[sa.ColumnElement[bool]] = []
    if query.definition_key is not None:
        conditions.append(activities.c.definition_key == query.definition_key)
    if query.started_after is not None:
        conditions.append(activities.c.started_at >= query.started_after)
    if query.started_before is not None:
        conditions.append(activities.c.started_at <= query.started_before)
    if query.finished is not None:
        conditions.append(activities.c.ended_at.is_not(None) if query.finished else activities.c.ended_at.is_(None))
    if query.finished_after is not None:
        conditions.append(activities.c.ended_at >= query.finished_after)
    sortable = {"start_time": activities.c.started_at, "end_time": activities.c.ended_at}
    return await _page(
        session, activities, list(activities.c), conditions, query, sortable, "start_time", activities.c.id
    )


# ------------------------------------------------------------------ tasks
async def insert_tasks(session: AsyncSession, instance: Row, opened: Sequence[HumanTask]) -> None:
    if not opened:
        return
    rows = [
        {
            "id": task.id,
            "instance_id": instance.id,
            "definition_id": instance.definition_id,
            "definition_key": instance.definition_key,
            "task_definition_key": task.activity_id,
            "name": task.name,
            "description": task.description,
            "assignee": task.assignee,
            "candidate_users": task.candidate_users,
            "candidate_groups": task.candidate_groups,
            "priority": task.priority,
            "due": task.due,
            "follow_up": task.follow_up,
            "form_key": task.form_key,
            "status": "assigned" if task.assignee else "created",
            "created": task.created,
            "tenant_id": instance.tenant_id,
            "local_variables": stored(typed(task.variables, {})) if task.variables else None,
        }
        for task in opened
    ]
    await session.execute(tasks.insert(), rows)
    await session.execute(task_inbox.insert(), [entry for row in rows for entry in inbox_rows(row)])
    local = [
        row
        for task in opened
        if task.variables
        for row in index_rows(instance.id, task.id, stored(typed(task.variables, {})))
    ]
    if local:
        await session.execute(variable_index.insert(), local)
    candidates = [
        {"task_id": task.id, "kind": kind, "value": value, "open": True, "assigned": task.assignee is not None}
        for task in opened
        for kind, values in (("user", task.candidate_users), ("group", task.candidate_groups))
        for value in dict.fromkeys(values)
    ]
    if candidates:
        await session.execute(task_candidates.insert(), candidates)


async def forget_tasks(session: AsyncSession, task_ids: Sequence[str]) -> None:
    """Remove the records of tasks that open again under their ids: SpiffWorkflow's "reset to task" (instance
    modification going back to a user task) reopens the task it ran before, and the open task replaces the record of
    the ended one (its candidates and its own variables' index rows too)."""
    if task_ids:
        await session.execute(task_candidates.delete().where(task_candidates.c.task_id.in_(task_ids)))
        await session.execute(task_inbox.delete().where(task_inbox.c.task_id.in_(task_ids)))
        await session.execute(variable_index.delete().where(variable_index.c.scope_id.in_(task_ids)))
        await session.execute(tasks.delete().where(tasks.c.id.in_(task_ids)))


async def close_tasks(
    session: AsyncSession, closed: dict[str, str], ended_at: datetime, completed_by: dict[str, str]
) -> None:
    """End tasks as completed or cancelled; a pending delegation ends resolved."""
    if closed:
        resolved = sa.case((tasks.c.delegation_state == "pending", "resolved"), else_=tasks.c.delegation_state)
        await session.execute(
            tasks.update()
            .where(tasks.c.id == sa.bindparam("task"))
            .values(
                status=sa.bindparam("new_status"),
                ended_at=ended_at,
                completed_by=sa.bindparam("by"),
                delegation_state=resolved,
            ),
            [
                {"task": task_id, "new_status": status, "by": completed_by.get(task_id)}
                for task_id, status in closed.items()
            ],
        )
        await session.execute(
            task_candidates.update().where(task_candidates.c.task_id.in_(list(closed))).values(open=False)
        )
        await session.execute(task_inbox.delete().where(task_inbox.c.task_id.in_(list(closed))))


async def cancel_open_tasks(session: AsyncSession, instance_id: str, ended_at: datetime) -> None:
    await session.execute(
        tasks.update()
        .where(tasks.c.instance_id == instance_id, tasks.c.ended_at.is_(None))
        .values(status="cancelled", ended_at=ended_at)
    )
    instance_tasks = sa.select(tasks.c.id).where(tasks.c.instance_id == instance_id).scalar_subquery()
    await session.execute(
        task_candidates.update()
        .where(task_candidates.c.open, task_candidates.c.task_id.in_(instance_tasks))
        .values(open=False)
    )
    await session.execute(task_inbox.delete().where(task_inbox.c.task_id.in_(instance_tasks)))


async def get_task(session: AsyncSession, task_id: str) -> Row | None:
    """The task with its instance's status (a suspended instance suspends its tasks) and variables."""
    result = await session.execute(
        sa.select(tasks, instances.c.status.label("instance_status"), instances.c.variables.label("instance_variables"))
        .join(instances, instances.c.id == tasks.c.instance_id)
        .where(tasks.c.id == task_id)
    )
    return result.first()


async def assign_task(
    session: AsyncSession, task_id: str, assignee: str | None, *, only_if_free: bool = False, **values: Any
) -> bool:
    """Give an open task to `assignee` (None: to nobody) wherever it shows: the task, its inbox entries, its
    activity. `only_if_free` (a claim) takes only a task nobody else holds; False when someone does."""
    conditions = [tasks.c.id == task_id, tasks.c.ended_at.is_(None)]
    if only_if_free:
        conditions.append(sa.or_(tasks.c.assignee.is_(None), tasks.c.assignee == assignee))
    result = await session.execute(tasks.update().where(*conditions).values(assignee=assignee, **values))
    if rowcount(result) != 1:
        return False
    await session.execute(
        task_candidates.update().where(task_candidates.c.task_id == task_id).values(assigned=assignee is not None)
    )
    await refresh_inbox(session, task_id)
    await session.execute(activities.update().where(activities.c.id == task_id).values(assignee=assignee))
    return True


async def claim_next(
    session: AsyncSession,
    user_id: str,
    candidate_groups: list[str] | None,
    definition_key: str | None,
    tenant_ids: list[str] | None = None,
) -> Row | None:
    """Pick and claim the highest-priority, oldest unassigned open task of an active instance offered to one of
    `candidate_groups` or to `user_id` (any when None), of one of `tenant_ids` (any when None); returns its task row
    as claimed, None when there is none.

    Two statements a window: the next CLAIM_NEXT_BATCH candidates in queue order, read from the task inbox's queue
    index (`ix_embedded_task_inbox_queue`) of each group and of the user, merged (other groups' tasks are never
    read); then an UPDATE of the first of them that is still free, locked `FOR UPDATE SKIP LOCKED` on PostgreSQL, so
    that concurrent callers each take a different task without waiting for each other (on SQLite the gateway's
    single writer serialises them). The lock is taken by a plain key lookup on the task table: taken in the same
    statement as the merge of the inbox, a row that a concurrent claim had updated made PostgreSQL re-evaluate the
    whole merge for it (EvalPlanQual), and 20 concurrent callers claimed 75 tasks a second instead of 470 (pgbench,
    issue 14). A window whose every task was taken meanwhile is followed by the next, up to CLAIM_NEXT_ROUNDS."""
    if candidate_groups is None:
        keys = ["*"]
    else:
        keys = [f"group:{group}" for group in dict.fromkeys(candidate_groups)] + [f"user:{user_id}"]
    parameters: dict[str, Any] = {f"claim_key_{index}": key for index, key in enumerate(keys)}
    parameters["claim_window"] = CLAIM_NEXT_BATCH
    if definition_key is not None:
        parameters["claim_definition_key"] = definition_key
    if tenant_ids is not None:
        parameters["claim_tenants"] = tenant_ids
    after = None
    for _ in range(CLAIM_NEXT_ROUNDS):
        queue = _claim_queue_statement(len(keys), definition_key is not None, tenant_ids is not None, after is not None)
        window = (await session.execute(queue, {**parameters, **(after or {})})).all()
        if not window:
            return None
        claimed = (
            await session.execute(
                _CLAIM_FIRST_FREE, {"claim_ids": [row.task_id for row in window], "claim_user": user_id}
            )
        ).first()
        if claimed is not None:
            await session.execute(
                task_candidates.update().where(task_candidates.c.task_id == claimed.id).values(assigned=True)
            )
            await _rewrite_inbox(session, claimed._mapping)
            await session.execute(activities.update().where(activities.c.id == claimed.id).values(assignee=user_id))
            return claimed
        if len(window) < CLAIM_NEXT_BATCH:
            return None
        last = window[-1]
        after = {"after_priority": last.priority, "after_created": last.created, "after_task_id": last.task_id}
    return None


@functools.cache
def _claim_queue_statement(keys: int, by_definition: bool, by_tenant: bool, after: bool) -> sa.Select[Any]:
    """`claim_next`'s candidates for `keys` inbox keys (parameters claim_key_0, claim_key_1, ..., claim_window; when
    `by_definition`, claim_definition_key; when `by_tenant`, claim_tenants, a list; when `after`, after_priority,
    after_created, after_task_id: the queue position the window starts after): task_id, priority, created of the
    first claim_window unassigned tasks of active instances in queue order. Built once per shape: building it took more CPU than
    PostgreSQL takes to run it."""
    in_order = (task_inbox.c.priority.desc(), task_inbox.c.created, task_inbox.c.task_id)
    priority = sa.bindparam("after_priority", type_=task_inbox.c.priority.type)
    created = sa.bindparam("after_created", type_=task_inbox.c.created.type)
    past = sa.or_(
        task_inbox.c.priority < priority,
        sa.and_(
            task_inbox.c.priority == priority,
            sa.or_(
                task_inbox.c.created > created,
                sa.and_(task_inbox.c.created == created, task_inbox.c.task_id > sa.bindparam("after_task_id")),
            ),
        ),
    )
    offered = [
        sa.select(task_inbox.c.task_id, task_inbox.c.priority, task_inbox.c.created)
        .where(
            task_inbox.c.key == sa.bindparam(f"claim_key_{index}"),
            task_inbox.c.assignee.is_(None),
            *([task_inbox.c.definition_key == sa.bindparam("claim_definition_key")] if by_definition else []),
            *([task_inbox.c.tenant_id.in_(sa.bindparam("claim_tenants", expanding=True))] if by_tenant else []),
            *([past] if after else []),
            # a suspended instance's tasks stay in the queue: however many, they must not fill the windows
            ~sa.exists().where(instances.c.id == task_inbox.c.instance_id, instances.c.status == "suspended"),
        )
        .order_by(*in_order)  # without it PostgreSQL joins and sorts every row of the keys instead of merging them
        .limit(sa.bindparam("claim_window"))
        .subquery()  # SQLite refuses an ORDER BY on a part of a UNION
        for index in range(keys)
    ]
    queue = sa.union_all(*(sa.select(*part.c) for part in offered)).subquery("queue")
    return (
        sa.select(queue.c.task_id, queue.c.priority, queue.c.created)
        .order_by(queue.c.priority.desc(), queue.c.created, queue.c.task_id)
        .limit(sa.bindparam("claim_window"))
    )


# The first free task of a window of candidates (claim_ids), claimed for claim_user. No parameter is named like a
# column: an UPDATE's parameter of a column's name sets that column.
_FIRST_FREE = (
    sa.select(tasks.c.id)
    .where(
        tasks.c.id.in_(sa.bindparam("claim_ids", expanding=True)),
        tasks.c.ended_at.is_(None),
        tasks.c.assignee.is_(None),  # the inbox row may lag a claim that committed after the window was read
        ~sa.exists().where(instances.c.id == tasks.c.instance_id, instances.c.status == "suspended"),
    )
    .order_by(tasks.c.priority.desc(), tasks.c.created, tasks.c.id)
    .limit(1)
    .with_for_update(of=tasks, skip_locked=True)
    .scalar_subquery()
)
_CLAIM_FIRST_FREE = (
    tasks.update()
    .where(tasks.c.id == _FIRST_FREE, tasks.c.assignee.is_(None))
    .values(assignee=sa.bindparam("claim_user"), status="assigned")
    .returning(*tasks.c)
)


_TASK_SORT = {
    "created": tasks.c.created,
    "due": tasks.c.due,
    "follow_up": tasks.c.follow_up,
    "priority": tasks.c.priority,
    "name": tasks.c.name,
    "assignee": tasks.c.assignee,
}
_INBOX_SORT = {column: task_inbox.c[column] for column in _TASK_SORT}
# The filters an inbox row is found by, the most selective first: a list reads the rows of the first one given.
_INBOX_KEYS = ("instance", "assignee", "user", "group", "definition", "tenant", "status")
# Inbox keys narrowed by a second filter (`inbox_key`), so that the inbox's lists with two filters are a range of one
# key too: every open task's list ("*"), and its candidate users' and groups' lists, by whether the task is assigned,
# and the candidate lists by the task's tenant and by its process. A second filter is otherwise a column filter
# on the first key's rows, which reads every row of that key that fails it before a page is full.
QUALIFIER = "\x1f"  # the ASCII unit separator: part of no user, group, tenant or process key


def inbox_key(key: str, qualifier: str | None = None) -> str:
    """The inbox key of `key` (e.g. "group:sales") narrowed by `qualifier` (e.g. "unassigned", "tenant:acme")."""
    return key if qualifier is None else f"{key}{QUALIFIER}{qualifier}"


def inbox_rows(task: Mapping[Any, Any]) -> list[dict[str, Any]]:
    """The inbox rows of an open task (a task row as a mapping, its candidate lists decoded): one per key it can
    be listed by (`tables.task_inbox`, `inbox_key`), each with the task's sort keys and filter columns."""
    carried = {
        "task_id": task["id"],
        **{name: task[name] for name in ("instance_id", "definition_key", "tenant_id", "status", "assignee")},
        **{name: task[name] for name in ("name", "priority", "due", "follow_up", "created")},
    }
    keys = ["*", f"instance:{task['instance_id']}", f"definition:{task['definition_key']}", f"status:{task['status']}"]
    keys += [
        f"{kind}:{task[column]}" for kind, column in (("assignee", "assignee"), ("tenant", "tenant_id")) if task[column]
    ]
    candidates = [f"user:{user}" for user in dict.fromkeys(task["candidate_users"])]
    candidates += [f"group:{group}" for group in dict.fromkeys(task["candidate_groups"])]
    keys += candidates
    assignment = "assigned" if task["assignee"] else "unassigned"
    qualifiers = [assignment, f"definition:{task['definition_key']}"]
    qualifiers += [f"tenant:{task['tenant_id']}"] if task["tenant_id"] else []
    keys += [inbox_key("*", assignment)]
    keys += [inbox_key(key, qualifier) for key in candidates for qualifier in qualifiers]
    return [{**carried, "key": key} for key in keys]


async def refresh_inbox(session: AsyncSession, task_id: str) -> None:
    """Rewrite an open task's inbox rows from its task row after a change (assignee, status)."""
    task = (await session.execute(sa.select(tasks).where(tasks.c.id == task_id, tasks.c.ended_at.is_(None)))).first()
    if task is None:
        await session.execute(task_inbox.delete().where(task_inbox.c.task_id == task_id))
    else:
        await _rewrite_inbox(session, task._mapping)


async def _rewrite_inbox(session: AsyncSession, task: Mapping[Any, Any]) -> None:
    """Replace the inbox rows of the open task `task` (its row as just written) with those it has now."""
    await session.execute(task_inbox.delete().where(task_inbox.c.task_id == task["id"]))
    await session.execute(task_inbox.insert(), inbox_rows(task))


async def list_tasks(session: AsyncSession, query: TaskQuery) -> tuple[list[Row], int]:
    """A page of tasks and their total. Open tasks (no `status`, or an open one) are listed from the task inbox, an
    index range scan in the requested order whatever the planner's statistics; ended ones (completed, cancelled)
    from the task table, through the ended tasks' index of the sort field (`tables.ENDED_TASK`)."""
    if query.status is None or query.status in OPEN_TASK_STATUSES:
        return await _list_open_tasks(session, query)
    # the condition of the ended tasks' indexes (status, sort field, id), which the status alone does not imply
    conditions: list[sa.ColumnElement[bool]] = [tasks.c.status == query.status, tasks.c.ended_at.is_not(None)]
    for column, value in (
        (tasks.c.assignee, query.assignee),
        (tasks.c.instance_id, query.instance_id),
        (tasks.c.definition_key, query.definition_key),
        (tasks.c.tenant_id, query.tenant_id),
    ):
        if value is not None:
            conditions.append(column == value)
    if query.unassigned is not None:
        conditions.append(tasks.c.assignee.is_(None) if query.unassigned else tasks.c.assignee.is_not(None))
    if query.due_before is not None:
        conditions.append(tasks.c.due < query.due_before)
    for kind, value in (("group", query.candidate_group), ("user", query.candidate_user)):
        if value is not None:
            conditions.append(
                sa.exists().where(
                    task_candidates.c.task_id == tasks.c.id,
                    task_candidates.c.kind == kind,
                    task_candidates.c.value == value,
                )
            )
    owners = {VariableScope.INSTANCE: tasks.c.instance_id, VariableScope.TASK: tasks.c.id}
    conditions += [_variable_condition(owners[condition.scope], condition) for condition in query.conditions]
    async with _planner(session, FOR_THE_VALUES if query.conditions else IN_INDEX_ORDER):
        return await _page(session, tasks, list(tasks.c), conditions, query, _TASK_SORT, "created", tasks.c.id)


# Planner settings for list queries on PostgreSQL (`_planner`):
# - the task inbox and the ended tasks are read in an index's order: no sorting and no bitmap scans (which read every
#   match before LIMIT applies) unless there is no other way. The inbox has an index for every key and sort, the
#   ended tasks one for every status and sort, so this is the plan they were designed for; with the statistics of a fresh bulk load the planner would guess "a handful of rows" and sort
#   100,000 instead.
# - variable conditions are planned for their values: how many rows `region = 'EU'` matches decides the plan, and the
#   generic plan a prepared statement switches to after five runs guessed a few rows for every value (it sorted
#   25,000 instances for one page: 550 ms instead of 3 ms).
# - instances with variable conditions are planned with an index probe costed as the cached read it is
#   (random_page_cost 1.1, not 4): the instances meeting two conditions are then found by probing the other condition
#   for each row of the most selective one (2,000 probes for `amount gte 49000`), not by reading and hashing every row
#   of the least selective one (25,000 of `region eq "EU"`). The probes touch more (cached) buffers; on a busy machine
#   they were as fast or faster (medians of the count 20 ms vs 25, of the page 37 vs 56; equal in a second run).
IN_INDEX_ORDER = {"enable_sort": "off", "enable_bitmapscan": "off"}
FOR_THE_VALUES = {"plan_cache_mode": "force_custom_plan"}
INSTANCES_FOR_THE_VALUES = {**FOR_THE_VALUES, "random_page_cost": "1.1"}


@contextlib.asynccontextmanager
async def _planner(session: AsyncSession, settings: Mapping[str, str]) -> AsyncIterator[None]:
    """PostgreSQL planner `settings` for the statements inside, restored for the rest of the transaction after;
    nothing on other databases."""
    if not settings or session.get_bind().dialect.name != "postgresql":
        yield
        return
    # one round trip: PostgreSQL evaluates a select list from left to right, so the old values are read first
    read_then_set = [sa.func.current_setting(name) for name in settings]
    read_then_set += [sa.func.set_config(name, value, True) for name, value in settings.items()]
    before = (await session.execute(sa.select(*read_then_set))).one()[: len(settings)]
    yield  # after a failure the transaction is rolled back, and SET LOCAL with it: nothing to restore
    await session.execute(
        sa.select(*(sa.func.set_config(name, value, True) for name, value in zip(settings, before, strict=True)))
    )


# Built once: a page's 50 ids are one expanding parameter, not 50 literals coerced and bound on every list.
_TASKS_BY_ID = sa.select(tasks).where(tasks.c.id.in_(sa.bindparam("ids", expanding=True)))


async def _list_open_tasks(session: AsyncSession, query: TaskQuery) -> tuple[list[Row], int]:
    """The page's task ids from the inbox rows of the query's most selective key (the other filters are columns
    of those rows, a second candidate filter another key of the same task), then the tasks by id."""
    inbox = task_inbox
    given = {
        "instance": query.instance_id,
        "assignee": query.assignee,
        "user": query.candidate_user,
        "group": query.candidate_group,
        "definition": query.definition_key,
        "tenant": query.tenant_id,
        "status": query.status,
    }
    keys = [f"{kind}:{given[kind]}" for kind in _INBOX_KEYS if given[kind] is not None]
    first = keys[0] if keys else "*"
    assignment = None if query.unassigned is None else "unassigned" if query.unassigned else "assigned"
    qualifier = None
    if first == "*":
        qualifier = assignment
    elif first.startswith(("user:", "group:")):
        qualifier = assignment or next((key for key in keys[1:] if key.startswith(("definition:", "tenant:"))), None)
    conditions: list[sa.ColumnElement[bool]] = [inbox.c.key == inbox_key(first, qualifier)]
    for column, value in (
        (inbox.c.instance_id, query.instance_id),
        (inbox.c.assignee, query.assignee),
        (inbox.c.definition_key, query.definition_key),
        (inbox.c.tenant_id, query.tenant_id),
        (inbox.c.status, query.status),
    ):
        if value is not None:
            conditions.append(column == value)
    other = inbox.alias("other")
    for key in keys[1:]:
        if key.startswith(("user:", "group:")):
            conditions.append(sa.exists().where(other.c.task_id == inbox.c.task_id, other.c.key == key))
    if query.unassigned is not None:
        conditions.append(inbox.c.assignee.is_(None) if query.unassigned else inbox.c.assignee.is_not(None))
    if query.due_before is not None:
        conditions.append(inbox.c.due < query.due_before)
    owners = {VariableScope.INSTANCE: inbox.c.instance_id, VariableScope.TASK: inbox.c.task_id}
    conditions += [_variable_condition(owners[condition.scope], condition) for condition in query.conditions]
    async with _planner(session, FOR_THE_VALUES if query.conditions else IN_INDEX_ORDER):
        ids, total = await _page(
            session, inbox, [inbox.c.task_id], conditions, query, _INBOX_SORT, "created", inbox.c.task_id
        )
    if not ids:
        return [], total
    found = {row.id: row for row in await session.execute(_TASKS_BY_ID, {"ids": [row.task_id for row in ids]})}
    return [found[row.task_id] for row in ids if row.task_id in found], total


# ------------------------------------------------------------------ incidents
async def insert_incidents(
    session: AsyncSession, instance: Row, failures: Sequence[Failure], created: datetime
) -> None:
    if failures:
        await session.execute(
            incidents.insert(),
            [
                {
                    "id": str(uuid.uuid4()),
                    "incident_type": failure.incident_type,
                    "message": failure.message,
                    "detail": failure.detail,
                    "instance_id": instance.id,
                    "definition_id": instance.definition_id,
                    "definition_key": instance.definition_key,
                    "activity_id": failure.activity_id,
                    "activity_name": failure.activity_name,
                    "task_id": failure.task_id,
                    "created": created,
                    "tenant_id": instance.tenant_id,
                }
                for failure in failures
            ],
        )


async def get_incident(session: AsyncSession, incident_id: str) -> Row | None:
    result = await session.execute(sa.select(incidents).where(incidents.c.id == incident_id))
    return result.first()


async def open_incidents(session: AsyncSession, instance_id: str) -> list[Row]:
    result = await session.execute(
        sa.select(incidents)
        .where(incidents.c.instance_id == instance_id, incidents.c.resolved_at.is_(None))
        .order_by(incidents.c.created, incidents.c.id)
    )
    return list(result)


async def list_incidents(session: AsyncSession, query: EngineIncidentQuery) -> tuple[list[Row], int]:
    conditions: list[sa.ColumnElement[bool]] = [incidents.c.resolved_at.is_(None)]
    for column, value in (
        (incidents.c.instance_id, query.instance_id),
        (incidents.c.definition_key, query.definition_key),
        (incidents.c.incident_type, query.incident_type),
    ):
        if value is not None:
            conditions.append(column == value)
    sortable = {"created": incidents.c.created}
    return await _page(session, incidents, list(incidents.c), conditions, query, sortable, "created", incidents.c.id)


async def resolve_incidents(
    session: AsyncSession,
    resolved_at: datetime,
    *,
    incident_id: str | None = None,
    instance_id: str | None = None,
    task_ids: Sequence[str] | None = None,
) -> None:
    """Resolve one incident, or the instance's (only those of `task_ids` when given)."""
    target = incidents.c.id == incident_id if incident_id is not None else incidents.c.instance_id == instance_id
    if task_ids is not None:
        target = sa.and_(target, incidents.c.task_id.in_(task_ids))
    await session.execute(
        incidents.update().where(target, incidents.c.resolved_at.is_(None)).values(resolved_at=resolved_at)
    )


async def annotate_incident(session: AsyncSession, incident_id: str, annotation: str | None) -> None:
    await session.execute(incidents.update().where(incidents.c.id == incident_id).values(annotation=annotation))


# ------------------------------------------------------------------ jobs
async def update_jobs(session: AsyncSession, instance_id: str, added: Iterable[Job], removed: Sequence[str]) -> None:
    added = list(added)
    stale = [*removed, *(job.id for job in added)]
    if stale:
        await session.execute(jobs.delete().where(jobs.c.id.in_(stale)))
    if added:
        await session.execute(
            jobs.insert(),
            [
                {
                    "id": job.id,
                    "instance_id": instance_id,
                    "kind": job.kind,
                    "activity_id": job.activity_id,
                    "due_at": job.due_at,
                    "topic": job.topic,
                }
                for job in added
            ],
        )


async def back_off_jobs(session: AsyncSession, instance_id: str, now: datetime, base: float) -> Row | None:
    """Count a failed background attempt on the instance's due jobs and put their next attempt off
    (`base` seconds, doubling per failure in a row, at most an hour). Returns the first job as it was."""
    result = await session.execute(
        sa.select(jobs)
        .where(jobs.c.instance_id == instance_id, sa.or_(jobs.c.due_at.is_(None), jobs.c.due_at <= now))
        .order_by(jobs.c.due_at, jobs.c.id)
    )
    due = list(result)
    if not due:
        return None
    failures = max(job.failures for job in due) + 1
    delay = min(base * 2 ** (failures - 1), 3600.0)
    await session.execute(
        jobs.update()
        .where(jobs.c.id.in_([job.id for job in due]))
        .values(failures=failures, due_at=now + timedelta(seconds=delay))
    )
    return due[0]


async def retry_jobs_now(session: AsyncSession, instance_id: str, job_id: str | None, now: datetime) -> bool:
    """When job `job_id` is backing off, make every backed-off job of its instance due now; else False."""
    backing_off = await session.scalar(sa.select(jobs.c.failures).where(jobs.c.id == job_id, jobs.c.failures > 0))
    if not backing_off:
        return False
    await session.execute(
        jobs.update().where(jobs.c.instance_id == instance_id, jobs.c.failures > 0).values(failures=0, due_at=now)
    )
    return True


async def delete_jobs(session: AsyncSession, instance_id: str) -> None:
    """The instance's jobs and event subscriptions: it waits for nothing any more."""
    await session.execute(jobs.delete().where(jobs.c.instance_id == instance_id))
    await session.execute(event_subscriptions.delete().where(event_subscriptions.c.instance_id == instance_id))


async def instances_with_work(session: AsyncSession, now: datetime, topics: Sequence[str], limit: int) -> list[str]:
    """Active instances with a due timer, or external work whose handler is registered now."""
    work = jobs.c.kind == "timer"
    work = sa.and_(work, jobs.c.due_at <= now)
    if topics:
        not_backing_off = sa.or_(jobs.c.due_at.is_(None), jobs.c.due_at <= now)
        work = sa.or_(work, sa.and_(jobs.c.kind == "external", jobs.c.topic.in_(topics), not_backing_off))
    result = await session.execute(
        sa.select(jobs.c.instance_id)
        .join(instances, instances.c.id == jobs.c.instance_id)
        .where(work, instances.c.status == "active")
        .group_by(jobs.c.instance_id)
        .order_by(sa.func.min(jobs.c.due_at))
        .limit(limit)
    )
    return [row[0] for row in result]


# ------------------------------------------------------------------ variables
async def _index_variables(
    session: AsyncSession, instance_id: str, scope_id: str, variables: dict[str, Any], *, replacing: bool = True
) -> None:
    """Replace the indexed values of one instance's (or task's) variables (`embedded_variable_index`); a new
    instance (`replacing=False`) has none to delete."""
    if replacing:
        await session.execute(variable_index.delete().where(variable_index.c.scope_id == scope_id))
    rows = index_rows(instance_id, scope_id, variables)
    if rows:
        await session.execute(variable_index.insert(), rows)


_COMPARISONS = {
    VariableOperator.EQ: lambda column, value: column == value,
    VariableOperator.NEQ: lambda column, value: column != value,
    VariableOperator.GT: lambda column, value: column > value,
    VariableOperator.GTE: lambda column, value: column >= value,
    VariableOperator.LT: lambda column, value: column < value,
    VariableOperator.LTE: lambda column, value: column <= value,
    VariableOperator.LIKE: lambda column, value: column.like(value),
    VariableOperator.IN: lambda column, values: column.in_(values),
}


def _variable_condition(owner: sa.ColumnElement[Any], condition: VariableCondition) -> sa.ColumnElement[bool]:
    """`owner` (an instance or task id column) has the variable and its indexed value meets the condition."""
    return owner.in_(sa.select(variable_index.c.scope_id).where(_indexed_value(variable_index, condition)))


def _indexed_value(index: sa.FromClause, condition: VariableCondition) -> sa.ColumnElement[bool]:
    """A row of the variable index (`index`: the table or an alias of it) is the condition's variable and its value
    meets the condition: numbers against `number_value`, strings and booleans against `text_value` (an index range
    scan on name and value)."""
    first = condition.values[0]
    if isinstance(first, bool):
        column, value = index.c.text_value, "true" if first else "false"
    elif isinstance(first, str):
        column, value = index.c.text_value, condition.value
    else:
        column, value = index.c.number_value, condition.value
    return sa.and_(index.c.name == condition.name, _COMPARISONS[condition.operator](column, value))


def _instances_with_variables(conditions: Sequence[VariableCondition]) -> sa.Select[Any]:
    """The ids of the instances whose variables meet every condition, read from the variable index alone (no
    instance row is visited): the first condition's rows of instance variables, the others joined by scope. The same
    instances as `_variable_condition` on `instances.c.id`: an instance's variables are indexed in the transaction
    that writes them and deleted with it (`delete_instances_of`), and a task's own variables are told apart by their
    scope (`scope_id` is the task's id, not its instance's). `IS TRUE` makes PostgreSQL estimate that test from the
    expression statistics of i20_0004 (about every row) rather than guess that one row in 200 passes."""
    first, *others = conditions
    owned = variable_index.alias("owned")
    instance_variable = (owned.c.scope_id == owned.c.instance_id).is_(True)
    return sa.select(owned.c.scope_id).where(
        instance_variable,
        _indexed_value(owned, first),
        *(_variable_condition(owned.c.scope_id, condition) for condition in others),
    )


# ------------------------------------------------------------------ timer start events
async def replace_start_timers(
    session: AsyncSession, key: str, tenant_id: str | None, definition_id: str, schedules: Iterable[Any]
) -> None:
    """The schedules of a newly deployed definition (`schedules.StartTimer`s) replace those of older versions
    of its key, as Camunda 7 drops the timer start jobs of the previous version."""
    await session.execute(
        start_timers.delete().where(
            start_timers.c.definition_key == key, _same_tenant(start_timers.c.tenant_id, tenant_id)
        )
    )
    rows = [
        {
            "id": str(uuid.uuid4()),
            "definition_id": definition_id,
            "definition_key": key,
            "tenant_id": tenant_id,
            "activity_id": schedule.activity_id,
            "due_at": schedule.due_at,
            "remaining": schedule.remaining,
            "interval_seconds": None if schedule.interval is None else schedule.interval.total_seconds(),
        }
        for schedule in schedules
    ]
    if rows:
        await session.execute(start_timers.insert(), rows)


async def delete_start_timers(session: AsyncSession, definition_id: str) -> None:
    await session.execute(start_timers.delete().where(start_timers.c.definition_id == definition_id))


async def due_start_timers(session: AsyncSession, now: datetime, limit: int) -> list[Row]:
    """Schedules due now whose definition is not suspended, the longest due first."""
    result = await session.execute(
        sa.select(start_timers)
        .join(definitions, definitions.c.id == start_timers.c.definition_id)
        .where(start_timers.c.due_at <= now, definitions.c.suspended.is_(False))
        .order_by(start_timers.c.due_at, start_timers.c.id)
        .limit(limit)
    )
    return list(result)


# ------------------------------------------------------------------ event subscriptions
async def replace_subscriptions(session: AsyncSession, instance_id: str, current: Sequence[Subscription]) -> None:
    """Make the instance's message and signal subscriptions `current` (none once it has ended)."""
    await session.execute(event_subscriptions.delete().where(event_subscriptions.c.instance_id == instance_id))
    if current:
        await session.execute(
            event_subscriptions.insert(),
            [
                {
                    "task_id": one.task_id,
                    "event_type": one.event_type,
                    "event_name": one.event_name,
                    "instance_id": instance_id,
                    "activity_id": one.activity_id,
                }
                for one in current
            ],
        )


async def subscribers(
    session: AsyncSession,
    event_type: str,
    event_name: str,
    *,
    tenant_id: str | None = None,
    business_key: str | None = None,
    instance_id: str | None = None,
) -> list[Row]:
    """The active instances waiting for the message or signal (instance_id, task_id, activity_id, definition_key,
    variables), oldest instance first; suspended ones do not catch events."""
    conditions = [
        event_subscriptions.c.event_type == event_type,
        event_subscriptions.c.event_name == event_name,
        instances.c.status == "active",
    ]
    for column, value in (
        (instances.c.tenant_id, tenant_id),
        (instances.c.business_key, business_key),
        (instances.c.id, instance_id),
    ):
        if value is not None:
            conditions.append(column == value)
    result: sa.Result[Any] = await session.execute(
        sa.select(
            event_subscriptions.c.instance_id,
            event_subscriptions.c.task_id,
            event_subscriptions.c.activity_id,
            instances.c.definition_key,
            instances.c.variables,
        )
        .join(instances, instances.c.id == event_subscriptions.c.instance_id)
        .where(*conditions)
        .order_by(instances.c.start_time, instances.c.id, event_subscriptions.c.task_id)
    )
    return list(result)


async def take_start_timer(session: AsyncSession, timer: Row, following: tuple[datetime, int] | None) -> bool:
    """Move a due schedule to its following occurrence (due time, occurrences left), or drop it after its last.
    False when another worker took this occurrence first (the row moved on meanwhile)."""
    current = sa.and_(start_timers.c.id == timer.id, start_timers.c.due_at == timer.due_at)
    if following is None:
        result = await session.execute(start_timers.delete().where(current))
    else:
        due_at, remaining = following
        result = await session.execute(start_timers.update().where(current).values(due_at=due_at, remaining=remaining))
    return rowcount(result) == 1


async def latest_active_definitions(session: AsyncSession, tenant_id: str | None) -> list[Row]:
    """The latest version of every process key in the tenant (every tenant when None), unless suspended."""
    latest = (
        sa.select(definitions.c.key, definitions.c.tenant_id, sa.func.max(definitions.c.version).label("version"))
        .group_by(definitions.c.key, definitions.c.tenant_id)
        .subquery()
    )
    query = sa.select(*DEFINITION_COLUMNS).join(
        latest,
        sa.and_(
            definitions.c.key == latest.c.key,
            definitions.c.version == latest.c.version,
            definitions.c.tenant_id.is_not_distinct_from(latest.c.tenant_id),
        ),
    )
    if tenant_id is not None:
        query = query.where(definitions.c.tenant_id == tenant_id)
    result = await session.execute(query.where(definitions.c.suspended.is_(False)).order_by(definitions.c.key))
    return list(result)


# ------------------------------------------------------------------ paging
async def _page(
    session: AsyncSession,
    table: sa.Table,
    columns: Sequence[sa.ColumnElement[Any]],
    conditions: Sequence[sa.ColumnElement[bool]],
    query: ListQuery,
    sortable: Mapping[str, sa.ColumnElement[Any]],
    default_sort: str,
    tiebreak: sa.ColumnElement[Any],
    *,
    counted: sa.Select[Any] | None = None,
) -> tuple[list[Row], int]:
    """One page in the requested order (ties broken by id, for stable paging) and the total (capped: COUNT_LIMIT):
    the number of rows of `counted` (one per match, read more cheaply than the table can be) or else of the
    table's rows that meet `conditions`."""
    column = sortable[query.sort or default_sort]  # the query model admits only its sortable fields
    ascending = query.order == SortOrder.ASC
    order = [column.asc() if ascending else column.desc(), tiebreak.asc() if ascending else tiebreak.desc()]
    rows = await session.execute(
        sa.select(*columns).where(*conditions).order_by(*order).offset(query.offset).limit(query.size)
    )
    matches = sa.select(sa.literal(1)).select_from(table).where(*conditions) if counted is None else counted
    capped = matches.limit(query.offset + query.size + COUNT_LIMIT).subquery()
    return list(rows), int(await session.scalar(sa.select(sa.func.count()).select_from(capped)) or 0)


def _same_tenant(column: sa.ColumnElement[Any], tenant_id: str | None) -> sa.ColumnElement[bool]:
    return column.is_(None) if tenant_id is None else column == tenant_id
