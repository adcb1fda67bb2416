"""Discussion and pull request numbers: allocated atomically, each PR's `refs/pr/N` made with its row.

A number is taken by inserting the row (the unique constraint on ``(repo_pk, num)`` decides between
concurrent requests, on SQLite and PostgreSQL alike) in a savepoint; for a pull request, ``refs/pr/N`` is
then created (it must not exist yet). Either failure rolls the savepoint back and the next number is tried,
so a ref left without its row (by a crash, or by older versions) costs a number, never an error.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cove.backends import Backends
from cove.db.tables import Discussion, Repo
from cove.errors import Conflict
from cove.storage.git_repos import ZERO, RefConflict

MAX_TITLE = 300  # the column's length
_ATTEMPTS = 50
_PR_REF = re.compile(r"^refs/pr/(\d+)$")


def _next_num(db: Session, bk: Backends, repo: Repo) -> int:
    in_db = db.scalar(select(func.max(Discussion.num)).where(Discussion.repo_pk == repo.id)) or 0
    in_git = max((int(m.group(1)) for ref in bk.repos.refs(repo.storage_key) if (m := _PR_REF.match(ref))),
                 default=0)
    return max(in_db, in_git) + 1


def open_discussion(db: Session, bk: Backends, repo: Repo, *, title: str, description: str, author: str,
                    pr_head: str | None = None) -> Discussion:
    """Number and insert a discussion; with ``pr_head``, a pull request whose ``refs/pr/N`` points there."""
    for _ in range(_ATTEMPTS):
        num = _next_num(db, bk, repo)
        row = Discussion(repo_pk=repo.id, num=num, title=title, description=description, author=author,
                         is_pull_request=pr_head is not None)
        try:
            with db.begin_nested():
                db.add(row)
                db.flush()
                if pr_head is not None:
                    bk.repos.update_ref(repo.storage_key, f"refs/pr/{num}", pr_head, ZERO)
        except (IntegrityError, RefConflict):
            continue  # taken meanwhile (by a row or a ref): the next number
        return row
    raise Conflict("Cannot open a discussion: too many concurrent ones on this repo, retry")
