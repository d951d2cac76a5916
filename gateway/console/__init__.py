"""The operator console (`/console`) and the interactive API docs (`/docs`), both served from files shipped with
the gateway: the console's own ES modules in `static/js/`, bundled and minified with the npm packages they import
into `static/vendor/console/` by `make console` at set-up, which also copies bpmn-js and swagger-ui-dist there.
Nothing is loaded from the internet.

The console is a static page: every action it offers is a call to the public API (`/api/processes/...`) with
the caller's credentials, so its routes need no permission of their own and stay out of the OpenAPI document.
`/docs` itself is routed in `gateway.bootstrap` (open or behind a token as PM_AUTH_OPEN_PATHS says).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from gateway.errors import ServiceUnavailable
from gateway.settings import Settings

STATIC = Path(__file__).parent / "static"
VENDOR = STATIC / "vendor"
ASSETS_URL = "/console/static"

router = APIRouter(include_in_schema=False)


def _require_vendor_assets() -> None:
    """Raises ServiceUnavailable (503) naming the set-up step when the npm assets were never built."""
    built = (VENDOR / "console" / "app.js", VENDOR / "bpmn-js" / "bpmn-navigated-viewer.production.min.js")
    if not all(path.is_file() for path in built):
        raise ServiceUnavailable(
            "The console's assets are not built: run `make console` (needs node and npm once, at set-up)"
        )


CONFIG_PLACEHOLDER = "{}<!--console-config-->"


@cache
def _page_template() -> str:
    return (STATIC / "index.html").read_text()


def console_config(settings: Settings) -> dict[str, object]:
    """What the console's sign-in needs from the gateway's settings, public values only (no secret):
    `{"oidc": {"issuer", "client_id", "scopes"}}` when PM_CONSOLE_OIDC_CLIENT_ID is set (PKCE, public client),
    else `{}` (a pasted token, or a user id with auth off)."""
    if not settings.console_oidc_client_id or not settings.auth_issuer:
        return {}
    return {
        "oidc": {
            "issuer": settings.auth_issuer,
            "client_id": settings.console_oidc_client_id,
            "scopes": settings.console_oidc_scopes,
        }
    }


@router.get("/console")
async def console_page(request: Request) -> HTMLResponse:
    """The console's single page, its configuration (`console_config`) written into it; it routes on the URL
    fragment (`/console#/incidents`) and receives the OIDC provider's redirect (`/console?code=...&state=...`)."""
    _require_vendor_assets()
    config = json.dumps(console_config(request.app.state.settings)).replace("<", "\\u003c")
    return HTMLResponse(_page_template().replace(CONFIG_PLACEHOLDER, config), headers={"Cache-Control": "no-cache"})


def swagger_ui_page() -> HTMLResponse:
    """Swagger UI for `/openapi.json` (the `/docs` page), from the locally built swagger-ui-dist (works offline).
    Raises ServiceUnavailable when the assets were never built."""
    _require_vendor_assets()
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="pm-gateway",
        swagger_js_url=f"{ASSETS_URL}/vendor/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/vendor/swagger-ui/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/vendor/swagger-ui/favicon-32x32.png",
    )


def install_console(app: FastAPI) -> None:
    """Serve the console at `/console` and its assets (and Swagger UI's) under `/console/static`, open to anyone:
    they are public files; the data behind them needs the caller's token on every API call."""
    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=STATIC, check_dir=False), name="console-static")
