"""Webhooks: `/api/settings/webhooks` as `HfApi` calls it, and real deliveries of the Hub's payload to a receiver
process — retried with backoff, kept across a server restart, never for a repo the webhook's owner can't read."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, WebhookPayload, WebhookWatchedItem
from huggingface_hub.errors import HfHubHTTPError

from tests.conftest import ENDPOINT, SERVER_ENV, User, free_port, start_server, stop_server
from tests.parity.webhook_receiver import Receiver


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def receiver(tmp_path: Path):
    r = Receiver(free_port(), tmp_path / "got.jsonl").start()
    yield r
    r.stop()


def _status(call) -> int:  # noqa: ANN001
    with pytest.raises(HfHubHTTPError) as err:
        call()
    return err.value.response.status_code


def _events(got: list[dict]) -> list[tuple[str, str]]:
    return [(e["body"]["event"]["scope"], e["body"]["event"]["action"]) for e in got]


def test_crud_as_hfapi_calls_it(api, bob_api, acme, repo_factory):
    repo_id = repo_factory("hooked")
    wh = api.create_webhook(url="http://127.0.0.1:9/a", domains=["repo"], secret="s3",
                            watched=[{"type": "model", "name": repo_id}, WebhookWatchedItem(type="user", name="alice")])
    assert len(wh.id) == 24 and wh.url == "http://127.0.0.1:9/a" and wh.job is None
    assert sorted((w.type, w.name) for w in wh.watched) == [("model", repo_id), ("user", "alice")]
    assert (wh.domains, wh.secret, wh.disabled) == (["repo"], "s3", False)
    assert api.get_webhook(wh.id) == wh
    assert wh in api.list_webhooks()

    up = api.update_webhook(wh.id, url="http://127.0.0.1:9/b", domains=["repo", "discussion"])
    assert up.url == "http://127.0.0.1:9/b" and up.domains == ["repo", "discussion"]
    assert up.watched == wh.watched and up.secret == "s3"  # the client sends watched=[]: kept
    up = api.update_webhook(wh.id, watched=[WebhookWatchedItem(type="org", name=acme)], secret="new")
    assert [(w.type, w.name) for w in up.watched] == [("org", acme)] and up.secret == "new"
    assert api.disable_webhook(wh.id).disabled is True
    assert api.get_webhook(wh.id).disabled is True
    assert api.enable_webhook(wh.id).disabled is False

    # Someone else's webhook is not found, whatever they try; it is not in their list.
    assert wh.id not in [w.id for w in bob_api.list_webhooks()]
    for call in (lambda: bob_api.get_webhook(wh.id), lambda: bob_api.disable_webhook(wh.id),
                 lambda: bob_api.update_webhook(wh.id, url="http://127.0.0.1:9/x"),
                 lambda: bob_api.delete_webhook(wh.id)):
        assert _status(call) == 404
    assert api.get_webhook(wh.id).url == "http://127.0.0.1:9/b"

    api.delete_webhook(wh.id)
    assert _status(lambda: api.get_webhook(wh.id)) == 404
    assert wh.id not in [w.id for w in api.list_webhooks()]


def test_bad_webhooks_are_refused_and_nothing_is_kept(api, alice: User, repo_factory):
    repo_id = repo_factory("bad-hook")
    before = len(api.list_webhooks())
    good = {"url": "http://127.0.0.1:9/", "watched": [{"type": "model", "name": repo_id}], "domains": ["repo"]}
    for bad in ({**good, "url": "ftp://example.com/"}, {**good, "url": None}, {**good, "domains": ["likes"]},
                {**good, "watched": []}, {**good, "watched": [{"type": "bucket", "name": "alice/b"}]},
                {"jobSourceId": "abc", "watched": good["watched"]}):
        r = httpx.post(f"{ENDPOINT}/api/settings/webhooks", json=bad, headers=bearer(alice.token))
        assert r.status_code == 400, (bad, r.text)
    assert httpx.post(f"{ENDPOINT}/api/settings/webhooks", json=good).status_code == 401
    assert httpx.post(f"{ENDPOINT}/api/settings/webhooks", json=good,
                      headers=bearer(alice.read_token)).status_code == 403
    nobody = {**good, "watched": [{"type": "user", "name": "nobody-x"}]}
    r = httpx.post(f"{ENDPOINT}/api/settings/webhooks", json=nobody, headers=bearer(alice.token))
    assert r.status_code == 404
    assert len(api.list_webhooks()) == before


def test_watching_a_repo_you_cannot_read_is_refused_as_a_missing_one(bob: User, repo_factory):
    private = repo_factory("hidden", private=True)

    def refusal(name: str) -> tuple:
        r = httpx.post(f"{ENDPOINT}/api/settings/webhooks", headers=bearer(bob.token),
                       json={"url": "http://127.0.0.1:9/", "watched": [{"type": "model", "name": name}]})
        return r.status_code, r.headers.get("x-error-code"), r.json()

    assert refusal(private) == refusal(f"alice/missing-{uuid.uuid4().hex[:8]}")
    assert refusal(private)[:2] == (404, "RepoNotFound")


def _git(*args: str | Path, cwd: Path | None = None, home: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1")
    proc = subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_events_are_delivered_in_the_hub_payload_with_the_secret(api, alice: User, repo_factory, receiver,
                                                                  tmp_path: Path):
    repo_id = repo_factory("delivered")
    wh = api.create_webhook(url=receiver.url, watched=[{"type": "model", "name": repo_id}],
                            domains=["repo", "discussion"], secret="hush")
    commit = api.upload_file(path_or_fileobj=b"hi", path_in_repo="a.txt", repo_id=repo_id)
    api.create_branch(repo_id, branch="dev")
    api.create_tag(repo_id, tag="v1")
    work = tmp_path / "clone"
    _git("clone", "-q", f"http://alice:{alice.token}@127.0.0.1:{ENDPOINT.rsplit(':', 1)[1]}/{repo_id}", work,
         home=tmp_path)
    (work / "pushed.txt").write_text("by git\n")
    _git("add", "pushed.txt", cwd=work, home=tmp_path)
    _git("commit", "-q", "-m", "push", cwd=work, home=tmp_path)
    _git("push", "-q", "origin", "HEAD:refs/heads/dev", cwd=work, home=tmp_path)
    pushed = _git("rev-parse", "HEAD", cwd=work, home=tmp_path)
    disc = api.create_discussion(repo_id, title="Hello")
    api.comment_discussion(repo_id, disc.num, "First!")
    api.change_discussion_status(repo_id, disc.num, "closed")
    api.update_repo_settings(repo_id, private=True)

    want = [("repo.content", "update")] * 4 + [("discussion", "create"), ("discussion.comment", "create"),
                                               ("discussion", "update"), ("repo.config", "update")]
    got = receiver.wait_for(lambda ev: len(ev) >= len(want))
    assert _events(got) == want
    assert all(e["headers"].get("X-Webhook-Secret") == "hush" for e in got)
    payloads = [WebhookPayload.model_validate(e["body"]) for e in got]  # the client's own model reads them
    first = got[0]["body"]
    assert first["updatedRefs"] == [{"ref": "refs/heads/main", "oldSha": first["updatedRefs"][0]["oldSha"],
                                     "newSha": commit.oid}]
    assert first["repo"]["headSha"] == commit.oid
    assert first["repo"]["url"] == {"web": f"{ENDPOINT}/{repo_id}", "api": f"{ENDPOINT}/api/models/{repo_id}"}
    assert first["webhook"] == {"id": wh.id, "version": 3}
    assert payloads[0].repo.name == repo_id and payloads[0].repo.type == "model" and not payloads[0].repo.private
    assert [u.ref for p in payloads[1:3] for u in p.updatedRefs] == ["refs/heads/dev", "refs/tags/v1"]
    assert got[3]["body"]["updatedRefs"][0]["ref"] == "refs/heads/dev"  # the git push
    assert got[3]["body"]["updatedRefs"][0]["newSha"] == pushed
    assert payloads[4].discussion.num == disc.num and payloads[4].discussion.title == "Hello"
    assert payloads[4].discussion.url.web == f"{ENDPOINT}/{repo_id}/discussions/{disc.num}"
    assert payloads[5].comment.content == "First!" and payloads[5].comment.hidden is False
    assert payloads[6].discussion.status == "closed"
    assert payloads[7].repo.private is True

    log = httpx.get(f"{ENDPOINT}/api/settings/webhooks/{wh.id}/deliveries", headers=bearer(alice.token)).json()
    assert [d["status"] for d in log["deliveries"]] == ["delivered"] * len(want)
    assert log["deliveries"][0]["log"][0]["statusCode"] == 200


def test_no_events_of_repos_the_owner_cannot_read(api, bob_api, repo_factory, receiver):
    """bob watches alice: he hears of her public repos, never of her private ones (nor of one made private)."""
    bob_api.create_webhook(url=receiver.url, watched=[{"type": "user", "name": "alice"}], domains=["repo"])
    hidden = repo_factory("private-one", private=True)
    api.upload_file(path_or_fileobj=b"secret", path_in_repo="s.txt", repo_id=hidden)
    public = repo_factory("public-one")
    receiver.wait_for(lambda ev: any(e["body"]["repo"]["name"] == public for e in ev))
    api.update_repo_settings(public, private=True)
    api.upload_file(path_or_fileobj=b"secret", path_in_repo="s.txt", repo_id=public)
    marker = repo_factory("marker")
    got = receiver.wait_for(lambda ev: any(e["body"]["repo"]["name"] == marker for e in ev))
    names = {e["body"]["repo"]["name"] for e in got}
    assert hidden not in names
    assert [e["body"]["event"]["action"] for e in got if e["body"]["repo"]["name"] == public] == ["create"]
    for wh in bob_api.list_webhooks():
        bob_api.delete_webhook(wh.id)


# -- a server of our own: fast retries, a restart ---------------------------------------------------------------

FAST = {"COVE_WEBHOOK_POLL_INTERVAL": "0.2", "COVE_WEBHOOK_RETRY_BASE": "0.3", "COVE_SCAN_INTERVAL": "0"}


def _user(data: Path, name: str) -> str:
    env = {**SERVER_ENV, "COVE_DATA": str(data)}

    def run(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()

    run("user", "add", name, "--password", f"{name}-password")
    return run("token", "create", name, "--role", "write", "--name", "t")


def _deliveries(endpoint: str, token: str, webhook_id: str) -> list[dict]:
    r = httpx.get(f"{endpoint}/api/settings/webhooks/{webhook_id}/deliveries", headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


def _until(check, timeout: float = 30):  # noqa: ANN001, ANN202
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_failures_are_retried_with_backoff_then_given_up(tmp_path: Path):
    srv = start_server(tmp_path / "data", free_port(), **FAST, COVE_WEBHOOK_MAX_ATTEMPTS="4")
    flaky = Receiver(free_port(), tmp_path / "flaky.jsonl", failures=2).start()
    try:
        token, bob = _user(srv.data, "carol"), _user(srv.data, "dave")
        carol, dave = HfApi(endpoint=srv.endpoint, token=token), HfApi(endpoint=srv.endpoint, token=bob)
        carol.create_repo("carol/m")
        carol.create_repo("carol/p")
        hook = carol.create_webhook(url=flaky.url, watched=[{"type": "model", "name": "carol/m"}], domains=["repo"])
        dead = carol.create_webhook(url=f"http://127.0.0.1:{free_port()}/",
                                    watched=[{"type": "model", "name": "carol/m"}], domains=["repo"])
        dave_hook = dave.create_webhook(url=f"http://127.0.0.1:{free_port()}/",
                                        watched=[{"type": "model", "name": "carol/p"}], domains=["repo"])
        # dave's event is queued (he could read carol/p then); carol makes it private before it gets through:
        # access is checked again at each try, so it is dropped, not sent.
        carol.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="carol/p")
        carol.update_repo_settings("carol/p", private=True)
        start = time.time()
        carol.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="carol/m")
        # 500, 500, then 200: the third try delivers, after waits of 0.3 s and 0.6 s.
        got = flaky.wait_for(lambda ev: len(ev) >= 1)
        assert got[0]["body"]["event"] == {"action": "update", "scope": "repo.content"}
        assert time.time() - start >= 0.9
        [row] = _deliveries(srv.endpoint, token, hook.id)
        assert row["status"] == "delivered" and row["attempts"] == 3
        assert [t["statusCode"] for t in row["log"]] == [500, 500, 200]
        assert "not now" in row["log"][0]["error"]
        [row] = _until(lambda: [r for r in _deliveries(srv.endpoint, bob, dave_hook.id) if r["status"] == "skipped"])
        assert row["log"][-1]["error"] == "the webhook's owner cannot read this repo"
        assert all(t["statusCode"] is None for t in row["log"])
        # Nobody listening: four tries, then given up, each error logged.
        [row] = _until(lambda: [r for r in _deliveries(srv.endpoint, token, dead.id) if r["status"] == "failed"])
        assert row["attempts"] == 4 and all(t["statusCode"] is None and t["error"] for t in row["log"])
    finally:
        flaky.stop()
        stop_server(srv.proc)


def test_a_queued_delivery_survives_a_restart(tmp_path: Path):
    port, data = free_port(), tmp_path / "data"
    env = {**FAST, "COVE_WEBHOOK_MAX_ATTEMPTS": "1000", "COVE_WEBHOOK_RETRY_MAX": "0.5"}
    srv = start_server(data, port, **env)
    receiver = Receiver(free_port(), tmp_path / "got.jsonl")
    try:
        token = _user(data, "erin")
        erin = HfApi(endpoint=srv.endpoint, token=token)
        hook = erin.create_webhook(url=receiver.url, watched=[{"type": "user", "name": "erin"}], domains=["repo"])
        erin.create_repo("erin/m")
        _until(lambda: any(r["attempts"] >= 1 for r in _deliveries(srv.endpoint, token, hook.id)))
        stop_server(srv.proc)  # the receiver is down: the event is still queued
        receiver.start()
        srv = start_server(data, port, **env)
        got = receiver.wait_for(lambda ev: len(ev) == 1)
        assert got[0]["body"]["event"] == {"action": "create", "scope": "repo"}
        assert got[0]["body"]["repo"]["name"] == "erin/m"
        [row] = _deliveries(srv.endpoint, token, hook.id)
        assert row["status"] == "delivered" and row["attempts"] >= 2
    finally:
        receiver.stop()
        stop_server(srv.proc)


def test_block_private_refuses_loopback_private_and_link_local_receivers():
    """`COVE_WEBHOOK_BLOCK_PRIVATE`: the check each try makes before it connects."""
    from cove.services.webhook_delivery import blocked_address

    for url in ("http://127.0.0.1:9/", "http://localhost/", "http://10.1.2.3/", "http://192.168.0.1/",
                "http://169.254.169.254/latest/meta-data", "http://[::1]:80/", "http://0.0.0.0/"):
        assert blocked_address(url), url
    assert blocked_address("https://93.184.216.34/hook") is None


def test_a_move_is_reported_and_the_watch_follows_the_repo(api, repo_factory, receiver):
    repo_id = repo_factory("moving")
    hook = api.create_webhook(url=receiver.url, watched=[{"type": "model", "name": repo_id}], domains=["repo"])
    new_id = f"{repo_id}-moved"
    api.move_repo(repo_id, new_id)
    try:
        api.upload_file(path_or_fileobj=b"after\n", path_in_repo="after.txt", repo_id=new_id)
        got = receiver.wait_for(lambda ev: len(ev) >= 2)
        assert _events(got) == [("repo", "move"), ("repo.content", "update")]
        moved = WebhookPayload.model_validate(got[0]["body"])
        assert moved.repo.name == repo_id and moved.movedTo.name == new_id
        assert got[1]["body"]["repo"]["name"] == new_id
        assert [(w.type, w.name) for w in api.get_webhook(hook.id).watched] == [("model", new_id)]
    finally:
        api.delete_repo(new_id, missing_ok=True)


def test_several_processes_send_each_event_once(tmp_path: Path):
    """Two `cove serve` worker processes, each with its delivery worker, polling fast, and a slow receiver, so
    both see the same backlog: every event arrives once (each try is claimed by one process)."""
    env = {**FAST, "COVE_WEBHOOK_POLL_INTERVAL": "0.05", "COVE_WORKERS": "2"}
    srv = start_server(tmp_path / "data", free_port(), **env)
    receiver = Receiver(free_port(), tmp_path / "got.jsonl", delay=0.1).start()
    try:
        token = _user(srv.data, "fred")
        fred = HfApi(endpoint=srv.endpoint, token=token)
        fred.create_repo("fred/m")
        fred.create_webhook(url=receiver.url, watched=[{"type": "model", "name": "fred/m"}], domains=["repo"])
        shas = [fred.upload_file(path_or_fileobj=f"{i}".encode(), path_in_repo="f.txt", repo_id="fred/m").oid
                for i in range(20)]
        receiver.wait_for(lambda ev: len(ev) >= 20)
        time.sleep(1)  # a duplicate would come now
        assert sorted(e["body"]["updatedRefs"][0]["newSha"] for e in receiver.events()) == sorted(shas)
    finally:
        receiver.stop()
        stop_server(srv.proc)


def test_comment_edits_and_hiding_are_reported(api, repo_factory, receiver):
    repo_id = repo_factory("comments")
    disc = api.create_discussion(repo_id, title="Typos")
    api.create_webhook(url=receiver.url, watched=[{"type": "model", "name": repo_id}], domains=["discussion"])
    comment = api.comment_discussion(repo_id, disc.num, "teh")
    api.edit_discussion_comment(repo_id, disc.num, comment.id, "the")
    with pytest.warns(UserWarning):
        api.hide_discussion_comment(repo_id, disc.num, comment.id)
    got = receiver.wait_for(lambda ev: len(ev) >= 3)
    assert _events(got) == [("discussion.comment", "create"), ("discussion.comment", "update"),
                            ("discussion.comment", "update")]
    p = [WebhookPayload.model_validate(e["body"]) for e in got]
    assert {x.comment.id for x in p} == {comment.id}
    assert [(x.comment.content, x.comment.hidden) for x in p] == [("teh", False), ("the", False), (None, True)]
