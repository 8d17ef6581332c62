"""The upload page in headless Chromium (Playwright): pick a photo, see the preview and the labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.service.conftest import encode

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page(live_server):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1100, "height": 760})
        page = context.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.requests = requests
        yield page
        browser.close()


def test_upload_a_photo_and_see_its_labels(page, live_server, photos, tmp_path):
    photo = tmp_path / "chelsea.jpg"
    photo.write_bytes(encode(photos["chelsea"], "JPEG"))
    page.goto(live_server.url + "/")
    expect(page).to_have_title("Image classifier")
    expect(page.locator("#model-info")).to_contain_text("small v7")
    page.set_input_files("#file-input", str(photo))
    expect(page.locator("#preview")).to_be_visible()
    items = page.locator("#predictions li")
    expect(items).to_have_count(5)
    labels = items.locator(".label").all_text_contents()
    assert all(label.startswith("class_") for label in labels)
    widths = [float(w.rstrip("%")) for w in
              items.locator(".bar span").evaluate_all("els => els.map(e => e.style.width)")]
    assert widths == sorted(widths, reverse=True) and widths[0] > 0
    expect(page.locator("#status")).to_contain_text("small v7, top 5")
    page.screenshot(path="/tmp/service-page.png", full_page=True)
    # Top 3 re-asks for the same photo.
    page.select_option("#top-k", "3")
    expect(items).to_have_count(3)
    # No request left the machine (no CDN).
    assert all(url.startswith(live_server.url) or url.startswith("blob:") for url in page.requests)


def test_a_non_image_shows_the_error(page, live_server, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    page.goto(live_server.url + "/")
    page.set_input_files("#file-input", str(text))
    expect(page.locator("#status")).to_contain_text("Error 415")
    expect(page.locator("#status")).to_have_class("status error")
    expect(page.locator("#predictions li")).to_have_count(0)
