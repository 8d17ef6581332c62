"""service.routes.docs: Swagger UI at /docs with every asset served by the app itself (works offline),
and DOCS_ENABLED=false turns it off."""

from __future__ import annotations

import re

from service.app import create_app
from tests.service.conftest import TestClient
from tests.service.tiny import TinyClassifier, tiny_settings


def _app(**settings):
    s = tiny_settings(**settings)
    return create_app(s, classifier=TinyClassifier(s))


def test_docs_page_loads_only_same_origin_assets_and_they_are_served():
    with TestClient(_app()) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
        urls += re.findall(r"""url: ["']([^"']+)["']""", page.text)
        assert urls and all(url.startswith("/") for url in urls), urls  # no CDN, no other origin
        assert "/docs/assets/swagger-ui-bundle.js" in urls
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, url
        assert client.get("/docs/assets/swagger-ui-bundle.js").headers["content-type"].startswith(
            ("application/javascript", "text/javascript"))
        assert client.get("/redoc").status_code == 404  # ReDoc would need its CDN: not served


def test_docs_enabled_false_serves_no_docs_but_still_the_schema():
    with TestClient(_app(docs_enabled=False)) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/docs/assets/swagger-ui.css").status_code == 404
        assert client.get("/openapi.json").status_code == 200


def test_swagger_ui_renders_the_operations_in_a_browser_without_leaving_the_server(live_server):
    from playwright.sync_api import sync_playwright

    from tests.service.test_web import ARGS, CHROMIUM

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(live_server.url + "/docs")
            page.wait_for_selector(".opblock", timeout=30_000)  # OpenAPI 3.1 parsed, operations listed
            assert page.locator(".opblock-summary-path", has_text="/predict").count() >= 1
            assert requests and all(url.startswith(live_server.url) for url in requests), requests
        finally:
            browser.close()
