"""Issue 15 item 8 in Chromium: links in cards look like links; the model-index table fits its box."""

from __future__ import annotations

import uuid

from huggingface_hub import CommitOperationAdd

from tests.conftest import ENDPOINT
from tests.web.test_browser import browser, pytestmark  # noqa: F401 - the module's fixture and skip mark

CARD = """---
model-index:
- name: wide
  results:
  - task: {type: text-classification, name: Text Classification}
    dataset: {name: a-very-long-dataset-name-without-any-spaces-in-it-at-all, type: x/y, split: validation_matched}
    metrics:
    - type: accuracy_on_the_extremely_long_metric_name
      value: 0.912345678901234
      name: accuracy_on_the_extremely_long_metric_name_that_goes_on
---
# Wide

See [the paper](https://example.org/paper) for details.
"""


def test_card_links_look_like_links_and_results_fit(browser, api):  # noqa: F811
    repo_id = f"alice/wide-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id)
    api.create_commit(repo_id, [CommitOperationAdd("README.md", CARD.encode())], commit_message="card")
    browser.get(f"{ENDPOINT}/{repo_id}")
    link = browser.execute_script("""
        const a = document.querySelector('#card a'), p = a.parentElement, s = getComputedStyle(a);
        return [s.color, getComputedStyle(p).color, s.textDecorationLine];""")
    assert link[0] != link[1] and "underline" in link[2], link
    fit = browser.execute_script("""
        const t = document.querySelector('#results'), box = t.parentElement;
        const right = (el) => el.getBoundingClientRect().right;
        return [right(t), right(box), box.scrollWidth, box.clientWidth];""")
    assert fit[0] <= fit[1] + 0.5 and fit[2] <= fit[3], fit
