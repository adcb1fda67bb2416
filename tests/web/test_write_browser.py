"""Issue 15's journeys in headless Chromium, as a user would: create a repo, upload (a 30 MB file and a folder,
through the page's script: preupload, LFS batch + PUT, commit), edit the README, an outsider's edit becomes a
pull request, the owner comments and merges it; gate a repo, another user asks, the owner accepts.

`COVE_SCREENSHOTS=1` refreshes `docs/screenshots/` (new, upload, edit, discussions, pull-request, access-requests).
"""

from __future__ import annotations

import hashlib
import os
import uuid

import httpx
from huggingface_hub import HfApi
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By  # noqa: E402, I001
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from tests.conftest import ENDPOINT
from tests.web.test_browser import Page, browser, pytestmark  # noqa: F401 - the fixture and the skip mark


def settled(p: Page, condition) -> None:  # noqa: ANN001
    """Wait for `condition` across a page load (elements of the old page go stale)."""
    WebDriverWait(p.d, 15, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(condition)


def _gone(element) -> bool:  # noqa: ANN001
    """The element's page has been replaced (Chromium reports it stale, or no longer in its document)."""
    try:
        element.is_enabled()
    except WebDriverException:  # StaleElementReferenceException included
        return True
    return False


def sign_in(p: Page, user: str) -> None:
    p.d.delete_all_cookies()
    p.open("/login")
    p.find("#username").send_keys(user)
    p.find("#password").send_keys(f"{user}-password")
    p.find("#login-submit").click()
    assert p.find("#me-link").text == user


def test_create_upload_edit_pull_request_merge(browser, alice, bob, api, tmp_path):  # noqa: F811
    p = Page(browser, tmp_path)
    name = f"journey-{uuid.uuid4().hex[:8]}"
    repo_id = f"alice/{name}"
    sign_in(p, "alice")

    # Create a model from the "+ New" button.
    p.find("#new-link").click()
    p.url_has("/new")
    p.find("#new-name").send_keys(name)
    Select(p.find("#new-license")).select_by_value("mit")
    p.shot("new")
    p.find("#new-submit").click()
    p.url_has(f"/{repo_id}")
    assert api.model_info(repo_id).card_data["license"] == "mit"

    # Upload a 30 MB file and a folder from the Files tab.
    big = tmp_path / "weights.bin"
    big.write_bytes(os.urandom(30 * 1024 * 1024))
    folder = tmp_path / "configs"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.json").write_text('{"a": 1}')
    (folder / "nested" / "b.txt").write_text("bee\n")
    p.find("#files-tab").click()
    p.find("#upload-link").click()
    p.url_has("/upload/main")
    p.find("#file-input").send_keys(str(big))
    p.find("#folder-input").send_keys(str(folder))
    p.wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#upload-list li")) == 3)
    p.find("#commit-summary").send_keys("Add weights and configs")
    p.shot("upload")
    p.find("#upload-submit").click()
    p.url_has("/tree/main")
    listing = p.find("#file-list").text
    assert "weights.bin" in listing and "configs" in listing
    tree = {f.path: f for f in api.list_repo_tree(repo_id, recursive=True) if hasattr(f, "lfs")}
    assert tree["weights.bin"].lfs.sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
    assert tree["configs/nested/b.txt"].lfs is None and "configs/a.json" in tree
    assert api.list_repo_commits(repo_id)[0].title == "Add weights and configs"
    assert p.console_errors() == []

    # Edit the README in the browser.
    p.open(f"/{repo_id}/blob/main/README.md")
    p.find("#edit-link").click()
    box = p.find("#edit-content")
    box.clear()
    box.send_keys("---\nlicense: mit\n---\n# Journey\n\nEdited in the browser.\n")
    Select(p.find("#meta-license")).select_by_value("apache-2.0")  # the metadata form
    Select(p.find("#meta-pipeline")).select_by_value("text-classification")
    p.find("#meta-tags").send_keys("journey, browser")
    p.find("#commit-summary").send_keys("Describe the model")
    p.shot("edit")
    p.find("#edit-submit").click()
    p.url_has("/blob/main/README.md")
    assert "Edited in the browser." in p.find("#rendered").text
    info = api.model_info(repo_id)
    assert info.card_data["license"] == "apache-2.0" and info.pipeline_tag == "text-classification"
    assert {"journey", "browser"} <= set(info.tags)

    # bob, an outsider, edits it too: a pull request.
    sign_in(p, "bob")
    p.open(f"/{repo_id}/blob/main/README.md")
    p.find("#edit-link").click()
    assert p.find("#pr-only")
    box = p.find("#edit-content")
    box.send_keys("\nA line from bob.")
    p.find("#commit-summary").send_keys("Add a line")
    p.find("#edit-submit").click()
    p.url_has(f"/{repo_id}/discussions/1")
    assert not p.all("#merge-form")
    p.find("#pr-files-tab").click()
    p.url_has("tab=files")
    settled(p, lambda d: "A line from bob." in " ".join(r.text for r in d.find_elements(By.CSS_SELECTOR, "tr.add")))

    # alice comments and merges it.
    sign_in(p, "alice")
    p.open(f"/{repo_id}")
    p.find("#community-tab").click()
    p.url_has("/discussions")
    p.shot("discussions")
    p.d.find_element(By.LINK_TEXT, "Add a line").click()
    p.find("#comment-text").send_keys("Thanks **bob**!")
    p.find("#comment-submit").click()
    settled(p, lambda d: "Thanks" in d.find_element(By.ID, "timeline").text)
    assert p.find("#timeline strong").text == "bob"
    p.shot("pull-request")
    p.find("#merge-submit").click()
    settled(p, lambda d: d.find_element(By.ID, "discussion-status").text == "merged")
    readme = httpx.get(f"{ENDPOINT}/{repo_id}/resolve/main/README.md").text
    assert "A line from bob." in readme and "Edited in the browser." in readme
    assert p.console_errors() == []
    api.delete_repo(repo_id)


def test_gate_request_and_accept(browser, alice, bob, repo_factory, api, tmp_path):  # noqa: F811
    p = Page(browser, tmp_path)
    repo_id = repo_factory("journey-gate")
    api.upload_file(path_or_fileobj=b"weights!", path_in_repo="model.txt", repo_id=repo_id)
    sign_in(p, "alice")
    p.open(f"/{repo_id}/settings")
    p.find("#gated-manual").click()
    p.find("#gating-submit").click()
    p.find("#saved")
    assert p.find("#gating").text == "manual"

    sign_in(p, "bob")
    p.open(f"/{repo_id}")
    p.find("#ask-access").click()
    assert p.find("#access-status").get_attribute("data-status") == "pending"
    p.open(f"/{repo_id}/blob/main/model.txt")
    assert "ask for access" in p.text()

    sign_in(p, "alice")
    p.open(f"/{repo_id}/settings")
    p.find("#review-requests").click()
    row = p.find('#access-requests tr[data-user="bob"]')
    p.shot("access-requests")
    row.find_element(By.CSS_SELECTOR, 'button[data-action="accepted"]').click()
    p.url_has("status=pending")
    assert not p.all('#access-requests tr[data-user="bob"]')

    sign_in(p, "bob")
    p.open(f"/{repo_id}/blob/main/model.txt")
    assert "weights!" in p.find("#code-view").text
    assert HfApi(endpoint=ENDPOINT, token=bob.token).hf_hub_download(repo_id, "model.txt", cache_dir=tmp_path)


def test_org_member_transfer_compare_history_blame(browser, alice, bob, hub, repo_factory, api, tmp_path):  # noqa: F811
    p = Page(browser, tmp_path)
    org = f"org{uuid.uuid4().hex[:8]}"
    sign_in(p, "alice")
    # Create an organization from one's own page, add bob.
    p.open("/alice")
    p.find("#new-org-link").click()
    p.find("#org-name").send_keys(org)
    p.find("#org-submit").click()
    p.url_has(f"/organizations/{org}/settings/members")
    p.find("#member-name").send_keys("bob")
    p.find("#add-member-submit").click()
    p.find("#saved")
    assert p.find('#members tr[data-member="bob"]').get_attribute("data-role") == "write"
    p.shot("org-members")

    # Transfer a repo to it from the repo's settings.
    repo_id = repo_factory("journey-move")
    moved = f"{org}/{repo_id.split('/')[1]}"
    p.open(f"/{repo_id}/settings")
    box = p.find("#move-to")
    box.clear()
    box.send_keys(moved)
    p.find("#move-submit").click()
    p.url_has(f"/{moved}/settings")
    assert api.repo_info(moved).id == moved

    # Compare two revisions, then a file's history and blame.
    p.open(f"/{hub.model}/commits/main")
    p.find("#compare-link").click()
    Select(p.find("#compare-base")).select_by_visible_text("v1")
    Select(p.find("#compare-head")).select_by_visible_text("main")
    old_title = p.find("#compare-title")
    p.find("#compare-form button").click()
    p.wait.until(lambda d: _gone(old_title))
    p.url_has("/compare/v1...main")
    settled(p, lambda d: "EPOCHS = 3" in " ".join(
        r.text for r in d.find_elements(By.CSS_SELECTOR, 'details[data-path="train.py"] tr.add')))
    p.shot("compare")
    p.open(f"/{hub.model}/blob/main/train.py")
    p.find("#file-history-link").click()
    p.url_has("/commits/main/train.py")
    titles = [e.text for e in p.all("#commit-list .commit-title")]
    assert titles == ["Train for 3 epochs", "Add model card, config and curves"]
    p.open(f"/{hub.model}/blob/main/train.py")
    p.find("#blame-link").click()
    p.url_has("/blame/main/train.py")
    assert "Train for 3 epochs" in p.find("#blame").text
    p.shot("blame")
    api.delete_repo(moved)
