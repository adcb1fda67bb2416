"""auth throttle (failed sign-ins and invalid tokens per account and per client)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 21:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_throttle",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("strikes", sa.Integer(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(), nullable=True),
        sa.Column("last_failure", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_auth_throttle_blocked_until", "auth_throttle", ["blocked_until"])
    op.create_index("ix_auth_throttle_last_failure", "auth_throttle", ["last_failure"])


def downgrade() -> None:
    op.drop_index("ix_auth_throttle_last_failure", table_name="auth_throttle")
    op.drop_index("ix_auth_throttle_blocked_until", table_name="auth_throttle")
    op.drop_table("auth_throttle")
