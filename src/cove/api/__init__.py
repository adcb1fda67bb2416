"""HTTP routers, one module per Hub API area. Handlers parse and shape; services decide."""

from __future__ import annotations

import importlib
import importlib.util

from fastapi import APIRouter

# Order matters where paths overlap: specific API routes first, the web pages and git last.
_MODULES = (
    "cove.api.health",
    "cove.api.auth",
    "cove.api.webhooks",  # before the repo routes: /api/{plural}/{ns}/{name} would take /api/settings/...
    "cove.api.xet",
    "cove.api.cas",
    "cove.api.tasks",
    "cove.api.organizations",
    "cove.api.storage",
    "cove.api.lfs_files",
    "cove.api.duplicate",
    "cove.api.collections",
    "cove.api.spaces",
    "cove.api.repos",
    "cove.api.gating",
    "cove.api.search",
    "cove.api.refs",
    "cove.api.commits",
    "cove.api.compare",
    "cove.api.discussions",
    "cove.api.lfs",
    "cove.api.git_http",
    "cove.api.files",
    "cove.api.inference",  # POST /models/{ns}/{name}, /v1/...: before the web pages
    "cove.web.apidocs",  # `/api/docs` and its Swagger UI assets (app.py turns FastAPI's CDN-backed page off)
    "cove.web.pages",
)


def routers() -> list[APIRouter]:
    out = []
    for name in _MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                continue
        except ModuleNotFoundError:  # a parent package (e.g. cove.web) is not there at all
            continue
        out.append(importlib.import_module(name).router)
    return out
