"""discussion_events: comments, status changes and title changes of discussions and pull requests

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 23:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "discussion_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("discussion_pk", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("author", sa.String(length=96), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["discussion_pk"], ["discussions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_discussion_events_discussion_pk", "discussion_events", ["discussion_pk"])


def downgrade() -> None:
    op.drop_index("ix_discussion_events_discussion_pk", table_name="discussion_events")
    op.drop_table("discussion_events")
