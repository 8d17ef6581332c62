"""Readiness that reports the service's own failures: /readyz (and the V2 ready routes) turn 503 when the
batcher's collector task has died or the inference thread has not finished a forward pass within
INFERENCE_STALL_MS, and model_ready follows; a stall that ends makes the pod ready again."""

from __future__ import annotations

import logging
import threading

import httpx

from service.app import create_app
from service.batching import Batcher
from tests.service.conftest import ServerThread, TestClient, encode, metric, scrape, wait_until
from tests.service.tiny import TinyClassifier, solid, tiny_settings

RED = encode(solid((250, 10, 10)), "PNG")
PNG = {"Content-Type": "image/png"}
READY_ROUTES = ("/readyz", "/v2/health/ready", "/v2/models/tiny/ready")


def _statuses(get) -> list[int]:
    return [get(path).status_code for path in READY_ROUTES]


def test_readiness_turns_503_when_the_collector_task_dies(caplog):
    """The collector task dies of a bug (an exception on its next round): the pod stops being Ready,
    says why, logs it, and refuses requests with 503 instead of queueing them into a 504."""
    settings = tiny_settings()
    with TestClient(create_app(settings, classifier=TinyClassifier(settings))) as client:
        assert _statuses(client.get) == [200, 200, 200]
        batcher: Batcher = client.app.state.engine.batcher

        async def broken(*args):
            raise RuntimeError("collector bug")

        batcher._collect = broken  # the collector calls it on its next round: after the request below
        caplog.set_level(logging.ERROR, logger="service")
        assert client.post("/predict?top_k=1", content=RED, headers=PNG).status_code == 200
        wait_until(lambda: batcher._task.done())

        assert _statuses(client.get) == [503, 503, 503]
        assert "collector task has stopped" in client.get("/readyz").json()["detail"]
        refused = client.post("/predict?top_k=1", content=RED, headers=PNG)
        assert refused.status_code == 503 and refused.json()["error"] == "not_ready"
        assert metric(scrape(client.app), "model_ready") == 0
        assert any("collector task has stopped" in r.getMessage() and r.exc_info for r in caplog.records)


def test_readiness_turns_503_while_the_inference_thread_hangs_and_recovers_after():
    settings = tiny_settings(inference_stall_ms=200)
    tiny = TinyClassifier(settings)
    with ServerThread(create_app(settings, classifier=tiny)) as server:
        def get(path: str) -> httpx.Response:
            return httpx.get(server.url + path, timeout=10)

        assert _statuses(get) == [200, 200, 200]
        tiny.gate.clear()  # the next forward pass hangs in the model
        answers: list[httpx.Response] = []
        request = threading.Thread(target=lambda: answers.append(
            httpx.post(server.url + "/predict?top_k=1", content=RED, headers=PNG, timeout=60)))
        request.start()
        assert tiny.entered.wait(10)
        wait_until(lambda: get("/readyz").status_code == 503)
        detail = get("/readyz").json()["detail"]
        assert "inference thread has not finished a forward pass" in detail and "INFERENCE_STALL_MS" in detail
        assert _statuses(get) == [503, 503, 503]
        assert metric(scrape(server.app), "model_ready") == 0
        assert get("/healthz").status_code == 200  # liveness stays shallow: a restart is not the cure

        tiny.gate.set()
        request.join(30)
        assert answers[0].status_code == 200
        wait_until(lambda: get("/readyz").status_code == 200)
        assert _statuses(get) == [200, 200, 200]
        assert metric(scrape(server.app), "model_ready") == 1


def test_a_pass_shorter_than_the_bound_keeps_the_pod_ready():
    """The stall bound applies to one pass: a slow model within it never flips readiness."""
    settings = tiny_settings(inference_stall_ms=5_000)
    tiny = TinyClassifier(settings)
    with ServerThread(create_app(settings, classifier=tiny)) as server:
        tiny.gate.clear()
        request = threading.Thread(target=lambda: httpx.post(
            server.url + "/predict?top_k=1", content=RED, headers=PNG, timeout=60))
        request.start()
        assert tiny.entered.wait(10)
        assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200
        assert server.app.state.engine.batcher.failure is None
        tiny.gate.set()
        request.join(30)
