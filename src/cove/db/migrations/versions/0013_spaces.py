"""spaces: runtime state, secrets and variables of running Spaces

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 00:00:00
"""

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # reserved: filled in by the change that needs it


def downgrade() -> None:
    pass
