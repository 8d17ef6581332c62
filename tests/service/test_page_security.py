"""The page in headless Chromium against hostile labels and file names, under the CSP, with an API key:
everything renders as text, no script runs, the policy is never violated, the key prompt works."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from service.app import create_app
from service.settings import Settings
from tests.service.conftest import NUM_CLASSES, ServerThread, encode

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
KEY = "page-test-key"
FILE_NAME = '<img src=x onerror="window.__xss=\'file\'">.png'
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective));
"""


def hostile_label(i: int) -> str:
    payloads = ['<script>window.__xss="script"</script>', '<img src=x onerror="window.__xss=\'img\'">',
                '"><svg onload="window.__xss=\'svg\'">', "<b>bold</b> &amp; <i>x</i>"]
    return f"{payloads[i % len(payloads)]} #{i}"


@pytest.fixture(scope="module")
def hostile_server(model_files, tmp_path_factory) -> Iterator[ServerThread]:
    labels = tmp_path_factory.mktemp("hostile") / "labels.txt"
    labels.write_text("\n".join(hostile_label(i) for i in range(NUM_CLASSES)) + "\n", encoding="utf-8")
    settings = Settings(model_path=model_files("torchscript"), model_labels=labels, model_name="small",
                        resize_size=64, crop_size=64, torch_threads=1, decode_threads=1, api_key=KEY)
    with ServerThread(create_app(settings)) as server:
        yield server


@pytest.fixture
def page(hostile_server):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.add_init_script(WATCH)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.errors = errors
        yield page
        browser.close()


def test_hostile_labels_and_file_names_render_as_text_and_no_script_runs(page, hostile_server, photos):
    page.goto(hostile_server.url + "/")
    expect(page.locator("#api-key-row")).to_be_hidden()
    upload = {"name": FILE_NAME, "mimeType": "image/png", "buffer": encode(photos["coffee"], "PNG")}
    page.set_input_files("#file-input", files=[upload])

    # The server wants a key: the page says so and shows the field.
    expect(page.locator("#status")).to_contain_text("needs an API key")
    expect(page.locator("#api-key-row")).to_be_visible()
    page.fill("#api-key", "wrong")
    page.press("#api-key", "Enter")
    page.locator("#api-key").blur()
    expect(page.locator("#status")).to_contain_text("Wrong API key")
    page.fill("#api-key", KEY)
    page.locator("#api-key").blur()

    items = page.locator("#predictions li")
    expect(items).to_have_count(5)
    labels = items.locator(".label").all_text_contents()
    indices = [int(label.rsplit("#", 1)[1]) for label in labels]
    assert labels == [hostile_label(i) for i in indices]  # the exact text, markup and all
    expect(page.locator("#drop-text")).to_have_text(FILE_NAME)

    # No element was made from the markup, and nothing ran.
    assert page.locator("#predictions *").evaluate_all("els => els.map(e => e.tagName)") == \
        ["LI", "DIV", "SPAN", "SPAN", "DIV", "SPAN"] * 5
    assert page.locator("main img").count() == 1  # the preview, nothing else
    assert page.locator("script").count() == 1  # /static/app.js
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("window.__csp") == []  # the page works within its CSP
    assert not [e for e in page.errors if "Content Security Policy" in e]
