"""Optional API key, security headers, CORS, and model names in URLs that never reach the filesystem."""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest

from service.app import create_app
from service.routes.web import STATIC_DIR
from tests.service.conftest import TestClient, encode
from tests.service.tiny import TinyClassifier, solid, tiny_settings

KEY = "s3cret-Key_0123456789"
RED = encode(solid((250, 10, 10)), "PNG")
PNG = {"Content-Type": "image/png"}
V2_BODY = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                       "data": [base64.b64encode(RED).decode()]}]}
OPEN_GETS = ["/", "/static/app.js", "/static/style.css", "/healthz", "/readyz", "/version",
             "/openapi.json", "/docs", "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/tiny",
             "/v2/models/tiny/ready", "/v2/models/tiny/versions/1"]


def _client(**settings) -> Iterator[TestClient]:
    s = tiny_settings(**settings)
    with TestClient(create_app(s, classifier=TinyClassifier(s))) as client:
        yield client


@pytest.fixture(scope="module")
def open_client() -> Iterator[TestClient]:
    yield from _client()


@pytest.fixture(scope="module")
def keyed_client() -> Iterator[TestClient]:
    yield from _client(api_key=KEY)


# --- API key -----------------------------------------------------------------------------------------

def test_without_api_key_everything_is_open(open_client):
    assert open_client.post("/predict?top_k=1", content=RED, headers=PNG).status_code == 200
    assert open_client.post("/v2/models/tiny/infer", json=V2_BODY).status_code == 200


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", f"Basic {KEY}", f"bearer {KEY}x", f"Bearer {KEY[:-1]}", "Bearer wrong",
    "Bearer ключ-ünïcode".encode()])
def test_with_api_key_predict_and_infer_need_the_bearer_key(keyed_client, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = keyed_client.post("/predict?top_k=1", content=RED, headers=PNG | headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert response.json()["error"] == "unauthorized"
    assert KEY not in response.text
    response = keyed_client.post("/v2/models/tiny/infer", json=V2_BODY, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert set(response.json()) == {"error"}
    assert keyed_client.post("/v2/models/tiny/versions/1/infer", json=V2_BODY,
                             headers=headers).status_code == 401


def test_the_right_key_passes_and_is_compared_in_constant_time(keyed_client, monkeypatch):
    import service.deps

    calls = []
    real = service.deps.hmac.compare_digest

    def spy(a, b):
        calls.append((type(a), type(b)))
        return real(a, b)

    monkeypatch.setattr(service.deps.hmac, "compare_digest", spy)
    auth = {"Authorization": f"Bearer {KEY}"}
    response = keyed_client.post("/predict?top_k=1", content=RED, headers=PNG | auth)
    assert response.status_code == 200
    assert response.json()["predictions"][0]["label"] == "red"
    response = keyed_client.post("/v2/models/tiny/infer", json=V2_BODY, headers=auth)
    assert response.status_code == 200
    assert calls == [(bytes, bytes), (bytes, bytes)]


def test_an_unauthorised_request_is_refused_before_its_body_is_used(keyed_client):
    # a corrupt image without a key is a 401, not a 400: nothing is decoded for an anonymous caller
    assert keyed_client.post("/predict", content=b"not an image", headers=PNG).status_code == 401


@pytest.mark.parametrize("path", OPEN_GETS)
def test_probes_metrics_metadata_and_the_page_stay_open(keyed_client, path):
    assert keyed_client.get(path).status_code == 200


def test_openapi_declares_the_bearer_scheme_on_the_protected_routes_only(keyed_client):
    schema = keyed_client.get("/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["APIKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    secured = {(path, method) for path, item in schema["paths"].items() for method, op in item.items()
               if op.get("security")}
    assert secured == {("/predict", "post"), ("/v2/models/{name}/infer", "post"),
                       ("/v2/models/{name}/versions/{version}/infer", "post")}


# --- security headers, CSP, CORS ---------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/readyz"),
                                          ("GET", "/nowhere"), ("POST", "/predict"), ("GET", "/v2/models/x")])
def test_every_response_carries_the_security_headers(open_client, method, path):
    response = open_client.request(method, path, content=b"x" if method == "POST" else None, headers=PNG)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_a_413_also_carries_the_headers(open_client):
    response = open_client.post("/predict?top_k=1", content=b"x" * 1_000_001, headers=PNG)
    assert response.status_code == 413
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_only_the_docs_get_a_relaxed_csp_and_still_render(open_client):
    docs = open_client.get("/docs")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.text
    csp = docs.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" in csp and "https:" not in csp  # Swagger UI's assets are served locally
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in open_client.get("/docs-and-more").headers["Content-Security-Policy"]


class _InlineFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "style" or "style" in attributes or any(name.startswith("on") for name in attributes):
            self.inline.append(f"<{tag} {attrs}>")
        self._in_script = tag == "script" and "src" not in attributes
        if self._in_script:
            self.inline.append("<script> without src")


def test_the_page_has_no_inline_script_or_style():
    finder = _InlineFinder()
    finder.feed((STATIC_DIR / "index.html").read_text())
    assert finder.inline == []
    js = (STATIC_DIR / "app.js").read_text()
    assert not re.search(r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|eval\(", js)


def test_cors_is_off_unless_origins_are_configured(open_client):
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in open_client.options("/predict", headers=preflight).headers
    response = open_client.get("/version", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_allows_exactly_the_configured_origins():
    for client in _client(cors_origins="https://app.example, https://other.example"):
        ok = client.options("/predict", headers={"Origin": "https://app.example",
                                                 "Access-Control-Request-Method": "POST",
                                                 "Access-Control-Request-Headers": "authorization"})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        response = client.get("/version", headers={"Origin": "https://other.example"})
        assert response.headers["access-control-allow-origin"] == "https://other.example"
        refused = client.options("/predict", headers={"Origin": "https://evil.example",
                                                      "Access-Control-Request-Method": "POST"})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers


# --- model names in URLs -----------------------------------------------------------------------------

TRAVERSALS = ["/v2/models/..%2F..%2Fetc%2Fpasswd/infer", "/v2/models/..%2F..%2Fetc%2Fpasswd",
              "/v2/models/%2e%2e%2f%2e%2e%2fetc%2fpasswd/ready", "/v2/models/..%5C..%5Cetc%5Cpasswd/infer",
              "/v2/models/tiny/versions/..%2F..%2Fetc%2Fpasswd/infer", "/v2/models/%2Fetc%2Fpasswd/infer",
              "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd", "/static/%2e%2e/settings.py"]


@pytest.fixture
def file_opens() -> Iterator[list[str]]:
    """Paths the process opens while the test runs (``open`` audit events, PEP 578)."""
    opened: list[str] = []
    _AUDIT["sink"] = opened
    yield opened
    _AUDIT["sink"] = None


_AUDIT: dict[str, list[str] | None] = {"sink": None}


def _audit(event: str, args: tuple) -> None:
    sink = _AUDIT["sink"]
    if sink is not None and event == "open" and args and isinstance(args[0], (str, bytes)):
        sink.append(str(args[0]))


sys.addaudithook(_audit)  # hooks cannot be removed; this one records only inside `file_opens`


@pytest.mark.parametrize("path", TRAVERSALS)
def test_model_names_in_urls_never_reach_the_filesystem(open_client, file_opens, path):
    response = open_client.request("POST" if path.endswith("/infer") else "GET", path, json=V2_BODY)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert "root:" not in response.text
    assert [p for p in file_opens if "passwd" in p or ".." in p or "settings.py" in p] == []
