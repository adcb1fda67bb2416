"""The dataset viewer: configs and splits from the card (or the file layout), then a page of rows."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

import pyarrow as pa
from fastapi import Request
from fastapi.responses import Response

from cove.backends import Backends
from cove.errors import HubError
from cove.services.cards import parse_card
from cove.storage.git_repos import Entry
from cove.web import colstats, datafiles, rowsearch
from cove.web.render import page
from cove.web.repo import open_repo

PAGE_ROWS = 25
MAX_OFFSET = 1_000_000
_SPLITS = {"train": ("train", "training"), "validation": ("validation", "valid", "val", "dev"),
           "test": ("test", "testing", "eval", "evaluation")}
_WORD = re.compile(r"[^a-z0-9]+")


@dataclass
class Split:
    name: str
    files: list[Entry] = field(default_factory=list)


@dataclass
class Config:
    name: str
    splits: list[Split] = field(default_factory=list)


def _split_of(path: str) -> str:
    words = set(_WORD.split(path.lower()))
    for split, names in _SPLITS.items():
        if words & set(names):
            return split
    return "train"


def _patterns(value: object) -> list[tuple[str, list[str]]]:
    """`data_files` of a config → [(split, [glob...])] (str, list of str, or list of {split, path})."""
    if isinstance(value, str):
        return [("train", [value])]
    if isinstance(value, dict):
        return [(str(k), [v] if isinstance(v, str) else [str(x) for x in v or []]) for k, v in value.items()]
    out: list[tuple[str, list[str]]] = []
    if isinstance(value, list):
        plain = [str(v) for v in value if isinstance(v, str)]
        if plain:
            out.append(("train", plain))
        for item in value:
            if isinstance(item, dict) and item.get("path"):
                p = item["path"]
                globs = [p] if isinstance(p, str) else [str(x) for x in p]
                out.append((str(item.get("split", "train")), globs))
    return out


def discover(meta: dict, entries: list[Entry]) -> list[Config]:
    """Configs and splits: the card's `configs:` when present, else the splits the file names suggest."""
    data = [e for e in entries if e.type == "file" and datafiles.format_of(e.path)]
    configs: list[Config] = []
    declared = meta.get("configs") if isinstance(meta.get("configs"), list) else []
    for item in declared:
        if not isinstance(item, dict):
            continue
        cfg = Config(str(item.get("config_name", "default")))
        for split, globs in _patterns(item.get("data_files")):
            matched = [e for e in data if any(fnmatch.fnmatch(e.path, g) or fnmatch.fnmatch(e.path, g + "/*")
                                              for g in globs)]
            if matched:
                cfg.splits.append(Split(split, sorted(matched, key=lambda e: e.path)))
        if cfg.splits:
            configs.append(cfg)
    if configs:
        return configs
    by_split: dict[str, list[Entry]] = {}
    for e in sorted(data, key=lambda e: e.path):
        by_split.setdefault(_split_of(e.path), []).append(e)
    order = list(_SPLITS)
    splits = [Split(s, by_split[s]) for s in sorted(by_split, key=lambda s: order.index(s))]
    return [Config("default", splits)] if splits else []


Opened = tuple[str | None, list[Callable[[], BinaryIO]]]


def opened(bk: Backends, repo, split: Split) -> Opened:  # noqa: ANN001
    """The split's one file format (None when it mixes formats) and an `Opener` per file: one request's reads of
    the split share them (each parquet footer is parsed once)."""
    formats = {datafiles.format_of(e.path) for e in split.files}
    fmt = formats.pop() if len(formats) == 1 else None
    return fmt, [datafiles.Opener(lambda e=e: datafiles.open_entry(bk, repo, e)) for e in split.files]


def read_page(split: Opened, offset: int, limit: int) -> datafiles.Rows:
    fmt, handles = split
    if fmt is None:
        return datafiles.Rows(error="This split mixes file formats; the viewer shows one format per split")
    try:
        if fmt == "parquet":
            return datafiles.parquet_rows(handles, offset, limit)
        return datafiles.text_rows(fmt, handles, offset, limit)
    except (pa.ArrowException, OSError, ValueError, KeyError, HubError) as exc:  # a broken or missing file
        return datafiles.Rows(error=f"Could not read this split: {exc}")


def search_split(split: Opened, query: str, offset: int, limit: int, start: int = 0) -> rowsearch.Matches:
    """The rows of a split whose text columns contain `query` (`rowsearch`: text columns first, whole rows for
    the page only)."""
    fmt, handles = split
    if fmt is None:
        return rowsearch.Matches(error="This split mixes file formats")
    try:
        return rowsearch.search(fmt, handles, query, offset, limit, start=start)
    except HubError as exc:
        return rowsearch.Matches(error=f"Could not search this split: {exc}")


def split_stats(split: Opened) -> colstats.SplitStats:
    """Column statistics of a split (`colstats`): footers and a sample, never the whole split unless small."""
    fmt, handles = split
    if fmt is None:
        return colstats.SplitStats(error="This split mixes file formats")
    try:
        return colstats.split_stats(fmt, handles)
    except HubError as exc:
        return colstats.SplitStats(error=f"Could not compute statistics: {exc}")


def viewer_page(request: Request, ns: str, name: str) -> Response:
    """`/datasets/{ns}/{name}/viewer?config=&split=&p=`: the first rows of each config and split."""
    _, view = open_repo(request, "dataset", ns, name)
    bk: Backends = request.app.state.backends
    repo = view.repo
    key = repo.storage_key
    sha = bk.repos.resolve(key, view.branch)
    configs: list[Config] = []
    if sha:
        entries = bk.repos.list_tree(key, sha, recursive=True) or []
        meta: dict = {}
        readme = bk.repos.entry(key, sha, "README.md")
        if readme is not None and readme.type == "file" and not readme.is_lfs:
            meta, _, _ = parse_card(bk.repos.read_blob(key, readme.oid).decode("utf-8", "replace"))
        configs = discover(meta if isinstance(meta, dict) else {}, entries)
    qp = request.query_params
    config = next((c for c in configs if c.name == qp.get("config")), configs[0] if configs else None)
    split = None
    if config is not None:
        split = next((s for s in config.splits if s.name == qp.get("split")), config.splits[0])
    try:
        p = max(0, int(qp.get("p", "0")))
    except ValueError:
        p = 0
    p = min(p, MAX_OFFSET // PAGE_ROWS)
    rows = stats = None
    query = (qp.get("q") or "").strip()[:rowsearch.MAX_QUERY]
    if split is not None:
        gated = datafiles.Rows(error="This dataset is gated: ask for access on its card to see its rows.")
        files = opened(bk, repo, split)
        if not view.has_files:
            rows = gated
        elif query:
            try:
                start = max(0, int(qp.get("from", "0")))
            except ValueError:
                start = 0
            rows = search_split(files, query, p * PAGE_ROWS, PAGE_ROWS, start)
        else:
            rows = read_page(files, p * PAGE_ROWS, PAGE_ROWS)
        if qp.get("stats") == "1" and view.has_files:
            stats = split_stats(files)
    return page(request, "viewer.html", title=f"Viewer · {view.repo_id}", view=view, tab="viewer",
                configs=configs, config=config, split=split, rows=rows, p=p, page_rows=PAGE_ROWS, stats=stats,
                query=query,
                stats_by={c.name: c for c in stats.columns} if stats else {})
