"""The ACR token exchange against a local stand-in for `<registry>/oauth2/exchange`."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from stacks.acr_auth import AcrAuthError, exchange_refresh_token


class _Registry(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, list[str]]]]] = []
    answer: ClassVar[tuple[int, bytes]] = (200, b"{}")

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        type(self).received.append((self.path, urllib.parse.parse_qs(body)))
        status, payload = type(self).answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def registry():
    server = HTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Registry.received = []
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_exchanges_the_arm_token_for_a_refresh_token(registry):
    _Registry.answer = (200, json.dumps({"refresh_token": "acr-refresh"}).encode())
    assert exchange_refresh_token(registry, "tenant-1", "arm-token", scheme="http") == "acr-refresh"
    ((path, form),) = _Registry.received
    assert path == "/oauth2/exchange"
    assert form == {
        "grant_type": ["access_token"],
        "service": [registry],
        "tenant": ["tenant-1"],
        "access_token": ["arm-token"],
    }


def test_refusal_raises_with_the_registry_answer(registry):
    _Registry.answer = (401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
    with pytest.raises(AcrAuthError, match=r"HTTP 401.*UNAUTHORIZED"):
        exchange_refresh_token(registry, "tenant-1", "arm-token", scheme="http")


def test_answer_without_token_raises(registry):
    _Registry.answer = (200, b'{"access_token": "x"}')
    with pytest.raises(AcrAuthError, match="no refresh_token"):
        exchange_refresh_token(registry, "tenant-1", "arm-token", scheme="http")


def test_unreachable_registry_raises():
    with pytest.raises(AcrAuthError, match="failed"):
        exchange_refresh_token("127.0.0.1:9", "t", "a", scheme="http", timeout_s=2)
