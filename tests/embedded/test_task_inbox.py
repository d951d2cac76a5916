"""Lists of open tasks read the task inbox: every filter, sort and order gives what the tasks themselves say, after
claims, delegations, completions and terminations; totals are counted up to a limit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.embedded import EmbeddedAdapter, repository, tables
from gateway.db import Database
from gateway.schemas import InstanceMigration, SortOrder, Task, TaskQuery
from tests.embedded.conftest import bpmn, deploy, flow, start, tasks_of

START = '<bpmn:startEvent id="start"/>'
END = '<bpmn:endEvent id="end"/>'


def review(key: str, name: str) -> bytes:
    task = (
        f'<bpmn:userTask id="review" name="{name}" camunda:assignee="${{owner}}" camunda:candidateUsers="${{users}}"'
        ' camunda:candidateGroups="${groups}" camunda:priority="${p}" camunda:dueDate="${due}"'
        ' camunda:followUpDate="${fu}"/>'
    )
    return bpmn(key, START + flow("start", "review") + task + flow("review", "end") + END)


# (definition, owner, candidate users, candidate groups, priority, due, follow-up): ties and gaps on purpose
TASKS = [
    ("alpha", None, "ann", "sales", 50, "2030-01-05T00:00:00Z", None),
    ("alpha", "carol", "", "sales,ops", 50, None, "2030-02-01T00:00:00Z"),
    ("bravo", None, "ann,ben", "ops", 10, "2030-01-05T00:00:00Z", "2030-02-03T00:00:00Z"),
    ("bravo", "dave", "ben", "", 90, "2030-01-02T00:00:00Z", None),
    ("charlie", None, "", "sales", 10, None, None),
    ("charlie", None, "ann", "legal", 70, "2030-01-09T00:00:00Z", "2030-02-02T00:00:00Z"),
    ("alpha", None, "", "sales", 30, "2030-01-01T00:00:00Z", None),
    ("bravo", "carol", "ben", "ops", 30, "2030-01-03T00:00:00Z", None),
    ("charlie", None, "ann", "sales,legal", 50, "2030-01-05T00:00:00Z", None),
    ("alpha", None, "ben", "ops", 20, None, "2030-02-01T00:00:00Z"),
]
NAMES = {"alpha": "Alpha check", "bravo": "Bravo review", "charlie": "Charlie call"}


async def open_inbox(adapter: EmbeddedAdapter) -> tuple[list[str], list[str]]:
    """Start the tasks above, then change some: returns (instance ids, task ids in TASKS order)."""
    for key, name in NAMES.items():
        await deploy(adapter, review(key, name))
    instance_ids = []
    for key, owner, users, groups, priority, due, follow_up in TASKS:
        variables = {"owner": owner, "users": users, "groups": groups, "p": priority, "due": due, "fu": follow_up}
        instance_ids.append(await start(adapter, key, variables))
    task_ids = [(await tasks_of(adapter, instance_id))["review"].id for instance_id in instance_ids]
    await adapter.claim_task(task_ids[0], "ann")  # assigned
    await adapter.delegate_task(task_ids[1], "erin")  # delegated to erin, carol stays owner
    await adapter.unclaim_task(task_ids[3])  # dave gives it back
    await adapter.complete_task(task_ids[4], {}, user_id="x")  # gone from the inbox
    await adapter.terminate_instance(instance_ids[5], None)  # gone too
    assert (await adapter.claim_next("ben", ["ops"], None)) is not None  # the highest-priority free ops task
    return instance_ids, task_ids


FILTERS: list[dict[str, Any]] = [
    {},
    {"candidate_group": "sales"},
    {"candidate_group": "ops", "unassigned": True},
    {"candidate_group": "legal"},
    {"candidate_user": "ann"},
    {"candidate_user": "ben", "candidate_group": "ops"},
    {"candidate_user": "ann", "unassigned": False},
    {"assignee": "carol"},
    {"assignee": "erin"},
    {"unassigned": True},
    {"definition_key": "alpha"},
    {"definition_key": "bravo", "candidate_group": "ops"},
    {"status": "assigned"},
    {"status": "delegated"},
    {"status": "created", "candidate_group": "sales"},
    {"due_before": "2030-01-05T00:00:00Z"},
    {"candidate_group": "sales", "due_before": "2030-01-06T00:00:00Z"},
    {"tenant_id": "nobody"},
    # the pairs read as one inbox key (repository.inbox_key)
    {"unassigned": False},
    {"candidate_user": "ann", "unassigned": True},
    {"candidate_group": "ops", "unassigned": False},
    {"candidate_group": "sales", "definition_key": "alpha"},
    {"candidate_user": "ben", "definition_key": "bravo"},
    {"candidate_group": "sales", "tenant_id": "nobody"},
]


def matches(task: Task, filters: dict[str, Any]) -> bool:
    due_before = filters.get("due_before")
    checks = {
        "candidate_group": lambda value: value in task.candidate_groups,
        "candidate_user": lambda value: value in task.candidate_users,
        "assignee": lambda value: task.assignee == value,
        "unassigned": lambda value: (task.assignee is None) == value,
        "definition_key": lambda value: task.definition_key == value,
        "status": lambda value: task.status == value,
        "due_before": lambda value: task.due is not None and task.due < datetime.fromisoformat(due_before),
        "tenant_id": lambda value: task.tenant_id == value,
    }
    return all(checks[name](value) for name, value in filters.items())


def in_order(tasks: list[Task], sort: str, order: SortOrder, nulls_largest: bool) -> list[str]:
    """The tasks' ids as the list should give them: by the field, then by id; where NULL goes is the database's
    (PostgreSQL: largest, SQLite: smallest)."""

    def key(task: Task) -> tuple[Any, ...]:
        value = getattr(task, sort)
        return ((value is None) == nulls_largest, value if value is not None else 0, task.id)

    ordered = sorted(tasks, key=key)
    return [task.id for task in (ordered if order == SortOrder.ASC else ordered[::-1])]


async def test_every_filter_sort_and_order_lists_what_the_tasks_say(
    adapter: EmbeddedAdapter, database: Database
) -> None:
    _, task_ids = await open_inbox(adapter)
    open_tasks = [await adapter.get_task(task_id) for task_id in task_ids if task_id not in task_ids[4:6]]
    assert {task.status for task in open_tasks} == {"created", "assigned", "delegated"}
    nulls_largest = database.engine.dialect.name == "postgresql"
    for filters in FILTERS:
        expected = [task for task in open_tasks if matches(task, filters)]
        for sort in sorted(TaskQuery.sortable):
            for order in SortOrder:
                query = TaskQuery.model_validate({**filters, "sort": sort, "order": order})
                page = await adapter.list_tasks(query)
                listed = ([task.id for task in page.items], page.total)
                assert listed == (in_order(expected, sort, order, nulls_largest), len(expected)), query


async def test_ended_tasks_leave_the_inbox_and_stay_listed_by_their_status(adapter: EmbeddedAdapter) -> None:
    instance_ids, task_ids = await open_inbox(adapter)
    open_ids = {task.id for task in (await adapter.list_tasks(TaskQuery(size=100))).items}
    assert open_ids == set(task_ids) - {task_ids[4], task_ids[5]}
    completed = await adapter.list_tasks(TaskQuery(status="completed", candidate_group="sales"))
    assert ([task.id for task in completed.items], completed.total) == ([task_ids[4]], 1)
    cancelled = await adapter.list_tasks(TaskQuery(status="cancelled", instance_id=instance_ids[5]))
    assert [task.id for task in cancelled.items] == [task_ids[5]]
    assert (await adapter.list_tasks(TaskQuery(instance_id=instance_ids[5]))).items == []


async def test_ended_tasks_are_listed_in_every_sort_and_order(adapter: EmbeddedAdapter, database: Database) -> None:
    _, task_ids = await open_inbox(adapter)
    for task_id in task_ids[6:9]:
        await adapter.complete_task(task_id, {}, user_id="x")
    completed = [await adapter.get_task(task_id) for task_id in [task_ids[4], *task_ids[6:9]]]
    nulls_largest = database.engine.dialect.name == "postgresql"
    for filters in ({}, {"candidate_group": "sales"}, {"unassigned": True}):
        expected = [task for task in completed if matches(task, filters)]
        for sort in sorted(TaskQuery.sortable):
            for order in SortOrder:
                query = TaskQuery.model_validate({**filters, "status": "completed", "sort": sort, "order": order})
                page = await adapter.list_tasks(query)
                listed = ([task.id for task in page.items], page.total)
                assert listed == (in_order(expected, sort, order, nulls_largest), len(expected)), query


async def test_a_task_reassigned_moves_between_inboxes(adapter: EmbeddedAdapter) -> None:
    _, task_ids = await open_inbox(adapter)
    await adapter.assign_task(task_ids[6], "frank")
    assert [t.id for t in (await adapter.list_tasks(TaskQuery(assignee="frank"))).items] == [task_ids[6]]
    assert task_ids[6] not in {t.id for t in (await adapter.list_tasks(TaskQuery(unassigned=True, size=100))).items}
    await adapter.unclaim_task(task_ids[6])
    assert (await adapter.list_tasks(TaskQuery(assignee="frank"))).items == []
    free = await adapter.list_tasks(TaskQuery(candidate_group="sales", unassigned=True, status="created", size=100))
    assert task_ids[6] in {t.id for t in free.items}


async def test_the_total_counts_up_to_a_limit_past_the_requested_page(
    adapter: EmbeddedAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    await open_inbox(adapter)
    everything = await adapter.list_tasks(TaskQuery())
    assert everything.total == len(everything.items) == 8
    monkeypatch.setattr(repository, "COUNT_LIMIT", 2)
    first = await adapter.list_tasks(TaskQuery(size=3))
    assert (len(first.items), first.total) == (3, 5)  # at least 5: a pager knows there is a next page
    third = await adapter.list_tasks(TaskQuery(size=3, page=3))
    assert (len(third.items), third.total) == (2, 8)  # the end is within reach: exact


async def test_a_migrated_instance_lists_its_task_under_the_target_process(adapter: EmbeddedAdapter) -> None:
    await deploy(adapter, review("alpha", "Alpha check"))
    target = await deploy(adapter, review("bravo", "Bravo review"))
    variables = {"owner": None, "users": "", "groups": "sales", "p": 50, "due": None, "fu": None}
    instance_id = await start(adapter, "alpha", variables)
    await adapter.migrate_instance(instance_id, InstanceMigration(target_definition_id=target))
    page = await adapter.list_tasks(TaskQuery(definition_key="bravo", candidate_group="sales"))
    assert [(task.instance_id, task.name) for task in page.items] == [(instance_id, "Bravo review")]
    assert (await adapter.list_tasks(TaskQuery(definition_key="alpha"))).items == []


async def test_claim_next_reads_the_next_window_when_other_claims_hold_a_whole_one(
    adapter: EmbeddedAdapter, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent claims each hold the task they took until they commit (`FOR UPDATE SKIP LOCKED`); a claim that
    finds every task of its window of candidates held takes one from the next window, not "nothing left"."""
    if database.is_sqlite:
        pytest.skip("SQLite has one writer: no claim holds a task while another looks")
    monkeypatch.setattr(repository, "CLAIM_NEXT_BATCH", 2)
    await deploy(adapter, review("alpha", NAMES["alpha"]))
    variables = {"owner": None, "users": "", "groups": "sales", "p": 50, "due": None, "fu": None}
    instance_ids = [await start(adapter, "alpha", variables) for _ in range(5)]
    task_ids = [(await tasks_of(adapter, instance_id))["review"].id for instance_id in instance_ids]
    async with database.engine.connect() as holder, holder.begin():
        held = sa.select(tables.tasks.c.id).where(tables.tasks.c.id.in_(task_ids[:3])).with_for_update()
        await holder.execute(held)  # as three claims in flight would
        claimed = await adapter.claim_next("zoe", ["sales"], None)
    assert claimed is not None and (claimed.id, claimed.assignee) == (task_ids[3], "zoe")  # the oldest free one
    assert (await adapter.claim_next("yan", ["sales"], None)).id == task_ids[0]  # released: the oldest again


async def test_claim_next_passes_over_any_number_of_suspended_instances_tasks(
    adapter: EmbeddedAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tasks of suspended instances stay in the queue, ahead of a free one: more of them than the windows a claim
    reads (here 5 windows of 2) must not make it answer that nothing is left."""
    monkeypatch.setattr(repository, "CLAIM_NEXT_BATCH", 2)
    await deploy(adapter, review("alpha", NAMES["alpha"]))
    variables = {"owner": None, "users": "", "groups": "sales", "p": 50, "due": None, "fu": None}
    instance_ids = [await start(adapter, "alpha", variables) for _ in range(13)]
    for instance_id in instance_ids[:12]:
        await adapter.set_instance_suspended(instance_id, True)
    claimed = await adapter.claim_next("zoe", ["sales"], None)
    assert claimed is not None and claimed.instance_id == instance_ids[12]
    assert await adapter.claim_next("zoe", ["sales"], None) is None
