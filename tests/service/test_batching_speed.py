"""The batcher runs every torch op (stacking and forward passes) on the one thread it is given."""

from __future__ import annotations

import asyncio
import threading

import torch

from service.batching import Batcher
from service.metrics import Metrics


class ThreadRecorder:
    """``[N, 3, H, W]`` -> ``[N, 1]`` row means; records the thread and batch size of each call."""

    def __init__(self) -> None:
        self.threads: set[str] = set()
        self.sizes: list[int] = []

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.threads.add(threading.current_thread().name)
        self.sizes.append(batch.shape[0])
        return batch.mean(dim=(1, 2, 3))[:, None]


def image(value: float) -> torch.Tensor:
    return torch.full((3, 4, 4), float(value))


def test_stacking_and_every_forward_pass_run_on_the_one_given_thread():
    from concurrent.futures import ThreadPoolExecutor

    model = ThreadRecorder()
    stacked_on: set[str] = set()
    real_stack = torch.stack

    def recording_stack(tensors, *args, **kwargs):
        stacked_on.add(threading.current_thread().name)
        return real_stack(tensors, *args, **kwargs)

    async def run():
        executor = ThreadPoolExecutor(1, thread_name_prefix="model-owner")
        batcher = Batcher(model, max_batch_size=4, max_batch_delay_ms=5, max_queue=64,
                          request_timeout_ms=5000, metrics=Metrics(), executor=executor)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit([image(i)]) for i in range(12)))
        finally:
            await batcher.stop()

    torch.stack = recording_stack
    try:
        results = asyncio.run(run())
    finally:
        torch.stack = real_stack
    assert [float(r[0][0]) for r in results] == [float(i) for i in range(12)]
    assert {name.rsplit("_", 1)[0] for name in model.threads | stacked_on} == {"model-owner"}
