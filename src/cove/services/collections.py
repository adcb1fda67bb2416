"""Collections: curated lists of repos, papers and other collections, owned by a user or an org.

Reading follows the owner's namespace: a public collection is open to all, a private one to the namespace's
members (any role), and anyone else is told it does not exist. Writing takes a write token and the `write` or
`admin` role in the namespace (a user's own). An item is shown only to callers who may read what it points to,
and can only be added by one who may.
"""

from __future__ import annotations

import re
import secrets
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cove.db.tables import Collection, CollectionItem, Membership, Namespace, Repo, utcnow
from cove.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from cove.services import access
from cove.services.accounts import Actor

THEMES = ("orange", "blue", "green", "purple", "pink", "indigo")
ITEM_TYPES = ("model", "dataset", "space", "paper", "collection")
SORTS = ("lastModified", "trending", "upvotes")
MAX_TITLE = 200
MAX_DESCRIPTION = 150  # the Hub's limits
MAX_NOTE = 500
_OBJECT_ID = re.compile(r"[0-9a-f]{24}")
_SLUG_TAIL = re.compile(r"(?:.*-)?([0-9a-f]{24})")
_PAPER_ID = re.compile(r"\d{4}\.\d{4,5}")
_REPO_ID = re.compile(r"[A-Za-z0-9._-]{1,96}/[A-Za-z0-9._-]{1,96}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PLURALS = {"models": "model", "datasets": "dataset", "spaces": "space", "papers": "paper",
            "collections": "collection"}

#: What an item points to: the repo, the collection, or None for a paper.
Target = Repo | Collection | None


@dataclass
class Entry:
    """An item as one caller sees it: the row, what it points to, and its position among what they see."""

    item: CollectionItem
    target: Target
    position: int


def new_object_id() -> str:
    """24 hex digits, as the Hub's ids: 4 bytes of time, then 8 random ones."""
    return f"{int(time.time()) & 0xFFFFFFFF:08x}{secrets.token_hex(8)}"


def title_slug(title: str) -> str:
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:80].strip("-") or "collection"


def slug_of(c: Collection) -> str:
    return f"{c.namespace.name}/{title_slug(c.title)}-{c.object_id}"


# --- who may do what ---------------------------------------------------------------------------------------


class _Readers:
    """`can_read` for many namespaces with one role lookup each."""

    def __init__(self, db: Session, actor: Actor) -> None:
        self.db, self.actor, self.roles = db, actor, {}

    def member(self, namespace: str) -> bool:
        if namespace not in self.roles:
            self.roles[namespace] = access.namespace_role(self.db, self.actor, namespace) is not None
        return self.roles[namespace]

    def repo(self, repo: Repo) -> bool:
        return not repo.private or self.member(repo.namespace)

    def collection(self, c: Collection) -> bool:
        return not c.private or self.member(c.namespace.name)


def can_read(db: Session, actor: Actor, c: Collection) -> bool:
    return _Readers(db, actor).collection(c)


def require_write(db: Session, actor: Actor, namespace: str) -> None:
    """401/403 unless the caller may create and edit collections in `namespace`."""
    if actor.anonymous:
        raise Unauthorized("You must be authenticated to manage collections")
    role = access.namespace_role(db, actor, namespace)
    if role not in ("admin", "write"):
        raise Forbidden(f"You don't have the rights to manage collections in {namespace!r}")
    if not actor.can_write:
        raise Forbidden("This token has read-only access: use a token with the 'write' role")


def _not_found() -> NotFound:
    return NotFound("Collection not found")


def find(db: Session, actor: Actor, namespace: str, slug: str) -> Collection:
    """The collection `namespace/slug` names, found by the id its slug ends with; 404 when the caller may
    not read it, exactly as when it does not exist."""
    m = _SLUG_TAIL.fullmatch(slug)
    c = db.scalar(select(Collection).where(Collection.object_id == m.group(1))) if m else None
    if c is None or c.namespace.name.lower() != namespace.lower() or not can_read(db, actor, c):
        raise _not_found()
    return c


def writable(db: Session, actor: Actor, namespace: str, slug: str) -> Collection:
    c = find(db, actor, namespace, slug)
    require_write(db, actor, c.namespace.name)
    return c


def storable(value: str, name: str) -> str:
    """`value`, unless a database would refuse it (NUL, a lone surrogate): then 400, nothing stored."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"'{name}' is not valid text") from None
    if "\x00" in value:
        raise BadRequest(f"'{name}' is not valid text")
    return value


# --- collections --------------------------------------------------------------------------------------------


def _title(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("'title' is required")
    title = storable(value.strip(), "title")
    if len(title) > MAX_TITLE:
        raise BadRequest(f"'title' is longer than {MAX_TITLE} characters")
    if _CONTROL.search(title):
        raise BadRequest("'title' can't hold control characters")
    return title


def _description(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise BadRequest(f"'description' must be a string of at most {MAX_DESCRIPTION} characters")
    return storable(value, "description")


def _same_title(db: Session, namespace_id: int, title: str, but: int | None = None) -> Collection | None:
    q = select(Collection).where(Collection.namespace_id == namespace_id, Collection.title == title)
    if but is not None:
        q = q.where(Collection.id != but)
    return db.scalar(q)


def _exists(c: Collection) -> Conflict:
    return Conflict(f"A collection titled {c.title!r} already exists in {c.namespace.name!r}", slug=slug_of(c))


def _flush_unique(db: Session, namespace_id: int, title: str, but: int | None = None) -> None:
    """Flush; a collection with the same title written at the same moment answers 409 as a known one does."""
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError:
        other = _same_title(db, namespace_id, title, but)
        if other is None:
            raise
        raise _exists(other) from None


def create(db: Session, actor: Actor, namespace: object, title: object, description: object,
           private: object) -> Collection:
    if not isinstance(namespace, str) or not namespace:
        raise BadRequest("'namespace' is required")
    require_write(db, actor, storable(namespace, "namespace"))
    ns = db.scalar(select(Namespace).where(Namespace.name == namespace))
    if ns is None:
        raise NotFound(f"Namespace {namespace!r} not found")
    title = _title(title)
    if private is not None and not isinstance(private, bool):
        raise BadRequest("'private' must be a boolean")
    existing = _same_title(db, ns.id, title)
    if existing is not None:
        raise _exists(existing)
    count = db.scalar(select(func.count()).select_from(Collection).where(Collection.namespace_id == ns.id))
    c = Collection(object_id=new_object_id(), namespace=ns, title=title, description=_description(description),
                   private=bool(private), theme=secrets.choice(THEMES), position=count or 0)
    db.add(c)
    _flush_unique(db, ns.id, title)
    return c


def _moved(rows: list, row: object, position: int) -> list:
    """`rows` with `row` moved to index `position` (the end when past it)."""
    rest = [r for r in rows if r is not row]
    rest.insert(min(position, len(rest)), row)
    return rest


def _position(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest("'position' must be a non-negative integer")
    return value


def update(db: Session, actor: Actor, c: Collection, body: dict) -> None:
    """PATCH: only the fields sent change. The slug follows the title; its id, and so old links, stay."""
    require_write(db, actor, c.namespace.name)
    if "title" in body:
        title = _title(body["title"])
        other = _same_title(db, c.namespace_id, title, c.id)
        if other is not None:
            raise _exists(other)
        c.title = title
    if "description" in body:
        c.description = _description(body["description"])
    if "private" in body:
        if not isinstance(body["private"], bool):
            raise BadRequest("'private' must be a boolean")
        c.private = body["private"]
    if "theme" in body:
        if body["theme"] not in THEMES:
            raise BadRequest(f"'theme' must be one of {', '.join(THEMES)}")
        c.theme = body["theme"]
    if "position" in body:
        position = _position(body["position"])
        rows = list(db.scalars(select(Collection).where(Collection.namespace_id == c.namespace_id)
                               .order_by(Collection.position, Collection.id)))
        for i, row in enumerate(_moved(rows, c, position)):
            row.position = i
    c.updated_at = utcnow()
    _flush_unique(db, c.namespace_id, c.title, c.id)


def delete(db: Session, actor: Actor, c: Collection) -> None:
    """The collection and its items go; so do the items of other collections that point to it."""
    require_write(db, actor, c.namespace.name)
    db.delete(c)
    db.flush()


# --- items -------------------------------------------------------------------------------------------------


def _target_of(db: Session, actor: Actor, c: Collection, item_type: object, item_id: object) -> tuple[str, Target]:
    """The item's type and what it points to; 404 for what the caller can't read, as for what is not there."""
    if item_type not in ITEM_TYPES:
        raise BadRequest(f"'item.type' must be one of {', '.join(ITEM_TYPES)}")
    if not isinstance(item_id, str) or not item_id:
        raise BadRequest("'item.id' is required")
    if item_type in access.REPO_TYPES:
        head, _, rest = item_id.partition("/")
        if _PLURALS.get(head) == item_type and "/" in rest:  # "datasets/ns/name"
            item_id = rest
        if not _REPO_ID.fullmatch(item_id):  # no repo is called that: answered as any missing one
            item_id = "-/-"
        return item_type, access.readable_repo(db, actor, item_type, item_id)
    if item_type == "paper":
        if not _PAPER_ID.fullmatch(item_id):
            raise NotFound(f"Paper {item_id!r} not found: papers are arXiv ids such as 2311.12983")
        return item_type, None
    namespace, _, rest = item_id.rpartition("/")
    m = _SLUG_TAIL.fullmatch(rest)
    ref = db.scalar(select(Collection).where(Collection.object_id == m.group(1))) if m else None
    if ref is None or (namespace and ref.namespace.name.lower() != namespace.lower()) or not can_read(db, actor, ref):
        raise _not_found()
    if ref.id == c.id:
        raise BadRequest("A collection can't contain itself")
    return item_type, ref


def _note(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_NOTE:
        raise BadRequest(f"'note' must be a string of at most {MAX_NOTE} characters")
    return storable(value, "note") or None


def _all_items(db: Session, c: Collection) -> list[CollectionItem]:
    return list(db.scalars(select(CollectionItem).where(CollectionItem.collection_pk == c.id)
                           .order_by(CollectionItem.position, CollectionItem.id)))


def add_item(db: Session, actor: Actor, c: Collection, item: object, note: object) -> CollectionItem:
    """Append an item; 409 when the collection holds it already."""
    require_write(db, actor, c.namespace.name)
    if not isinstance(item, dict):
        raise BadRequest("'item' must be an object with 'id' and 'type'")
    item_type, target = _target_of(db, actor, c, item.get("type"), item.get("id"))
    row = CollectionItem(object_id=new_object_id(), collection_pk=c.id, item_type=item_type, note=_note(note))
    if isinstance(target, Repo):
        row.repo_pk, same = target.id, CollectionItem.repo_pk == target.id
    elif isinstance(target, Collection):
        row.ref_collection_pk, same = target.id, CollectionItem.ref_collection_pk == target.id
    else:
        row.paper_id, same = item["id"], CollectionItem.paper_id == item["id"]
    there = select(CollectionItem.id).where(CollectionItem.collection_pk == c.id, same)
    if db.scalar(there) is not None:
        raise Conflict("This item is already in the collection")
    last = db.scalar(select(func.max(CollectionItem.position)).where(CollectionItem.collection_pk == c.id))
    row.position = 0 if last is None else last + 1
    db.add(row)
    c.updated_at = utcnow()
    try:
        with db.begin_nested():
            db.flush()
    except IntegrityError:
        if db.scalar(there) is None:
            raise
        raise Conflict("This item is already in the collection") from None
    return row


def _visible_item(db: Session, actor: Actor, c: Collection, object_id: str) -> CollectionItem:
    """The item, if the caller may see it; 404 otherwise."""
    row = db.scalar(select(CollectionItem).where(CollectionItem.object_id == object_id,
                                                 CollectionItem.collection_pk == c.id))
    if row is None or not _shown(db, _Readers(db, actor), [row]):
        raise NotFound("Item not found in the collection")
    return row


def update_item(db: Session, actor: Actor, c: Collection, object_id: str, body: dict) -> None:
    require_write(db, actor, c.namespace.name)
    row = _visible_item(db, actor, c, object_id)
    if "note" in body:
        row.note = _note(body["note"])
    if "position" in body:
        position = _position(body["position"])
        for i, other in enumerate(_moved(_all_items(db, c), row, position)):
            other.position = i
    c.updated_at = utcnow()


def delete_item(db: Session, actor: Actor, c: Collection, object_id: str) -> None:
    require_write(db, actor, c.namespace.name)
    row = _visible_item(db, actor, c, object_id)
    db.delete(row)
    db.flush()
    for i, other in enumerate(_all_items(db, c)):
        other.position = i
    c.updated_at = utcnow()


def _shown(db: Session, readers: _Readers, rows: Iterable[CollectionItem]) -> list[tuple[CollectionItem, Target]]:
    """The rows the reader may see, with what each points to (loaded in two queries)."""
    rows = list(rows)
    repo_ids = {r.repo_pk for r in rows if r.repo_pk is not None}
    ref_ids = {r.ref_collection_pk for r in rows if r.ref_collection_pk is not None}
    repos = {r.id: r for r in db.scalars(select(Repo).where(Repo.id.in_(repo_ids)))} if repo_ids else {}
    refs = {r.id: r for r in db.scalars(select(Collection).where(Collection.id.in_(ref_ids)))} if ref_ids else {}
    out: list[tuple[CollectionItem, Target]] = []
    for r in rows:
        if r.repo_pk is not None:
            repo = repos.get(r.repo_pk)
            if repo is not None and readers.repo(repo):
                out.append((r, repo))
        elif r.ref_collection_pk is not None:
            ref = refs.get(r.ref_collection_pk)
            if ref is not None and readers.collection(ref):
                out.append((r, ref))
        else:
            out.append((r, None))
    return out


def entries(db: Session, actor: Actor, c: Collection) -> list[Entry]:
    """The items the caller may see, in order; positions count only those."""
    shown = _shown(db, _Readers(db, actor), _all_items(db, c))
    return [Entry(row, target, i) for i, (row, target) in enumerate(shown)]


# --- listing -------------------------------------------------------------------------------------------------


@dataclass
class Listing:
    owners: list[str]
    items: list[str]
    search: str | None
    sort: str | None


def _readable(actor: Actor) -> ColumnElement[bool]:
    """A filter: public collections, and private ones of namespaces the caller belongs to."""
    if actor.is_admin:
        return true()
    if actor.anonymous:
        return Collection.private.is_(False)
    mine = select(Membership.org_id).where(Membership.user_id == actor.user_id)
    return or_(Collection.private.is_(False), Collection.namespace_id == actor.user_id,
               Collection.namespace_id.in_(mine))


def _item_filter(db: Session, actor: Actor, spec: str) -> object | None:
    """The condition "holds this item", or None when the caller can't see such an item (nothing matches)."""
    head, _, rest = spec.partition("/")
    kind = _PLURALS.get(head)
    if kind is None:
        kind, rest = "model", spec
    if kind in access.REPO_TYPES:
        repo = access.find_repo(db, kind, rest) if _REPO_ID.fullmatch(rest) else None
        if repo is None or not access.can_read(db, actor, repo):
            return None
        return CollectionItem.repo_pk == repo.id
    if kind == "paper":
        return CollectionItem.paper_id == rest
    m = _SLUG_TAIL.fullmatch(rest.rpartition("/")[2])
    ref = db.scalar(select(Collection).where(Collection.object_id == m.group(1))) if m else None
    if ref is None or not can_read(db, actor, ref):
        return None
    return CollectionItem.ref_collection_pk == ref.id


def listing(db: Session, actor: Actor, q: Listing, *, offset: int, limit: int) -> list[Collection]:
    """One page of the collections the caller may read that match `q`: owner's order (positions) when only
    filtered by owner and unsorted, else most recently updated first (Cove keeps no upvotes or trends)."""
    if q.sort is not None and q.sort not in SORTS:
        raise BadRequest(f"'sort' must be one of {', '.join(SORTS)}")
    for value in (*q.owners, *q.items, q.search or ""):
        storable(value, "query")
    stmt = select(Collection).join(Namespace, Namespace.id == Collection.namespace_id)
    stmt = stmt.where(_readable(actor))
    if q.owners:
        stmt = stmt.where(Namespace.name.in_(q.owners))
    if q.search:
        stmt = stmt.where(func.lower(Collection.title).contains(q.search.lower(), autoescape=True))
    if q.items:
        conds = [c for c in (_item_filter(db, actor, spec) for spec in q.items) if c is not None]
        if not conds:
            return []
        stmt = stmt.where(Collection.id.in_(select(CollectionItem.collection_pk).where(or_(*conds))))
    if q.owners and q.sort is None:
        stmt = stmt.order_by(Namespace.name, Collection.position, Collection.id)
    else:
        stmt = stmt.order_by(Collection.updated_at.desc(), Collection.id.desc())
    return list(db.scalars(stmt.offset(offset).limit(limit)))


def previews(db: Session, actor: Actor, cols: list[Collection], per: int = 4) -> dict[int, list[Entry]]:
    """The first `per` items each caller may see of each collection (a listing shows only those)."""
    if not cols:
        return {}
    rows = db.scalars(select(CollectionItem).where(CollectionItem.collection_pk.in_([c.id for c in cols]))
                      .order_by(CollectionItem.collection_pk, CollectionItem.position, CollectionItem.id))
    out: dict[int, list[Entry]] = {c.id: [] for c in cols}
    for row, target in _shown(db, _Readers(db, actor), rows):
        got = out[row.collection_pk]
        if len(got) < per:
            got.append(Entry(row, target, len(got)))
    return out

