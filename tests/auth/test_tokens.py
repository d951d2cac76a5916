"""Bearer tokens as a client sees them: what gets in, what is refused and how (401 problem with
WWW-Authenticate: Bearer), and where the signing keys come from (OIDC discovery over HTTP, rotation,
provider outage, static JWKS file, PEM)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from gateway.auth import check_protected_mode
from gateway.errors import ConfigError
from gateway.settings import Settings
from tests.auth.conftest import AUDIENCE, Provider, bearer, public_jwk

TASKS = "/api/processes/tasks"


def assert_unauthorized(response: httpx.Response, *fragments: str) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert (body["status"], body["title"]) == (401, "Unauthorized")
    for fragment in fragments:
        assert fragment in body["detail"], body
    return body


def unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': 'k1'})}.{part(claims)}."


async def test_a_valid_token_gets_in_and_its_subject_is_the_actor(make_gateway: Any, provider: Provider) -> None:
    token = provider.mint({"sub": "carol", "roles": ["admin"]})
    async with make_gateway() as gw:
        deployed = await gw.client.post(
            "/api/processes/definitions",
            json={"bpmn_xml": APPROVAL},
            headers={**bearer(token), "X-User-Id": "mallory"},  # ignored with auth on
        )
        assert deployed.status_code == 201, deployed.text
        assert deployed.json()["definitions"][0]["deployed_by"] == "carol"
        audit = (await gw.client.get("/api/processes/audit", headers=bearer(token))).json()["items"]
        assert [(row["actor"], row["operation"]) for row in audit] == [("carol", "deploy")]
        events = (await gw.client.get("/api/processes/events", headers=bearer(token))).json()["items"]
        assert [e["actor"] for e in events] == ["carol"]


async def test_without_a_token_only_health_answers(make_gateway: Any) -> None:
    async with make_gateway(auth_open_paths=[]) as gw:
        assert (await gw.client.get("/health")).status_code == 200
        for path in ("/ready", "/metrics", "/openapi.json", "/docs", TASKS, "/api/processes/incidents"):
            assert_unauthorized(await gw.client.get(path), "bearer token")
        assert_unauthorized(await gw.client.post(TASKS + "/t/claim", json={"user_id": "x"}))
        assert_unauthorized(await gw.client.get(TASKS, headers={"Authorization": "Basic YTpi"}), "Bearer <JWT>")


async def test_open_paths_are_configurable(make_gateway: Any) -> None:
    async with make_gateway(auth_open_paths=["/metrics"]) as gw:
        assert (await gw.client.get("/metrics")).status_code == 200
        assert_unauthorized(await gw.client.get("/ready"))
    async with make_gateway() as gw:  # the default: probes, scrapers and the API docs need no token
        for path in ("/ready", "/metrics", "/openapi.json", "/docs"):
            assert (await gw.client.get(path)).status_code == 200, path


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("expired", "expired"),
        ("not yet valid", "not valid yet"),
        ("wrong issuer", "not issued by"),
        ("wrong audience", "not meant for this gateway"),
        ("no exp", "lacks the claim 'exp'"),
        ("alg none", "'none'"),
        ("HS256 with the public key", "'HS256'"),
        ("signed by another key", "Signature verification failed"),
        ("not a JWT", "not a JWT"),
        ("no subject", "'sub'"),
    ],
)
async def test_bad_tokens_are_refused(make_gateway: Any, provider: Provider, case: str, fragment: str) -> None:
    now = int(time.time())
    if case == "expired":
        token = provider.mint({"exp": now - 60})  # beyond the 10 s leeway
    elif case == "not yet valid":
        token = provider.mint({"nbf": now + 120})
    elif case == "wrong issuer":
        token = provider.mint({"iss": "https://elsewhere.example"})
    elif case == "wrong audience":
        token = provider.mint({"aud": "another-service"})
    elif case == "no exp":
        token = provider.mint({"exp": None})
    elif case == "alg none":
        token = unsigned({"iss": provider.url, "aud": AUDIENCE, "sub": "alice", "exp": now + 300})
    elif case == "HS256 with the public key":
        # The classic confusion attack: HMAC keyed with the RSA public key the attacker can download.
        pem = (
            provider.keys["k1"]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        claims = {"iss": provider.url, "aud": AUDIENCE, "sub": "alice", "exp": now + 300}
        header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode()).rstrip(b"=")
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
        import hashlib
        import hmac

        signature = base64.urlsafe_b64encode(hmac.new(pem, header + b"." + payload, hashlib.sha256).digest()).rstrip(
            b"="
        )
        token = (header + b"." + payload + b"." + signature).decode()
    elif case == "signed by another key":
        token = jwt.encode(
            {"iss": provider.url, "aud": AUDIENCE, "sub": "alice", "exp": now + 300},
            provider.keys["intruder"],
            algorithm="RS256",
            headers={"kid": "k1"},
        )
    elif case == "not a JWT":
        token = "not-a-token"
    else:
        token = provider.mint({"sub": None})
    async with make_gateway() as gw:
        assert_unauthorized(await gw.client.get(TASKS, headers=bearer(token)), fragment)


async def test_clock_skew_within_the_leeway_is_accepted(make_gateway: Any, provider: Provider) -> None:
    token = provider.mint({"exp": int(time.time()) - 5, "roles": ["task-user"]})
    async with make_gateway(auth_leeway=10) as gw:
        assert (await gw.client.get(TASKS, headers=bearer(token))).status_code == 200


async def test_an_unknown_kid_refetches_the_jwks_once_per_cooldown_then_rotation_works(
    make_gateway: Any, provider: Provider
) -> None:
    async with make_gateway(auth_jwks_refetch_cooldown=0.3) as gw:
        ok = provider.mint({"roles": ["task-user"]})
        assert (await gw.client.get(TASKS, headers=bearer(ok))).status_code == 200
        assert provider.jwks_requests == 1
        for _ in range(3):  # cached: no more fetches
            assert (await gw.client.get(TASKS, headers=bearer(ok))).status_code == 200
        assert provider.jwks_requests == 1

        rotated = provider.mint({"roles": ["task-user"]}, kid="k2")
        await _wait(0.35)  # the first fetch started a cooldown too: without waiting, whether k2 is looked for would
        # depend on how fast the requests above ran
        assert_unauthorized(await gw.client.get(TASKS, headers=bearer(rotated)), "'k2'")
        assert provider.jwks_requests == 2  # looked for it once
        assert_unauthorized(await gw.client.get(TASKS, headers=bearer(rotated)))
        assert provider.jwks_requests == 2  # within the cooldown: no second fetch

        provider.published = ["k1", "k2"]  # the provider rotates in the new key
        await _wait(0.35)
        assert (await gw.client.get(TASKS, headers=bearer(rotated))).status_code == 200
        assert provider.jwks_requests == 3


async def test_the_last_good_keys_stay_while_the_provider_is_down(make_gateway: Any, provider: Provider) -> None:
    async with make_gateway(auth_jwks_cache_seconds=0.1, auth_jwks_refetch_cooldown=0) as gw:
        token = provider.mint({"roles": ["task-user"]})
        assert (await gw.client.get(TASKS, headers=bearer(token))).status_code == 200
        provider.down = True
        await _wait(0.15)  # the cache has expired; the refresh fails
        assert (await gw.client.get(TASKS, headers=bearer(token))).status_code == 200


async def test_no_keys_ever_obtained_is_503_not_401(make_gateway: Any, provider: Provider) -> None:
    provider.down = True
    async with make_gateway() as gw:
        response = await gw.client.get(TASKS, headers=bearer(provider.mint()))
        assert response.status_code == 503, response.text
        assert "identity provider" in response.json()["detail"]


async def test_static_jwks_file_and_pem_for_air_gapped_sites(
    make_gateway: Any, provider: Provider, tmp_path: Path
) -> None:
    provider.down = True  # nothing is fetched
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public_jwk(provider.keys["k1"], "k1")]}))
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        provider.keys["k2"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    async with make_gateway(auth_jwks_file=jwks) as gw:
        assert (await gw.client.get(TASKS, headers=bearer(provider.mint({"roles": ["approver"]})))).status_code == 200
        assert_unauthorized(await gw.client.get(TASKS, headers=bearer(provider.mint(kid="k2"))), "'k2'")
    async with make_gateway(auth_public_key_file=pem) as gw:
        token = provider.mint({"roles": ["approver"]}, kid="k2")
        assert (await gw.client.get(TASKS, headers=bearer(token))).status_code == 200
        assert_unauthorized(await gw.client.get(TASKS, headers=bearer(provider.mint(kid="k1"))), "Signature")


async def test_claim_paths_map_actor_roles_and_groups(make_gateway: Any, provider: Provider) -> None:
    token = provider.mint({"preferred_username": "dora", "realm_access": {"roles": ["auditor"]}, "sub": "f00-uuid"})
    async with make_gateway(auth_actor_claim="preferred_username", auth_roles_claim="realm_access.roles") as gw:
        assert (await gw.client.get("/api/processes/audit", headers=bearer(token))).status_code == 200
        refused = await gw.client.post("/api/processes/definitions", json={"bpmn_xml": APPROVAL}, headers=bearer(token))
        assert refused.status_code == 403
        assert "'definition:deploy'" in refused.json()["detail"]
        admin = provider.mint({"preferred_username": "erin", "realm_access": {"roles": ["admin"]}})
        (row,) = (await gw.client.get("/api/processes/audit", headers=bearer(admin))).json()["items"]
        assert (row["actor"], row["operation"], row["outcome"], row["status"]) == ("dora", "deploy", "failure", 403)


def test_protected_mode_refuses_an_open_gateway_beyond_loopback() -> None:
    with pytest.raises(ConfigError, match="PM_AUTH_MODE"):
        check_protected_mode(Settings(host="0.0.0.0"))
    check_protected_mode(Settings(host="0.0.0.0", auth_mode="none"))  # open on purpose
    check_protected_mode(Settings(host="127.0.0.1"))
    check_protected_mode(Settings(host="::1"))


def test_jwt_mode_needs_an_audience_and_keys_and_only_public_key_algorithms() -> None:
    from gateway.settings import load_settings

    with pytest.raises(ConfigError, match="PM_AUTH_AUDIENCE"):
        load_settings(auth_mode="jwt", auth_issuer="http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="PM_AUTH_ISSUER"):
        load_settings(auth_mode="jwt", auth_audience="x")
    with pytest.raises(ConfigError, match="public-key algorithms only"):
        load_settings(auth_mode="jwt", auth_audience="x", auth_issuer="http://127.0.0.1:1", auth_algorithms="HS256")
    with pytest.raises(ConfigError, match="PM_AUTH_LEEWAY"):
        load_settings(auth_leeway=120)


async def _wait(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


APPROVAL = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="http://x">
  <bpmn:process id="approval" isExecutable="true"><bpmn:startEvent id="s"/></bpmn:process>
</bpmn:definitions>"""


async def test_a_provider_that_is_down_is_asked_once_per_cooldown(make_gateway: Any, provider: Provider) -> None:
    async with make_gateway(auth_jwks_cache_seconds=0.05, auth_jwks_refetch_cooldown=30) as gw:
        token = provider.mint({"roles": ["task-user"]})
        assert (await gw.client.get(TASKS, headers=bearer(token))).status_code == 200
        provider.down = True
        await _wait(0.1)
        for _ in range(5):  # the cache has expired, but the failed refresh is not repeated within the cooldown
            fresh = provider.mint({"roles": ["task-user"], "jti": str(_)})  # not remembered: checked with the keys
            assert (await gw.client.get(TASKS, headers=bearer(fresh))).status_code == 200
        assert provider.jwks_requests == 2  # the first fetch, and one failed refresh


@pytest.mark.parametrize(
    ("claims", "fragment"),
    [
        ({"sub": "x" * 256}, "'sub' claim is longer than 255 characters"),
        ({"sub": "a\u0000b"}, "'sub' claim contains a NUL character"),
        ({"tenants": ["ac\u0000me"]}, "'tenants' claim contains a NUL character"),
        ({"groups": ["sa\u0000les"]}, "'groups' claim contains a NUL character"),
    ],
)
async def test_a_token_whose_claims_cannot_be_stored_is_refused_not_a_500(
    make_gateway: Any, provider: Provider, database: Any, database_url: str, claims: dict[str, Any], fragment: str
) -> None:
    # The actor goes into audit rows (255 characters) and every claim into queries; PostgreSQL refuses NUL
    # characters. A token the issuer signed with such claims was a 500 on the first change or list.
    token = provider.mint({"sub": "alice", "roles": ["admin"], "tenants": ["acme"], **claims})
    async with make_gateway(database_url=database_url) as gw:
        deployed = await gw.client.post(
            "/api/processes/definitions", json={"bpmn_xml": APPROVAL}, headers=bearer(token)
        )
        assert_unauthorized(deployed, fragment)
        assert_unauthorized(await gw.client.get(TASKS, headers=bearer(token)), fragment)
