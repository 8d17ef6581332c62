"""The page's URL field in headless Chromium (Playwright): shown only with IMAGE_URL_FETCH, classifies a
photo the server fetches from an allowed loopback host, shows a refusal's reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from service.app import create_app
from tests.service.conftest import ServerThread
from tests.service.loopback import ImageServer, Listener
from tests.service.test_web import ARGS, CHROMIUM


@pytest.fixture(scope="module")
def image_server(jpeg):
    with ImageServer(jpeg, big=10_000_000) as server:
        yield server


@pytest.fixture(scope="module")
def url_server(app_settings):
    settings = app_settings.model_copy(update={"image_url_fetch": True,
                                               "image_url_allowed_hosts": ["localhost"]})
    with ServerThread(create_app(settings)) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.requests = requests
    yield page
    context.close()


def test_the_url_field_classifies_a_photo_the_server_fetches(page, url_server, image_server):
    page.goto(url_server.url + "/")
    expect(page.locator("#url-form")).to_be_visible()
    photo_url = f"http://localhost:{image_server.port}/photo.jpg"
    page.fill("#image-url", photo_url)
    page.click("#url-submit")
    items = page.locator("#predictions li")
    expect(items).to_have_count(5)
    assert all(label.startswith("class_") for label in items.locator(".label").all_text_contents())
    expect(page.locator("#status")).to_contain_text("small v7, top 5")
    expect(page.locator("#drop-text")).to_have_text(photo_url)
    assert ("/photo.jpg", f"localhost:{image_server.port}") in image_server.requests  # the server fetched it
    page.screenshot(path="/tmp/service-page-url.png", full_page=True)
    # Top 3 re-asks for the same URL.
    page.select_option("#top-k", "3")
    expect(items).to_have_count(3)
    # The browser itself only talked to the service (the image came through the server).
    assert all(url.startswith(url_server.url) for url in page.requests)


def test_a_refused_url_shows_the_reason(page, url_server):
    listener = Listener()
    try:
        page.goto(url_server.url + "/")
        page.fill("#image-url", f"http://127.0.0.1:{listener.port}/photo.jpg")
        page.click("#url-submit")
        expect(page.locator("#status")).to_contain_text("Error 400")
        expect(page.locator("#status")).to_contain_text("loopback")
        expect(page.locator("#status")).to_have_class("status error")
        expect(page.locator("#predictions li")).to_have_count(0)
        assert listener.connections() == 0
    finally:
        listener.close()


def test_no_url_field_when_the_server_has_it_off(page, live_server):
    page.goto(live_server.url + "/")
    expect(page.locator("#model-info")).to_contain_text("small v7")
    page.wait_for_load_state("networkidle")  # /ui/config answered
    expect(page.locator("#url-form")).to_be_hidden()
