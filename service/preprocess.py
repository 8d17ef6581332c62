"""Preprocessing: an RGB image -> uint8 pixels ``[3, crop, crop]`` -> normalised batch ``[N, 3, H, W]``.

Contract: ``pixels`` takes an RGB ``PIL.Image`` (from ``service.decode``) and returns its uint8 pixels
``[3, crop, crop]`` (resize the shorter side to ``resize_size``, centre-crop ``crop_size``); ``collate``
takes N such tensors and returns the float32 batch ``[N, 3, crop, crop]`` normalised as
``(x / 255 - mean) / std``, ready for ``ImageClassifier.predict``. The two halves run on different
threads: ``pixels`` in a decode thread (Pillow only, no torch op, so no second OpenMP thread team
competes with the model's), ``collate`` once per batch in the model thread. Tensors that a client sent
already preprocessed (Open Inference Protocol FP32 input) say so: ``collate(..., normalized=True)`` only
stacks them. The numbers equal torchvision's ``PILToTensor, Resize, CenterCrop, ToDtype, Normalize`` to
within one 8-bit level (tests/service/test_preprocess.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.functional import pil_modes_mapping

from service.settings import Settings


@dataclass
class Preprocessor:
    """Resize / centre-crop / normalise with these parameters (sides in px, mean and std per RGB channel
    on the [0, 1] scale). Build it with ``from_settings``."""

    resize_size: int
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: InterpolationMode = InterpolationMode.BILINEAR
    _mean255: torch.Tensor = field(init=False, repr=False)
    _inv_std255: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._mean255 = torch.from_numpy(np.asarray(self.mean, np.float32) * 255).view(1, 3, 1, 1)
        self._inv_std255 = torch.from_numpy(1 / (np.asarray(self.std, np.float32) * 255)).view(1, 3, 1, 1)
        self._fallback = v2.Compose([v2.Resize(self.resize_size, interpolation=self.interpolation,
                                               antialias=True), v2.CenterCrop(self.crop_size)])

    @classmethod
    def from_settings(cls, settings: Settings,
                      weights: torchvision.models.WeightsEnum | None = None) -> Preprocessor:
        """``RESIZE_SIZE`` / ``CROP_SIZE`` / ``NORM_MEAN`` / ``NORM_STD`` (ImageNet defaults), or the
        torchvision ``weights``' own transforms when none of those four was set explicitly."""
        if weights is not None and settings.uses_default_preprocessing():
            preset = weights.transforms()
            return cls(preset.resize_size[0], preset.crop_size[0], tuple(preset.mean), tuple(preset.std),
                       preset.interpolation)
        return cls(settings.resize_size, settings.crop_size, settings.norm_mean, settings.norm_std)

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """RGB ``PIL.Image`` -> uint8 ``[3, crop, crop]`` (resize, centre-crop).

        The tensor is a ``[crop, crop, 3]`` array seen as ``[3, crop, crop]`` (channels-last strides),
        which ``collate`` batches without a transpose.
        """
        return torch.from_numpy(np.array(self._resize_and_crop(image))).permute(2, 0, 1)

    def collate(self, tensors: Sequence[torch.Tensor], normalized: bool = False) -> torch.Tensor:
        """N x ``[3, H, W]`` -> float32 ``[N, 3, H, W]`` normalised.

        ``normalized=False``: uint8 pixels from ``pixels``, stacked (channels-last kept) and normalised.
        ``normalized=True``: float32 tensors already normalised by the client, stacked as they are.
        Raises ``TypeError`` when the dtype does not match what ``normalized`` says.
        """
        expected = torch.float32 if normalized else torch.uint8
        if any(t.dtype != expected for t in tensors):
            raise TypeError(f"collate(normalized={normalized}) takes {expected} tensors, got "
                            f"{sorted({str(t.dtype) for t in tensors})}")
        batch = stack_images(tensors)
        return batch if normalized else self.normalize(batch)

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 pixels ``[N, 3, H, W]`` -> float32 ``(x / 255 - mean) / std``, same memory format."""
        return batch.to(torch.float32).sub_(self._mean255).mul_(self._inv_std255)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """RGB ``PIL.Image`` -> normalised float32 ``[3, crop, crop]``: ``pixels`` then ``collate``, for
        one image (tools and tests; the server runs the two halves on different threads)."""
        return self.collate([self.pixels(image)])[0]

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
            return self._fallback(image)  # CenterCrop pads: leave that case to torchvision
        top, left = round((new_h - crop) / 2.0), round((new_w - crop) / 2.0)
        sx, sy = width / new_w, height / new_h
        box = (left * sx, top * sy, (left + crop) * sx, (top + crop) * sy)
        return image.resize((crop, crop), pil_modes_mapping[self.interpolation], box=box)


def stack_images(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``N x [3, H, W]`` -> ``[N, 3, H, W]``, channels-last when every image is (an ``[H, W, 3]`` array
    seen as ``[3, H, W]``, as Pillow gives them): ``torch.stack`` would transpose each into NCHW."""
    if all(t.dim() == 3 and t.permute(1, 2, 0).is_contiguous() for t in tensors):
        return torch.stack([t.permute(1, 2, 0) for t in tensors]).permute(0, 3, 1, 2)
    return torch.stack(list(tensors))
