"""A tiny deterministic classifier that tests can slow down or hold, injected with
``create_app(settings, classifier=TinyClassifier(settings))``."""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from service.model import ImageClassifier
from service.preprocess import Preprocessor
from service.settings import Settings

LABELS = ["red", "green", "blue", "dark"]


def tiny_settings(**overrides) -> Settings:
    """Settings for a ``TinyClassifier`` app: 32 px input, small queue and threads."""
    options = {"model_name": "tiny", "model_version": "1", "resize_size": 32, "crop_size": 32,
               "max_batch_size": 4, "max_batch_delay_ms": 2, "max_queue": 16, "torch_threads": 1,
               "decode_threads": 1, "max_body_bytes": 1_000_000, "max_image_pixels": 1_000_000}
    return Settings(**(options | overrides))


def solid(rgb: tuple[int, int, int], side: int = 40) -> np.ndarray:
    """A uint8 ``[side, side, 3]`` image of one colour."""
    return np.full((side, side, 3), rgb, dtype=np.uint8)


class TinyClassifier(ImageClassifier):
    """4 classes from the mean colour: red, green, blue, dark (logits ``10 * [r, g, b, -(r + g + b)]``).

    ``gate`` (cleared by a test) holds every forward pass, ``decode_gate`` every decode (the
    preprocessor's ``pixels``); ``delay_s`` sleeps in each forward pass. ``batches`` records the batch
    sizes seen; ``entered`` is set once a forward pass has started (and is held by ``gate``).
    """

    def __init__(self, settings: Settings, labels: list[str] | None = None, delay_s: float = 0.0) -> None:
        super().__init__(settings)
        self.gate = threading.Event()
        self.gate.set()
        self.decode_gate = threading.Event()
        self.decode_gate.set()
        self.delay_s = delay_s
        self.batches: list[int] = []
        self.entered = threading.Event()
        self._labels = labels or LABELS
        self.preprocessor = GatedPreprocessor.from_settings(settings)
        self.preprocessor.gate = self.decode_gate

    def load(self) -> None:
        linear = torch.nn.Linear(3, 4, bias=False)
        with torch.no_grad():
            linear.weight.copy_(10 * torch.tensor([[1., 0, 0], [0, 1, 0], [0, 0, 1], [-1, -1, -1]]))
        self.module = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), linear).eval()
        self.source_format = "state_dict"
        self.labels = list(self._labels)
        self.ready = True

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        self.entered.set()
        assert self.gate.wait(30), "gate never opened"
        self.batches.append(batch.shape[0])
        if self.delay_s:
            time.sleep(self.delay_s)
        return super().predict(batch)


class GatedPreprocessor(Preprocessor):
    """A ``Preprocessor`` whose ``pixels`` (the decode threads' step) waits for ``gate``."""

    gate: threading.Event | None = None

    def pixels(self, image):
        assert self.gate is None or self.gate.wait(30), "decode gate never opened"
        return super().pixels(image)


def save_tiny_torchscript(path: Path) -> Path:
    """The ``TinyClassifier`` network (mean colour -> red, green, blue, dark; 32 px input) as a TorchScript
    file at ``path``, for tests that need a real model file that converts and quantizes in seconds."""
    linear = torch.nn.Linear(3, 4, bias=False)
    with torch.no_grad():
        linear.weight.copy_(10 * torch.tensor([[1., 0, 0], [0, 1, 0], [0, 0, 1], [-1, -1, -1]]))
    module = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), linear).eval()
    with warnings.catch_warnings():  # torch 2.14 calls trace / save deprecated
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.trace(module, torch.zeros(2, 3, 32, 32)), str(path))
    return path
