"""What every target in the benchmark is fed: one model file, its labels and the same real JPEG photos."""

from __future__ import annotations

import io
from pathlib import Path

#: scikit-image's bundled colour photos (no download needed), from 300x451 (chelsea) to 1411x1411 (retina):
#: the mix of sizes a user uploads, so JPEG decoding and resizing cost what they cost in production.
PHOTO_NAMES = (
    "chelsea",
    "coffee",
    "astronaut",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
)

#: JPEG quality of the encoded photos (Pillow's scale 1-95; 90 is a typical camera/phone export).
JPEG_QUALITY = 90


def write_photos(directory: Path, names: tuple[str, ...] = PHOTO_NAMES) -> list[Path]:
    """Encode scikit-image photos ``names`` as JPEG files ``<directory>/<name>.jpg`` and return the paths.

    Each photo is an ``[H, W, 3]`` uint8 array from ``skimage.data``, written once with Pillow at
    ``JPEG_QUALITY``. Raises ``AttributeError`` for a name ``skimage.data`` does not have.
    """
    import skimage.data
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = directory / f"{name}.jpg"
        if not path.exists():
            buffer = io.BytesIO()
            Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(
                buffer, format="JPEG", quality=JPEG_QUALITY
            )
            path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def ensure_model(arch: str, directory: Path, num_classes: int = 1000) -> tuple[Path, Path]:
    """Return ``(model_file, labels_file)`` for a seeded random-weight TorchScript ``arch``, made once.

    Files are cached as ``<directory>/<arch>.pt`` and ``<directory>/labels-<num_classes>.txt`` through
    ``tools.make_model`` (speed does not depend on weight values). Raises ``ValueError`` for an
    architecture torchvision does not know.
    """
    from tools.make_model import build_model, save_model, write_labels

    model_file = directory / f"{arch}.pt"
    labels_file = directory / f"labels-{num_classes}.txt"
    if not model_file.exists():
        tmp = model_file.with_suffix(".tmp")
        save_model(build_model(arch, num_classes=num_classes), tmp, "torchscript")
        tmp.replace(model_file)
    if not labels_file.exists():
        write_labels(labels_file, num_classes)
    return model_file, labels_file


def labels_for(model_file: Path, directory: Path) -> Path:
    """Return a labels file matching ``model_file``'s output width (one ``class_i`` line per class).

    The width is read by running the TorchScript model once on a ``[1, 3, 224, 224]`` zero tensor.
    """
    import torch

    model = torch.jit.load(str(model_file), map_location="cpu").eval()
    with torch.inference_mode():
        num_classes = int(model(torch.zeros(1, 3, 224, 224)).shape[-1])
    from tools.make_model import write_labels

    return write_labels(directory / f"labels-{num_classes}.txt", num_classes)
