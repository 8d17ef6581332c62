"""POST /predict with a JSON ``{"url": ...}`` body through the app: a real photo from an allowed loopback
server classifies exactly as its upload does; refusals are JSON 4xx naming the reason; off by default."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.service.loopback import ImageServer, Listener

MAX_BYTES = 300_000


@pytest.fixture(scope="module")
def server(jpeg):
    with ImageServer(jpeg, big=MAX_BYTES + 100_000) as image_server:
        yield image_server


@pytest.fixture(scope="module")
def url_client(app_settings):
    """The shared test model, URL input on, ``localhost`` allowed (it resolves to loopback)."""
    settings = app_settings.model_copy(update={
        "image_url_fetch": True, "image_url_allowed_hosts": ["localhost"], "image_url_timeout_s": 1.0,
        "max_body_bytes": MAX_BYTES})
    with TestClient(create_app(settings)) as client:
        yield client


def _url(client, url: str, query: str = ""):
    return client.post(f"/predict{query}", json={"url": url})


def test_a_photo_by_url_classifies_as_its_upload(url_client, server, jpeg):
    response = _url(url_client, f"http://localhost:{server.port}/photo.jpg", "?top_k=3")
    assert response.status_code == 200, response.text
    uploaded = url_client.post("/predict?top_k=3", files={"file": ("cat.jpg", jpeg, "image/jpeg")})
    assert response.json() == uploaded.json()
    assert len(response.json()["predictions"]) == 3
    assert server.requests[-1] == ("/photo.jpg", f"localhost:{server.port}")


def test_off_by_default_says_so(client, server):
    """The shared app has no IMAGE_URL_FETCH: a JSON body is refused, and nothing is fetched."""
    before = len(server.requests)
    response = _url(client, f"http://localhost:{server.port}/photo.jpg")
    assert response.status_code == 415
    assert response.json()["error"] == "url_input_disabled"
    assert "IMAGE_URL_FETCH" in response.json()["detail"]
    assert len(server.requests) == before
    assert client.get("/ui/config").json() == {"url_input": False}


@pytest.mark.parametrize(("path", "status", "code", "detail"), [
    ("/html", 415, "unsupported_media_type", "not image/*"),
    ("/declared-big", 413, "payload_too_large", "MAX_BODY_BYTES"),
    ("/streamed-big", 413, "payload_too_large", "MAX_BODY_BYTES"),
    ("/missing", 422, "url_fetch_failed", "HTTP 404"),
    ("/stall", 504, "url_timeout", "IMAGE_URL_TIMEOUT_S"),
    ("/chain/3", 400, "url_refused", "more than 3 redirects"),
])
def test_what_the_url_gives_back_is_checked(url_client, server, path, status, code, detail):
    server.release.clear()
    try:
        response = _url(url_client, f"http://localhost:{server.port}{path}")
    finally:
        server.release.set()  # let a stalled handler go
    assert response.status_code == status, response.text
    assert response.json()["error"] == code and detail in response.json()["detail"]


@pytest.mark.parametrize("template", [
    "http://127.0.0.1:{port}/", "http://2130706433:{port}/", "http://[::ffff:127.0.0.1]:{port}/",
    "http://localhost:{server}/redirect?to=http://127.1:{port}/",
])
def test_a_refused_address_is_a_400_naming_it_and_never_dialled(url_client, server, template):
    listener = Listener()
    try:
        response = _url(url_client, template.format(port=listener.port, server=server.port))
        assert response.status_code == 400
        body = response.json()
        assert body["error"] == "url_refused" and "loopback" in body["detail"]
        assert listener.connections() == 0
    finally:
        listener.close()


@pytest.mark.parametrize("payload", [b'{"uri": "http://x"}', b'{"url": ""}', b"not json", b'{"url": 5}',
                                     b'["http://x"]'])
def test_a_malformed_json_body_is_a_400(url_client, payload):
    response = url_client.post("/predict", content=payload, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert '{"url": "https://..."}' in response.json()["detail"]


def test_the_page_config_and_openapi_offer_the_url_input(url_client):
    assert url_client.get("/ui/config").json() == {"url_input": True}
    schema = url_client.get("/openapi.json").json()
    content = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert content["application/json"]["schema"]["required"] == ["url"]
