"""Bounded fuzzing of a live `cove serve`: no input may earn a 5xx or a dropped (or hung) connection.

* `test_openapi_fuzz`: schemathesis walks every operation of `/api/openapi.json` (positive and negative
  examples, derandomized), with the repo path parameters pointing at a repo that exists, once as its owner
  and once anonymously.
* The schema is thin where handlers read the raw `Request` body (commit NDJSON, paths-info, LFS batch,
  settings, preupload, ...): `test_raw_bodies` posts hypothesis-generated JSON there — deep nesting, wrong
  types, huge numbers, control characters, lone surrogates — shaped like each route's body and not.
* `test_binary_bodies`: git smart HTTP, LFS object and CAS uploads with arbitrary bytes (gzip-labelled too).
* `test_odd_urls`: path segments and query values with control characters, `..`, `%2F` and the like on GET
  routes, pages and git included.

Every case runs (each test stops collecting after a few hits); a failure lists the requests that broke the
server. The fuzzing user is one of its own, so what fuzzing creates or changes stays in its namespace.
About 40 s on two cores; the example counts below bound it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.conftest import ENDPOINT, Server, cove

#: Examples per OpenAPI operation (each sent twice: as the owner and anonymously).
OPENAPI_EXAMPLES = 25
#: Examples per raw-body route, per binary-body route and per odd-URL route.
RAW_EXAMPLES = 40
URL_EXAMPLES = 20
FUZZ = settings(derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate])


@dataclass
class Target:
    user: str
    token: str
    repo_id: str
    cas_token: str


@pytest.fixture(scope="module")
def target(server: Server) -> Target:
    """A user of its own (fuzzed creations and settings land in its namespace only) and a repo with files."""
    from huggingface_hub import CommitOperationAdd, HfApi

    user = f"fz{uuid.uuid4().hex[:6]}"
    cove("user", "add", user, "--password", f"{user}-password")
    token = cove("token", "create", user, "--role", "write", "--name", "fuzz").stdout.strip()
    api = HfApi(endpoint=ENDPOINT, token=token)
    repo_id = f"{user}/target"
    api.create_repo(repo_id)
    api.create_commit(repo_id, operations=[CommitOperationAdd("README.md", b"---\nlicense: mit\n---\n# t\n"),
                                           CommitOperationAdd("a/b.txt", b"hello\n"),
                                           CommitOperationAdd("w.bin", b"\x00" * 64)], commit_message="init")
    api.create_tag(repo_id, tag="v1")
    cas = httpx.get(f"{ENDPOINT}/api/models/{repo_id}/xet-write-token/main",
                    headers={"authorization": f"Bearer {token}"}).json()["accessToken"]
    return Target(user, token, repo_id, cas)


@pytest.fixture(scope="module")
def http() -> httpx.Client:
    with httpx.Client(base_url=ENDPOINT, timeout=30) as c:
        yield c


def _probe(http: httpx.Client, found: list[str], method: str, url: str, **kw) -> None:  # noqa: ANN003
    """Send one request; note a 5xx or a lost connection (with what was sent) in `found`."""
    try:
        r = http.request(method, url, **kw)
    except httpx.TransportError as exc:
        found.append(f"{type(exc).__name__} (dropped or hung): {method} {url} {kw.get('content', b'')[:300]!r}")
        return
    if r.status_code >= 500:
        found.append(f"{r.status_code}: {method} {url} {kw.get('content', b'')[:300]!r} -> {r.text[:200]!r}")


def _report(found: list[str]) -> None:
    unique = list(dict.fromkeys(found))
    assert not unique, f"{len(unique)} failing inputs:\n" + "\n".join(unique[:10])


# -- schemathesis over the OpenAPI document ------------------------------------------------------------


def _fuzz_operation(op, fixed: dict | None, token: str) -> list[str]:  # noqa: ANN001
    """Reproducers (curl) of the examples of one operation that earned a 5xx or lost the connection."""
    import requests
    from schemathesis import GenerationMode

    strategy = st.one_of(op.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed),
                         op.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed))
    found: list[str] = []

    @settings(FUZZ, max_examples=OPENAPI_EXAMPLES)
    @given(case=strategy)
    def run(case) -> None:  # noqa: ANN001
        if len(found) >= 2:  # two reproducers per operation are enough
            return
        for headers in ({"authorization": f"Bearer {token}"}, None):
            try:
                response = case.call(base_url=ENDPOINT, headers=headers, timeout=30)
            except requests.RequestException as exc:
                found.append(f"{type(exc).__name__} (dropped or hung): {case.as_curl_command(headers)}")
                return
            if response.status_code >= 500:
                found.append(f"{response.status_code}: {case.as_curl_command(headers)}  ->  {response.text[:200]!r}")
                return

    run()
    return [f"{op.label}: {f}" for f in found]


def test_openapi_fuzz(target: Target) -> None:
    """Every operation of the OpenAPI document, schema-valid and schema-violating examples (schemathesis'
    positive and negative modes), as the repo's owner and anonymously: never a 5xx, never a dropped or hung
    connection. All operations run; the failures are listed together, each as a curl command."""
    raw = httpx.get(f"{ENDPOINT}/api/openapi.json").raise_for_status().json()
    schema = schemathesis.openapi.from_dict(raw)
    ns, name = target.repo_id.split("/")
    pinned = {"ns": ns, "name": name, "plural": "models", "user": target.user}
    failures: list[str] = []
    for result in schema.get_all_operations():
        op = result.ok()
        fixed = {k: v for k, v in pinned.items() if "{" + k + "}" in op.path} or None
        failures += _fuzz_operation(op, fixed, target.cas_token if op.path.startswith("/cas/") else target.token)
    assert not failures, "\n".join(failures)


# -- generated JSON on the raw-body routes ------------------------------------------------------------

TRICKY = ["", "\x00", "\ud800", "\udfff", "a\udc80b", "\x1b[2J", "\r\n", "\u202e", "../../etc/passwd", "a/../../b",
          "/", ".git/config", "%2F", "%00", "main", "refs/pr/1", "x" * 5000, "é" * 300, "\u0000\u0001\u007f",
          "-1", "1e309", "NaN", "null", "[]", "{}"]
texts = st.one_of(st.text(st.characters(exclude_categories=()), max_size=40), st.sampled_from(TRICKY))
numbers = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 2**63, 2**64 + 1, 10**30]),
                    st.floats(allow_nan=False, allow_infinity=False))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(texts, inner, max_size=4)), max_leaves=12)


def shaped(**fields: st.SearchStrategy) -> st.SearchStrategy:
    """An object with the route's keys (each maybe present, any value type) — gets past the first checks."""
    return st.fixed_dictionaries({}, optional={k: st.one_of(v, values) for k, v in fields.items()})


def _obj(*keys: str) -> st.SearchStrategy:
    return shaped(**dict.fromkeys(keys, scalars))


_COMMIT_LINE = st.one_of(
    st.fixed_dictionaries({"key": st.just("header"), "value": _obj("summary", "description", "parentCommit")}),
    st.fixed_dictionaries({"key": st.just("file"), "value": _obj("path", "content", "encoding")}),
    st.fixed_dictionaries({"key": st.just("lfsFile"), "value": _obj("path", "algo", "oid", "size")}),
    st.fixed_dictionaries({"key": st.sampled_from(["deletedFile", "deletedFolder"]), "value": _obj("path")}),
    st.fixed_dictionaries({"key": st.just("file"), "value": _obj("path", "oldPath", "srcRevision")}),
    shaped(key=texts, value=values),
)
_LFS_OBJ = shaped(oid=st.one_of(texts, st.just("0" * 64)), size=numbers)

#: route -> (method, path under the target repo or absolute, body strategy, kind: json | ndjson)
RAW_ROUTES = {
    "commit": ("POST", "/api/models/{id}/commit/main", st.lists(_COMMIT_LINE, max_size=4), "ndjson"),
    "paths_info": ("POST", "/api/models/{id}/paths-info/main", shaped(paths=st.lists(texts, max_size=5),
                                                                      expand=scalars), "json"),
    "lfs_batch": ("POST", "/{id}.git/info/lfs/objects/batch",
                  shaped(operation=st.sampled_from(["upload", "download", "x"]), objects=st.lists(_LFS_OBJ, max_size=3),
                         transfers=st.lists(texts, max_size=3), ref=values, hash_algo=texts), "json"),
    "lfs_verify": ("POST", "/{id}.git/info/lfs/objects/verify", _LFS_OBJ, "json"),
    "settings": ("PUT", "/api/models/{id}/settings",
                 shaped(gated=st.sampled_from([False, "auto", "manual", "x"]), description=texts,
                        discussionsDisabled=scalars), "json"),
    "preupload": ("POST", "/api/models/{id}/preupload/main",
                  shaped(files=st.lists(_obj("path", "size", "sample"), max_size=3), gitIgnore=texts), "json"),
    "repo_create": ("POST", "/api/repos/create", _obj("name", "organization", "type", "private", "sdk"), "json"),
    "repo_move": ("POST", "/api/repos/move", _obj("fromRepo", "toRepo", "type"), "json"),
    "discussion": ("POST", "/api/models/{id}/discussions", _obj("title", "description", "pullRequest"), "json"),
    "revert": ("POST", "/api/models/{id}/revert/main", _obj("commit", "message"), "json"),
    "branch": ("POST", "/api/models/{id}/branch/fz-branch", _obj("startingPoint", "emptyBranch"), "json"),
    "tag": ("POST", "/api/models/{id}/tag/main", _obj("tag", "message"), "json"),
    "super_squash": ("POST", "/api/models/{id}/super-squash/fz-branch", _obj("message"), "json"),
    "ask_access": ("POST", "/api/models/{id}/ask-access", shaped(fields=values), "json"),
    "access_handle": ("POST", "/api/models/{id}/user-access-request/handle", _obj("user", "status", "requestId"),
                      "json"),
    "access_grant": ("POST", "/api/models/{id}/user-access-request/grant", _obj("user"), "json"),
    "validate_yaml": ("POST", "/api/validate-yaml", _obj("content", "repoType"), "json"),
}


def _encode(body: object, kind: str) -> tuple[bytes, str]:
    if kind == "ndjson":
        lines = body if isinstance(body, list) else [body]
        return "\n".join(json.dumps(x) for x in lines).encode(), "application/x-ndjson"
    return json.dumps(body).encode(), "application/json"


_DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("route", list(RAW_ROUTES))
def test_raw_bodies(target: Target, http: httpx.Client, route: str) -> None:
    method, path, strategy, kind = RAW_ROUTES[route]
    url = path.format(id=target.repo_id)
    found: list[str] = []

    def send(content: bytes, ctype: str) -> None:
        for auth in ({"authorization": f"Bearer {target.token}"}, {}):
            if len(found) < 5:
                _probe(http, found, method, url, content=content, headers={**auth, "content-type": ctype})

    @settings(FUZZ, max_examples=RAW_EXAMPLES)
    @given(body=st.one_of(strategy, values))
    @example(body=None)
    def run(body: object) -> None:
        send(*_encode(body, kind))

    run()
    for raw in (_DEEP.encode(), b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b"\xff\xfe{", b"{", b"1" * 100_000,
                b'"\\ud800"', b'{"paths": ["\\ud800"], "files": [{"path": "\\udfff"}]}'):
        send(raw, "application/x-ndjson" if kind == "ndjson" else "application/json")
    _report(found)


#: Binary bodies: git's smart HTTP, LFS object uploads and CAS uploads with bytes that are not what they claim.
BINARY_ROUTES = [
    ("POST", "/{id}.git/git-upload-pack", "application/x-git-upload-pack-request"),
    ("POST", "/{id}.git/git-receive-pack", "application/x-git-receive-pack-request"),
    ("PUT", "/lfs/objects/{s}", "application/octet-stream"),
    ("POST", "/cas/v1/xorbs/default/{h}", "application/octet-stream"),
    ("POST", "/cas/v1/shards", "application/octet-stream"),
]


@pytest.mark.parametrize(("method", "path", "ctype"), BINARY_ROUTES)
def test_binary_bodies(target: Target, http: httpx.Client, method: str, path: str, ctype: str) -> None:
    found: list[str] = []
    token = target.cas_token if path.startswith("/cas/") else target.token

    @settings(FUZZ, max_examples=RAW_EXAMPLES)
    @given(body=st.one_of(st.binary(max_size=2000), st.sampled_from([b"0000", b"0032want " + b"0" * 40 + b"\n0000",
                                                                       b"\xff" * 70_000])),
           gzip=st.booleans())
    def run(body: bytes, gzip: bool) -> None:
        url = path.format(id=target.repo_id, s="x" * 40, h="ab" * 32)
        headers = {"content-type": ctype, "authorization": f"Bearer {token}"}
        if gzip:
            headers["content-encoding"] = "gzip"
        if len(found) < 5:
            _probe(http, found, method, url, content=body, headers=headers)

    run()
    _report(found)


# -- odd path segments and query strings on GET routes ------------------------------------------------

#: GET routes; {id} is the target repo, {s} a generated segment, {q} a generated query value
URL_ROUTES = [
    "/api/models/{id}/tree/{s}", "/api/models/{id}/tree/main/{s}", "/api/models/{id}/revision/{s}",
    "/api/models/{id}/commits/{s}", "/api/models/{id}/compare/{s}", "/api/models/{id}/compare/v1...{s}",
    "/api/models/{id}/xet-read-token/{s}", "/api/models/{id}/refs?include_prs={q}",
    "/api/models/{id}?expand={q}&blobs={q}", "/api/models/{id}/discussions/{s}",
    "/api/models/{id}/user-access-request/{s}", "/{id}/resolve/main/{s}", "/{id}/resolve/{s}/README.md",
    "/{id}/blob/main/{s}", "/{id}/tree/{s}", "/{id}/commits/{s}", "/{id}/commit/{s}", "/{id}/raw/main/{s}",
    "/api/models?search={q}&author={q}&filter={q}&sort={q}&direction={q}&limit={q}&cursor={q}&expand={q}",
    "/api/datasets?search={q}&gated={q}&full={q}", "/models?search={q}&p={q}&sort={q}", "/{s}", "/api/users/{s}/likes",
    "/api/models/{s}/{s}", "/{s}/{s}", "/{s}/{s}/tree/main", "/datasets/{s}/{s}/viewer?config={q}&split={q}&p={q}",
    "/{id}.git/info/refs?service={q}", "/{s}/{s}.git/info/refs?service=git-upload-pack",
    "/cas/v1/reconstructions/{s}", "/cas/v1/reconstructions?file_id={q}", "/cas/fetch/{s}?r={q}&exp={q}&sig={q}",
    "/lfs/objects/{s}", "/api/whoami-v2?x={q}",
]
segments = st.one_of(st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30),
                     st.sampled_from([t for t in TRICKY if t and "\ud800" not in t and "\udfff" not in t
                                      and "\udc80" not in t]))


@pytest.mark.parametrize("route", URL_ROUTES)
def test_odd_urls(target: Target, http: httpx.Client, route: str) -> None:
    found: list[str] = []

    @settings(FUZZ, max_examples=URL_EXAMPLES)
    @given(seg=segments, keep_slash=st.booleans())
    @example(seg="\x00", keep_slash=False)
    @example(seg="..%2F..%2Fetc", keep_slash=True)
    def run(seg: str, keep_slash: bool) -> None:
        s = quote(seg, safe="/" if keep_slash else "")
        q = urlencode({"v": seg})[2:]
        path = route.format(id=target.repo_id, s=s, q=q)
        for auth in ({"authorization": f"Bearer {target.token}"}, {}):
            if len(found) < 5:
                _probe(http, found, "GET", path, headers=auth)

    run()
    _report(found)
