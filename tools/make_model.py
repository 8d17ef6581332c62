"""Write seeded random-weight torchvision models to disk, for offline demos, tests and benchmarks.

The service never needs this in production (the Docker image fetches real torchvision weights at build
time); it exists because this project's tests and benchmark must run without internet access. Speed does
not depend on weight values, so a seeded random ResNet-50 is a faithful benchmark model.

Formats written (the service detects each from the file's contents, not its name):
- ``torchscript``: ``torch.jit.script`` archive (a zip holding ``constants.pkl`` / ``code/``).
- ``export``: ``torch.export`` program archive (``.pt2``) with a dynamic batch dimension.
- ``state_dict``: a pickled ``state_dict``; loading it needs ``MODEL_ARCH``.
- ``quantized``: int8 TorchScript of ``torchvision.models.quantization.<arch>`` (e.g. ``mobilenet_v2``),
  the kind of model the PyTorch mobile demos ship.

Usage: ``python -m tools.make_model --arch resnet50 --format torchscript --out models/resnet50.pt
--labels models/labels.txt``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torchvision

FORMATS = ("torchscript", "export", "state_dict", "quantized")


def build_model(
    arch: str, seed: int = 0, num_classes: int = 1000, quantized: bool = False
) -> torch.nn.Module:
    """Return torchvision ``arch`` in eval mode with weights drawn from ``torch.manual_seed(seed)``.

    Input ``[N, 3, H, W]`` float32, output logits ``[N, num_classes]``. With ``quantized=True`` the
    model comes from ``torchvision.models.quantization`` and is fused, calibrated on seeded noise and
    converted to int8 (fbgemm backend). Raises ``ValueError`` for an unknown architecture.
    """
    torch.manual_seed(seed)
    if quantized:
        builder = getattr(torchvision.models.quantization, arch, None)
        if builder is None:
            raise ValueError(f"no quantizable torchvision architecture named {arch!r}")
        model = builder(weights=None, quantize=True, num_classes=num_classes)
    else:
        model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    return model.eval()


def save_model(model: torch.nn.Module, path: Path, fmt: str, image_size: int = 224) -> Path:
    """Save ``model`` to ``path`` in format ``fmt`` (one of ``FORMATS``) and return ``path``.

    ``export`` traces with an example ``[2, 3, image_size, image_size]`` input and a dynamic batch
    dimension (1..1024), so the archive serves any batch size the service's batcher forms.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("torchscript", "quantized"):
        example = torch.randn(1, 3, image_size, image_size)
        with torch.inference_mode():
            scripted = torch.jit.trace(model, example) if fmt == "quantized" else torch.jit.script(model)
        torch.jit.save(scripted, str(path))
    elif fmt == "export":
        example = (torch.randn(2, 3, image_size, image_size),)
        batch = torch.export.Dim("batch", min=1, max=1024)
        program = torch.export.export(model, example, dynamic_shapes=({0: batch},))
        torch.export.save(program, str(path))
    elif fmt == "state_dict":
        torch.save(model.state_dict(), path)
    else:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return path


def write_labels(path: Path, num_classes: int) -> Path:
    """Write ``num_classes`` labels, one per line (line i = class i: ``class_000`` ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width = len(str(num_classes - 1))
    path.write_text("".join(f"class_{i:0{width}d}\n" for i in range(num_classes)))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet50", help="torchvision architecture name")
    parser.add_argument("--format", choices=FORMATS, default="torchscript")
    parser.add_argument("--out", type=Path, required=True, help="model file to write")
    parser.add_argument("--labels", type=Path, help="also write a labels file here")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model = build_model(args.arch, args.seed, args.num_classes, quantized=args.format == "quantized")
    save_model(model, args.out, args.format)
    if args.labels:
        write_labels(args.labels, args.num_classes)
    print(f"wrote {args.out} ({args.format}, {args.arch}, {args.num_classes} classes)")


if __name__ == "__main__":
    main()
