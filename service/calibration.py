"""Calibration and held-out images for reduced precisions: two disjoint sets of preprocessed photos.

Source: ``CALIBRATION_URI`` (a Blob prefix, fetched by ``service.calibration_repository``), else
``CALIBRATION_DIR`` (a folder of images), else the photos bundled with the service
(``service/calibration/``: scikit-image's public-domain colour photos, downscaled). Files are sorted by
name and dealt alternately: even positions calibrate (NNCF's activation ranges), odd positions are held
out for the accuracy gate, so no image is in both. Only the first ``2 * count`` files can be dealt into
two sets of ``count``, so later ones are not read.
Each set is filled up to ``count`` images: first every file whole, then seeded random crops of them
(a quarter to all of the area, aspect 3:4 to 4:3, half of them mirrored; torchvision's
``RandomResizedCrop`` ranges), each preprocessed exactly as a request is (``Preprocessor``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image, ImageOps

from service.decode import FORMATS, decode_image
from service.errors import BadRequest, ModelLoadError, PayloadTooLarge, UnsupportedMediaType
from service.preprocess import Preprocessor

if TYPE_CHECKING:
    from service.settings import Settings

BUNDLED = Path(__file__).resolve().parent / "calibration"
#: Image file name endings read from a folder or a prefix (case-insensitive).
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
_MAX_PIXELS = 50_000_000


@dataclass(frozen=True)
class CalibrationSet:
    """``calibration`` and ``held_out``: normalised float32 ``[count, 3, crop, crop]`` each, from
    ``files`` source images of ``source`` (a folder, a Blob prefix URL or ``bundled photos``)."""

    calibration: torch.Tensor
    held_out: torch.Tensor
    source: str
    files: int


def image_files(folder: Path) -> list[Path]:
    """Image files (by suffix) directly in ``folder``, sorted. Raises ``ModelLoadError`` if the folder
    is missing or holds fewer than 2 (one per set)."""
    if not folder.is_dir():
        raise ModelLoadError(f"CALIBRATION_DIR={folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    if len(files) < 2:
        raise ModelLoadError(f"CALIBRATION_DIR={folder}: {len(files)} image file(s); need at least 2 "
                             f"({', '.join(sorted(SUFFIXES))})")
    return files


def from_settings(settings: Settings, preprocessor: Preprocessor) -> CalibrationSet:
    """The two sets of ``CALIBRATION_IMAGES`` each from ``CALIBRATION_URI`` (fetched into
    ``MODEL_CACHE_DIR``), else ``CALIBRATION_DIR``, else the bundled photos.

    Raises ``ModelLoadError``; for the prefix a ``service.model_repository.ModelFetchError`` (exit 4-7).
    """
    count = settings.calibration_images
    if settings.calibration_uri:
        from service.calibration_repository import fetch_images

        files = fetch_images(settings, limit=2 * count)
        return load_files(files, settings.calibration_uri, preprocessor, count)
    return load(settings.calibration_dir, preprocessor, count)


def load(folder: Path | None, preprocessor: Preprocessor, count: int, seed: int = 0) -> CalibrationSet:
    """The two sets of ``count`` images each from ``folder`` (``None``: the bundled photos).

    Raises ``ModelLoadError`` (one line) for a missing folder or an image that does not decode.
    """
    files = image_files(folder or BUNDLED)
    return load_files(files, str(folder) if folder else "bundled photos", preprocessor, count, seed)


def load_files(files: list[Path], source: str, preprocessor: Preprocessor, count: int,
               seed: int = 0) -> CalibrationSet:
    """Deal ``files`` (sorted by name, at least 2) into the two sets of ``count`` images each; ``source``
    names where they came from. Raises ``ModelLoadError`` for an image that does not decode."""
    used = sorted(files)[:2 * count]
    images = [_read(path) for path in used]
    return CalibrationSet(
        calibration=_fill(images[0::2], preprocessor, count, random.Random(seed)),
        held_out=_fill(images[1::2], preprocessor, count, random.Random(seed + 1)),
        source=source,
        files=len(used),
    )


def _read(path: Path) -> Image.Image:
    try:
        return decode_image(path.read_bytes(), _MAX_PIXELS)
    except (BadRequest, PayloadTooLarge, UnsupportedMediaType, OSError) as exc:
        raise ModelLoadError(f"calibration image {path}: {exc} (formats: {', '.join(FORMATS)})") from None


def _fill(images: list[Image.Image], preprocessor: Preprocessor, count: int,
          rng: random.Random) -> torch.Tensor:
    """``count`` preprocessed images ``[count, 3, crop, crop]``: each of ``images`` whole, then crops."""
    pixels = [preprocessor.pixels(image) for image in images[:count]]
    while len(pixels) < count:
        image = images[len(pixels) % len(images)]
        pixels.append(preprocessor.pixels(_random_crop(image, rng)))
    return preprocessor.collate(pixels)


def _random_crop(image: Image.Image, rng: random.Random) -> Image.Image:
    """A crop of 25-100 % of the area with aspect ratio 3:4-4:3 (clipped to the image), maybe mirrored."""
    width, height = image.size
    area = width * height * rng.uniform(0.25, 1.0)
    aspect = rng.uniform(3 / 4, 4 / 3)
    w = max(1, min(width, round((area * aspect) ** 0.5)))
    h = max(1, min(height, round((area / aspect) ** 0.5)))
    left, top = rng.randint(0, width - w), rng.randint(0, height - h)
    crop = image.crop((left, top, left + w, top + h))
    return ImageOps.mirror(crop) if rng.random() < 0.5 else crop
