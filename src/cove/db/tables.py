"""Metadata tables: accounts, tokens, the repo index search reads, likes, downloads, discussions."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Namespace(Base):
    """A user or an organization: both own repos under ``name/``."""

    __tablename__ = "namespaces"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(96), unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # "user" | "org"
    fullname: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(200), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("org_id", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16), default="write")  # read | contributor | write | admin


class Token(Base):
    """An access token; only its sha256 is stored."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(8))  # read | write
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: After this (UTC) the token is refused like an unknown one; None: never expires.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    user: Mapped[Namespace] = relationship()


class Repo(Base):
    """One row per repo: the index that info and search read, refreshed on every commit."""

    __tablename__ = "repos"
    __table_args__ = (
        UniqueConstraint("type", "namespace", "name"),
        Index("ix_repos_type_downloads", "type", "downloads"),
        Index("ix_repos_type_likes", "type", "likes"),
        Index("ix_repos_type_modified", "type", "last_modified"),
        Index("ix_repos_type_created", "type", "created_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(8))  # model | dataset | space
    namespace: Mapped[str] = mapped_column(String(96), index=True)
    name: Mapped[str] = mapped_column(String(96))
    storage_key: Mapped[str] = mapped_column(String(64), unique=True)
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    gated: Mapped[str | None] = mapped_column(String(8), nullable=True)  # None | auto | manual
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_modified: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sha: Mapped[str | None] = mapped_column(String(40), nullable=True)
    pipeline_tag: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    library_name: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    license: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sdk: Mapped[str | None] = mapped_column(String(16), nullable=True)
    card_data: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    config: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    downloads_all_time: Mapped[int] = mapped_column(Integer, default=0)
    likes: Mapped[int] = mapped_column(Integer, default=0)
    used_storage: Mapped[int] = mapped_column(BigInteger, default=0)
    search_text: Mapped[str] = mapped_column(Text, default="")

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"


class RepoTag(Base):
    """Denormalised tags, so tag filters are indexed queries."""

    __tablename__ = "repo_tags"
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)


class Like(Base):
    __tablename__ = "likes"
    user_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True)
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DownloadDay(Base):
    """Download counts per repo per day; `downloads` on the repo is the last 30 days."""

    __tablename__ = "download_days"
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class LfsObject(Base):
    """An LFS object known to a repo (uploaded through LFS, Xet or git push)."""

    __tablename__ = "lfs_objects"
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    oid: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    xet_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: True: the server hashed the bytes this row serves (the blob, and the Xet file if named) and got `oid`.
    #: None: `oid` is a client's claim (a Xet shard's metadata), good for this repo only. False: the claim is
    #: known to be wrong. Only verified rows answer for other repos (see ``cove.services.uploads``).
    sha256_verified: Mapped[bool | None] = mapped_column(Boolean, nullable=True, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Discussion(Base):
    __tablename__ = "discussions"
    __table_args__ = (UniqueConstraint("repo_pk", "num"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"))
    num: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(96))
    is_pull_request: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DiscussionEvent(Base):
    """A comment, status change or title change in a discussion (its opening comment is the description)."""

    __tablename__ = "discussion_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    discussion_pk: Mapped[int] = mapped_column(ForeignKey("discussions.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))  # comment | status-change | title-change
    author: Mapped[str] = mapped_column(String(96))
    data: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WebSession(Base):
    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie value
    user_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AccessRequest(Base):
    """A user's request for access to a gated repo (auto-accepted when gating is "auto")."""

    __tablename__ = "access_requests"
    __table_args__ = (UniqueConstraint("repo_pk", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | accepted | rejected
    fields: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    user: Mapped[Namespace] = relationship()


class AuthThrottle(Base):
    """Failed sign-ins or invalid tokens under one key (``account:NAME``, ``client:IP``), counted per window;
    ``blocked_until`` set once a window's budget is spent (see ``cove.services.throttle``)."""

    __tablename__ = "auth_throttle"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    strikes: Mapped[int] = mapped_column(Integer, default=0)  # blocks in a row: the next one lasts 2**strikes
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)
    last_failure: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class Scan(Base):
    """What the scanner found in one content (``sha256:OID`` of an LFS/Xet file, ``git:OID`` of a git blob) read
    as one kind (``cove.services.scanning.kind_for``). ``pending`` while a worker has it claimed."""

    __tablename__ = "scans"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(8))  # pending | safe | unsafe
    report: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    meta: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Webhook(Base):
    """A user's webhook: POST the Hub's payload to ``url`` on events of what it watches (``webhook_watches``)."""

    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(String(24), primary_key=True)  # 24 hex digits, like the Hub's ObjectIds
    owner_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    domains: Mapped[list] = mapped_column(JSON)  # "repo" and/or "discussion"
    secret: Mapped[str | None] = mapped_column(String(200), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WebhookWatch(Base):
    """One watched item: a repo (``model``/``dataset``/``space``, ``ns/name``) or a namespace (``user``/``org``)."""

    __tablename__ = "webhook_watches"
    __table_args__ = (Index("ix_webhook_watches_type_name", "type", "name"),)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), primary_key=True)
    type: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)


class WebhookDelivery(Base):
    """One event queued for one webhook, and its delivery log. A worker claims a due row by an atomic UPDATE
    (``pending`` → ``delivering``, ``claimed_until`` set), so each try happens once across processes."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_due", "status", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    repo_pk: Mapped[int | None] = mapped_column(Integer, nullable=True)  # no FK: the log outlives the repo
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="pending")  # pending|delivering|delivered|failed|skipped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    log: Mapped[list] = mapped_column(JSON, default=list)  # [{at, statusCode, error}], one per try
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Collection(Base):
    """A curated list of repos, papers and other collections, owned by a user or an org. Its slug is
    ``{namespace}/{title slug}-{object_id}``; the id alone finds it, so a new title keeps old links working."""

    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("namespace_id", "title"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    object_id: Mapped[str] = mapped_column(String(24), unique=True)  # 24 hex digits, as the Hub's ids
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(150), default="")
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    theme: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer, default=0)  # order among the namespace's collections
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    namespace: Mapped[Namespace] = relationship()


class CollectionItem(Base):
    """One entry of a collection: a repo (dropped with it: the foreign key cascades), a paper (an arXiv id) or
    another collection. Repos are held by row, so a renamed or moved repo stays in its collections."""

    __tablename__ = "collection_items"
    __table_args__ = (
        UniqueConstraint("collection_pk", "repo_pk"),
        UniqueConstraint("collection_pk", "ref_collection_pk"),
        UniqueConstraint("collection_pk", "paper_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    object_id: Mapped[str] = mapped_column(String(24), unique=True)
    collection_pk: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    item_type: Mapped[str] = mapped_column(String(16))  # model | dataset | space | paper | collection
    repo_pk: Mapped[int | None] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), nullable=True,
                                                index=True)
    ref_collection_pk: Mapped[int | None] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"),
                                                          nullable=True, index=True)
    paper_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class OrgSettings(Base):
    """An organization's settings (`cove org set`); no row: the defaults."""

    __tablename__ = "org_settings"
    org_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True)
    #: A repo created in the org without saying `private` or `visibility` is private.
    private_by_default: Mapped[bool] = mapped_column(Boolean, default=False)


class RepoRedirect(Base):
    """An old id of a moved repo: it redirects to the repo's current id, whatever later moves made it (the row
    is held, not a name). Dropped when a repo takes the old id (`cove.services.repos`) or the repo goes."""

    __tablename__ = "repo_redirects"
    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(8))
    namespace: Mapped[str] = mapped_column(String(96))
    name: Mapped[str] = mapped_column(String(96))
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# Names are case-insensitive, as on the Hub: one repo per (type, lower(namespace), lower(name)), one user or org
# per lower(name), one redirect per old id; the database enforces it, so racing creates cannot both win.
Index("ux_repos_type_lower_id", Repo.type, func.lower(Repo.namespace), func.lower(Repo.name), unique=True)
Index("ux_namespaces_lower_name", func.lower(Namespace.name), unique=True)
Index("ux_repo_redirects_type_lower_id", RepoRedirect.type, func.lower(RepoRedirect.namespace),
      func.lower(RepoRedirect.name), unique=True)


class SpaceState(Base):
    """A Space's runtime (``cove.spaces``): its stage, the commit it serves, and what its owner asked for."""

    __tablename__ = "space_states"
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(24), default="NO_APP_FILE")
    message: Mapped[str | None] = mapped_column(Text, nullable=True)  # why: a config, build or runtime error
    sha: Mapped[str | None] = mapped_column(String(40), nullable=True)  # the commit serving (or last run)
    built_sha: Mapped[str | None] = mapped_column(String(40), nullable=True)  # the last commit a build was tried for
    wanted: Mapped[str] = mapped_column(String(12), default="running")  # running | paused | sleeping
    sleep_time: Mapped[int | None] = mapped_column(Integer, nullable=True)  # seconds idle before sleeping
    restart: Mapped[str | None] = mapped_column(String(8), nullable=True)  # asked for: restart | factory
    upstream: Mapped[str | None] = mapped_column(String(300), nullable=True)  # where the proxy reaches the app
    last_visit: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SpaceVar(Base):
    """A Space's variable or secret (``kind``); a secret's value is Fernet-encrypted (``cove.spaces.secrets``)."""

    __tablename__ = "space_vars"
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # variable | secret
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


#: The scan worker polls repos changed since a watermark (`last_modified >= :since`): this index, not the table.
Index("ix_repos_modified", Repo.last_modified)
#: PostgreSQL: trigram GIN indexes for `services.search`'s substring LIKE (migration 0014; SQLite has an FTS5 table).
Index("ix_repos_id_trgm",
      func.lower(Repo.namespace.op("||")(literal_column("'/'")).op("||")(Repo.name)).label("repo_id_lower"),
      postgresql_using="gin", postgresql_ops={"repo_id_lower": "gin_trgm_ops"}).ddl_if(dialect="postgresql")
Index("ix_repos_search_text_trgm", Repo.search_text, postgresql_using="gin",
      postgresql_ops={"search_text": "gin_trgm_ops"}).ddl_if(dialect="postgresql")


class MirroredRepo(Base):
    """A repo fetched from the upstream hub (`cove.services.mirror`): read-only here, same commit ids as there."""

    __tablename__ = "mirrored_repos"
    repo_pk: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    upstream: Mapped[str] = mapped_column(String(300))  # the upstream's endpoint when it was mirrored
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    synced_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # last fetch of its refs


class MirrorPattern(Base):
    """A `cove mirror add` pattern: the repos it names are mirrored and kept synced on a schedule."""

    __tablename__ = "mirror_patterns"
    pattern: Mapped[str] = mapped_column(String(300), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Lease(Base):
    """A job that runs in exactly one process of a fleet at a time (`cove.services.leases`): held by `holder`
    until `expires_at`, due again at `next_due`; `report` is the last run's summary."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    next_due: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    report: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class OrgInvitation(Base):
    """An invitation to join an organization (`cove.services.org_admin`): the invitee accepts or declines it."""

    __tablename__ = "org_invitations"
    org_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), default="write")
    invited_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
