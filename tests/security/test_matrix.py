"""The authorization matrix: every actor × visibility × route family against one live `cove serve`.

Two rules, checked for every case:

* whoever may not read a private repo gets exactly what a repo that never existed gives the same caller
  (status, `X-Error-Code`, `X-Error-Message`, challenge headers, content type, body with the name swapped);
* nobody gets a gated repo's file contents (or a way to them: LFS actions, a Xet token, a clone) without
  access: 401 for the anonymous, 403 `GatedRepo` otherwise; web pages render without the contents.

Each repo's files carry a marker string; a case that must not see contents also checks that no marker of
that repo appears anywhere in the answer (body or headers). One module-scoped world (users, an org with
read/write/admin members, five repos) is built once; every case is one request (plus its cached
never-existed twin) on a shared `httpx.Client` per actor.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import ENDPOINT, SERVER_ENV, Server

# -- the world ------------------------------------------------------------------------------------------

ACTORS = ("anonymous", "invalid", "outsider_read", "outsider_write", "granted", "org_read", "org_write",
          "org_admin", "owner_read", "owner_write")
#: key -> (owner: the org or a user, visibility, repo type)
REPO_SPECS = {"org_public": ("org", "public", "model"), "org_private": ("org", "private", "model"),
              "org_gated": ("org", "gated", "model"), "user_private": ("user", "private", "model"),
              "user_gated": ("user", "gated", "model"), "dataset_private": ("org", "private", "dataset"),
              "dataset_gated": ("org", "gated", "dataset")}
REPOS = tuple(REPO_SPECS)
#: org members' tokens are write tokens: what they may do is decided by their org role.
MEMBER_ROLE = {"org_read": "read", "org_write": "write", "org_admin": "admin"}
README = "README.md"
FILES = ("file.txt", "weights.bin", "xet.bin")  # regular, LFS, Xet (datasets also hold data/train.csv)

_CLI = """
import sys, json, io, contextlib
from typer.testing import CliRunner
from cove.cli import app
runner = CliRunner()
out = []
for argv in json.loads(sys.stdin.read()):
    r = runner.invoke(app, argv)
    if r.exit_code != 0:
        raise SystemExit(f"cove {' '.join(argv)}: {r.output}")
    out.append(r.stdout.strip())
print(json.dumps(out))
"""


def cove_batch(*commands: list[str]) -> list[str]:
    """Run several `cove` CLI commands in one process (one interpreter start instead of one per command)."""
    proc = subprocess.run([sys.executable, "-c", _CLI], input=json.dumps(commands), env=SERVER_ENV,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@dataclass
class RepoFacts:
    key: str
    repo_id: str
    visibility: str  # public | private | gated
    space: str  # org | user
    type: str = "model"
    markers: dict[str, str] = field(default_factory=dict)  # path -> marker inside that file
    oids: dict[str, str] = field(default_factory=dict)  # LFS path -> sha256
    sizes: dict[str, int] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    head: str = ""
    xet_hash: str = ""

    @property
    def ns(self) -> str:
        return self.repo_id.split("/")[0]

    @property
    def name(self) -> str:
        return self.repo_id.split("/")[1]

    @property
    def plural(self) -> str:
        return self.type + "s"

    @property
    def web(self) -> str:
        """The URL prefix of the repo's pages, git and /resolve."""
        return "" if self.type == "model" else f"/{self.plural}"

    def secrets(self) -> list[str]:
        """Markers only readers with file access may see (the README is ungated)."""
        return [m for p, m in self.markers.items() if p != README]


@dataclass
class World:
    tag: str
    org: str
    owner: str
    users: dict[str, str]  # actor -> user name
    tokens: dict[str, str]  # actor -> token
    repos: dict[str, RepoFacts]
    clients: dict[str, httpx.Client]
    missing: dict[str, str]  # namespace -> a repo id that never existed there
    missing_shapes: dict[tuple, dict] = field(default_factory=dict)
    bad_calls: int = 0


def _auth_header(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


def _fill(api, facts: RepoFacts, tag: str) -> None:  # noqa: ANN001
    from huggingface_hub import CommitOperationAdd, constants

    kw = {"repo_id": facts.repo_id, "repo_type": facts.type}
    readme = f"---\nlicense: mit\n---\n# {facts.key}\nreadme-{facts.key}-{tag}\n".encode()
    facts.markers[README] = f"readme-{facts.key}-{tag}"
    api.upload_file(path_or_fileobj=readme, path_in_repo=README, **kw)
    api.create_tag(tag="v0", **kw)
    marks = {p: f"secret-{p.split('/')[-1].replace('.', '-')}-{facts.key}-{tag}" for p in FILES}
    contents = {"file.txt": f"{marks['file.txt']}\n".encode(),
                "weights.bin": b"\x00LFS\x00" + marks["weights.bin"].encode() + os.urandom(64),
                "xet.bin": marks["xet.bin"].encode() + os.urandom(4096)}
    if facts.type == "dataset":  # rows for the viewer
        marks["data/train.csv"] = f"secret-csv-{facts.key}-{tag}"
        contents["data/train.csv"] = f"text,label\n{marks['data/train.csv']},1\n".encode()
    facts.markers.update(marks)
    facts.contents.update({README: readme, **contents})
    with pytest.MonkeyPatch.context() as mp:  # classic LFS for weights.bin, Xet for xet.bin
        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        mp.setenv("HF_HUB_DISABLE_XET", "1")
        api.create_commit(operations=[CommitOperationAdd(p, d) for p, d in contents.items() if p != "xet.bin"],
                          commit_message="files", **kw)
    api.upload_file(path_or_fileobj=contents["xet.bin"], path_in_repo="xet.bin", **kw)
    for entry in api.list_repo_tree(recursive=True, **kw):
        if getattr(entry, "lfs", None):
            facts.oids[entry.path] = entry.lfs.sha256
        if getattr(entry, "size", None) is not None:
            facts.sizes[entry.path] = entry.size
        if entry.path == "xet.bin":
            assert entry.xet_hash, "xet.bin was not stored through Xet"
            facts.xet_hash = entry.xet_hash
    assert facts.oids.keys() == {"weights.bin", "xet.bin"}
    facts.head = api.repo_info(**kw).sha


@pytest.fixture(scope="module")
def world(server: Server) -> World:
    from huggingface_hub import HfApi

    tag = uuid.uuid4().hex[:6]
    names = {a: f"mx{tag}-{a.replace('_', '-')}" for a in ("outsider", "granted", "org_read", "org_write", "org_admin",
                                                           "owner")}
    org = f"mx{tag}-org"
    commands: list[list[str]] = []
    for n in names.values():
        commands += [["user", "add", n, "--password", f"{n}-password"],
                     ["token", "create", n, "--role", "read", "--name", "mx-read"],
                     ["token", "create", n, "--role", "write", "--name", "mx-write"]]
    commands.append(["org", "add", org, "--owner", names["org_admin"]])
    commands += [["org", "member", "add", org, names[a], "--role", MEMBER_ROLE[a]] for a in ("org_read", "org_write")]
    out = cove_batch(*commands)
    tok = {n: (out[3 * i + 1], out[3 * i + 2]) for i, n in enumerate(names.values())}  # name -> (read, write)
    tokens = {"outsider_read": tok[names["outsider"]][0], "outsider_write": tok[names["outsider"]][1],
              "granted": tok[names["granted"]][1], "owner_read": tok[names["owner"]][0],
              "owner_write": tok[names["owner"]][1], "invalid": "hf_" + "x" * 34,
              **{a: tok[names[a]][1] for a in MEMBER_ROLE}}
    users = {a: names.get(a) or names[a.rsplit("_", 1)[0]] for a in ACTORS if a not in ("anonymous", "invalid")}

    admin_api = HfApi(endpoint=ENDPOINT, token=tokens["org_admin"])
    owner_api = HfApi(endpoint=ENDPOINT, token=tokens["owner_write"])
    repos: dict[str, RepoFacts] = {}
    for key in REPOS:
        space, visibility, repo_type = REPO_SPECS[key]
        api = admin_api if space == "org" else owner_api
        facts = RepoFacts(key, f"{org if space == 'org' else names['owner']}/{key.replace('_', '-')}-{tag}",
                          visibility, space, repo_type)
        api.create_repo(facts.repo_id, private=visibility == "private", repo_type=repo_type)
        _fill(api, facts, tag)
        if visibility == "gated":
            api.update_repo_settings(facts.repo_id, gated="auto" if space == "org" else "manual",
                                     repo_type=repo_type)
            api.grant_access(facts.repo_id, names["granted"], repo_type=repo_type)
        repos[key] = facts
    # likes, for the listings: each namespace's admin likes its private and gated repos
    for key, actor in (("org_private", "org_admin"), ("org_gated", "org_admin"), ("user_private", "owner_write"),
                       ("user_gated", "owner_write")):
        r = httpx.post(f"{ENDPOINT}/api/models/{repos[key].repo_id}/like", headers=_auth_header(tokens[actor]))
        r.raise_for_status()

    clients = {a: httpx.Client(base_url=ENDPOINT, headers=_auth_header(tokens.get(a)), timeout=60,
                               follow_redirects=False) for a in ACTORS}
    missing = {org: f"{org}/nothing-{tag}", names["owner"]: f"{names['owner']}/nothing-{tag}"}
    try:
        yield World(tag, org, names["owner"], users, tokens, repos, clients, missing)
    finally:
        for c in clients.values():
            c.close()
        for facts in repos.values():
            api = admin_api if facts.space == "org" else owner_api
            with contextlib.suppress(Exception):
                api.delete_repo(facts.repo_id, repo_type=facts.type)


# -- who may do what --------------------------------------------------------------------------------


def may_read(world: World, actor: str, repo: RepoFacts) -> bool:
    if actor == "invalid":
        return False  # the API answers 401 to a bad token, whatever the repo
    if repo.visibility != "private":
        return True
    return is_member(actor, repo)


def is_member(actor: str, repo: RepoFacts) -> bool:
    return actor in MEMBER_ROLE if repo.space == "org" else actor.startswith("owner")


def has_files(actor: str, repo: RepoFacts) -> bool:
    if repo.visibility != "gated":
        return True
    return is_member(actor, repo) or actor == "granted"


def may_write(actor: str, repo: RepoFacts) -> bool:
    if repo.space == "org":
        return actor in ("org_write", "org_admin")
    return actor == "owner_write"


def may_contribute(actor: str, repo: RepoFacts) -> bool:
    """Open pull requests and upload for them: any reader of the files with a write token (as on the Hub)."""
    write_token = actor in ("outsider_write", "granted", "owner_write", *MEMBER_ROLE)
    return write_token and (repo.visibility != "private" or is_member(actor, repo)) and has_files(actor, repo)


def may_admin(actor: str, repo: RepoFacts) -> bool:
    """Settings, visibility, gating, deletion: the namespace's admins (a user's own namespace)."""
    return actor == ("org_admin" if repo.space == "org" else "owner_write")


# -- routes ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One request against a repo. `kind`: meta (readers see it), content (readers with file access; 401/403
    `GatedRepo` for the others), redacted (readers see it, without a gated repo's contents), write (writers),
    contribute (what opening a pull request takes: readers of the files with a write token),
    web* (pages: a bad token browses anonymously; webcontent pages render without a gated repo's contents;
    webadmin: the namespace's admins)."""

    name: str
    kind: str
    build: Callable[[str, RepoFacts], tuple[str, str, dict]]
    git: bool = False  # git and git-lfs send Basic credentials
    file: str | None = None  # the file whose exact bytes a reader gets
    types: tuple[str, ...] = ("model", "dataset")  # the repo types it applies to


def _lfs_body(op: str, facts: RepoFacts) -> dict:
    return {"json": {"operation": op, "transfers": ["basic"], "hash_algo": "sha256",
                     "objects": [{"oid": facts.oids["weights.bin"], "size": facts.sizes["weights.bin"]}]},
            "headers": {"accept": "application/vnd.git-lfs+json", "content-type": "application/vnd.git-lfs+json"}}


def _r(name: str, kind: str, method: str, path: str, file: str | None = None, git: bool = False,
       body: Callable[[RepoFacts], dict] | None = None, types: tuple[str, ...] = ("model", "dataset")) -> Route:
    def build(repo_id: str, facts: RepoFacts) -> tuple[str, str, dict]:
        url = path.format(id=repo_id, head=facts.head, api=f"/api/{facts.plural}", web=facts.web, type=facts.type)
        return method, url, body(facts) if body else {}

    return Route(name, kind, build, git=git, file=file, types=types)


ROUTES = [
    _r("api_info", "meta", "GET", "{api}/{id}"),
    _r("api_info_files", "meta", "GET", "{api}/{id}?blobs=true&expand[]=siblings&expand[]=likes"),
    _r("api_revision", "meta", "GET", "{api}/{id}/revision/main"),
    _r("api_tree", "meta", "GET", "{api}/{id}/tree/main?recursive=true&expand=true"),
    _r("paths_info", "meta", "POST", "{api}/{id}/paths-info/main",
       body=lambda f: {"json": {"paths": [README, *FILES], "expand": True}}),
    _r("api_commits", "meta", "GET", "{api}/{id}/commits/main"),
    _r("api_refs", "meta", "GET", "{api}/{id}/refs"),
    _r("auth_check", "content", "GET", "{api}/{id}/auth-check"),
    _r("cas_stats", "meta", "GET", "/cas/_stats?repo={type}/{id}"),
    _r("discussions", "meta", "GET", "{api}/{id}/discussions"),
    _r("likers", "meta", "GET", "{api}/{id}/likers"),
    _r("resolve_readme", "meta", "GET", "{web}/{id}/resolve/main/README.md", file=README),
    _r("resolve_text", "content", "GET", "{web}/{id}/resolve/main/file.txt", file="file.txt"),
    _r("resolve_gitattributes", "content", "GET", "{web}/{id}/resolve/main/.gitattributes"),
    _r("resolve_text_head", "content", "HEAD", "{web}/{id}/resolve/main/file.txt"),
    _r("resolve_lfs", "content", "GET", "{web}/{id}/resolve/main/weights.bin", file="weights.bin"),
    _r("resolve_lfs_head", "content", "HEAD", "{web}/{id}/resolve/main/weights.bin"),
    _r("resolve_xet", "content", "GET", "{web}/{id}/resolve/{head}/xet.bin", file="xet.bin"),
    _r("resolve_xet_head", "content", "HEAD", "{web}/{id}/resolve/main/xet.bin"),
    _r("resolve_range", "content", "GET", "{web}/{id}/resolve/main/file.txt",
       body=lambda f: {"headers": {"range": "bytes=0-11"}}),
    _r("compare_json", "redacted", "GET", "{api}/{id}/compare/v0...main"),
    _r("compare_diff", "redacted", "GET", "{api}/{id}/compare/v0...main?format=diff"),
    _r("xet_read_token", "content", "GET", "{api}/{id}/xet-read-token/main"),
    _r("lfs_batch_download", "content", "POST", "{web}/{id}.git/info/lfs/objects/batch", git=True,
       body=lambda f: _lfs_body("download", f)),
    _r("git_upload_refs", "content", "GET", "{web}/{id}.git/info/refs?service=git-upload-pack", git=True),
    _r("git_upload_refs_bare", "content", "GET", "{web}/{id}/info/refs?service=git-upload-pack", git=True),
    _r("preupload", "contribute", "POST", "{api}/{id}/preupload/main",
       body=lambda f: {"json": {"files": [{"path": "new.txt", "size": 3, "sample": "YWJj"}]}}),
    _r("xet_write_token", "contribute", "GET", "{api}/{id}/xet-write-token/main"),
    _r("lfs_batch_upload", "contribute", "POST", "{web}/{id}.git/info/lfs/objects/batch", git=True,
       body=lambda f: _lfs_body("upload", f)),
    _r("git_receive_refs", "contribute", "GET", "{web}/{id}.git/info/refs?service=git-receive-pack", git=True),
    _r("access_requests", "write", "GET", "{api}/{id}/user-access-request/pending"),
    _r("auth_check_write", "write", "GET", "{api}/{id}/auth-check/write"),
    _r("web_repo", "web", "GET", "{web}/{id}"),
    _r("web_repo_head", "web", "HEAD", "{web}/{id}"),
    _r("web_tree", "web", "GET", "{web}/{id}/tree/main"),
    _r("web_commits", "web", "GET", "{web}/{id}/commits/main"),
    _r("web_blob_readme", "web", "GET", "{web}/{id}/blob/main/README.md"),
    _r("web_blob_text", "webcontent", "GET", "{web}/{id}/blob/main/file.txt"),
    _r("web_blob_lfs", "webcontent", "GET", "{web}/{id}/blob/main/weights.bin"),
    _r("web_commit", "webcontent", "GET", "{web}/{id}/commit/{head}"),
    _r("web_settings", "webadmin", "GET", "{web}/{id}/settings"),
    _r("web_viewer", "webcontent", "GET", "/datasets/{id}/viewer", types=("dataset",)),
    _r("resolve_csv", "content", "GET", "/datasets/{id}/resolve/main/data/train.csv", file="data/train.csv",
       types=("dataset",)),
]
ROUTE = {r.name: r for r in ROUTES}


def _request(world: World, actor: str, route: Route, repo_id: str, facts: RepoFacts) -> httpx.Response:
    method, path, kw = route.build(repo_id, facts)
    headers = dict(kw.pop("headers", {}))
    if route.git:  # git sends Basic user:token (and nothing for the anonymous)
        token = world.tokens.get(actor)
        if token:
            user = world.users.get(actor, "someone")
            headers["authorization"] = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
    if actor == "invalid":
        # Each bad token from an address of its own (uvicorn trusts X-Forwarded-For from 127.0.0.1): the
        # per-client throttle of invalid tokens (429 past a budget) would otherwise answer instead of the route.
        world.bad_calls += 1
        n = world.bad_calls
        headers["x-forwarded-for"] = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
    return world.clients[actor].request(method, path, headers=headers, **kw)


_SHOWN_HEADERS = ("x-error-code", "x-error-message", "www-authenticate", "lfs-authenticate", "content-type")


def _shape(r: httpx.Response, repo_id: str) -> dict:
    """What a caller can tell from an answer, with the repo's own name swapped for a placeholder."""
    ns, name = repo_id.split("/")

    def clean(text: str) -> str:
        for s in (repo_id, quote(repo_id, safe=""), name):
            text = text.replace(s, "<repo>")
        return text

    body: object = clean(r.text)
    if "json" in r.headers.get("content-type", ""):
        with contextlib.suppress(ValueError):
            body = json.loads(body)  # type: ignore[arg-type]
    return {"status": r.status_code, "body": body, **{h: clean(r.headers.get(h, "")) for h in _SHOWN_HEADERS}}


def _visible(r: httpx.Response) -> str:
    return r.text + "\n" + "\n".join(f"{k}: {v}" for k, v in r.headers.items())


def _missing_shape(world: World, actor: str, route: Route, facts: RepoFacts) -> dict:
    """The same request by the same caller for a repo that never existed in that namespace (once each)."""
    key = (actor, route.name, facts.key)
    if key not in world.missing_shapes:
        missing = world.missing[facts.ns]
        world.missing_shapes[key] = _shape(_request(world, actor, route, missing, facts), missing)
    return world.missing_shapes[key]


def _case_ids() -> list:
    params = []
    for actor in ACTORS:
        for repo in REPOS:
            for route in ROUTES:
                if REPO_SPECS[repo][2] not in route.types:
                    continue
                params.append(pytest.param(actor, repo, route.name, id=f"{actor}-{repo}-{route.name}"))
    return params


def _expect(actor: str, repo: RepoFacts, route: Route, world: World) -> str:
    """missing | ok | gated | denied | anonymous-web (a bad token on a page browses anonymously)."""
    web = route.kind.startswith("web")
    who = "anonymous" if web and actor == "invalid" else actor
    if not may_read(world, who, repo):
        return "missing"
    if route.kind in ("content", "webcontent", "redacted") and not has_files(who, repo):
        return "gated"
    if route.kind == "write" and not may_write(who, repo) or route.kind == "webadmin" and not may_admin(who, repo):
        return "denied"
    if route.kind == "contribute" and not may_contribute(who, repo):
        return "denied"
    return "ok"


@pytest.mark.parametrize(("actor", "repo_key", "route_name"), _case_ids())
def test_matrix(world: World, actor: str, repo_key: str, route_name: str) -> None:
    route, facts = ROUTE[route_name], world.repos[repo_key]
    r = _request(world, actor, route, facts.repo_id, facts)
    expect = _expect(actor, facts, route, world)
    if expect != "ok" or not has_files(actor, facts):
        for marker in facts.secrets() if expect != "missing" else facts.markers.values():
            assert marker not in _visible(r), f"{marker!r} leaked: {r.status_code} {r.text[:300]!r}"
    if expect == "missing":
        assert _shape(r, facts.repo_id) == _missing_shape(world, actor, route, facts)
        assert r.status_code in (401, 404), r.status_code
        return
    if expect == "gated":
        if route.kind in ("webcontent", "redacted"):
            assert r.status_code == 200, r.status_code
        else:
            assert r.status_code == (401 if actor == "anonymous" else 403), (r.status_code, r.text[:300])
            if not route.git:
                assert r.headers.get("x-error-code") == "GatedRepo"
        return
    if expect == "denied":
        assert r.status_code in ((401, 403) if actor == "anonymous" else (403,)), (r.status_code, r.text[:300])
        return
    assert 200 <= r.status_code < 300, (r.status_code, r.text[:300])
    if route.file and route.name != "resolve_range":
        assert r.content == facts.contents[route.file]
    if route.name == "resolve_range":
        assert r.status_code == 206 and r.content == facts.contents["file.txt"][:12]


# -- listings and counts ----------------------------------------------------------------------------


def _visible_keys(world: World, actor: str, namespace: str | None = None, repo_type: str | None = None) -> set[str]:
    who = "anonymous" if actor == "invalid" else actor
    return {k for k, f in world.repos.items()
            if may_read(world, who, f) and namespace in (None, f.ns) and repo_type in (None, f.type)}


def _names_in(world: World, text: str, repo_type: str | None = None) -> set[str]:
    return {k for k, f in world.repos.items() if f.repo_id in text and repo_type in (None, f.type)}


@pytest.mark.parametrize("actor", ACTORS)
def test_listings_show_and_count_only_readable_repos(world: World, actor: str) -> None:
    """`/api/models` by author and by search: rows hold only repos the caller may read (and no total is sent)."""
    c = world.clients[actor]
    for repo_type in ("model", "dataset"):
        for query, ns in ((f"author={world.org}", world.org), (f"author={world.owner}", world.owner),
                          (f"search={world.tag}", None)):
            r = c.get(f"/api/{repo_type}s?{query}&full=true", headers=_bad_ip(world, actor))
            if actor == "invalid":
                assert r.status_code == 401
                continue
            assert r.status_code == 200
            expected = _visible_keys(world, actor, ns, repo_type)
            assert {k for k, f in world.repos.items() if f.repo_id in {m["id"] for m in r.json()}} == expected
            assert "x-total-count" not in r.headers, query
            assert _names_in(world, r.text) == expected


def _count(html: str, plural: str) -> int:
    import re

    m = re.search(rf"{plural} <span class=\"count\"[^>]*>(\d+)</span>", html)
    assert m, f"no {plural} count on the page"
    return int(m.group(1))


@pytest.mark.parametrize("actor", ACTORS)
def test_pages_show_and_count_only_readable_repos(world: World, actor: str) -> None:
    """Person and org pages, the home search and `/models`: names and counts of readable repos only (a bad
    token browses as the anonymous)."""
    c = world.clients[actor]
    pages = [(f"/{world.org}", world.org, ("model", "dataset")), (f"/{world.owner}", world.owner, ("model",)),
             (f"/?q={world.tag}", None, ("model", "dataset")), (f"/models?search={world.tag}", None, ("model",)),
             (f"/datasets?author={world.org}", world.org, ("dataset",))]
    for path, ns, types in pages:
        r = c.get(path, headers=_bad_ip(world, actor))
        assert r.status_code == 200, path
        expected = set().union(*(_visible_keys(world, actor, ns, t) for t in types))
        assert _names_in(world, r.text) == expected, path
        for t in types:
            assert _count(r.text, f"{t.capitalize()}s") == len(_visible_keys(world, actor, ns, t)), (path, t)
        for key in set(world.repos) - expected:
            for marker in world.repos[key].markers.values():
                assert marker not in r.text


@pytest.mark.parametrize("actor", ACTORS)
def test_likes_of_a_user_hide_unreadable_repos(world: World, actor: str) -> None:
    """`/api/users/{user}/likes`: a like of a private repo shows only to those who may read that repo."""
    c = world.clients[actor]
    for liker, keys in ((world.users["org_admin"], {"org_private", "org_gated"}),
                        (world.owner, {"user_private", "user_gated"})):
        r = c.get(f"/api/users/{liker}/likes", headers=_bad_ip(world, actor))
        if actor == "invalid":
            assert r.status_code == 401
            continue
        assert r.status_code == 200
        shown = {k for k, f in world.repos.items() if f.repo_id in {x["repo"]["name"] for x in r.json()}}
        assert shown == keys & _visible_keys(world, actor)


def _bad_ip(world: World, actor: str) -> dict[str, str]:
    """A client address of its own for each invalid-token request (see `_request`)."""
    if actor != "invalid":
        return {}
    world.bad_calls += 1
    n = world.bad_calls
    return {"x-forwarded-for": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"}


# -- CAS: a read token reaches its own repo's files only ---------------------------------------------------


@pytest.mark.parametrize("actor", [a for a in ACTORS if a not in ("anonymous", "invalid")])
def test_cas_token_of_a_public_repo_reaches_no_other_repo(world: World, actor: str) -> None:
    """A CAS read token for the org's public repo (anyone signed in gets one) does not reconstruct the Xet
    files of the org's private or gated repos, nor the user's: 404 exactly as for a hash that never existed,
    and left out of a batch reconstruction. Members too: the token is scoped to its repo."""
    c = world.clients[actor]
    public = world.repos["org_public"]
    t = c.get(f"/api/models/{public.repo_id}/xet-read-token/main")
    assert t.status_code == 200
    cas = httpx.Client(base_url=t.json()["casUrl"], headers={"authorization": f"Bearer {t.json()['accessToken']}"})
    never = "ab" * 32
    with cas:
        assert cas.get(f"/v1/reconstructions/{public.xet_hash}").status_code == 200

        def shape(r: httpx.Response, h: str) -> tuple:
            return r.status_code, r.headers.get("x-error-code"), r.text.replace(h, "<hash>")

        for key, facts in world.repos.items():
            if key == "org_public":
                continue
            for path in ("/v1/reconstructions/{h}", "/v2/reconstructions/{h}"):
                got = cas.get(path.format(h=facts.xet_hash))
                assert shape(got, facts.xet_hash) == shape(cas.get(path.format(h=never)), never), (key, path)
                assert got.status_code == 404
            head, twin = cas.head(f"/v1/files/{facts.xet_hash}"), cas.head(f"/v1/files/{never}")
            assert head.status_code == twin.status_code == 404
            assert head.headers.get("x-error-code") == twin.headers.get("x-error-code")
            batch = cas.get("/v1/reconstructions", params={"file_id": [facts.xet_hash, public.xet_hash]}).json()
            assert set(batch["files"]) == {public.xet_hash}


# -- git itself ----------------------------------------------------------------------------------------


def _ls_remote(world: World, actor: str, path: str) -> subprocess.CompletedProcess:
    host = ENDPOINT.removeprefix("http://")
    token = world.tokens.get(actor)
    url = f"http://{world.users.get(actor, 'x')}:{token}@{host}{path}" if token else f"{ENDPOINT}{path}"
    args = ["git", "-c", "credential.helper=", "-c", "core.askPass=true"]
    if actor == "invalid":
        args += ["-c", f"http.extraHeader=X-Forwarded-For: {_bad_ip(world, actor)['x-forwarded-for']}"]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "GCM_INTERACTIVE": "never"}
    return subprocess.run([*args, "ls-remote", url], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("repo_key", ["org_private", "user_private", "org_gated", "dataset_private",
                                      "dataset_gated"])
def test_git_ls_remote(world: World, actor: str, repo_key: str) -> None:
    """`git ls-remote` with the caller's credentials: a private repo the caller may not read fails exactly as
    a missing one; a gated repo without access fails; readers see the branch."""
    facts = world.repos[repo_key]
    got = _ls_remote(world, actor, f"{facts.web}/{facts.repo_id}")
    if may_read(world, actor, facts) and has_files(actor, facts):
        assert got.returncode == 0, got.stderr
        assert f"{facts.head}\trefs/heads/main" in got.stdout
        return
    assert got.returncode != 0
    for marker in facts.markers.values():
        assert marker not in got.stdout + got.stderr
    if not may_read(world, actor, facts):
        missing = world.missing[facts.ns]
        twin = _ls_remote(world, actor, f"{facts.web}/{missing}")
        assert (got.returncode, got.stdout, got.stderr.replace(facts.repo_id, "<repo>")) == (
            twin.returncode, twin.stdout, twin.stderr.replace(missing, "<repo>"))
