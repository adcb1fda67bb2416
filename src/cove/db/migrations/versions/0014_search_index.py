"""search: full-text indexes for substring search on repo ids and card text, and an index on last_modified

SQLite: an FTS5 table with the trigram tokenizer (`repo_search`, rowid = repos.id), kept in step with `repos`
by triggers; a quoted phrase MATCH on it is a case-insensitive substring match that uses the index.
PostgreSQL: pg_trgm GIN indexes on the expressions `services.search` filters with LIKE. Where the tokenizer
or the extension is missing, nothing is created and search keeps its LIKE scan (same results, slower).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 00:45:00
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

_ID = "lower(namespace || '/' || name)"
SQLITE = [
    "CREATE VIRTUAL TABLE repo_search USING fts5(id_text, full_text, tokenize='trigram')",
    f"INSERT INTO repo_search (rowid, id_text, full_text) SELECT id, {_ID}, lower(search_text) FROM repos",
    "CREATE TRIGGER repo_search_ins AFTER INSERT ON repos BEGIN "
    "INSERT INTO repo_search (rowid, id_text, full_text) VALUES "
    "(new.id, lower(new.namespace || '/' || new.name), lower(new.search_text)); END",
    "CREATE TRIGGER repo_search_upd AFTER UPDATE OF namespace, name, search_text ON repos BEGIN "
    "DELETE FROM repo_search WHERE rowid = old.id; "
    "INSERT INTO repo_search (rowid, id_text, full_text) VALUES "
    "(new.id, lower(new.namespace || '/' || new.name), lower(new.search_text)); END",
    "CREATE TRIGGER repo_search_del AFTER DELETE ON repos BEGIN DELETE FROM repo_search WHERE rowid = old.id; END",
]
POSTGRES = [
    f"CREATE INDEX ix_repos_id_trgm ON repos USING gin (({_ID}) gin_trgm_ops)",
    "CREATE INDEX ix_repos_search_text_trgm ON repos USING gin (search_text gin_trgm_ops)",
]


def upgrade() -> None:
    op.create_index("ix_repos_modified", "repos", ["last_modified"])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        try:
            with bind.begin_nested():
                for sql in SQLITE:
                    bind.execute(sa.text(sql))
        except sa.exc.OperationalError as exc:  # no FTS5 or no trigram tokenizer (SQLite < 3.34)
            log.warning("no full-text index for search (%s): search scans the repo table", exc)
    elif bind.dialect.name == "postgresql":
        try:
            with bind.begin_nested():
                bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
                for sql in POSTGRES:
                    bind.execute(sa.text(sql))
        except sa.exc.DBAPIError as exc:  # pg_trgm not installable by this role
            log.warning("no trigram index for search (%s): search scans the repo table", exc)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for sql in ("DROP TRIGGER IF EXISTS repo_search_ins", "DROP TRIGGER IF EXISTS repo_search_upd",
                    "DROP TRIGGER IF EXISTS repo_search_del", "DROP TABLE IF EXISTS repo_search"):
            bind.execute(sa.text(sql))
    elif bind.dialect.name == "postgresql":
        bind.execute(sa.text("DROP INDEX IF EXISTS ix_repos_id_trgm"))
        bind.execute(sa.text("DROP INDEX IF EXISTS ix_repos_search_text_trgm"))
    op.drop_index("ix_repos_modified", table_name="repos")
