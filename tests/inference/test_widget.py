"""The model page's inference widget, driven in headless Chromium against `cove serve`."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ENDPOINT

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.web.test_browser import CHROMIUM, DRIVER, FLAGS  # noqa: E402

pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
                                reason="needs chromium and chromium-driver")


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="cove-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _compute(driver, repo_id: str, fill: dict[str, str]) -> None:  # noqa: ANN001
    driver.get(f"{ENDPOINT}/{repo_id}")
    for field, text in fill.items():
        box = driver.find_element(By.ID, field)
        box.clear()
        box.send_keys(text)
    driver.find_element(By.ID, "widget-compute").click()
    WebDriverWait(driver, 120).until(
        lambda d: d.find_element(By.ID, "inference-widget").get_attribute("data-done") == "1")


def test_widgets_token_classification_and_streamed_generation(browser, models) -> None:
    ner = models["ner"]
    text = "analysts upgrade the bank"
    _compute(browser, ner.repo_id, {"widget-text": text})
    marks = browser.find_elements(By.CSS_SELECTOR, "#widget-output mark.widget-entity")
    assert marks and all(m.get_attribute("data-label") for m in marks)
    assert browser.find_element(By.CSS_SELECTOR, "#widget-output .widget-marked").text.replace("\n", "")
    # Every highlighted span is a piece of the text typed in.
    assert all(m.text.split("\n")[0].split(m.get_attribute("data-label"))[0].strip().lower() in text for m in marks)

    gpt2 = models["gpt2"]
    import torch

    with torch.no_grad():
        ids = gpt2.tokenizer("the stock", return_tensors="pt").input_ids
        ref = gpt2.model.generate(ids, max_new_tokens=50, do_sample=False,
                                  pad_token_id=gpt2.tokenizer.eos_token_id)
    expected = gpt2.tokenizer.decode(ref[0, ids.shape[1]:], skip_special_tokens=True)
    _compute(browser, gpt2.repo_id, {"widget-text": "the stock"})
    shown = browser.find_element(By.CSS_SELECTOR, "#widget-output .widget-generated").get_attribute("textContent")
    assert shown == expected


def test_widget_classifier_bars_for_its_owner(browser, models, alice) -> None:
    """A private model's widget runs with the signed-in owner's session (and its CSRF token)."""
    m = models["classifier"]
    browser.get(f"{ENDPOINT}/login")
    browser.find_element(By.NAME, "username").send_keys(alice.name)
    browser.find_element(By.NAME, "password").send_keys(f"{alice.name}-password")
    browser.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    WebDriverWait(browser, 15).until(lambda d: "/login" not in d.current_url)
    _compute(browser, m.repo_id, {"widget-text": "the stock market rises"})
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#widget-output .widget-label")]
    assert sorted(labels) == ["Bearish", "Bullish", "Neutral"]
    values = [float(e.get_attribute("value")) for e in browser.find_elements(By.CSS_SELECTOR, "#widget-output meter")]
    assert values == sorted(values, reverse=True) and sum(values) == pytest.approx(1.0, abs=1e-3)


def test_widget_chat_box(browser, models) -> None:
    """A chat model's widget keeps the conversation and streams each answer (OpenAI-style chat route)."""
    gpt2 = models["gpt2"]
    browser.get(f"{ENDPOINT}/{gpt2.repo_id}")
    browser.find_element(By.ID, "widget-chat").click()
    for turn in ("the stock", "oil prices"):
        box = browser.find_element(By.ID, "widget-text")
        box.clear()
        box.send_keys(turn)
        browser.find_element(By.ID, "widget-compute").click()
        WebDriverWait(browser, 120).until(
            lambda d: d.find_element(By.ID, "inference-widget").get_attribute("data-done") == "1")
    users = [e.get_attribute("textContent")
             for e in browser.find_elements(By.CSS_SELECTOR, "#widget-chat-log .widget-user")]
    answers = browser.find_elements(By.CSS_SELECTOR, "#widget-chat-log .widget-assistant")
    assert users == ["the stock", "oil prices"]
    if len(answers) == 1:  # the tiny GPT-2 has 64 positions: the second turn, with the first, may not fit
        error = browser.find_element(By.CSS_SELECTOR, "#widget-output .error-message").text
        assert error.startswith("400") and "tokens long" in error
    messages = [{"role": "user", "content": "the stock"}]
    prompt = gpt2.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    import torch

    with torch.no_grad():
        ids = gpt2.tokenizer(prompt, return_tensors="pt").input_ids
        room = gpt2.model.config.n_positions - ids.shape[1]  # the server stops there too
        ref = gpt2.model.generate(ids, max_new_tokens=min(100, room), do_sample=False,
                                  pad_token_id=gpt2.tokenizer.eos_token_id)
    assert answers[0].get_attribute("textContent") == gpt2.tokenizer.decode(ref[0, ids.shape[1]:],
                                                                            skip_special_tokens=True)
