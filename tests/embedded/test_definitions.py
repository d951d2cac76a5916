"""Deployments: invalid BPMN stores nothing; versions count per key and tenant; deleting keeps or drops history."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from adapters.embedded import EmbeddedAdapter
from adapters.embedded.tables import definitions, deployments, instances
from gateway.db import Database
from gateway.errors import Conflict, InvalidBpmn, NotFound
from gateway.schemas import DefinitionQuery, HistoryQuery, InstanceQuery
from tests.embedded.conftest import bpmn, deploy, flow, start, tasks_of

SIMPLE = bpmn(
    "simple",
    '<bpmn:startEvent id="start"/>' + flow("start", "work") + '<bpmn:userTask id="work" name="Work"/>'
    + flow("work", "end") + '<bpmn:endEvent id="end"/>',
)  # fmt: skip


async def stored_rows(database: Database) -> int:
    async with database.engine.connect() as conn:
        counts = [await conn.scalar(sa.select(sa.func.count()).select_from(t)) for t in (deployments, definitions)]
    return sum(counts)


@pytest.mark.parametrize(
    ("xml", "fragments"),
    [
        (SIMPLE.replace(b"</bpmn:process>", b"</bpmn:proces>"), ["Malformed XML", "line 5"]),
        (SIMPLE.replace(b'isExecutable="true"', b'isExecutable="false"'), ["no executable process"]),
        (b"<definitions/>", ["Not a BPMN 2.0 document"]),
        (SIMPLE.replace(b'<bpmn:endEvent id="end"/>', b'<bpmn:endEvent id="end" color="red"/>'), ["color", "line 5"]),
        (SIMPLE.replace(b'targetRef="end"', b'targetRef="nowhere"'), ["work", "line 5"]),
        (
            bpmn(
                "gated",
                '<bpmn:startEvent id="start"/>'
                + flow("start", "gate")
                + '<bpmn:exclusiveGateway id="gate"/>'
                + flow("gate", "end", "__import__('os').getcwd()")
                + '<bpmn:endEvent id="end"/>',
            ),
            ["calling a function is not allowed", "gate-end", "line 5"],
        ),
        (
            bpmn(
                "slow",
                '<bpmn:startEvent id="start"/>'
                + flow("start", "wait")
                + '<bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition>'
                "<bpmn:timeDate>2026-13-45T10:00:00Z</bpmn:timeDate></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
                + flow("wait", "end")
                + '<bpmn:endEvent id="end"/>',
            ),
            ["The timeDate '2026-13-45T10:00:00Z' of timer event 'wait' is not an ISO 8601 date-time"],
        ),
    ],
    ids=["malformed", "not-executable", "not-bpmn", "schema", "dangling-flow", "unsafe-condition", "bad-timer"],
)
async def test_invalid_bpmn_is_rejected_with_the_reason_and_stores_nothing(
    adapter: EmbeddedAdapter, database: Database, xml: bytes, fragments: list[str]
) -> None:
    with pytest.raises(InvalidBpmn) as caught:
        await deploy(adapter, xml)
    for fragment in fragments:
        assert fragment in caught.value.detail
    assert await stored_rows(database) == 0


@pytest.mark.parametrize("place", ["text", "attribute"])
async def test_external_entities_are_never_resolved(adapter: EmbeddedAdapter, database: Database, place: str) -> None:
    reference = (
        b'<bpmn:userTask id="work"><bpmn:documentation>&secret;</bpmn:documentation></bpmn:userTask>'
        if place == "text"
        else b'<bpmn:userTask id="work" name="&secret;"/>'
    )
    xxe = SIMPLE.replace(
        b"<bpmn:definitions", b'<!DOCTYPE d [<!ENTITY secret SYSTEM "file:///etc/passwd">]>\n<bpmn:definitions'
    ).replace(b'<bpmn:userTask id="work" name="Work"/>', reference)
    with pytest.raises(InvalidBpmn) as caught:
        await deploy(adapter, xxe)
    assert "entit" in caught.value.detail and "root:" not in caught.value.detail
    assert await stored_rows(database) == 0


async def test_versions_count_per_key_and_tenant_and_the_xml_is_kept_as_deployed(adapter: EmbeddedAdapter) -> None:
    first = await deploy(adapter, SIMPLE)
    second = await deploy(adapter, SIMPLE)
    other_tenant = await deploy(adapter, SIMPLE, tenant_id="acme")
    versions = {
        d.id: (d.version, d.tenant_id)
        for d in (await adapter.list_definitions(DefinitionQuery(latest_only=False))).items
    }
    assert versions == {first: (1, None), second: (2, None), other_tenant: (1, "acme")}
    latest = await adapter.list_definitions(DefinitionQuery(key="simple"))
    assert sorted(d.id for d in latest.items) == sorted([second, other_tenant])
    assert await adapter.get_definition_xml(first) == SIMPLE

    definition = await adapter.get_definition(second)
    assert (definition.name, definition.deployed_by, definition.category) == (
        "Simple",
        "tester",
        "http://pm-gateway.dev/tests",
    )


async def test_a_document_with_two_processes_deploys_two_definitions(adapter: EmbeddedAdapter) -> None:
    both = SIMPLE.replace(
        b"</bpmn:definitions>",
        b'<bpmn:process id="other" isExecutable="true"><bpmn:startEvent id="s"/></bpmn:process></bpmn:definitions>',
    )
    deployment = await adapter.deploy(both, filename="both.bpmn", name="Both", tenant_id=None, deployed_by="tester")
    assert sorted(d.key for d in deployment.definitions) == ["other", "simple"]
    assert deployment.name == "Both"


async def test_suspending_a_definition_with_its_instances(adapter: EmbeddedAdapter) -> None:
    definition_id = await deploy(adapter, SIMPLE)
    instance_id = await start(adapter, "simple")
    await adapter.set_definition_suspended(definition_id, True, include_instances=True)
    assert (await adapter.get_instance(instance_id)).status == "suspended"
    with pytest.raises(Conflict):
        await start(adapter, "simple")
    await adapter.set_definition_suspended(definition_id, False, include_instances=True)
    assert (await adapter.get_instance(instance_id)).status == "active"


async def test_deleting_without_cascade_keeps_finished_instances_in_the_history(
    adapter: EmbeddedAdapter, database: Database
) -> None:
    definition_id = await deploy(adapter, SIMPLE)
    instance_id = await start(adapter, "simple")
    await adapter.complete_task((await tasks_of(adapter, instance_id))["work"].id, {}, user_id="alice")
    await adapter.delete_definition(definition_id, cascade=False)

    with pytest.raises(NotFound):
        await adapter.get_definition(definition_id)
    assert (await adapter.get_instance(instance_id)).status == "completed"
    assert [i.id for i in (await adapter.history_instances(HistoryQuery(definition_key="simple"))).items] == [
        instance_id
    ]
    assert await stored_rows(database) == 0  # the deployment went with its last definition


async def test_deleting_with_cascade_removes_every_instance(adapter: EmbeddedAdapter, database: Database) -> None:
    definition_id = await deploy(adapter, SIMPLE)
    running = await start(adapter, "simple")
    await adapter.delete_definition(definition_id, cascade=True)
    with pytest.raises(NotFound):
        await adapter.get_instance(running)
    assert (await adapter.list_instances(InstanceQuery())).total == 0
    async with database.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(instances)) == 0
