"""Decode uploaded bytes into an RGB ``PIL.Image`` safely (Pillow).

Formats: JPEG, PNG, WebP, GIF (first frame), BMP. EXIF orientation is applied; every mode becomes
8-bit RGB (grayscale, 16-bit, float, palette, RGBA/LA composited on white, CMYK). The pixel-count
check runs on the header, before any pixel is decoded, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

#: Pillow format names accepted (``Image.open(formats=...)``): the others are never even tried.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")

_WHITE = (255, 255, 255)


def decode_image(data: bytes, max_pixels: int, min_side: int | None = None) -> Image.Image:
    """Decode ``data`` into an RGB image of shape (W, H) as Pillow reports it.

    ``max_pixels``: width x height limit (``MAX_IMAGE_PIXELS``). ``min_side``: the smallest shorter side
    the caller needs (the preprocessing resize, px); JPEGs are decoded at the smallest DCT scale
    (Pillow ``draft``) that still gives at least that, which is several times faster on big photos.

    Raises ``BadRequest`` (400: empty or corrupt/truncated data), ``UnsupportedMediaType`` (415: not
    an image in ``FORMATS``), ``PayloadTooLarge`` (413: over ``max_pixels``).
    """
    if not data:
        raise BadRequest("empty body: send an image (JPEG, PNG, WebP, GIF or BMP)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise UnsupportedMediaType(
                f"not a supported image: expected one of {', '.join(FORMATS)}") from None
        raise PayloadTooLarge(f"image is over the {max_pixels}-pixel limit (MAX_IMAGE_PIXELS)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # a known format, cut short in its header
        raise BadRequest(f"corrupt or truncated image: {exc}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"image is {width}x{height} = {width * height} pixels, over the {max_pixels}-pixel "
            "limit (MAX_IMAGE_PIXELS)")
    if width == 0 or height == 0:
        raise BadRequest("image has no pixels")
    try:
        if image.format == "JPEG" and min_side:
            # draft() keeps both sides >= the requested size, so the shorter side stays >= min_side.
            image.draft("RGB", (min_side, min_side))
        image.load()
        image = ImageOps.exif_transpose(image) or image
        return to_rgb(image)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadRequest(f"corrupt or truncated {image.format} image: {exc}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (16-bit/32-bit/float scaled, transparency on white)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image))).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale a high-bit-depth single-channel array to uint8: 16-bit by /257, floats clipped to [0, 255]."""
    if array.dtype.kind == "f":
        return np.clip(array, 0, 255).astype(np.uint8)
    peak = 255 if array.max(initial=0) <= 255 else 65535
    return (array.astype(np.float32) * (255.0 / peak)).round().clip(0, 255).astype(np.uint8)
