"""The Flowable adapter against mocked Flowable REST answers (respx): mappings, paging and every error path."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from adapters.flowable import FlowableAdapter, mapping
from gateway.db import Database
from gateway.errors import (
    BadRequest,
    ConcurrentModification,
    Conflict,
    EngineError,
    EngineTimeout,
    EngineUnavailable,
    InvalidBpmn,
    NotFound,
    NotSupported,
)
from gateway.registry import EngineHandle, EngineRegistry
from gateway.schemas import (
    DefinitionQuery,
    EngineIncidentQuery,
    HistoryQuery,
    InstanceQuery,
    StartInstance,
    TaskQuery,
)
from gateway.settings import Settings
from gateway.variables import TypedValue, VariableType, parse_request_variables

BASE = "http://flowable.test/flowable-rest/service"
DEFINITION_ID = "approval:1:d-1"
Router = respx.MockRouter


@pytest.fixture
def engine() -> Iterator[Router]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def handle(database: Database) -> AsyncIterator[EngineHandle]:
    config = {
        "name": "fl",
        "type": "flowable",
        "url": BASE,
        "auth": {"type": "basic", "username": "rest-admin", "password": "test"},
        "connect_timeout": 0.2,
        "read_timeout": 0.2,
        "retry_attempts": 1,
    }
    registry = EngineRegistry(Settings(engines=[config], database_url=database.url), database)
    await registry.start()
    yield registry.get("fl")
    await registry.close()


@pytest.fixture
def adapter(handle: EngineHandle) -> FlowableAdapter:
    assert isinstance(handle.adapter, FlowableAdapter)
    return handle.adapter


def failure(phrase: str, exception: str | None = None) -> dict[str, str]:
    """Flowable's ErrorInfo body: a status phrase, and the exception's text."""
    return {"message": phrase} | ({"exception": exception} if exception else {})


def page(*items: dict[str, Any], total: int | None = None, start: int = 0) -> dict[str, Any]:
    total = len(items) if total is None else total
    return {"data": list(items), "total": total, "start": start, "size": len(items)}


def definition(definition_id: str = DEFINITION_ID, **fields: Any) -> dict[str, Any]:
    key, version, _ = definition_id.split(":")
    return {
        "id": definition_id,
        "key": key,
        "version": int(version),
        "name": "Approval",
        "deploymentId": "dep-1",
        "tenantId": "",
        "suspended": False,
    } | fields


def runtime_instance(instance_id: str = "pi-1", **fields: Any) -> dict[str, Any]:
    return {
        "id": instance_id,
        "processDefinitionId": DEFINITION_ID,
        "suspended": False,
        "ended": False,
        "startTime": "2026-11-22T10:00:00.000+00:00",
        "startUserId": "rest-admin",
        "tenantId": "",
    } | fields


def job(job_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "processInstanceId": "pi-1",
        "processDefinitionId": "charging:1:d-3",
        "elementId": "charge",
        "elementName": "Charge card",
        "retries": 0,
        "exceptionMessage": "card declined",
        "createTime": "2026-11-22T10:00:00.000+00:00",
    } | fields


def body_of(route: respx.Route, call: int = -1) -> Any:
    return json.loads(route.calls[call].request.content)


# ------------------------------------------------------------------ variables
def test_every_unified_type_is_written_as_a_flowable_variable() -> None:
    variables = parse_request_variables(
        {
            "nothing": None,
            "flag": True,
            "text": "a",
            "small": -42,
            "big": 9_007_199_254_740_993,
            "ratio": 0.125,
            "when": {"value": "2026-11-22T10:00:00.250Z", "type": "Date"},
            "doc": {"items": [1]},
        }
    )
    assert mapping.to_rest_variables(variables) == [
        {"name": "nothing", "value": None},
        {"name": "flag", "type": "boolean", "value": True},
        {"name": "text", "type": "string", "value": "a"},
        {"name": "small", "type": "integer", "value": -42},
        {"name": "big", "type": "long", "value": 9_007_199_254_740_993},
        {"name": "ratio", "type": "double", "value": 0.125},
        {"name": "when", "type": "instant", "value": "2026-11-22T10:00:00.250Z"},
        {"name": "doc", "type": "json", "value": {"items": [1]}},
    ]


def typed(value: Any, kind: VariableType) -> TypedValue:
    return TypedValue(value=value, type=kind)


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ({"value": None}, typed(None, VariableType.NULL)),
        ({"type": "string", "value": None}, typed(None, VariableType.NULL)),
        ({"type": "string", "value": "x"}, typed("x", VariableType.STRING)),
        ({"type": "uuid", "value": "8d1c2f"}, typed("8d1c2f", VariableType.STRING)),
        ({"type": "integer", "value": 7}, typed(7, VariableType.INTEGER)),
        ({"type": "short", "value": 7}, typed(7, VariableType.INTEGER)),
        ({"type": "long", "value": 2**40}, typed(2**40, VariableType.LONG)),
        ({"type": "bigInteger", "value": "12"}, typed(12, VariableType.LONG)),
        ({"type": "bigInteger", "value": str(2**70)}, typed(str(2**70), VariableType.STRING)),
        ({"type": "double", "value": 1.5}, typed(1.5, VariableType.DOUBLE)),
        ({"type": "bigDecimal", "value": "12.50"}, typed(12.5, VariableType.DOUBLE)),
        ({"type": "bigDecimal", "value": "0.1"}, typed("0.1", VariableType.STRING)),
        ({"type": "boolean", "value": False}, typed(False, VariableType.BOOLEAN)),
        ({"type": "date", "value": "2026-11-22T10:00:00Z"}, typed("2026-11-22T10:00:00Z", VariableType.DATE)),
        ({"type": "instant", "value": "2026-11-22T10:00:00.25Z"}, typed("2026-11-22T10:00:00.250Z", VariableType.DATE)),
        ({"type": "localDate", "value": "2026-11-22"}, typed("2026-11-22T00:00:00Z", VariableType.DATE)),
        ({"type": "localDateTime", "value": "2026-11-22T10:00:01"}, typed("2026-11-22T10:00:01Z", VariableType.DATE)),
        ({"type": "json", "value": {"a": [1]}}, typed({"a": [1]}, VariableType.JSON)),
        ({"type": "serializable", "value": None, "valueUrl": "http://x"}, typed(None, VariableType.NULL)),
    ],
)
def test_every_flowable_variable_type_reads_as_the_nearest_unified_type(
    rest: dict[str, Any], expected: TypedValue
) -> None:
    assert mapping.from_rest_variable({"name": "v", **rest}) == expected


# ------------------------------------------------------------------ status mappings
ENDED = "2026-11-22T10:00:00Z"


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"endTime": None}, "active"),
        ({"endTime": ENDED, "deleteReason": None}, "completed"),
        ({"endTime": ENDED, "deleteReason": "terminate end event (end)"}, "terminated"),
        ({"endTime": ENDED, "deleteReason": "customer withdrew"}, "externally_terminated"),
    ],
)
def test_historic_instance_status_follows_the_delete_reason(fields: dict[str, Any], status: str) -> None:
    assert mapping.historic_status(fields) == status


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({}, "created"),
        ({"assignee": "bob"}, "assigned"),
        ({"assignee": "dave", "owner": "bob", "delegationState": "pending"}, "delegated"),
        ({"assignee": "bob", "delegationState": "resolved"}, "assigned"),
        ({"endTime": ENDED}, "completed"),
        ({"endTime": ENDED, "deleteReason": "boundary event"}, "cancelled"),
    ],
)
def test_task_status(fields: dict[str, Any], status: str) -> None:
    assert mapping.task_status(fields) == status


def test_definition_key_is_read_from_flowables_id_format() -> None:
    assert mapping.definition_key_from_id("approval:12:8d1c") == "approval"
    assert mapping.definition_key_from_id("8d1c2f50-0b5e-11ef-a0b1-0242ac120002") is None


# ------------------------------------------------------------------ errors
async def test_unknown_object_is_not_found_with_flowables_text(adapter: FlowableAdapter, engine: Router) -> None:
    text = "Could not find a process definition with id 'nope'."
    engine.get("/repository/process-definitions/nope").respond(404, json=failure("Not found", text))
    with pytest.raises(NotFound) as caught:
        await adapter.get_definition("nope")
    assert (caught.value.engine_status, caught.value.engine_message) == (404, text)


async def test_bad_request_carries_flowables_exception_text(adapter: FlowableAdapter, engine: Router) -> None:
    text = "Value for param 'sort' is not valid, 'x' is not a valid property"
    engine.post("/query/tasks").respond(400, json=failure("Bad request", text))
    with pytest.raises(BadRequest) as caught:
        await adapter.list_tasks(TaskQuery())
    assert caught.value.engine_message == text


@pytest.mark.parametrize(
    "text",
    [
        "No process definition found for key 'nope'",  # 7.2
        "Process definition with key 'nope' and tenantId 't1' was not found",  # 7.2, with a tenant
        "no processes deployed with key 'nope'",  # 6.x
    ],
)
async def test_start_with_unknown_key_is_not_found_though_flowable_answers_400(
    adapter: FlowableAdapter, engine: Router, text: str
) -> None:
    engine.post("/runtime/process-instances").respond(400, json=failure("Bad request", text))
    with pytest.raises(NotFound) as caught:
        await adapter.start_instance(StartInstance(definition_key="nope"), started_by="alice")
    assert caught.value.engine_message == text


@pytest.mark.parametrize(
    "text",
    [
        "Cannot start process instance. Process definition Approval (id = approval:1:d-1) is suspended",
        "Cannot complete a suspended Task[id=t-1, key=review, name=Review request]",
    ],
)
async def test_state_refusals_flowable_answers_with_500_are_conflicts(
    adapter: FlowableAdapter, handle: EngineHandle, engine: Router, text: str
) -> None:
    open_task(engine)
    engine.post("/runtime/tasks/t-1").respond(500, json=failure("Internal server error", text))
    with pytest.raises(Conflict) as caught:
        await adapter.complete_task("t-1", {}, user_id="alice")
    assert caught.value.engine_message == text
    assert handle.breaker is not None and handle.breaker.breaker.fail_counter == 0


async def test_claim_of_a_task_held_by_another_user_is_a_conflict(adapter: FlowableAdapter, engine: Router) -> None:
    text = "Task 't-1' is already claimed by someone else."
    claim = engine.post("/runtime/tasks/t-1").respond(409, json=failure("Task was already claimed", text))
    with pytest.raises(Conflict) as caught:
        await adapter.claim_task("t-1", "bob")
    assert caught.value.engine_message == text
    assert body_of(claim) == {"action": "claim", "assignee": "bob"}


async def test_lost_optimistic_lock_is_a_concurrent_modification(adapter: FlowableAdapter, engine: Router) -> None:
    text = "Task[id=t-1] was updated by another transaction concurrently"
    open_task(engine)
    engine.post("/runtime/tasks/t-1").respond(500, json=failure("Internal server error", text))
    with pytest.raises(ConcurrentModification):
        await adapter.complete_task("t-1", {}, user_id="alice")


@pytest.mark.parametrize(
    "text",
    [
        "Errors while parsing:\n[Validation set: 'flowable-executable-process' | Problem: 'no implementation']",
        # 7.2 wraps the XSD validator's message (recorded from a real engine, a duplicate id)
        "javax.xml.transform.TransformerException: javax.xml.stream.XMLStreamException: org.xml.sax.SAXParseException;"
        " lineNumber: 9; columnNumber: 8; cvc-id.2: There are multiple occurrences of ID value 'divide'.",
    ],
)
async def test_bpmn_that_flowable_rejects_is_invalid_bpmn(adapter: FlowableAdapter, engine: Router, text: str) -> None:
    engine.post("/repository/deployments").respond(500, json=failure("Internal server error", text))
    with pytest.raises(InvalidBpmn) as caught:
        await adapter.deploy(b"<definitions/>", filename="x.bpmn", name=None, tenant_id=None, deployed_by="alice")
    assert caught.value.engine_message == text

    database_down = "Could not open JDBC Connection for transaction; resource x.bpmn20.xml not stored"
    engine.post("/repository/deployments").respond(500, json=failure("Internal server error", database_down))
    with pytest.raises(EngineError):
        await adapter.deploy(b"<definitions/>", filename="x.bpmn", name=None, tenant_id=None, deployed_by="alice")


async def test_other_engine_failures_are_502_with_the_engines_message(adapter: FlowableAdapter, engine: Router) -> None:
    engine.get("/management/engine").respond(500, json=failure("Internal server error", "Error with ID: 1b2c"))
    with pytest.raises(EngineError) as caught:
        await adapter.health()
    error = caught.value
    assert (error.status, error.engine_status, error.engine_message) == (502, 500, "Error with ID: 1b2c")


async def test_a_body_that_is_not_json_is_an_engine_error(adapter: FlowableAdapter, engine: Router) -> None:
    engine.get("/management/engine").respond(200, content=b"<html>proxy login</html>")
    with pytest.raises(EngineError):
        await adapter.health()


async def test_timeout_is_504(adapter: FlowableAdapter, engine: Router) -> None:
    engine.get("/management/engine").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(EngineTimeout):
        await adapter.health()


async def test_connection_refused_is_503(adapter: FlowableAdapter, engine: Router) -> None:
    engine.get("/management/engine").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(EngineUnavailable):
        await adapter.health()


# ------------------------------------------------------------------ requests and paging
async def test_health_with_basic_auth(adapter: FlowableAdapter, engine: Router) -> None:
    info = engine.get("/management/engine").respond(
        200, json={"name": "default", "version": "7.2.0", "resourceUrl": None, "exception": None}
    )
    health = await adapter.health()
    assert (health.status, health.version) == ("up", "7.2.0")
    assert info.calls[0].request.headers["Authorization"] == "Basic cmVzdC1hZG1pbjp0ZXN0"

    info.respond(200, json={"name": "default", "version": "7.2.0", "exception": "database schema is outdated"})
    assert (await adapter.health()).status == "down"


async def test_deploy_names_the_resource_so_flowable_deploys_it(adapter: FlowableAdapter, engine: Router) -> None:
    upload = engine.post("/repository/deployments").respond(
        201, json={"id": "dep-1", "name": "orders", "deploymentTime": "2026-11-22T10:00:00.000+00:00", "tenantId": "t1"}
    )
    listed = engine.get("/repository/process-definitions").respond(200, json=page(definition()))
    deployment = await adapter.deploy(
        b"<xml/>", filename="orders.xml", name="orders", tenant_id="t1", deployed_by="alice"
    )
    request = upload.calls[0].request
    assert (request.url.params["deploymentName"], request.url.params["tenantId"]) == ("orders", "t1")
    assert b'filename="orders.bpmn20.xml"' in request.content
    assert listed.calls[0].request.url.params["deploymentId"] == "dep-1"
    (found,) = deployment.definitions
    assert (found.id, found.deployed_by, found.tenant_id) == (DEFINITION_ID, "alice", None)
    assert found.deployed_at == deployment.deployed_at is not None


async def test_definition_list_maps_filters_sorting_and_paging(adapter: FlowableAdapter, engine: Router) -> None:
    engine.get("/repository/deployments/dep-1").respond(200, json={"id": "dep-1", "deploymentTime": ENDED})
    listed = engine.get("/repository/process-definitions").respond(200, json=page(definition(), total=7, start=2))
    query = DefinitionQuery(key="approval", page=2, size=2, sort="version", order="asc")
    result = await adapter.list_definitions(query)
    assert dict(listed.calls[0].request.url.params) == {
        "key": "approval",
        "latest": "true",
        "start": "2",
        "size": "2",
        "sort": "version",
        "order": "asc",
    }
    assert (result.total, result.page, [d.id for d in result.items]) == (7, 2, [DEFINITION_ID])
    assert result.items[0].deployed_at is not None

    with pytest.raises(NotSupported):
        await adapter.list_definitions(DefinitionQuery(sort="deployed_at"))


async def test_instance_page_comes_from_history_with_suspension_from_the_runtime(
    adapter: FlowableAdapter, engine: Router
) -> None:
    historic = {**runtime_instance("pi-2"), "endTime": None, "deleteReason": None}
    history = engine.post("/query/historic-process-instances").respond(200, json=page(historic, total=5, start=2))
    runtime = engine.post("/query/process-instances").respond(200, json=page(runtime_instance("pi-2", suspended=True)))
    result = await adapter.list_instances(InstanceQuery(definition_key="approval", page=2, size=2))

    assert body_of(history) == {
        "processDefinitionKey": "approval",
        "sort": "startTime",
        "order": "desc",
        "start": 2,
        "size": 2,
    }
    assert (body_of(runtime)["processInstanceIds"], body_of(runtime)["suspended"]) == (["pi-2"], True)
    assert result.total == 5
    assert [(i.id, i.status, i.definition_key) for i in result.items] == [("pi-2", "suspended", "approval")]


async def test_how_an_instance_ended_is_filtered_among_finished_ones(adapter: FlowableAdapter, engine: Router) -> None:
    ended = {"endTime": "2026-11-22T11:00:00Z", "durationInMillis": 3_600_000}
    instances = [
        {**runtime_instance("pi-1"), **ended, "deleteReason": None},
        {**runtime_instance("pi-2"), **ended, "deleteReason": "customer withdrew"},
        {**runtime_instance("pi-3"), **ended, "deleteReason": None},
    ]
    history = engine.post("/query/historic-process-instances").respond(200, json=page(*instances))
    result = await adapter.list_instances(InstanceQuery(status="completed", size=1, page=2))
    assert body_of(history)["finished"] is True
    assert (result.total, [i.id for i in result.items]) == (2, ["pi-3"])


async def test_instances_with_incidents_are_those_of_failed_jobs(adapter: FlowableAdapter, engine: Router) -> None:
    engine.get("/management/deadletter-jobs").respond(200, json=page(job("j-1")))
    engine.get("/management/timer-jobs").respond(200, json=page())
    engine.get("/management/jobs").respond(200, json=page())
    runtime = engine.post("/query/process-instances").respond(200, json=page(runtime_instance()))
    result = await adapter.list_instances(InstanceQuery(status="active", has_incident=True))
    assert body_of(runtime)["processInstanceIds"] == ["pi-1"]
    assert [i.id for i in result.items] == ["pi-1"]


async def test_completed_instance_is_read_from_history(adapter: FlowableAdapter, engine: Router) -> None:
    engine.get("/runtime/process-instances/pi-1").respond(404, json=failure("Not found", "no instance pi-1"))
    engine.get("/history/historic-process-instances/pi-1").respond(
        200, json={**runtime_instance(), "endTime": "2026-11-22T10:00:05.000+00:00", "durationInMillis": 5000}
    )
    step = {"processInstanceId": "pi-1", "startTime": "2026-11-22T10:00:00Z", "endTime": "2026-11-22T10:00:01Z"}
    activities = engine.post("/query/historic-activity-instances").respond(
        200,
        json=page(
            {**step, "activityId": "start", "activityType": "startEvent"},
            {**step, "activityId": "flow1", "activityType": "sequenceFlow"},
            {**step, "activityId": "review", "activityType": "userTask", "activityName": "Review", "assignee": "bob"},
        ),
    )
    variable = {"id": "v1", "processInstanceId": "pi-1", "variable": {"name": "amount", "type": "integer", "value": 3}}
    engine.get("/history/historic-variable-instances").respond(200, json=page(variable))

    details = await adapter.get_instance("pi-1")
    assert (details.status, details.duration_ms, details.definition_key) == ("completed", 5000, "approval")
    assert [s.activity_id for s in details.execution_path] == ["start", "review"]
    assert details.current_activities == [] and details.activities[1].assignee == "bob"
    assert details.variables == {"amount": typed(3, VariableType.INTEGER)}
    assert body_of(activities)["processInstanceId"] == "pi-1"


async def test_variables_of_an_unknown_instance_are_not_found(adapter: FlowableAdapter, engine: Router) -> None:
    # The spec documents an unknown instance as 400 on this endpoint; Flowable's code answers 404.
    engine.get("/runtime/process-instances/pi-9/variables").respond(
        400, json=failure("Bad request", "Could not find an execution with id 'pi-9'.")
    )
    engine.get("/history/historic-process-instances/pi-9").respond(404, json=failure("Not found", "no pi-9"))
    with pytest.raises(NotFound):
        await adapter.get_variables("pi-9")


async def test_update_variables_puts_modifications_then_deletes_present_ones(
    adapter: FlowableAdapter, engine: Router
) -> None:
    current = [
        {"name": "keep", "type": "string", "value": "a", "scope": "local"},
        {"name": "drop", "type": "boolean", "value": True, "scope": "local"},
    ]
    engine.get("/runtime/process-instances/pi-1/variables").mock(
        side_effect=[httpx.Response(200, json=current), httpx.Response(200, json=current[:1])]
    )
    put = engine.put("/runtime/process-instances/pi-1/variables").respond(201, json=[])
    drop = engine.delete("/runtime/process-instances/pi-1/variables/drop").respond(204)
    missing = engine.delete("/runtime/process-instances/pi-1/variables/absent").respond(404)
    after = await adapter.update_variables("pi-1", parse_request_variables({"keep": "b"}), ["drop", "absent"])
    assert body_of(put) == [{"name": "keep", "type": "string", "value": "b"}]
    assert drop.called and not missing.called
    assert list(after) == ["keep"]


async def test_suspending_a_suspended_definition_is_no_error(adapter: FlowableAdapter, engine: Router) -> None:
    text = f"Process definition with id '{DEFINITION_ID} ' is already suspended"
    engine.put(f"/repository/process-definitions/{DEFINITION_ID}").respond(409, json=failure("Conflict", text))
    engine.get(f"/repository/process-definitions/{DEFINITION_ID}").respond(200, json=definition(suspended=True))
    engine.get("/repository/deployments/dep-1").respond(200, json={"id": "dep-1"})
    assert (await adapter.set_definition_suspended(DEFINITION_ID, True, include_instances=False)).suspended


async def test_definition_is_deleted_with_its_deployment(adapter: FlowableAdapter, engine: Router) -> None:
    engine.get(f"/repository/process-definitions/{DEFINITION_ID}").respond(200, json=definition())
    siblings = engine.get("/repository/process-definitions").respond(200, json=page(definition()))
    running = engine.post("/query/process-instances").respond(200, json=page(total=2))
    delete = engine.delete("/repository/deployments/dep-1").respond(204)

    with pytest.raises(Conflict):
        await adapter.delete_definition(DEFINITION_ID, cascade=False)
    assert body_of(running)["processDefinitionId"] == DEFINITION_ID and not delete.called

    await adapter.delete_definition(DEFINITION_ID, cascade=True)
    assert delete.calls[0].request.url.params["cascade"] == "true"

    siblings.respond(200, json=page(definition(), definition("invoice:1:d-2")))
    with pytest.raises(Conflict) as caught:
        await adapter.delete_definition(DEFINITION_ID, cascade=True)
    assert "invoice:1:d-2" in caught.value.detail and delete.call_count == 1


# ------------------------------------------------------------------ tasks
TASK = {
    "id": "t-1",
    "name": "Review",
    "processInstanceId": "pi-1",
    "processDefinitionId": DEFINITION_ID,
    "taskDefinitionKey": "review",
    "createTime": "2026-11-22T10:00:00Z",
    "priority": 50,
    "suspended": False,
}


def open_task(engine: Router) -> None:
    engine.get("/runtime/tasks/t-1").respond(200, json=TASK)
    engine.get("/runtime/tasks/t-1/identitylinks").respond(200, json=[])


async def test_a_pending_delegation_is_resolved_then_completed(adapter: FlowableAdapter, engine: Router) -> None:
    open_task(engine)
    refusal = "A delegated Task[id=t-1, key=review] cannot be completed, but should be resolved instead."
    action = engine.post("/runtime/tasks/t-1")
    action.side_effect = [
        httpx.Response(500, json=failure("Internal server error", refusal)),
        httpx.Response(200),
        httpx.Response(200),
    ]
    task = await adapter.complete_task("t-1", parse_request_variables({"approved": True}), user_id="dave")
    variables = [{"name": "approved", "type": "boolean", "value": True}]
    assert [body_of(action, n) for n in range(3)] == [
        {"action": "complete", "variables": variables},
        {"action": "resolve"},  # Flowable's REST resolve drops variables: they go with the completion
        {"action": "complete", "variables": variables},
    ]
    assert task.id == "t-1"


async def test_task_actions_send_flowables_bodies(adapter: FlowableAdapter, engine: Router) -> None:
    action = engine.post("/runtime/tasks/t-1").respond(200)
    engine.get("/runtime/tasks/t-1").respond(
        200, json={**TASK, "assignee": "dave", "owner": "bob", "delegationState": "pending"}
    )
    engine.get("/runtime/tasks/t-1/identitylinks").respond(
        200, json=[{"group": "sales", "type": "candidate"}, {"user": "dave", "type": "assignee"}]
    )
    update = engine.put("/runtime/tasks/t-1").respond(200, json={**TASK, "assignee": "carol"})

    delegated = await adapter.delegate_task("t-1", "dave")
    assert (delegated.status, delegated.owner, delegated.candidate_groups) == ("delegated", "bob", ["sales"])
    await adapter.unclaim_task("t-1")
    await adapter.complete_task("t-1", parse_request_variables({"approved": True}), user_id="dave")
    assert [body_of(action, n) for n in range(3)] == [
        {"action": "delegate", "assignee": "dave"},
        {"action": "claim"},
        {"action": "complete", "variables": [{"name": "approved", "type": "boolean", "value": True}]},
    ]
    assigned = await adapter.assign_task("t-1", "carol")
    assert body_of(update) == {"assignee": "carol"} and assigned.assignee == "carol"


async def test_assigned_status_leaves_out_pending_delegations(adapter: FlowableAdapter, engine: Router) -> None:
    assigned = {**TASK, "assignee": "bob"}
    delegated = {**TASK, "id": "t-2", "assignee": "dave", "delegationState": "pending"}
    query = engine.post("/query/tasks").respond(200, json=page(assigned, delegated))
    engine.get(url__regex=r".*/runtime/tasks/t-\d/identitylinks").respond(200, json=[])
    result = await adapter.list_tasks(TaskQuery(status="assigned"))
    assert body_of(query)["assigneeLike"] == "%"
    assert (result.total, [t.id for t in result.items]) == (1, ["t-1"])


async def test_completed_tasks_come_from_history(adapter: FlowableAdapter, engine: Router) -> None:
    finished = {**TASK, "startTime": "2026-11-22T10:00:00Z", "endTime": ENDED, "deleteReason": None}
    query = engine.post("/query/historic-task-instances").respond(200, json=page(finished))
    engine.get("/history/historic-task-instances/t-1/identitylinks").respond(
        200, json=[{"type": "candidate", "groupId": "sales"}]
    )
    result = await adapter.list_tasks(TaskQuery(status="completed", candidate_group="sales"))
    assert body_of(query) | {"start": 0} == {
        "finished": True,
        "withoutDeleteReason": True,
        "taskCandidateGroup": "sales",
        "sort": "startTime",
        "order": "desc",
        "start": 0,
        "size": 50,
    }
    assert [(t.id, t.status, t.candidate_groups) for t in result.items] == [("t-1", "completed", ["sales"])]
    with pytest.raises(NotSupported):
        await adapter.list_tasks(TaskQuery(status="completed", candidate_user="bob"))


# ------------------------------------------------------------------ failed jobs as incidents
async def test_failed_and_dead_letter_jobs_are_incidents_sorted_by_creation(
    adapter: FlowableAdapter, engine: Router
) -> None:
    dead = engine.get("/management/deadletter-jobs").respond(200, json=page(job("j-1")))
    later = job("j-2", retries=2, createTime="2026-11-22T11:00:00.000+00:00")
    timers = engine.get("/management/timer-jobs").respond(200, json=page(later))
    engine.get("/management/jobs").respond(200, json=page())
    incidents = (await adapter.list_engine_incidents(EngineIncidentQuery(instance_id="pi-1"))).items
    assert [(i.id, i.incident_type, i.definition_key) for i in incidents] == [
        ("timer:j-2", "failedJob", "charging"),
        ("deadletter:j-1", "deadLetterJob", "charging"),
    ]
    assert dead.calls[0].request.url.params["processInstanceId"] == "pi-1"
    assert "withException" not in dead.calls[0].request.url.params
    assert timers.calls[0].request.url.params["withException"] == "true"


async def test_a_moved_job_in_the_executable_table_is_the_failed_work_running_again(
    adapter: FlowableAdapter, engine: Router
) -> None:
    # A retried dead-letter job keeps its id and exception in the executable table until the executor runs it.
    engine.get("/management/deadletter-jobs").respond(200, json=page())
    engine.get("/management/timer-jobs").respond(200, json=page(job("j-2", retries=2)))
    engine.get("/management/jobs").respond(200, json=page(job("j-1", retries=3)))
    incidents = (await adapter.list_engine_incidents(EngineIncidentQuery())).items
    assert sorted((i.id, i.job_id, i.message, i.rerun_pending) for i in incidents) == [
        ("job:j-1", "j-1", "card declined", True),
        ("timer:j-2", "j-2", "card declined", False),
    ]
    assert "rerun_pending" not in incidents[0].model_dump(mode="json")  # internal to the Incident Center


async def test_incident_details_carry_the_stacktrace(adapter: FlowableAdapter, engine: Router) -> None:
    engine.get("/management/deadletter-jobs/j-1").respond(200, json=job("j-1"))
    engine.get("/management/deadletter-jobs/j-1/exception-stacktrace").respond(
        200, text="FlowableException: card declined\n\tat ...", headers={"Content-Type": "text/plain"}
    )
    incident = await adapter.get_engine_incident("deadletter:j-1")
    assert (incident.message, incident.job_id, incident.activity_id) == ("card declined", "j-1", "charge")
    assert incident.detail and incident.detail.startswith("FlowableException: card declined")


async def test_incident_ids_name_the_job_table_to_retry_in(
    adapter: FlowableAdapter, handle: EngineHandle, engine: Router
) -> None:
    moved = engine.post("/management/deadletter-jobs/j-1").respond(204)
    timer = engine.post("/management/timer-jobs/j-2").respond(204)
    text = "Unknown method used in expression: ${fail ? x() : true}"
    executed = engine.post("/management/jobs/j-3").respond(500, json=failure("Internal server error", text))
    await adapter.retry_engine_incident("deadletter:j-1")
    await adapter.retry_engine_incident("timer:j-2")
    with pytest.raises(EngineError) as caught:
        await adapter.retry_engine_incident("job:j-3")
    assert caught.value.engine_message == text
    assert [body_of(route) for route in (moved, timer, executed)] == [
        {"action": "move"},
        {"action": "move"},
        {"action": "execute"},
    ]
    assert handle.breaker is not None and handle.breaker.breaker.fail_counter == 0  # a failing job is no engine fault

    with pytest.raises(NotFound):
        await adapter.get_engine_incident("9999999999999")
    assert len(engine.calls) == 3


# ------------------------------------------------------------------ history
async def test_activity_history_of_a_key_reads_each_version(adapter: FlowableAdapter, engine: Router) -> None:
    engine.get("/repository/process-definitions").respond(
        200, json=page(definition("approval:1:d-1"), definition("approval:2:d-2"))
    )
    record = {
        "activityId": "review",
        "activityType": "userTask",
        "processInstanceId": "pi-1",
        "startTime": "2026-11-22T10:00:00Z",
        "endTime": "2026-11-22T10:00:05Z",
        "durationInMillis": 5000,
    }
    totals = {"approval:2:d-2": 1, "approval:1:d-1": 3}

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        total = totals[body["processDefinitionId"]]
        count = min(body["size"], max(0, total - body["start"]))
        return httpx.Response(200, json=page(*[{**record, **body}] * count, total=total))

    search = engine.post("/query/historic-activity-instances").mock(side_effect=answer)
    result = await adapter.history_activities(HistoryQuery(definition_key="approval", size=2))
    assert result.total == 4
    assert [(r.activity_id, r.definition_key, r.duration_ms) for r in result.items] == [
        ("review", "approval", 5000)
    ] * 2
    # newest version first: one record from version 2, then the first of version 1
    assert [(body_of(search, n)["processDefinitionId"], body_of(search, n)["start"]) for n in range(2)] == [
        ("approval:2:d-2", 0),
        ("approval:1:d-1", 0),
    ]


async def test_activity_history_in_a_time_window_is_read_down_to_its_start(
    adapter: FlowableAdapter, engine: Router
) -> None:
    def activity(minute: int) -> dict[str, Any]:
        start = f"2026-11-22T10:{minute:02d}:00Z"
        return {"activityId": f"a{minute}", "activityType": "userTask", "processInstanceId": "pi-1", "startTime": start}

    newest_first = [activity(m) for m in (50, 40, 30, 20, 10)]
    search = engine.post("/query/historic-activity-instances").respond(200, json=page(*newest_first))
    query = HistoryQuery.model_validate(
        {"started_after": "2026-11-22T10:15:00Z", "started_before": "2026-11-22T10:45:00Z", "order": "asc"}
    )
    result = await adapter.history_activities(query)
    assert body_of(search)["sort"] == "startTime" and body_of(search)["order"] == "desc"
    assert (result.total, [r.activity_id for r in result.items]) == (3, ["a20", "a30", "a40"])
