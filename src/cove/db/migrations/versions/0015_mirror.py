"""mirror: repos fetched from an upstream hub, and the patterns `cove mirror add` keeps synced

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 01:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mirrored_repos",
        sa.Column("repo_pk", sa.Integer(), nullable=False),
        sa.Column("upstream", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("synced_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["repo_pk"], ["repos.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("repo_pk"),
    )
    op.create_table(
        "mirror_patterns",
        sa.Column("pattern", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pattern"),
    )


def downgrade() -> None:
    op.drop_table("mirror_patterns")
    op.drop_table("mirrored_repos")
