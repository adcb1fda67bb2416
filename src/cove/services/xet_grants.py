"""Xorb upload grants: the client asks for a grant, PUTs the body to its URL, then commits the grant.

The grant URL is a signed Cove route. On the local disk and on an object store (both have
``blobs.writer``) the body is validated while it streams to ``xorbs/<xorb>`` itself (`store_direct`: no
staging object, no read back) and the commit only adds the xorb to the caller's scope. A blob store
without a writer stages the body under ``xorb-staging/<xorb>-<grant>``; the commit then validates it
exactly like a direct upload and publishes it under ``xorbs/<xorb>`` by a rename.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import time
from typing import BinaryIO
from urllib.parse import quote

from cove.backends import Backends
from cove.db.xet_tables import XetStagedUpload
from cove.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed
from cove.services import xet
from cove.storage.interfaces import BlobVerificationError
from cove.xet import tokens  # xorb (numpy) where used: off start-up

GRANT_TTL = 3600
_GRANT_ID = re.compile(r"^[0-9a-f]{32}$")


def staging_key(xorb_hex: str, grant_id: str) -> str:
    return f"xorb-staging/{xorb_hex}-{grant_id}"


def create_grant(bk: Backends, claims: tokens.XetClaims, *, prefix: str, xorb_hex: str, request: object) -> dict | None:
    """A PUT grant for one xorb body, or None when the xorb is already stored (nothing to upload)."""
    if not isinstance(request, dict) or not isinstance(request.get("length"), int):
        raise BadRequest("A grant request needs an integer 'length'")
    length = request["length"]
    h = xet.check_xorb_upload(bk, prefix=prefix, xorb_hex=xorb_hex, length=length)
    if length <= 0:
        raise BadRequest("A xorb body cannot be empty")
    if xet.xorb_known_to(bk, claims, h):
        return None
    grant_id = secrets.token_hex(16)
    exp = int(time.time()) + GRANT_TTL
    repo = xet.repo_key(claims)
    sig = tokens.grant_signature(bk.settings.signing_secret, grant_id, h, length, repo, exp)
    xet.count("grants_issued", repo=repo)
    url = f"{xet.cas_url(bk)}/xorb-uploads/{h}/{grant_id}?n={length}&repo={quote(repo, safe='')}&exp={exp}&sig={sig}"
    return {"id": grant_id, "method": "PUT", "url": url, "headers": {}}


def check_upload(bk: Backends, *, xorb_hex: str, grant_id: str, n: str, repo: str, exp: str, sig: str) -> int:
    """Validate a grant URL (403 when bad or expired; 412 when already done); return the body length."""
    from cove.xet import xorb
    try:
        h = xet.check_xorb_upload(bk, prefix="default", xorb_hex=xorb_hex, length=None)
        length, expiry = int(n), int(exp)
    except (ValueError, BadRequest):
        raise Forbidden("Invalid upload grant") from None
    expected = tokens.grant_signature(bk.settings.signing_secret, grant_id, h, length, repo, expiry)
    if not _GRANT_ID.match(grant_id) or expiry <= time.time() or not hmac.compare_digest(expected, sig):
        raise Forbidden("Upload grant is invalid or expired")
    if length > xorb.MAX_XORB_SERIALIZED:
        raise PayloadTooLarge("Xorb too large")
    if bk.blobs.exists(staging_key(h, grant_id)) or _marked(bk, staging_key(h, grant_id)):
        raise PreconditionFailed("Already uploaded")
    return length


def _marked(bk: Backends, key: str) -> bool:
    with bk.db.session() as db:
        return db.get(XetStagedUpload, key) is not None


def store_direct(bk: Backends, *, xorb_hex: str, grant_id: str, length: int, body: BinaryIO, repo: str) -> None:
    """A grant body on an object store: verified while it streams to ``xorbs/<xorb>`` itself
    (`xet.put_xorb_streaming`), no staging object. The grant's row (no bytes under its key) tells the commit
    that this grant's body arrived whole and valid; the commit adds the xorb to the caller's scope."""
    key = staging_key(xorb_hex.lower(), grant_id)
    with bk.db.session() as db:  # recorded first: a body that never commits is garbage-collected as unused
        if db.get(XetStagedUpload, key) is None:
            db.add(XetStagedUpload(key=key, size=length))
    try:
        xet.put_xorb_streaming(bk, xorb_hex, body, length=length, repo=repo)
    except BaseException:
        _forget(bk, key)
        raise


def stage_upload(bk: Backends, *, xorb_hex: str, grant_id: str, length: int, body: BinaryIO,
                 path: str | None = None) -> None:
    """Keep the body under its staging key. `path`: the body is that local file in the blob store's temp
    folder, moved there by a rename (`publish_file`), not copied."""
    key = staging_key(xorb_hex.lower(), grant_id)
    with bk.db.session() as db:  # recorded first, so garbage collection finds abandoned bodies
        if db.get(XetStagedUpload, key) is None:
            db.add(XetStagedUpload(key=key, size=length))
    try:
        if path is not None:
            size = os.path.getsize(path)
            if size != length:
                raise BlobVerificationError(f"body has {size} bytes, expected {length}")
            bk.blobs.publish_file(key, path)
        else:
            bk.blobs.put_verified(key, body, size=length)
    except BlobVerificationError as exc:
        _forget(bk, key)
        raise BadRequest(f"Upload does not match its grant: {exc}") from None


def _forget(bk: Backends, key: str) -> None:
    bk.blobs.delete(key)
    with bk.db.session() as db:
        row = db.get(XetStagedUpload, key)
        if row is not None:
            db.delete(row)


def commit_grant(bk: Backends, claims: tokens.XetClaims, *, prefix: str, xorb_hex: str, grant_id: str) -> bool:
    """Validate and publish a staged body. 404 when nothing was uploaded for this grant."""
    h = xet.check_xorb_upload(bk, prefix=prefix, xorb_hex=xorb_hex, length=None)
    if not _GRANT_ID.match(grant_id):
        raise NotFound("Unknown grant")
    key = staging_key(h, grant_id)
    if _marked(bk, key) and not bk.blobs.exists(key) and xet.xorb_exists(bk, h):  # `store_direct`: verified, stored
        with bk.db.session() as db:
            namespace = xet.scope_of(db, claims)
        xet.add_scope(bk, [h], namespace)
        _forget(bk, key)
        xet.count("xorbs_inserted", repo=xet.repo_key(claims))
        xet.count("grants_committed", repo=xet.repo_key(claims))
        return True
    if not bk.blobs.exists(key):
        if xet.xorb_known_to(bk, claims, h):
            return False
        raise NotFound("No data was uploaded for this grant")
    try:
        with bk.blobs.open(key) as fh:  # a local staged body becomes the xorb by a rename
            inserted = xet.store_xorb(bk, claims, xorb_hex=h, body=fh, path=bk.blobs.local_path(key))
        xet.count("grants_committed", repo=xet.repo_key(claims))
        return inserted
    finally:
        _forget(bk, key)
