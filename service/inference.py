"""The request path's orchestrator: decode -> preprocess (decode threads) -> batch -> model -> postprocess.

``InferenceEngine`` owns one app's ``ImageClassifier``, its decode thread pool and the ``Batcher``; the
route handlers (``service.routes``) call ``classify`` (``/predict``), ``probabilities`` and
``probabilities_of_tensors`` (Open Inference Protocol). Each step lives in the module named after it:
``service.decode``, ``service.preprocess``, ``service.batching``, ``service.model``, ``service.postprocess``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from service.batching import Batcher
from service.decode import decode_image
from service.errors import NotReady
from service.logs import annotate
from service.metrics import Metrics
from service.model import ImageClassifier
from service.postprocess import Prediction
from service.settings import Settings

logger = logging.getLogger("service")


class InferenceEngine:
    """Owns the classifier, the decode thread pool and the batcher for one app.

    ``start()`` loads and warms the model (blocking work runs in a thread), then starts the batcher;
    ``stop()`` reverses it. Each image is decoded and resized on its own (decode threads) before its
    uint8 pixels enter a batch, so a bad image fails only its own request; the batch is normalised
    and run in the model thread (``Preprocessor.collate``, ``ImageClassifier.predict``).

    Admission is bounded before any decoding: when ``MAX_QUEUE`` images are already admitted and not
    yet in (or queued for) a forward pass (decoding or waiting), a request is refused at once with
    ``Overloaded`` (503, ``Retry-After``), so memory stays bounded by about ``MAX_QUEUE`` + 2 x
    ``MAX_BATCH_SIZE`` images (plus request bodies in flight) under any load.
    ``draining`` (set on SIGTERM, see ``service.server``) turns readiness to 503 while requests still run;
    so does ``failure`` (the batcher's collector stopped, or the inference thread stalled).
    """

    def __init__(self, settings: Settings, metrics: Metrics,
                 classifier: ImageClassifier | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.classifier = classifier or ImageClassifier(settings)
        self.batcher: Batcher | None = None
        self.draining = False
        self._decoder: ThreadPoolExecutor | None = None
        self._failing = False  # the last failure logged has not cleared yet
        metrics.model_ready.set_function(lambda: float(self.ready and self.failure is None))
        metrics.queue_depth.set_function(lambda: self.batcher.depth if self.batcher else 0)

    @property
    def ready(self) -> bool:
        """True once the model is loaded and warmed and the batcher runs (requests are admitted; the
        probes also want no ``failure``)."""
        return self.classifier.ready and self.batcher is not None

    @property
    def failure(self) -> str | None:
        """Why a loaded model cannot answer (``Batcher.failure``), else ``None``. A change is logged
        once (probes are not in the access log)."""
        failure = self.batcher.failure if self.classifier.ready and self.batcher is not None else None
        if (failure is not None) != self._failing:
            self._failing = failure is not None
            if failure:
                logger.error("not ready: %s", failure)
            else:
                logger.info("ready again: the batcher answers")
        return failure

    async def start(self) -> None:
        """Load (``ModelLoadError`` on failure), warm up, start the batcher; then ``ready`` is True."""
        torch.set_num_threads(self.settings.torch_threads)
        # One thread loads the model and then runs every forward pass (see Batcher's executor).
        model_thread = ThreadPoolExecutor(1, thread_name_prefix="inference")
        if not self.classifier.ready:
            try:
                await asyncio.get_running_loop().run_in_executor(model_thread, self.classifier.load)
            except BaseException:
                model_thread.shutdown(wait=False)
                raise
        self._decoder = ThreadPoolExecutor(self.settings.decode_threads, thread_name_prefix="decode")
        batcher = Batcher(self.classifier.predict, collate=self.classifier.preprocessor.collate,
                          max_batch_size=min(self.settings.max_batch_size, self.classifier.batch_limit),
                          max_batch_delay_ms=self.settings.max_batch_delay_ms,
                          max_queue=self.settings.max_queue,
                          request_timeout_ms=self.settings.request_timeout_ms, metrics=self.metrics,
                          executor=model_thread, stall_s=self.settings.stall_s)
        await batcher.start()
        self.batcher = batcher
        self.metrics.queue_capacity.set(batcher.max_queue)
        self.metrics.model_info.info({"name": self.classifier.name, "version": self.classifier.version,
                                      "format": self.classifier.source_format})

    async def stop(self) -> None:
        """Mark not ready (readiness probes fail first), drain, stop threads."""
        batcher, self.batcher = self.batcher, None
        if batcher:
            await batcher.stop()
        if self._decoder:
            self._decoder.shutdown(wait=False, cancel_futures=True)
            self._decoder = None

    async def classify(self, blobs: Sequence[bytes], k: int) -> list[list[Prediction]]:
        """Encoded images -> their ``k`` most likely classes each (``/predict``). Errors as
        ``probabilities``."""
        rows = await self.probabilities(blobs)
        with self.metrics.postprocess_seconds.time():
            return self.classifier.postprocess(torch.stack(rows), k)

    async def probabilities(self, blobs: Sequence[bytes]) -> list[torch.Tensor]:
        """Encoded images -> probabilities ``[C]`` each. Raises ``Overloaded`` (503) before decoding
        anything, and an image's decode error (400/413/415) as soon as it is found."""
        batcher, decoder = self._running()
        annotate(model=self.classifier.name, images=len(blobs))
        # Coroutines, not futures: an image starts decoding only once its request is admitted.
        return await batcher.submit([self._pixels(decoder, blob) for blob in blobs])

    async def probabilities_of_tensors(self, batch: torch.Tensor) -> list[torch.Tensor]:
        """Already preprocessed (normalised) float32 ``[N, 3, H, W]`` -> probabilities ``[C]`` per row."""
        batcher, _ = self._running()
        annotate(model=self.classifier.name, images=batch.shape[0])
        return await batcher.submit(list(batch.unbind(0)), normalized=True)

    async def _pixels(self, decoder: ThreadPoolExecutor, data: bytes) -> torch.Tensor:
        return await asyncio.get_running_loop().run_in_executor(decoder, self._decode_and_preprocess, data)

    def _decode_and_preprocess(self, data: bytes) -> torch.Tensor:
        """In a decode thread: bytes -> uint8 ``[3, crop, crop]`` (normalised later, per batch)."""
        started = time.perf_counter()
        preprocessor = self.classifier.preprocessor
        image = decode_image(data, self.settings.max_image_pixels, preprocessor.resize_size)
        tensor = preprocessor.pixels(image)
        self.metrics.preprocess_seconds.observe(time.perf_counter() - started)
        return tensor

    def _running(self) -> tuple[Batcher, ThreadPoolExecutor]:
        if self.batcher is None or self._decoder is None or not self.classifier.ready:
            raise NotReady("model is not loaded yet")
        return self.batcher, self._decoder
