"""Card rendering: markdown features survive, anything that could run script does not."""

from __future__ import annotations

import pytest

from cove.web import cards

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    "<svg onload=alert(1)><circle/></svg>",
    '<iframe src="https://evil.example"></iframe>',
    '<object data="x.swf"></object><embed src="x.swf">',
    "<style>body{display:none}</style>",
    '<div style="background:url(javascript:alert(1))" onclick="alert(1)">x</div>',
    '<form action="https://evil.example"><input name=a></form>',
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    '<base href="https://evil.example/">',
    "![x](javascript:alert(1))",
    '<img src="data:text/html,<script>alert(1)</script>">',
    "<details open ontoggle=alert(1)><summary>s</summary></details>",
    '<a href="vbscript:msgbox(1)">v</a>',
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_markup_is_neutralised(payload):
    html, _ = cards.render_markdown(f"# Card\n\n{payload}\n\ntext after", base="/alice/m", rev="main")
    low = html.lower()
    for bad in (
        "<script",
        "javascript:",
        "vbscript:",
        "onerror",
        "onload",
        "onclick",
        "ontoggle",
        "<iframe",
        "<object",
        "<embed",
        "<style",
        "<form",
        "<meta",
        "<base",
        "style=",
        "data:text/html",
    ):
        assert bad not in low, (payload, html)
    assert "text after" in html


def test_markdown_tables_code_and_relative_images():
    text = (
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nprint('hi')\n```\n\n"
        "![curve](training_curves.png) [cfg](config.json) [ext](https://example.com) [top](#usage)\n"
    )
    html, images = cards.render_markdown(text, base="/alice/m", rev="v1")
    assert "<table>" in html and "<td>1</td>" in html
    assert 'class="highlight"' in html and "print" in html
    assert 'src="/alice/m/resolve/v1/training_curves.png"' in html
    assert 'href="/alice/m/blob/v1/config.json"' in html
    assert 'href="https://example.com"' in html and 'rel="noopener noreferrer nofollow"' in html
    assert 'href="#usage"' in html
    assert images == ["training_curves.png"]


def test_relative_paths_cannot_climb_out_of_the_repo():
    html, images = cards.render_markdown(
        "![x](../../bob/secret/resolve/main/a.png)", base="/alice/m", rev="main"
    )
    assert "bob/secret" not in html and images == []


def test_metadata_chips_and_results():
    meta = {
        "pipeline_tag": "text-classification",
        "library_name": "transformers",
        "license": "mit",
        "datasets": ["alice/reviews"],
        "base_model": "org/base",
        "language": ["en", "fr"],
        "tags": ["demo"],
        "model-index": [
            {
                "name": "m",
                "results": [
                    {
                        "task": {"type": "text-classification"},
                        "dataset": {"name": "reviews", "type": "r", "split": "test"},
                        "metrics": [{"type": "accuracy", "value": 0.91234}],
                    }
                ],
            }
        ],
    }
    kinds = {(c.kind, c.label) for c in cards.chips(meta, "model")}
    assert {
        ("task", "text-classification"),
        ("library", "transformers"),
        ("license", "mit"),
        ("dataset", "alice/reviews"),
        ("base_model", "org/base"),
        ("language", "fr"),
        ("tag", "demo"),
    } <= kinds
    rows = cards.results(meta)
    assert rows == [
        {
            "model": "m",
            "task": "text-classification",
            "dataset": "reviews",
            "split": "test",
            "metric": "accuracy",
            "value": "0.9123",
        }
    ]
    assert cards.results({"model-index": "junk"}) == []


def test_snippets_use_the_server_endpoint():
    out = dict(
        cards.snippets(
            "model",
            "alice/m",
            "https://hub.example",
            pipeline_tag="text-classification",
            library="transformers",
        )
    )
    assert 'os.environ["HF_ENDPOINT"] = "https://hub.example"' in out["pipeline"]
    assert 'pipeline("text-classification", model="alice/m")' in out["pipeline"]
    assert 'AutoModel.from_pretrained("alice/m")' in out["from_pretrained"]
    ds = dict(cards.snippets("dataset", "alice/d", "https://hub.example", pipeline_tag=None, library=None))
    assert 'load_dataset("alice/d")' in ds["datasets"]
    assert "--repo-type dataset" in ds["hf CLI"]
