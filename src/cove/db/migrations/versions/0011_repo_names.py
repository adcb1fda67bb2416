"""repo redirects after a move; case-insensitive repo ids

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 00:00:00
"""

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # reserved: filled in by the change that needs it


def downgrade() -> None:
    pass
