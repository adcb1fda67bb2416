"""Chromium journeys for issue 15's last gaps: a repo's default branch, an org invitation accepted by the invitee,
search and histograms in the dataset viewer, a collection's title/description/visibility edited on its page.

`COVE_SCREENSHOTS=1` refreshes `docs/screenshots/` (default-branch, invitations, viewer-search,
collection-settings).
"""

from __future__ import annotations

import subprocess
import uuid

from huggingface_hub import CommitOperationAdd, HfApi
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.conftest import ENDPOINT
from tests.web.test_browser import Page, browser, pytestmark  # noqa: F401 - the fixture and the skip mark
from tests.web.test_write_browser import sign_in


def test_default_branch_from_the_settings_page(browser, alice, repo_factory, api, tmp_path):  # noqa: F811
    p = Page(browser, tmp_path)
    repo_id = repo_factory("journey-default")
    api.upload_file(path_or_fileobj=b"---\nlicense: mit\n---\n# Main card\n", path_in_repo="README.md",
                    repo_id=repo_id)
    api.create_branch(repo_id, branch="v2")
    api.create_commit(repo_id, revision="v2", commit_message="v2", operations=[
        CommitOperationAdd("README.md", b"---\nlicense: apache-2.0\n---\n# Version two card\n"),
        CommitOperationAdd("v2.txt", b"two\n")])
    sign_in(p, "alice")
    p.open(f"/{repo_id}/settings")
    assert p.find("#default-branch").text == "main"
    Select(p.find("#default-branch-select")).select_by_value("v2")
    p.find("#default-branch-submit").click()
    p.url_has("saved=default-branch")
    assert p.find("#default-branch").text == "v2"
    p.shot("default-branch")
    p.open(f"/{repo_id}")
    assert "Version two card" in p.find("main").text
    p.find("#files-tab").click()
    p.url_has("/tree/v2")
    assert "v2.txt" in p.find("#file-list").text
    assert api.model_info(repo_id).card_data["license"] == "apache-2.0"
    head = subprocess.run(["git", "ls-remote", "--symref", f"{ENDPOINT}/{repo_id}", "HEAD"], capture_output=True,
                          text=True, timeout=60, check=True).stdout
    assert "ref: refs/heads/v2\tHEAD" in head


def test_invite_a_member_who_accepts(browser, alice, bob, tmp_path):  # noqa: F811
    p = Page(browser, tmp_path)
    org = f"team{uuid.uuid4().hex[:8]}"
    sign_in(p, "alice")
    p.open("/organizations/new")
    p.find("#org-name").send_keys(org)
    p.find("#org-submit").click()
    p.url_has(f"/organizations/{org}/settings/members")
    p.find("#invite-name").send_keys("bob")
    Select(p.find("#invite-role")).select_by_visible_text("contributor")
    p.find("#invite-submit").click()
    p.find("#saved")
    assert p.find('#invited tr[data-invited="bob"]')
    assert not p.all('#members tr[data-member="bob"]')

    sign_in(p, "bob")
    p.open("/bob")
    p.find("#invitations-link").click()
    p.url_has("/settings/invitations")
    row = p.find(f'#invitations tr[data-org="{org}"]')
    assert "contributor" in row.text and "alice" in row.text
    p.shot("invitations")
    row.find_element(By.CSS_SELECTOR, 'button[data-action="accept"]').click()
    p.url_has(f"/{org}")
    assert org in [o["name"] for o in HfApi(endpoint=ENDPOINT, token=bob.token).whoami()["orgs"]]

    sign_in(p, "alice")
    p.open(f"/organizations/{org}/settings/members")
    assert p.find('#members tr[data-member="bob"]').get_attribute("data-role") == "contributor"
    assert not p.all('#invited tr[data-invited="bob"]')


def test_viewer_search_and_histograms(browser, hub, tmp_path):  # noqa: F811
    p = Page(browser, tmp_path)
    p.d.delete_all_cookies()
    p.open(f"/datasets/{hub.dataset}/viewer?split=train")
    p.find("#stats-link").click()
    p.find("#col-stats")
    assert len(p.all("#col-stats svg.hist")) == 2  # label and score
    box = p.find("#search-input")
    box.send_keys("review 99")
    p.find("#search-submit").click()
    p.url_has("q=review+99")
    p.find("#search-summary")
    numbers = [td.text for td in p.all("#rows tbody td.ln")]
    assert numbers == ["99", *map(str, range(990, 1000))]
    assert len(p.all("#col-stats svg.hist")) == 2  # the statistics stay open while searching
    p.shot("viewer-search")


def test_collection_settings_on_its_page(browser, alice, bob, api, tmp_path):  # noqa: F811
    p = Page(browser, tmp_path)
    title = f"Picks {uuid.uuid4().hex[:6]}"
    sign_in(p, "alice")
    p.open("/collections/alice")
    p.find("#collection-title").send_keys(title)
    p.find("#collection-submit").click()
    p.find("#collection-heading")
    box = p.find("#collection-title-input")
    box.clear()
    box.send_keys(f"{title} renamed")
    p.find("#collection-description-input").send_keys("Models I keep coming back to")
    p.find("#collection-private").click()
    p.shot("collection-settings")
    p.find("#collection-settings-submit").click()
    p.url_has("saved=settings")
    assert p.find("#collection-heading").text.startswith(f"{title} renamed")
    assert p.find("#collection-private-badge")
    slug = p.d.current_url.split("/collections/")[1].split("?")[0]
    got = api.get_collection(slug)
    assert (got.title, got.description, got.private) == (f"{title} renamed", "Models I keep coming back to", True)
    api.delete_collection(slug)
