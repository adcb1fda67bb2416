"""Issue 15, item 7, in headless Chromium: create a collection, add two repos from their pages with a note,
move one up, edit a note; the stock client reads the same order and notes.

`COVE_SCREENSHOTS=1` refreshes `docs/screenshots/collection.png`.
"""

from __future__ import annotations

import uuid

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.web.test_browser import Page, browser, pytestmark  # noqa: F401 - the fixture and the skip mark
from tests.web.test_write_browser import sign_in


def test_collection_journey(browser, alice, repo_factory, api, tmp_path):  # noqa: F811
    p = Page(browser, tmp_path)
    first, second = repo_factory("journey-col"), repo_factory("journey-col")
    title = f"Favourites {uuid.uuid4().hex[:6]}"
    sign_in(p, "alice")
    p.open("/collections/alice")
    p.find("#collection-title").send_keys(title)
    p.find("#collection-description").send_keys("Models worth a look")
    p.find("#collection-submit").click()
    assert p.find("#collection-heading").text == title
    slug = p.d.current_url.split("/collections/", 1)[1]

    for repo_id, note in ((first, "the baseline"), (second, "")):
        p.open(f"/{repo_id}")
        Select(p.find("#collection-pick")).select_by_value(slug)
        p.find('#add-to-collection-form input[name="note"]').send_keys(note)
        p.find("#add-to-collection-submit").click()
        p.url_has("saved=added")

    p.find(f'#items li[data-label="{second}"] button[data-action="up"]').click()
    p.url_has("saved=up")
    row = p.find(f'#items li[data-label="{first}"]')
    field = row.find_element(By.CSS_SELECTOR, 'input[name="note"]')
    field.clear()
    field.send_keys("the baseline, still")
    row.find_element(By.CSS_SELECTOR, 'button[data-action="note"]').click()
    p.url_has("saved=note")
    labels = [li.get_attribute("data-label") for li in p.all("#items li")]
    assert labels == [second, first]
    p.shot("collection")

    got = api.get_collection(slug)
    assert [i.item_id for i in got.items] == [second, first]
    assert [i.note for i in got.items] == [None, "the baseline, still"]
    api.delete_collection(slug)
