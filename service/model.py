"""``ImageClassifier``: load / preprocess / predict / postprocess, with a ``ready`` flag for probes."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.functional import pil_modes_mapping

from service.errors import ModelLoadError
from service.loaders import LoadedModel, load_file, load_torchvision, read_labels
from service.settings import Settings

logger = logging.getLogger("service")

#: V2 metadata ``platform`` per artifact format (Triton's name for TorchScript is ``pytorch_libtorch``).
PLATFORMS = {"torchscript": "pytorch_libtorch", "export": "pytorch_export", "state_dict": "pytorch_eager",
             "torchvision": "pytorch_eager"}


@dataclass(frozen=True)
class Prediction:
    """One top-k entry: class ``index``, its ``label`` and softmax probability ``score`` in [0, 1]."""

    label: str
    index: int
    score: float


class ImageClassifier:
    """A torchvision-style classifier: RGB image -> ``[3, crop, crop]`` tensor -> probabilities ``[C]``.

    ``load()`` reads the model (``MODEL_PATH`` file or torchvision ``MODEL_ARCH``/``MODEL_WEIGHTS``), the
    labels, fixes the preprocessing and warms the model up; then ``ready`` is True. Raises
    ``ModelLoadError`` (one line) on any failure, e.g. labels that do not match the output width.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.resolved_model_name
        self.version = settings.model_version
        self.ready = False
        self.module: torch.nn.Module | None = None
        self.source_format = ""
        self.labels: list[str] = []
        self.batch_limit = settings.max_batch_size  # lowered to 1 for a model fixed to batch size 1
        self.resize_size, self.crop_size = settings.resize_size, settings.crop_size
        self.mean, self.std = settings.norm_mean, settings.norm_std
        self.interpolation = InterpolationMode.BILINEAR
        self.dtype = torch.bfloat16 if settings.model_dtype == "bfloat16" else torch.float32
        self.memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
        self._resize_crop: v2.Compose | None = None
        self._mean255 = self._inv_std255 = torch.ones(1, 3, 1, 1)

    @property
    def num_classes(self) -> int:
        """Output width C (valid after ``load``)."""
        return len(self.labels)

    @property
    def platform(self) -> str:
        """Open Inference Protocol ``platform`` string for the loaded artifact."""
        return PLATFORMS.get(self.source_format, "pytorch")

    def load(self) -> None:
        """Load, check and warm up the model; sets ``ready``. Raises ``ModelLoadError``."""
        started = time.perf_counter()
        s = self.settings
        loaded = load_file(s.model_path, s.model_arch) if s.model_path else load_torchvision(
            s.model_arch, s.model_weights)
        self.module, self.source_format = loaded.module, loaded.source_format
        self._optimize()
        self._configure_preprocessing(loaded)
        width = self._output_width()
        self.labels = self._load_labels(loaded, width)
        self._warm_up()
        self.ready = True
        logger.info("model %s v%s ready: %s, %d classes, input [N, 3, %d, %d], %.1f s", self.name,
                    self.version, self.source_format, width, self.crop_size, self.crop_size,
                    time.perf_counter() - started)

    def _optimize(self) -> None:
        """Apply ``CHANNELS_LAST``, ``MODEL_DTYPE`` and ``TORCHSCRIPT_FREEZE`` to the module (the input
        follows in ``_forward``). Measured effects: README "Performance". Raises ``ModelLoadError`` if
        the model cannot take ``MODEL_DTYPE`` (e.g. an int8 quantized model)."""
        if self.memory_format is torch.channels_last:
            try:
                self.module = self.module.to(memory_format=torch.channels_last)
            except (RuntimeError, TypeError) as exc:
                logger.warning("model stays in contiguous format (CHANNELS_LAST): %s", str(exc)[:200])
                self.memory_format = torch.contiguous_format
        if self.dtype is not torch.float32:
            try:
                self.module = self.module.to(self.dtype)
            except (RuntimeError, TypeError) as exc:
                raise ModelLoadError(f"MODEL_DTYPE={self.settings.model_dtype}: cannot convert the model: "
                                     f"{str(exc).strip()[:200]}") from None
        if self.settings.torchscript_freeze and isinstance(self.module, torch.jit.ScriptModule):
            try:  # weights become constants: batch-norm folds into convolutions, oneDNN picks kernels
                self.module = torch.jit.optimize_for_inference(torch.jit.freeze(self.module.eval()))
            except Exception as exc:  # e.g. a module freeze cannot handle: serve it unfrozen
                logger.warning("TorchScript model not frozen (TORCHSCRIPT_FREEZE): %s",
                               str(exc).strip().splitlines()[0][:200])

    def _configure_preprocessing(self, loaded: LoadedModel) -> None:
        """ImageNet defaults / settings, or the torchvision weights' own transforms if none was set."""
        if loaded.weights is not None and self.settings.uses_default_preprocessing():
            preset = loaded.weights.transforms()
            self.resize_size, self.crop_size = preset.resize_size[0], preset.crop_size[0]
            self.mean, self.std = tuple(preset.mean), tuple(preset.std)
            self.interpolation = preset.interpolation
        # Resize and crop run in Pillow (decode threads: no torch op, so no second OpenMP thread team
        # competes with the model's); normalisation runs on the whole batch in the model thread.
        self._resize_crop = v2.Compose([
            v2.Resize(self.resize_size, interpolation=self.interpolation, antialias=True),
            v2.CenterCrop(self.crop_size),
        ])
        self._mean255 = torch.from_numpy(np.asarray(self.mean, np.float32) * 255).view(1, 3, 1, 1)
        self._inv_std255 = torch.from_numpy(1 / (np.asarray(self.std, np.float32) * 255)).view(1, 3, 1, 1)

    def _output_width(self) -> int:
        probe = torch.zeros(1, 3, self.crop_size, self.crop_size)
        try:
            out = self._forward(probe)
        except Exception as exc:
            raise ModelLoadError(f"model fails on a [1, 3, {self.crop_size}, {self.crop_size}] input "
                                 f"(CROP_SIZE?): {str(exc).strip().splitlines()[0][:300]}") from None
        if out.ndim != 2 or out.shape[0] != 1:
            raise ModelLoadError(f"model output has shape {list(out.shape)}; expected [N, C] logits")
        return int(out.shape[1])

    def _load_labels(self, loaded: LoadedModel, width: int) -> list[str]:
        path = self.settings.model_labels
        if path is not None:
            labels = read_labels(path)
            if len(labels) != width:
                raise ModelLoadError(f"MODEL_LABELS={path} has {len(labels)} labels but the model "
                                     f"outputs {width} classes")
            return labels
        weights = loaded.weights or torchvision.models.ResNet50_Weights.IMAGENET1K_V2  # ImageNet-1k names
        categories = list(weights.meta.get("categories") or [])
        if len(categories) == width:
            return categories
        logger.warning("no MODEL_LABELS for a %d-class model: labels are the class indices", width)
        return [str(i) for i in range(width)]

    def _warm_up(self) -> None:
        """Run a few passes (first calls pay for allocation and TorchScript profiling)."""
        sample = torch.zeros(1, 3, self.crop_size, self.crop_size)
        self._forward(sample)
        if self.batch_limit > 1:
            try:
                self._forward(sample.expand(2, -1, -1, -1).contiguous())
            except Exception as exc:
                logger.warning("model rejects batch size 2 (%s): batching disabled",
                               str(exc).strip().splitlines()[0][:200])
                self.batch_limit = 1

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = self.module(batch.to(dtype=self.dtype, memory_format=self.memory_format))
        if isinstance(out, (tuple, list)):
            out = out[0]
        elif isinstance(out, dict):
            out = out.get("out", next(iter(out.values())))
        return out

    def _resize_and_crop(self, image: Image.Image) -> Image.Image:
        """Resize (shorter side -> ``resize_size``) then centre-crop ``crop_size``, as torchvision's
        ``Resize`` + ``CenterCrop`` size them, but resampling only the crop's source box (Pillow
        ``resize(box=...)``): half the work on a 3:2 photo, same pixels to within one 8-bit level."""
        width, height = image.size
        short, long = min(width, height), max(width, height)
        new_long = int(self.resize_size * long / short)  # torchvision's rounding (truncation)
        new_w, new_h = (self.resize_size, new_long) if width <= height else (new_long, self.resize_size)
        crop = self.crop_size
        if crop > new_w or crop > new_h or self.interpolation not in pil_modes_mapping:
            return self._resize_crop(image)  # CenterCrop pads: leave that case to torchvision
        top, left = round((new_h - crop) / 2.0), round((new_w - crop) / 2.0)
        sx, sy = width / new_w, height / new_h
        box = (left * sx, top * sy, (left + crop) * sx, (top + crop) * sy)
        return image.resize((crop, crop), pil_modes_mapping[self.interpolation], box=box)

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """RGB ``PIL.Image`` -> uint8 ``[3, crop, crop]`` (resize, centre-crop), for ``predict`` to normalise.

        The decode threads' part of preprocessing: Pillow only, no torch op. The tensor is a
        ``[crop, crop, 3]`` array seen as ``[3, crop, crop]`` (channels-last strides), which
        ``stack_images`` batches without a transpose.
        """
        return torch.from_numpy(np.array(self._resize_and_crop(image))).permute(2, 0, 1)

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 pixels ``[N, 3, H, W]`` -> float32 ``(x / 255 - mean) / std``, same memory format."""
        return batch.to(torch.float32).sub_(self._mean255).mul_(self._inv_std255)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """RGB ``PIL.Image`` -> normalised float32 ``[3, crop, crop]`` (resize, centre-crop, normalise).

        Same numbers as torchvision's ``PILToTensor, Resize, CenterCrop, ToDtype, Normalize`` on a
        uint8 tensor (whose antialiased resize matches Pillow's). ``pixels`` + ``normalize`` in one call;
        the server runs them apart (decode thread, then once per batch in the model thread).
        """
        return self.normalize(self.pixels(image)[None])[0]

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` uint8 pixels (normalised here, see ``normalize``) or float32 already
        normalised -> softmax probabilities ``[N, C]`` (one forward pass, inference mode)."""
        with torch.inference_mode():
            if batch.dtype == torch.uint8:
                batch = self.normalize(batch)
            logits = self._forward(batch)
            return torch.softmax(logits.float(), dim=1)

    def postprocess(self, probabilities: torch.Tensor, top_k: int) -> list[Prediction]:
        """Probabilities ``[C]`` -> the ``top_k`` most likely classes, score descending."""
        scores, indices = torch.topk(probabilities, k=min(top_k, probabilities.shape[-1]))
        return [Prediction(self.labels[i], i, float(s)) for s, i in zip(scores.tolist(), indices.tolist(),
                                                                      strict=True)]
