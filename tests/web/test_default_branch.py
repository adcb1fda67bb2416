"""A repo's default branch (issue 15 item 5): set on the settings page; every read without a revision follows it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError

from tests.conftest import ENDPOINT
from tests.web.conftest import csrf_of


def _card(license_: str, title: str) -> bytes:
    return f"---\nlicense: {license_}\n---\n# {title}\n".encode()


def _clone(url: str, dest: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "HOME": str(dest.parent), "GIT_LFS_SKIP_SMUDGE": "1"}
    return subprocess.run(["git", "clone", "-q", url, str(dest)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_default_branch_set_in_settings_drives_every_read(alice_web, bob_web, api, repo_factory, tmp_path):
    repo_id = repo_factory("defbranch")
    api.upload_file(path_or_fileobj=_card("mit", "On main"), path_in_repo="README.md", repo_id=repo_id)
    api.create_branch(repo_id, branch="dev")
    api.create_commit(repo_id, revision="dev", commit_message="dev only", operations=[
        CommitOperationAdd("README.md", _card("apache-2.0", "On dev")),
        CommitOperationAdd("only-dev.txt", b"from dev\n")])
    dev_head = api.list_repo_refs(repo_id).branches
    dev_head = next(b.target_commit for b in dev_head if b.name == "dev")

    page = alice_web.get(f"/{repo_id}/settings")
    assert page.status_code == 200 and 'id="default-branch">main<' in page.text
    token = csrf_of(page.text)
    # Not a branch: refused, nothing changes. Someone who is not the namespace's admin: refused.
    r = alice_web.post(f"/{repo_id}/settings", data={"csrf_token": token, "action": "default-branch", "branch": "nope"})
    assert r.status_code == 404
    bob_page = bob_web.get(f"/{repo_id}")
    r = bob_web.post(f"/{repo_id}/settings", data={"csrf_token": csrf_of(bob_page.text), "action": "default-branch",
                                                   "branch": "dev"})
    assert r.status_code == 403
    assert api.model_info(repo_id).card_data["license"] == "mit"
    # No CSRF token: refused.
    assert alice_web.post(f"/{repo_id}/settings", data={"action": "default-branch", "branch": "dev"}).status_code == 403

    r = alice_web.post(f"/{repo_id}/settings", data={"csrf_token": token, "action": "default-branch", "branch": "dev"})
    assert r.status_code == 303 and r.headers["location"].endswith("/settings?saved=default-branch")
    assert 'id="default-branch">dev<' in alice_web.get(f"/{repo_id}/settings").text

    # The API without a revision: dev's head and dev's card (the index follows the default branch).
    info = api.model_info(repo_id)
    assert info.sha == dev_head and info.card_data["license"] == "apache-2.0"
    assert "only-dev.txt" in {s.rfilename for s in info.siblings}
    # main is an ordinary branch now: it can be deleted; the default one cannot.
    with pytest.raises(HfHubHTTPError) as err:
        api.delete_branch(repo_id, branch="dev")
    assert err.value.response.status_code == 403
    api.delete_branch(repo_id, branch="main")
    # The stock clients send `main` for "no revision" (hf_hub_download, snapshot_download): with no branch of
    # that name it means the default branch, so they get dev's bytes.
    snap = snapshot_download(repo_id, endpoint=ENDPOINT, token=api.token, cache_dir=tmp_path / "cache")
    assert (Path(snap) / "only-dev.txt").read_text() == "from dev\n"
    got = hf_hub_download(repo_id, "only-dev.txt", endpoint=ENDPOINT, token=api.token, cache_dir=tmp_path / "c2")
    assert Path(got).read_text() == "from dev\n"
    assert "only-dev.txt" in api.list_repo_files(repo_id)
    # A commit without a revision lands on the default branch.
    api.upload_file(path_or_fileobj=b"later\n", path_in_repo="later.txt", repo_id=repo_id)
    assert "later.txt" in {f.path for f in api.list_repo_tree(repo_id, revision="dev")}

    # git clone checks out the default branch (HEAD).
    clone = tmp_path / "clone"
    proc = _clone(f"{ENDPOINT}/{repo_id}", clone)
    assert proc.returncode == 0, proc.stderr
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert head == "dev" and (clone / "only-dev.txt").read_text() == "from dev\n"

    # Pages: the card is dev's, the Files tab opens dev.
    repo_page = alice_web.get(f"/{repo_id}")
    assert repo_page.status_code == 200 and "On dev" in repo_page.text and f'/{repo_id}/tree/dev"' in repo_page.text
    assert "later.txt" in alice_web.get(f"/{repo_id}/tree/dev").text


def test_pull_requests_target_the_default_branch(alice_web, api, repo_factory):
    repo_id = repo_factory("defbranch-pr")
    api.create_branch(repo_id, branch="stable")
    api.upload_file(path_or_fileobj=b"stable\n", path_in_repo="stable.txt", repo_id=repo_id, revision="stable")
    page = alice_web.get(f"/{repo_id}/settings")
    r = alice_web.post(f"/{repo_id}/settings", data={"csrf_token": csrf_of(page.text), "action": "default-branch",
                                                     "branch": "stable"})
    assert r.status_code == 303
    pr = api.upload_file(path_or_fileobj=b"proposed\n", path_in_repo="proposed.txt", repo_id=repo_id,
                         create_pr=True)
    num = int(pr.pr_num)
    details = api.get_discussion_details(repo_id, num)
    assert details.target_branch == "refs/heads/stable"
    pr_page = alice_web.get(f"/{repo_id}/discussions/{num}")
    assert "<code>stable</code>" in pr_page.text
    api.merge_pull_request(repo_id, num)
    files = set(api.list_repo_files(repo_id, revision="stable"))
    assert {"stable.txt", "proposed.txt"} <= files
    assert "proposed.txt" not in api.list_repo_files(repo_id, revision="main")


def test_pull_request_webhooks_name_the_default_branch_as_base(alice_web, api, repo_factory, tmp_path):
    from huggingface_hub import WebhookPayload

    from tests.conftest import free_port
    from tests.parity.webhook_receiver import Receiver

    repo_id = repo_factory("defbranch-hook")
    api.create_branch(repo_id, branch="stable")
    page = alice_web.get(f"/{repo_id}/settings")
    r = alice_web.post(f"/{repo_id}/settings", data={"csrf_token": csrf_of(page.text), "action": "default-branch",
                                                     "branch": "stable"})
    assert r.status_code == 303
    receiver = Receiver(free_port(), tmp_path / "got.jsonl").start()
    try:
        api.create_webhook(url=receiver.url, watched=[{"type": "model", "name": repo_id}], domains=["discussion"])
        api.upload_file(path_or_fileobj=b"proposed\n", path_in_repo="proposed.txt", repo_id=repo_id, create_pr=True)
        got = receiver.wait_for(lambda ev: len(ev) >= 1)
    finally:
        receiver.stop()
    payload = WebhookPayload.model_validate(got[0]["body"])
    assert payload.discussion.isPullRequest and payload.discussion.changes.base == "refs/heads/stable"
