"""Search with the stock client against a live Cove: filters, sorts, likes, downloads, Link pagination
(issue 2, item 3). Each test tags its repos with a unique marker so other tests' repos cannot interfere."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from huggingface_hub import hf_hub_download
from huggingface_hub.utils import paginate

from tests.conftest import ENDPOINT


def _card(marker: str, *, pipeline: str = "text-classification", library: str = "transformers",
          language: str = "en", license: str = "mit", datasets: tuple[str, ...] = (), extra: str = "") -> bytes:
    lines = ["---", f"pipeline_tag: {pipeline}", f"library_name: {library}", f"language: {language}",
             f"license: {license}", f"tags: [{marker}]"]
    if datasets:
        lines.append(f"datasets: [{', '.join(datasets)}]")
    return ("\n".join(lines) + f"\n---\n# {marker} model {extra}\n").encode()


def _model(api, repo_factory, marker: str, name: str, owner: str | None = None, **card) -> str:  # noqa: ANN001
    repo_id = repo_factory(f"{marker}-{name}", owner=owner)
    api.upload_file(path_or_fileobj=_card(marker, extra=name, **card), path_in_repo="README.md", repo_id=repo_id)
    api.upload_file(path_or_fileobj=json.dumps({"model_type": "bert"}).encode(), path_in_repo="config.json",
                    repo_id=repo_id)
    return repo_id


def _download(repo_id: str, n: int, token: str, cache) -> None:  # noqa: ANN001
    for _ in range(n):  # each hf_hub_download sends one counted HEAD of the query file (config.json)
        hf_hub_download(repo_id, "config.json", cache_dir=cache, token=token)


@pytest.fixture
def marker() -> str:
    return f"srch{uuid.uuid4().hex[:8]}"


@pytest.fixture
def three(api, repo_factory, marker, alice, tmp_path) -> dict[str, str]:
    """Three text-classification models, created in order a, b, c, with 3, 5 and 1 downloads."""
    repos = {}
    repos["a"] = _model(api, repo_factory, marker, "a", license="apache-2.0", datasets=("alice/tweets",))
    time.sleep(0.01)
    repos["b"] = _model(api, repo_factory, marker, "b", language="fr")
    time.sleep(0.01)
    repos["c"] = _model(api, repo_factory, marker, "c", library="peft", pipeline="text-generation")
    for key, n in (("a", 3), ("b", 5), ("c", 1)):
        _download(repos[key], n, alice.token, tmp_path / "dl")
    return repos


def _ids(items) -> list[str]:  # noqa: ANN001
    return [m.id for m in items]


def test_downloads_sort_and_the_seed_queries(api, three, marker) -> None:
    a, b, c = three["a"], three["b"], three["c"]
    assert api.model_info(b).downloads == 5 and api.model_info(c).downloads == 1
    # `direction` is gone from huggingface_hub 2.x: sort=downloads is descending.
    top = list(api.list_models(filter="text-classification", sort="downloads", limit=10))
    assert len(top) <= 10 and all(m.pipeline_tag == "text-classification" for m in top)
    downloads = [m.downloads for m in top]
    assert downloads == sorted(downloads, reverse=True)
    mine = [m.id for m in top if m.id in (a, b)]
    assert mine == [b, a]
    scoped = list(api.list_models(filter=["text-classification", marker], sort="downloads"))
    assert _ids(scoped) == [b, a] and [m.downloads for m in scoped] == [5, 3]
    assert _ids(api.list_models(filter=marker, sort="downloads")) == [b, a, c]

    # Older clients send direction: -1 is descending, 1 ascending.
    for direction, want in (("-1", [b, a, c]), ("1", [c, a, b])):
        r = httpx.get(f"{ENDPOINT}/api/models", params={"filter": marker, "sort": "downloads",
                                                          "direction": direction})
        assert [m["id"] for m in r.json()] == want, direction


def test_filters_author_and_search(api, repo_factory, acme, three, marker) -> None:
    a, b, c = three["a"], three["b"], three["c"]
    org = _model(api, repo_factory, marker, "org", owner="acme")

    def ids(**kw) -> set[str]:  # noqa: ANN003
        flt = kw.pop("filter", [])
        return set(_ids(api.list_models(filter=[marker, *([flt] if isinstance(flt, str) else flt)], **kw)))

    assert ids() == {a, b, c, org}
    assert ids(author="acme") == {org} and ids(author="alice") == {a, b, c}
    assert ids(search=f"{marker}-b") == {b}
    assert ids(filter="peft") == {c} and ids(filter="transformers") == {a, b, org}
    assert ids(filter="fr") == {b}
    assert ids(filter="license:apache-2.0") == {a}
    assert ids(filter="dataset:alice/tweets") == {a}
    assert ids(trained_dataset="alice/tweets") == {a}
    assert ids(filter="text-generation") == {c} and ids(pipeline_tag="text-generation") == {c}
    assert ids(filter=["text-classification", "license:mit"]) == {b, org}

    full = next(iter(api.list_models(filter=marker, search=f"{marker}-a", cardData=True)))
    assert full.card_data.license == "apache-2.0" and full.card_data.datasets == ["alice/tweets"]
    expanded = next(iter(api.list_models(filter=marker, search=f"{marker}-a", expand=["downloads", "likes"])))
    assert expanded.downloads == 3 and expanded.likes == 0 and expanded.pipeline_tag is None
    # full=True and expand=siblings list the files; fetch_config adds the config.
    full = next(iter(api.list_models(filter=marker, search=f"{marker}-a", full=True)))
    assert {s.rfilename for s in full.siblings} == {".gitattributes", "README.md", "config.json"}
    assert full.sha == api.model_info(a).sha and full.last_modified is not None
    sib = next(iter(api.list_models(filter=marker, search=f"{marker}-a", expand=["siblings", "sha"])))
    assert {s.rfilename for s in sib.siblings} == {".gitattributes", "README.md", "config.json"}
    cfg = next(iter(api.list_models(filter=marker, search=f"{marker}-a", fetch_config=True)))
    assert cfg.config == {"model_type": "bert"}

    api.update_repo_settings(a, gated="auto")
    assert ids(gated=True) == {a} and ids(gated=False) == {b, c, org}
    assert _ids(api.list_models(filter=marker, sort="trending_score"))[0] == b

    # Private repos of others stay out of listings and counts.
    secret = _model(api, repo_factory, marker, "secret")
    api.update_repo_settings(secret, private=True)
    assert secret in ids()
    from huggingface_hub import HfApi

    anon = HfApi(endpoint=ENDPOINT, token=False)
    assert secret not in _ids(anon.list_models(filter=marker))
    r = httpx.get(f"{ENDPOINT}/api/models", params={"filter": marker})
    assert len(r.json()) == 4 and "X-Total-Count" not in r.headers  # no total: the Hub sends none


def test_likes_and_date_sorts(api, bob_api, alice, bob, repo_factory, three, marker) -> None:
    a, b, c = three["a"], three["b"], three["c"]

    def like(repo_id: str, token: str) -> None:  # huggingface_hub 2.x has unlike() but no like()
        r = httpx.post(f"{ENDPOINT}/api/models/{repo_id}/like", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text

    like(c, alice.token)
    like(c, bob.token)
    like(a, bob.token)
    like(a, bob.token)  # idempotent
    assert _ids(api.list_models(filter=marker, sort="likes")) == [c, a, b]
    assert api.model_info(c).likes == 2
    assert {u.username for u in api.list_repo_likers(c)} == {"alice", "bob"}
    liked = bob_api.list_liked_repos("bob")
    assert {a, c} <= set(liked.models)

    bob_api.unlike(c)
    bob_api.unlike(c)  # idempotent
    api.unlike(c)
    assert api.model_info(c).likes == 0
    assert _ids(api.list_models(filter=marker, sort="likes"))[0] == a

    assert _ids(api.list_models(filter=marker, sort="created_at")) == [c, b, a]
    time.sleep(0.01)
    api.upload_file(path_or_fileobj=b"touch", path_in_repo="notes.txt", repo_id=a)
    assert _ids(api.list_models(filter=marker, sort="last_modified")) == [a, c, b]
    info = api.model_info(a)
    assert info.last_modified > api.model_info(c).last_modified > info.created_at
    fresh = api.model_info(repo_factory("fresh"))
    assert fresh.last_modified >= fresh.created_at


def test_link_pagination(api, alice, three, marker) -> None:
    a, b, c = three["a"], three["b"], three["c"]
    headers = {"authorization": f"Bearer {alice.token}"}
    first = httpx.get(f"{ENDPOINT}/api/models", params={"filter": marker, "sort": "createdAt", "limit": 2},
                      headers=headers)
    assert [m["id"] for m in first.json()] == [c, b]
    nxt = first.links["next"]["url"]
    assert nxt.startswith(f"{ENDPOINT}/api/models?")  # absolute, as the client requires
    second = httpx.get(nxt, headers=headers)
    assert [m["id"] for m in second.json()] == [a] and "next" not in second.links
    # The client's own paginator follows the Link headers through every page.
    items = list(paginate(f"{ENDPOINT}/api/models", params={"filter": marker, "sort": "createdAt", "limit": 1},
                          headers=headers))
    assert [m["id"] for m in items] == [c, b, a]
    # list_models(limit=...) reads only what it needs.
    assert _ids(api.list_models(filter=marker, sort="createdAt", limit=2)) == [c, b]


def test_list_datasets_finance(api, repo_factory, marker) -> None:
    made = []
    for i, extra in enumerate(("finance", "finance", "sports")):
        repo_id = repo_factory(f"{marker}-ds{i}", repo_type="dataset")
        card = (f"---\nlicense: mit\nlanguage: [en]\ntask_categories: [text-classification]\n"
                f"tags: [{extra}, {marker}]\n---\n# data\n")
        api.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo_id,
                        repo_type="dataset")
        api.upload_file(path_or_fileobj=b"text,label\nup,1\n", path_in_repo="train.csv", repo_id=repo_id,
                        repo_type="dataset")
        made.append(repo_id)
    top = list(api.list_datasets(filter="finance", limit=5))
    assert 2 <= len(top) <= 5 and all("finance" in d.tags for d in top)
    assert {made[0], made[1]} <= set(_ids(top)) or len(top) == 5
    assert set(_ids(api.list_datasets(filter=[marker, "finance"]))) == set(made[:2])
    assert set(_ids(api.list_datasets(filter=marker, language="en", task_categories="text-classification"))) \
        == set(made)
    assert _ids(api.list_datasets(filter=marker, search=f"{marker}-ds2")) == [made[2]]
    assert set(_ids(api.list_datasets(filter=[marker, "license:mit", "format:csv"]))) == set(made)
    # A model filter does not leak into datasets.
    assert list(api.list_models(filter=marker)) == []


def test_list_spaces(api, repo_factory, marker) -> None:
    made = []
    for i, sdk in enumerate(("gradio", "static")):
        repo_id = repo_factory(f"{marker}-sp{i}", repo_type="space", space_sdk=sdk)
        card = (f"---\nsdk: {sdk}\ntags: [{marker}]\nmodels: [alice/tiny-bert]\ndatasets: [alice/tweets{i}]\n"
                "license: mit\n---\n# space\n")
        api.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo_id,
                        repo_type="space")
        made.append(repo_id)
    assert set(_ids(api.list_spaces(filter=marker))) == set(made)
    assert _ids(api.list_spaces(filter=[marker, "static"])) == [made[1]]
    assert _ids(api.list_spaces(search=f"{marker}-sp0")) == [made[0]]
    assert _ids(api.list_spaces(filter=marker, sort="created_at")) == made[::-1]
    assert set(_ids(api.list_spaces(author="alice", filter=[marker, "model:alice/tiny-bert"]))) == set(made)
    assert set(_ids(api.list_spaces(filter=marker, models="alice/tiny-bert"))) == set(made)
    assert _ids(api.list_spaces(filter=marker, models="alice/other")) == []
    assert _ids(api.list_spaces(filter=marker, datasets="alice/tweets1")) == [made[1]]
    info = next(iter(api.list_spaces(filter=marker, search=f"{marker}-sp0", full=True)))
    assert info.sdk == "gradio" and "README.md" in {s.rfilename for s in info.siblings}
    assert api.space_info(made[0]).card_data.license == "mit"


def test_downloads_count_like_the_hub(api, repo_factory, marker, alice, tmp_path) -> None:
    from huggingface_hub import HfFileSystem, snapshot_download

    repo_id = _model(api, repo_factory, marker, "dl")
    api.upload_file(path_or_fileobj=b"w" * 100, path_in_repo="weights.bin", repo_id=repo_id)
    assert api.model_info(repo_id).downloads == 0
    hf_hub_download(repo_id, "README.md", cache_dir=tmp_path / "c0", token=alice.token)  # not a query file
    hf_hub_download(repo_id, "weights.bin", cache_dir=tmp_path / "c0", token=alice.token)
    assert api.model_info(repo_id).downloads == 0
    hf_hub_download(repo_id, "config.json", cache_dir=tmp_path / "c1", token=alice.token)  # HEAD + GET: one
    assert api.model_info(repo_id).downloads == 1
    snapshot_download(repo_id, cache_dir=tmp_path / "c2", token=alice.token)  # one more, however many files
    assert api.model_info(repo_id).downloads == 2
    fs = HfFileSystem(token=alice.token, skip_instance_cache=True)
    fs.read_text(f"{repo_id}/config.json")  # a plain GET without the counter header (browser, curl)
    info = api.model_info(repo_id, expand=["downloads", "downloadsAllTime"])
    assert info.downloads == 3 and info.downloads_all_time == 3
