"""An instance never reports `completed` while it has open incidents or open tasks."""

from __future__ import annotations

from adapters.embedded import EmbeddedAdapter
from gateway.schemas import InstanceQuery, TaskQuery
from tests.embedded.conftest import bpmn, deploy, flow, incidents_of, start, tasks_of

SPLIT = '<bpmn:startEvent id="start"/>' + flow("start", "split") + '<bpmn:parallelGateway id="split"/>'
ENDS = '<bpmn:endEvent id="end-a"/><bpmn:endEvent id="end-b"/>'


async def complete(adapter: EmbeddedAdapter, instance_id: str, key: str) -> None:
    task = (await tasks_of(adapter, instance_id))[key]
    await adapter.complete_task(task.id, {}, user_id="tester")


async def test_a_failed_branch_keeps_the_instance_active_after_the_other_branch_ends(adapter: EmbeddedAdapter) -> None:
    model = bpmn(
        "half-failed",
        SPLIT + flow("split", "compute") + flow("split", "review")
        + '<bpmn:scriptTask id="compute"><bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>'  # scripts are off
        + '<bpmn:userTask id="review"/>' + flow("compute", "end-a") + flow("review", "end-b") + ENDS,
    )  # fmt: skip
    await deploy(adapter, model)
    instance_id = await start(adapter, "half-failed")
    (incident,) = await incidents_of(adapter, instance_id)
    assert incident.activity_id == "compute"
    await complete(adapter, instance_id, "review")
    details = await adapter.get_instance(instance_id)
    assert details.status == "active"
    assert details.end_time is None
    assert [i.id for i in await incidents_of(adapter, instance_id)] == [incident.id]
    listed = await adapter.list_instances(InstanceQuery(definition_key="half-failed", status="completed"))
    assert listed.total == 0


async def test_an_end_event_on_one_branch_leaves_the_instance_active_while_another_task_is_open(
    adapter: EmbeddedAdapter,
) -> None:
    model = bpmn(
        "half-done",
        SPLIT + flow("split", "quick") + flow("split", "slow") + '<bpmn:userTask id="quick"/>'
        + '<bpmn:userTask id="slow"/>' + flow("quick", "end-a") + flow("slow", "end-b") + ENDS,
    )  # fmt: skip
    await deploy(adapter, model)
    instance_id = await start(adapter, "half-done")
    await complete(adapter, instance_id, "quick")
    assert (await adapter.get_instance(instance_id)).status == "active"
    open_tasks = await adapter.list_tasks(TaskQuery(instance_id=instance_id))
    assert [task.task_definition_key for task in open_tasks.items if task.status == "created"] == ["slow"]
    await complete(adapter, instance_id, "slow")
    assert (await adapter.get_instance(instance_id)).status == "completed"
