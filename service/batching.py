"""Dynamic batcher: concurrent requests share one forward pass.

Requests ``submit`` their images as tensors ``[3, H, W]`` or as coroutines that decode one (started only
once admitted), saying whether they are uint8 pixels or already normalised (``normalized``). Items join
a FIFO in admission order; one asyncio task takes up to ``max_batch_size`` of them, waiting at most
``max_batch_delay_ms`` after the first for more, then waits (at most ``DECODE_WAIT_S``) for those still
being decoded, and in a dedicated inference thread ``collate``-s them into ``[N, 3, H, W]`` and runs
``predict``; each item's result row goes back to its own future. So the batch is the oldest images,
its delay overlaps their decoding, and a bad image fails only its own request (at once, when its
decode raises). While a pass runs, a *full* batch is queued right behind it, so under load the
inference thread goes from one pass to the next without waiting for the event loop; a partial batch
waits for the pass to end (and may still fill up). Admission is bounded (``max_queue`` images admitted
and not yet in or queued for a forward pass -> ``Overloaded``, HTTP 503 with ``Retry-After``) and every
item has a deadline (``request_timeout_ms``, decoding included -> ``InferenceTimeout``, 504). A request
that gives up (deadline, an error, its client gone: the handler is cancelled) leaves the queue at once.
``failure`` says why the batcher cannot answer (readiness turns 503 on it): its collector task has
stopped, or the inference thread has had a pass for ``stall_s`` without finishing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from service.batch_items import Collate, Input, Item, as_future, decoded, input_done, stack, unanswered
from service.errors import InferenceFailed, InferenceTimeout, NotReady, Overloaded
from service.logs import annotate
from service.metrics import Metrics

logger = logging.getLogger("service")

#: Longest a collected batch waits for its images still being decoded (s). A photo decodes in 2-5 ms
#: (8 of them on 2 threads: ~12 ms); an image still decoding after this (a 50-megapixel PNG takes ~1 s)
#: joins a later batch instead of holding up its neighbours and the model.
DECODE_WAIT_S = 0.1

class Batcher:
    """Groups ``submit``-ted images into batches for ``predict`` (``[N, 3, H, W]`` -> ``[N, C]``)."""

    def __init__(self, predict: Callable[[torch.Tensor], torch.Tensor], *, max_batch_size: int,
                 max_batch_delay_ms: float, max_queue: int, request_timeout_ms: float,
                 collate: Collate = stack, metrics: Metrics | None = None,
                 executor: ThreadPoolExecutor | None = None, stall_s: float | None = None) -> None:
        """``collate`` turns a batch's tensors into ``predict``'s input (``Preprocessor.collate`` in the
        service). ``executor``: the one thread every torch op of the model runs on (default: a new
        one); the batcher owns it from here and shuts it down in ``stop()``. Collating runs there too:
        once a second thread runs a parallel torch op, OpenMP throttles its spin-waits for every
        thread (more threads than CPUs) and forward passes get ~30 % slower (docs/performance.md).
        ``stall_s``: how long the inference thread may work without finishing a pass before ``failure``
        reports it (s; default ``request_timeout_ms``)."""
        self._predict = predict
        self._collate = collate
        self.max_batch_size = max_batch_size
        self.max_delay = max_batch_delay_ms / 1000
        self.max_queue = max_queue
        self.timeout = request_timeout_ms / 1000
        self._metrics = metrics
        self._waiting: deque[Item] = deque()  # admitted, in admission order (may still be decoding)
        self._parked: set[Item] = set()  # still decoding after DECODE_WAIT_S; rejoin the front when done
        self._collecting: list[Item] = []  # taken for the next batch, their decodes awaited
        self._passes: dict[asyncio.Task, list[Item]] = {}  # running, then at most one queued -> items
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = executor
        self.stall_s = stall_s if stall_s is not None else self.timeout
        self._thread_jobs = 0  # collate + predict calls handed to the inference thread, not finished
        self._progress_at = 0.0  # time.monotonic(): the thread last finished a call, or got one while idle

    @property
    def depth(self) -> int:
        """Images admitted and neither in nor queued for a forward pass (decoding or waiting): what
        ``max_queue`` bounds."""
        return len(self._waiting) + len(self._parked) + len(self._collecting)

    @property
    def admitted(self) -> int:
        """Images admitted and not answered yet: ``depth`` plus those in the forward passes in flight."""
        return self.depth + sum(len(items) for items in self._passes.values())

    @property
    def passes_in_flight(self) -> int:
        """Forward passes handed to the inference thread and not finished: 0, 1, or 2 (one running,
        one full batch queued behind it)."""
        return len(self._passes)

    @property
    def failure(self) -> str | None:
        """Why this batcher cannot answer requests, or ``None`` while it can: not started (or stopped),
        its collector task has ended (an exception, a cancellation), or the inference thread has had
        a forward pass for more than ``stall_s`` without finishing one (hung in the model)."""
        if self._task is None:
            return "the batcher is not running"
        if self._task.done():
            return "the batcher's collector task has stopped"
        stuck = time.monotonic() - self._progress_at
        if self._thread_jobs and stuck > self.stall_s:
            return (f"the inference thread has not finished a forward pass for {stuck:.1f} s "
                    f"(over {self.stall_s:.1f} s: INFERENCE_STALL_MS)")
        return None

    async def start(self) -> None:
        """Start the collector task on the running loop and the inference thread."""
        self._wakeup = asyncio.Event()
        self._executor = self._executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._task = asyncio.create_task(self._run(), name="batcher")
        self._task.add_done_callback(self._collector_ended)

    def _collector_ended(self, task: asyncio.Task) -> None:
        """The collector task ended: unless ``stop()`` cancelled it, log why and answer every waiting
        item with ``NotReady`` (503) at once instead of letting them run into their deadline."""
        if task is not self._task:  # stopped: stop() answers the items
            return
        error = None if task.cancelled() else task.exception()
        logger.error("the batcher's collector task has stopped: %r; readiness is 503", error,
                     exc_info=error)
        for item in [*self._waiting, *self._parked, *self._collecting]:
            if not item.future.done():
                item.future.set_exception(NotReady("the batcher has stopped"))

    async def stop(self) -> None:
        """Stop collecting; pending items fail with ``NotReady`` (503)."""
        passes = [item for items in self._passes.values() for item in items]
        pending = [*passes, *self._collecting, *self._parked, *self._waiting]  # before cancelling
        collector, self._task = self._task, None
        for task in [task for task in (collector, *self._passes) if task]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # a dead collector's error: logged
                await task
        self._waiting.clear()
        self._parked.clear()
        for item in pending:
            item.input.cancel()
            if not item.future.done():
                item.future.set_exception(NotReady("server is shutting down"))
        if self._executor:  # wait for a forward pass in progress without blocking the event loop
            await asyncio.to_thread(self._executor.shutdown, wait=True)
        self._executor = None

    async def submit(self, inputs: Sequence[Input], *, normalized: bool = False) -> list[torch.Tensor]:
        """Admit ``inputs`` (tensors ``[3, H, W]`` or coroutines making them) and return their rows
        ``[C]``, in order. A coroutine starts only once its request is admitted. ``normalized`` goes to
        ``collate``: the tensors are already normalised (else uint8 pixels); the two never share a pass.
        The size of the pass(es) that answered is noted on the request's log line (``batch_size``).

        All-or-nothing admission: raises ``Overloaded`` if they do not all fit under ``max_queue``,
        ``InferenceTimeout`` past the deadline, ``NotReady`` if the batcher is stopped, and the first
        error an input raises (e.g. ``BadRequest`` for a corrupt image) as soon as it raises.
        """
        try:
            self._admit(len(inputs))
        except Exception:
            for value in inputs:
                if asyncio.iscoroutine(value):
                    value.close()  # never started: no "coroutine was never awaited" warning
            raise
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        items = [Item(as_future(value, loop), loop.create_future(), normalized) for value in inputs]
        for item in items:
            item.input.add_done_callback(lambda _, item=item: input_done(item))
        self._waiting.extend(items)
        self._wakeup.set()
        try:
            async with asyncio.timeout_at(deadline):
                rows = list(await asyncio.gather(*(item.future for item in items)))
            annotate(batch_size=max(item.pass_size for item in items))
            return rows
        except TimeoutError:
            if self._metrics:
                self._metrics.reject("timeout", len(items))
            raise InferenceTimeout(f"no result within {self.timeout * 1000:.0f} ms (REQUEST_TIMEOUT_MS)"
                                   ) from None
        except asyncio.CancelledError:  # the handler was cancelled: its client left, or shutdown
            if self._metrics:
                self._metrics.reject("cancelled", sum(map(unanswered, items)))
            raise
        finally:  # on any way out, a sibling image still queued or decoding is dropped
            self._drop({item for item in items if unanswered(item)})
            for item in items:
                item.input.cancel()
                if not item.future.cancel() and not item.future.cancelled():
                    item.future.exception()  # done: mark a sibling's error as seen (no asyncio warning)

    def _drop(self, abandoned: set[Item]) -> None:
        """Take items whose request gave up out of the queue now: their slots under ``max_queue`` are
        free for the next request (a pass already running keeps its own)."""
        if not abandoned:
            return
        self._waiting = deque(item for item in self._waiting if item not in abandoned)
        self._parked -= abandoned
        self._collecting = [item for item in self._collecting if item not in abandoned]

    def _admit(self, n: int) -> None:
        if self._wakeup is None or self._task is None or self._task.done():
            raise NotReady("model is not ready")
        if self.depth + n > self.max_queue:
            if self._metrics:
                self._metrics.reject("queue_full", n)
            raise Overloaded(f"queue is full ({self.max_queue} images waiting, MAX_QUEUE); retry shortly",
                             headers={"Retry-After": "1"})

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if len(self._passes) > 1:  # one running, one queued: wait for the first to finish
                await asyncio.wait(list(self._passes)[:1])
            busy = next(reversed(self._passes), None)  # the pass a new batch would queue behind
            batch = await self._collect(loop, busy)
            if batch:
                task = loop.create_task(self._pass(loop, batch), name="forward pass")
                self._passes[task] = batch
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        del self._passes[task]
        self._wakeup.set()  # a collector waiting for a full batch or for this pass goes on

    async def _pass(self, loop: asyncio.AbstractEventLoop, batch: list[Item]) -> None:
        try:
            await self._run_batch(loop, batch)
        except Exception as exc:  # never let one batch kill the collector, nor leave an item unanswered
            logger.exception("batch of %d failed", len(batch))
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(InferenceFailed(f"batch failed: {exc}"))

    async def _collect(self, loop: asyncio.AbstractEventLoop, busy: asyncio.Task | None) -> list[Item]:
        """The oldest live items, up to ``max_batch_size``, once their decodes are done. While ``busy``
        (a pass in flight) runs, only once ``max_batch_size`` items wait."""
        while not self._waiting or (busy and not busy.done() and len(self._waiting) < self.max_batch_size):
            self._wakeup.clear()
            await self._wakeup.wait()
        flush_at = loop.time() + self.max_delay
        while len(self._waiting) < self.max_batch_size and (remaining := flush_at - loop.time()) > 0:
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
        while self._waiting and len(self._collecting) < self.max_batch_size:
            item = self._waiting.popleft()
            if not item.future.done():  # skip abandoned (timed out, failed decode) items
                self._collecting.append(item)
        try:
            decoding = [item.input for item in self._collecting if not item.input.done()]
            if decoding:
                await asyncio.wait(decoding, timeout=DECODE_WAIT_S)
            batch = []
            for item in self._collecting:
                if not item.input.done():
                    self._park(item)
                elif not item.future.done() and decoded(item):  # else answered (or about to be)
                    batch.append(item)
            return batch
        finally:
            self._collecting = []

    def _park(self, item: Item) -> None:
        """Let ``item`` finish decoding outside the batch; it rejoins the front of the queue after."""
        self._parked.add(item)

        def rejoin(_: asyncio.Future) -> None:
            self._parked.discard(item)
            if not item.future.done() and decoded(item):
                self._waiting.appendleft(item)
                self._wakeup.set()

        item.input.add_done_callback(rejoin)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[Item]) -> None:
        groups: dict[tuple, list[Item]] = {}
        for item in batch:  # same kind, shape and dtype collate together (all of them, normally)
            tensor = item.input.result()
            groups.setdefault((item.normalized, *tensor.shape, tensor.dtype), []).append(item)
        for (normalized, *_), items in groups.items():
            if not self._thread_jobs:
                self._progress_at = time.monotonic()  # the idle thread gets work: the stall clock starts
            self._thread_jobs += 1
            try:
                result, started, seconds = await loop.run_in_executor(
                    self._executor, self._collate_and_predict, [item.input.result() for item in items],
                    normalized)
            except Exception as exc:
                logger.exception("forward pass on %s failed", [len(items), *items[0].input.result().shape])
                error = InferenceFailed(f"model failed on a batch of {len(items)}: {exc}")
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(error)
                continue
            finally:
                self._thread_jobs -= 1
                self._progress_at = time.monotonic()
            if self._metrics:
                self._metrics.batch_size.observe(len(items))
                self._metrics.inference_seconds.observe(seconds)
                for item in items:
                    self._metrics.queue_wait_seconds.observe(max(0.0, started - item.ready_at))
            for row, item in zip(result, items, strict=True):
                item.pass_size = len(items)
                if not item.future.done():
                    item.future.set_result(row)

    def _collate_and_predict(self, tensors: list[torch.Tensor], normalized: bool
                             ) -> tuple[torch.Tensor, float, float]:
        """In the model thread: ``N x [3, H, W]`` -> ``collate`` -> ``predict``. Returns the result, when
        the pass started (``time.monotonic()``) and its own duration (s; a queued pass's wait is not
        part of it)."""
        started = time.monotonic()
        result = self._predict(self._collate(tensors, normalized))
        return result, started, time.monotonic() - started
