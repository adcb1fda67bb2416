"""Pages that change a repo: create one (`/new`), upload files, create, edit or delete a file.

Every change goes through the services the API uses: `repos.create`, `commits.preupload` and
`commits.create_commit` (with `create_pr` for "open a pull request"), `uploads.store_object` for large files.
With script, the upload page does what `huggingface_hub` does (preupload, LFS batch + PUT, NDJSON commit, see
`/_static/upload.js`); without, the same form posts the files here and the server takes the same steps.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Annotated

import yaml
from fastapi import File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from cove.backends import Backends
from cove.errors import BadRequest, Forbidden, Unauthorized
from cove.services import access, accounts, card_meta, commits, repos, uploads
from cove.services.card_vocab import LICENSES, PIPELINE_TAGS
from cove.services.commit_payload import ContentSpool
from cove.services.paths import clean_path
from cove.web.render import page, q, qpath, repo_path
from cove.web.repo import RepoView, open_repo
from cove.web.sessions import Visitor, check_csrf, visitor

MAX_EDIT = 1_000_000  # largest text file edited in the browser
NEW_PAGES = {"model": "/new", "dataset": "/new-dataset", "space": "/new-space"}
#: Licenses offered first in the picker (the rest follow, sorted).
COMMON_LICENSES = ("apache-2.0", "mit", "openrail", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "bsd-3-clause",
                   "gpl-3.0", "llama3", "other")


def _owners(request: Request, v: Visitor) -> list[str]:
    """The namespaces this user may create repos in: their own, then orgs where they write."""
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        orgs = [o.name for o, role in accounts.orgs_of(db, v.actor.user_id) if role in ("write", "admin")]
    return [v.actor.name, *sorted(orgs, key=str.lower)]  # type: ignore[list-item]


def _require_signed_in(request: Request) -> Visitor:
    v = visitor(request)
    if v.actor.anonymous:
        raise Unauthorized("Sign in to make changes")
    return v


def new_repo_form(repo_type: str, request: Request) -> Response:
    """`/new`, `/new-dataset`, `/new-space`: owner, name, license, visibility (and a Space's SDK)."""
    v = _require_signed_in(request)
    return _new_form(request, repo_type, v, {}, None)


def _new_form(request: Request, repo_type: str, v: Visitor, values: dict, error: str | None,
              status: int = 200) -> Response:
    licenses = list(COMMON_LICENSES) + sorted(set(LICENSES) - set(COMMON_LICENSES))
    return page(request, "new.html", status=status, title=f"New {repo_type}", repo_type=repo_type,
                owners=_owners(request, v), licenses=licenses, sdks=repos.SPACE_SDKS, values=values, error=error,
                new_pages=NEW_PAGES)


def new_repo(repo_type: str, request: Request, csrf_token: Annotated[str, Form()] = "",
             owner: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
             license: Annotated[str, Form()] = "", visibility: Annotated[str, Form()] = "public",  # noqa: A002
             sdk: Annotated[str, Form()] = "") -> Response:
    v = check_csrf(request, csrf_token)
    _require_signed_in(request)
    bk: Backends = request.app.state.backends
    values = {"owner": owner, "name": name.strip(), "license": license, "visibility": visibility, "sdk": sdk}
    if license and license not in LICENSES:
        return _new_form(request, repo_type, v, values, f"Unknown license {license!r}", 400)
    try:
        with bk.db.session() as db:
            repo, created = repos.create(db, bk, v.actor, repo_type=repo_type, namespace=owner or None,
                                         name=name.strip(), private=visibility == "private",
                                         sdk=sdk or None if repo_type == "space" else None)
            if not created:
                raise BadRequest(f"You already created this {repo_type} repo")
            if license:
                _write_license(db, bk, v, repo, license)
            target = repo_path(repo_type, repo.repo_id)
    except (BadRequest, Forbidden) as exc:
        return _new_form(request, repo_type, v, values, exc.message, exc.status)
    return RedirectResponse(target, status_code=303)


def _write_license(db, bk: Backends, v: Visitor, repo, license: str) -> None:  # noqa: ANN001, A002
    """The license goes in the card's front matter (a Space's card already has one: it is added there)."""
    key = repo.storage_key
    sha = bk.repos.resolve(key, "main")
    entry = bk.repos.entry(key, sha, "README.md") if sha else None
    meta: dict = {}
    body = f"\n# {repo.name}\n"
    if entry is not None:
        text = bk.repos.read_blob(key, entry.oid).decode("utf-8", "replace")
        _, _, rest = text.partition("---\n")
        header, _, body = rest.partition("\n---\n")
        meta = yaml.safe_load(header) or {}
    meta["license"] = license
    card = f"---\n{yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)}---\n{body}"
    _commit(db, bk, v, repo, "main", "Initial commit", "", [("file", "README.md", card.encode())], False)


def _commit(db, bk: Backends, v: Visitor, repo, rev: str, summary: str, description: str,  # noqa: ANN001
            changes: list[tuple[str, str, object]], create_pr: bool) -> commits.CommitResult:
    """One commit through `commits.create_commit`: `("file", path, bytes)`, `("lfs", path, (oid, size))`,
    `("delete", path, None)`."""
    with ContentSpool(bk.settings) as spool:
        ops: list[dict] = []
        for kind, path, data in changes:
            if kind == "file":
                ops.append({"key": "file", "path": path, "content": spool.add(data)})  # type: ignore[arg-type]
            elif kind == "lfs":
                oid, size = data  # type: ignore[misc]
                ops.append({"key": "lfsFile", "path": path, "algo": "sha256", "oid": oid, "size": size})
            else:
                ops.append({"key": "deletedFile", "path": path})
        header = {"summary": summary.strip()[: bk.settings.max_commit_summary],
                  "description": description[: bk.settings.max_commit_description]}
        return commits.create_commit(db, bk, v.actor, repo, revision=rev, header=header, ops=ops,
                                     create_pr=create_pr)


def _after(view: RepoView, result: commits.CommitResult, rev: str, path: str | None) -> RedirectResponse:
    if result.pr_num is not None:
        return RedirectResponse(f"{view.base}/discussions/{result.pr_num}", status_code=303)
    if path:
        return RedirectResponse(f"{view.base}/blob/{q(rev)}/{qpath(path)}", status_code=303)
    return RedirectResponse(f"{view.base}/tree/{q(rev)}", status_code=303)


def _writable(request: Request, repo_type: str, ns: str, name: str) -> tuple[Visitor, RepoView, bool]:
    """(visitor, repo, may commit directly). Outsiders who may read the files may still open a PR."""
    v, view = open_repo(request, repo_type, ns, name)
    if v.actor.anonymous:
        raise Unauthorized("Sign in to make changes")
    bk: Backends = request.app.state.backends
    with bk.db.session() as db:
        if not access.can_contribute(db, v.actor, view.repo):
            raise Forbidden(f"You cannot change {view.repo_id}: ask for access, or sign in with a write token")
    return v, view, view.can_write


def _branch(bk: Backends, view: RepoView, rev: str) -> str:
    if not bk.repos.is_branch(view.repo.storage_key, rev):
        raise BadRequest(f"{rev!r} is not a branch: files can only be changed on a branch")
    return rev


# -- upload -------------------------------------------------------------------------------------


def upload_form(repo_type: str, request: Request, ns: str, name: str, rev: str, path: str = "") -> Response:
    """`/{repo}/upload/{rev}/{folder}`: drop files or folders, or pick them; a commit message; PR or not."""
    _, view, direct = _writable(request, repo_type, ns, name)
    bk: Backends = request.app.state.backends
    rev = _branch(bk, view, rev)
    folder = clean_path(path, allow_root=True) if path else ""
    return page(request, "upload.html", title=f"Upload · {view.repo_id}", view=view, tab="files", rev=rev,
                folder=folder, direct=direct, plural=f"{repo_type}s")


def _sample(head: bytes) -> str:
    return base64.b64encode(head[:512]).decode()


def upload(repo_type: str, request: Request, ns: str, name: str, rev: str, path: str = "",
           files: Annotated[list[UploadFile], File()] = None,  # type: ignore[assignment]
           csrf_token: Annotated[str, Form()] = "", summary: Annotated[str, Form()] = "",
           description: Annotated[str, Form()] = "", create_pr: Annotated[str, Form()] = "") -> Response:
    """The form without script: the files arrive here; each one the Hub would put in LFS is stored through
    `uploads.store_object` (hashed, verified), then one commit adds them all."""
    check_csrf(request, csrf_token)
    v, view, direct = _writable(request, repo_type, ns, name)
    bk: Backends = request.app.state.backends
    rev = _branch(bk, view, rev)
    folder = clean_path(path, allow_root=True) if path else ""
    chosen = [f for f in files or [] if f.filename]
    if not chosen:
        raise BadRequest("Choose at least one file to upload")
    pr = not direct or create_pr == "1"
    summary = summary.strip() or f"Upload {len(chosen)} file{'s' if len(chosen) > 1 else ''}"
    items = []
    for f in chosen:
        target = clean_path(f"{folder}/{f.filename}" if folder else str(f.filename))
        f.file.seek(0, 2)
        size = f.file.tell()
        f.file.seek(0)
        items.append((target, f.file, size))
    with bk.db.session() as db:
        repo = db.merge(view.repo)
        modes = commits.preupload(db, bk, v.actor, repo, revision=rev, git_ignore=None,
                                  files=[{"path": p, "size": s, "sample": _sample(fh.read(512))}
                                         for p, fh, s in items])
        changes: list[tuple[str, str, object]] = []
        for (target, fh, size), mode in zip(items, modes, strict=True):
            fh.seek(0)
            if mode["uploadMode"] == "lfs":
                digest = hashlib.sha256()
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
                oid = digest.hexdigest()
                fh.seek(0)
                if not uploads.already_stored(db, bk, v.actor, repo, oid, size):
                    uploads.store_object(db, bk, repo, oid, size, fh)
                changes.append(("lfs", target, (oid, size)))
            else:
                changes.append(("file", target, fh.read()))
        result = _commit(db, bk, v, repo, rev, summary, description, changes, pr)
    return _after(view, result, rev, None)


# -- create, edit, delete one file ---------------------------------------------------------------


def _text_of(bk: Backends, view: RepoView, rev: str, path: str) -> tuple[str, str]:
    """(text, commit id) of a small text file at a branch."""
    key = view.repo.storage_key
    sha = bk.repos.resolve(key, rev)
    entry = bk.repos.entry(key, sha, path) if sha else None
    if entry is None or entry.type != "file":
        from cove.errors import EntryNotFound

        raise EntryNotFound(f"{path} not found at {rev}")
    if entry.is_lfs or entry.size > MAX_EDIT:
        raise BadRequest(f"{path} is too large to edit in the browser")
    data = bk.repos.read_blob(key, entry.oid)
    if b"\x00" in data[:8000]:
        raise BadRequest(f"{path} is a binary file")
    try:
        return data.decode("utf-8"), sha  # type: ignore[return-value]
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{path} is not UTF-8 text") from exc


#: The README's metadata form: these front matter keys (lists are comma separated in the form).
META_FIELDS = ("license", "pipeline_tag", "library_name", "base_model", "datasets", "language", "tags")
LIST_FIELDS = ("datasets", "language", "tags")


def _front_matter(text: str) -> tuple[dict | None, str]:
    """(the YAML header as a mapping, or None when it does not parse; the markdown body)."""
    match = card_meta.YAML_BLOCK.search(text)
    if not match:
        return {}, text
    try:
        raw = card_meta.load_yaml(match.group(2))
    except Exception:  # noqa: BLE001 - any YAML problem: the commit's check reports it in the Hub's words
        return None, text[match.end():]
    return (raw if isinstance(raw, dict) else None), text[match.end():]


def meta_values(text: str) -> dict[str, str]:
    """The form's values from a card: strings, lists joined with ', '."""
    meta, _ = _front_matter(text)
    out = {}
    for key in META_FIELDS:
        value = (meta or {}).get(key)
        out[key] = ", ".join(map(str, value)) if isinstance(value, list) else "" if value is None else str(value)
    return out


def apply_meta(text: str, values: dict[str, str], shown: dict | None = None) -> str:
    """The card with the form's fields written into its front matter (an empty field removes its key); other
    keys are kept. Only the fields changed from what the form showed (`shown`) are written, so an edit of the
    same key in the text is not undone by the form's old value."""
    if isinstance(shown, dict):
        values = {k: v for k, v in values.items() if v.strip() != str(shown.get(k, "")).strip()}
    current = meta_values(text)
    values = {k: v for k, v in values.items() if v.strip() != current.get(k, "")}
    if not values:
        return text
    meta, body = _front_matter(text)
    if meta is None:
        raise BadRequest("Invalid YAML in the README.md header: fix it in the text, or clear it")
    for key, value in values.items():
        value = value.strip()
        if not value:
            meta.pop(key, None)
        elif key in LIST_FIELDS:
            meta[key] = [x.strip() for x in value.split(",") if x.strip()]
        else:
            meta[key] = value
    if not meta:
        return body
    header = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=None)
    return f"---\n{header}---\n{body if body.startswith(chr(10)) else chr(10) + body}"


def _json_or_none(raw: str) -> dict | None:
    try:
        out = json.loads(raw) if raw and len(raw) < 100_000 else None
    except ValueError:
        return None
    return out if isinstance(out, dict) else None


def edit_form(repo_type: str, request: Request, ns: str, name: str, rev: str, path: str = "") -> Response:
    """`/{repo}/edit/{rev}/{path}` (and `/{repo}/new/{rev}/{folder}` for a new file)."""
    _, view, direct = _writable(request, repo_type, ns, name)
    bk: Backends = request.app.state.backends
    rev = _branch(bk, view, rev)
    creating = "/new/" in request.url.path
    path = clean_path(path, allow_root=True) if path else ""
    text, parent = ("", None) if creating else _text_of(bk, view, rev, path)
    return page(request, "edit.html", title=f"{'New file' if creating else path} · {view.repo_id}", view=view,
                tab="files", rev=rev, path=path, text=text, parent=parent, creating=creating, direct=direct,
                error=None, **_meta_ctx(path, text, creating))


def _meta_ctx(path: str, text: str, creating: bool) -> dict:
    if creating or path != "README.md":
        return {"meta": None}
    return {"meta": meta_values(text), "licenses": sorted(LICENSES), "pipeline_tags": sorted(PIPELINE_TAGS)}


def edit(repo_type: str, request: Request, ns: str, name: str, rev: str, path: str = "",
         csrf_token: Annotated[str, Form()] = "", content: Annotated[str, Form()] = "",
         filename: Annotated[str, Form()] = "", summary: Annotated[str, Form()] = "",
         description: Annotated[str, Form()] = "", parent: Annotated[str, Form()] = "",
         create_pr: Annotated[str, Form()] = "", meta_form: Annotated[str, Form()] = "",
         meta_license: Annotated[str, Form()] = "", meta_pipeline_tag: Annotated[str, Form()] = "",
         meta_library_name: Annotated[str, Form()] = "", meta_base_model: Annotated[str, Form()] = "",
         meta_datasets: Annotated[str, Form()] = "", meta_language: Annotated[str, Form()] = "",
         meta_tags: Annotated[str, Form()] = "", meta_shown: Annotated[str, Form()] = "") -> Response:
    v = check_csrf(request, csrf_token)
    _, view, direct = _writable(request, repo_type, ns, name)
    form_meta = {"license": meta_license, "pipeline_tag": meta_pipeline_tag, "library_name": meta_library_name,
                 "base_model": meta_base_model, "datasets": meta_datasets, "language": meta_language,
                 "tags": meta_tags}
    bk: Backends = request.app.state.backends
    rev = _branch(bk, view, rev)
    creating = "/new/" in request.url.path
    folder = clean_path(path, allow_root=True) if path else ""
    if creating:
        if not filename.strip():
            raise BadRequest("Name the new file")
        target = clean_path(f"{folder}/{filename.strip()}" if folder else filename.strip())
        if bk.repos.entry(view.repo.storage_key, bk.repos.resolve(view.repo.storage_key, rev), target):
            raise BadRequest(f"{target} already exists: edit it instead")
    else:
        target = folder
    pr = not direct or create_pr == "1"
    content = content.replace("\r\n", "\n")
    msg = summary.strip() or (f"Create {target}" if creating else f"Update {target}")
    with bk.db.session() as db:
        repo = db.merge(view.repo)
        # A stale page (the file changed since it was opened) is refused, as the Hub does with parentCommit.
        header_parent = parent if parent and not pr else ""
        try:
            if header_parent and not (bk.repos.resolve(repo.storage_key, rev) or "").startswith(header_parent):
                raise BadRequest(commits.STALE_PARENT)
            if meta_form == "1" and target == "README.md":
                content = apply_meta(content, form_meta, _json_or_none(meta_shown))
            result = _commit(db, bk, v, repo, rev, msg, description, [("file", target, content.encode())], pr)
        except BadRequest as exc:
            ctx = _meta_ctx(target, content, creating)
            if ctx["meta"] is not None:
                ctx["meta"] = form_meta if meta_form == "1" else ctx["meta"]
            return page(request, "edit.html", status=exc.status, title=f"{target} · {view.repo_id}", view=view,
                        tab="files", rev=rev, path=folder, text=content, parent=parent, creating=creating,
                        direct=direct, error=exc.message, filename=filename, **ctx)
    return _after(view, result, rev, None if pr else target)


def delete_form(repo_type: str, request: Request, ns: str, name: str, rev: str, path: str) -> Response:
    _, view, direct = _writable(request, repo_type, ns, name)
    bk: Backends = request.app.state.backends
    rev = _branch(bk, view, rev)
    return page(request, "delete_file.html", title=f"Delete {path} · {view.repo_id}", view=view, tab="files",
                rev=rev, path=clean_path(path), direct=direct)


def delete(repo_type: str, request: Request, ns: str, name: str, rev: str, path: str,
           csrf_token: Annotated[str, Form()] = "", summary: Annotated[str, Form()] = "",
           description: Annotated[str, Form()] = "", create_pr: Annotated[str, Form()] = "") -> Response:
    v = check_csrf(request, csrf_token)
    _, view, direct = _writable(request, repo_type, ns, name)
    bk: Backends = request.app.state.backends
    rev = _branch(bk, view, rev)
    path = clean_path(path)
    pr = not direct or create_pr == "1"
    with bk.db.session() as db:
        repo = db.merge(view.repo)
        result = _commit(db, bk, v, repo, rev, summary.strip() or f"Delete {path}", description,
                         [("delete", path, None)], pr)
    return _after(view, result, rev, None)
