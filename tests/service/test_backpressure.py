"""Backpressure and deadlines end to end (real uvicorn on 127.0.0.1, a tiny model the test holds):
a full queue answers 503 + Retry-After at once and holds a bounded number of images; a request past
REQUEST_TIMEOUT_MS answers 504; both are JSON and the server keeps serving afterwards."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from service.app import create_app
from tests.service.conftest import ServerThread, encode, metric, scrape, until
from tests.service.tiny import TinyClassifier, solid, tiny_settings

RED = encode(solid((250, 10, 10)), "PNG")


async def _burst(server: ServerThread, n: int, release, path: str = "/predict?top_k=1") -> tuple[list, list]:
    """Send ``n`` concurrent uploads; once each is refused or held by the server, ``release()``;
    return (early answers, late answers)."""
    batcher = server.app.state.engine.batcher
    async with httpx.AsyncClient(base_url=server.url, timeout=60,
                                 limits=httpx.Limits(max_connections=n + 5)) as client:
        tasks = [asyncio.create_task(client.post(path, content=RED, headers={"Content-Type": "image/png"}))
                 for _ in range(n)]
        await until(lambda: sum(t.done() for t in tasks) + batcher.admitted == n, timeout=30)
        early = [t.result() for t in tasks if t.done()]
        pending = [t for t in tasks if not t.done()]
        release()
        late = [await t for t in pending]
        return early, late


@pytest.mark.parametrize("stage", ["model", "decode"])
def test_full_queue_answers_503_with_retry_after_and_holds_a_bounded_number_of_images(stage):
    max_queue, max_batch = 4, 2
    settings = tiny_settings(max_queue=max_queue, max_batch_size=max_batch, max_batch_delay_ms=0,
                             request_timeout_ms=60_000)
    tiny = TinyClassifier(settings)
    gate = tiny.gate if stage == "model" else tiny.decode_gate
    with ServerThread(create_app(settings, classifier=tiny)) as server:
        gate.clear()
        early, late = asyncio.run(_burst(server, 30, gate.set))

        # Held while the model (or the decoder) was stuck: the running batch, a full batch queued behind
        # it (model stage) + a full queue, no more.
        held_max = max_queue + max_batch + (max_batch if stage == "model" else 1)  # or + the one decoding
        assert max_queue <= len(late) <= held_max, (len(early), len(late))
        assert len(early) == 30 - len(late)
        for response in early:
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "1"
            assert response.json()["error"] == "overloaded"
            assert "MAX_QUEUE" in response.json()["detail"]
        # Once released, every request that was let in gets its answer.
        assert [r.status_code for r in late] == [200] * len(late)
        assert {r.json()["predictions"][0]["label"] for r in late} == {"red"}
        assert sum(tiny.batches) == len(late)

        text = scrape(server.app)
        assert metric(text, "inference_rejected_total", reason="queue_full") == len(early)
        assert httpx.get(server.url + "/readyz").status_code == 200
        again = httpx.post(server.url + "/predict?top_k=1", content=RED,
                           headers={"Content-Type": "image/png"})
        assert again.status_code == 200


def test_request_past_the_deadline_answers_504_and_the_server_recovers():
    settings = tiny_settings(request_timeout_ms=300)
    tiny = TinyClassifier(settings)
    with ServerThread(create_app(settings, classifier=tiny)) as server:
        tiny.gate.clear()
        started = time.monotonic()
        response = httpx.post(server.url + "/predict?top_k=1", content=RED,
                              headers={"Content-Type": "image/png"}, timeout=30)
        elapsed = time.monotonic() - started
        assert response.status_code == 504
        assert response.json() == {"error": "timeout", "detail": response.json()["detail"]}
        assert "REQUEST_TIMEOUT_MS" in response.json()["detail"]
        assert 0.25 < elapsed < 10

        v2 = httpx.post(server.url + "/v2/models/tiny/infer", timeout=30, json={
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32], "data": [0.0] * 3072}]})
        assert v2.status_code == 504
        assert set(v2.json()) == {"error"}

        tiny.gate.set()
        assert httpx.post(server.url + "/predict?top_k=1", content=RED,
                          headers={"Content-Type": "image/png"}).status_code == 200
        text = scrape(server.app)
        assert metric(text, "inference_rejected_total", reason="timeout") == 2
