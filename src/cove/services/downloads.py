"""Download counting, the Hub's way: a repo is downloaded when its "query file" is fetched.

Models count `config.json` (or `adapter_config.json`, `model_index.json`, a `.gguf` file); datasets
count `README.md` and data files. `hf_hub_download` sends HEAD then maybe GET with
`X-HF-Download-Counter`: we count the HEAD, and a GET only when it came without that header
(a browser or curl), so one download counts once.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cove.db.tables import DownloadDay, Repo, utcnow

MODEL_QUERY_FILES = {"config.json", "adapter_config.json", "model_index.json", "params.json"}
DATASET_SUFFIXES = (".parquet", ".csv", ".json", ".jsonl", ".arrow", ".txt", ".tsv")


def is_query_file(repo: Repo, path: str) -> bool:
    if repo.type == "model":
        return path in MODEL_QUERY_FILES or path.endswith(".gguf")
    if repo.type == "dataset":
        return path == "README.md" or path.endswith(DATASET_SUFFIXES)
    return False


def maybe_count(db: Session, repo: Repo, path: str, *, head: bool, counter_header: str | None) -> None:
    if not is_query_file(repo, path):
        return
    if not head and counter_header:
        return
    record(db, repo)


def record(db: Session, repo: Repo, n: int = 1) -> None:
    day = utcnow().strftime("%Y-%m-%d")
    row = db.get(DownloadDay, (repo.id, day))
    if row is None:
        db.add(DownloadDay(repo_pk=repo.id, day=day, count=n))
    else:
        row.count += n
    repo.downloads_all_time = (repo.downloads_all_time or 0) + n
    db.flush()
    since = (utcnow() - timedelta(days=30)).strftime("%Y-%m-%d")
    repo.downloads = db.scalar(
        select(func.coalesce(func.sum(DownloadDay.count), 0)).where(
            DownloadDay.repo_pk == repo.id, DownloadDay.day >= since
        )
    )
