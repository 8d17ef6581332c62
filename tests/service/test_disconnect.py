"""A client that disconnects while its images wait in the batch queue frees their slots at once (real
uvicorn on 127.0.0.1, a tiny model the test holds): the next request is admitted, not refused with 503,
and the abandoned request is counted (status 499, inference_rejected_total{reason="cancelled"})."""

from __future__ import annotations

import base64
import json
import socket
import threading

import httpx
import pytest

from service.app import create_app
from tests.service.conftest import ServerThread, encode, metric, scrape, wait_until
from tests.service.tiny import TinyClassifier, solid, tiny_settings

RED = encode(solid((250, 10, 10)), "PNG")
V2_BODY = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                  "data": [base64.b64encode(RED).decode()]}]}).encode()
ROUTES = {"predict": ("/predict?top_k=1", "image/png", RED, "/predict"),
          "v2": ("/v2/models/tiny/infer", "application/json", V2_BODY, "/v2/models/{name}/infer")}


def _send_raw(port: int, path: str, content_type: str, body: bytes) -> socket.socket:
    """Send one whole HTTP request on a new connection and return the socket, unread."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return sock


@pytest.mark.parametrize("route", ROUTES)
def test_a_disconnected_client_frees_its_queue_slot_at_once(route):
    path, content_type, body, template = ROUTES[route]
    # One image may wait; the batch size of 2 keeps a lone waiting image out of a queued pass.
    settings = tiny_settings(max_queue=1, max_batch_size=2, max_batch_delay_ms=0, request_timeout_ms=60_000)
    tiny = TinyClassifier(settings)
    with ServerThread(create_app(settings, classifier=tiny)) as server:
        batcher = server.app.state.engine.batcher
        tiny.gate.clear()  # the first forward pass hangs: what comes next waits in the queue
        answers: list[httpx.Response] = []
        first = threading.Thread(target=lambda: answers.append(httpx.post(
            server.url + path, content=body, headers={"Content-Type": content_type}, timeout=60)))
        first.start()
        assert tiny.entered.wait(10)

        waiting = _send_raw(server.port, path, content_type, body)
        wait_until(lambda: batcher.depth == 1)  # admitted: the queue (MAX_QUEUE=1) is full
        full = httpx.post(server.url + path, content=body, headers={"Content-Type": content_type}, timeout=10)
        assert full.status_code == 503

        waiting.close()  # the client goes away while its image waits
        wait_until(lambda: batcher.depth == 0, timeout=5)  # at once, though the pass still hangs
        assert tiny.gate.is_set() is False
        late: list[httpx.Response] = []
        again = threading.Thread(target=lambda: late.append(httpx.post(
            server.url + path, content=body, headers={"Content-Type": content_type}, timeout=60)))
        again.start()
        wait_until(lambda: batcher.depth == 1)  # admitted into the freed slot

        tiny.gate.set()
        first.join(30)
        again.join(30)
        assert [answers[0].status_code, late[0].status_code] == [200, 200]
        assert metric(scrape(server.app), "inference_rejected_total", reason="cancelled") == 1
        wait_until(lambda: metric(scrape(server.app), "http_requests_total", route=template,
                                  status="499") == 1)
        assert sum(tiny.batches) == 2  # the abandoned image never reached the model
