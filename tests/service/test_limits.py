"""service.limits on a real uvicorn server (127.0.0.1, the tiny model): the memory budget of bodies in
flight (503 + Retry-After JSON before a byte is read, chunked bodies counted as they arrive, multipart
the same, released when answered or when the client goes away) and the body read deadline (408 JSON).

Raw sockets stand in for clients that declare a body and hold it back, which no HTTP client library does.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time

import httpx
import numpy as np
import pytest

from service.app import create_app
from tests.service.conftest import ServerThread, encode, wait_until
from tests.service.tiny import TinyClassifier, solid, tiny_settings

CAPACITY = 500_000  # body bytes the budget admits at once in these tests (MAX_BODY_BYTES is 1_000_000)
RED = encode(solid((250, 10, 10)), "PNG")


@pytest.fixture(scope="module")
def server():
    settings = tiny_settings(body_timeout_s=1.0, min_upload_bytes_per_s=20_000)
    tiny = TinyClassifier(settings)
    with ServerThread(create_app(settings, classifier=tiny)) as running:
        running.tiny = tiny
        running.budget = running.app.state.body_budget
        running.budget.capacity = CAPACITY  # the lifespan sized it from this process; the tests set theirs
        yield running


@pytest.fixture(autouse=True)
def _idle_budget(server):
    yield
    wait_until(lambda: server.budget.reserved == 0)


def _declare(server, length: int, path: str = "/predict", sent: bytes = b"",
             content_type: str = "image/png") -> socket.socket:
    """A connection that sent the headers of a ``length``-byte body and ``sent`` of it."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                 f"Content-Length: {length}\r\n\r\n".encode() + sent)
    return sock


def _response(sock: socket.socket) -> tuple[int, dict[str, str], dict]:
    """Read one response (status, lower-case headers, JSON body) until the server closes."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_a_declared_body_that_does_not_fit_is_503_before_a_byte_is_read(server):
    with _declare(server, CAPACITY + 1) as sock:  # under MAX_BODY_BYTES, over the budget; no body sent
        status, headers, body = _response(sock)
    assert status == 503 and headers["retry-after"] == "1" and headers["connection"] == "close"
    assert headers["content-type"] == "application/json"
    assert body["error"] == "memory_budget_full" and f"of {CAPACITY} bytes" in body["detail"]
    v2 = "/v2/models/tiny/infer"
    with _declare(server, CAPACITY + 1, path=v2, content_type="application/json") as sock:
        status, _, body = _response(sock)
    assert status == 503 and set(body) == {"error"}  # the Open Inference Protocol's error shape


def test_uploads_in_flight_share_the_budget_and_a_client_going_away_releases_it(server):
    holder = _declare(server, 400_000, sent=b"x")  # admitted: 400_000 reserved while it uploads
    wait_until(lambda: server.budget.reserved == 400_000)
    with _declare(server, 200_000) as sock:
        status, _, body = _response(sock)
    assert status == 503 and body["error"] == "memory_budget_full"
    holder.close()  # the client goes away mid-body
    wait_until(lambda: server.budget.reserved == 0)
    response = httpx.post(server.url + "/predict", content=RED + b"\0" * 199_000,
                          headers={"Content-Type": "image/png"}, timeout=30)
    assert response.status_code == 200  # the released budget takes a 200 KB body now


def test_a_body_is_held_until_its_request_is_answered(server):
    server.tiny.entered.clear()
    server.tiny.gate.clear()  # hold the forward pass: the body has been read, the request is in flight
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            done: list[httpx.Response] = []
            thread = threading.Thread(target=lambda: done.append(client.post(
                "/predict", content=RED, headers={"Content-Type": "image/png"})))
            thread.start()
            assert server.tiny.entered.wait(10)
            assert server.budget.reserved == len(RED)
            server.tiny.gate.set()
            thread.join(30)
        assert done[0].status_code == 200
        assert server.budget.reserved == 0  # released with the answer
    finally:
        server.tiny.gate.set()


def test_a_chunked_body_is_counted_as_it_arrives_and_refused_when_it_would_overrun(server):
    size = 50_000
    chunk = b"%x\r\n%s\r\n" % (size, b"\0" * size)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        sent = 0
        while sent + size <= CAPACITY:
            sock.sendall(chunk)
            sent += size
            wait_until(lambda n=sent: server.budget.reserved == n)  # reserved as it arrives, none ahead
        sock.sendall(chunk)  # this one would overrun the budget; the body never ends
        status, _, body = _response(sock)
    assert status == 503 and body["error"] == "memory_budget_full", body


def test_multipart_uploads_count_the_same_way(server):
    files = {"file": ("big.png", RED + b"\0" * (CAPACITY + 10_000), "image/png")}
    response = httpx.post(server.url + "/predict", files=files, timeout=30)
    assert response.status_code == 503 and response.json()["error"] == "memory_budget_full"
    server.tiny.entered.clear()
    server.tiny.gate.clear()
    try:
        done: list[httpx.Response] = []
        small = {"file": ("red.png", RED, "image/png")}
        thread = threading.Thread(target=lambda: done.append(httpx.post(server.url + "/predict", files=small,
                                                                         timeout=30)))
        thread.start()
        assert server.tiny.entered.wait(10)
        assert server.budget.reserved > len(RED)  # the whole multipart body: boundary, headers, file
        server.tiny.gate.set()
        thread.join(30)
        assert done[0].status_code == 200
    finally:
        server.tiny.gate.set()


def test_a_stalled_body_is_408_json(server):
    started = time.monotonic()
    with _declare(server, 10_000, sent=b"\x89PNG") as sock:  # then nothing
        status, headers, body = _response(sock)
    assert status == 408 and headers["connection"] == "close"
    assert body["error"] == "request_timeout" and "BODY_TIMEOUT_S" in body["detail"]
    assert time.monotonic() - started < 10


def test_an_upload_slower_than_the_minimum_rate_is_408_and_a_faster_one_is_served(server):
    photo = encode(np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8), "PNG")
    assert len(photo) > 40_000  # > 2 s at 20 KB/s: past BODY_TIMEOUT_S (1 s) unless the rate extends it

    def upload(rate: int) -> int:
        with _declare(server, len(photo)) as sock:
            step = rate // 10
            for start in range(0, len(photo), step):
                if select.select([sock], [], [], 0.1)[0]:  # answered (and closing) before the end
                    break
                sock.sendall(photo[start:start + step])
            return _response(sock)[0]

    assert upload(5_000) == 408  # 5 KB/s: the deadline (1 s + 1 s per 20 KB) passes first
    assert upload(60_000) == 200  # 60 KB/s: each second sent buys three more
