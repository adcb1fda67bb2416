"""End to end in Debian's Chromium (headless, driven by Selenium) against the live `cove serve`.

Set `COVE_SCREENSHOTS=1` to refresh the screenshots under `docs/screenshots/`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from tests.conftest import ENDPOINT

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,860",
)

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
    reason="needs chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="cove-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


class Page:
    """Small helpers over the driver: open, wait, find, screenshot."""

    def __init__(self, driver, tmp: Path) -> None:  # noqa: ANN001
        self.d, self.tmp = driver, tmp
        self.wait = WebDriverWait(driver, 15)

    def open(self, path: str) -> None:
        self.d.get(ENDPOINT + path)

    def find(self, css: str):  # noqa: ANN201
        return self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))

    def all(self, css: str) -> list:
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def url_has(self, part: str) -> None:
        self.wait.until(EC.url_contains(part))

    def text(self) -> str:
        return self.d.find_element(By.TAG_NAME, "body").text

    def shot(self, name: str) -> None:
        path = self.tmp / f"{name}.png"
        self.d.save_screenshot(str(path))
        if os.environ.get("COVE_SCREENSHOTS"):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            _save_small(path, SCREENSHOTS / f"{name}.png")

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.d.get_log("browser") if e["level"] == "SEVERE"]


def _save_small(src: Path, dst: Path) -> None:
    try:
        from PIL import Image
    except ImportError:
        shutil.copy(src, dst)
        return
    with Image.open(src) as im:
        im.convert("RGB").quantize(colors=256).save(dst, optimize=True)


def test_browse_search_revisions_diff_and_viewer(browser, hub, tmp_path):
    p = Page(browser, tmp_path)
    # Search from the home page, open the model.
    p.open("/")
    p.shot("home")
    box = p.find("#home-search")
    box.send_keys(hub.term)
    box.submit()
    p.url_has(f"q={hub.term}")
    p.find(f'#section-models a[href="/{hub.model}"]').click()
    p.url_has(hub.model)
    card = p.find("#card")
    assert "A tiny sentiment classifier" in card.text
    assert p.all("#card table td")[0].text == "1"
    curve = p.find('#card img[alt="Training curves"]')
    p.wait.until(
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", curve)
    )
    assert "0.9123" in p.find("#results").text
    assert "text-classification" in p.find("#chips").text
    p.shot("model")

    # Files at main, then switch the revision to the tag.
    p.find("#files-tab").click()
    p.url_has("/tree/main")
    assert "model.safetensors" in p.find("#file-list").text
    p.shot("files")
    Select(p.find("#revision")).select_by_visible_text("tag: v1")
    p.url_has("/tree/v1")
    listing = p.find("#file-list").text
    assert "train.py" in listing and "model.safetensors" not in listing
    p.d.find_element(By.LINK_TEXT, "train.py").click()
    p.url_has("/blob/v1/train.py")
    assert "range(2)" in p.find("#code-view").text

    # History and a diff.
    p.open(f"/{hub.model}/tree/main")
    p.find("#history-link").click()
    p.url_has("/commits/main")
    p.shot("commits")
    p.d.find_element(By.LINK_TEXT, "Train for 3 epochs").click()
    p.url_has(f"/commit/{hub.head_sha}")
    added = " ".join(r.text for r in p.all("tr.add"))
    removed = " ".join(r.text for r in p.all("tr.del"))
    assert "EPOCHS = 3" in added and "range(2)" in removed
    p.shot("diff")

    # The dataset viewer: rows with types, another split, the next page.
    p.open(f"/datasets/{hub.dataset}")
    p.find("#viewer-tab").click()
    p.url_has("/viewer")
    table = p.find("#rows")
    assert len(p.all("#rows tbody tr")) == 25
    header = table.find_element(By.TAG_NAME, "thead").text
    assert "label" in header and "int64" in header and "double" in header
    p.shot("viewer")
    Select(p.find("#split-select")).select_by_visible_text("test")
    p.url_has("split=test")
    assert "test review 0" in p.find("#rows").text
    p.find('a[rel="next"]').click()
    p.url_has("p=1")
    assert "test review 25" in p.find("#rows").text

    p.open(f"/models?search={hub.term}")
    assert p.find("#total").text == "1"
    p.open("/models")
    p.shot("models")
    assert p.console_errors() == []


def test_sign_in_tokens_and_private_repo(browser, hub, alice, repo_factory, tmp_path):
    p = Page(browser, tmp_path)
    repo_id = repo_factory("browser-private")
    browser.delete_all_cookies()

    # Sign in with the password set by `cove user add --password`.
    p.open(f"/{repo_id}")
    p.find("#signin-link").click()
    p.find("#username").send_keys("alice")
    p.find("#password").send_keys("alice-password")
    p.shot("login")
    p.find("#login-submit").click()
    assert p.find("#me-link").text == "alice"
    p.url_has(f"/{repo_id}")

    # Create a token, use it, revoke it.
    p.open("/settings/tokens")
    p.find("#token-name").send_keys("browser-token")
    Select(p.find("#token-role")).select_by_value("write")
    p.find("#create-token-submit").click()
    secret = p.find("#new-token-value").text
    assert HfApi(endpoint=ENDPOINT, token=secret).whoami()["name"] == "alice"
    p.shot("tokens")
    p.find('tr[data-token="browser-token"] button').click()
    p.wait.until(EC.alert_is_present()).accept()
    p.wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, 'tr[data-token="browser-token"]'))
    r = httpx.get(f"{ENDPOINT}/api/whoami-v2", headers={"authorization": f"Bearer {secret}"})
    assert r.status_code == 401

    # Make the repo private; an anonymous visitor can no longer find or open it.
    p.open(f"/{repo_id}")
    p.find("#settings-tab").click()
    p.find("#vis-private").click()
    p.find("#visibility-submit").click()
    p.find("#saved")
    assert p.find("#visibility").text == "private"
    p.shot("settings")
    p.open(f"/models?search={repo_id.split('/')[1]}")
    assert p.find("#total").text == "1"

    browser.delete_all_cookies()
    p.open(f"/{repo_id}")
    assert "404" in p.find("h1").text
    p.open(f"/models?search={repo_id.split('/')[1]}")
    assert p.find("#total").text == "0"
    assert repo_id not in p.text()
    p.open("/alice")
    assert repo_id not in p.text()
