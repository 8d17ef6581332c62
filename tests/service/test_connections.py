"""service.connections: the server ``python -m service`` builds (``service.server.build_server``) bounds
connections before the app sees a request: headers too slow (408) or too big (431), connections over
MAX_CONNECTIONS (503), each answered in JSON and closed; ordinary keep-alive traffic is untouched."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from service.app import create_app
from service.connections import MAX_HEADER_BYTES, raw_response
from service.server import build_server
from tests.service.conftest import ServerThread
from tests.service.tiny import TinyClassifier, tiny_settings

MAX_CONNECTIONS = 4
HEADER_TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def server():
    settings = tiny_settings(host="127.0.0.1", port=0, max_connections=MAX_CONNECTIONS,
                             header_timeout_s=HEADER_TIMEOUT_S, log_level="warning")
    app = create_app(settings, classifier=TinyClassifier(settings))
    running = ServerThread(app)
    running.server = build_server(app, settings)  # the protocol python -m service runs
    running.thread = threading.Thread(target=running.server.run, daemon=True)
    with running:
        yield running


def _connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], dict]:
    """Read until the server closes: status, lower-case headers, JSON body."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    return int(lines[0].split()[1]), dict(line.lower().split(": ", 1) for line in lines[1:]), json.loads(body)


def test_raw_response_is_the_services_json_error():
    data = raw_response(408, "request_timeout", "too slow", {"retry-after": "1"})
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 408 Request Timeout"
    assert b"content-type: application/json" in head and b"connection: close" in head
    assert f"content-length: {len(body)}".encode() in head and b"retry-after: 1" in head
    assert json.loads(body) == {"error": "request_timeout", "detail": "too slow"}


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"])
def test_headers_not_in_time_are_408_json(server, sent):
    # slowloris: connect and say nothing, or start the headers and never end them
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(sent)
        status, headers, body = _answer(sock)
    assert status == 408 and headers["connection"] == "close"
    assert body["error"] == "request_timeout" and "HEADER_TIMEOUT_S" in body["detail"]
    assert HEADER_TIMEOUT_S * 0.9 <= time.monotonic() - started < 10


def test_the_header_clock_restarts_after_each_response(server):
    with _connect(server) as sock:
        for _ in range(3):  # three requests on one connection, each well within the timeout
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            time.sleep(HEADER_TIMEOUT_S * 0.6)  # 1.8 x the timeout in all: only each gap counts
        status, _, body = _answer(sock)  # then idle: timed out like a new connection
    assert status == 408 and body["error"] == "request_timeout"


def test_oversized_headers_are_431_json(server):
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        filler = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        try:
            for _ in range(MAX_HEADER_BYTES // len(filler) + 2):
                sock.sendall(filler)
        except OSError:
            pass  # closed by the server once over the bound
        status, _, body = _answer(sock)
    assert status == 431 and body["error"] == "request_header_fields_too_large"


def test_connections_over_the_bound_are_503_json_and_freed_ones_are_reused(server):
    held = [_connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in held:  # each one accepted and answering before the next is counted
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        with _connect(server) as extra:
            status, headers, body = _answer(extra)
        assert status == 503 and headers["retry-after"] == "1"
        assert body["error"] == "too_many_connections" and str(MAX_CONNECTIONS) in body["detail"]
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while True:  # the server notices the closed connections as their FINs arrive
        response = httpx.get(server.url + "/healthz", timeout=10)
        if response.status_code == 200 or time.monotonic() > deadline:
            break
    assert response.status_code == 200
