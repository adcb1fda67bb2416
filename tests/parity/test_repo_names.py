"""Repo names as the Hub treats them: ids are case-insensitive and answers carry the canonical casing; a moved
repo's old id redirects to its new one (API, /resolve, git) until another repo takes the name (issue 12, items 3
and 7)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from tests.conftest import ENDPOINT, cove
from tests.git.conftest import git, git_home, repo_url  # noqa: F401  (fixtures)


def _hex() -> str:
    return uuid.uuid4().hex[:8]


def _bearer(api) -> dict[str, str]:  # noqa: ANN001
    return {"authorization": f"Bearer {api.token}"}


# --- item 3: case-insensitive ids ----------------------------------------------------------------------------


def test_repo_ids_are_case_insensitive(api, bob_api, tmp_path, no_xet) -> None:
    repo_id = f"alice/My-Model-{_hex()}"
    other = repo_id.upper().replace("ALICE/", "Alice/")
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"weights", path_in_repo="w.bin", repo_id=repo_id)
    try:
        assert api.model_info(other).id == repo_id
        assert api.model_info(other, revision="main").id == repo_id
        assert api.repo_exists(other.lower())
        assert sorted(api.list_repo_files(other)) == [".gitattributes", "w.bin"]
        assert [f.path for f in api.list_repo_tree(other.lower())] == [".gitattributes", "w.bin"]
        path = hf_hub_download(other, "w.bin", cache_dir=tmp_path / "cache", endpoint=ENDPOINT, token=api.token)
        assert Path(path).read_bytes() == b"weights"
        api.upload_file(path_or_fileobj=b"v2", path_in_repo="w.bin", repo_id=other)
        assert api.model_info(repo_id).sha == api.list_repo_commits(other.lower())[0].commit_id
        r = httpx.post(f"{ENDPOINT}/api/models/{other}/like", headers=_bearer(bob_api))
        assert r.status_code == 200
        assert api.model_info(repo_id).likes == 1
        assert [u.username for u in api.list_repo_likers(other.lower())] == ["bob"]
        bob_api.unlike(other.lower())
        d = bob_api.create_discussion(other.lower(), title="hello")
        assert [x.num for x in api.get_repo_discussions(repo_id)] == [d.num]
        # The same name in another casing is the same repo: 409, and exist_ok answers the canonical one.
        with pytest.raises(HfHubHTTPError) as e:
            api.create_repo(other.lower())
        assert e.value.response.status_code == 409
        assert api.create_repo(other.lower(), exist_ok=True).repo_id == repo_id
        assert [m.id for m in api.list_models(search=repo_id.split("/")[1])] == [repo_id]
    finally:
        api.delete_repo(other)
    assert not api.repo_exists(repo_id)


def test_user_and_org_names_are_case_insensitive(api, acme) -> None:
    proc = cove("user", "add", "ALICE", "--password", "whatever-password", check=False)
    assert proc.returncode != 0 and "taken" in (proc.stderr + proc.stdout)
    proc = cove("org", "add", "Acme", check=False)
    assert proc.returncode != 0
    name = f"case-{_hex()}"
    url = api.create_repo(f"ALICE/{name}")
    assert url.repo_id == f"alice/{name}"
    assert api.model_info(f"alice/{name}").id == f"alice/{name}"
    url = api.create_repo(f"ACME/{name}")
    assert url.repo_id == f"acme/{name}"
    assert [m.id for m in api.list_models(author="ALICE", search=name)] == [f"alice/{name}"]
    listed = json.loads(cove("repo", "list", "--json", "--namespace", "Acme").stdout)
    assert f"acme/{name}" in [r["id"] for r in listed]
    api.delete_repo(f"alice/{name}")
    api.delete_repo(f"acme/{name}")


def test_git_clone_in_another_casing(api, git, tmp_path) -> None:  # noqa: F811
    repo_id = f"alice/Git-Case-{_hex()}"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"hi\n", path_in_repo="a.txt", repo_id=repo_id)
    try:
        git("clone", repo_url(repo_id.lower()), tmp_path / "c")
        assert (tmp_path / "c" / "a.txt").read_text() == "hi\n"
    finally:
        api.delete_repo(repo_id)


def test_case_twins_are_refused_by_the_database_and_lookup_uses_the_index(tmp_path) -> None:
    """In-process, on a fresh SQLite database built by the migrations: two rows differing only in case cannot
    both be written (so racing creates cannot both win), and the lookup by id is an index search."""
    from sqlalchemy import select, text
    from sqlalchemy.exc import IntegrityError

    from cove.backends import build_backends
    from cove.db.migrate import upgrade
    from cove.db.tables import Namespace, Repo, RepoRedirect
    from cove.services import access, accounts
    from cove.settings import Settings

    bk = build_backends(Settings(data=tmp_path))
    upgrade(bk)
    with bk.db.session() as db:
        db.add(Repo(type="model", namespace="alice", name="Twin", storage_key="k1", tags=[]))
    with pytest.raises(IntegrityError), bk.db.session() as db:
        db.add(Repo(type="model", namespace="ALICE", name="twin", storage_key="k2", tags=[]))
    with bk.db.session() as db:  # another type may hold the name
        db.add(Repo(type="dataset", namespace="ALICE", name="twin", storage_key="k3", tags=[]))
    with bk.db.session() as db:
        db.add(Namespace(name="Carol", kind="user"))
    with pytest.raises(IntegrityError), bk.db.session() as db:
        db.add(Namespace(name="carol", kind="user"))
    with bk.db.session() as db:
        assert access.find_repo(db, "model", "Alice/TWIN").storage_key == "k1"

        def plan(stmt) -> str:  # noqa: ANN001
            sql = stmt.compile(bk.db.engine, compile_kwargs={"literal_binds": True})
            return " ".join(str(r[-1]) for r in db.execute(text(f"EXPLAIN QUERY PLAN {sql}")))

        assert "USING INDEX ux_repos_type_lower_id" in plan(access.find_repo_query("model", "Alice/TWIN"))
        assert "USING INDEX ux_repo_redirects_type_lower_id" in plan(
            select(RepoRedirect).where(*access.redirect_filter("model", "Alice/TWIN")))
        assert "USING INDEX ux_namespaces_lower_name" in plan(accounts.namespace_query("CAROL"))


# --- item 7: redirects after a move --------------------------------------------------------------------------


def test_moved_repo_redirects(api, bob_api, anon_api, server, tmp_path, no_xet) -> None:
    a, b, c = (f"alice/mv-{x}-{_hex()}" for x in "abc")
    api.create_repo(a)
    api.upload_file(path_or_fileobj=b"data", path_in_repo="f.txt", repo_id=a)
    api.move_repo(a, b)
    try:
        r = httpx.get(f"{ENDPOINT}/api/models/{a}/revision/main", params={"expand": "sha"})
        assert r.status_code == 307 and r.headers["location"] == f"/api/models/{b}/revision/main?expand=sha"
        r = httpx.head(f"{ENDPOINT}/{a.upper()}/resolve/main/f.txt")
        assert r.status_code == 307 and r.headers["location"] == f"/{b}/resolve/main/f.txt"
        assert api.model_info(a).id == b
        assert anon_api.model_info(a).id == b
        assert api.list_repo_files(a) == [".gitattributes", "f.txt"]
        # Calls naming the repo in the body (delete, move) do not follow: the old id is not found there.
        with pytest.raises(RepositoryNotFoundError):
            api.delete_repo(a)
        with pytest.raises(RepositoryNotFoundError):
            api.move_repo(a, f"alice/elsewhere-{_hex()}")
        path = hf_hub_download(a, "f.txt", cache_dir=tmp_path / "cache", endpoint=ENDPOINT, token=False)
        assert Path(path).read_bytes() == b"data"
        # Moves chain: a -> b -> c sends a to c.
        api.move_repo(b, c)
        assert api.model_info(a).id == c and api.model_info(b).id == c
        # Writes through the old id land in the repo too (307 keeps the method and body).
        api.upload_file(path_or_fileobj=b"more", path_in_repo="g.txt", repo_id=a)
        assert api.file_exists(c, "g.txt")
        # Private: the old name answers exactly as a missing one to those who can't read the target.
        api.update_repo_settings(c, private=True)
        assert api.model_info(a).id == c
        with pytest.raises(RepositoryNotFoundError):
            bob_api.model_info(a)
        missing = f"alice/never-{_hex()}"
        for who in ({}, _bearer(bob_api)):
            got = httpx.get(f"{ENDPOINT}/api/models/{a}", headers=who)
            want = httpx.get(f"{ENDPOINT}/api/models/{missing}", headers=who)
            assert (got.status_code, got.headers.get("x-error-code"), got.text) == (
                want.status_code, want.headers.get("x-error-code"), want.text)
        # A new repo taking the old name wins; the redirect is dropped (and does not come back).
        api.create_repo(a)
        assert api.model_info(a).id == a
        assert api.list_repo_files(a) == [".gitattributes"]
        api.delete_repo(a)
        with pytest.raises(RepositoryNotFoundError):
            api.model_info(a)
        assert api.model_info(b).id == c
    finally:
        api.delete_repo(c)
    # Deleting the repo drops its redirects.
    r = httpx.get(f"{ENDPOINT}/api/models/{b}", headers=_bearer(api))
    assert (r.status_code, r.headers.get("x-error-code")) == (404, "RepoNotFound")


def test_rename_to_another_casing(api) -> None:
    repo_id = f"alice/casing-{_hex()}"
    api.create_repo(repo_id)
    api.move_repo(repo_id, repo_id.replace("casing", "Casing"))
    assert api.model_info(repo_id).id == repo_id.replace("casing", "Casing")
    api.delete_repo(repo_id)


def test_git_follows_a_moved_repo(api, alice, git, tmp_path) -> None:  # noqa: F811
    a, b = f"alice/git-old-{_hex()}", f"alice/git-new-{_hex()}"
    api.create_repo(a)
    api.upload_file(path_or_fileobj=b"one\n", path_in_repo="one.txt", repo_id=a)
    api.move_repo(a, b)
    try:
        git("clone", repo_url(a), tmp_path / "anon")
        assert (tmp_path / "anon" / "one.txt").read_text() == "one\n"
        work = tmp_path / "work"
        git("clone", repo_url(a, user=alice, suffix=".git"), work)
        (work / "two.txt").write_text("two\n")
        head = git.commit_all(work, "two")
        git("push", "origin", "main", cwd=work)
        assert api.model_info(b).sha == head
        git("fetch", "origin", cwd=work)
        # A private target: an old URL is a missing repo to others, and works for its owner.
        api.update_repo_settings(b, private=True)
        proc = git("clone", repo_url(a), tmp_path / "anon2", check=False)
        assert proc.returncode != 0 and "terminal prompts disabled" in proc.stderr
        git("clone", repo_url(a, user=alice), tmp_path / "owner")
        assert (tmp_path / "owner" / "two.txt").exists()
    finally:
        api.delete_repo(b)
