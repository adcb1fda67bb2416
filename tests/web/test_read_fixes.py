"""Issue 15 item 8: /api/docs offline, facets that follow the filters, readable chips, CSS for links and tables."""

from __future__ import annotations

import re


def test_api_docs_load_their_assets_from_cove(anon_web):
    html = anon_web.get("/api/docs").text
    assert "/api/openapi.json" in html
    assert "cdn.jsdelivr.net" not in html and "fastapi.tiangolo.com" not in html
    urls = re.findall(r'(?:src|href)="(/[^"]+)"', html)
    assert any(u.endswith("swagger-ui-bundle.js") for u in urls) and any(u.endswith(".css") for u in urls)
    for url in urls:
        r = anon_web.get(url)
        assert r.status_code == 200 and len(r.content) > 1000, url
    assert anon_web.get("/_static/swagger/..%2Fcore.py").status_code == 404


def _facet(html: str, kind: str) -> dict[str, int]:
    block = re.search(rf'<div class="facet" id="facet-{kind}">(.*?)</div>', html, re.S)
    if block is None:
        return {}
    return {v: int(n) for v, n in re.findall(r'>([^<>]+?) <span class="count">(\d+)</span></a>', block.group(1))}


def test_facet_counts_follow_the_active_filters(anon_web, hub):
    html = anon_web.get("/models", params={"search": hub.term}).text
    assert _facet(html, "task") == {"text-classification": 1}
    assert _facet(html, "library") == {"transformers": 1} and _facet(html, "license") == {"apache-2.0": 1}
    assert _facet(html, "language") == {"en": 1}  # a Languages facet for models too
    none = anon_web.get("/models", params={"search": hub.term, "license": "mit"}).text
    assert 'id="total">0<' in none and _facet(none, "task") == {}
    # a facet's own choice does not hide its other values: they are counted under the other filters
    chosen = anon_web.get("/models", params={"search": hub.term, "license": "mit"}).text
    assert _facet(chosen, "license") == {"apache-2.0": 1}
    ds = anon_web.get("/datasets", params={"search": hub.term}).text
    assert _facet(ds, "language") == {"en": 1}


def test_active_filter_chips_are_readable(anon_web, hub):
    html = anon_web.get("/models", params={"search": hub.term, "tags": f"sentiment,{hub.term}",
                                           "license": "apache-2.0"}).text
    chips = dict(re.findall(r'<a class="chip on active" href="([^"]+)"[^>]*>(.*?)</a>', html))
    labels = {re.sub(r"<[^>]+>", "", text).replace("✕", "").strip(): href for href, text in chips.items()}
    assert set(labels) >= {"License: apache-2.0", "Tag: sentiment", f"Tag: {hub.term}", f"Search: {hub.term}"}
    drop_one_tag = labels["Tag: sentiment"].replace("&amp;", "&")
    assert f"tags={hub.term}" in drop_one_tag and "sentiment" not in drop_one_tag
    assert 'id="total">1<' in anon_web.get(drop_one_tag).text


def test_viewer_column_statistics(anon_web, hub):
    base = f"/datasets/{hub.dataset}/viewer"
    plain = anon_web.get(base, params={"split": "train"}).text
    assert 'id="col-stats"' not in plain and "stats=1" in plain  # computed only when asked for
    html = anon_web.get(base, params={"split": "train", "stats": "1"}).text
    row = re.search(r'<tr id="col-stats"[^>]*>(.*?)</tr>', html, re.S).group(1)
    cells = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c)).strip()
             for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    text, label, score = cells
    assert "0 nulls" in label and "min 0" in label and "max 1" in label
    assert "max 124.875" in score
    assert "review 0" in text and "0 nulls" in text
    csv = anon_web.get(base, params={"split": "test", "stats": "1"}).text
    assert 'id="col-stats"' in csv and "nulls" in csv


def test_viewer_search_within_a_split_and_histograms(anon_web, hub):
    base = f"/datasets/{hub.dataset}/viewer"
    html = anon_web.get(base, params={"split": "train", "q": "Review 42"}).text
    assert 'id="search-form"' in html and 'value="Review 42"' in html
    body = re.search(r"<tbody>(.*?)</tbody>", html, re.S).group(1)
    numbers = [int(n) for n in re.findall(r'<td class="ln">(\d+)</td>', body)]
    assert numbers == [42, *range(420, 430)]  # each match with its row number in the split
    assert "11 rows match" in re.sub(r"\s+", " ", html)
    csv = anon_web.get(base, params={"split": "test", "q": "review 29"}).text
    assert [int(n) for n in re.findall(r'<td class="ln">(\d+)</td>', csv)] == [29, *range(290, 300)]
    none = anon_web.get(base, params={"split": "train", "q": "<script>nothing"}).text
    assert "0 rows match" in re.sub(r"\s+", " ", none) and "<script>nothing" not in none
    stats = anon_web.get(base, params={"split": "train", "stats": "1"}).text
    row = re.search(r'<tr id="col-stats"[^>]*>(.*?)</tr>', stats, re.S).group(1)
    hists = re.findall(r'<svg class="hist".*?</svg>', row, re.S)
    assert len(hists) == 2  # label and score, not the text column
    assert hists[0].count("<rect") == 2 and "0 – 1: 500" in hists[0]  # label: 0 and 1, 500 each
    assert hists[1].count("<rect") == 10
