"""service.decode: every format and mode becomes the right RGB image; bad bytes give the right error."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from service.decode import decode_image, to_rgb
from service.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from tests.service.conftest import encode

LIMIT = 10_000_000


def _close(a: Image.Image, b: np.ndarray, tolerance: float) -> bool:
    return np.abs(np.asarray(a, dtype=np.int16) - b.astype(np.int16)).mean() < tolerance


@pytest.mark.parametrize(("fmt", "tolerance"), [("PNG", 0.01), ("BMP", 0.01), ("WEBP", 6), ("JPEG", 6),
                                                ("GIF", 25)])
def test_formats_decode_to_the_same_rgb_photo(photos, fmt, tolerance):
    for photo in (photos["coffee"], photos["astronaut"]):
        kwargs = {"lossless": True} if fmt == "WEBP" and tolerance < 1 else {}
        image = decode_image(encode(photo, fmt, **kwargs), LIMIT)
        assert image.mode == "RGB"
        assert image.size == (photo.shape[1], photo.shape[0])
        assert _close(image, photo, tolerance), fmt


def test_gif_uses_the_first_frame(photos):
    frames = [Image.fromarray(photos["chelsea"]), Image.fromarray(255 - photos["chelsea"])]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert Image.open(__import__("io").BytesIO(data)).n_frames == 2
    assert _close(decode_image(data, LIMIT), photos["chelsea"], 25)


def test_exif_orientation_is_applied(photos):
    photo = photos["rocket"]  # 640 wide, 427 high
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    data = encode(photo, "JPEG", quality=95, exif=exif.tobytes())
    image = decode_image(data, LIMIT)
    assert image.size == (427, 640)
    expected = np.rot90(photo, k=-1)
    assert _close(image, expected, 8)


@pytest.mark.parametrize("mode", ["L", "1", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F", "PA"])
def test_every_mode_becomes_rgb(photos, mode):
    base = Image.fromarray(photos["astronaut"])
    if mode == "I;16":
        gray = np.asarray(base.convert("L")).astype(np.uint16) * 257
        image = Image.fromarray(gray)
    elif mode == "I":
        image = Image.fromarray(np.asarray(base.convert("L")).astype(np.int32) * 257)
    elif mode == "F":
        image = Image.fromarray(np.asarray(base.convert("L")).astype(np.float32))
    elif mode == "PA":
        image = base.convert("P").convert("PA")
    else:
        image = base.convert(mode)
    rgb = to_rgb(image)
    assert rgb.mode == "RGB"
    assert rgb.size == base.size
    if mode in ("L", "I;16", "I", "F"):  # high bit depths are scaled, not clipped to white
        expected = np.asarray(base.convert("L"))
        assert np.abs(np.asarray(rgb)[..., 0].astype(int) - expected).mean() < 1


def test_sixteen_bit_png_round_trip(photos):
    gray = np.asarray(Image.fromarray(photos["coffee"]).convert("L")).astype(np.uint16) * 257
    image = decode_image(encode(Image.fromarray(gray), "PNG"), LIMIT)
    assert np.abs(np.asarray(image)[..., 1].astype(int) - gray // 257).max() <= 1


def test_transparent_pixels_become_white(photos):
    rgba = np.dstack([photos["chelsea"], np.zeros(photos["chelsea"].shape[:2], np.uint8)])
    image = decode_image(encode(rgba, "PNG"), LIMIT)
    assert np.asarray(image).min() == 255


def test_palette_png_with_transparency(photos):
    palette = Image.fromarray(photos["coffee"]).convert("P")
    data = encode(palette, "PNG", transparency=0)
    image = decode_image(data, LIMIT)
    assert image.mode == "RGB"
    assert _close(image, np.asarray(palette.convert("RGB")), 30)


def test_cmyk_jpeg(photos):
    data = encode(Image.fromarray(photos["coffee"]).convert("CMYK"), "JPEG", quality=95)
    assert _close(decode_image(data, LIMIT), photos["coffee"], 6)


def test_jpeg_draft_downscales_but_keeps_the_shorter_side(photos):
    big = np.asarray(Image.fromarray(photos["astronaut"]).resize((2048, 2048)))
    image = decode_image(encode(big, "JPEG"), LIMIT, min_side=256)
    assert min(image.size) >= 256
    assert image.size[0] < 2048  # decoded at a reduced DCT scale


def test_empty_body_is_400():
    with pytest.raises(BadRequest, match="empty"):
        decode_image(b"", LIMIT)


@pytest.mark.parametrize("data", [b"hello, world", b"%PDF-1.7\n...", b"\x00" * 100])
def test_not_an_image_is_415(data):
    with pytest.raises(UnsupportedMediaType):
        decode_image(data, LIMIT)


def test_unsupported_format_is_415(photos):
    with pytest.raises(UnsupportedMediaType):
        decode_image(encode(photos["chelsea"], "TIFF"), LIMIT)


def test_truncated_image_is_400(jpeg):
    with pytest.raises(BadRequest, match="corrupt or truncated JPEG"):
        decode_image(jpeg[: len(jpeg) // 2], LIMIT)


def test_decompression_bomb_is_413_before_decoding():
    # A 20000 x 20000 PNG compresses to a few hundred KiB; the header alone says it is 400 Mpx.
    bomb = encode(Image.new("L", (20_000, 20_000)), "PNG")
    assert len(bomb) < 1_000_000
    with pytest.raises(PayloadTooLarge, match="MAX_IMAGE_PIXELS"):
        decode_image(bomb, LIMIT)
