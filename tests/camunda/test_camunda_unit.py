"""Camunda 7 adapter against mocked engine answers (respx): mappings, requests sent, and every error path."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import httpx
import pytest
import respx

from adapters.camunda import Camunda7Adapter, mapping
from adapters.camunda.errors import classify
from adapters.camunda.mapping import current_activities, instance_status
from adapters.camunda.paths import segment
from adapters.camunda.queries import (
    ACTIVITY_SORT,
    DEFINITION_SORT,
    HISTORIC_INSTANCE_SORT,
    HISTORIC_TASK_SORT,
    INCIDENT_SORT,
    INSTANCE_SORT,
    TASK_SORT,
    instance_filters,
    page_total,
    sorting,
    task_filters,
)
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
from gateway.metadata import MetadataStore
from gateway.registry import EngineRegistry
from gateway.schemas import (
    DefinitionQuery,
    EngineIncidentQuery,
    HistoryQuery,
    InstanceMigration,
    InstanceQuery,
    ListQuery,
    StartInstance,
    TaskQuery,
)
from gateway.settings import Settings
from gateway.variables import TypedValue, VariableType, parse_request_variables

BASE = "http://camunda.test/engine-rest"
DEFINITION = {
    "id": "approval:1:d1",
    "key": "approval",
    "name": "Approval",
    "version": 1,
    "deploymentId": "dep-1",
    "suspended": False,
    "tenantId": None,
}
HISTORIC_INSTANCE = {
    "id": "pi-1",
    "processDefinitionId": "approval:1:d1",
    "processDefinitionKey": "approval",
    "processDefinitionName": "Approval",
    "businessKey": "order-1",
    "startTime": "2026-11-22T10:00:00.000+0000",
    "endTime": None,
    "durationInMillis": None,
    "state": "ACTIVE",
    "tenantId": None,
}
TASK = {
    "id": "task-1",
    "name": "Review request",
    "assignee": None,
    "owner": None,
    "created": "2026-11-22T10:00:01.000+0000",
    "processDefinitionId": "approval:1:d1",
    "processInstanceId": "pi-1",
    "taskDefinitionKey": "review",
    "priority": 50,
    "suspended": False,
}


RUNNING_INSTANCE = {"id": "pi-1", "definitionId": "approval:1:d1", "definitionKey": "approval", "suspended": False}


def engine_error(kind: str, message: str) -> dict[str, Any]:
    return {"type": kind, "message": message, "code": 0}


def missing(message: str) -> dict[str, Any]:
    """engine-rest's answer when it looked an id up and found nothing."""
    return {"type": "InvalidRequestException", "message": message}


NO_HISTORIC_INSTANCE = missing("Historic process instance with id nope does not exist")


@pytest.fixture
def camunda() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


async def build(database: Database, url: str = BASE) -> tuple[EngineRegistry, Camunda7Adapter]:
    settings = Settings(
        engines=[
            {
                "name": "c7",
                "type": "camunda7",
                "url": url,
                "read_timeout": 0.5,
                "connect_timeout": 0.5,
                "retry_attempts": 1,
                "breaker_fail_max": 100,
            }
        ],
        database_url=database.url,
    )
    registry = EngineRegistry(settings, database)
    adapter = registry.get("c7").adapter
    assert isinstance(adapter, Camunda7Adapter)
    return registry, adapter


@pytest.fixture
async def adapter(database: Database) -> AsyncIterator[Camunda7Adapter]:
    registry, built = await build(database)
    yield built
    await registry.close()


def sent_json(route: respx.Route, call: int = -1) -> Any:
    return json.loads(route.calls[call].request.content)


def sent_params(route: respx.Route, call: int = -1) -> dict[str, str]:
    return dict(route.calls[call].request.url.params)


# ------------------------------------------------------------------ variables and dates
def test_every_unified_type_is_sent_in_camundas_typed_form() -> None:
    variables = parse_request_variables(
        {
            "nothing": {"value": None, "type": "Null"},
            "flag": True,
            "text": "héllo",
            "small": -42,
            "big": {"value": 9_007_199_254_740_993, "type": "Long"},
            "long_but_small": {"value": 7, "type": "Long"},
            "ratio": 0.125,
            "when": {"value": "2026-11-22T11:00:00.25+01:00", "type": "Date"},
            "doc": {"items": [1, 2], "ok": True},
        }
    )
    assert {name: mapping.to_rest_variable(typed) for name, typed in variables.items()} == {
        "nothing": {"value": None, "type": "Null"},
        "flag": {"value": True, "type": "Boolean"},
        "text": {"value": "héllo", "type": "String"},
        "small": {"value": -42, "type": "Integer"},
        "big": {"value": 9_007_199_254_740_993, "type": "Long"},
        "long_but_small": {"value": 7, "type": "Long"},
        "ratio": {"value": 0.125, "type": "Double"},
        "when": {"value": "2026-11-22T10:00:00.250+0000", "type": "Date"},
        "doc": {"value": '{"items":[1,2],"ok":true}', "type": "Json"},
    }


@pytest.mark.parametrize(
    ("camunda", "expected"),
    [
        ({"type": "Null", "value": None}, TypedValue(value=None, type=VariableType.NULL)),
        ({"type": "Boolean", "value": False}, TypedValue(value=False, type=VariableType.BOOLEAN)),
        ({"type": "String", "value": "x"}, TypedValue(value="x", type=VariableType.STRING)),
        ({"type": "Short", "value": 7}, TypedValue(value=7, type=VariableType.INTEGER)),
        ({"type": "Integer", "value": -42}, TypedValue(value=-42, type=VariableType.INTEGER)),
        ({"type": "Long", "value": 7}, TypedValue(value=7, type=VariableType.LONG)),
        ({"type": "Double", "value": 2}, TypedValue(value=2.0, type=VariableType.DOUBLE)),
        (
            {"type": "Date", "value": "2026-11-22T12:00:00.250+0200"},
            TypedValue(value="2026-11-22T10:00:00.250Z", type=VariableType.DATE),
        ),
        ({"type": "Json", "value": '{"a":[1]}'}, TypedValue(value={"a": [1]}, type=VariableType.JSON)),
        ({"type": "Json", "value": "{broken"}, TypedValue(value="{broken", type=VariableType.STRING)),
        (
            {
                "type": "Object",
                "value": '{"id":3}',
                "valueInfo": {"objectTypeName": "com.acme.Order", "serializationDataFormat": "application/json"},
            },
            TypedValue(value={"id": 3}, type=VariableType.JSON),
        ),
        (
            {
                "type": "Object",
                "value": "rO0ABXNyAA==",
                "valueInfo": {
                    "objectTypeName": "com.acme.Order",
                    "serializationDataFormat": "application/x-java-serialized-object",
                },
            },
            TypedValue(value="rO0ABXNyAA==", type=VariableType.STRING),
        ),
        ({"type": "Xml", "value": "<a/>"}, TypedValue(value="<a/>", type=VariableType.STRING)),
        ({"type": "Bytes", "value": "AAE="}, TypedValue(value="AAE=", type=VariableType.STRING)),
        ({"type": "File", "valueInfo": {"filename": "a.pdf"}}, TypedValue(value=None, type=VariableType.STRING)),
    ],
)
def test_camunda_variables_are_read_as_unified_types(camunda: dict[str, Any], expected: TypedValue) -> None:
    assert mapping.from_rest_variable(camunda) == expected


def test_dates_are_written_in_camundas_format_in_utc() -> None:
    assert (
        mapping.format_moment(datetime(2026, 11, 22, 10, 0, 0, 250_999, tzinfo=UTC)) == "2026-11-22T10:00:00.250+0000"
    )
    assert mapping.format_moment(datetime(2026, 11, 22, 10, 0)) == "2026-11-22T10:00:00.000+0000"


# ------------------------------------------------------------------ states and objects
@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("ACTIVE", "active"),
        ("SUSPENDED", "suspended"),
        ("COMPLETED", "completed"),
        ("INTERNALLY_TERMINATED", "terminated"),
        ("EXTERNALLY_TERMINATED", "externally_terminated"),
    ],
)
def test_historic_states_map_to_instance_statuses(state: str, status: str) -> None:
    assert instance_status(state) == status


def test_task_status_owner_and_candidates() -> None:
    links = [
        {"type": "candidate", "groupId": "sales", "userId": None},
        {"type": "candidate", "groupId": None, "userId": "erin"},
        {"type": "assignee", "groupId": None, "userId": "dave"},
    ]
    delegated = mapping.task(
        {**TASK, "assignee": "dave", "owner": "bob", "delegationState": "PENDING"},
        engine="c7",
        definition_key="approval",
        links=links,
    )
    assert (delegated.status, delegated.owner, delegated.definition_key) == ("delegated", "bob", "approval")
    assert (delegated.candidate_groups, delegated.candidate_users) == (["sales"], ["erin"])
    assert mapping.task({**TASK, "assignee": "amy"}, engine="c7", definition_key=None).status == "assigned"
    assert mapping.task(TASK, engine="c7", definition_key=None).status == "created"


def test_current_activities_come_from_the_activity_tree() -> None:
    tree = {
        "id": "pi-1",
        "activityId": "approval:1:d1",
        "activityType": "processDefinition",
        "childActivityInstances": [
            {
                "id": "sub:1",
                "activityId": "sub",
                "activityName": "Sub process",
                "activityType": "subProcess",
                "incidentIds": [],
                "childActivityInstances": [
                    {"id": "review:2", "activityId": "review", "activityName": "Review", "activityType": "userTask"}
                ],
                "childTransitionInstances": [],
            }
        ],
        "childTransitionInstances": [
            {"id": "pi-1", "activityId": "charge", "activityType": "serviceTask", "incidentIds": ["inc-1"]},
            {"id": "pi-2", "activityId": "notify", "activityType": "sendTask", "incidentIds": []},
        ],
    }
    started = {"review:2": datetime(2026, 11, 22, tzinfo=UTC)}
    found = current_activities(tree, started=started, assignees={"review": "alice"})
    assert [(a.id, a.type, a.status, a.assignee) for a in found] == [
        ("sub", "subProcess", "active", None),
        ("review", "userTask", "active", "alice"),
        ("charge", "serviceTask", "failed", None),
        ("notify", "sendTask", "waiting", None),
    ]
    assert found[1].started_at == started["review:2"]


def test_incidents_name_their_job_only_for_failed_jobs() -> None:
    failed_job = {
        "id": "inc-1",
        "incidentType": "failedJob",
        "incidentMessage": "boom",
        "configuration": "job-1",
        "activityId": "charge",
        "failedActivityId": "charge",
        "incidentTimestamp": "2026-11-22T10:00:00.000+0000",
    }
    incident = mapping.incident(failed_job, engine="c7", definition_key="charging", activity_name="Charge card")
    assert (incident.job_id, incident.activity_id, incident.activity_name) == ("job-1", "charge", "Charge card")
    assert incident.created == datetime(2026, 11, 22, 10, tzinfo=UTC)
    external = mapping.incident(
        {
            **failed_job,
            "incidentType": "failedExternalTask",
            "incidentTimestamp": None,
            "createTime": "2026-11-22T11:00:00.000+0000",
        },
        engine="c7",
        definition_key=None,
    )
    assert external.job_id is None and external.created == datetime(2026, 11, 22, 11, tzinfo=UTC)


# ------------------------------------------------------------------ error classification and queries
@pytest.mark.parametrize(
    ("status", "kind", "message", "expected"),
    [
        (500, "TaskAlreadyClaimedException", "Task 't1' is already claimed by someone else.", Conflict),
        (500, "RestException", "Cannot complete task t1: ENGINE-03043 task with id 't1' is suspended.", Conflict),
        (500, "OptimisticLockingException", "ENGINE-03005 Execution of 'UPDATE Task' failed.", ConcurrentModification),
        (
            500,
            "RestException",
            "Cannot complete task t1: ENGINE-03005 Execution of 'UPDATE TaskEntity[t1]' failed. Entity was updated by "
            "another transaction concurrently.",
            ConcurrentModification,
        ),
        (500, "ProcessEngineException", "ENGINE-03076 Deletion of process definition without cascading", Conflict),
        (500, "NullValueException", "Cannot find task with id t1: task is null", NotFound),
        (500, "NullValueException", "execution pi-1 doesn't exist: execution is null", NotFound),
        (400, "InvalidRequestException", "No matching definition with id d1", NotFound),
        (500, "RestException", "Cannot instantiate d1: no deployed process definition found with id 'd1'", NotFound),
        (400, "ParseException", "ENGINE-09005 Could not parse BPMN process.", InvalidBpmn),
        (500, "ProcessEngineException", 'ERROR: relation "act_ru_task" does not exist', None),
        (400, "InvalidRequestException", "Cannot convert value 'x' of type 'Integer' to java type Integer", None),
        (404, "InvalidRequestException", "Process instance with id p does not exist", None),
    ],
)
def test_camunda_errors_are_classified_by_type_and_message(
    status: int, kind: str, message: str, expected: type | None
) -> None:
    assert classify(status, kind, message) is expected


def test_queries_become_camunda_parameters() -> None:
    assert task_filters(TaskQuery(candidate_group="sales", unassigned=True)) == {
        "candidateGroup": "sales",
        "includeAssignedTasks": True,
        "unassigned": True,
    }
    assert task_filters(TaskQuery(status="delegated")) == {"delegationState": "PENDING"}
    assert task_filters(TaskQuery(status="assigned", due_before=datetime(2026, 1, 2, tzinfo=UTC))) == {
        "assigned": True,
        "dueBefore": "2026-01-02T00:00:00.000+0000",
    }
    assert instance_filters(InstanceQuery(status="terminated", has_incident=True)) == {
        "internallyTerminated": True,
        "withIncidents": True,
    }
    with pytest.raises(NotSupported):
        instance_filters(InstanceQuery(has_incident=False))
    assert sorting(InstanceQuery(sort="business_key", order="asc"), INSTANCE_SORT, "start_time") == {
        "sortBy": "businessKey",
        "sortOrder": "asc",
    }


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        (DefinitionQuery, DEFINITION_SORT),
        (InstanceQuery, INSTANCE_SORT),
        (TaskQuery, TASK_SORT),
        (TaskQuery, HISTORIC_TASK_SORT),
        (EngineIncidentQuery, INCIDENT_SORT),
        (HistoryQuery, HISTORIC_INSTANCE_SORT),
        (HistoryQuery, ACTIVITY_SORT),
    ],
)
def test_every_sortable_field_has_a_camunda_sort(query: type[ListQuery], fields: dict[str, str]) -> None:
    assert set(fields) == query.sortable


def test_a_page_and_its_concurrent_count_never_disagree() -> None:
    # An incident appears between the list and its /count: the page shown is empty, so its total is 0.
    assert page_total([], 1, EngineIncidentQuery()) == 0
    # One row left between them: the short page is the last one.
    assert page_total([{"id": "a"}], 2, EngineIncidentQuery()) == 1
    # A full page has at least its rows, and keeps a count that is larger.
    assert page_total([{"id": "a"}, {"id": "b"}], 1, EngineIncidentQuery(size=2)) == 2
    assert page_total([{"id": "a"}, {"id": "b"}], 7, EngineIncidentQuery(size=2)) == 7
    # Beyond the last page: nothing shown, at most the rows before it.
    assert page_total([], 9, EngineIncidentQuery(size=2, page=3)) == 4
    assert page_total([], 3, EngineIncidentQuery(size=2, page=3)) == 3


def test_ids_stay_one_path_segment() -> None:
    assert segment("approval:1:d1") == "approval:1:d1"
    assert segment("a/b?c") == "a%2Fb%3Fc"
    assert segment("..") == "%2E%2E"


# ------------------------------------------------------------------ definitions
async def test_deploy_sends_a_bpmn_resource_and_remembers_the_deployer(
    adapter: Camunda7Adapter, camunda: respx.MockRouter
) -> None:
    route = camunda.post("/deployment/create").respond(
        200,
        json={
            "id": "dep-1",
            "name": "orders",
            "deploymentTime": "2026-11-22T10:00:00.000+0000",
            "tenantId": "acme",
            "deployedProcessDefinitions": {"approval:1:d1": {**DEFINITION, "tenantId": "acme"}},
        },
    )
    deployment = await adapter.deploy(
        b"<definitions/>", filename="order.xml", name="orders", tenant_id="acme", deployed_by="tess"
    )

    request = route.calls.last.request
    form = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode() + request.content
    )
    parts = {part.get_param("name", header="content-disposition"): part for part in form.iter_parts()}
    assert parts["deployment-name"].get_content() == "orders"
    assert parts["tenant-id"].get_content() == "acme"
    assert parts["deployment-source"].get_content() == "pm-gateway"
    assert "enable-duplicate-filtering" not in parts  # off by default: every deployment is a new version
    assert parts["data"].get_filename() == "order.bpmn"  # Camunda only parses resources named *.bpmn
    assert parts["data"].get_payload(decode=True) == b"<definitions/>"

    assert deployment.deployment_id == "dep-1"
    assert deployment.deployed_at == datetime(2026, 11, 22, 10, tzinfo=UTC)
    (definition,) = deployment.definitions
    assert (definition.id, definition.tenant_id, definition.deployed_by) == ("approval:1:d1", "acme", "tess")

    camunda.get("/process-definition/approval:1:d1").respond(200, json={**DEFINITION, "tenantId": "acme"})
    fetched = await adapter.get_definition("approval:1:d1")
    assert (fetched.deployed_by, fetched.deployed_at) == ("tess", datetime(2026, 11, 22, 10, tzinfo=UTC))


async def test_unparseable_bpmn_is_invalid_bpmn_with_the_parsers_message(
    adapter: Camunda7Adapter, camunda: respx.MockRouter
) -> None:
    message = (
        "ENGINE-09005 Could not parse BPMN process. Errors: \n"
        "* Content is not allowed in prolog. | resource x.bpmn | line 1 | column 1"
    )
    camunda.post("/deployment/create").respond(400, json={**engine_error("ParseException", message), "details": {}})
    with pytest.raises(InvalidBpmn) as caught:
        await adapter.deploy(b"nonsense", filename="x.bpmn", name=None, tenant_id=None, deployed_by="tess")
    assert (caught.value.engine_status, caught.value.engine_message) == (400, message)


async def test_definitions_page_with_first_result_and_count(
    adapter: Camunda7Adapter, camunda: respx.MockRouter
) -> None:
    listing = camunda.get("/process-definition").respond(200, json=[DEFINITION])
    counting = camunda.get("/process-definition/count").respond(200, json={"count": 11})
    deployment = {"id": "dep-1", "deploymentTime": "2026-11-22T09:00:00.000+0000"}
    camunda.get("/deployment/dep-1").respond(200, json=deployment)

    query = DefinitionQuery(key="approval", name="Approval", suspended=False, page=2, size=10, sort="version")
    page = await adapter.list_definitions(query)

    assert sent_params(listing) == {
        "key": "approval",
        "name": "Approval",
        "latestVersion": "true",
        "active": "true",
        "sortBy": "version",
        "sortOrder": "desc",
        "firstResult": "10",
        "maxResults": "10",
    }
    assert sent_params(counting) == {"key": "approval", "name": "Approval", "latestVersion": "true", "active": "true"}
    assert (page.total, page.page, page.size) == (11, 2, 10)
    assert page.items[0].deployed_at == datetime(2026, 11, 22, 9, tzinfo=UTC)


async def test_the_deployer_another_replica_records_is_shown_and_deployments_made_elsewhere_have_none(
    database: Database, camunda: respx.MockRouter
) -> None:
    made_elsewhere = {**DEFINITION, "id": "other:1:d2", "key": "other", "deploymentId": "dep-2"}
    camunda.get("/process-definition").respond(200, json=[DEFINITION, made_elsewhere])
    camunda.get("/process-definition/count").respond(200, json={"count": 2})
    moment = "2026-11-22T09:00:00.000+0000"
    camunda.get("/deployment/dep-1").respond(
        200, json={"id": "dep-1", "deploymentTime": moment, "source": "pm-gateway"}
    )
    camunda.get("/deployment/dep-2").respond(200, json={"id": "dep-2", "deploymentTime": moment, "source": "cockpit"})
    registry, adapter = await build(database)
    try:
        # the replica that deployed dep-1 has not recorded its deployer yet
        first = await adapter.list_definitions(DefinitionQuery())
        assert [d.deployed_by for d in first.items] == [None, None]

        await MetadataStore(database, "c7").put("deployment", "dep-1", {"deployed_by": "tess"})
        await MetadataStore(database, "c7").put("deployment", "dep-2", {"deployed_by": "not the gateway's"})
        second = await adapter.list_definitions(DefinitionQuery())
        assert [d.deployed_by for d in second.items] == ["tess", None]
    finally:
        await registry.close()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, engine_error("InvalidRequestException", "No matching definition with id nope")),  # the engine
        (400, engine_error("InvalidRequestException", "No matching definition with id nope")),  # its spec
    ],
)
async def test_unknown_definition_is_not_found(
    adapter: Camunda7Adapter, camunda: respx.MockRouter, status: int, body: dict[str, Any]
) -> None:
    camunda.get("/process-definition/nope").respond(status, json=body)
    with pytest.raises(NotFound) as caught:
        await adapter.get_definition("nope")
    assert caught.value.engine_message == "No matching definition with id nope"


async def test_deleting_a_definition_with_running_instances_needs_cascade(
    adapter: Camunda7Adapter, camunda: respx.MockRouter
) -> None:
    camunda.get("/process-instance/count").respond(200, json={"count": 2})
    delete = camunda.delete("/process-definition/approval:1:d1").respond(204)
    with pytest.raises(Conflict, match="2 running instance"):
        await adapter.delete_definition("approval:1:d1", cascade=False)
    assert not delete.called

    await adapter.delete_definition("approval:1:d1", cascade=True)
    assert sent_params(delete) == {"cascade": "true"}


async def test_the_engines_own_refusal_to_delete_is_a_conflict(
    adapter: Camunda7Adapter, camunda: respx.MockRouter
) -> None:
    message = (
        "ENGINE-03076 Deletion of process definition without cascading failed. Process definition with id: "
        "approval:1:d1 can't be deleted, because there are 1 dependent process instances."
    )
    camunda.get("/process-instance/count").respond(200, json={"count": 0})  # an instance started meanwhile
    refusal = engine_error("ProcessEngineException", message)
    camunda.delete("/process-definition/approval:1:d1").respond(500, json=refusal)
    with pytest.raises(Conflict) as caught:
        await adapter.delete_definition("approval:1:d1", cascade=False)
    assert caught.value.engine_message == message


# ------------------------------------------------------------------ instances
async def test_start_by_key_in_a_tenant_with_typed_variables(
    adapter: Camunda7Adapter, camunda: respx.MockRouter
) -> None:
    start = camunda.post("/process-definition/key/approval/tenant-id/acme/start").respond(
        200, json={"id": "pi-1", "definitionId": "approval:1:d1", "suspended": False, "ended": False}
    )
    camunda.get("/history/process-instance/pi-1").respond(200, json={**HISTORIC_INSTANCE, "tenantId": "acme"})
    camunda.get("/process-instance/pi-1").respond(200, json=RUNNING_INSTANCE)

    variables = parse_request_variables({"amount": 30})
    request = StartInstance(definition_key="approval", business_key="order-1", tenant_id="acme", variables=variables)
    instance = await adapter.start_instance(request, started_by="tess")

    assert sent_json(start) == {"businessKey": "order-1", "variables": {"amount": {"value": 30, "type": "Integer"}}}
    assert (instance.id, instance.status, instance.started_by, instance.tenant_id) == ("pi-1", "active", "tess", "acme")
    assert instance.start_time == datetime(2026, 11, 22, 10, tzinfo=UTC)


async def test_start_by_id_without_business_key(adapter: Camunda7Adapter, camunda: respx.MockRouter) -> None:
    start = camunda.post("/process-definition/approval:1:d1/start").respond(200, json={"id": "pi-1"})
    camunda.get("/history/process-instance/pi-1").respond(200, json=HISTORIC_INSTANCE)
    camunda.get("/process-instance/pi-1").respond(200, json=RUNNING_INSTANCE)
    await adapter.start_instance(StartInstance(definition_id="approval:1:d1"), started_by="tess")
    assert sent_json(start) == {"variables": {}}


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (
            404,
            {"type": "RestException", "message": "No matching process definition with key: nope and no tenant-id"},
            NotFound,
        ),
        (
            500,
            engine_error(
                "RestException",
                "Cannot instantiate process definition approval:1:d1: ENGINE-03043 Process Definition with id "
                "'approval:1:d1' is suspended.",
            ),
            Conflict,
        ),
        (
            400,
            engine_error(
                "InvalidRequestException",
                "Cannot instantiate process definition approval:1:d1: Cannot convert value 'x' of type 'Integer' to "
                "java type java.lang.Integer",
            ),
            BadRequest,
        ),
    ],
)
async def test_start_failures(
    adapter: Camunda7Adapter, camunda: respx.MockRouter, status: int, body: dict[str, Any], error: type[Exception]
) -> None:
    camunda.post("/process-definition/key/nope/start").respond(status, json=body)
    with pytest.raises(error) as caught:
        await adapter.start_instance(StartInstance(definition_key="nope"), started_by="tess")
    assert caught.value.engine_message == body["message"]  # type: ignore[attr-defined]


async def test_a_completed_instance_comes_from_history(adapter: Camunda7Adapter, camunda: respx.MockRouter) -> None:
    camunda.get("/process-instance/pi-1").respond(404, json=missing("Process instance with id pi-1 does not exist"))
    camunda.get("/history/process-instance/pi-1").respond(
        200,
        json={
            **HISTORIC_INSTANCE,
            "state": "COMPLETED",
            "endTime": "2026-11-22T10:00:05.000+0000",
            "durationInMillis": 5000,
        },
    )
    activities = camunda.get("/history/activity-instance").respond(
        200,
        json=[
            {
                "id": "review:1",
                "activityId": "review",
                "activityName": "Review request",
                "activityType": "userTask",
                "processInstanceId": "pi-1",
                "startTime": "2026-11-22T10:00:01.000+0000",
                "endTime": "2026-11-22T10:00:04.000+0000",
                "assignee": "alice",
                "canceled": False,
            }
        ],
    )
    camunda.get("/history/variable-instance").respond(
        200,
        json=[
            {"name": "amount", "type": "Integer", "value": 30, "activityInstanceId": "pi-1"},
            {"name": "note", "type": "String", "value": "task-local", "activityInstanceId": "review:1"},
        ],
    )

    instance = await adapter.get_instance("pi-1")

    assert (instance.status, instance.duration_ms) == ("completed", 5000)
    assert instance.end_time == datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC)
    assert sent_params(activities) == {
        "processInstanceId": "pi-1",
        "sortBy": "occurrence",
        "sortOrder": "asc",
        "maxResults": "500",
    }
    assert [(a.id, a.status, a.assignee) for a in instance.activities] == [("review", "completed", "alice")]
    assert [step.activity_id for step in instance.execution_path] == ["review"]
    assert instance.variables == {"amount": TypedValue(value=30, type=VariableType.INTEGER)}
    assert instance.current_activities == [] and instance.incidents == []


async def test_unknown_instance_is_not_found(adapter: Camunda7Adapter, camunda: respx.MockRouter) -> None:
    camunda.get("/process-instance/nope").respond(404, json=missing("Process instance with id nope does not exist"))
    camunda.get("/history/process-instance/nope").respond(404, json=NO_HISTORIC_INSTANCE)
    with pytest.raises(NotFound):
        await adapter.get_instance("nope")


async def test_variables_of_an_unknown_instance_are_not_found(
    adapter: Camunda7Adapter, camunda: respx.MockRouter
) -> None:
    # The spec documents a 500 for an unknown instance here.
    camunda.get("/process-instance/nope/variables").respond(
        500, json=engine_error("NullValueException", "execution nope doesn't exist: execution is null")
    )
    camunda.get("/history/process-instance/nope").respond(404, json=NO_HISTORIC_INSTANCE)
    with pytest.raises(NotFound):
        await adapter.get_variables("nope")


async def test_ended_instances_cannot_be_terminated_or_changed(
    adapter: Camunda7Adapter, camunda: respx.MockRouter
) -> None:
    delete = camunda.delete("/process-instance/pi-1").respond(
        404, json=missing("No process instance found for id 'pi-1': processInstance is null")
    )
    camunda.post("/process-instance/pi-1/variables").respond(
        500,
        json=engine_error(
            "RestException",
            "Cannot modify variables for process instance pi-1: execution pi-1 doesn't exist: execution is null",
        ),
    )
    camunda.get("/history/process-instance/pi-1").respond(
        200, json={**HISTORIC_INSTANCE, "state": "EXTERNALLY_TERMINATED", "endTime": "2026-11-22T10:00:05.000+0000"}
    )
    with pytest.raises(Conflict, match="externally_terminated"):
        await adapter.terminate_instance("pi-1", "customer withdrew")
    assert sent_params(delete) == {"failIfNotExists": "true"}
    with pytest.raises(Conflict, match="already ended"):
        await adapter.update_variables("pi-1", parse_request_variables({"a": 1}), [])


async def test_instances_are_listed_from_history(adapter: Camunda7Adapter, camunda: respx.MockRouter) -> None:
    listing = camunda.post("/history/process-instance").respond(200, json=[HISTORIC_INSTANCE])
    counting = camunda.post("/history/process-instance/count").respond(200, json={"count": 3})
    started_after = datetime(2026, 1, 1, tzinfo=UTC)
    page = await adapter.list_instances(
        InstanceQuery(
            definition_key="approval",
            status="active",
            started_after=started_after,
            size=1,
            variable=["amount:gte:10000", 'customer:like:"AC%"'],
        )
    )
    filters = {
        "processDefinitionKey": "approval",
        "active": True,
        "startedAfter": "2026-01-01T00:00:00.000+0000",
        "variables": [
            {"name": "amount", "operator": "gteq", "value": 10000},
            {"name": "customer", "operator": "like", "value": "AC%"},
        ],
    }
    assert sent_params(listing) == {"firstResult": "0", "maxResults": "1"}
    sorting = [{"sortBy": "startTime", "sortOrder": "desc"}, {"sortBy": "instanceId", "sortOrder": "desc"}]
    assert json.loads(listing.calls.last.request.content) == {**filters, "sorting": sorting}
    assert json.loads(counting.calls.last.request.content) == filters
    assert page.total == 3 and page.items[0].business_key == "order-1"


# ------------------------------------------------------------------ tasks
async def test_tasks_carry_definition_keys_and_candidates(adapter: Camunda7Adapter, camunda: respx.MockRouter) -> None:
    listing = camunda.post("/task").respond(200, json=[TASK, {**TASK, "id": "task-2"}])
    camunda.post("/task/count").respond(200, json={"count": 2})
    definitions = camunda.get("/process-definition").respond(200, json=[DEFINITION])
    camunda.get("/task/task-1/identity-links").respond(200, json=[{"type": "candidate", "groupId": "sales"}])
    camunda.get("/task/task-2/identity-links").respond(
        400, json=engine_error("NullValueException", "Cannot find task with id task-2: task is null")
    )  # completed meanwhile

    page = await adapter.list_tasks(TaskQuery(candidate_group="sales"))

    assert json.loads(listing.calls.last.request.content)["includeAssignedTasks"] is True
    assert sent_params(definitions) == {"processDefinitionIdIn": "approval:1:d1", "maxResults": "1"}
    assert [(t.id, t.definition_key, t.candidate_groups) for t in page.items] == [
        ("task-1", "approval", ["sales"]),
        ("task-2", "approval", []),
    ]
    await adapter.list_tasks(TaskQuery(candidate_group="sales"))
    assert definitions.call_count == 1  # a definition's key is learnt once


async def test_claiming_a_task_held_by_another_user_is_a_conflict(
    adapter: Camunda7Adapter, camunda: respx.MockRouter
) -> None:
    message = "Task 'task-1' is already claimed by someone else."
    claim = camunda.post("/task/task-1/claim").respond(500, json=engine_error("TaskAlreadyClaimedException", message))
    with pytest.raises(Conflict) as caught:
        await adapter.claim_task("task-1", "bob")
    assert sent_json(claim) == {"userId": "bob"}
    assert (caught.value.status, caught.value.engine_status, caught.value.engine_message) == (409, 500, message)


async def test_claim_unclaim_assign_and_delegate_return_the_task(
    adapter: Camunda7Adapter, camunda: respx.MockRouter
) -> None:
    actions = {
        action: camunda.post(f"/task/task-1/{action}").respond(204)
        for action in ("claim", "unclaim", "assignee", "delegate")
    }
    delegated_task = {**TASK, "assignee": "dave", "owner": "bob", "delegationState": "PENDING"}
    camunda.get("/task/task-1").respond(200, json=delegated_task)
    camunda.get("/task/task-1/identity-links").respond(200, json=[])
    camunda.get("/process-definition").respond(200, json=[DEFINITION])

    delegated = await adapter.delegate_task("task-1", "dave")
    await adapter.claim_task("task-1", "bob")
    await adapter.assign_task("task-1", "carol")
    await adapter.unclaim_task("task-1")

    assert (delegated.assignee, delegated.owner, delegated.status) == ("dave", "bob", "delegated")
    assert sent_json(actions["delegate"]) == {"userId": "dave"}
    assert sent_json(actions["assignee"]) == {"userId": "carol"}
    assert actions["unclaim"].calls.last.request.content == b""


def open_task(camunda: respx.MockRouter) -> None:
    camunda.get("/task/task-1").respond(200, json=TASK)
    camunda.get("/task/task-1/identity-links").respond(200, json=[])
    camunda.get("/process-definition").respond(200, json=[DEFINITION])


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("Cannot complete task task-1: ENGINE-03043 task with id 'task-1' is suspended.", Conflict),
        ("Cannot complete task task-1: Cannot find task with id task-1: task is null", NotFound),
        ("Cannot complete task task-1: Unknown property used in expression: ${x}. Cause: ...", EngineError),
    ],
)
async def test_completion_failures(
    adapter: Camunda7Adapter, camunda: respx.MockRouter, message: str, error: type[Exception]
) -> None:
    open_task(camunda)
    camunda.post("/task/task-1/complete").respond(500, json=engine_error("RestException", message))
    with pytest.raises(error) as caught:
        await adapter.complete_task("task-1", {}, user_id="alice")
    assert caught.value.engine_message == message  # type: ignore[attr-defined]


async def test_complete_sends_typed_variables_and_returns_the_task(
    adapter: Camunda7Adapter, camunda: respx.MockRouter
) -> None:
    open_task(camunda)
    complete = camunda.post("/task/task-1/complete").respond(204)
    task = await adapter.complete_task("task-1", parse_request_variables({"approved": True}), user_id="alice")
    assert sent_json(complete) == {"variables": {"approved": {"value": True, "type": "Boolean"}}}
    assert (task.id, task.instance_id) == ("task-1", TASK["processInstanceId"])


async def test_a_completed_task_is_read_from_history(adapter: Camunda7Adapter, camunda: respx.MockRouter) -> None:
    camunda.get("/task/task-1").respond(404, json=missing("No matching task with id task-1"))
    history = camunda.get("/history/task").respond(
        200,
        json=[
            {
                "id": "task-1",
                "name": "Review request",
                "processDefinitionKey": "approval",
                "processInstanceId": "pi-1",
                "taskDefinitionKey": "review",
                "assignee": "alice",
                "deleteReason": "completed",
                "startTime": "2026-11-22T10:00:01.000+0000",
            }
        ],
    )
    task = await adapter.get_task("task-1")
    assert sent_params(history) == {"taskId": "task-1"}
    assert (task.status, task.assignee, task.definition_key) == ("completed", "alice", "approval")


async def test_finished_tasks_are_listed_from_history(adapter: Camunda7Adapter, camunda: respx.MockRouter) -> None:
    listing = camunda.get("/history/task").respond(200, json=[])
    camunda.get("/history/task/count").respond(200, json={"count": 0})
    await adapter.list_tasks(TaskQuery(status="cancelled", instance_id="pi-1"))
    assert sent_params(listing) == {
        "finished": "true",
        "taskDeleteReason": "deleted",
        "processInstanceId": "pi-1",
        "sortBy": "startTime",
        "sortOrder": "desc",
        "firstResult": "0",
        "maxResults": "50",
    }


# ------------------------------------------------------------------ incidents
FAILED_JOB = {
    "id": "inc-1",
    "incidentType": "failedJob",
    "incidentMessage": "Unknown property used in expression",
    "processInstanceId": "pi-1",
    "processDefinitionId": "charging:1:c1",
    "activityId": "charge",
    "failedActivityId": "charge",
    "configuration": "job-1",
    "incidentTimestamp": "2026-11-22T10:00:00.000+0000",
}
CHARGING_XML = """<definitions><process id="charging">
  <serviceTask id="charge" name="Charge card"/>
</process></definitions>"""
CHARGING_DIAGRAM = {"id": "charging:1:c1", "bpmn20Xml": CHARGING_XML}


async def test_an_incident_names_its_activity_and_carries_the_stacktrace(
    adapter: Camunda7Adapter, camunda: respx.MockRouter
) -> None:
    camunda.get("/incident/inc-1").respond(200, json=FAILED_JOB)
    camunda.get("/process-definition").respond(200, json=[{**DEFINITION, "id": "charging:1:c1", "key": "charging"}])
    camunda.get("/process-definition/charging:1:c1/xml").respond(200, json=CHARGING_DIAGRAM)
    stacktrace = camunda.get("/job/job-1/stacktrace").respond(200, text="java.lang.Exception: boom\n\tat x")

    incident = await adapter.get_engine_incident("inc-1")

    assert stacktrace.calls.last.request.headers["accept"] == "text/plain"
    assert (incident.definition_key, incident.activity_name, incident.job_id) == ("charging", "Charge card", "job-1")
    assert incident.detail == "java.lang.Exception: boom\n\tat x"


async def test_a_resolved_incident_is_read_from_history(adapter: Camunda7Adapter, camunda: respx.MockRouter) -> None:
    camunda.get("/incident/inc-1").respond(404, json=missing("No matching incident with id inc-1"))
    camunda.get("/history/incident", params={"incidentId": "inc-1"}).respond(
        200,
        json=[
            {
                **FAILED_JOB,
                "incidentTimestamp": None,
                "createTime": "2026-11-22T10:00:00.000+0000",
                "processDefinitionKey": "charging",
                "resolved": True,
            }
        ],
    )
    camunda.get("/process-definition/charging:1:c1/xml").respond(200, json=CHARGING_DIAGRAM)
    camunda.get("/job/job-1/stacktrace").respond(404, json=missing("No job found with id 'job-1'."))
    incident = await adapter.get_engine_incident("inc-1")
    assert (incident.id, incident.definition_key, incident.detail) == ("inc-1", "charging", None)

    camunda.get("/incident/gone").respond(404, json=missing("No matching incident with id gone"))
    camunda.get("/history/incident", params={"incidentId": "gone"}).respond(200, json=[])
    with pytest.raises(NotFound):
        await adapter.get_engine_incident("gone")


async def test_incidents_page_by_definition_key(adapter: Camunda7Adapter, camunda: respx.MockRouter) -> None:
    listing = camunda.get("/incident").respond(200, json=[FAILED_JOB])
    camunda.get("/incident/count").respond(200, json={"count": 1})
    camunda.get("/process-definition").respond(200, json=[{**DEFINITION, "id": "charging:1:c1", "key": "charging"}])
    camunda.get("/process-definition/charging:1:c1/xml").respond(200, json=CHARGING_DIAGRAM)
    query = EngineIncidentQuery(definition_key="charging", incident_type="failedJob")
    page = await adapter.list_engine_incidents(query)
    assert sent_params(listing) == {
        "processDefinitionKeyIn": "charging",
        "incidentType": "failedJob",
        "sortBy": "incidentTimestamp",
        "sortOrder": "desc",
        "firstResult": "0",
        "maxResults": "50",
    }
    assert page.total == 1 and page.items[0].activity_name == "Charge card"


@pytest.mark.parametrize(
    ("kind", "path"),
    [("failedJob", "/job/target-1/retries"), ("failedExternalTask", "/external-task/target-1/retries")],
)
async def test_retry_sets_the_retries_of_the_failed_work(
    adapter: Camunda7Adapter, camunda: respx.MockRouter, kind: str, path: str
) -> None:
    camunda.get("/incident/inc-1").respond(200, json={**FAILED_JOB, "incidentType": kind, "configuration": "target-1"})
    retries = camunda.put(path).respond(204)
    await adapter.retry_engine_incident("inc-1", retries=2)
    assert sent_json(retries) == {"retries": 2}


async def test_other_incidents_cannot_be_retried(adapter: Camunda7Adapter, camunda: respx.MockRouter) -> None:
    camunda.get("/incident/inc-1").respond(200, json={**FAILED_JOB, "incidentType": "customIncident"})
    with pytest.raises(Conflict, match="customIncident"):
        await adapter.retry_engine_incident("inc-1")


async def test_annotating_and_clearing_an_annotation(adapter: Camunda7Adapter, camunda: respx.MockRouter) -> None:
    put = camunda.put("/incident/inc-1/annotation").respond(204)
    clear = camunda.delete("/incident/inc-1/annotation").respond(204)
    await adapter.annotate_engine_incident("inc-1", "card expired, customer called")
    await adapter.annotate_engine_incident("inc-1", None)
    assert sent_json(put) == {"annotation": "card expired, customer called"}
    assert clear.called

    unknown = engine_error("BadUserRequestException", "incident is null")  # the spec's 400 for an unknown incident
    camunda.put("/incident/nope/annotation").respond(400, json=unknown)
    with pytest.raises(NotFound) as caught:
        await adapter.annotate_engine_incident("nope", "x")
    assert caught.value.engine_message == "incident is null"


# ------------------------------------------------------------------ history and health
def historic_activity(definition_id: str, number: int) -> dict[str, Any]:
    return {
        "id": f"review:{definition_id}:{number}",
        "activityId": "review",
        "activityType": "userTask",
        "processInstanceId": f"pi-{number}",
        "processDefinitionKey": "approval",
        "startTime": "2026-11-22T10:00:00.000+0000",
        "endTime": "2026-11-22T10:00:02.500+0000",
        "durationInMillis": 2500,
    }


async def test_historic_activities_of_a_key_page_across_its_versions(
    adapter: Camunda7Adapter, camunda: respx.MockRouter
) -> None:
    camunda.get("/process-definition", params={"key": "approval"}).respond(
        200, json=[{**DEFINITION, "id": "v2", "version": 2}, {**DEFINITION, "id": "v1"}]
    )
    for version, total in (("v2", 3), ("v1", 4)):
        counting = camunda.get("/history/activity-instance/count", params={"processDefinitionId": version})
        counting.respond(200, json={"count": total})
    newer = camunda.get("/history/activity-instance", params={"processDefinitionId": "v2"}).respond(
        200, json=[historic_activity("v2", 3)]
    )
    older = camunda.get("/history/activity-instance", params={"processDefinitionId": "v1"}).respond(
        200, json=[historic_activity("v1", n) for n in (1, 2, 3)]
    )

    page = await adapter.history_activities(HistoryQuery(definition_key="approval", finished=True, page=2, size=2))

    assert page.total == 7
    assert (sent_params(newer)["firstResult"], sent_params(newer)["maxResults"]) == ("2", "2")
    assert (sent_params(older)["firstResult"], sent_params(older)["maxResults"]) == ("0", "1")
    assert sent_params(older)["finished"] == "true"
    assert [record.duration_ms for record in page.items] == [2500, 2500, 2500, 2500]


async def test_health_reports_the_engine_version(adapter: Camunda7Adapter, camunda: respx.MockRouter) -> None:
    camunda.get("/version").respond(200, json={"version": "7.23.0"})
    health = await adapter.health()
    assert (health.status, health.version) == ("up", "7.23.0")


async def test_health_of_a_named_engine_asks_the_rest_root(database: Database) -> None:
    registry, named = await build(database, url=f"{BASE}/engine/billing")
    try:
        with respx.mock(base_url=BASE) as camunda:
            camunda.get("/version").respond(200, json={"version": "7.23.0"})
            camunda.get("/engine").respond(200, json=[{"name": "default"}])
            health = await named.health()
    finally:
        await registry.close()
    assert health.status == "down" and "billing" in (health.detail or "")


# ------------------------------------------------------------------ transport faults
async def test_malformed_json_is_an_engine_error(adapter: Camunda7Adapter, camunda: respx.MockRouter) -> None:
    camunda.get("/task/task-1").respond(200, content=b"<html>gateway timeout</html>")
    with pytest.raises(EngineError) as caught:
        await adapter.get_task("task-1")
    assert caught.value.status == 502


async def test_an_unexpected_engine_failure_is_502_with_the_engines_message(
    adapter: Camunda7Adapter, camunda: respx.MockRouter
) -> None:
    camunda.get("/version").respond(500, json=engine_error("ProcessEngineException", "database is down"))
    with pytest.raises(EngineError) as caught:
        await adapter.health()
    problem = caught.value
    assert (problem.status, problem.engine_status, problem.engine_message) == (502, 500, "database is down")


async def test_timeout_is_504_and_refused_connection_is_503(
    adapter: Camunda7Adapter, camunda: respx.MockRouter
) -> None:
    camunda.get("/task/slow").mock(side_effect=httpx.ReadTimeout("slow"))
    camunda.get("/task/down").mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(EngineTimeout):
        await adapter.get_task("slow")
    with pytest.raises(EngineUnavailable):
        await adapter.get_task("down")


async def test_migration_sends_the_generated_plan_with_the_mappings_and_names_refused_activities(
    camunda: respx.MockRouter, adapter: Camunda7Adapter
) -> None:
    camunda.get("/history/process-instance/pi-1").respond(json={"id": "pi-1", "processDefinitionId": "approval:1:d1"})
    camunda.get("/process-instance/pi-1").respond(
        json={"id": "pi-1", "definitionId": "approval:1:d1", "ended": False, "suspended": False}
    )
    generated = {
        "sourceProcessDefinitionId": "approval:1:d1",
        "targetProcessDefinitionId": "approval:2:d2",
        "instructions": [
            {"sourceActivityIds": ["review"], "targetActivityIds": ["review"], "updateEventTrigger": False},
            {"sourceActivityIds": ["notify"], "targetActivityIds": ["notify"], "updateEventTrigger": False},
        ],
        "variables": None,
    }
    camunda.post("/migration/generate").respond(json=generated)
    report = {
        "processInstanceId": "pi-1",
        "failures": [],
        "activityInstanceValidationReports": [
            {
                "migrationInstruction": None,
                "activityInstanceId": "check:ai-1",
                "sourceScopeId": "review",
                "failures": ["Activities have incompatible types"],
            }
        ],
        "transitionInstanceValidationReports": [],
    }
    execute = camunda.post("/migration/execute").respond(
        400,
        json={
            "type": "MigratingProcessInstanceValidationException",
            "message": "ENGINE-23004 Cannot migrate process instance 'pi-1'",
            "validationReport": report,
        },
    )
    with pytest.raises(BadRequest) as refused:
        await adapter.migrate_instance(
            "pi-1", InstanceMigration(target_definition_id="approval:2:d2", mappings={"review": "check"})
        )
    plan = sent_json(execute)
    assert plan["processInstanceIds"] == ["pi-1"]
    assert plan["migrationPlan"]["instructions"] == [
        {"sourceActivityIds": ["notify"], "targetActivityIds": ["notify"], "updateEventTrigger": False},
        {"sourceActivityIds": ["review"], "targetActivityIds": ["check"]},
    ]
    assert refused.value.detail == (
        "ENGINE-23004 Cannot migrate process instance 'pi-1' (activity 'review': Activities have incompatible types)"
    )
    assert refused.value.engine_status == 400
