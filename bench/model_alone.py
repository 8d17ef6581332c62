"""The ceiling: the same model file called in-process in a loop, no HTTP, no decoding, no batcher."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

#: ImageNet normalisation used by torchvision's classification models (torchvision.transforms._presets).
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class BatchTiming:
    """Throughput of one batch size: ``img_per_s`` (images/s) and ``ms_per_batch`` (median wall ms)."""

    batch_size: int
    img_per_s: float
    ms_per_batch: float
    calls: int


@dataclass
class ModelAloneResult:
    """The model alone: per-batch-size timings, the ceiling (best img/s, and the batch size giving it:
    the paired rounds time that one) and the single-image time (ms).

    ``loader`` says how the model was loaded: ``service`` (the service's own ``ImageClassifier`` with
    the same settings, so channels_last / dtype / threads match the server) or ``torchscript``.
    """

    loader: str
    threads: int
    dtype: str
    channels_last: bool
    batches: list[BatchTiming]
    ceiling_img_per_s: float
    ceiling_batch_size: int
    single_image_ms: float
    top1_agreement_vs_float32: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def photo_tensor(photos: list[Path], size: int = 224):
    """Decode and preprocess ``photos`` as a classifier expects: float32 ``[len(photos), 3, size, size]``.

    Resize(256) / CenterCrop(224) / Normalize(ImageNet mean, std): the torchvision ImageNet recipe.
    """
    import torch
    from PIL import Image
    from torchvision import transforms

    recipe = transforms.Compose(
        [
            transforms.Resize(size * 256 // 224),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )
    return torch.stack([recipe(Image.open(p).convert("RGB")) for p in photos])


class _Prepared:
    """A callable ``[N, 3, H, W] float32 -> output`` plus the settings it runs with."""

    def __init__(self, call, loader: str, threads: int, dtype: str, channels_last: bool, reference=None):
        self.call, self.loader, self.threads = call, loader, threads
        self.dtype, self.channels_last = dtype, channels_last
        self.reference = reference  # the float32 classifier's predict, when dtype is not float32


def prepare(model_file: Path, labels_file: Path | None) -> _Prepared:
    """Load ``model_file`` the way the service does, with the service's settings from the environment.

    Uses ``service.model.ImageClassifier.predict`` (the call the batcher makes: channels_last, dtype,
    softmax included) when the ``service`` package imports; else plain ``torch.jit.load`` at all CPUs.
    """
    import torch

    try:
        from service.model import ImageClassifier
        from service.settings import Settings
    except ImportError:
        model = torch.jit.load(str(model_file), map_location="cpu").eval()
        threads = len(os.sched_getaffinity(0))
        return _Prepared(model, "torchscript", threads, "float32", False)
    settings = Settings(model_path=model_file, model_labels=labels_file)
    torch.set_num_threads(settings.torch_threads)  # as service.inference does before loading
    classifier = ImageClassifier(settings)
    classifier.load()
    reference = None
    if classifier.precision != "float32":
        float32 = ImageClassifier(settings.model_copy(update={"model_runtime": "torch",
                                                              "model_dtype": "float32"}))
        float32.load()
        reference = float32.predict
    return _Prepared(
        classifier.predict,
        "service",
        settings.torch_threads,
        f"{classifier.runtime} {classifier.precision}",
        classifier.memory_format is torch.channels_last,
        reference,
    )


def top1_agreement(model: _Prepared, images) -> dict | None:
    """How many of ``images`` (``[P, 3, H, W]``) get the same top-1 class as with float32 weights.

    ``{"agree": k, "photos": P, "distinct_float32_classes": n, "top5_overlap": mean |top5 & top5| / 5,
    "max_abs_probability_difference": ..., "classes": [[float32, dtype], ...]}``; None for a float32
    run. ``distinct_float32_classes`` shows how telling the agreement is: a random-weight model may
    put every photo in one class, and then 7/7 says little.
    """
    if model.reference is None:
        return None
    import torch

    with torch.inference_mode():
        probs, reference_probs = model.call(images), model.reference(images)
    ours, reference = probs.argmax(1), reference_probs.argmax(1)
    top5, reference_top5 = probs.topk(5).indices.tolist(), reference_probs.topk(5).indices.tolist()
    overlap = [len(set(a) & set(b)) / 5 for a, b in zip(top5, reference_top5, strict=True)]
    return {
        "agree": int((ours == reference).sum()),
        "photos": len(images),
        "distinct_float32_classes": len(set(reference.tolist())),
        "top5_overlap": sum(overlap) / len(overlap),
        "max_abs_probability_difference": float((probs - reference_probs).abs().max()),
        "classes": [[int(r), int(o)] for r, o in zip(reference, ours, strict=True)],
    }


class ModelAlone:
    """The model file loaded once in this process (as ``prepare`` says), timed on demand.

    ``time(batch_size, seconds)`` can be called again later, e.g. between load windows of a server
    (``bench.rounds``), so that a ratio compares numbers taken seconds apart rather than minutes.
    """

    def __init__(self, model_file: Path, labels_file: Path | None, photos: list[Path]) -> None:
        import torch

        previous_threads = torch.get_num_threads()  # prepare() sets the service's, to load as it does
        try:
            self.model = prepare(model_file, labels_file)
        finally:
            torch.set_num_threads(previous_threads)
        self.images = photo_tensor(photos)  # [P, 3, 224, 224] float32, normalised

    def time(self, batch_size: int, seconds: float) -> BatchTiming:
        """Median time of ``batch_size`` photos (cycled) per call over ``seconds`` s (at least 3
        calls), at the model's intra-op threads; torch's thread count is restored afterwards."""
        import torch

        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.model.threads)
        try:
            index = torch.arange(batch_size) % self.images.shape[0]
            return _time_batch(self.model.call, self.images[index].contiguous(), seconds)
        finally:
            torch.set_num_threads(previous_threads)


def measure(alone: ModelAlone, batch_sizes: list[int], seconds_per_batch: float) -> ModelAloneResult:
    """Time the loaded model ``alone`` on its photos at each of ``batch_sizes``.

    Each batch size is warmed up with 2 calls, then called in a loop for ``seconds_per_batch`` seconds
    (at least 3 calls) under ``torch.inference_mode``; ``ms_per_batch`` is the median call time and
    ``img_per_s = batch_size / median seconds`` (the median shrugs off a neighbour's burst of CPU).
    Raises ``ValueError`` for an empty ``batch_sizes``.
    """
    if not batch_sizes:
        raise ValueError("batch_sizes is empty")
    agreement = top1_agreement(alone.model, alone.images)
    timings = [alone.time(size, seconds_per_batch) for size in sorted(set(batch_sizes))]
    single = next(t for t in timings if t.batch_size == min(batch_sizes))
    best = max(timings, key=lambda t: t.img_per_s)
    model = alone.model
    return ModelAloneResult(
        loader=model.loader,
        threads=model.threads,
        dtype=model.dtype,
        channels_last=model.channels_last,
        batches=timings,
        ceiling_img_per_s=best.img_per_s,
        ceiling_batch_size=best.batch_size,
        single_image_ms=single.ms_per_batch / single.batch_size,
        top1_agreement_vs_float32=agreement,
    )


def _time_batch(call, batch, seconds: float) -> BatchTiming:
    import torch

    with torch.inference_mode():
        for _ in range(2):
            call(batch)
        durations = []
        start = time.perf_counter()
        while len(durations) < 3 or time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            call(batch)
            durations.append(time.perf_counter() - t0)
    n = batch.shape[0]
    return BatchTiming(
        batch_size=n,
        img_per_s=n / statistics.median(durations),
        ms_per_batch=statistics.median(durations) * 1000.0,
        calls=len(durations),
    )
