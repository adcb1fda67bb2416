"""Discussions and pull requests, driven by the stock huggingface_hub client: details, comments, status, title."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from huggingface_hub.community import DiscussionComment, DiscussionStatusChange, DiscussionTitleChange
from huggingface_hub.errors import HfHubHTTPError


def test_discussion_round_trip_has_the_hub_shape(api, alice, repo_factory):
    repo_id = repo_factory("disc")
    d = api.create_discussion(repo_id, title="A question", description="What is this?")
    assert (d.title, d.status, d.author, d.is_pull_request) == ("A question", "open", alice.name, False)
    assert d.conflicting_files is None and d.target_branch is None
    first = d.events[0]
    assert isinstance(first, DiscussionComment)
    assert (first.content, first.edited, first.hidden, first.author) == ("What is this?", False, False, alice.name)
    assert first.last_edited_by == alice.name and first.last_edited_at and isinstance(first.rendered, str)
    assert first.edit_history == [] or isinstance(first.edit_history, list)


def test_pull_request_details(api, repo_factory):
    repo_id = repo_factory("pr")
    pr = api.create_pull_request(repo_id, title="Add a file", description="See the diff")
    api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id=repo_id, revision=pr.git_reference,
                    commit_message="add a.txt")
    pr = api.get_discussion_details(repo_id, pr.num)
    assert pr.is_pull_request and pr.target_branch == "refs/heads/main"
    assert pr.conflicting_files == [] and pr.merge_commit_oid is None
    assert "a.txt" in (pr.diff or "")
    commits = [e for e in pr.events if e.type == "commit"]
    assert [c.summary for c in commits] == ["add a.txt"] and len(commits[0].oid) == 40


def test_comment_status_rename(api, bob_api, alice, bob, repo_factory):
    repo_id = repo_factory("flow")
    d = api.create_discussion(repo_id, title="Typo", description="first")
    c = bob_api.comment_discussion(repo_id, d.num, "me too")  # anyone with a write token who can read the repo
    assert isinstance(c, DiscussionComment) and (c.author, c.content, c.edited, c.hidden) == (bob.name, "me too",
                                                                                                False, False)
    with pytest.raises(HfHubHTTPError) as e:
        HfApi(token=bob.read_token).comment_discussion(repo_id, d.num, "no")
    assert e.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as e:  # not the author, not a writer
        bob_api.change_discussion_status(repo_id, d.num, "closed")
    assert e.value.response.status_code == 403
    t = api.rename_discussion(repo_id, d.num, "Typo in README")
    assert isinstance(t, DiscussionTitleChange) and (t.old_title, t.new_title) == ("Typo", "Typo in README")
    s = api.change_discussion_status(repo_id, d.num, "closed", comment="fixed")
    assert isinstance(s, DiscussionStatusChange) and s.new_status == "closed" and s.author == alice.name
    details = api.get_discussion_details(repo_id, d.num)
    assert details.title == "Typo in README" and details.status == "closed"
    assert [(e.type, e.author) for e in details.events] == [
        ("comment", alice.name), ("comment", bob.name), ("title-change", alice.name),
        ("comment", alice.name), ("status-change", alice.name)]
    assert details.events[1].content == "me too" and details.events[1].edited is False
    listed = {x.num: x.status for x in api.get_repo_discussions(repo_id)}
    assert listed == {d.num: "closed"}
    assert [x.num for x in api.get_repo_discussions(repo_id, discussion_status="open")] == []
    assert [x.num for x in api.get_repo_discussions(repo_id, discussion_status="closed")] == [d.num]


def test_private_repo_discussions_are_missing(api, bob_api, repo_factory):
    repo_id = repo_factory("priv", private=True)
    d = api.create_discussion(repo_id, title="internal")
    api.comment_discussion(repo_id, d.num, "members only")
    for call in (lambda: bob_api.get_discussion_details(repo_id, d.num),
                 lambda: bob_api.comment_discussion(repo_id, d.num, "hi"),
                 lambda: bob_api.rename_discussion(repo_id, d.num, "x")):
        with pytest.raises(HfHubHTTPError) as e:
            call()
        assert e.value.response.status_code == 404


def test_hf_discussions_cli_end_to_end(api, alice, server, repo_factory, tmp_path):
    """`hf discussions` comment, rename, close, list, info and diff, as a user types them."""
    repo_id = repo_factory("cli")
    pr = api.create_pull_request(repo_id, title="Add b", description="please")
    api.upload_file(path_or_fileobj=b"bee", path_in_repo="b.txt", repo_id=repo_id, revision=pr.git_reference)
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    env.update(HF_ENDPOINT=server.endpoint, HF_HOME=str(tmp_path / "hf"), HF_TOKEN=alice.token)
    hf = str(Path(sys.executable).with_name("hf"))

    def run(*args: str) -> str:
        done = subprocess.run([hf, "discussions", *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    run("comment", repo_id, str(pr.num), "--body", "looks good")
    run("rename", repo_id, str(pr.num), "Add b.txt")
    run("close", repo_id, str(pr.num), "--comment", "later", "--yes")
    assert "Add b.txt" in run("list", repo_id, "--status", "closed")
    assert "b.txt" in run("diff", repo_id, str(pr.num))
    info = json.loads(run("info", repo_id, str(pr.num), "--format", "json"))
    assert info["status"] == "closed" and info["title"] == "Add b.txt"
    details = api.get_discussion_details(repo_id, pr.num)
    assert [e.type for e in details.events if e.type != "commit"] == [
        "comment", "comment", "title-change", "comment", "status-change"]


def test_edit_and_hide_comments(api, bob_api, alice, bob, repo_factory):
    repo_id = repo_factory("edit")
    d = api.create_discussion(repo_id, title="Edits", description="frist")
    c = bob_api.comment_discussion(repo_id, d.num, "secret tokn")
    opening = api.get_discussion_details(repo_id, d.num).events[0]
    edited = api.edit_discussion_comment(repo_id, d.num, opening.id, "first")
    assert (edited.content, edited.edited, edited.number_of_edits, edited.last_edited_by) == ("first", True, 1,
                                                                                             alice.name)
    with pytest.raises(HfHubHTTPError) as e:  # only its author edits a comment
        api.edit_discussion_comment(repo_id, d.num, c.id, "changed")
    assert e.value.response.status_code == 403
    fixed = bob_api.edit_discussion_comment(repo_id, d.num, c.id, "secret token")
    assert fixed.content == "secret token" and fixed.edit_history[0]["raw"] == "secret tokn"
    with pytest.raises(HfHubHTTPError) as e:  # hiding is the repo's writers' call
        bob_api.hide_discussion_comment(repo_id, d.num, c.id)
    assert e.value.response.status_code == 403
    hidden = api.hide_discussion_comment(repo_id, d.num, c.id)
    assert hidden.hidden
    details = api.get_discussion_details(repo_id, d.num)
    assert details.events[0].content == "first"
    after = details.events[1]
    assert after.hidden and "secret" not in json.dumps(after._event)
    with pytest.raises(HfHubHTTPError) as e:
        api.edit_discussion_comment(repo_id, d.num, "e" + "f" * 23, "x")
    assert e.value.response.status_code == 404


def test_merge_pull_request(api, bob_api, repo_factory):
    repo_id = repo_factory("merge")
    api.upload_file(path_or_fileobj=b"base", path_in_repo="shared.txt", repo_id=repo_id)
    pr = api.create_pull_request(repo_id, title="Add c")
    api.upload_file(path_or_fileobj=b"sea", path_in_repo="c.txt", repo_id=repo_id, revision=pr.git_reference,
                    commit_message="add c.txt")
    api.upload_file(path_or_fileobj=b"main moved", path_in_repo="d.txt", repo_id=repo_id)  # main moves meanwhile
    with pytest.raises(HfHubHTTPError) as e:  # merging writes to main: writers only
        bob_api.merge_pull_request(repo_id, pr.num)
    assert e.value.response.status_code == 403
    api.merge_pull_request(repo_id, pr.num, comment="thanks")
    files = set(api.list_repo_files(repo_id))
    assert {"c.txt", "d.txt", "shared.txt"} <= files
    details = api.get_discussion_details(repo_id, pr.num)
    main = api.list_repo_commits(repo_id)[0].commit_id
    assert details.status == "merged" and details.merge_commit_oid == main
    assert [c.summary for c in details.events if c.type == "commit"] == ["add c.txt"]
    assert details.events[-1].type == "status-change" and details.events[-1].new_status == "merged"
    assert "c.txt" in (details.diff or "")
    with pytest.raises(HfHubHTTPError) as e:
        api.merge_pull_request(repo_id, pr.num)
    assert e.value.response.status_code == 400

    conflicting = api.create_pull_request(repo_id, title="Edit shared")
    api.upload_file(path_or_fileobj=b"pr side", path_in_repo="shared.txt", repo_id=repo_id,
                    revision=conflicting.git_reference)
    api.upload_file(path_or_fileobj=b"main side", path_in_repo="shared.txt", repo_id=repo_id)
    assert api.get_discussion_details(repo_id, conflicting.num).conflicting_files == ["shared.txt"]
    with pytest.raises(HfHubHTTPError) as e:
        api.merge_pull_request(repo_id, conflicting.num)
    assert e.value.response.status_code == 409
    assert api.hf_hub_download(repo_id, "shared.txt") and api.get_discussion_details(
        repo_id, conflicting.num).status == "open"


def test_list_filters_by_type_and_author(api, bob_api, alice, bob, repo_factory):
    repo_id = repo_factory("filters")
    d = api.create_discussion(repo_id, title="by alice")
    pr = api.create_pull_request(repo_id, title="a PR")
    theirs = bob_api.create_discussion(repo_id, title="by bob")
    assert [x.num for x in api.get_repo_discussions(repo_id, discussion_type="pull_request")] == [pr.num]
    assert [x.num for x in api.get_repo_discussions(repo_id, discussion_type="discussion")] == [theirs.num, d.num]
    assert [x.num for x in api.get_repo_discussions(repo_id, author=bob.name)] == [theirs.num]
    listed = api.get_repo_discussions(repo_id, author=alice.name, discussion_type="discussion")
    assert [(x.num, x.status, x.author) for x in listed] == [(d.num, "open", alice.name)]
