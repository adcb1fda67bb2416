"""`/api/docs`: Swagger UI with its JS/CSS served by Cove (from the `fastapi-offline` package), not a CDN."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from cove.errors import NotFound

ASSETS = Path(fastapi_offline.__file__).parent / "static"
_TYPES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}
PREFIX = "/_static/swagger"

router = APIRouter(include_in_schema=False)


@router.get("/api/docs")
def docs() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/api/openapi.json", title="Cove API",
                               swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
                               swagger_css_url=f"{PREFIX}/swagger-ui.css",
                               swagger_favicon_url=f"{PREFIX}/favicon.png")


@router.api_route(PREFIX + "/{name}", methods=["GET", "HEAD"])
def asset(name: str) -> FileResponse:
    if name not in _TYPES:
        raise NotFound("No such file")
    return FileResponse(ASSETS / name, media_type=_TYPES[name], headers={"Cache-Control": "public, max-age=86400"})
