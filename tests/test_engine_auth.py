"""Outbound engine authentication: basic, bearer, OAuth2 client credentials with a cached token."""

from __future__ import annotations

import httpx
import pytest
import respx

from gateway.engine_auth import build_auth
from gateway.errors import EngineError
from gateway.resilience import EngineBreaker, EngineHttp
from gateway.settings import AuthConfig, EngineConfig

TOKEN_URL = "http://idp.test/realms/camunda/protocol/openid-connect/token"
BASE = "http://zeebe.test/v2"


def make_http(auth: dict[str, object]) -> EngineHttp:
    config = EngineConfig(name="c8", type="zeebe", url=BASE, auth=auth)
    return EngineHttp(config, breaker=EngineBreaker("c8", 5, 30), auth=build_auth(config.auth, engine="c8"))


@respx.mock
async def test_basic_and_bearer_send_the_configured_credentials() -> None:
    route = respx.get(f"{BASE}/topology").respond(200, json={})
    basic = make_http({"type": "basic", "username": "demo", "password": "s3cret"})
    await basic.json("GET", "/topology", operation="health")
    assert route.calls.last.request.headers["authorization"] == httpx.BasicAuth("demo", "s3cret")._auth_header
    bearer = make_http({"type": "bearer", "token": "abc"})
    await bearer.json("GET", "/topology", operation="health")
    assert route.calls.last.request.headers["authorization"] == "Bearer abc"


OAUTH = {
    "type": "oauth2",
    "token_url": TOKEN_URL,
    "client_id": "gateway",
    "client_secret": "shh",
    "audience": "orchestration-api",
}


@respx.mock
async def test_oauth2_token_is_fetched_once_and_reused() -> None:
    token = respx.post(TOKEN_URL).respond(200, json={"access_token": "t1", "expires_in": 300})
    api = respx.get(f"{BASE}/topology").respond(200, json={})
    http = make_http(OAUTH)
    for _ in range(3):
        await http.json("GET", "/topology", operation="health")
    assert token.call_count == 1
    form = dict(httpx.QueryParams(token.calls.last.request.content.decode()))
    assert form == {
        "grant_type": "client_credentials",
        "client_id": "gateway",
        "client_secret": "shh",
        "audience": "orchestration-api",
    }
    assert api.calls.last.request.headers["authorization"] == "Bearer t1"


@respx.mock
async def test_oauth2_token_is_refreshed_before_it_expires() -> None:
    token = respx.post(TOKEN_URL)
    token.side_effect = [
        httpx.Response(200, json={"access_token": "short", "expires_in": 20}),  # inside the 30 s margin
        httpx.Response(200, json={"access_token": "fresh", "expires_in": 300}),
    ]
    api = respx.get(f"{BASE}/topology").respond(200, json={})
    http = make_http(OAUTH)
    await http.json("GET", "/topology", operation="health")
    await http.json("GET", "/topology", operation="health")
    assert token.call_count == 2
    assert api.calls.last.request.headers["authorization"] == "Bearer fresh"


@respx.mock
async def test_a_revoked_token_is_replaced_once_on_401() -> None:
    token = respx.post(TOKEN_URL)
    token.side_effect = [
        httpx.Response(200, json={"access_token": "revoked", "expires_in": 300}),
        httpx.Response(200, json={"access_token": "new", "expires_in": 300}),
    ]
    api = respx.get(f"{BASE}/topology")
    api.side_effect = lambda request: httpx.Response(
        401 if request.headers["authorization"] == "Bearer revoked" else 200, json={}
    )
    http = make_http(OAUTH)
    assert await http.json("GET", "/topology", operation="health") == {}
    assert token.call_count == 2


@respx.mock
async def test_a_token_endpoint_without_a_token_is_a_502() -> None:
    respx.post(TOKEN_URL).respond(401, json={"error": "invalid_client"})
    http = make_http(OAUTH)
    with pytest.raises(EngineError) as caught:
        await http.json("GET", "/topology", operation="health")
    assert caught.value.engine_status == 401
    assert "invalid_client" in (caught.value.engine_message or "")


def test_secrets_are_not_printed() -> None:
    config = AuthConfig(type="basic", username="demo", password="s3cret")
    assert "s3cret" not in repr(config) and "s3cret" not in str(config.model_dump())
