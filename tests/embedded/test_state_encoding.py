"""Variables and run states keep their values through the fast JSON paths (orjson for run states, variables
encoded in the worker thread): large floats stay floats, large Json values and 64-bit edges come back as sent."""

from __future__ import annotations

from adapters.embedded import EmbeddedAdapter
from tests.embedded.conftest import bpmn, deploy, flow, start, tasks_of

HOLD = bpmn(
    "hold",
    '<bpmn:startEvent id="start"/>' + flow("start", "first") + '<bpmn:userTask id="first"/>'
    + flow("first", "second") + '<bpmn:userTask id="second"/>' + flow("second", "end") + '<bpmn:endEvent id="end"/>',
)  # fmt: skip


async def test_values_survive_a_change_of_the_run_state(adapter: EmbeddedAdapter) -> None:
    rows = [{"n": n, "text": "x" * 40, "ratio": n / 7} for n in range(5_000)]
    sent = {
        "huge": {"value": 1e16, "type": "Double"},
        "tiny": {"value": 1e-7, "type": "Double"},
        "edge": {"value": 2**63 - 1, "type": "Long"},
        "rows": {"value": {"rows": rows}, "type": "Json"},
        "unicode": {"value": "ü € 𝄞", "type": "String"},
    }
    await deploy(adapter, HOLD)
    instance_id = await start(adapter, "hold", sent)
    await adapter.complete_task((await tasks_of(adapter, instance_id))["first"].id, {}, user_id="tester")
    assert "second" in await tasks_of(adapter, instance_id)  # the run state was restored and saved again
    stored = await adapter.get_variables(instance_id)
    assert stored["huge"].value == 1e16 and isinstance(stored["huge"].value, float)
    assert stored["huge"].type == "Double"
    assert stored["tiny"].value == 1e-7
    assert stored["edge"].value == 2**63 - 1 and stored["edge"].type == "Long"
    assert stored["rows"].value == {"rows": rows}
    assert stored["unicode"].value == "ü € 𝄞"
