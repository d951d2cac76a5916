"""BPMN uploads: no DOCTYPE of any kind, and BPMN sent as JSON text decoded as its XML declaration says."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import APPROVAL
from tests.api.test_api import assert_problem

DEFINITIONS = APPROVAL.split(b"\n", 1)[1]  # without the XML declaration

DOCTYPES = {
    "internal-subset": b'<!DOCTYPE definitions [<!ENTITY who "world">]>\n',
    "external-dtd": b'<!DOCTYPE definitions SYSTEM "http://127.0.0.1:9/bpmn.dtd">\n',
    "parameter-entity": b'<!DOCTYPE definitions [<!ENTITY % remote SYSTEM "file:///etc/passwd"> %remote;]>\n',
    "bare": b"<!DOCTYPE definitions>\n",
}


@pytest.mark.parametrize("doctype", list(DOCTYPES), ids=list(DOCTYPES))
async def test_any_doctype_is_refused_and_nothing_is_stored(client: httpx.AsyncClient, doctype: str) -> None:
    xml = b'<?xml version="1.0" encoding="UTF-8"?>\n' + DOCTYPES[doctype] + DEFINITIONS
    response = await client.post("/api/processes/definitions", files={"file": ("p.bpmn", xml, "application/xml")})
    assert_problem(response, 400, "DOCTYPE")
    as_json = await client.post("/api/processes/definitions", json={"bpmn_xml": xml.decode()})
    assert_problem(as_json, 400, "DOCTYPE")
    assert (await client.get("/api/processes/definitions")).json()["total"] == 0


def named(encoding: str) -> str:
    return f'<?xml version="1.0" encoding="{encoding}"?>\n' + DEFINITIONS.decode().replace(
        'name="Approval"', 'name="Bestellprüfung"'
    )


@pytest.mark.parametrize("encoding", ["ISO-8859-1", "windows-1252", "UTF-16", "utf-8"])
async def test_json_bpmn_text_declaring_another_encoding_is_read_as_written(
    client: httpx.AsyncClient, encoding: str
) -> None:
    response = await client.post("/api/processes/definitions", json={"bpmn_xml": named(encoding)})
    assert response.status_code == 201, response.text
    (definition,) = response.json()["definitions"]
    assert definition["name"] == "Bestellprüfung"
    stored = await client.get(f"/api/processes/definitions/{definition['id']}/xml")
    assert "Bestellprüfung" in stored.content.decode(encoding)


async def test_multipart_bytes_in_latin_1_are_read_as_declared(client: httpx.AsyncClient) -> None:
    xml = named("ISO-8859-1").encode("latin-1")
    response = await client.post("/api/processes/definitions", files={"file": ("p.bpmn", xml, "application/xml")})
    assert response.status_code == 201, response.text
    assert response.json()["definitions"][0]["name"] == "Bestellprüfung"


@pytest.mark.parametrize(
    ("encoding", "fragment"), [("US-ASCII", "cannot represent"), ("x-klingon", "unknown encoding")]
)
async def test_json_bpmn_text_its_declared_encoding_cannot_hold_is_refused(
    client: httpx.AsyncClient, encoding: str, fragment: str
) -> None:
    response = await client.post("/api/processes/definitions", json={"bpmn_xml": named(encoding)})
    assert_problem(response, 400, fragment, encoding)
