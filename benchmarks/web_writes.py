"""Render time of the pages that write (issue 15), in-process, on a hub seeded at scale.

    python benchmarks/web_writes.py            # ~1-2 minutes; JSON in benchmarks/results/web_writes.json

The hub (SQLite, a temp folder) holds 1,000 repos, one of them with 10,000 commits (a file changed every 100th
commit, another only in the first), a pull request with 300 comments, 300 other discussions, 500 access
requests, and an org with 200 members. Each page is fetched through FastAPI's TestClient (no network, one
thread: what a request costs the server), signed in as the owner: the first fetch (cold: nothing cached, the
history pages' LRU in `cove.web.gitviews` empty) and the median of 7 more. Target: under 0.3 s each.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.3


def seed(data: Path, commits: int, repos: int):  # noqa: ANN201
    from cove.app import create_app
    from cove.backends import build_backends
    from cove.db.migrate import upgrade
    from cove.db.tables import AccessRequest
    from cove.services import accounts, discussions
    from cove.services import repos as repos_service
    from cove.services.accounts import actor_for_user
    from cove.settings import Settings
    from cove.storage.git_repos import FileOp

    settings = Settings(data=data, endpoint="http://hub.test", secret="s")
    bk = build_backends(settings)
    upgrade(bk)
    with bk.db.session() as db:
        owner = accounts.add_user(db, "owner", password="owner-password")
        users = [accounts.add_user(db, f"user{i}") for i in range(500)]
        accounts.add_org(db, "bigorg", owner="owner")
        for u in users[:200]:
            accounts.add_member(db, "bigorg", u.name, role="read")
        actor = actor_for_user(db, owner)
        for i in range(repos - 1):
            repos_service.create(db, bk, actor, repo_type="model", namespace="owner", name=f"m{i}")
        repo, _ = repos_service.create(db, bk, actor, repo_type="model", namespace="owner", name="big")
        key = repo.storage_key
        head = bk.repos.resolve(key, "main")
        for i in range(commits):
            ops = [FileOp("counter.txt", f"{i}\n".encode())]
            if i == 0:
                ops += [FileOp("rare.txt", b"once\n"), FileOp("README.md", b"---\nlicense: mit\n---\n# Big\n" * 20)]
            if i % 100 == 0:
                ops.append(FileOp("README.md", f"---\nlicense: mit\n---\n# Big {i}\n".encode() + b"line\n" * 50))
            head = bk.repos.write_commit(key, parent=head, ops=ops, author="owner", message=f"commit {i}")
            if i == commits // 2:
                bk.repos.update_ref(key, "refs/tags/v1", head, "0" * 40)
        bk.repos.update_ref(key, "refs/heads/main", head, bk.repos.resolve(key, "main"))
        repos_service.reindex(db, bk, repo, head)
        pr_head = bk.repos.write_commit(key, parent=head, ops=[FileOp("README.md", b"# changed\n" * 100)],
                                        author="user1", message="PR change")
        pr = discussions.open_discussion(db, bk, repo, title="A pull request", description="desc",
                                         author="user1", pr_head=pr_head)
        for i in range(300):
            discussions.add_event(db, pr, "comment", f"user{i % 50}", {"raw": f"Comment **{i}** with `code`"})
        for i in range(300):
            discussions.open_discussion(db, bk, repo, title=f"Question {i}", description="?", author="user2")
        repo.gated = "manual"
        for u in users:
            db.add(AccessRequest(repo_pk=repo.id, user_id=u.id, status="pending", fields={"Company": "X"}))
    return create_app(settings, bk)


def signed_in(app):  # noqa: ANN001, ANN201
    """A TestClient of ``app`` signed in (web session) as the seeded hub's ``owner``."""
    from fastapi.testclient import TestClient

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.web.conftest import csrf_of

    client = TestClient(app, base_url="http://hub.test")
    login = client.get("/login")
    r = client.post("/login", data={"csrf_token": csrf_of(login.text), "username": "owner",
                                     "password": "owner-password"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=10_000)
    ap.add_argument("--repos", type=int, default=1000)
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "web_writes.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cove-web-bench-") as tmp:
        t0 = time.perf_counter()
        app = seed(Path(tmp), args.commits, args.repos)
        seeded = time.perf_counter() - t0
        client = signed_in(app)
        pages = ["/new", "/new-space", "/owner/big/upload/main", "/owner/big/new/main",
                 "/owner/big/edit/main/README.md", "/owner/big/delete/main/rare.txt",
                 "/owner/big/discussions", "/owner/big/discussions?status=all&type=discussion",
                 "/owner/big/discussions/1", "/owner/big/discussions/1?tab=files",
                 "/owner/big/compare/v1...main", "/owner/big/commits/main/README.md",
                 "/owner/big/commits/main/rare.txt", "/owner/big/blame/main/README.md",
                 "/owner/big/tree/main", "/owner/big/settings", "/owner/big/settings/access-requests",
                 "/organizations/bigorg/settings/members", "/organizations/new"]
        rows = []
        for path in pages:
            t = time.perf_counter()
            r = client.get(path)
            first = time.perf_counter() - t
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
            times = []
            for _ in range(7):
                t = time.perf_counter()
                client.get(path)
                times.append(time.perf_counter() - t)
            rows.append({"page": path, "first_s": round(first, 4), "median_s": round(statistics.median(times), 4),
                         "max_s": round(max(times), 4), "bytes": len(r.content)})
    print(f"seeded {args.repos} repos, {args.commits} commits in {seeded:.0f} s")
    print(f"{'page':58} {'first':>8} {'median':>8} {'max':>8} {'KB':>6}")
    for row in rows:
        flag = "" if max(row["median_s"], row["first_s"]) < TARGET_S else "  > target"
        print(f"{row['page']:58} {row['first_s']:8.3f} {row['median_s']:8.3f} {row['max_s']:8.3f} "
              f"{row['bytes'] / 1000:6.0f}{flag}")
    out = {"target_s": TARGET_S, "commits": args.commits, "repos": args.repos, "machine": platform.platform(),
           "python": platform.python_version(), "pages": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
