"""service.batching.Batcher with a tiny deterministic model: grouping, routing, limits, failures."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from service.batching import Batcher
from service.errors import InferenceFailed, InferenceTimeout, NotReady, Overloaded
from service.metrics import Metrics
from tests.service.conftest import until


class EchoModel:
    """``[N, 3, H, W]`` -> ``[N, 2]``: each row is (mean of its image, N). Records every batch size.

    ``gate`` (cleared by a test) holds every pass; ``entered`` is set once a pass has started."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.means: list[float] = []  # each image's mean, in the order the model saw them
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_next = False

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.entered.set()
        assert self.gate.wait(10), "gate never opened"
        self.sizes.append(batch.shape[0])
        self.means.extend(batch.mean(dim=(1, 2, 3)).tolist())
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("boom")
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
    model = EchoModel()

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


def test_normalized_tells_collate_what_it_gets_and_the_two_kinds_never_share_a_pass():
    model = EchoModel()
    calls: list[tuple[int, bool]] = []

    def collate(tensors, normalized):
        calls.append((len(tensors), normalized))
        return torch.stack(list(tensors))

    async def run(batcher):
        return await asyncio.gather(batcher.submit([image(1), image(2)]),
                                    batcher.submit([image(3)], normalized=True))

    pixels, tensors = asyncio.run(_with_batcher(model, run, collate=collate))
    assert sorted(calls) == [(1, True), (2, False)]
    assert [float(r[0]) for r in [*pixels, *tensors]] == [1.0, 2.0, 3.0]


def test_full_queue_is_overloaded_with_retry_after():
    model = EchoModel()
    model.gate.clear()  # the model blocks: the first batch is running, the rest wait in the queue

    async def run(batcher):
        first = asyncio.ensure_future(batcher.submit([image(0)]))
        await until(lambda: model.entered.is_set())  # the collector took it; it is stuck in the model
        waiting = [asyncio.ensure_future(batcher.submit([image(i)])) for i in range(1, 4)]
        await until(lambda: batcher.depth == 3)
        with pytest.raises(Overloaded):  # all-or-nothing: 3 + 2 > 4
            await batcher.submit([image(8), image(9)])
        waiting.append(asyncio.ensure_future(batcher.submit([image(4)])))
        await until(lambda: batcher.depth == 4)
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

    def value(name: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"model": "", "version": ""})

    assert value("inference_batch_size_count") == len(model.sizes)
    assert value("inference_batch_size_sum") == 8
    assert value("inference_duration_seconds_count") == len(model.sizes)
    assert value("inference_queue_wait_seconds_count") == 8  # one per image


def test_stop_fails_the_running_and_queued_items_at_once():
    model = EchoModel()
    model.gate.clear()  # the first batch hangs in the model

    async def run():
        batcher = Batcher(model, max_batch_size=1, max_batch_delay_ms=0, max_queue=8,
                          request_timeout_ms=30_000)
        await batcher.start()
        running = asyncio.ensure_future(batcher.submit([image(1)]))
        await until(lambda: model.entered.is_set())
        queued = asyncio.ensure_future(batcher.submit([image(2)]))  # a full batch: a queued pass
        await until(lambda: batcher.passes_in_flight == 2)
        waiting = asyncio.ensure_future(batcher.submit([image(3)]))  # not in any pass yet
        await until(lambda: batcher.depth == 1)
        stopping = asyncio.ensure_future(batcher.stop())
        # answered while the model still holds, long before the 30 s request timeout
        results = await asyncio.wait_for(asyncio.gather(running, queued, waiting, return_exceptions=True),
                                         5)
        model.gate.set()  # let the inference thread finish so stop() can join it
        await stopping
        return results

    results = asyncio.run(run())
    assert all(isinstance(r, NotReady) for r in results), results


async def _decoded(value: float, gate: asyncio.Event | None = None,
                   error: Exception | None = None) -> torch.Tensor:
    """Stands in for a decode in a thread: an image ``value`` once ``gate`` is set, or ``error``."""
    if gate is not None:
        await gate.wait()
    if error is not None:
        raise error
    return image(value)


def test_batches_take_images_in_admission_order_and_wait_for_their_decodes(monkeypatch):
    import service.batching

    monkeypatch.setattr(service.batching, "DECODE_WAIT_S", 30)  # the batch waits for its slow decode
    model = EchoModel()

    async def run(batcher):
        gate = asyncio.Event()
        slow = asyncio.ensure_future(batcher.submit([_decoded(1, gate)]))
        await until(lambda: batcher.depth == 1)  # admitted first, still decoding...
        decoded = asyncio.ensure_future(_decoded(2))
        fast = asyncio.ensure_future(batcher.submit([decoded]))
        await until(decoded.done)  # ...when the second one is ready
        gate.set()
        return await asyncio.gather(slow, fast)

    slow, fast = asyncio.run(_with_batcher(model, run, max_batch_size=1, max_batch_delay_ms=0))
    assert (float(slow[0][0]), float(fast[0][0])) == (1.0, 2.0)
    assert model.means == [1.0, 2.0]  # the older image ran first although it decoded last


def test_a_failed_decode_answers_its_own_request_at_once_and_not_its_neighbours():
    from service.errors import BadRequest

    model = EchoModel()
    model.gate.clear()  # the model holds: the bad image's answer must not wait for it

    async def run(batcher):
        good = [asyncio.ensure_future(batcher.submit([_decoded(v)])) for v in (1, 2)]
        with pytest.raises(BadRequest, match="corrupt"):
            await asyncio.wait_for(batcher.submit([_decoded(9, error=BadRequest("corrupt image"))]), 1)
        model.gate.set()
        return await asyncio.gather(*good)

    results = asyncio.run(_with_batcher(model, run, max_batch_delay_ms=0))
    assert [float(r[0][0]) for r in results] == [1.0, 2.0]
    assert 9.0 not in model.means


def test_an_image_still_decoding_after_the_wait_joins_a_later_batch(monkeypatch):
    import service.batching

    monkeypatch.setattr(service.batching, "DECODE_WAIT_S", 0.05)
    model = EchoModel()
    finished: list[float] = []

    async def run(batcher):
        gate = asyncio.Event()  # the slow decode ends only once its neighbours have their answers

        async def one(value, gate=None):
            [row] = await batcher.submit([_decoded(value, gate)])
            finished.append(float(row[0]))

        async def release():
            await until(lambda: len(finished) == 2)
            gate.set()

        await asyncio.gather(one(1, gate), one(2), one(3), release())

    asyncio.run(_with_batcher(model, run, max_batch_delay_ms=20))
    assert finished == [2.0, 3.0, 1.0]  # the neighbours did not wait for the slow one
    assert model.means == [2.0, 3.0, 1.0]
    assert model.sizes == [2, 1]


def test_images_still_decoding_count_against_the_queue_and_refused_coroutines_never_start():
    model = EchoModel()

    async def run(batcher):
        gate = asyncio.Event()
        decoding = asyncio.ensure_future(batcher.submit([_decoded(1, gate), _decoded(2, gate)]))
        await until(lambda: batcher.depth == 2)
        refused = _decoded(3)
        with pytest.raises(Overloaded):
            await batcher.submit([refused])
        assert refused.cr_frame is None  # closed without running: no "never awaited" warning
        gate.set()
        return await decoding

    rows = asyncio.run(_with_batcher(model, run, max_queue=2))
    assert [float(r[0]) for r in rows] == [1.0, 2.0]


def test_a_full_batch_queues_behind_the_running_pass_and_a_partial_one_waits_for_it():
    """While a pass runs, the next full batch is handed to the inference thread at once (it starts
    without an event-loop turn in between); a partial batch is held back, still able to fill up."""
    model = EchoModel()
    model.gate.clear()  # the first pass blocks in the model

    async def run(batcher):
        first = [asyncio.ensure_future(batcher.submit([image(i)])) for i in range(4)]
        await until(lambda: batcher.depth == 0)  # the first 4 are in the model
        second = [asyncio.ensure_future(batcher.submit([image(10 + i)])) for i in range(4)]
        await until(lambda: batcher.depth == 0)  # a full batch: queued behind the pass
        third = [asyncio.ensure_future(batcher.submit([image(20 + i)])) for i in range(3)]
        await _past_the_batch_window(batcher)  # a partial batch still waits
        assert batcher.depth == 3 and batcher.passes_in_flight == 2
        fourth = asyncio.ensure_future(batcher.submit([image(30)]))  # fills the third batch...
        await _past_the_batch_window(batcher)
        assert batcher.depth == 4  # ...which still waits: two passes are in flight already
        model.gate.set()
        return await asyncio.gather(*first, *second, *third, fourth)

    rows = asyncio.run(_with_batcher(model, run, max_batch_size=4, max_batch_delay_ms=1))
    assert model.sizes == [4, 4, 4]
    assert model.means == [0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 30]
    assert [float(r[0]) for [r] in rows] == model.means


async def _past_the_batch_window(batcher: Batcher) -> None:
    """Let 10 batching windows (``max_batch_delay_ms``) pass: a batch that a bug let go early would
    be gone by then (a check that something does *not* happen needs the time it would take)."""
    await asyncio.sleep(10 * batcher.max_delay)
