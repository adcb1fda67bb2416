"""Pages over HTTP against the live server: listings, repo pages, files, history, diffs, the viewer."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.conftest import ENDPOINT


def test_home_search_finds_the_model_and_dataset(anon_web, hub):
    r = anon_web.get("/", params={"q": hub.term})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert f'href="/{hub.model}"' in r.text
    assert f'href="/datasets/{hub.dataset}"' in r.text


def test_listing_filters_sort_and_pages(anon_web, hub):
    page = anon_web.get("/models", params={"search": hub.term}).text
    assert f'href="/{hub.model}"' in page and 'id="total">1<' in page
    for params in (
        {"task": "text-classification"},
        {"library": "transformers"},
        {"license": "apache-2.0"},
        {"language": "en"},
        {"tags": f"sentiment,{hub.term}"},
        {"author": "alice"},
    ):
        text = anon_web.get("/models", params={"search": hub.term, **params}).text
        assert f'href="/{hub.model}"' in text, params
    for params in ({"task": "text-generation"}, {"license": "mit"}, {"tags": "nope"}, {"author": "bob"}):
        assert 'id="total">0<' in anon_web.get("/models", params={"search": hub.term, **params}).text, params
    for sort in ("downloads", "likes", "updated", "created"):
        assert anon_web.get("/models", params={"sort": sort}).status_code == 200
    ds = anon_web.get("/datasets", params={"task": "text-classification", "search": hub.term}).text
    assert f'href="/datasets/{hub.dataset}"' in ds
    assert anon_web.get("/models", params={"p": "5000"}).status_code == 200
    assert anon_web.get("/spaces").status_code == 200


def test_listing_pages_through_results(api, anon_web):
    from cove.web.listing import PAGE_SIZE

    term = f"pg{uuid.uuid4().hex[:8]}"
    ids = [f"alice/{term}-{i:02d}" for i in range(PAGE_SIZE + 1)]
    try:
        for repo_id in ids:
            api.create_repo(repo_id)
        first = anon_web.get("/models", params={"search": term, "sort": "created"}).text
        second = anon_web.get("/models", params={"search": term, "sort": "created", "p": 1}).text
        on_first = {i for i in ids if f'href="/{i}"' in first}
        on_second = {i for i in ids if f'href="/{i}"' in second}
        assert len(on_first) == PAGE_SIZE and len(on_second) == 1 and on_first | on_second == set(ids)
        assert 'rel="next"' in first and 'rel="prev"' not in first
        assert 'rel="prev"' in second and 'rel="next"' not in second
        assert f'id="total">{PAGE_SIZE + 1}<' in first and "Page 2 of 2" in second
    finally:
        for repo_id in ids:
            api.delete_repo(repo_id, missing_ok=True)


def test_model_card_page(anon_web, hub):
    r = anon_web.get(f"/{hub.model}")
    assert r.status_code == 200
    html = r.text
    assert "<table>" in html and "0.52" in html  # markdown table
    assert 'class="highlight"' in html  # fenced code
    assert f'src="/{hub.model}/resolve/main/training_curves.png"' in html
    for chip in (
        "text-classification",
        "transformers",
        "apache-2.0",
        "alice/reviews",
        "google-bert/bert-base-uncased",
    ):
        assert f">{chip}</a>" in html, chip
    assert 'id="results"' in html and "0.9123" in html and "Accuracy" in html
    assert f"os.environ[&#34;HF_ENDPOINT&#34;] = &#34;{ENDPOINT}&#34;" in html
    assert (
        "Content-Security-Policy" in r.headers and "script-src 'self'" in r.headers["content-security-policy"]
    )
    img = httpx.get(f"{ENDPOINT}/{hub.model}/resolve/main/training_curves.png")
    assert img.status_code == 200 and img.content.startswith(b"\x89PNG")


def test_dataset_page_links_the_viewer(anon_web, hub):
    html = anon_web.get(f"/datasets/{hub.dataset}").text
    assert 'id="viewer-tab"' in html and "load_dataset" in html


def test_tree_at_branch_tag_and_commit(anon_web, hub):
    main = anon_web.get(f"/{hub.model}/tree/main").text
    assert "model.safetensors" in main and 'class="badge lfs"' in main
    assert "History: 3 commits" in main
    v1 = anon_web.get(f"/{hub.model}/tree/v1").text
    assert "train.py" in v1 and "model.safetensors" not in v1
    assert f'<option value="/{hub.model}/tree/v1" selected>tag: v1</option>' in v1
    by_sha = anon_web.get(f"/{hub.model}/tree/{hub.tag_sha}").text
    assert "model.safetensors" not in by_sha and f"commit: {hub.tag_sha[:10]}" in by_sha
    assert anon_web.get(f"/{hub.model}/tree/nope").status_code == 404


def test_blob_views(anon_web, hub):
    code = anon_web.get(f"/{hub.model}/blob/main/train.py").text
    assert 'class="highlight"' in code and "EPOCHS" in code
    assert f'href="/{hub.model}/resolve/main/train.py"' in code
    old = anon_web.get(f"/{hub.model}/blob/v1/train.py").text
    assert "EPOCHS" not in old
    image = anon_web.get(f"/{hub.model}/blob/main/training_curves.png").text
    assert 'id="image-view"' in image
    lfs = anon_web.get(f"/{hub.model}/blob/main/model.safetensors").text
    assert "Stored with Git LFS" in lfs and "20.0 kB" in lfs and "SHA256" in lfs
    assert anon_web.get(f"/{hub.model}/blob/main/missing.txt").status_code == 404
    r = anon_web.get(f"/{hub.model}/blob/main/..%2F..%2Fetc%2Fpasswd")
    assert r.status_code in (400, 404)


def test_commit_history_and_diff(anon_web, hub):
    history = anon_web.get(f"/{hub.model}/commits/main").text
    assert "Train for 3 epochs" in history and "Add model card, config and curves" in history
    assert "Train for 3 epochs" not in anon_web.get(f"/{hub.model}/commits/v1").text
    diff = anon_web.get(f"/{hub.model}/commit/{hub.head_sha}").text
    assert 'data-path="train.py"' in diff and 'data-path="model.safetensors"' in diff
    assert re.search(r'<tr class="add">.*EPOCHS = 3', diff)
    assert re.search(r'<tr class="del">.*range\(2\)', diff)
    assert "Binary or large file" in diff
    short = anon_web.get(f"/{hub.model}/commit/{hub.head_sha[:12]}")
    assert short.status_code == 200


def test_dataset_viewer(anon_web, hub):
    base = f"/datasets/{hub.dataset}/viewer"
    html = anon_web.get(base).text
    assert "1000 rows" in html and "review 0" in html and "review 24" in html and "review 25" not in html
    assert ">int64<" in html and ">double<" in html and ">string<" in html
    page3 = anon_web.get(base, params={"split": "train", "p": 3}).text
    assert "review 75" in page3 and "review 74<" not in page3
    csv = anon_web.get(base, params={"split": "test", "p": 1}).text
    assert "test review 25" in csv and "test review 24<" not in csv
    jsonl = anon_web.get(base, params={"split": "validation"}).text
    assert "val 0" in jsonl and "{&#34;k&#34;: 0}" in jsonl
    for split in ("train", "validation", "test"):
        assert f"split={split}" in html


def test_people_pages(anon_web, hub, acme):
    alice = anon_web.get("/alice").text
    assert f'href="/{hub.model}"' in alice and f'href="/datasets/{hub.dataset}"' in alice
    assert 'href="/acme"' in alice
    org = anon_web.get("/acme").text
    assert "Organization" in org and 'href="/alice"' in org
    assert anon_web.get("/no-such-user-xyz").status_code == 404


def test_errors_are_html_for_browsers_and_json_for_the_api(anon_web):
    page = anon_web.get("/alice/missing-repo-xyz", headers={"accept": "text/html"})
    assert page.status_code == 404 and "<html" in page.text
    api = httpx.get(f"{ENDPOINT}/api/models/alice/missing-repo-xyz")
    assert api.status_code == 404 and api.json()["error"] and api.headers["x-error-code"] == "RepoNotFound"


def test_api_routes_still_win(anon_web, hub):
    r = anon_web.get(f"/{hub.model}/resolve/main/README.md")
    assert r.status_code == 200 and r.text.startswith("---")
    assert anon_web.get(f"/api/models/{hub.model}").json()["id"] == hub.model
    assert anon_web.get("/api/models", params={"search": hub.term}).json()[0]["id"] == hub.model
    assert anon_web.get("/_static/style.css").headers["content-type"].startswith("text/css")
    assert anon_web.get("/_static/..%2Fpages.py").status_code == 404


def test_branch_names_with_slashes(api, repo_factory, anon_web):
    repo_id = repo_factory("web-slash")
    api.create_branch(repo_id, branch="feat/web")
    api.upload_file(
        path_or_fileobj=b"hello\n", path_in_repo="docs/a.txt", repo_id=repo_id, revision="feat/web"
    )
    tree = anon_web.get(f"/{repo_id}/tree/feat%2Fweb/docs")
    assert tree.status_code == 200 and "a.txt" in tree.text
    assert f'href="/{repo_id}/blob/feat%2Fweb/docs/a.txt"' in tree.text
    assert "hello" in anon_web.get(f"/{repo_id}/blob/feat%2Fweb/docs/a.txt").text
    assert "a.txt" not in anon_web.get(f"/{repo_id}/tree/main").text
    assert anon_web.get(f"/{repo_id}/commits/feat%2Fweb").status_code == 200


@pytest.mark.xet
def test_xet_files_in_the_tree_blob_and_viewer(api, repo_factory, anon_web):
    from tests.web.conftest import parquet_bytes

    repo_id = repo_factory("web-xet", repo_type="dataset")
    api.upload_file(
        path_or_fileobj=parquet_bytes(3000, 300),
        path_in_repo="data/train.parquet",
        repo_id=repo_id,
        repo_type="dataset",
    )
    assert 'class="badge xet"' in anon_web.get(f"/datasets/{repo_id}/tree/main/data").text
    assert "Stored with Xet" in anon_web.get(f"/datasets/{repo_id}/blob/main/data/train.parquet").text
    page = anon_web.get(f"/datasets/{repo_id}/viewer", params={"p": 100}).text
    assert "3000 rows" in page and "review 2500<" in page and "review 2524<" in page


def test_repo_images_are_shown_under_the_card(api, repo_factory, anon_web, no_xet):
    from tests.web.conftest import png

    repo_id = repo_factory("web-gallery")
    api.upload_file(path_or_fileobj=b"# Card without images\n", path_in_repo="README.md", repo_id=repo_id)
    api.upload_file(path_or_fileobj=png(), path_in_repo="plots/loss_curve.png", repo_id=repo_id)
    html = anon_web.get(f"/{repo_id}").text
    assert 'id="gallery"' in html and f'src="/{repo_id}/resolve/main/plots/loss_curve.png"' in html


def test_markdown_files_are_rendered_and_sanitized(anon_web, hub):
    html = anon_web.get(f"/{hub.model}/blob/main/README.md").text
    assert 'id="rendered"' in html and "<table>" in html and 'id="code-view"' in html
    assert f'src="/{hub.model}/resolve/main/training_curves.png"' in html


def test_viewer_survives_a_broken_file(api, repo_factory, anon_web, no_xet):
    repo_id = repo_factory("web-broken", repo_type="dataset")
    api.upload_file(
        path_or_fileobj=b"not a parquet file",
        path_in_repo="train.parquet",
        repo_id=repo_id,
        repo_type="dataset",
    )
    r = anon_web.get(f"/datasets/{repo_id}/viewer")
    assert r.status_code == 200 and "Could not read this split" in r.text
