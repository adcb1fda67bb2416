"""Xet formats: hashes, content-defined chunking, xorbs, shards and reconstruction.

Pure library code (no HTTP, no database). See ``docs/xet-spec.md`` in the shared docs for the protocol.
"""

from cove.xet.errors import XetFormatError

__all__ = ["XetFormatError"]
