"""Compare two revisions (`/{repo}/compare/A...B`) and blame a text file (`/{repo}/blame/{rev}/{path}`).

Diffs are the commit page's (`files._diffs`): gated files are listed without being read, large files are
described rather than diffed, and the bytes read for one page are bounded (`MAX_DIFF_BYTES`).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from cove.backends import Backends
from cove.errors import BadRequest
from cove.services import compare, files
from cove.services.paths import clean_path
from cove.web import gitviews
from cove.web.files import MAX_DIFF_FILES, _as_text, _diffs, _rev_and_path
from cove.web.render import page, q, qpath
from cove.web.repo import open_repo

MAX_BLAME = 512_000  # largest file blamed
#: A diff longer than this many rows starts collapsed.
COLLAPSE_ROWS = 400


def compare_form(repo_type: str, request: Request, ns: str, name: str) -> Response:
    """`/{repo}/compare?base=A&head=B` (the pickers' form) → `/{repo}/compare/A...B`."""
    _, view = open_repo(request, repo_type, ns, name)
    base = request.query_params.get("base") or (view.tags[0] if view.tags else view.branch)
    head = request.query_params.get("head") or view.branch
    return RedirectResponse(f"{view.base}/compare/{q(base)}...{q(head)}", status_code=302)


def compare_page(repo_type: str, request: Request, ns: str, name: str, spec: str) -> Response:
    _, view = open_repo(request, repo_type, ns, name)
    bk: Backends = request.app.state.backends
    base, head = compare.parse_range(spec)
    a = files.resolve_revision(bk, view.repo, base)
    b = files.resolve_revision(bk, view.repo, head)
    key = view.repo.storage_key
    changed, renames = gitviews.pair_renames(bk, key, a, b, bk.repos.diff_paths(key, a, b))
    changed.sort(key=lambda c: c[1])
    diffs, stats = _diffs(bk, view, key, a, b, changed, renames)
    revs = [*view.branches, *view.tags]
    return page(request, "compare.html", title=f"{base}...{head} · {view.repo_id}", view=view, tab="files",
                base=base, head=head, a=a, b=b, diffs=diffs, stats=stats, revs=revs,
                more_files=max(0, len(changed) - MAX_DIFF_FILES), collapse=COLLAPSE_ROWS,
                commits=gitviews.commits_between(bk, key, a, b) if a != b else [])


def blame_page(repo_type: str, request: Request, ns: str, name: str, rev: str, path: str) -> Response:
    """Each line of a text file with the commit that last changed it (libgit2's blame)."""
    _, view = open_repo(request, repo_type, ns, name)
    bk: Backends = request.app.state.backends
    rev, path, sha = _rev_and_path(bk, view, rev, path)
    path = clean_path(path)
    entry = files.get_entry(bk, view.repo, sha, path)
    if entry.type != "file":
        return RedirectResponse(f"{view.base}/tree/{q(rev)}/{qpath(path)}", status_code=302)
    if not view.may_read(path):
        return RedirectResponse(f"{view.base}/blob/{q(rev)}/{qpath(path)}", status_code=302)
    if entry.is_lfs or entry.size > MAX_BLAME:
        raise BadRequest(f"{path} is too large to blame")
    key = view.repo.storage_key
    text = _as_text(bk.repos.read_blob(key, entry.oid))
    if text is None:
        raise BadRequest(f"{path} is not a text file")
    lines = text.splitlines()
    hunks = []  # (commit info, first line number, the lines, at a boundary)
    infos: dict[str, object] = {}
    for h in gitviews.blame(bk, key, sha, path):
        if h.commit not in infos:
            infos[h.commit] = bk.repos.commit_info(key, h.commit)
        hunks.append((infos[h.commit], h.start, lines[h.start - 1:h.start - 1 + h.lines], h.boundary))
    return page(request, "blame.html", title=f"Blame {path} · {view.repo_id}", view=view, tab="files", rev=rev,
                path=path, hunks=hunks)
