"""What the Spaces API does (no HTTP here): the runtime in the Hub's shape, lifecycle requests, variables and
secrets. Requests only write ``space_states``/``space_vars``; the supervisor (`manager`) acts on them."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import Repo, SpaceState, SpaceVar, utcnow
from cove.errors import BadRequest
from cove.spaces import config as cfg
from cove.spaces import secrets
from cove.spaces.manager import SKIP_NAMESPACES, app_prefix

#: The one hardware tier: the machine Cove runs on.
HARDWARE = "cpu-basic"
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
_RESERVED = ("HF_ENDPOINT", "SPACE_ID", "SPACE_AUTHOR_NAME", "SPACE_REPO_NAME", "SPACE_HOST", "SYSTEM", "PORT",
             "GRADIO_ROOT_PATH", "GRADIO_SERVER_PORT", "GRADIO_SERVER_NAME", "PATH", "HOME", "VIRTUAL_ENV")


def host(bk: Backends, repo: Repo) -> str:
    """Where the app answers (``space_info().host``): its own origin with ``COVE_SPACES_DOMAIN``, else its path on
    Cove's; gradio_client joins paths to it, so it ends with /."""
    from cove.spaces.origin import app_origin

    own = app_origin(bk.settings, repo.repo_id)
    return f"{own}/" if own else f"{bk.settings.public_endpoint}{app_prefix(repo.repo_id)}/"


def state(db: Session, repo: Repo) -> SpaceState:
    st = db.get(SpaceState, repo.id)
    if st is None:
        st = SpaceState(repo_pk=repo.id, stage=cfg.NO_APP_FILE, wanted="running", last_visit=utcnow(),
                        updated_at=utcnow())
        db.add(st)
        db.flush()
    return st


def runtime_json(db: Session, bk: Backends, repo: Repo) -> dict:
    """The Hub's runtime object (``huggingface_hub.SpaceRuntime``)."""
    st = db.get(SpaceState, repo.id)
    stage = st.stage if st is not None else cfg.NO_APP_FILE
    if not bk.settings.spaces_run or repo.namespace in SKIP_NAMESPACES:
        stage = cfg.NO_APP_FILE if st is None else stage
    running = st is not None and st.upstream is not None
    sleep = st.sleep_time if st is not None and st.sleep_time is not None else bk.settings.spaces_sleep_after
    out = {"stage": stage, "hardware": {"current": HARDWARE if running else None, "requested": HARDWARE},
           "storage": None, "gcTimeout": sleep or None, "replicas": {"current": 1 if running else 0, "requested": 1},
           "devMode": False,
           "domains": [{"domain": host(bk, repo).split("://", 1)[-1].rstrip("/"),
                        "stage": "READY" if running else "PENDING"}]}
    if st is not None and st.sha:
        out["sha"] = st.sha
    if st is not None and st.message:
        out["errorMessage"] = st.message
    return out


def restart(db: Session, repo: Repo, *, factory: bool) -> None:
    st = state(db, repo)
    st.wanted, st.restart = "running", "factory" if factory else "restart"
    st.stage = cfg.BUILDING if factory else cfg.APP_STARTING if st.stage != cfg.NO_APP_FILE else st.stage


def pause(db: Session, repo: Repo) -> None:
    st = state(db, repo)
    st.wanted, st.stage, st.upstream = "paused", cfg.PAUSED, None  # the proxy stops now; the supervisor follows


def wake(db: Session, repo: Repo) -> bool:
    """A visit: note it; a sleeping Space is asked to start (True when it was asleep)."""
    st = state(db, repo)
    st.last_visit = utcnow()
    if st.wanted == "sleeping":
        st.wanted, st.stage = "running", cfg.APP_STARTING
        return True
    return False


#: The longest sleep time accepted (ten years): the column is a 32-bit integer.
MAX_SLEEP = 10 * 365 * 86400


def _check_sleep(seconds: object, field: str) -> None:
    """400 unless `seconds` is None, -1 (never sleep) or 0..`MAX_SLEEP`."""
    if seconds is not None and (not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < -1
                                or seconds > MAX_SLEEP):
        raise BadRequest(f"'{field}' must be a number of seconds up to {MAX_SLEEP} (or -1: never sleep)")


def set_sleep_time(db: Session, repo: Repo, seconds: object) -> None:
    _check_sleep(seconds, "seconds")
    st = state(db, repo)
    st.sleep_time = 0 if seconds == -1 else seconds


def _key(key: object) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise BadRequest("'key' must be a valid environment variable name (letters, digits and _)")
    if key in _RESERVED or key.startswith(("COVE_", "UV_")):
        raise BadRequest(f"'{key}' is set by the hub and cannot be changed")
    return key


def _text(value: object, what: str, limit: int = 65536) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequest(f"'{what}' must be a string of at most {limit} characters")
    return value


def put_var(db: Session, bk: Backends, repo: Repo, kind: str, body: dict) -> None:
    key = _key(body.get("key"))
    value = _text(body.get("value", ""), "value")
    description = body.get("description")
    if description is not None:
        description = _text(description, "description", 2000)
    row = db.get(SpaceVar, (repo.id, kind, key))
    if row is None:
        row = SpaceVar(repo_pk=repo.id, kind=kind, key=key)
        db.add(row)
    row.value = secrets.encrypt(bk.settings.data, value) if kind == "secret" else value
    if description is not None or row.description is None:
        row.description = description
    row.updated_at = utcnow()


def delete_var(db: Session, repo: Repo, kind: str, body: dict) -> None:
    key = body.get("key")
    if not isinstance(key, str):
        raise BadRequest("'key' is required")
    row = db.get(SpaceVar, (repo.id, kind, key))
    if row is not None:
        db.delete(row)


def list_vars(db: Session, repo: Repo, kind: str) -> dict:
    """{key: {value?, description, updatedAt}}; a secret's value is never answered."""
    from cove.api.shapes import iso

    out = {}
    for v in db.scalars(select(SpaceVar).where(SpaceVar.repo_pk == repo.id, SpaceVar.kind == kind)
                        .order_by(SpaceVar.key)):
        item = {"description": v.description, "updatedAt": iso(v.updated_at)}
        if kind == "variable":
            item["value"] = v.value
        out[v.key] = item
    return out


def vars_changed(db: Session, repo: Repo) -> None:
    """Variables and secrets reach the app at its next start: restart a running one (as the Hub does)."""
    st = db.get(SpaceState, repo.id)
    if st is not None and st.wanted == "running" and st.stage not in (cfg.NO_APP_FILE, cfg.CONFIG_ERROR):
        st.restart = st.restart or "restart"


def duplicate_settings(body: dict) -> tuple[list[dict], list[dict], object]:
    """A Space duplication's own `secrets`, `variables` (lists of ``{key, value, description?}``) and
    `sleepTimeSeconds`, checked before anything is copied (the source's secrets are never copied)."""
    out = []
    for field in ("secrets", "variables"):
        items = body.get(field) or []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise BadRequest(f"'{field}' must be a list of {{key, value, description}} objects")
        for i in items:
            _key(i.get("key"))
            _text(i.get("value", ""), "value")
            if i.get("description") is not None:
                _text(i["description"], "description", 2000)
        out.append(items)
    sleep = body.get("sleepTimeSeconds")
    _check_sleep(sleep, "sleepTimeSeconds")
    return out[0], out[1], sleep


def apply_duplicate_settings(db: Session, bk: Backends, repo: Repo, settings: tuple[list[dict], list[dict], object]
                             ) -> None:
    """Give the new Space the secrets, variables and sleep time the duplicating request named."""
    secrets_, variables, sleep = settings
    for kind, items in (("secret", secrets_), ("variable", variables)):
        for item in items:
            put_var(db, bk, repo, kind, item)
    if sleep is not None:
        set_sleep_time(db, repo, sleep)
