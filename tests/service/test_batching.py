"""service.batching.Batcher with a tiny deterministic model: grouping, routing, limits, failures."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from service.batching import Batcher
from service.errors import InferenceFailed, InferenceTimeout, NotReady, Overloaded
from service.metrics import Metrics


class EchoModel:
    """``[N, 3, H, W]`` -> ``[N, 2]``: each row is (mean of its image, N). Records every batch size."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_next = False

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.gate.wait(10)
        self.sizes.append(batch.shape[0])
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("boom")
        time.sleep(self.delay)
        n = torch.full((batch.shape[0], 1), float(batch.shape[0]))
        return torch.cat([batch.mean(dim=(1, 2, 3))[:, None], n], dim=1)


def image(value: float, side: int = 4) -> torch.Tensor:
    return torch.full((3, side, side), float(value))


async def _with_batcher(model, coro_fn, **kwargs):
    options = {"max_batch_size": 8, "max_batch_delay_ms": 30, "max_queue": 64, "request_timeout_ms": 5000}
    batcher = Batcher(model, **(options | kwargs), metrics=Metrics())
    await batcher.start()
    try:
        return await coro_fn(batcher)
    finally:
        await batcher.stop()


def test_concurrent_requests_share_batches_and_get_their_own_rows():
    model = EchoModel(delay=0.01)

    async def burst(batcher):
        return await asyncio.gather(*(batcher.submit([image(i)]) for i in range(40)))

    results = asyncio.run(_with_batcher(model, burst))
    assert [float(r[0][0]) for r in results] == [float(i) for i in range(40)]
    assert max(model.sizes) > 1
    assert max(model.sizes) <= 8
    assert sum(model.sizes) == 40


def test_one_request_with_several_images_keeps_their_order():
    model = EchoModel()

    async def run(batcher):
        return await batcher.submit([image(v) for v in (5, 1, 3)])

    rows = asyncio.run(_with_batcher(model, run))
    assert [float(r[0]) for r in rows] == [5.0, 1.0, 3.0]
    assert model.sizes == [3]


def test_batch_delay_zero_still_answers_a_lone_request():
    model = EchoModel()

    async def run(batcher):
        return await batcher.submit([image(2)])

    [row] = asyncio.run(_with_batcher(model, run, max_batch_delay_ms=0))
    assert float(row[0]) == 2.0


def test_items_of_different_shapes_run_in_separate_passes():
    model = EchoModel()

    async def run(batcher):
        return await asyncio.gather(batcher.submit([image(1, 4)]), batcher.submit([image(2, 8)]),
                                    batcher.submit([image(3, 4)]))

    results = asyncio.run(_with_batcher(model, run, max_batch_delay_ms=50))
    assert [float(r[0][0]) for r in results] == [1.0, 2.0, 3.0]
    assert sorted(model.sizes) == [1, 2]


def test_full_queue_is_overloaded_with_retry_after():
    model = EchoModel()
    model.gate.clear()  # the model blocks: the first batch is running, the rest wait in the queue

    async def run(batcher):
        first = asyncio.ensure_future(batcher.submit([image(0)]))
        await asyncio.sleep(0.1)  # the collector took it and is stuck in the model; the queue is empty
        waiting = [asyncio.ensure_future(batcher.submit([image(i)])) for i in range(1, 4)]
        await asyncio.sleep(0.01)
        assert batcher.depth == 3
        with pytest.raises(Overloaded):  # all-or-nothing: 3 + 2 > 4
            await batcher.submit([image(8), image(9)])
        waiting.append(asyncio.ensure_future(batcher.submit([image(4)])))
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded) as info:
            await batcher.submit([image(9)])
        model.gate.set()
        done = await asyncio.gather(first, *waiting)
        return info.value, done

    error, done = asyncio.run(_with_batcher(model, run, max_queue=4, max_batch_delay_ms=0))
    assert error.headers == {"Retry-After": "1"}
    assert error.status_code == 503
    assert [float(r[0][0]) for r in done] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_deadline_gives_timeout_and_the_batcher_recovers():
    model = EchoModel()
    model.gate.clear()

    async def run(batcher):
        with pytest.raises(InferenceTimeout):
            await batcher.submit([image(1)])
        model.gate.set()
        return await batcher.submit([image(2)])

    [row] = asyncio.run(_with_batcher(model, run, request_timeout_ms=200))
    assert float(row[0]) == 2.0


def test_a_failing_batch_fails_only_its_items():
    model = EchoModel()
    model.fail_next = True

    async def run(batcher):
        with pytest.raises(InferenceFailed, match="boom"):
            await batcher.submit([image(1)])
        return await batcher.submit([image(7)])

    [row] = asyncio.run(_with_batcher(model, run))
    assert float(row[0]) == 7.0


def test_stopped_batcher_is_not_ready():
    async def run():
        batcher = Batcher(EchoModel(), max_batch_size=2, max_batch_delay_ms=0, max_queue=4,
                          request_timeout_ms=1000)
        with pytest.raises(NotReady):
            await batcher.submit([image(1)])
        await batcher.start()
        await batcher.stop()
        with pytest.raises(NotReady):
            await batcher.submit([image(1)])

    asyncio.run(run())


def test_metrics_record_batch_sizes_and_rejections():
    model = EchoModel()
    metrics = Metrics()

    async def run():
        batcher = Batcher(model, max_batch_size=4, max_batch_delay_ms=30, max_queue=64,
                          request_timeout_ms=5000, metrics=metrics)
        await batcher.start()
        await asyncio.gather(*(batcher.submit([image(i)]) for i in range(8)))
        await batcher.stop()

    asyncio.run(run())
    value = metrics.registry.get_sample_value
    assert value("inference_batch_size_count") == len(model.sizes)
    assert value("inference_batch_size_sum") == 8
    assert value("inference_duration_seconds_count") == len(model.sizes)


def test_stop_fails_the_running_and_queued_items_at_once():
    model = EchoModel()
    model.gate.clear()  # the first batch hangs in the model

    async def run():
        batcher = Batcher(model, max_batch_size=1, max_batch_delay_ms=0, max_queue=8,
                          request_timeout_ms=30_000)
        await batcher.start()
        running = asyncio.ensure_future(batcher.submit([image(1)]))
        await asyncio.sleep(0.1)
        queued = asyncio.ensure_future(batcher.submit([image(2)]))
        await asyncio.sleep(0.01)
        stopping = asyncio.ensure_future(batcher.stop())
        results = await asyncio.wait_for(asyncio.gather(running, queued, return_exceptions=True), 5)
        model.gate.set()  # let the inference thread finish so stop() can join it
        await stopping
        return results

    started = time.monotonic()
    results = asyncio.run(run())
    assert all(isinstance(r, NotReady) for r in results), results
    assert time.monotonic() - started < 5  # not the 30 s request timeout
