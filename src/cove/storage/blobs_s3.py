"""S3-compatible blob store (AWS S3, MinIO, Ceph RGW, R2, moto): verify locally, then publish.

Writes stream into a local temp file while hashing. Only a body whose sha256 and size check out is
uploaded, under its final key, in one ``PutObject`` or one multipart upload: an S3 object appears
atomically when the upload completes, so readers never see a partial or unverified blob. A failed
multipart upload is aborted by boto3; a process killed mid-upload leaves an *incomplete* multipart upload
(invisible, but billed), which a bucket lifecycle rule ``AbortIncompleteMultipartUpload`` cleans up.

Reads are ranged ``GetObject`` calls. :meth:`S3BlobStore.open` returns a seekable buffered reader that
keeps one streaming response open while reading forward and re-issues a ranged GET after a seek.
:meth:`S3BlobStore.url` hands out presigned GET URLs so ``/resolve`` can redirect LFS downloads.

Direct transfers (issue 17): :meth:`S3BlobStore.range_url` (presigned GETs of one signed byte range, for
Xet reconstructions), :meth:`S3BlobStore.start_multipart` / :meth:`S3BlobStore.part_url` /
:meth:`S3BlobStore.complete_multipart` (native multipart uploads whose parts clients PUT to the store),
:meth:`S3BlobStore.copy` (server-side, ``If-Match``) and :meth:`S3BlobStore.writer` (a sink streamed to a
multipart upload that appears only on ``commit()``: xorbs verified on the way).

Credentials and region come from boto3's usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``, ``~/.aws``, instance roles).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from cove.storage.interfaces import BlobInfo, BlobVerificationError

_COPY_CHUNK = 1 << 20
_MISSING = {"404", "NoSuchKey", "NotFound"}
#: Default lifetime of a presigned download URL, in seconds.
URL_TTL = 3600


def _check_key(key: str) -> str:
    """The same key rules as the local store, so a key valid in one backend is valid in the other."""
    ns, _, name = key.partition("/")
    if not ns or not name or "/" in name or name.startswith(".") or ".." in key:
        raise ValueError(f"invalid blob key {key!r}")
    return key


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class S3BlobStore:
    """Blobs under ``s3://<bucket>/<prefix><namespace>/<name>``."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        tmp_dir: str | Path | None = None,
        *,
        region_name: str | None = None,
        public_endpoint_url: str | None = None,
        redirect: bool = True,
        client: Any = None,
    ) -> None:
        """
        Args:
            bucket: an existing bucket.
            prefix: key prefix inside the bucket (``"cove/"``); a trailing slash is added when missing.
            endpoint_url: S3 API endpoint; None for AWS.
            tmp_dir: where uploads are staged while they are hashed (needs room for the largest blob).
            region_name: SigV4 region; None uses boto3's default chain.
            public_endpoint_url: endpoint clients reach, for presigned URLs (default ``endpoint_url``).
            redirect: whether :meth:`url` hands out presigned URLs (``/resolve`` then answers 302).
            client: a ready boto3 S3 client (tests); built from the other arguments when None.
        """
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.endpoint_url = endpoint_url
        self.redirect = redirect
        self.tmp = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.gettempdir()) / "cove-s3"
        self.tmp.mkdir(parents=True, exist_ok=True)
        # Path-style addressing works with every S3-compatible server; AWS accepts it too.
        config = Config(signature_version="s3v4", max_pool_connections=64,
                        retries={"max_attempts": 5, "mode": "standard"},
                        s3={"addressing_style": "path"} if endpoint_url else {})
        session = boto3.session.Session(region_name=region_name)
        self.client = client or session.client("s3", endpoint_url=endpoint_url, config=config)
        if public_endpoint_url and public_endpoint_url != endpoint_url:
            # Presigned URLs are signed for a host: sign with the endpoint the client will call.
            self._signer = session.client("s3", endpoint_url=public_endpoint_url, config=config)
        else:
            self._signer = self.client
        self._transfer = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20,
                                        max_concurrency=8)

    def _obj(self, key: str) -> str:
        return self.prefix + _check_key(key)

    # -- metadata ---------------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def stat(self, key: str) -> BlobInfo | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._obj(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise
        return BlobInfo(key, int(head["ContentLength"]))

    # -- writes -----------------------------------------------------------------------------------

    def put_verified(
        self, key: str, stream: BinaryIO, *, sha256: str | None = None, size: int | None = None
    ) -> BlobInfo:
        obj = self._obj(key)
        digest = hashlib.sha256()
        total = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="up-")
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    block = stream.read(_COPY_CHUNK)
                    if not block:
                        break
                    total += len(block)
                    if size is not None and total > size:
                        raise BlobVerificationError(f"body is larger than the announced size {size}")
                    digest.update(block)
                    out.write(block)
            if size is not None and total != size:
                raise BlobVerificationError(f"body has {total} bytes, expected {size}")
            if sha256 is not None and digest.hexdigest() != sha256:
                raise BlobVerificationError("sha256 of the body does not match the object id")
            # Keys are content-addressed and write-once: an object already there holds these bytes.
            existing = self.stat(key)
            if existing is None or existing.size != total:
                self.client.upload_file(
                    tmp_name, self.bucket, obj, Config=self._transfer,
                    ExtraArgs={"Metadata": {"sha256": digest.hexdigest()},
                               "ContentType": "application/octet-stream"},
                )
        finally:
            Path(tmp_name).unlink(missing_ok=True)
        return BlobInfo(key, total)

    def put_bytes(self, key: str, data: bytes) -> BlobInfo:
        return self.put_verified(key, io.BytesIO(data))

    # -- reads ------------------------------------------------------------------------------------

    def _get(self, key: str, start: int, end: int | None) -> Any:
        """A ``GetObject`` response for ``[start, end)`` (``end=None``: to the end); None past the end."""
        from botocore.exceptions import ClientError

        rng = f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._obj(key), Range=rng)
        except ClientError as exc:
            code = _code(exc)
            if code in _MISSING:
                raise KeyError(key) from exc
            if code == "InvalidRange":  # start at or past the end of the object
                return None
            raise

    def open(self, key: str) -> BinaryIO:
        info = self.stat(key)
        if info is None:
            raise KeyError(key)
        return io.BufferedReader(_RangedReader(self, key, info.size), buffer_size=_COPY_CHUNK)  # type: ignore[return-value]

    def read_range(self, key: str, start: int, end: int) -> bytes:
        if end <= start:
            # S3 ignores an empty or inverted Range and would send the whole object.
            if not self.exists(key):
                raise KeyError(key)
            return b""
        resp = self._get(key, start, end)
        if resp is None:
            return b""
        with resp["Body"] as body:
            return body.read()

    def iter_range(self, key: str, start: int, end: int, chunk: int = _COPY_CHUNK) -> Iterator[bytes]:
        if end <= start:
            if not self.exists(key):
                raise KeyError(key)
            return
        resp = self._get(key, start, end)
        if resp is None:
            return
        body = resp["Body"]
        try:
            yield from body.iter_chunks(chunk)
        finally:
            body.close()

    def local_path(self, key: str) -> str | None:
        return None

    def url(self, key: str, *, expires: int = URL_TTL, filename: str | None = None) -> str | None:
        """A presigned GET URL when redirects are enabled, else None (the server streams the bytes)."""
        if not self.redirect:
            return None
        return self.presigned_url(key, expires, filename=filename)

    def presigned_url(self, key: str, expires: int = URL_TTL, *, filename: str | None = None) -> str:
        """A self-authenticating GET URL (supports ``Range``), valid for ``expires`` seconds.

        The object is not checked: a URL for a missing key answers 404 from S3.
        """
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._obj(key)}
        if filename:
            params["ResponseContentDisposition"] = f"inline; filename*=UTF-8''{quote(filename)}"
        return self._signer.generate_presigned_url("get_object", Params=params, ExpiresIn=expires)

    # -- direct transfers: the client moves the bytes, Cove only signs (issue 17) -----------------

    def range_url(self, key: str, start: int, end: int, expires: int = URL_TTL) -> str | None:
        """A presigned GET of bytes ``[start, end]`` (inclusive), or None when redirects are off.

        The ``Range`` header is one of the signed headers: the URL reads exactly that window (a request
        with another or no ``Range`` fails the signature), as Cove's own ``/cas/fetch`` windows do.
        """
        if not self.redirect:
            return None
        params = {"Bucket": self.bucket, "Key": self._obj(key), "Range": f"bytes={start}-{end}"}
        return self._signer.generate_presigned_url("get_object", Params=params, ExpiresIn=expires)

    def start_multipart(self, key: str) -> str | None:
        """Open a native multipart upload for ``key`` (its upload id), or None when redirects are off."""
        if not self.redirect:
            return None
        resp = self.client.create_multipart_upload(Bucket=self.bucket, Key=self._obj(key),
                                                   ContentType="application/octet-stream")
        return str(resp["UploadId"])

    def part_url(self, key: str, upload_id: str, part: int, expires: int = URL_TTL, *,
                 length: int | None = None) -> str:
        """A presigned ``UploadPart`` URL: the client PUTs part ``part`` to the store, ETag in the answer.
        ``length``: ``Content-Length`` is a signed header, so the part must have exactly that many bytes (a
        client cannot park more in the bucket than it announced)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._obj(key), "UploadId": upload_id,
                                  "PartNumber": part}
        if length is not None:
            params["ContentLength"] = length
        return self._signer.generate_presigned_url("upload_part", Params=params, ExpiresIn=expires)

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> str:
        """``CompleteMultipartUpload`` with the client's (number, ETag) pairs; the assembled object's ETag: from
        the store's answer when this call completed it (no HEAD), from one HEAD when the upload is gone but
        ``key`` exists (completed before: a retry). ``KeyError`` when the upload is unknown and nothing is
        stored; ``BlobVerificationError`` for parts the store does not have."""
        from botocore.exceptions import ClientError

        body = {"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]}
        try:
            done = self.client.complete_multipart_upload(Bucket=self.bucket, Key=self._obj(key),
                                                         UploadId=upload_id, MultipartUpload=body)
        except ClientError as exc:
            code = _code(exc)
            if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML"):
                raise BlobVerificationError(f"the store refused the parts ({code})") from None
            if code == "NoSuchUpload":
                done = {}
            else:
                raise
        etag = done.get("ETag") or self.etag(key)  # a retry, or a store that leaves it out: one HEAD
        if etag is None:
            raise KeyError(key)
        return str(etag)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self._abort(self._obj(key), upload_id)

    def _abort(self, obj: str, upload_id: str) -> None:
        """``AbortMultipartUpload`` of the object ``obj`` (the prefix included); one already gone is fine."""
        from botocore.exceptions import ClientError

        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=obj, UploadId=upload_id)
        except ClientError as exc:
            if _code(exc) != "NoSuchUpload":
                raise

    def abort_stale_multipart(self, namespace: str, older_than: float) -> int:
        """Abort the open multipart uploads under ``<namespace>/`` started more than ``older_than`` seconds ago
        (clients that never completed, a process killed mid-xorb); how many were aborted."""
        import time

        paginator = self.client.get_paginator("list_multipart_uploads")
        cutoff, n = time.time() - older_than, 0
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{namespace}/"):
            for up in page.get("Uploads") or []:
                if up["Initiated"].timestamp() < cutoff:
                    self._abort(up["Key"], up["UploadId"])
                    n += 1
        return n

    def delete_stale(self, namespace: str, older_than: float) -> tuple[int, int]:
        """Delete the objects under ``<namespace>/`` last written more than ``older_than`` seconds ago (staging
        objects a killed completion left); (objects, bytes)."""
        import time

        cutoff, n, freed = time.time() - older_than, 0, 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{namespace}/"):
            for obj in page.get("Contents") or []:
                if obj["LastModified"].timestamp() < cutoff:
                    self.client.delete_object(Bucket=self.bucket, Key=obj["Key"])
                    n, freed = n + 1, freed + int(obj["Size"])
        return n, freed

    def etag(self, key: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            return str(self.client.head_object(Bucket=self.bucket, Key=self._obj(key))["ETag"])
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise

    def copy(self, src: str, dst: str, *, if_match: str | None = None, size: int | None = None) -> None:
        """Server-side copy (no byte passes through Cove). ``if_match``: only if ``src`` still has that ETag
        (the bytes that were verified); else ``BlobVerificationError``. ``size``: ``src``'s, when the caller
        knows it (spares a HEAD)."""
        from botocore.exceptions import ClientError

        source = {"Bucket": self.bucket, "Key": self._obj(src)}
        extra = {"CopySourceIfMatch": if_match} if if_match else {}
        try:
            if size is None:
                info = self.stat(src)
                size = info.size if info is not None else 0
            if size > 5 << 30:  # CopyObject's limit: a managed multipart copy
                self.client.copy(source, self.bucket, self._obj(dst), ExtraArgs=extra or None, Config=self._transfer)
            else:
                self.client.copy_object(Bucket=self.bucket, Key=self._obj(dst), CopySource=source, **extra)
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "412"):
                raise BlobVerificationError(f"{src} changed after it was verified") from None
            raise

    def writer(self, key: str, part_size: int = 8 << 20) -> _MultipartWriter:
        """A file-like sink that streams to ``key`` as a multipart upload; the object appears only on
        ``commit()`` (one ``PutObject`` when the body fits one part), nothing on ``abort()``."""
        return _MultipartWriter(self, self._obj(key), part_size)

    # -- deletes ----------------------------------------------------------------------------------

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._obj(key))


class _MultipartWriter:
    """Bytes written go up in parts as they arrive (one part buffered); invisible until :meth:`commit`."""

    def __init__(self, store: S3BlobStore, obj: str, part_size: int) -> None:
        self._store, self._obj, self._part_size = store, obj, max(part_size, 5 << 20)
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        self._buf += data
        self.size += len(data)
        while len(self._buf) >= self._part_size:
            self._send(bytes(self._buf[: self._part_size]))
            del self._buf[: self._part_size]

    def _send(self, data: bytes) -> None:
        c, b = self._store.client, self._store.bucket
        if self._upload_id is None:
            self._upload_id = c.create_multipart_upload(Bucket=b, Key=self._obj,
                                                        ContentType="application/octet-stream")["UploadId"]
        n = len(self._parts) + 1
        resp = c.upload_part(Bucket=b, Key=self._obj, UploadId=self._upload_id, PartNumber=n, Body=data)
        self._parts.append({"PartNumber": n, "ETag": resp["ETag"]})

    def commit(self) -> None:
        c, b = self._store.client, self._store.bucket
        if self._upload_id is None:
            c.put_object(Bucket=b, Key=self._obj, Body=bytes(self._buf), ContentType="application/octet-stream")
        else:
            if self._buf:
                self._send(bytes(self._buf))
            c.complete_multipart_upload(Bucket=b, Key=self._obj, UploadId=self._upload_id,
                                        MultipartUpload={"Parts": self._parts})
        self._buf = bytearray()

    def abort(self) -> None:
        self._buf = bytearray()
        if self._upload_id is not None:
            # Best effort: a lifecycle rule or `abort_stale_multipart` removes what is left.
            with contextlib.suppress(Exception):
                self._store._abort(self._obj, self._upload_id)


class _RangedReader(io.RawIOBase):
    """Seekable raw reader over one object: a streaming GET from the current offset, reopened on seek."""

    def __init__(self, store: S3BlobStore, key: str, size: int) -> None:
        self._store = store
        self._key = key
        self._size = size
        self._pos = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        pos = base + offset
        if pos < 0:
            raise ValueError("negative seek position")
        if pos != self._pos:
            self._drop()
            self._pos = pos
        return pos

    def readinto(self, buf) -> int:  # noqa: ANN001
        want = min(len(buf), self._size - self._pos)
        if want <= 0:
            return 0
        if self._body is None:
            resp = self._store._get(self._key, self._pos, None)
            if resp is None:
                return 0
            self._body = resp["Body"]
        data = self._body.read(want)
        if not data:
            self._drop()
            return 0
        n = len(data)
        buf[:n] = data
        self._pos += n
        return n

    def _drop(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop()
        super().close()
