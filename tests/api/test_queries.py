"""Variable conditions and sorting on the list endpoints, on the embedded engine, as a frontend uses them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import deploy, start
from tests.api.test_api import assert_problem

INSTANCES = "/api/processes/instances"
TASKS = "/api/processes/tasks"


async def business_keys(client: httpx.AsyncClient, path: str, *conditions: str, **params: Any) -> list[str]:
    """The business keys of the page, after checking that `total` counts exactly its items (a one-page list)."""
    response = await client.get(path, params={"variable": list(conditions), **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["items"]), body
    return [item["business_key"] for item in body["items"]]


@pytest.fixture
async def orders(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await deploy(client)
    for key, amount, customer, region, approved in [
        ("o1", 500, "ACME", "EU", True),
        ("o2", 12000, "ACME Corp", "US", False),
        ("o3", 25000.5, "Globex", "EU", True),
        ("o4", 10000, "Initech", "APAC", False),
    ]:
        variables = {"amount": amount, "customer": customer, "region": region, "approved": approved}
        await start(client, business_key=key, variables=variables)
    return client


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        (["amount:gt:10000"], ["o2", "o3"]),
        (["amount:gte:10000"], ["o2", "o3", "o4"]),
        (["amount:lt:10000"], ["o1"]),
        (["amount:lte:10000"], ["o1", "o4"]),
        (["amount:eq:25000.5"], ["o3"]),
        (['customer:eq:"ACME"'], ["o1"]),
        (['customer:neq:"ACME"'], ["o2", "o3", "o4"]),
        (['customer:like:"ACME%"'], ["o1", "o2"]),
        (['region:in:["EU","APAC"]'], ["o1", "o3", "o4"]),
        (["amount:in:[500,10000]"], ["o1", "o4"]),
        (["approved:eq:true"], ["o1", "o3"]),
        (["amount:gt:1000", 'region:eq:"EU"'], ["o3"]),
        (['customer:gte:"Globex"'], ["o3", "o4"]),
        (["missing:eq:1"], []),
    ],
)
async def test_instances_are_filtered_by_their_variables(
    orders: httpx.AsyncClient, conditions: list[str], expected: list[str]
) -> None:
    found = await business_keys(orders, INSTANCES, *conditions, sort="business_key", order="asc")
    assert found == expected


INSPECTIONS = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="inspections" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="to-inspect" sourceRef="start" targetRef="inspect"/>
    <bpmn:userTask id="inspect" camunda:assignee="${room}">
      <bpmn:multiInstanceLoopCharacteristics camunda:collection="rooms" camunda:elementVariable="room"/>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="to-end" sourceRef="inspect" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


async def test_a_tasks_own_variable_is_no_variable_of_its_instance(client: httpx.AsyncClient) -> None:
    """Each task of a multi-instance user task has its own `room`: a `task_variable` condition finds that task, an
    instance condition on `room` neither lists nor counts the instance."""
    await deploy(client, INSPECTIONS)
    await start(client, "inspections", business_key="i1", variables={"rooms": ["attic", "cellar"]})
    response = await client.get(TASKS, params={"task_variable": 'room:eq:"attic"'})
    assert response.status_code == 200, response.text
    assert [task["assignee"] for task in response.json()["items"]] == ["attic"]
    assert await business_keys(client, INSTANCES, 'room:eq:"attic"') == []
    assert await business_keys(client, INSTANCES, 'room:like:"%"', 'rooms:neq:"x"') == []


async def test_tasks_are_filtered_by_their_instance_variables(orders: httpx.AsyncClient) -> None:
    response = await orders.get(TASKS, params={"variable": ["amount:gt:10000"], "sort": "created", "order": "asc"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 2
    instances = {i["id"]: i["business_key"] for i in (await orders.get(INSTANCES)).json()["items"]}
    assert sorted(instances[t["instance_id"]] for t in body["items"]) == ["o2", "o3"]


async def test_changed_variables_are_found_by_their_new_value(orders: httpx.AsyncClient) -> None:
    (o1,) = (await orders.get(INSTANCES, params={"business_key": "o1"})).json()["items"]
    changed = await orders.put(
        f"{INSTANCES}/{o1['id']}/variables", json={"variables": {"amount": 99999}, "deletions": ["region"]}
    )
    assert changed.status_code == 200, changed.text
    assert await business_keys(orders, INSTANCES, "amount:gt:50000") == ["o1"]
    assert await business_keys(orders, INSTANCES, 'region:eq:"EU"') == ["o3"]


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        ("amount", "write it as name:operator:value"),
        ("amount:between:1", "unknown operator 'between'"),
        ("customer:eq:ACME", "is not JSON; quote strings"),
        ("amount:gt:true", "'gt' compares numbers or strings"),
        ('region:in:"EU"', "'in' takes a non-empty JSON array"),
        ('region:in:["EU",1]', "strings only or numbers only"),
        ("customer:like:5", "'like' takes a string pattern"),
        ("customer:eq:null", "'eq' compares a string, a number or true/false"),
        (":eq:1", "write it as name:operator:value"),
        ("amount:eq:9223372036854775808", "outside the signed 64-bit range"),
        ("amount:in:[99999999999999999999999]", "outside the signed 64-bit range"),
        ('region:eq:"\\ud800"', "lone UTF-16 surrogate"),
        ('region:in:["\\udfff"]', "lone UTF-16 surrogate"),
    ],
)
async def test_an_invalid_condition_is_a_400_naming_it(
    client: httpx.AsyncClient, condition: str, fragment: str
) -> None:
    for path, parameter in ((INSTANCES, "variable"), (TASKS, "variable"), (TASKS, "task_variable")):
        response = await client.get(path, params={parameter: ["amount:gt:1", condition]})
        body = assert_problem(response, 400, f"'{condition}'", fragment)
        assert body["title"] == "Bad request"


async def test_more_conditions_than_the_limit_are_a_400_naming_it(client: httpx.AsyncClient) -> None:
    conditions = [f"v{index}:eq:{index}" for index in range(51)]
    assert_problem(await client.get(INSTANCES, params={"variable": conditions}), 400, "at most 50 variable conditions")
    assert (await client.get(INSTANCES, params={"variable": conditions[:50]})).status_code == 200


async def test_instances_sort_by_every_field_with_a_stable_order(orders: httpx.AsyncClient) -> None:
    assert await business_keys(orders, INSTANCES, sort="business_key", order="desc") == ["o4", "o3", "o2", "o1"]
    assert await business_keys(orders, INSTANCES, sort="start_time", order="asc") == ["o1", "o2", "o3", "o4"]
    # Every instance has the same definition key: the id decides, the same way on every page.
    all_ids = [
        i["id"]
        for i in (await orders.get(INSTANCES, params={"sort": "definition_key", "order": "asc"})).json()["items"]
    ]
    assert all_ids == sorted(all_ids)
    paged = []
    for page in (1, 2):
        response = await orders.get(
            INSTANCES, params={"sort": "definition_key", "order": "asc", "size": 2, "page": page}
        )
        paged += [i["id"] for i in response.json()["items"]]
    assert paged == all_ids


@pytest.mark.parametrize("field", ["created", "due", "follow_up", "priority", "name", "assignee"])
async def test_tasks_sort_by_every_field(orders: httpx.AsyncClient, field: str) -> None:
    ascending = (await orders.get(TASKS, params={"sort": field, "order": "asc"})).json()["items"]
    descending = (await orders.get(TASKS, params={"sort": field, "order": "desc"})).json()["items"]
    assert len(ascending) == 4
    # all four tasks tie on due, follow_up, priority, name and assignee: the id breaks the tie both ways
    if field != "created":
        assert [t["id"] for t in ascending] == sorted(t["id"] for t in ascending)
    assert [t["id"] for t in descending] == [t["id"] for t in reversed(ascending)]


async def test_an_unknown_sort_field_names_the_sortable_ones(client: httpx.AsyncClient) -> None:
    response = await client.get(TASKS, params={"sort": "color"})
    assert_problem(response, 422, "cannot sort by 'color'", "follow_up")


async def test_a_cursor_on_a_one_engine_list_is_a_400(client: httpx.AsyncClient) -> None:
    """A one-engine list pages with `page`; a cursor there used to be ignored, showing page 1 again."""
    for path in (INSTANCES, TASKS):
        assert_problem(await client.get(path, params={"cursor": "garbage"}), 400, "engine=*")
