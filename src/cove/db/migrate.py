"""Schema migrations through Alembic (run at start-up and by `cove db upgrade`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from cove.backends import Backends

HERE = Path(__file__).parent


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(bk: Backends) -> None:
    """Bring the schema to the latest revision; then re-derive any stale index rows."""
    command.upgrade(alembic_config(bk.settings.db_url), "head")
    from cove.services.repos import reindex_all

    with bk.db.session() as db:
        reindex_all(db, bk)
