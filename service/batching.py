"""Dynamic batcher: concurrent requests share one forward pass.

Requests ``submit`` already-preprocessed tensors ``[3, H, W]``. One asyncio task collects up to
``max_batch_size`` items, waiting at most ``max_batch_delay_ms`` after the first, stacks them into
``[N, 3, H, W]`` and runs ``predict`` in a dedicated inference thread; each item's result row goes back
to its own future. The queue is bounded (``max_queue`` items -> ``Overloaded``, HTTP 503 with
``Retry-After``) and every item has a deadline (``request_timeout_ms`` -> ``InferenceTimeout``, 504).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from service.errors import InferenceFailed, InferenceTimeout, NotReady, Overloaded
from service.metrics import Metrics

logger = logging.getLogger("service")


@dataclass
class _Item:
    tensor: torch.Tensor
    future: asyncio.Future
    deadline: float  # loop.time() seconds
    enqueued: float = field(default_factory=time.perf_counter)


class Batcher:
    """Groups ``submit``-ted tensors into batches for ``predict`` (``[N, 3, H, W]`` -> ``[N, C]``)."""

    def __init__(self, predict: Callable[[torch.Tensor], torch.Tensor], *, max_batch_size: int,
                 max_batch_delay_ms: float, max_queue: int, request_timeout_ms: float,
                 metrics: Metrics | None = None, executor: ThreadPoolExecutor | None = None) -> None:
        """``executor``: the one thread every torch op of the model runs on (default: a new one); the
        batcher owns it from here and shuts it down in ``stop()``. Stacking runs there too: once a
        second thread runs a parallel torch op, OpenMP throttles its spin-waits for every thread
        (more threads than CPUs) and forward passes get ~30 % slower (README "Performance")."""
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_delay = max_batch_delay_ms / 1000
        self.max_queue = max_queue
        self.timeout = request_timeout_ms / 1000
        self._metrics = metrics
        self._queue: asyncio.Queue[_Item] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = executor
        self._running: list[_Item] = []  # the batch in the model now

    @property
    def depth(self) -> int:
        """Items waiting for a batch (not counting the batch running now)."""
        return self._queue.qsize() if self._queue else 0

    async def start(self) -> None:
        """Start the collector task on the running loop and the inference thread."""
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._executor = self._executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._task = asyncio.create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        """Stop collecting; pending items fail with ``NotReady`` (503)."""
        pending = list(self._running)  # snapshot: cancelling the collector clears it
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._queue and not self._queue.empty():
            pending.append(self._queue.get_nowait())
        for item in pending:
            if not item.future.done():
                item.future.set_exception(NotReady("server is shutting down"))
        if self._executor:  # wait for a forward pass in progress without blocking the event loop
            await asyncio.to_thread(self._executor.shutdown, wait=True)
        self._task = self._executor = None

    async def submit(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Queue ``tensors`` (each ``[3, H, W]``) and return their rows ``[C]``, in order.

        All-or-nothing admission: raises ``Overloaded`` if they do not all fit in the queue,
        ``InferenceTimeout`` past the deadline, ``NotReady`` if the batcher is stopped.
        """
        if self._queue is None or self._task is None or self._task.done():
            raise NotReady("model is not ready")
        if self._queue.qsize() + len(tensors) > self.max_queue:
            if self._metrics:
                self._metrics.rejected.labels(reason="queue_full").inc(len(tensors))
            raise Overloaded(f"queue is full ({self.max_queue} images waiting, MAX_QUEUE); retry shortly",
                             headers={"Retry-After": "1"})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        items = [_Item(t, loop.create_future(), deadline) for t in tensors]
        for item in items:
            self._queue.put_nowait(item)
        self._observe_depth()
        try:
            async with asyncio.timeout_at(deadline):
                return list(await asyncio.gather(*(item.future for item in items)))
        except TimeoutError:
            for item in items:
                item.future.cancel()  # the collector skips cancelled items
            if self._metrics:
                self._metrics.rejected.labels(reason="timeout").inc(len(tensors))
            raise InferenceTimeout(f"no result within {self.timeout * 1000:.0f} ms (REQUEST_TIMEOUT_MS)"
                                   ) from None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(loop)
            batch = [item for item in batch if not item.future.done()]
            self._observe_depth()
            if not batch:
                continue
            self._running = batch
            try:
                await self._run_batch(loop, batch)
            except Exception:  # never let one batch kill the collector
                logger.exception("batch of %d failed", len(batch))
            finally:
                self._running = []

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> list[_Item]:
        batch = [await self._queue.get()]
        flush_at = loop.time() + self.max_delay
        while len(batch) < self.max_batch_size:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = flush_at - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    batch.append(await self._queue.get())
            except TimeoutError:
                break
        return batch

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        groups: dict[tuple[int, ...], list[_Item]] = {}
        for item in batch:  # same-shape items stack together (all of them, normally)
            groups.setdefault(tuple(item.tensor.shape), []).append(item)
        for items in groups.values():
            started = time.perf_counter()
            try:
                result = await loop.run_in_executor(self._executor, self._stack_and_predict,
                                                    [item.tensor for item in items])
            except Exception as exc:
                logger.exception("forward pass on %s failed", [len(items), *items[0].tensor.shape])
                error = InferenceFailed(f"model failed on a batch of {len(items)}: {exc}")
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(error)
                continue
            if self._metrics:
                self._metrics.batch_size.observe(len(items))
                self._metrics.inference_seconds.observe(time.perf_counter() - started)
            for row, item in zip(result, items, strict=True):
                if not item.future.done():
                    item.future.set_result(row)

    def _stack_and_predict(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """In the model thread: ``N x [3, H, W]`` -> ``[N, 3, H, W]`` -> ``predict``."""
        return self._predict(torch.stack(tensors))

    def _observe_depth(self) -> None:
        if self._metrics:
            self._metrics.queue_depth.set(self.depth)
