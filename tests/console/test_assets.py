"""The console and Swagger UI are served from the gateway's own files: no page refers to another host."""

from __future__ import annotations

import re

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.bootstrap import create_app
from gateway.db import Database
from gateway.settings import Settings

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.mark.parametrize("page", ["/docs", "/console"])
async def test_pages_load_every_asset_from_the_gateway_itself(database: Database, page: str) -> None:
    app = create_app(Settings(database_url=database.url, auto_migrate=False, engine_type="embedded"))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client,
    ):
        response = await client.get(page)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        assets = re.findall(r'(?:src|href)="([^"#]+)"', response.text)
        assert assets, "the page loads scripts and stylesheets"
        assert not [a for a in assets if "//" in a], "every asset is a path on the gateway, none on a CDN"
        for asset in assets:
            assert (await client.get(asset)).status_code == 200, asset
