"""Messages and signals through the API on the embedded engine: start by message, correlate by business key and
correlation keys, interrupt a waiting task with a signal; the definition lists its start and catch events."""

from __future__ import annotations

import httpx

from tests.api.conftest import deploy, open_tasks, start
from tests.api.test_api import assert_problem, event_types

ORDERING = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  id="ordering-definitions" targetNamespace="http://pm-gateway.dev/tests">
  <bpmn:process id="ordering" name="Ordering" isExecutable="true">
    <bpmn:startEvent id="order-placed" name="Order placed">
      <bpmn:messageEventDefinition messageRef="placed"/>
    </bpmn:startEvent>
    <bpmn:sequenceFlow id="to-payment" sourceRef="order-placed" targetRef="payment-received"/>
    <bpmn:intermediateCatchEvent id="payment-received" name="Payment received">
      <bpmn:messageEventDefinition messageRef="paid"/>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="to-ship" sourceRef="payment-received" targetRef="ship"/>
    <bpmn:userTask id="ship" name="Ship order"/>
    <bpmn:boundaryEvent id="cancelled" name="Order cancelled" attachedToRef="ship">
      <bpmn:signalEventDefinition signalRef="cancel"/>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="to-shipped" sourceRef="ship" targetRef="shipped"/>
    <bpmn:endEvent id="shipped"/>
    <bpmn:sequenceFlow id="to-withdrawn" sourceRef="cancelled" targetRef="withdrawn"/>
    <bpmn:endEvent id="withdrawn"/>
  </bpmn:process>
  <bpmn:message id="placed" name="order-placed"/>
  <bpmn:message id="paid" name="payment-received"/>
  <bpmn:signal id="cancel" name="order-cancelled"/>
</bpmn:definitions>
"""


async def message(client: httpx.AsyncClient, **body: object) -> httpx.Response:
    return await client.post("/api/processes/messages", json=body)


async def test_definition_lists_its_start_and_catch_events(client: httpx.AsyncClient) -> None:
    (definition,) = (await deploy(client, ORDERING))["definitions"]
    details = (await client.get(f"/api/processes/definitions/{definition['id']}")).json()
    assert [(e["id"], e["trigger"], e["message_name"]) for e in details["start_events"]] == [
        ("order-placed", "message", "order-placed")
    ]
    assert [
        (e["id"], e["element_type"], e["trigger"], e["message_name"], e["signal_name"], e["attached_to"])
        for e in details["catch_events"]
    ] == [
        ("payment-received", "intermediateCatchEvent", "message", "payment-received", None, None),
        ("cancelled", "boundaryEvent", "signal", None, "order-cancelled", "ship"),
    ]
    assert details["catch_events"][1]["interrupting"] is True


async def test_start_by_message_correlate_by_business_key_and_interrupt_by_signal(client: httpx.AsyncClient) -> None:
    await deploy(client, ORDERING)
    started = await message(client, message_name="order-placed", business_key="o-1", variables={"amount": 100})
    assert started.status_code == 200, started.text
    ((result),) = started.json()["results"]
    assert (result["type"], result["definition_key"]) == ("started", "ordering")
    first = result["instance_id"]
    instance = (await client.get(f"/api/processes/instances/{first}")).json()
    assert (instance["business_key"], instance["status"]) == ("o-1", "active")
    assert [a["id"] for a in instance["current_activities"]] == ["payment-received"]

    second = await start(client, "ordering", business_key="o-2", start_message="order-placed")

    both = await message(client, message_name="payment-received")
    assert_problem(both, 409, "matches 2 receivers", first, second["id"])
    assert [a["id"] for a in (await client.get(f"/api/processes/instances/{first}")).json()["current_activities"]] == [
        "payment-received"
    ]
    assert_problem(await message(client, message_name="payment-received", business_key="o-3"), 404, "'o-3'")

    paid = await message(client, message_name="payment-received", business_key="o-1", variables={"paid": True})
    assert paid.status_code == 200, paid.text
    assert paid.json()["results"] == [{"type": "correlated", "instance_id": first, "definition_key": "ordering"}]
    (task,) = await open_tasks(client, first)
    assert task["task_definition_key"] == "ship"
    variables = (await client.get(f"/api/processes/instances/{first}/variables")).json()
    assert variables["paid"] == {"value": True, "type": "Boolean"} and variables["amount"]["value"] == 100
    assert await open_tasks(client, second["id"]) == []

    signal = await client.post("/api/processes/signals", json={"signal_name": "order-cancelled"})
    assert signal.status_code == 202, signal.text
    assert signal.json()["executions"] == 1  # only the first waits at the task the signal interrupts
    ended = (await client.get(f"/api/processes/instances/{first}")).json()
    assert ended["status"] == "completed"
    assert "withdrawn" in [step["activity_id"] for step in ended["execution_path"]]
    assert "shipped" not in [step["activity_id"] for step in ended["execution_path"]]
    assert await open_tasks(client, first) == []

    types = await event_types(client)
    assert types.count("message.correlated") == 2 and types.count("signal.broadcast") == 1
    assert types.count("instance.started") == 2 and "task.created" in types and "instance.completed" in types


async def test_correlation_keys_match_process_variables_and_all_reaches_every_match(client: httpx.AsyncClient) -> None:
    await deploy(client, ORDERING)
    red = await start(client, "ordering", variables={"region": "red"})
    blue = await start(client, "ordering", variables={"region": "blue"})
    only_blue = await message(client, message_name="payment-received", correlation_keys={"region": "blue"})
    assert [r["instance_id"] for r in only_blue.json()["results"]] == [blue["id"]]
    assert_problem(
        await message(client, message_name="payment-received", correlation_keys={"region": "blue"}), 404, "region"
    )
    again = await start(client, "ordering", variables={"region": "red"})
    everyone = await message(client, message_name="payment-received", all=True)
    assert sorted(r["instance_id"] for r in everyone.json()["results"]) == sorted([red["id"], again["id"]])


async def test_bad_message_requests_are_clear_problems(client: httpx.AsyncClient) -> None:
    await deploy(client, ORDERING)
    assert_problem(await message(client, message_name="nobody-waits"), 404, "'nobody-waits'")
    response = await client.post(
        "/api/processes/instances", json={"definition_key": "ordering", "start_message": "payment-received"}
    )
    assert_problem(response, 400, "no start event for message 'payment-received'", "'order-placed'")
    assert (await message(client, message_name="")).status_code == 422
    # Values are shown as JSON, never as Python reprs; booleans are not coerced from strings or numbers.
    nobody = await message(client, message_name="payment-received", correlation_keys={"region": None, "vip": True})
    assert_problem(nobody, 404, "variable region = null", "variable vip = true")
    assert "None" not in nobody.json()["detail"] and "True" not in nobody.json()["detail"]
    assert_problem(await message(client, message_name="payment-received", all="yes"), 422, "all")
    assert_problem(await message(client, message_name="payment-received", correlation_keys={"": "EU"}), 422)
    assert_problem(
        await message(client, message_name="x", process_instance_id="some-id", all=True), 400, "process_instance_id"
    )


async def test_modification_goes_back_to_a_passed_activity_and_skips_an_active_one(client: httpx.AsyncClient) -> None:
    await deploy(client, ORDERING)
    instance = await start(client, "ordering", business_key="o-5")
    await message(client, message_name="payment-received", business_key="o-5")
    (task,) = await open_tasks(client, instance["id"])

    back = await client.post(
        f"/api/processes/instances/{instance['id']}/modification",
        json={
            "instructions": [{"type": "start_before", "activity_id": "payment-received"}],
            "annotation": "paid twice",
        },
    )
    assert back.status_code == 200, back.text
    assert [a["id"] for a in back.json()["current_activities"]] == ["payment-received"]
    assert await open_tasks(client, instance["id"]) == []
    assert (await client.get(f"/api/processes/tasks/{task['id']}")).json()["status"] == "cancelled"

    skipped = await client.post(
        f"/api/processes/instances/{instance['id']}/modification",
        json={
            "instructions": [{"type": "start_after", "activity_id": "payment-received", "variables": {"paid": False}}]
        },
    )
    assert skipped.status_code == 200, skipped.text
    assert [t["task_definition_key"] for t in await open_tasks(client, instance["id"])] == ["ship"]
    assert (await client.get(f"/api/processes/instances/{instance['id']}/variables")).json()["paid"]["value"] is False

    ahead = await client.post(
        f"/api/processes/instances/{instance['id']}/modification",
        json={"instructions": [{"type": "start_before", "activity_id": "withdrawn"}]},
    )
    assert_problem(ahead, 400, "'withdrawn'", "has not reached it")
    unknown = await client.post(
        f"/api/processes/instances/{instance['id']}/modification",
        json={"instructions": [{"type": "cancel", "activity_id": "nope"}]},
    )
    assert_problem(unknown, 400, "'nope'")
    empty = await client.post(
        f"/api/processes/instances/{instance['id']}/modification",
        json={"instructions": [{"type": "cancel", "activity_id": "ship"}]},
    )
    assert_problem(empty, 400, "without an active activity")
    assert [t["task_definition_key"] for t in await open_tasks(client, instance["id"])] == ["ship"]
    migration = await client.post(
        f"/api/processes/instances/{instance['id']}/migration", json={"target_definition_id": "x"}
    )
    assert_problem(migration, 404, "definition x not found")
    types = await event_types(client)
    assert types.count("instance.modified") == 2


TWO_STEPS = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  id="two-steps-definitions" targetNamespace="http://pm-gateway.dev/tests">
  <bpmn:process id="two-steps" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="pack"/>
    <bpmn:userTask id="pack" name="Pack"/>
    <bpmn:sequenceFlow id="f2" sourceRef="pack" targetRef="ship"/>
    <bpmn:userTask id="ship" name="Ship"/>
    <bpmn:sequenceFlow id="f3" sourceRef="ship" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


async def test_modification_goes_back_to_a_user_task_that_was_completed(client: httpx.AsyncClient) -> None:
    """SpiffWorkflow reopens the completed task under its old id; the gateway's task record follows it. The
    process variables set since are kept, as on Camunda (SpiffWorkflow's reset would restore the older data)."""
    await deploy(client, TWO_STEPS)
    instance = await start(client, "two-steps")
    (pack,) = await open_tasks(client, instance["id"])
    packed = {"variables": {"parcels": {"value": 3, "type": "Integer"}}}
    assert (await client.post(f"/api/processes/tasks/{pack['id']}/complete", json=packed)).status_code == 204
    (ship,) = await open_tasks(client, instance["id"])
    assert ship["task_definition_key"] == "ship"
    variables = f"/api/processes/instances/{instance['id']}/variables"
    changed = await client.put(variables, json={"variables": {"carrier": {"value": "DHL", "type": "String"}}})
    assert changed.status_code == 200, changed.text

    back = await client.post(
        f"/api/processes/instances/{instance['id']}/modification",
        json={"instructions": [{"type": "start_before", "activity_id": "pack"}]},
    )
    assert back.status_code == 200, back.text
    assert [a["id"] for a in back.json()["current_activities"]] == ["pack"]
    kept = (await client.get(variables)).json()
    assert (kept["parcels"]["value"], kept["carrier"]["value"]) == (3, "DHL")
    (reopened,) = await open_tasks(client, instance["id"])
    assert (reopened["task_definition_key"], reopened["status"]) == ("pack", "created")
    assert (await client.post(f"/api/processes/tasks/{reopened['id']}/complete", json={})).status_code == 204
    assert [t["task_definition_key"] for t in await open_tasks(client, instance["id"])] == ["ship"]


async def test_migration_moves_a_waiting_task_to_the_renamed_activity_of_a_new_version(
    client: httpx.AsyncClient,
) -> None:
    """The embedded engine migrates with SpiffWorkflow's migrate_workflow: the open task keeps its id."""
    (first,) = (await deploy(client, TWO_STEPS))["definitions"]
    instance = await start(client, "two-steps")
    (pack,) = await open_tasks(client, instance["id"])
    (second,) = (await deploy(client, TWO_STEPS.replace(b'"pack"', b'"packing"')))["definitions"]
    path = f"/api/processes/instances/{instance['id']}/migration"

    unmapped = await client.post(path, json={"target_definition_id": second["id"]})
    assert_problem(unmapped, 400, "'pack'")
    unknown = await client.post(path, json={"target_definition_id": second["id"], "mappings": {"pack": "boxing"}})
    assert_problem(unknown, 400, "'boxing'")
    same = await client.post(path, json={"target_definition_id": first["id"]})
    assert_problem(same, 400, "already runs on")
    (still,) = await open_tasks(client, instance["id"])
    assert (still["id"], still["task_definition_key"]) == (pack["id"], "pack")

    moved = await client.post(path, json={"target_definition_id": second["id"], "mappings": {"pack": "packing"}})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["definition_id"], [a["id"] for a in moved.json()["current_activities"]]) == (
        second["id"],
        ["packing"],
    )
    (task,) = await open_tasks(client, instance["id"])
    assert (task["id"], task["task_definition_key"], task["name"]) == (pack["id"], "packing", "Pack")
    assert (await client.post(f"/api/processes/tasks/{task['id']}/complete", json={})).status_code == 204
    assert [t["task_definition_key"] for t in await open_tasks(client, instance["id"])] == ["ship"]
    assert "instance.migrated" in await event_types(client)


async def test_migration_moves_an_instance_to_another_process(client: httpx.AsyncClient) -> None:
    await deploy(client, TWO_STEPS)
    instance = await start(client, "two-steps")
    (other,) = (await deploy(client, TWO_STEPS.replace(b'"two-steps"', b'"packing-line"')))["definitions"]
    moved = await client.post(
        f"/api/processes/instances/{instance['id']}/migration", json={"target_definition_id": other["id"]}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["definition_key"] == "packing-line"
    (task,) = await open_tasks(client, instance["id"])
    assert task["task_definition_key"] == "pack"
    assert (await client.post(f"/api/processes/tasks/{task['id']}/complete", json={})).status_code == 204
    (ship,) = await open_tasks(client, instance["id"])
    assert (await client.post(f"/api/processes/tasks/{ship['id']}/complete", json={})).status_code == 204
    done = (await client.get(f"/api/processes/instances/{instance['id']}")).json()
    assert (done["status"], done["definition_id"]) == ("completed", other["id"])


async def test_a_variable_typed_integer_or_long_without_a_whole_number_says_so_in_english(
    client: httpx.AsyncClient,
) -> None:
    for var_type, article in (("Integer", "an"), ("Long", "a")):
        response = await client.post(
            "/api/processes/signals", json={"signal_name": "s", "variables": {"n": {"value": "x", "type": var_type}}}
        )
        assert_problem(response, 422, f"n: {article} {var_type} needs a whole number")


async def test_migration_moves_an_activity_with_a_boundary_event_to_its_renamed_counterpart(
    client: httpx.AsyncClient,
) -> None:
    """SpiffWorkflow wraps an activity with boundary events in a split and a join of its own (`ship.BoundaryEvent
    Split`): a mapping of the activity moves them too, and a refusal names BPMN ids only, never those."""
    await deploy(client, ORDERING)
    instance = await start(client, "ordering", business_key="o-9")
    await message(client, message_name="payment-received", business_key="o-9")
    (ship,) = await open_tasks(client, instance["id"])
    renamed = ORDERING.replace(b'"ship"', b'"shipping"')
    (second,) = (await deploy(client, renamed))["definitions"]
    path = f"/api/processes/instances/{instance['id']}/migration"

    unmapped = assert_problem(await client.post(path, json={"target_definition_id": second["id"]}), 400, "'ship'")
    assert "Boundary" not in unmapped["detail"], unmapped["detail"]
    elsewhere = (await deploy(client, renamed.replace(b'"shipped"', b'"sent"').replace(b'"ordering"', b'"o2"')))[
        "definitions"
    ][0]
    ahead = await client.post(path, json={"target_definition_id": elsewhere["id"], "mappings": {"ship": "shipping"}})
    # `shipped` lies ahead (predicted), it was not passed
    assert_problem(ahead, 400, "its path ahead holds 'shipped'")
    assert "passed 'shipped'" not in ahead.json()["detail"]

    moved = await client.post(path, json={"target_definition_id": second["id"], "mappings": {"ship": "shipping"}})
    assert moved.status_code == 200, moved.text
    assert [a["id"] for a in moved.json()["current_activities"]] == ["shipping"]
    (task,) = await open_tasks(client, instance["id"])
    assert (task["id"], task["task_definition_key"]) == (ship["id"], "shipping")
    # the boundary event moved with its activity: the signal still interrupts it
    signal = await client.post("/api/processes/signals", json={"signal_name": "order-cancelled"})
    assert (signal.status_code, signal.json()["executions"]) == (202, 1)
    ended = (await client.get(f"/api/processes/instances/{instance['id']}")).json()
    assert ended["status"] == "completed"
    assert "withdrawn" in [step["activity_id"] for step in ended["execution_path"]]
