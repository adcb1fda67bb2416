"""Files and versions: the tree at any revision, file views, the commit history and each commit's diff."""

from __future__ import annotations

import contextlib
import difflib
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound

from cove.backends import Backends
from cove.services import files, scans
from cove.services.paths import clean_path, split_rev_path
from cove.storage.git_repos import Entry
from cove.web import cards, gitviews
from cove.web.render import filesize, q, qpath
from cove.web.render import page as render_page
from cove.web.repo import RepoView, open_repo

MAX_VIEW = 1_000_000  # largest file shown inline
MAX_DIFF_FILE = 512_000
MAX_DIFF_LINES = 3000
MAX_DIFF_FILES = 200
MAX_DIFF_BYTES = 8_000_000  # blob bytes read for one commit page; later files are only described
COMMITS_PAGE = 30
_FORMATTER = HtmlFormatter(linenos="table", cssclass="highlight", anchorlinenos=True, lineanchors="L")


def _rev_options(view: RepoView, rev: str, sha: str, url_for) -> list[tuple[str, str, bool]]:  # noqa: ANN001
    """(label, url, selected) for the revision picker: branches, tags, and the commit being shown."""
    out = [(f"branch: {b}", url_for(b), b == rev) for b in view.branches]
    out += [(f"tag: {t}", url_for(t), t == rev) for t in view.tags]
    if not any(sel for _, _, sel in out):
        out.insert(0, (f"commit: {sha[:10]}" if rev.startswith(sha[:7]) else rev, url_for(rev), True))
    return out


def _crumbs(view: RepoView, rev: str, path: str) -> list[tuple[str, str]]:
    parts = path.split("/") if path else []
    out = [(view.repo.name, f"{view.base}/tree/{q(rev)}")]
    for i, part in enumerate(parts):
        out.append((part, f"{view.base}/tree/{q(rev)}/{qpath('/'.join(parts[: i + 1]))}"))
    return out


def _xet_badges(bk: Backends, view: RepoView, entries: list[Entry]) -> set[str]:
    lfs = [e for e in entries if e.is_lfs]
    if not lfs:
        return set()
    with bk.db.session() as db:
        return {e.path for e in lfs if files.xet_hash_for(db, view.repo, e.lfs_oid)}  # type: ignore[arg-type]


def _rev_and_path(bk: Backends, view: RepoView, rev: str, path: str) -> tuple[str, str, str]:
    """(revision, path, commit id). A branch with '/' arrives split (`%2F` is decoded): rejoin it."""
    rev, path = split_rev_path(rev, path)
    path = clean_path(path, allow_root=True)
    if bk.repos.resolve(view.repo.storage_key, rev) is None and path:
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            longer = "/".join([rev, *parts[:i]])
            if bk.repos.resolve(view.repo.storage_key, longer) is not None:
                rev, path = longer, "/".join(parts[i:])
                break
    return rev, path, files.resolve_revision(bk, view.repo, rev)


def tree_page(repo_type: str, request: Request, ns: str, name: str, rev: str, path: str = "") -> Response:
    """`/{ns}/{name}/tree/{rev}/{path}`: a folder at a branch, tag or commit."""
    _, view = open_repo(request, repo_type, ns, name)
    bk: Backends = request.app.state.backends
    rev, path, sha = _rev_and_path(bk, view, rev, path)
    entries = files.list_tree(bk, view.repo, sha, path, recursive=False)
    if len(entries) == 1 and entries[0].path == path and entries[0].type == "file":
        return RedirectResponse(f"{view.base}/blob/{q(rev)}/{qpath(path)}", status_code=302)
    entries.sort(key=lambda e: (e.type != "directory", e.path.lower()))
    shown = entries[:1000]
    key = view.repo.storage_key
    suffix = f"/{qpath(path)}" if path else ""
    with bk.db.session() as db:
        security = scans.security_for(db, shown)
    # The "last commit" column and the commit count: bounded, cached walks (`web.gitviews`).
    changed_in = gitviews.last_commits(bk, key, sha, path)
    infos = {c: bk.repos.commit_info(key, c) for c in set(changed_in.values())}
    last_of = {e.path: infos.get(changed_in.get(e.path.rsplit("/", 1)[-1], "")) for e in shown}
    return render_page(
        request, "tree.html", title=f"{view.repo_id} at {rev}", view=view, tab="files", rev=rev, sha=sha,
        path=path, last_of=last_of,
        entries=shown, hidden=len(entries) - len(shown), xet=_xet_badges(bk, view, shown), security=security,
        last=bk.repos.commit_info(key, sha),
        n_commits=gitviews.cached(("count", key, sha), lambda: bk.repos.count_commits(key, sha)),
        crumbs=_crumbs(view, rev, path),
        revs=_rev_options(view, rev, sha, lambda r: f"{view.base}/tree/{q(r)}{suffix}"),
    )


def _highlight(path: str, text: str) -> str:
    try:
        lexer = get_lexer_for_filename(path, stripnl=False)
    except ClassNotFound:
        lexer = TextLexer(stripnl=False)
    return highlight(text, lexer, _FORMATTER)


def _as_text(data: bytes) -> str | None:
    if b"\x00" in data[:8000]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def blob_page(repo_type: str, request: Request, ns: str, name: str, rev: str, path: str) -> Response:
    """`/{ns}/{name}/blob/{rev}/{path}`: one file, highlighted, or shown as an image, or described."""
    _, view = open_repo(request, repo_type, ns, name)
    bk: Backends = request.app.state.backends
    rev, path, sha = _rev_and_path(bk, view, rev, path)
    path = clean_path(path)
    entry = files.get_entry(bk, view.repo, sha, path)
    if entry.type == "directory":
        return RedirectResponse(f"{view.base}/tree/{q(rev)}/{qpath(path)}", status_code=302)
    storage = "git"
    code = rendered = None
    text_too_large = False
    if not view.may_read(path):
        pass  # gated: the page says so, the bytes stay behind /resolve's check
    elif entry.is_lfs:
        with bk.db.session() as db, contextlib.suppress(files.EntryNotFound):  # a pointer to nothing held here
            storage = files.locate(db, bk, view.repo, entry).kind
    elif not cards.is_image(path):
        if entry.size <= MAX_VIEW:
            text = _as_text(bk.repos.read_blob(view.repo.storage_key, entry.oid))
            if text is not None:
                code = _highlight(path, text)
                if path.lower().endswith(".md"):
                    rendered = cards.load(text, repo_type=repo_type, base=view.base, rev=rev).html
        else:
            text_too_large = True
    raw = f"{view.base}/resolve/{q(rev)}/{qpath(path)}"
    with bk.db.session() as db:
        security = scans.security_for(db, [entry])[entry.path]
    return render_page(
        request, "blob.html", title=f"{path} · {view.repo_id}", view=view, tab="files", rev=rev, sha=sha,
        path=path, entry=entry, storage=storage, code=code, rendered=rendered, raw=raw,
        too_large=text_too_large, security=security,
        image=cards.is_image(path) and view.may_read(path), gated=not view.may_read(path),
        crumbs=_crumbs(view, rev, path),
        revs=_rev_options(view, rev, sha, lambda r: f"{view.base}/blob/{q(r)}/{qpath(path)}"),
    )


def commits_page(repo_type: str, request: Request, ns: str, name: str, rev: str) -> Response:
    """`/{ns}/{name}/commits/{rev}`: the history of a revision, a page at a time; `/commits/{rev}/{path}`: the
    commits that changed one file or folder."""
    _, view = open_repo(request, repo_type, ns, name)
    bk: Backends = request.app.state.backends
    path = ""
    if "/" in rev and bk.repos.resolve(view.repo.storage_key, rev) is None:
        first, _, rest = rev.partition("/")
        rev, path, sha = _rev_and_path(bk, view, first, rest)
    else:
        sha = files.resolve_revision(bk, view.repo, rev)
    try:
        p = max(0, min(int(request.query_params.get("p", "0")), 100_000))
    except ValueError:
        p = 0
    cursor = None
    if path:  # streamed, bounded and cached (`web.gitviews`): reads only as far back as the page shows
        start = request.query_params.get("from", "")
        if start:  # "search older commits": on from where the last page's walk stopped
            start = files.resolve_revision(bk, view.repo, start)
        items, cursor = gitviews.path_log(bk, view.repo.storage_key, start or sha, path, skip=p * COMMITS_PAGE,
                                          limit=COMMITS_PAGE + 1)
    else:
        items = gitviews.history(bk, view.repo.storage_key, sha, skip=p * COMMITS_PAGE, limit=COMMITS_PAGE + 1)
    suffix = f"/{qpath(path)}" if path else ""
    return render_page(
        request, "commits.html", title=f"Commits · {view.repo_id}", view=view, tab="files", rev=rev, sha=sha,
        commits=items[:COMMITS_PAGE], p=p, more=len(items) > COMMITS_PAGE, path=path, suffix=suffix,
        cursor=cursor, scan=gitviews.PATH_SCAN,
        revs=_rev_options(view, rev, sha, lambda r: f"{view.base}/commits/{q(r)}{suffix}"),
    )


@dataclass
class FileDiff:
    path: str
    status: str  # added | removed | modified
    rows: list[tuple[str, str, str, str]]  # (kind, old line no, new line no, text)
    note: str = ""
    truncated: bool = False


def _diff_rows(old: str, new: str) -> tuple[list[tuple[str, str, str, str]], bool]:
    rows: list[tuple[str, str, str, str]] = []
    a = b = 0
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=3)
    for i, line in enumerate(lines):
        if i < 2:
            continue  # the ---/+++ header
        if len(rows) >= MAX_DIFF_LINES:
            return rows, True
        if line.startswith("@@"):
            head = line.split(" ")
            a = int(head[1][1:].split(",")[0])
            b = int(head[2][1:].split(",")[0])
            rows.append(("hunk", "", "", line))
        elif line.startswith("-"):
            rows.append(("del", str(a), "", line[1:]))
            a += 1
        elif line.startswith("+"):
            rows.append(("add", "", str(b), line[1:]))
            b += 1
        else:
            rows.append(("ctx", str(a), str(b), line[1:]))
            a += 1
            b += 1
    return rows, False


def _describe(e: Entry | None) -> str:
    if e is None:
        return "—"
    if e.is_lfs:
        return f"LFS {filesize(e.size)} · sha256 {e.lfs_oid[:12]}…"  # type: ignore[index]
    return f"{filesize(e.size)} · git {e.oid[:12]}…"


def _file_diff(bk: Backends, key: str, parent: str | None, sha: str, status: str, path: str,
               readable: bool = True, budget: list[int] | None = None) -> FileDiff:
    old = bk.repos.entry(key, parent, path) if parent else None
    new = bk.repos.entry(key, sha, path)
    old = old if old is not None and old.type == "file" else None
    new = new if new is not None and new.type == "file" else None
    if not readable:
        return FileDiff(path, status, [], note="This repo is gated: ask for access to see the changes")
    small = all(e is None or (not e.is_lfs and e.size <= MAX_DIFF_FILE) for e in (old, new))
    size = sum(e.size for e in (old, new) if e is not None)
    if budget is not None and small:
        small = budget[0] >= size
        budget[0] -= size if small else 0
    if small and not cards.is_image(path):
        texts = [_as_text(bk.repos.read_blob(key, e.oid)) if e else "" for e in (old, new)]
        if texts[0] is not None and texts[1] is not None:
            rows, cut = _diff_rows(texts[0], texts[1])
            return FileDiff(path, status, rows, truncated=cut, note="" if rows else "No textual change")
    return FileDiff(path, status, [], note=f"Binary or large file: {_describe(old)} → {_describe(new)}")


def _diffs(bk: Backends, view, key: str, a: str | None, b: str, changed: list[tuple[str, str]],  # noqa: ANN001
           renames: list[tuple[str, str]]) -> tuple[list[FileDiff], dict[str, int]]:
    """A commit's or comparison's file diffs (renames first, then the first `MAX_DIFF_FILES` of `changed`, in
    one `MAX_DIFF_BYTES` budget) and the lines they add and remove."""
    budget = [MAX_DIFF_BYTES]
    diffs = [FileDiff(new, "renamed", [], note=f"Renamed from {old}, unchanged") for old, new in renames]
    diffs += [_file_diff(bk, key, a, b, status, path, view.may_read(path), budget)
              for status, path in changed[:MAX_DIFF_FILES]]
    stats = {"added": sum(1 for d in diffs for r in d.rows if r[0] == "add"),
             "removed": sum(1 for d in diffs for r in d.rows if r[0] == "del")}
    return diffs, stats


def commit_page(repo_type: str, request: Request, ns: str, name: str, sha: str) -> Response:
    """`/{ns}/{name}/commit/{sha}`: a commit and its diff against its first parent."""
    _, view = open_repo(request, repo_type, ns, name)
    bk: Backends = request.app.state.backends
    key = view.repo.storage_key
    full = files.resolve_revision(bk, view.repo, sha)
    info = bk.repos.commit_info(key, full)
    parent = info.parents[0] if info.parents else None
    renames: list[tuple[str, str]] = []
    if parent:
        changed, renames = gitviews.pair_renames(bk, key, parent, full, bk.repos.diff_paths(key, parent, full))
    else:
        tree = bk.repos.list_tree(key, full, recursive=True) or []
        changed = [("added", e.path) for e in tree if e.type == "file"]
    changed.sort(key=lambda c: c[1])
    diffs, stats = _diffs(bk, view, key, parent, full, changed, renames)
    return render_page(request, "commit.html", title=f"{info.title} · {view.repo_id}", view=view, tab="files",
                       info=info, parent=parent, diffs=diffs, stats=stats,
                       more_files=max(0, len(changed) - MAX_DIFF_FILES))
