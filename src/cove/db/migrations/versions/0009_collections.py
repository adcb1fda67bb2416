"""collections and their items

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.String(length=24), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=150), nullable=False),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("theme", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["namespace_id"], ["namespaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("namespace_id", "title"),
        sa.UniqueConstraint("object_id"),
    )
    op.create_index("ix_collections_namespace_id", "collections", ["namespace_id"])
    op.create_index("ix_collections_updated_at", "collections", ["updated_at"])
    op.create_table(
        "collection_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.String(length=24), nullable=False),
        sa.Column("collection_pk", sa.Integer(), nullable=False),
        sa.Column("item_type", sa.String(length=16), nullable=False),
        sa.Column("repo_pk", sa.Integer(), nullable=True),
        sa.Column("ref_collection_pk", sa.Integer(), nullable=True),
        sa.Column("paper_id", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["collection_pk"], ["collections.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["ref_collection_pk"], ["collections.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["repo_pk"], ["repos.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("collection_pk", "paper_id"),
        sa.UniqueConstraint("collection_pk", "ref_collection_pk"),
        sa.UniqueConstraint("collection_pk", "repo_pk"),
        sa.UniqueConstraint("object_id"),
    )
    for col in ("collection_pk", "repo_pk", "ref_collection_pk", "paper_id"):
        op.create_index(f"ix_collection_items_{col}", "collection_items", [col])


def downgrade() -> None:
    for col in ("collection_pk", "repo_pk", "ref_collection_pk", "paper_id"):
        op.drop_index(f"ix_collection_items_{col}", table_name="collection_items")
    op.drop_table("collection_items")
    op.drop_index("ix_collections_updated_at", table_name="collections")
    op.drop_index("ix_collections_namespace_id", table_name="collections")
    op.drop_table("collections")
