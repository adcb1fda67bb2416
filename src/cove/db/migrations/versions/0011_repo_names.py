"""repo redirects after a move; case-insensitive repo ids

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _refuse_case_twins(table: str, columns: str) -> None:
    """Names that differ only in case cannot both stay: say which, rather than fail on the unique index."""
    rows = op.get_bind().execute(sa.text(
        f"SELECT {columns}, COUNT(*) FROM {table} GROUP BY {columns} HAVING COUNT(*) > 1")).fetchall()
    if rows:
        twins = ", ".join("/".join(str(v) for v in r[:-1]) for r in rows[:20])
        raise RuntimeError(f"{table}: names that differ only in case ({twins}); rename one of each "
                           "(earlier versions kept them apart; names are case-insensitive now, as on the Hub)")


def upgrade() -> None:
    _refuse_case_twins("namespaces", "lower(name)")
    _refuse_case_twins("repos", "type, lower(namespace), lower(name)")
    op.create_index("ux_namespaces_lower_name", "namespaces", [sa.text("lower(name)")], unique=True)
    op.create_index("ux_repos_type_lower_id", "repos", ["type", sa.text("lower(namespace)"), sa.text("lower(name)")],
                    unique=True)
    op.create_table(
        "repo_redirects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("namespace", sa.String(length=96), nullable=False),
        sa.Column("name", sa.String(length=96), nullable=False),
        sa.Column("repo_pk", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["repo_pk"], ["repos.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_repo_redirects_repo_pk", "repo_redirects", ["repo_pk"])
    op.create_index("ux_repo_redirects_type_lower_id", "repo_redirects",
                    ["type", sa.text("lower(namespace)"), sa.text("lower(name)")], unique=True)


def downgrade() -> None:
    op.drop_index("ux_repo_redirects_type_lower_id", table_name="repo_redirects")
    op.drop_index("ix_repo_redirects_repo_pk", table_name="repo_redirects")
    op.drop_table("repo_redirects")
    op.drop_index("ux_repos_type_lower_id", table_name="repos")
    op.drop_index("ux_namespaces_lower_name", table_name="namespaces")
