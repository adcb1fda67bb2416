"""Xet CAS index: stored xorbs, registered files, shards and the global-dedup index.

The per-repo sha256 → Xet file mapping is ``LfsObject.xet_hash`` (``cove.db.tables``): a repo may
reconstruct a Xet file only when one of its ``LfsObject`` rows names it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from cove.db.tables import Base, utcnow


class XetXorb(Base):
    """A validated xorb stored under ``xorbs/<hash>``; ``chunk_table`` from ``xorb.pack_chunk_table``."""

    __tablename__ = "xet_xorbs"
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    stored_size: Mapped[int] = mapped_column(BigInteger)
    unpacked_size: Mapped[int] = mapped_column(BigInteger)
    num_chunks: Mapped[int] = mapped_column(Integer)
    chunk_table: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class XetXorbScope(Base):
    """Namespaces that uploaded or referenced a xorb: global-dedup answers stay inside them."""

    __tablename__ = "xet_xorb_scopes"
    xorb_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(96), primary_key=True)


class XetFile(Base):
    """A registered Xet file: its terms packed by ``cove.xet.shard.pack_terms``."""

    __tablename__ = "xet_files"
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    terms: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class XetShard(Base):
    """An accepted shard upload, stored under ``shards/<sha256 of the body>``."""

    __tablename__ = "xet_shards"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    repo_pk: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class XetDedup(Base):
    """Global-dedup index: an eligible chunk hash → a xorb holding it."""

    __tablename__ = "xet_dedup"
    chunk_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    xorb_hash: Mapped[str] = mapped_column(String(64))


class XetStagedUpload(Base):
    """A grant body staged in the blob store, waiting for its commit (garbage once stale)."""

    __tablename__ = "xet_staged_uploads"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
