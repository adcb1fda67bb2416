"""Repo cards for the browser: markdown to sanitized HTML, metadata chips, results, usage snippets."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import nh3

from cove.services.card_meta import read_card

#: Tags a card may use, on top of nh3's defaults (which already drop <script>, <style>, event handlers).
EXTRA_TAGS = {"details", "summary", "figure", "figcaption", "picture", "source", "video", "audio", "mark"}
EXTRA_ATTRS = {
    "*": {"class", "id", "align", "title"},
    "img": {"src", "alt", "width", "height", "loading"},
    "a": {"href", "title"},
    "source": {"src", "srcset", "type", "media"},
    "video": {"src", "controls", "width", "height", "poster"},
    "audio": {"src", "controls"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "ol": {"start"},
}
URL_SCHEMES = {"http", "https", "mailto"}
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg")


@dataclass
class Chip:
    kind: str  # task | library | license | dataset | base_model | language | tag
    label: str
    href: str | None = None


@dataclass
class Card:
    html: str
    meta: dict
    chips: list[Chip] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # referenced image paths in the repo
    errors: list[str] = field(default_factory=list)  # what is wrong with the YAML metadata (left out of meta)


def _resolver(base: str, rev: str):  # noqa: ANN202
    """Rewrite a relative link in a card to the repo's file (images: raw bytes; links: the file page)."""
    qrev = quote(rev, safe="")
    seen: list[str] = []

    def rewrite(tag: str, attr: str, value: str) -> str | None:
        if attr not in ("src", "href", "srcset", "poster"):
            return value
        parts = urlsplit(value.strip())
        if parts.scheme or parts.netloc or value.startswith(("#", "/")) or not parts.path:
            return value
        path = posixpath.normpath(parts.path)
        if path.startswith(("..", "/")) or path == ".":
            return None
        if tag == "a":
            return f"{base}/blob/{qrev}/{quote(path)}" + (f"#{parts.fragment}" if parts.fragment else "")
        seen.append(path)
        return f"{base}/resolve/{qrev}/{quote(path)}"

    return rewrite, seen


def sanitize(html: str, *, attribute_filter=None) -> str:  # noqa: ANN001
    """Card HTML minus anything that could run script: nh3 (ammonia) with a small allow-list."""
    tags = set(nh3.ALLOWED_TAGS) | EXTRA_TAGS
    attrs = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
    for k, v in EXTRA_ATTRS.items():
        attrs[k] = attrs.get(k, set()) | v
    return nh3.clean(html, tags=tags, attributes=attrs, url_schemes=URL_SCHEMES, strip_comments=True,
                     link_rel="noopener noreferrer nofollow", attribute_filter=attribute_filter)


def render_markdown(text: str, *, base: str = "", rev: str = "main") -> tuple[str, list[str]]:
    """Markdown (tables, fenced code with highlighting) → sanitized HTML, and the repo images it shows."""
    import markdown  # imported on the first card rendered: off the start-up path

    md = markdown.Markdown(extensions=["tables", "fenced_code", "codehilite", "sane_lists", "toc"],
                           extension_configs={"codehilite": {"guess_lang": False, "css_class": "highlight"}})
    raw = md.convert(text)
    rewrite, seen = _resolver(base, rev)
    return sanitize(raw, attribute_filter=rewrite if base else None), seen


def _as_list(v: object) -> list[str]:
    if v is None:
        return []
    if isinstance(v, (list, tuple)):
        return [str(x) for x in v if x is not None and not isinstance(x, (dict, list))]
    return [str(v)] if not isinstance(v, dict) else []


def chips(meta: dict, repo_type: str) -> list[Chip]:
    plural = {"model": "models", "dataset": "datasets", "space": "spaces"}[repo_type]
    out: list[Chip] = []
    for t in _as_list(meta.get("pipeline_tag")) + _as_list(meta.get("task_categories")):
        out.append(Chip("task", t, f"/{plural}?task={quote(t)}"))
    for lib in _as_list(meta.get("library_name")):
        out.append(Chip("library", lib, f"/{plural}?library={quote(lib)}"))
    for lic in _as_list(meta.get("license")):
        out.append(Chip("license", lic, f"/{plural}?license={quote(lic)}"))
    for lang in _as_list(meta.get("language")):
        out.append(Chip("language", lang, f"/{plural}?language={quote(lang)}"))
    for m in _as_list(meta.get("models")) if repo_type == "space" else []:  # the models a Space uses
        out.append(Chip("model", m, f"/{m}" if "/" in m else None))
    for d in _as_list(meta.get("datasets")):
        out.append(Chip("dataset", d, f"/datasets/{d}" if "/" in d else None))
    for b in _as_list(meta.get("base_model")):
        out.append(Chip("base_model", b, f"/{b}" if "/" in b else None))
    for t in _as_list(meta.get("tags")):
        out.append(Chip("tag", t, f"/{plural}?tags={quote(t)}"))
    return out[:60]


def results(meta: dict) -> list[dict]:
    """`model-index` flattened to rows: model, task, dataset, split, metric, value."""
    rows: list[dict] = []
    mi = meta.get("model-index")
    if not isinstance(mi, list):
        return rows
    for model in mi:
        if not isinstance(model, dict):
            continue
        for res in model.get("results") or []:
            if not isinstance(res, dict):
                continue
            task = res.get("task") if isinstance(res.get("task"), dict) else {}
            ds = res.get("dataset") if isinstance(res.get("dataset"), dict) else {}
            for m in res.get("metrics") or []:
                if not isinstance(m, dict):
                    continue
                value = m.get("value")
                if isinstance(value, float):
                    value = f"{value:.4g}"
                rows.append({
                    "model": str(model.get("name", "")),
                    "task": str(task.get("name") or task.get("type") or ""),
                    "dataset": str(ds.get("name") or ds.get("type") or ""),
                    "split": str(ds.get("split") or ""),
                    "metric": str(m.get("name") or m.get("type") or ""),
                    "value": "" if value is None else str(value),
                })
    return rows[:500]


def load(text: str, *, repo_type: str, base: str, rev: str) -> Card:
    read = read_card(text)
    html, seen = render_markdown(read.body, base=base, rev=rev)
    meta = read.meta
    return Card(html=html, meta=meta, chips=chips(meta, repo_type), results=results(meta), images=seen,
                errors=read.errors)


def snippets(repo_type: str, repo_id: str, endpoint: str, *, pipeline_tag: str | None,
             library: str | None) -> list[tuple[str, str]]:
    """(title, code) pairs for "use this repo", pointed at this server."""
    rid = json.dumps(repo_id)
    env = f'import os\n\nos.environ["HF_ENDPOINT"] = {json.dumps(endpoint)}  # before the imports below\n\n'
    out: list[tuple[str, str]] = []
    if repo_type == "dataset":
        out.append(("datasets", f"{env}from datasets import load_dataset\n\nds = load_dataset({rid})"))
    elif repo_type == "model":
        if library == "peft":
            out.append(("peft", f"{env}from peft import AutoPeftModel\n\n"
                                f"model = AutoPeftModel.from_pretrained({rid})"))
        elif library == "sentence-transformers":
            out.append(("sentence-transformers",
                        f"{env}from sentence_transformers import SentenceTransformer\n\n"
                        f"model = SentenceTransformer({rid})"))
        elif library in (None, "transformers"):
            if pipeline_tag:
                out.append(("pipeline", f'{env}from transformers import pipeline\n\n'
                                        f'pipe = pipeline({json.dumps(pipeline_tag)}, model={rid})'))
            out.append(("from_pretrained", f"{env}from transformers import AutoModel, AutoTokenizer\n\n"
                                           f"tokenizer = AutoTokenizer.from_pretrained({rid})\n"
                                           f"model = AutoModel.from_pretrained({rid})"))
    kind = "" if repo_type == "model" else f" --repo-type {repo_type}"
    out.append(("hf CLI", f"export HF_ENDPOINT={endpoint}\nhf download {repo_id}{kind}"))
    out.append(("git", f"git clone {endpoint}/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}"))
    return out


def is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTS)
