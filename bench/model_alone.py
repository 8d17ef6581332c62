"""The ceiling: the same model file called in-process in a loop, no HTTP, no decoding, no batcher."""

from __future__ import annotations

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
    """The model alone: per-batch-size timings, the ceiling (best img/s) and the single-image time (ms)."""

    threads: int
    dtype: str
    channels_last: bool
    batches: list[BatchTiming]
    ceiling_img_per_s: float
    single_image_ms: float

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


def measure(
    model_file: Path,
    photos: list[Path],
    batch_sizes: list[int],
    seconds_per_batch: float,
    threads: int,
    dtype: str = "float32",
    channels_last: bool = False,
) -> ModelAloneResult:
    """Time ``model_file`` (TorchScript) on real photos at each of ``batch_sizes``.

    Each batch size is warmed up with 2 calls, then called in a loop for ``seconds_per_batch`` seconds
    (at least 3 calls) under ``torch.inference_mode``; ``ms_per_batch`` is the median call time and
    ``img_per_s = batch_size / median seconds`` (the median shrugs off a neighbour's burst of CPU).
    ``threads`` sets ``torch.set_num_threads`` (the service's intra-op threads) for the duration and
    restores it after. ``dtype`` ``bfloat16`` runs
    under CPU autocast, ``channels_last`` converts model and input memory format, as the service's
    settings of the same names do. Raises ``ValueError`` for an empty ``batch_sizes``.
    """
    import torch

    if not batch_sizes:
        raise ValueError("batch_sizes is empty")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = torch.jit.load(str(model_file), map_location="cpu").eval()
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            model = model.to(memory_format=memory_format)
        images = photo_tensor(photos)
        timings = []
        for batch_size in sorted(set(batch_sizes)):
            index = torch.arange(batch_size) % images.shape[0]
            batch = images[index].contiguous(memory_format=memory_format)
            timings.append(_time_batch(model, batch, seconds_per_batch, dtype))
    finally:
        torch.set_num_threads(previous_threads)
    single = next(t for t in timings if t.batch_size == min(batch_sizes))
    return ModelAloneResult(
        threads=threads,
        dtype=dtype,
        channels_last=channels_last,
        batches=timings,
        ceiling_img_per_s=max(t.img_per_s for t in timings),
        single_image_ms=single.ms_per_batch / single.batch_size,
    )


def _time_batch(model, batch, seconds: float, dtype: str) -> BatchTiming:
    import torch

    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    with torch.inference_mode(), autocast:
        for _ in range(2):
            model(batch)
        durations = []
        start = time.perf_counter()
        while len(durations) < 3 or time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            model(batch)
            durations.append(time.perf_counter() - t0)
    n = batch.shape[0]
    return BatchTiming(
        batch_size=n,
        img_per_s=n / statistics.median(durations),
        ms_per_batch=statistics.median(durations) * 1000.0,
        calls=len(durations),
    )
