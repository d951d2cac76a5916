"""The Camunda 8 adapter: mappings, error paths (respx) and behaviour beyond the conformance suite (simulator)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from adapters.zeebe import ZeebeAdapter, mapping
from gateway.db import Database
from gateway.errors import (
    BadRequest,
    Conflict,
    EngineError,
    EngineTimeout,
    EngineUnavailable,
    InvalidBpmn,
    NotFound,
    NotSupported,
)
from gateway.registry import EngineRegistry
from gateway.schemas import (
    DefinitionQuery,
    EngineIncidentQuery,
    HistoryQuery,
    InstanceModification,
    InstanceQuery,
    ModificationInstruction,
    Page,
    StartInstance,
    TaskQuery,
)
from gateway.settings import Settings
from gateway.variables import TypedValue, VariableType, parse_request_variables
from tests.conformance.harnesses.zeebe import BPMN
from tests.zeebe.simulator import Simulator
from tests.zeebe.worker import ChargeWorker, running

BASE = "http://zeebe.test/v2"
BIG_KEY = "9007199254740993"  # 2^53 + 1: a float cannot hold it

Simulated = Callable[..., Awaitable[tuple[ZeebeAdapter, Simulator]]]


def problem(status: int, title: str, detail: str) -> httpx.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": "/v2/x"}
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json"})


def page(*items: dict[str, Any], total: int | None = None) -> httpx.Response:
    totals = {"totalItems": len(items) if total is None else total}
    return httpx.Response(200, json={"items": list(items), "page": totals})


def sent(route: respx.Route) -> dict[str, Any]:
    return json.loads(route.calls.last.request.content)


async def build(database: Database, transport: httpx.AsyncBaseTransport | None = None) -> EngineRegistry:
    config = {"name": "c8", "type": "zeebe", "url": BASE, "connect_timeout": 0.5, "read_timeout": 0.5}
    settings = Settings(engines=[config], database_url=database.url)
    registry = EngineRegistry(settings, database, transports={"c8": transport} if transport else None)
    await registry.start()
    return registry


def zeebe_adapter(registry: EngineRegistry) -> ZeebeAdapter:
    adapter = registry.get().adapter
    assert isinstance(adapter, ZeebeAdapter)
    return adapter


@pytest.fixture
async def adapter(database: Database) -> AsyncIterator[ZeebeAdapter]:
    """The adapter as the registry builds it, for respx to answer in place of Camunda."""
    registry = await build(database)
    built = zeebe_adapter(registry)
    built.visibility_timeout = 0.3
    yield built
    await registry.close()


@pytest.fixture
async def simulated(database: Database) -> AsyncIterator[Simulated]:
    """Builds the adapter against a fresh simulator made with the given options."""
    registries: list[EngineRegistry] = []

    async def make(**options: Any) -> tuple[ZeebeAdapter, Simulator]:
        simulator = Simulator(**options)
        registries.append(await build(database, simulator.transport))
        return zeebe_adapter(registries[-1]), simulator

    yield make
    for registry in registries:
        await registry.close()


async def deploy(adapter: ZeebeAdapter, scenario: str) -> str:
    deployment = await adapter.deploy(
        BPMN[scenario], filename=f"{scenario}.bpmn", name=None, tenant_id=None, deployed_by="ann"
    )
    return deployment.definitions[0].id


async def start(adapter: ZeebeAdapter, key: str, variables: dict[str, Any] | None = None) -> str:
    request = StartInstance(definition_key=key, variables=parse_request_variables(variables or {}))
    return (await adapter.start_instance(request, started_by="ann")).id


async def eventually(probe: Callable[[], Awaitable[Page[Any]]]) -> Page[Any]:
    for _ in range(200):
        found = await probe()
        if found.total:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError("nothing showed up")


# ------------------------------------------------------------------ mappings
def test_definition_keeps_keys_as_strings_and_hides_the_default_tenant() -> None:
    item = {
        "processDefinitionKey": BIG_KEY,
        "processDefinitionId": "order",
        "name": "Order",
        "version": 3,
        "tenantId": "<default>",
    }
    meta = {"deployment_id": "7", "deployed_at": "2026-01-02T03:04:05Z", "deployed_by": "ann"}
    definition = mapping.definition(item, engine="c8", meta=meta)
    assert (definition.id, definition.key, definition.name, definition.version) == (BIG_KEY, "order", "Order", 3)
    assert (definition.tenant_id, definition.deployment_id, definition.deployed_by) == (None, "7", "ann")
    assert definition.deployed_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert mapping.definition({**item, "tenantId": "emea"}, engine="c8", meta={}).tenant_id == "emea"


def test_instance_status_duration_and_business_key() -> None:
    item = {
        "processInstanceKey": BIG_KEY,
        "processDefinitionKey": "5",
        "processDefinitionId": "order",
        "startDate": "2026-01-01T10:00:00.000Z",
        "endDate": "2026-01-01T10:00:01.500+0000",
        "state": "TERMINATED",
        "parentProcessInstanceKey": "4",
    }
    instance = mapping.instance(item, engine="c8", meta={"business_key": "order-7", "started_by": "ann"})
    assert (instance.id, instance.status, instance.duration_ms) == (BIG_KEY, "terminated", 1500)
    assert (instance.business_key, instance.started_by, instance.super_instance_id) == ("order-7", "ann", "4")
    assert mapping.instance({**item, "businessId": "b-1"}, engine="c8", meta={}).business_key == "b-1"  # 8.9
    assert mapping.instance({**item, "state": "ACTIVE", "endDate": None}, engine="c8", meta={}).duration_ms is None


@pytest.mark.parametrize(
    ("state", "assignee", "delegation", "status"),
    [
        ("CREATED", None, {}, "created"),
        ("CREATED", "bob", {}, "assigned"),
        ("CREATED", "dave", {"owner": "bob", "delegate": "dave"}, "delegated"),
        ("CREATED", "carol", {"owner": "bob", "delegate": "dave"}, "assigned"),  # reassigned since
        ("COMPLETED", "dave", {"owner": "bob", "delegate": "dave"}, "completed"),
        ("CANCELED", None, {}, "cancelled"),
    ],
)
def test_task_status(state: str, assignee: str | None, delegation: dict[str, str], status: str) -> None:
    item = {"userTaskKey": BIG_KEY, "state": state, "assignee": assignee, "elementId": "review", "priority": None}
    task = mapping.task(item, engine="c8", delegation=delegation)
    assert task.status == status
    assert task.owner == ("bob" if status == "delegated" else None)
    assert (task.id, task.priority, task.candidate_groups) == (BIG_KEY, 50, [])


def test_incident_types_shared_with_the_other_engines() -> None:
    item = {"incidentKey": BIG_KEY, "errorType": "JOB_NO_RETRIES", "errorMessage": "boom", "jobKey": "9"}
    incident = mapping.incident(item, engine="c8")
    assert (incident.id, incident.incident_type, incident.job_id) == (BIG_KEY, "failedJob", "9")
    assert mapping.incident({**item, "errorType": "IO_MAPPING_ERROR"}, engine="c8").incident_type == "ioMappingError"
    assert [mapping.error_type(kind) for kind in ("failedJob", "ioMappingError", "CONDITION_ERROR")] == [
        "JOB_NO_RETRIES",
        "IO_MAPPING_ERROR",
        "CONDITION_ERROR",
    ]


@pytest.mark.parametrize(
    ("declared", "marker"),
    [
        ({"value": 5, "type": "Long"}, "Long"),
        ({"value": 9_007_199_254_740_993, "type": "Long"}, None),
        ({"value": 2, "type": "Double"}, "Double"),
        ({"value": 0.5, "type": "Double"}, None),
        ({"value": "2026-01-02T03:04:05Z", "type": "Date"}, "Date"),
        ({"value": "text", "type": "Json"}, "Json"),
        ({"value": None, "type": "String"}, "String"),
        ({"value": "text", "type": "String"}, None),
        ({"value": None, "type": "Null"}, None),
    ],
)
def test_type_markers_only_where_json_loses_the_type(declared: dict[str, Any], marker: str | None) -> None:
    (typed,) = parse_request_variables({"v": declared}).values()
    assert mapping.type_marker(typed) == marker
    assert mapping.variable("v", json.dumps(typed.value), marker) == typed


def test_variables_read_back() -> None:
    big = TypedValue(value=9_007_199_254_740_993, type=VariableType.LONG)
    assert mapping.variable("n", "9007199254740993", None) == big  # exact, never through a float
    assert mapping.variable("gone", "null", mapping.DELETED) is None
    assert mapping.variable("back", '"again"', mapping.DELETED) == TypedValue(value="again", type=VariableType.STRING)
    # the process replaced a Date by a number since: the number's own type wins
    assert mapping.variable("when", "42", "Date") == TypedValue(value=42, type=VariableType.INTEGER)


def test_resource_names_keep_the_upload_name_with_a_bpmn_extension() -> None:
    assert mapping.resource_name("order.bpmn") == "order.bpmn"
    assert mapping.resource_name("order.bpmn20.xml") == "order.bpmn20.xml"
    assert mapping.resource_name("upload") == "upload.bpmn"


# ------------------------------------------------------------------ requests and error paths (respx)
@respx.mock(base_url=BASE)
async def test_not_found_carries_the_engines_detail(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    detail = f"Process instance with key '{BIG_KEY}' not found"
    respx_mock.get(f"/process-instances/{BIG_KEY}").mock(return_value=problem(404, "NOT_FOUND", detail))
    with pytest.raises(NotFound) as caught:
        await adapter.get_instance(BIG_KEY)
    assert (caught.value.engine_status, caught.value.engine_message) == (404, detail)


@respx.mock(base_url=BASE)
async def test_ids_that_cannot_be_keys_name_nothing(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    for call in (adapter.get_definition("approval"), adapter.get_task("1e5"), adapter.terminate_instance("-1", None)):
        with pytest.raises(NotFound):
            await call
    assert not respx_mock.calls


@respx.mock(base_url=BASE)
async def test_a_deleted_definition_is_not_found(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    # Recent Camunda releases keep deleted definitions in secondary storage, marked DELETED.
    deleted = {"processDefinitionKey": BIG_KEY, "processDefinitionId": "order", "version": 1, "state": "DELETED"}
    respx_mock.get(f"/process-definitions/{BIG_KEY}").mock(return_value=httpx.Response(200, json=deleted))
    with pytest.raises(NotFound):
        await adapter.get_definition(BIG_KEY)


@respx.mock(base_url=BASE)
async def test_bad_request_carries_the_engines_message(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    detail = "Command 'CREATE' rejected with code 'INVALID_ARGUMENT': bad id"
    respx_mock.post("/process-instances").mock(return_value=problem(400, "INVALID_ARGUMENT", detail))
    with pytest.raises(BadRequest) as caught:
        await start(adapter, "not valid")
    assert caught.value.engine_message == detail


@respx.mock(base_url=BASE)
async def test_refused_resources_are_invalid_bpmn(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    detail = (
        "Command 'CREATE' rejected with code 'INVALID_ARGUMENT': Expected to deploy new resources, but encountered "
        "the following errors:\n'approval.bpmn': - Element: charge\n    - ERROR: Must have exactly one "
        "'zeebe:taskDefinition' extension element"
    )
    respx_mock.post("/deployments").mock(return_value=problem(400, "INVALID_ARGUMENT", detail))
    with pytest.raises(InvalidBpmn) as caught:
        await deploy(adapter, "approval")
    assert (caught.value.status, caught.value.engine_message) == (400, detail)


async def test_a_service_task_without_job_type_is_invalid_bpmn(simulated: Simulated) -> None:
    adapter, _ = await simulated()
    xml = BPMN["charging"].replace(b'<zeebe:taskDefinition type="charge" retries="1" />', b"")
    with pytest.raises(InvalidBpmn) as caught:
        await adapter.deploy(xml, filename="charging.bpmn", name=None, tenant_id=None, deployed_by="ann")
    assert "zeebe:taskDefinition" in (caught.value.engine_message or "")


async def test_an_unknown_tenant_is_a_plain_bad_request(simulated: Simulated) -> None:
    adapter, _ = await simulated()
    with pytest.raises(BadRequest) as caught:
        await adapter.deploy(BPMN["approval"], filename="a.bpmn", name=None, tenant_id="emea", deployed_by="ann")
    assert not isinstance(caught.value, InvalidBpmn)
    assert "multi-tenancy is disabled" in (caught.value.engine_message or "")


@respx.mock(base_url=BASE)
async def test_engine_failure_is_502_with_its_message(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    respx_mock.post("/incidents/search").mock(return_value=problem(500, "INTERNAL", "secondary storage unavailable"))
    with pytest.raises(EngineError) as caught:
        await adapter.list_engine_incidents(EngineIncidentQuery())
    answer = caught.value.problem()
    assert (answer["status"], answer["engine_status"], answer["engine_message"]) == (
        502,
        500,
        "secondary storage unavailable",
    )


@respx.mock(base_url=BASE)
async def test_claiming_a_task_someone_holds_is_a_conflict(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    detail = (
        f"Command 'CLAIM' rejected with code 'INVALID_STATE': Expected to claim user task with key '{BIG_KEY}', "
        "but it has already been assigned"
    )
    route = respx_mock.post(f"/user-tasks/{BIG_KEY}/assignment")
    route.mock(return_value=problem(409, "INVALID_STATE", detail))
    with pytest.raises(Conflict) as caught:
        await adapter.claim_task(BIG_KEY, "bob")
    assert caught.value.engine_message == detail
    assert sent(route) == {"assignee": "bob", "allowOverride": False, "action": "claim"}


@respx.mock(base_url=BASE)
async def test_deleting_a_running_definition_is_a_conflict(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    # The adapter looks for running instances first; the engine refuses one started in between.
    respx_mock.post("/process-instances/search").mock(return_value=page(total=0))
    detail = (
        f"Command 'DELETE' rejected with code 'INVALID_STATE': Expected to delete resource with key `{BIG_KEY}` "
        "but there are still running instances"
    )
    respx_mock.post(f"/resources/{BIG_KEY}/deletion").mock(return_value=problem(409, "INVALID_STATE", detail))
    with pytest.raises(Conflict) as caught:
        await adapter.delete_definition(BIG_KEY, cascade=False)
    assert caught.value.engine_message == detail


@respx.mock(base_url=BASE)
async def test_gateway_timeout_of_the_engine_is_504(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    task = {"userTaskKey": BIG_KEY, "state": "CREATED", "elementId": "review", "processInstanceKey": BIG_KEY}
    respx_mock.get(f"/user-tasks/{BIG_KEY}").mock(return_value=httpx.Response(200, json=task))
    respx_mock.post(f"/user-tasks/{BIG_KEY}/completion").mock(
        return_value=problem(504, "DEADLINE_EXCEEDED", "Expected to handle request, but the request timed out")
    )
    with pytest.raises(EngineTimeout) as caught:
        await adapter.complete_task(BIG_KEY, {}, user_id="ann")
    assert caught.value.engine_status == 504


@respx.mock(base_url=BASE)
async def test_a_body_that_is_not_json_is_502(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    respx_mock.get("/topology").mock(return_value=httpx.Response(200, text="<html>proxy error</html>"))
    with pytest.raises(EngineError):
        await adapter.health()


@respx.mock(base_url=BASE)
async def test_timeout_is_504_refused_connection_503(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    respx_mock.get(f"/incidents/{BIG_KEY}").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(EngineTimeout):
        await adapter.get_engine_incident(BIG_KEY)
    respx_mock.get(f"/user-tasks/{BIG_KEY}").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(EngineUnavailable):
        await adapter.get_task(BIG_KEY)


@respx.mock(base_url=BASE)
async def test_health_is_down_without_a_partition_leader(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    topology = {"gatewayVersion": "8.8.3", "brokers": []}
    respx_mock.get("/topology").mock(return_value=httpx.Response(200, json=topology))
    respx_mock.get("/status").mock(return_value=httpx.Response(503))
    health = await adapter.health()
    assert (health.status, health.version) == ("down", "8.8.3")


@respx.mock(base_url=BASE)
async def test_pages_are_from_and_limit_and_engine_total(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    item = {
        "processInstanceKey": BIG_KEY,
        "processDefinitionKey": "5",
        "processDefinitionId": "order",
        "startDate": "2026-01-01T10:00:00.000Z",
        "state": "ACTIVE",
    }
    route = respx_mock.post("/process-instances/search").mock(return_value=page(item, total=41))
    query = InstanceQuery(
        definition_key="order",
        status="active",
        has_incident=True,
        page=3,
        size=20,
        sort="end_time",
        order="asc",
        variable=['customer:eq:"ACME"', "amount:neq:10", 'region:in:["EU","US"]', 'code:like:"A_1%*"'],
    )
    result = await adapter.list_instances(query)
    assert (result.total, result.page, result.size, [i.id for i in result.items]) == (41, 3, 20, [BIG_KEY])
    assert sent(route) == {
        "filter": {
            "processDefinitionId": {"$eq": "order"},
            "state": {"$eq": "ACTIVE"},
            "hasIncident": True,
            "variables": [
                {"name": "customer", "value": {"$eq": '"ACME"'}},
                {"name": "amount", "value": {"$neq": "10"}},
                {"name": "region", "value": {"$in": ['"EU"', '"US"']}},
                {"name": "code", "value": {"$like": '"A?1*\\*"'}},
            ],
        },
        "page": {"from": 40, "limit": 20},
        "sort": [{"field": "endDate", "order": "ASC"}, {"field": "processInstanceKey", "order": "ASC"}],
    }
    with pytest.raises(NotSupported):
        await adapter.list_instances(InstanceQuery(sort="business_key"))


@respx.mock(base_url=BASE)
async def test_latest_definitions_page_from_the_start(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    # With isLatestVersion Camunda 8 ignores `from`: the adapter reads to the page's end and keeps the page.
    items = [{"processDefinitionKey": str(n), "processDefinitionId": f"p{n}", "version": 1} for n in range(1, 6)]
    route = respx_mock.post("/process-definitions/search").mock(return_value=page(*items, total=7))
    result = await adapter.list_definitions(DefinitionQuery(page=2, size=3, order="asc"))
    assert ([d.key for d in result.items], result.total) == (["p4", "p5"], 7)
    assert (sent(route)["page"], sent(route)["filter"]) == ({"from": 0, "limit": 6}, {"isLatestVersion": True})
    with pytest.raises(NotSupported):  # searches for latest versions sort by id only
        await adapter.list_definitions(DefinitionQuery(sort="version"))


@respx.mock(base_url=BASE)
async def test_task_filters(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    route = respx_mock.post("/user-tasks/search").mock(return_value=page())
    await adapter.list_tasks(TaskQuery(candidate_group="sales", unassigned=True, instance_id=BIG_KEY))
    assert sent(route)["filter"] == {
        "state": {"$in": ["CREATED", "ASSIGNING", "UPDATING"]},
        "assignee": {"$exists": False},
        "candidateGroup": {"$eq": "sales"},
        "processInstanceKey": BIG_KEY,
    }
    await adapter.list_tasks(TaskQuery(status="completed", assignee="ann"))
    assert sent(route)["filter"] == {"state": {"$eq": "COMPLETED"}, "assignee": {"$eq": "ann"}}
    with pytest.raises(NotSupported):
        await adapter.list_tasks(TaskQuery(sort="assignee"))
    with pytest.raises(NotSupported):
        await adapter.list_tasks(TaskQuery(status="delegated"))


@respx.mock(base_url=BASE)
async def test_history_filters(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    element = {
        "elementId": "review",
        "elementName": "Review",
        "type": "USER_TASK",
        "processInstanceKey": BIG_KEY,
        "processDefinitionId": "order",
        "startDate": "2026-01-01T10:00:00.000Z",
        "endDate": "2026-01-01T10:01:00.000Z",
        "state": "COMPLETED",
    }
    route = respx_mock.post("/element-instances/search").mock(return_value=page(element))
    after = datetime(2026, 1, 1, tzinfo=UTC)
    result = await adapter.history_activities(HistoryQuery(definition_key="order", started_after=after, finished=True))
    (record,) = result.items
    assert (record.activity_type, record.instance_id, record.duration_ms) == ("userTask", BIG_KEY, 60_000)
    assert sent(route)["filter"] == {
        "processDefinitionId": "order",
        "startDate": {"$gt": "2026-01-01T00:00:00Z"},
        "state": {"$in": ["COMPLETED", "TERMINATED"]},
    }


@respx.mock(base_url=BASE)
async def test_start_waits_until_searches_show_it(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    created = {
        "processInstanceKey": BIG_KEY,
        "processDefinitionKey": "5",
        "processDefinitionId": "order",
        "processDefinitionVersion": 2,
        "tenantId": "<default>",
        "variables": {},
    }
    start_route = respx_mock.post("/process-instances").mock(return_value=httpx.Response(200, json=created))
    shown = {**created, "startDate": "2026-01-01T10:00:00Z", "state": "ACTIVE"}
    lookup = respx_mock.get(f"/process-instances/{BIG_KEY}").mock(
        side_effect=[problem(404, "NOT_FOUND", "not yet"), httpx.Response(200, json=shown)]
    )
    request = StartInstance(definition_key="order", business_key="order-9", variables=parse_request_variables({"n": 1}))
    instance = await adapter.start_instance(request, started_by="ann")
    assert (instance.id, instance.status, instance.business_key, instance.started_by) == (
        BIG_KEY,
        "active",
        "order-9",
        "ann",
    )
    assert lookup.call_count == 2
    assert sent(start_route) == {
        "processDefinitionId": "order",
        "processDefinitionVersion": -1,
        "variables": {"n": 1, "businessKey": "order-9"},
    }


@respx.mock(base_url=BASE)
async def test_assignment_answers_the_new_assignee_while_reads_lag(
    respx_mock: respx.MockRouter, adapter: ZeebeAdapter
) -> None:
    respx_mock.post(f"/user-tasks/{BIG_KEY}/assignment").mock(return_value=httpx.Response(204))
    stale = {"userTaskKey": BIG_KEY, "state": "CREATED", "elementId": "review"}
    respx_mock.get(f"/user-tasks/{BIG_KEY}").mock(return_value=httpx.Response(200, json=stale))
    task = await adapter.assign_task(BIG_KEY, "carol")
    assert (task.assignee, task.status) == ("carol", "assigned")


@respx.mock(base_url=BASE)
async def test_an_unknown_business_key_asks_nothing(respx_mock: respx.MockRouter, adapter: ZeebeAdapter) -> None:
    result = await adapter.list_instances(InstanceQuery(business_key="unknown"))
    assert (result.items, result.total) == ([], 0)
    assert not respx_mock.calls


# ------------------------------------------------------------------ behaviour against the simulator
async def test_keys_beyond_two_to_the_53_survive(simulated: Simulated) -> None:
    adapter, _ = await simulated()
    definition_id = await deploy(adapter, "approval")
    instance_id = await start(adapter, "approval")
    assert int(instance_id) > 2**53 and int(definition_id) > 2**53
    assert (await adapter.get_instance(instance_id)).definition_id == definition_id


async def test_truncated_values_are_read_in_full(simulated: Simulated) -> None:
    adapter, _ = await simulated(truncate_at=16)
    await deploy(adapter, "approval")
    instance_id = await start(adapter, "approval", {"note": "x" * 100, "doc": {"items": list(range(50))}})
    variables = await adapter.get_variables(instance_id)
    assert (variables["note"].value, variables["doc"].value) == ("x" * 100, {"items": list(range(50))})


async def test_every_open_task_is_read_past_the_search_window(
    simulated: Simulated, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Secondary storage caps `totalItems` and refuses offset pages beyond its window; the change feed's read of
    every open task's assignee pages by cursor and still sees them all."""
    monkeypatch.setattr("adapters.zeebe.adapter.SEARCH_BATCH", 2)
    adapter, _ = await simulated(total_items_cap=3)
    await deploy(adapter, "approval")
    started = {await start(adapter, "approval") for _ in range(7)}
    assert (await adapter.list_tasks(TaskQuery(size=2))).total == 3  # what Camunda 8 itself reports
    assignees = await adapter.read_assignees()
    assert {task.instance_id for task in assignees} == started
    assert len({task.task_id for task in assignees}) == 7


async def test_current_activities_show_assignees_and_failures(simulated: Simulated) -> None:
    adapter, _ = await simulated()
    await deploy(adapter, "approval")
    approval = await start(adapter, "approval")
    (task,) = (await adapter.list_tasks(TaskQuery(instance_id=approval))).items
    await adapter.claim_task(task.id, "bob")
    (review,) = (await adapter.get_instance(approval)).current_activities
    assert (review.id, review.type, review.assignee, review.status) == ("review", "userTask", "bob", "active")
    await deploy(adapter, "charging")
    charging = await adapter.get_instance(await start(adapter, "charging", {"fail": True}))
    (charge,) = charging.current_activities
    assert (charge.id, charge.type, charge.status) == ("charge", "serviceTask", "failed")
    assert [step.activity_id for step in charging.execution_path] == ["start", "charge"]


async def test_delegation_keeps_the_first_owner_until_reassigned(simulated: Simulated) -> None:
    adapter, _ = await simulated()
    await deploy(adapter, "approval")
    await start(adapter, "approval")
    (task,) = (await adapter.list_tasks(TaskQuery())).items
    await adapter.claim_task(task.id, "bob")
    await adapter.delegate_task(task.id, "dave")
    again = await adapter.delegate_task(task.id, "erin")
    assert (again.assignee, again.owner, again.status) == ("erin", "bob", "delegated")
    reassigned = await adapter.assign_task(task.id, "carol")
    assert (reassigned.owner, reassigned.status) == (None, "assigned")
    assert (await adapter.get_task(task.id)).delegation_state is None


async def test_deleted_variables_come_back_when_set_again(simulated: Simulated) -> None:
    adapter, simulator = await simulated()
    await deploy(adapter, "approval")
    instance_id = await start(adapter, "approval", {"draft": {"value": "2026-01-01T00:00:00Z", "type": "Date"}})
    await adapter.update_variables(instance_id, {}, ["draft", "never-there"])
    assert "draft" not in await adapter.get_variables(instance_id)
    (stored,) = [variable for variable in simulator.variables.values() if variable.name == "draft"]
    assert stored.value is None  # Camunda 8 keeps a deleted variable, as null
    after = await adapter.update_variables(instance_id, parse_request_variables({"draft": 5}), [])
    assert after["draft"] == TypedValue(value=5, type=VariableType.INTEGER)
    assert (await adapter.get_variables(instance_id))["draft"] == after["draft"]


async def test_completion_variables_keep_their_types(simulated: Simulated) -> None:
    adapter, _ = await simulated()
    await deploy(adapter, "approval")
    instance_id = await start(adapter, "approval")
    (task,) = (await adapter.list_tasks(TaskQuery(instance_id=instance_id))).items
    decided = parse_request_variables({"decidedAt": {"value": "2026-03-04T05:06:07Z", "type": "Date"}})
    await adapter.complete_task(task.id, decided, user_id="ann")
    assert (await adapter.get_variables(instance_id))["decidedAt"] == decided["decidedAt"]


async def test_retrying_a_resolved_incident_is_a_conflict(simulated: Simulated) -> None:
    adapter, _ = await simulated()
    await deploy(adapter, "charging")
    instance_id = await start(adapter, "charging", {"fail": True})
    (incident,) = (await adapter.list_engine_incidents(EngineIncidentQuery(instance_id=instance_id))).items
    assert (incident.incident_type, incident.activity_id) == ("failedJob", "charge")
    assert incident.job_id is not None and "Card declined" in (incident.message or "")
    await adapter.update_variables(instance_id, parse_request_variables({"fail": False}), [])
    await adapter.retry_engine_incident(incident.id)
    with pytest.raises(Conflict):
        await adapter.retry_engine_incident(incident.id)


async def test_the_integration_job_worker_fails_and_completes_jobs(simulated: Simulated) -> None:
    adapter, simulator = await simulated(job_worker=False)
    async with (
        httpx.AsyncClient(base_url=BASE, transport=simulator.transport) as client,
        running(ChargeWorker(client, idle_pause=0.01)),
    ):
        await deploy(adapter, "charging")
        instance_id = await start(adapter, "charging", {"fail": True})
        incidents = await eventually(
            lambda: adapter.list_engine_incidents(EngineIncidentQuery(instance_id=instance_id))
        )
        await adapter.update_variables(instance_id, parse_request_variables({"fail": False}), [])
        await adapter.retry_engine_incident(incidents.items[0].id)
        tasks = await eventually(lambda: adapter.list_tasks(TaskQuery(instance_id=instance_id)))
        assert [task.task_definition_key for task in tasks.items] == ["confirm"]


# ------------------------------------------------------------------ modification
async def test_modification_goes_back_with_variables_and_refuses_what_is_not_active(simulated: Simulated) -> None:
    adapter, _ = await simulated()
    await deploy(adapter, "charging")
    instance_id = await start(adapter, "charging", {"fail": False})
    await eventually(lambda: adapter.list_tasks(TaskQuery(instance_id=instance_id)))
    back = InstanceModification(
        instructions=[
            ModificationInstruction(type="cancel", activity_id="confirm"),
            ModificationInstruction(
                type="start_before", activity_id="charge", variables=parse_request_variables({"fail": True})
            ),
        ]
    )
    moved = await adapter.modify_instance(instance_id, back)
    assert [a.id for a in moved.current_activities] == ["charge"]  # the job fails again: an incident
    assert (await adapter.get_variables(instance_id))["fail"].value is True
    assert (await adapter.list_engine_incidents(EngineIncidentQuery(instance_id=instance_id))).total == 1
    assert (await adapter.list_tasks(TaskQuery(instance_id=instance_id))).total == 0

    with pytest.raises(BadRequest) as refused:
        await adapter.modify_instance(
            instance_id,
            InstanceModification(instructions=[ModificationInstruction(type="cancel", activity_id="confirm")]),
        )
    assert "'confirm' is not active" in refused.value.detail


async def test_modification_passes_on_the_engines_refusal_and_an_ended_instance_is_a_conflict(
    simulated: Simulated,
) -> None:
    adapter, _ = await simulated()
    await deploy(adapter, "approval")
    instance_id = await start(adapter, "approval")
    with pytest.raises(BadRequest) as refused:  # Camunda 8 activates no start event
        await adapter.modify_instance(
            instance_id,
            InstanceModification(instructions=[ModificationInstruction(type="start_before", activity_id="start")]),
        )
    assert refused.value.engine_status == 400
    assert "'start'" in refused.value.detail
    await adapter.terminate_instance(instance_id, None)
    with pytest.raises(Conflict):
        await adapter.modify_instance(
            instance_id,
            InstanceModification(instructions=[ModificationInstruction(type="start_before", activity_id="review")]),
        )
