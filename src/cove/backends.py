"""Builds the storage and database objects from settings: the one place that names a backend."""

from __future__ import annotations

from dataclasses import dataclass

from cove.db.session import Database, engine_options
from cove.settings import Settings
from cove.storage.git_repos import GitRepoStore
from cove.storage.interfaces import BlobStore


@dataclass
class Backends:
    settings: Settings
    db: Database
    repos: GitRepoStore
    blobs: BlobStore


def build_backends(settings: Settings) -> Backends:
    settings.data.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url, **engine_options(settings))
    if settings.blob_backend == "s3":
        from cove.storage.blobs_s3 import S3BlobStore

        blobs: BlobStore = S3BlobStore(
            bucket=settings.s3_bucket or "cove",
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            tmp_dir=settings.data / "tmp",
            public_endpoint_url=settings.s3_public_endpoint_url,
            redirect=settings.s3_redirect,
        )
    else:
        from cove.storage.blobs_local import LocalBlobStore

        blobs = LocalBlobStore(settings.blobs_dir)
    repos = GitRepoStore(settings.repos_dir, stale_lock_s=settings.git_stale_lock_s,
                         open_repos=settings.git_open_repos, open_pack_files=settings.git_open_pack_files)
    db.factory.configure(info={"repos": repos})  # each session's `info` names the git store (see webhooks)
    return Backends(settings=settings, db=db, repos=repos, blobs=blobs)
