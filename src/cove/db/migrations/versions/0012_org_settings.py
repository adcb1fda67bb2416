"""organization settings (private repos by default)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "org_settings",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("private_by_default", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["namespaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("org_id"),
    )


def downgrade() -> None:
    op.drop_table("org_settings")
