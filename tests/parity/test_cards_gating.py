"""Card validation, gating details and backslashes in file names, as the stock client meets them on the Hub
(issue 12, items 9, 13 and 14)."""

from __future__ import annotations

import os
import subprocess
import uuid
import warnings
from pathlib import Path

import httpx
import pytest
from huggingface_hub import ModelCard, hf_hub_download
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

# --- item 9: /api/validate-yaml checks values against the Hub's vocabularies -------------------------------


def test_card_with_unknown_license_or_task_is_refused(api, repo_factory) -> None:
    repo_id = repo_factory("card")
    head = api.model_info(repo_id).sha
    bad = ModelCard("---\nlicense: not-a-license\n---\n# Card")
    with pytest.raises(ValueError, match='"license" must be a license id'):
        bad.validate()
    with pytest.raises(ValueError, match="Invalid metadata in README.md"):
        bad.push_to_hub(repo_id, token=api.token)
    with pytest.raises(ValueError, match='"pipeline_tag" must be one of'):
        api.upload_file(path_or_fileobj=b"---\npipeline_tag: text-sorcery\n---\n", path_in_repo="README.md",
                        repo_id=repo_id)
    for wrong in ("pipeline_tag: [text-generation]", "tags: {a: 1}", "datasets: 3", "language: [en, 5]"):
        with pytest.raises(ValueError, match="must be"):  # upload_file sends the README as it is
            api.upload_file(path_or_fileobj=f"---\n{wrong}\n---\n".encode(), path_in_repo="README.md",
                            repo_id=repo_id)
    assert api.model_info(repo_id).sha == head  # nothing landed
    # the Hub's ids pass, `other` with a name and a link too, and the commit API agrees with validate-yaml
    ModelCard("---\nlicense: cc-by-4.0\npipeline_tag: text-generation\ntags: [a]\nlanguage: [en]\n---\n").validate()
    good = ModelCard("---\nlicense: other\nlicense_name: acme-license\nlicense_link: LICENSE\n---\n# Card")
    good.push_to_hub(repo_id, token=api.token)
    assert api.model_info(repo_id).card_data.license == "other"
    r = httpx.post(f"{api.endpoint}/api/models/{repo_id}/commit/main", headers={
        "authorization": f"Bearer {api.token}", "content-type": "application/x-ndjson"},
        content=b'{"key":"header","value":{"summary":"x"}}\n{"key":"file","value":{"path":"README.md",'
                b'"content":"LS0tCmxpY2Vuc2U6IGZvbwotLS0K","encoding":"base64"}}\n')  # license: foo
    assert r.status_code == 400 and "license" in r.headers["x-error-message"]


def test_card_without_metadata_warns(api, repo_factory) -> None:
    repo_id = repo_factory("bare-card")
    with pytest.warns(UserWarning, match="empty or missing yaml metadata in repo card"):
        api.upload_file(path_or_fileobj=b"# Just prose\n", path_in_repo="README.md", repo_id=repo_id)
    assert api.file_exists(repo_id, "README.md")  # a warning, not a refusal
    r = httpx.post(f"{api.endpoint}/api/validate-yaml", json={"content": "---\nlicense: mit\n---\n"})
    assert r.status_code == 200 and r.json() == {"errors": [], "warnings": []}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        api.upload_file(path_or_fileobj=b"---\nlicense: mit\n---\n# x", path_in_repo="README.md", repo_id=repo_id)


# --- item 13: gating ------------------------------------------------------------------------------------------


def _gated(api, repo_factory) -> str:
    repo_id = repo_factory("gated")
    api.upload_file(path_or_fileobj=b"---\nlicense: mit\n---\n# Card", path_in_repo="README.md", repo_id=repo_id)
    api.update_repo_settings(repo_id, gated="manual")
    return repo_id


def test_auth_check_answers_gated_repo(api, bob_api, anon_api, repo_factory, bob) -> None:
    repo_id = _gated(api, repo_factory)
    api.auth_check(repo_id)
    with pytest.raises(GatedRepoError) as signed_in:
        bob_api.auth_check(repo_id)
    assert signed_in.value.response.status_code == 403
    with pytest.raises(GatedRepoError) as anonymous:
        anon_api.auth_check(repo_id)
    assert anonymous.value.response.status_code == 401
    private = repo_factory("priv", private=True)
    with pytest.raises(RepositoryNotFoundError):
        bob_api.auth_check(private)
    with pytest.raises(RepositoryNotFoundError):
        bob_api.auth_check(f"alice/missing-{uuid.uuid4().hex[:8]}")
    api.grant_access(repo_id, bob.name)
    bob_api.auth_check(repo_id)


def test_gitattributes_of_a_gated_repo_is_gated(api, bob_api, repo_factory, bob, tmp_path) -> None:
    repo_id = _gated(api, repo_factory)
    with pytest.raises(GatedRepoError):
        hf_hub_download(repo_id, ".gitattributes", cache_dir=tmp_path / "c1", token=bob_api.token)
    r = httpx.get(f"{api.endpoint}/{repo_id}/resolve/main/.gitattributes")
    assert (r.status_code, r.headers.get("x-error-code")) == (401, "GatedRepo")
    assert hf_hub_download(repo_id, "README.md", cache_dir=tmp_path / "c2", token=bob_api.token)  # the card is free
    api.grant_access(repo_id, bob.name)
    path = hf_hub_download(repo_id, ".gitattributes", cache_dir=tmp_path / "c3", token=bob_api.token)
    assert "filter=lfs" in Path(path).read_text()


def _status(call) -> int:
    with pytest.raises(HfHubHTTPError) as err:
        call()
    return err.value.response.status_code


def test_handling_a_request_twice_answers_as_the_hub(api, bob_api, repo_factory, alice, bob) -> None:
    repo_id = _gated(api, repo_factory)
    assert _status(lambda: api.accept_access_request(repo_id, bob.name)) == 404  # no request yet
    assert httpx.post(f"{api.endpoint}/api/models/{repo_id}/ask-access",
                      headers={"authorization": f"Bearer {bob_api.token}"}).json() == {"status": "pending"}
    assert _status(lambda: api.cancel_access_request(repo_id, bob.name)) == 404  # already pending
    api.accept_access_request(repo_id, bob.name)
    assert _status(lambda: api.accept_access_request(repo_id, bob.name)) == 404  # already accepted
    assert _status(lambda: api.grant_access(repo_id, bob.name)) == 400  # already has access
    api.reject_access_request(repo_id, bob.name, rejection_reason="no")
    again = lambda: api.reject_access_request(repo_id, bob.name, rejection_reason=None)  # noqa: E731
    assert _status(again) == 404  # already rejected
    api.cancel_access_request(repo_id, bob.name)
    api.grant_access(repo_id, bob.name)
    assert [r.username for r in api.list_accepted_access_requests(repo_id)] == [bob.name]
    assert _status(lambda: api.accept_access_request(repo_id, alice.name)) == 404  # never asked
    assert _status(lambda: api.grant_access(repo_id, f"nobody-{uuid.uuid4().hex[:6]}")) == 404
    open_repo = repo_factory("open")
    assert _status(lambda: api.grant_access(open_repo, bob.name)) == 400  # not gated
    assert _status(lambda: api.accept_access_request(open_repo, bob.name)) == 400


# --- item 14: backslashes in file names ---------------------------------------------------------------------


def test_backslash_is_part_of_a_file_name(api, alice, repo_factory, tmp_path) -> None:
    repo_id = repo_factory("bslash")
    api.upload_file(path_or_fileobj=b"inside\n", path_in_repo="a\\b.txt", repo_id=repo_id)
    assert "a\\b.txt" in api.list_repo_files(repo_id)
    # hf_hub_download (POSIX): one file named `a\b.txt` at the top of the snapshot, nothing outside it
    path = hf_hub_download(repo_id, "a\\b.txt", cache_dir=tmp_path / "cache")
    assert os.path.basename(path) == "a\\b.txt" and Path(path).read_text() == "inside\n"
    snapshot = os.path.dirname(path)
    assert os.listdir(snapshot) == ["a\\b.txt"]
    # the web UI links it percent-encoded, so no browser turns the backslash into a folder
    page = httpx.get(f"{api.endpoint}/{repo_id}/tree/main").text
    assert "a%5Cb.txt" in page and 'a\\b.txt"' not in page
    assert httpx.get(f"{api.endpoint}/{repo_id}/blob/main/a%5Cb.txt").status_code == 200
    # git checkout: one file at the top; git push takes the same names as the commit API
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "HOME": str(tmp_path), "GIT_LFS_SKIP_SMUDGE": "1",
           "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@x"}
    clone = tmp_path / "clone"

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=clone if args[0] != "clone" else None, env=env,
                              capture_output=True, text=True, timeout=120)

    url = api.endpoint.replace("http://", f"http://{alice.name}:{alice.token}@") + f"/{repo_id}"
    assert git("clone", "-q", url, str(clone)).returncode == 0
    assert (clone / "a\\b.txt").read_text() == "inside\n"
    assert not (clone / "a").exists()
    (clone / "c\\d.txt").write_text("pushed\n")
    git("add", "-A")
    git("commit", "-qm", "backslash")
    assert git("push", "-q", "origin", "main").returncode == 0
    assert "c\\d.txt" in api.list_repo_files(repo_id)
    (clone / "..\\evil.txt").write_text("x")
    git("add", "-A")
    git("commit", "-qm", "climb")
    assert git("push", "-q", "origin", "main").returncode != 0
    # names that Windows would read as climbing out, anchored or under .git are refused, and nothing lands
    head = api.model_info(repo_id).sha
    for bad in ("..\\evil.txt", "x\\..\\..\\evil.txt", "\\evil.txt", "C:\\evil.txt", ".git\\config", "a\\"):
        assert _status(lambda bad=bad: api.upload_file(path_or_fileobj=b"x", path_in_repo=bad,
                                                       repo_id=repo_id)) == 400, bad
    assert api.model_info(repo_id).sha == head
