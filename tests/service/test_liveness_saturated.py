"""Liveness under saturation (real uvicorn on 127.0.0.1, a tiny model the test holds or slows down):
``/healthz`` answers within the liveness probe's timeout (stacks/pod_spec.py) while the model is
stuck or busy, the queue is full and more uploads keep arriving, so a pod at peak is never restarted
for being busy. It must not wait on the batcher or the model; readiness is what sheds load."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from service.app import create_app
from stacks.pod_spec import LIVENESS_TIMEOUT_S
from tests.service.conftest import ServerThread, encode
from tests.service.tiny import TinyClassifier, solid, tiny_settings

RED = encode(solid((250, 10, 10)), "PNG")


class BusyClassifier(TinyClassifier):
    """Each forward pass spins in Python for ``spin_s`` seconds: it holds the GIL, as pure-Python
    pre/post-processing would, and competes with the event loop for the interpreter."""

    spin_s = 0.3

    def predict(self, batch):
        end = time.perf_counter() + self.spin_s
        while time.perf_counter() < end:
            pass
        return super().predict(batch)


async def _saturate_and_probe(url: str, release) -> tuple[list[float], list[int], list[int]]:
    """Keep ~40 uploads in flight against a full queue while probing /healthz 10 times; then
    ``release()`` and collect every upload's status. Returns (probe seconds, probe statuses, upload
    statuses)."""
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        stop = asyncio.Event()
        statuses: list[int] = []

        async def upload_forever() -> None:
            while not stop.is_set():
                response = await client.post("/predict?top_k=1", content=RED,
                                             headers={"Content-Type": "image/png"})
                statuses.append(response.status_code)
                if response.status_code == 503:
                    await asyncio.sleep(0.01)  # a client honouring Retry-After would wait longer

        uploaders = [asyncio.create_task(upload_forever()) for _ in range(40)]
        while statuses.count(503) < 20:  # the queue is full: refusals are coming back
            await asyncio.sleep(0.05)
        took, probes = [], []
        async with httpx.AsyncClient(base_url=url, timeout=LIVENESS_TIMEOUT_S) as prober:
            for _ in range(10):
                started = time.perf_counter()
                response = await prober.get("/healthz")  # httpx.TimeoutException past the probe's timeout
                took.append(time.perf_counter() - started)
                probes.append(response.status_code)
                await asyncio.sleep(0.1)
        stop.set()
        release()
        await asyncio.gather(*uploaders)
        return took, probes, statuses


@pytest.mark.parametrize("mode", ["held", "busy"])
def test_healthz_answers_within_the_probe_timeout_while_saturated(mode):
    settings = tiny_settings(max_queue=4, max_batch_size=2, max_batch_delay_ms=0, request_timeout_ms=60_000)
    tiny = (TinyClassifier if mode == "held" else BusyClassifier)(settings)
    with ServerThread(create_app(settings, classifier=tiny)) as server:
        if mode == "held":
            tiny.gate.clear()  # every forward pass waits: the batcher never finishes one
        took, probes, statuses = asyncio.run(_saturate_and_probe(server.url, tiny.gate.set))
        assert probes == [200] * 10
        assert max(took) < LIVENESS_TIMEOUT_S, took
        assert set(statuses) <= {200, 503} and 200 in statuses
        if mode == "held":
            assert sum(tiny.batches) == statuses.count(200)  # nothing ran until the gate opened
        assert httpx.get(server.url + "/readyz").status_code == 200
