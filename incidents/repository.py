"""Every query of the Incident Center. Functions take the session of the running unit of work or a reader.

Rows an action changes are read `FOR UPDATE` (PostgreSQL): an API action and the sync never interleave on one
incident; on SQLite the gateway's single writer gives the same guarantee.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import rowcount
from gateway.errors import NotFound
from gateway.schemas import Page, SortOrder
from incidents import policies
from incidents.models import (
    UNRESOLVED,
    Action,
    ErrorGroup,
    Incident,
    IncidentDetails,
    IncidentFilter,
    IncidentHistoryEntry,
    IncidentQuery,
    IncidentResolution,
    IncidentSeverity,
    IncidentStatus,
    ItemState,
    LinkedEngineIncident,
    OperationFailure,
    OperationProgress,
    OperationStatus,
    error_hash,
    incident_history,
    incident_links,
    incidents,
    operation_items,
    operations,
)

Row = sa.RowMapping


def _values(statuses: Iterable[IncidentStatus]) -> list[str]:
    """Statuses for an SQL `IN`, in a stable order."""
    return sorted(s.value for s in statuses)


SEVERITY_RANK = sa.case({severity.value: severity.rank for severity in IncidentSeverity}, value=incidents.c.severity)
SORT_COLUMNS: dict[str, sa.ColumnElement[Any]] = {
    "created": incidents.c.created,
    "updated": incidents.c.updated,
    "severity": SEVERITY_RANK,
}


# ---------------------------------------------------------------- incidents
async def get_incident(session: AsyncSession, incident_id: str) -> Row:
    return await _one_incident(session, sa.select(incidents).where(incidents.c.id == incident_id), incident_id)


async def lock_incident(session: AsyncSession, incident_id: str) -> Row:
    return await _one_incident(
        session, sa.select(incidents).where(incidents.c.id == incident_id).with_for_update(), incident_id
    )


async def _one_incident(session: AsyncSession, statement: sa.Select[Any], incident_id: str) -> Row:
    row = (await session.execute(statement)).mappings().first()
    if row is None:
        raise NotFound(f"Incident {incident_id} does not exist")
    return row


def _with_error_hash(values: dict[str, Any]) -> dict[str, Any]:
    return {**values, "error_hash": error_hash(values["message"])} if "message" in values else values


async def insert_incident(session: AsyncSession, values: dict[str, Any]) -> Row:
    await session.execute(incidents.insert().values(**_with_error_hash(values)))
    return await lock_incident(session, values["id"])


async def update_incident(session: AsyncSession, incident_id: str, **values: Any) -> Row:
    await session.execute(incidents.update().where(incidents.c.id == incident_id).values(**_with_error_hash(values)))
    return await lock_incident(session, incident_id)


async def latest_at_place(session: AsyncSession, engine: str, instance_id: str, activity_id: str) -> Row | None:
    """The newest record of failures at one activity of one instance."""
    return (
        (
            await session.execute(
                sa.select(incidents)
                .where(
                    incidents.c.engine == engine,
                    incidents.c.instance_id == instance_id,
                    incidents.c.activity_id == activity_id,
                )
                .order_by(incidents.c.created.desc(), incidents.c.detected_at.desc())
                .limit(1)
                .with_for_update()
            )
        )
        .mappings()
        .first()
    )


def _filter_conditions(
    selection: IncidentFilter, tenants: frozenset[str] | None = None
) -> list[sa.ColumnElement[bool]]:
    """The filter's conditions; with `tenants`, only incidents of those tenants (None: every incident)."""
    conditions = [
        column == value
        for column, value in (
            (incidents.c.engine, selection.engine),
            (incidents.c.status, selection.status),
            (incidents.c.instance_id, selection.instance_id),
            (incidents.c.definition_key, selection.definition_key),
            (incidents.c.incident_type, selection.incident_type),
            (incidents.c.assignee, selection.assignee),
            (incidents.c.severity, selection.severity),
            (incidents.c.error_hash, selection.error_hash),
        )
        if value is not None
    ]
    if selection.created_after is not None:
        conditions.append(incidents.c.created > selection.created_after)
    if tenants is not None:
        conditions.append(incidents.c.tenant_id.in_(sorted(tenants)))
    return conditions


async def list_incidents(
    session: AsyncSession, query: IncidentQuery, tenants: frozenset[str] | None = None
) -> Page[Incident]:
    conditions = _filter_conditions(query, tenants)
    column = SORT_COLUMNS[query.sort or "created"]
    order = column.asc() if query.order is SortOrder.ASC else column.desc()
    rows = (
        (
            await session.execute(
                sa.select(incidents)
                .where(*conditions)
                .order_by(order, incidents.c.id)
                .offset(query.offset)
                .limit(query.size)
            )
        )
        .mappings()
        .all()
    )
    total = await session.scalar(sa.select(sa.func.count()).select_from(incidents).where(*conditions))
    linked = await _engine_incident_ids(session, [row["id"] for row in rows])
    return Page(
        items=[_incident(row, linked.get(row["id"], [])) for row in rows],
        total=total or 0,
        page=query.page,
        size=query.size,
    )


async def open_error_groups(
    session: AsyncSession, engine: str | None, tenants: frozenset[str] | None = None
) -> list[ErrorGroup]:
    """Unresolved incidents (of `tenants` when given) grouped by error_hash, largest group first (ties: hash order)."""
    conditions: list[sa.ColumnElement[bool]] = [
        incidents.c.status.in_([s.value for s in UNRESOLVED]),
        incidents.c.error_hash.is_not(None),
    ]
    if engine is not None:
        conditions.append(incidents.c.engine == engine)
    if tenants is not None:
        conditions.append(incidents.c.tenant_id.in_(sorted(tenants)))
    rows = (
        await session.execute(
            sa.select(incidents.c.error_hash, incidents.c.message, incidents.c.definition_key)
            .where(*conditions)
            .order_by(incidents.c.created.desc(), incidents.c.id)
        )
    ).all()
    groups: dict[str, ErrorGroup] = {}
    for hash_, message, definition_key in rows:
        group = groups.setdefault(
            hash_, ErrorGroup(error_hash=hash_, incident_message=message, open_count=0, definitions=[])
        )
        group.open_count += 1
        if definition_key is not None and definition_key not in group.definitions:
            group.definitions.append(definition_key)
    for group in groups.values():
        group.definitions.sort()
    return sorted(groups.values(), key=lambda g: (-g.open_count, g.error_hash))


async def matching_ids(
    session: AsyncSession, selection: IncidentFilter, action: Action, tenants: frozenset[str] | None = None
) -> list[str]:
    """Ids of the incidents a filter selects (of `tenants` when given) that `action` may happen to now
    (`policies.TRANSITIONS`), oldest first."""
    rows = await session.execute(
        sa.select(incidents.c.id)
        .where(
            *_filter_conditions(selection, tenants), incidents.c.status.in_(_values(policies.statuses_allowing(action)))
        )
        .order_by(incidents.c.created, incidents.c.id)
    )
    return [row[0] for row in rows]


async def incident_details(session: AsyncSession, incident_id: str) -> IncidentDetails:
    row = await get_incident(session, incident_id)
    links = (
        (
            await session.execute(
                sa.select(incident_links)
                .where(incident_links.c.incident_id == incident_id)
                .order_by(incident_links.c.linked_at, incident_links.c.engine_incident_id)
            )
        )
        .mappings()
        .all()
    )
    history = (
        (
            await session.execute(
                sa.select(incident_history)
                .where(incident_history.c.incident_id == incident_id)
                .order_by(incident_history.c.id)
            )
        )
        .mappings()
        .all()
    )
    incident = _incident(row, [link["engine_incident_id"] for link in links])
    return IncidentDetails(
        **incident.model_dump(),
        history=[
            IncidentHistoryEntry(
                timestamp=entry["occurred_at"],
                action=entry["action"],
                message=entry["message"],
                user=entry["actor"],
                details=entry["details"],
            )
            for entry in history
        ],
        engine_incidents=[
            LinkedEngineIncident(
                id=link["engine_incident_id"],
                incident_type=link["incident_type"],
                message=link["message"],
                created=link["created"],
                linked_at=link["linked_at"],
                closed_at=link["closed_at"],
                open=link["closed_at"] is None,
            )
            for link in links
        ],
    )


def _incident(row: Row, engine_incident_ids: list[str]) -> Incident:
    resolution = None
    if row["resolution_type"] is not None:
        resolution = IncidentResolution(
            type=row["resolution_type"],
            message=row["resolution_message"],
            resolved_by=row["resolved_by"],
            resolved_at=row["resolved_at"],
        )
    return Incident(
        id=row["id"],
        engine=row["engine"],
        engine_incident_ids=engine_incident_ids,
        incident_type=row["incident_type"],
        incident_message=row["message"],
        error_hash=row["error_hash"],
        status=row["status"],
        severity=row["severity"],
        instance_id=row["instance_id"],
        definition_id=row["definition_id"],
        definition_key=row["definition_key"],
        activity_id=row["activity_id"],
        activity_name=row["activity_name"],
        tenant_id=row["tenant_id"],
        created=row["created"],
        detected_at=row["detected_at"],
        updated=row["updated"],
        assignee=row["assignee"],
        retry_count=row["retry_count"],
        escalation_level=row["escalation_level"],
        resolution=resolution,
    )


async def _engine_incident_ids(session: AsyncSession, incident_ids: list[str]) -> dict[str, list[str]]:
    if not incident_ids:
        return {}
    rows = await session.execute(
        sa.select(incident_links.c.incident_id, incident_links.c.engine_incident_id)
        .where(incident_links.c.incident_id.in_(incident_ids))
        .order_by(incident_links.c.linked_at, incident_links.c.engine_incident_id)
    )
    found: dict[str, list[str]] = {}
    for incident_id, engine_incident_id in rows:
        found.setdefault(incident_id, []).append(engine_incident_id)
    return found


async def add_history(
    session: AsyncSession,
    incident_id: str,
    *,
    action: str,
    actor: str,
    message: str | None,
    details: dict[str, Any],
    at: datetime,
) -> None:
    await session.execute(
        incident_history.insert().values(
            incident_id=incident_id, occurred_at=at, action=action, actor=actor, message=message, details=details
        )
    )


# ---------------------------------------------------------------- policies
async def due_auto_retries(session: AsyncSession, now: datetime) -> list[str]:
    rows = await session.execute(
        sa.select(incidents.c.id)
        .where(incidents.c.status.in_(_values(policies.AUTOMATIC_RETRY.from_states)), incidents.c.next_retry_at <= now)
        .order_by(incidents.c.next_retry_at)
    )
    return [row[0] for row in rows]


async def open_since(session: AsyncSession, cutoff: datetime) -> list[str]:
    """Incidents open (nobody acknowledged them) since before `cutoff`: candidates for `AUTOMATIC_ESCALATION`."""
    rows = await session.execute(
        sa.select(incidents.c.id)
        .where(
            incidents.c.status.in_(_values(policies.AUTOMATIC_ESCALATION.from_states)),
            incidents.c.status_changed_at <= cutoff,
        )
        .order_by(incidents.c.status_changed_at)
    )
    return [row[0] for row in rows]


async def unresolved_created_before(session: AsyncSession, cutoff: datetime) -> Sequence[Row]:
    """Unresolved incidents older than `cutoff` whose severity could still rise."""
    rows = await session.execute(
        sa.select(incidents.c.id, incidents.c.incident_type, incidents.c.created, incidents.c.severity).where(
            incidents.c.status.in_(_values(policies.statuses_allowing(Action.SEVERITY_CHANGED))),
            incidents.c.created <= cutoff,
            incidents.c.severity != IncidentSeverity.CRITICAL,
        )
    )
    return rows.mappings().all()


# ---------------------------------------------------------------- engine incident links
async def lock_link(session: AsyncSession, engine: str, engine_incident_id: str) -> Row | None:
    return (
        (
            await session.execute(
                sa.select(incident_links)
                .where(incident_links.c.engine == engine, incident_links.c.engine_incident_id == engine_incident_id)
                .with_for_update()
            )
        )
        .mappings()
        .first()
    )


async def insert_link(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(incident_links.insert().values(**values))


async def set_link_closed(
    session: AsyncSession, engine: str, engine_incident_ids: Iterable[str], closed_at: datetime | None
) -> None:
    await session.execute(
        incident_links.update()
        .where(incident_links.c.engine == engine, incident_links.c.engine_incident_id.in_(list(engine_incident_ids)))
        .values(closed_at=closed_at)
    )


async def open_links(session: AsyncSession, engine: str) -> dict[str, str | None]:
    """The engine incidents the gateway believes open on an engine: id -> the instance it failed in."""
    rows = await session.execute(
        sa.select(incident_links.c.engine_incident_id, incidents.c.instance_id)
        .join(incidents, incidents.c.id == incident_links.c.incident_id)
        .where(incident_links.c.engine == engine, incident_links.c.closed_at.is_(None))
    )
    return {engine_incident_id: instance_id for engine_incident_id, instance_id in rows}


async def open_engine_incident_ids(session: AsyncSession, incident_id: str) -> list[str]:
    rows = await session.execute(
        sa.select(incident_links.c.engine_incident_id)
        .where(incident_links.c.incident_id == incident_id, incident_links.c.closed_at.is_(None))
        .order_by(incident_links.c.linked_at, incident_links.c.engine_incident_id)
    )
    return [row[0] for row in rows]


# ---------------------------------------------------------------- bulk operations
async def insert_operation(
    session: AsyncSession,
    *,
    operation_id: str,
    type: str,
    request: dict[str, Any],
    requested_by: str,
    incident_ids: list[str],
    now: datetime,
) -> None:
    await session.execute(
        operations.insert().values(
            id=operation_id,
            type=type,
            status=OperationStatus.PENDING,
            request=request,
            requested_by=requested_by,
            total=len(incident_ids),
            created=now,
            updated=now,
        )
    )
    if incident_ids:
        await session.execute(
            operation_items.insert(),
            [
                {
                    "operation_id": operation_id,
                    "incident_id": incident_id,
                    "position": position,
                    "state": ItemState.PENDING,
                    "updated": now,
                }
                for position, incident_id in enumerate(incident_ids)
            ],
        )


async def unfinished_operations(session: AsyncSession) -> Sequence[Row]:
    rows = await session.execute(
        sa.select(operations)
        .where(operations.c.status.in_([OperationStatus.PENDING, OperationStatus.RUNNING]))
        .order_by(operations.c.created)
    )
    return rows.mappings().all()


async def set_operation_status(
    session: AsyncSession, operation_id: str, status: OperationStatus, now: datetime
) -> None:
    finished = now if status is OperationStatus.COMPLETED else None
    await session.execute(
        operations.update().where(operations.c.id == operation_id).values(status=status, updated=now, finished=finished)
    )


async def items_in_state(session: AsyncSession, operation_id: str, state: ItemState) -> Sequence[Row]:
    rows = await session.execute(
        sa.select(operation_items)
        .where(operation_items.c.operation_id == operation_id, operation_items.c.state == state)
        .order_by(operation_items.c.position)
    )
    return rows.mappings().all()


async def claim_item(
    session: AsyncSession, operation_id: str, incident_id: str, engine_incident_ids: list[str], now: datetime
) -> bool:
    """pending -> retrying, recording what the retry targets; False if someone else took the item."""
    result = await session.execute(
        operation_items.update()
        .where(
            operation_items.c.operation_id == operation_id,
            operation_items.c.incident_id == incident_id,
            operation_items.c.state == ItemState.PENDING,
        )
        .values(state=ItemState.RETRYING, engine_incident_ids=engine_incident_ids, updated=now)
    )
    return rowcount(result) == 1


async def set_item_state(
    session: AsyncSession, operation_id: str, incident_id: str, state: ItemState, detail: str | None, now: datetime
) -> None:
    await session.execute(
        operation_items.update()
        .where(operation_items.c.operation_id == operation_id, operation_items.c.incident_id == incident_id)
        .values(state=state, detail=detail, updated=now)
    )
    await session.execute(operations.update().where(operations.c.id == operation_id).values(updated=now))


async def operation(session: AsyncSession, operation_id: str) -> OperationProgress:
    row = (await session.execute(sa.select(operations).where(operations.c.id == operation_id))).mappings().first()
    if row is None:
        raise NotFound(f"Operation {operation_id} does not exist")
    counts: dict[str, int] = dict(
        (
            await session.execute(
                sa.select(operation_items.c.state, sa.func.count())
                .where(operation_items.c.operation_id == operation_id)
                .group_by(operation_items.c.state)
            )
        ).all()
    )
    failures = await session.execute(
        sa.select(operation_items.c.incident_id, operation_items.c.detail)
        .where(operation_items.c.operation_id == operation_id, operation_items.c.state == ItemState.FAILED)
        .order_by(operation_items.c.position)
    )
    return OperationProgress(
        id=row["id"],
        type=row["type"],
        status=row["status"],
        requested_by=row["requested_by"],
        total=row["total"],
        created=row["created"],
        updated=row["updated"],
        finished=row["finished"],
        failures=[OperationFailure(incident_id=incident_id, detail=detail) for incident_id, detail in failures],
        **{state.value: counts.get(state.value, 0) for state in ItemState},
    )
