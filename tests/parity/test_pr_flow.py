"""Issue 12, as a user lives it: an outsider opens a pull request on a public model with the stock client, the
owner comments, the outsider pushes a second commit to it, the owner merges it; the files are on main, and the
owner's webhook heard every step, in order, in the Hub's payload."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import WebhookPayload, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from tests.conftest import ENDPOINT, free_port
from tests.parity.webhook_receiver import Receiver


@pytest.fixture
def receiver(tmp_path: Path):
    r = Receiver(free_port(), tmp_path / "got.jsonl").start()
    yield r
    r.stop()


def test_outsider_pull_request_reviewed_updated_merged_and_heard(api, bob_api, repo_factory, receiver, tmp_path):
    repo_id = repo_factory("pr-flow")
    api.upload_file(path_or_fileobj=b"base\n", path_in_repo="base.txt", repo_id=repo_id)
    hook = api.create_webhook(url=receiver.url, watched=[{"type": "model", "name": repo_id}],
                              domains=["repo", "discussion"], secret="flow")

    # bob is no member of anything of alice's: reading the repo is enough to propose a change.
    first = bob_api.upload_file(path_or_fileobj=b"hello from bob\n", path_in_repo="bob.txt", repo_id=repo_id,
                                create_pr=True, commit_message="Add bob.txt")
    num = first.pr_num
    assert num is not None and first.pr_url.endswith(f"/discussions/{num}")
    api.comment_discussion(repo_id, num, "Thanks! Could you add a second file?")
    second = bob_api.upload_file(path_or_fileobj=b"more\n", path_in_repo="more.txt", repo_id=repo_id,
                                 revision=f"refs/pr/{num}", commit_message="Add more.txt")
    with pytest.raises(HfHubHTTPError) as err:  # only a writer merges
        bob_api.merge_pull_request(repo_id, num)
    assert err.value.response.status_code == 403
    api.merge_pull_request(repo_id, num, comment="Merged, thanks")

    # The merged files are on main, for anyone.
    for name, text in (("bob.txt", "hello from bob\n"), ("more.txt", "more\n"), ("base.txt", "base\n")):
        path = hf_hub_download(repo_id, name, cache_dir=tmp_path / "cache", token=False)
        assert Path(path).read_text() == text
    details = api.get_discussion_details(repo_id, num)
    assert details.status == "merged" and details.is_pull_request and details.author == "bob"
    merge = details.merge_commit_oid
    assert merge == api.model_info(repo_id).sha
    kinds = [(e.type, e.author) for e in details.events]
    assert ("comment", "alice") in kinds and kinds.count(("commit", "bob")) == 2

    # The webhook: every step, in order.
    want = [("discussion", "create"), ("repo.content", "update"), ("discussion.comment", "create"),
            ("repo.content", "update"), ("repo.content", "update"), ("discussion.comment", "create"),
            ("discussion", "update")]
    got = receiver.wait_for(lambda ev: len(ev) >= len(want))
    assert [(e["body"]["event"]["scope"], e["body"]["event"]["action"]) for e in got] == want
    assert all(e["headers"].get("X-Webhook-Secret") == "flow" for e in got)
    p = [WebhookPayload.model_validate(e["body"]) for e in got]
    assert all(x.repo.name == repo_id and x.webhook.id == hook.id for x in p)
    assert p[0].discussion.isPullRequest and p[0].discussion.num == num and p[0].discussion.status == "open"
    assert p[0].discussion.url.web == f"{ENDPOINT}/{repo_id}/discussions/{num}"
    pr_ref = f"refs/pr/{num}"
    assert [(u.ref, u.oldSha, u.newSha) for u in p[1].updatedRefs] == [(pr_ref, None, first.oid)]
    assert p[2].comment.content == "Thanks! Could you add a second file?"
    assert [(u.ref, u.oldSha, u.newSha) for u in p[3].updatedRefs] == [(pr_ref, first.oid, second.oid)]
    assert [(u.ref, u.newSha) for u in p[4].updatedRefs] == [("refs/heads/main", merge)]
    assert p[5].comment.content == "Merged, thanks"
    assert p[6].discussion.status == "merged" and p[6].discussion.changes.mergeCommitId == merge
