"""Templates and the small formatting helpers pages share."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from cove.api.shapes import PREFIX
from cove.web import sessions

HERE = Path(__file__).parent
PLURALS = {"model": "models", "dataset": "datasets", "space": "spaces"}
TYPE_OF = {v: k for k, v in PLURALS.items()}

#: No inline script anywhere; card images may come from other https sites (badges).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
       "media-src 'self' https:; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


def repo_path(repo_type: str, repo_id: str) -> str:
    """Page URL of a repo: `/ns/name`, `/datasets/ns/name`, `/spaces/ns/name`."""
    return f"/{PREFIX[repo_type]}{repo_id}"


def q(value: str) -> str:
    """A revision or file path in a URL (revisions with '/' are encoded as one segment)."""
    return quote(value, safe="")


def qpath(value: str) -> str:
    return quote(value, safe="/")


def filesize(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def number(n: int | None) -> str:
    n = n or 0
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)


def ago(dt: datetime | None) -> str:
    if dt is None:
        return ""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    secs = (datetime.now(UTC) - dt).total_seconds()
    units = (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60))
    for unit, n in units:
        if secs >= n:
            k = int(secs // n)
            return f"{k} {unit}{'s' if k > 1 else ''} ago"
    return "just now"


def iso(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M UTC") if dt else ""


def task_of(repo) -> str | None:  # noqa: ANN001
    """A model's pipeline tag, or a dataset's first task category."""
    if repo.pipeline_tag:
        return repo.pipeline_tag
    return next((t.split(":", 1)[1] for t in repo.tags or [] if str(t).startswith("task_categories:")), None)


def with_query(request: Request, **changes: object) -> str:
    """The current URL with some query parameters replaced (None removes one)."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in changes]
    params += [(k, str(v)) for k, v in changes.items() if v not in (None, "")]
    return request.url.path + ("?" + urlencode(params) if params else "")


@functools.cache
def env():  # noqa: ANN201 - jinja2.Environment
    """The templates' environment, made on the first page (jinja2 stays off the start-up path)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    e = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                    trim_blocks=True, lstrip_blocks=True)
    e.filters.update(filesize=filesize, number=number, ago=ago, iso=iso, q=q, qpath=qpath)
    e.globals.update(repo_path=repo_path, PLURALS=PLURALS, with_query=with_query, task_of=task_of)
    return e


def page(request: Request, template: str, *, status: int = 200, title: str | None = None,
         **ctx: object) -> HTMLResponse:
    v = sessions.visitor(request)
    settings = request.app.state.settings
    html = env().get_template(template).render(request=request, me=v.actor, csrf=v.csrf, title=title,
                                             endpoint=settings.public_endpoint, **ctx)
    resp = HTMLResponse(html, status_code=status)
    secure_headers(resp)
    sessions.set_csrf_cookie(request, resp)
    return resp


def secure_headers(resp) -> None:  # noqa: ANN001
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers.setdefault("Cache-Control", "no-store")
