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
