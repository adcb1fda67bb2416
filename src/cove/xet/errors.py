"""Errors raised by the Xet format code."""

from __future__ import annotations


class XetFormatError(ValueError):
    """Malformed, truncated or inconsistent Xet data (xorb, shard, hash string, range)."""


class XorbFormatError(XetFormatError):
    """A serialized xorb could not be parsed or does not match its announced hash."""


class ShardFormatError(XetFormatError):
    """A shard (MDB) is truncated, corrupt or exceeds a limit."""


class HashFormatError(XetFormatError):
    """A hash string is not 64 hex characters."""


class ReconstructionError(XetFormatError):
    """File terms are inconsistent with the stored xorb metadata."""
