"""spaces: runtime state, secrets and variables of running Spaces

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "space_states",
        sa.Column("repo_pk", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=24), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("sha", sa.String(length=40), nullable=True),
        sa.Column("built_sha", sa.String(length=40), nullable=True),
        sa.Column("wanted", sa.String(length=12), nullable=False),
        sa.Column("sleep_time", sa.Integer(), nullable=True),
        sa.Column("restart", sa.String(length=8), nullable=True),
        sa.Column("upstream", sa.String(length=300), nullable=True),
        sa.Column("last_visit", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["repo_pk"], ["repos.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("repo_pk"),
    )
    op.create_table(
        "space_vars",
        sa.Column("repo_pk", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["repo_pk"], ["repos.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("repo_pk", "kind", "key"),
    )


def downgrade() -> None:
    op.drop_table("space_vars")
    op.drop_table("space_states")
