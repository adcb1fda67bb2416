"""Uploads: preupload modes, NDJSON commits, LFS batch (basic, multipart, verify), parent commit, PRs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationCopy, CommitOperationDelete
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

from tests.conftest import ENDPOINT


def _auth(api) -> dict:
    return {"authorization": f"Bearer {api.token}"}


def test_preupload_classifies_like_the_hub(api, repo_factory):
    repo_id = repo_factory("pre")
    api.upload_file(path_or_fileobj=b"hello", path_in_repo="hello.txt", repo_id=repo_id)
    files = [
        {"path": "hello.txt", "size": 5, "sample": base64.b64encode(b"hello").decode()},
        {"path": "data/train.parquet", "size": 100, "sample": base64.b64encode(b"PAR1").decode()},
        {"path": "w.bin", "size": 10, "sample": base64.b64encode(b"\x00\x01").decode()},
        {"path": "big.txt", "size": 20_000_000, "sample": base64.b64encode(b"text").decode()},
        {"path": "notes.txt", "size": 4, "sample": base64.b64encode(b"text").decode()},
    ]
    r = httpx.post(f"{ENDPOINT}/api/models/{repo_id}/preupload/main", json={"files": files}, headers=_auth(api))
    modes = {f["path"]: f for f in r.json()["files"]}
    assert {p: f["uploadMode"] for p, f in modes.items()} == {
        "hello.txt": "regular", "data/train.parquet": "lfs", "w.bin": "lfs", "big.txt": "lfs", "notes.txt": "regular"}
    assert modes["hello.txt"]["oid"] == hashlib.sha1(b"blob 5\x00hello").hexdigest()
    assert modes["notes.txt"]["oid"] is None
    assert all(f["shouldIgnore"] is False for f in modes.values())


def test_create_commit_all_operations(api, repo_factory, no_xet):
    repo_id = repo_factory("ops")
    big = os.urandom(200_000)
    api.create_commit(repo_id, operations=[
        CommitOperationAdd("keep/a.txt", b"a"),
        CommitOperationAdd("drop/b.txt", b"b"),
        CommitOperationAdd("drop/c.txt", b"c"),
        CommitOperationAdd("w.safetensors", big),
    ], commit_message="first")
    api.create_commit(repo_id, operations=[
        CommitOperationDelete("drop/"),
        CommitOperationCopy("w.safetensors", "copy.safetensors"),
        CommitOperationCopy("keep/a.txt", "keep/a2.txt"),
    ], commit_message="second")
    files = sorted(api.list_repo_files(repo_id))
    assert files == [".gitattributes", "copy.safetensors", "keep/a.txt", "keep/a2.txt", "w.safetensors"]
    api.delete_file("keep/a2.txt", repo_id)
    api.delete_folder("keep", repo_id)
    assert sorted(api.list_repo_files(repo_id)) == [".gitattributes", "copy.safetensors", "w.safetensors"]
    with pytest.raises(EntryNotFoundError):
        api.delete_file("nope.txt", repo_id)
    commits = api.list_repo_commits(repo_id)
    assert [c.title for c in commits[-3:]] == ["second", "first", "initial commit"]


def test_lfs_multipart_upload(api, repo_factory, no_xet, tmp_path, monkeypatch):
    repo_id = repo_factory("mp")
    data = os.urandom(70 * 1024 * 1024)  # over the 64 MiB multipart threshold
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    api.upload_file(path_or_fileobj=str(f), path_in_repo="big.bin", repo_id=repo_id)
    r = httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/big.bin", headers={"range": "bytes=67108860-67108869"})
    assert r.content == data[67108860:67108870]
    entry = api.get_paths_info(repo_id, ["big.bin"])[0]
    assert entry.lfs.sha256 == hashlib.sha256(data).hexdigest()


def test_lfs_upload_is_verified(api, repo_factory):
    repo_id = repo_factory("ver")
    data = b"real content" * 100
    oid = hashlib.sha256(data).hexdigest()
    batch = httpx.post(f"{ENDPOINT}/{repo_id}.git/info/lfs/objects/batch", headers=_auth(api), json={
        "operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(data)}]}).json()
    href = batch["objects"][0]["actions"]["upload"]["href"]
    bad = httpx.put(href, content=b"tampered" + data[8:])
    assert bad.status_code == 400
    commit = _ndjson_commit(api, repo_id, [{"key": "lfsFile", "value": {"path": "x.bin", "algo": "sha256",
                                                                         "oid": oid, "size": len(data)}}])
    assert commit.status_code == 400 and "not uploaded" in commit.json()["error"]
    assert httpx.put(href, content=data).status_code == 200
    verify = batch["objects"][0]["actions"]["verify"]["href"]
    assert httpx.post(verify, json={"oid": oid, "size": len(data)}, headers=_auth(api)).status_code == 200
    assert _ndjson_commit(api, repo_id, [{"key": "lfsFile", "value": {"path": "x.bin", "algo": "sha256",
                                                                      "oid": oid}}]).status_code == 200
    assert httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/x.bin").content == data


def _ndjson_commit(api, repo_id: str, ops: list[dict], *, parent: str | None = None, rev: str = "main"):
    header = {"summary": "raw commit", "description": ""}
    if parent:
        header["parentCommit"] = parent
    lines = [{"key": "header", "value": header}, *ops]
    body = "\n".join(json.dumps(x) for x in lines).encode()
    return httpx.post(f"{ENDPOINT}/api/models/{repo_id}/commit/{rev}", content=body,
                      headers={**_auth(api), "content-type": "application/x-ndjson"})


def test_lfs_object_of_private_repo_cannot_be_borrowed(api, bob_api, repo_factory, no_xet):
    secret = os.urandom(5000)
    private = repo_factory("priv", private=True)
    api.upload_file(path_or_fileobj=secret, path_in_repo="s.bin", repo_id=private)
    bob_repo = "bob/borrow"
    bob_api.create_repo(bob_repo, exist_ok=True)
    oid = hashlib.sha256(secret).hexdigest()
    r = _ndjson_commit(bob_api, bob_repo, [{"key": "lfsFile", "value": {"path": "s.bin", "algo": "sha256",
                                                                         "oid": oid, "size": len(secret)}}])
    assert r.status_code == 400
    batch = httpx.post(f"{ENDPOINT}/{bob_repo}.git/info/lfs/objects/batch", headers=_auth(bob_api), json={
        "operation": "upload", "objects": [{"oid": oid, "size": len(secret)}]}).json()
    assert "actions" in batch["objects"][0], "the server must not reveal it already holds the object"
    bob_api.delete_repo(bob_repo)


def test_bad_paths_and_bodies_are_rejected_without_a_commit(api, repo_factory):
    repo_id = repo_factory("bad")
    head = api.model_info(repo_id).sha
    for path in ("../x", "/abs", "a/../../b", ".git/config", "a//b", "sub/.git/hooks/x"):
        r = _ndjson_commit(api, repo_id, [{"key": "file", "value": {"path": path, "content": "eA==",
                                                                     "encoding": "base64"}}])
        assert r.status_code == 400, path
        assert r.headers["x-error-message"]
    r = httpx.post(f"{ENDPOINT}/api/models/{repo_id}/commit/main", content=b'{"key": "header"\n garbage',
                   headers={**_auth(api), "content-type": "application/x-ndjson"})
    assert r.status_code == 400
    r = _ndjson_commit(api, repo_id, [{"key": "file", "value": {"path": "ok.txt", "content": "!!notb64",
                                                                 "encoding": "base64"}}])
    assert r.status_code == 400
    r = _ndjson_commit(api, repo_id, [{"key": "teleport", "value": {"path": "x"}}])
    assert r.status_code == 400
    assert api.model_info(repo_id).sha == head


def test_parent_commit_and_concurrency(api, repo_factory):
    repo_id = repo_factory("cas")
    base = api.model_info(repo_id).sha
    ok = api.upload_file(path_or_fileobj=b"1", path_in_repo="one.txt", repo_id=repo_id, parent_commit=base)
    with pytest.raises(HfHubHTTPError) as e:
        api.upload_file(path_or_fileobj=b"2", path_in_repo="two.txt", repo_id=repo_id, parent_commit=base)
    assert e.value.response.status_code == 412
    assert api.model_info(repo_id).sha == ok.oid

    errors = []

    def worker(i: int) -> None:
        try:
            api.upload_file(path_or_fileobj=str(i).encode(), path_in_repo=f"c/{i}.txt", repo_id=repo_id)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(f for f in api.list_repo_files(repo_id) if f.startswith("c/")) == [f"c/{i}.txt" for i in range(8)]


def test_create_pr(api, repo_factory):
    repo_id = repo_factory("pr")
    info = api.upload_file(path_or_fileobj=b"proposal", path_in_repo="p.txt", repo_id=repo_id, create_pr=True)
    assert info.pr_num == 1 and info.pr_revision == "refs/pr/1"
    assert not api.file_exists(repo_id, "p.txt")
    assert api.file_exists(repo_id, "p.txt", revision="refs/pr/1")
    api.upload_file(path_or_fileobj=b"more", path_in_repo="q.txt", repo_id=repo_id, revision="refs/pr/1")
    refs = api.list_repo_refs(repo_id, include_pull_requests=True)
    assert [p.ref for p in refs.pull_requests] == ["refs/pr/1"]


def test_validate_yaml(api):
    ok = httpx.post(f"{ENDPOINT}/api/validate-yaml", json={"content": "---\nlicense: mit\n---\n# hi",
                                                           "repoType": "model"})
    assert ok.status_code == 200 and ok.json() == {"errors": [], "warnings": []}
    bad = httpx.post(f"{ENDPOINT}/api/validate-yaml", json={"content": "---\nmodel-index: [{results: []}]\n---\n",
                                                            "repoType": "model"})
    assert bad.status_code == 400 and bad.json()["errors"]
