"""lfs_objects.sha256_verified: whether the server itself hashed the bytes a row serves

Rows without a Xet hash serve the blob ``lfs/<oid>``, which is only ever written after hashing: verified.
Rows with one came from a shard's sha256 claim (or a conversion the server cannot tell apart now): unknown.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lfs_objects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sha256_verified", sa.Boolean(), nullable=True))
    op.execute("UPDATE lfs_objects SET sha256_verified = (xet_hash IS NULL)")


def downgrade() -> None:
    with op.batch_alter_table("lfs_objects", schema=None) as batch_op:
        batch_op.drop_column("sha256_verified")
