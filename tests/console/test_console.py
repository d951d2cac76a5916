"""The operator console in headless chromium: what an operator sees and clicks, against the real gateway."""

from __future__ import annotations

import pytest

from tests.console.conftest import ROOT, run_scenario
from tests.events.conftest import ServedGateway

# A browser run per database would only repeat the API's own database tests; SQLite keeps the suite quick.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ORDER_PROCESS = str(ROOT / "examples" / "order-process.bpmn")


async def test_the_readme_incident_flow_by_clicking(console: ServedGateway) -> None:
    """Deploy, start with a non-numeric amount, see check-amount marked failed, fix the variable's type and value,
    retry, see the incident resolved and the instance waiting at Approve order."""
    output = await run_scenario(console, "incident_flow.mjs", ORDER_PROCESS)
    assert "incident-flow: ok" in output
    incidents = (await console.client.get("/api/processes/incidents")).json()["items"]
    assert [(i["status"], i["resolution"]["type"]) for i in incidents] == [("resolved", "retry")]
