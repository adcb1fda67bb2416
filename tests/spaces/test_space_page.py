"""The Space page (issue 13 item 1): the `models` and `datasets` a Space's README names are shown, linked."""

from __future__ import annotations

import httpx
from huggingface_hub import CommitOperationAdd

from tests.conftest import ENDPOINT

README = """---
title: demo
sdk: static
models:
- alice/finbert
datasets:
- alice/news
---
# demo
"""


def test_space_page_shows_the_models_and_datasets_it_uses(api, repo_factory):
    repo_id = repo_factory("page", repo_type="space", space_sdk="static")
    api.create_commit(repo_id, [CommitOperationAdd("README.md", README.encode())], commit_message="card",
                      repo_type="space")
    page = httpx.get(f"{ENDPOINT}/spaces/{repo_id}").text
    assert 'class="chip model" href="/alice/finbert">alice/finbert</a>' in page
    assert 'class="chip dataset" href="/datasets/alice/news">alice/news</a>' in page
