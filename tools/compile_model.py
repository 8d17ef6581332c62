"""Compile a model file into an OpenVINO archive the service loads without converting or re-quantizing.

    python -m tools.compile_model --file model.pt2 --labels labels.txt --out model.openvino.zip
        [--dtype auto|int8|bfloat16|float32] [--calibration photos/]

runs the service's own start-up choice (``service.model.ImageClassifier`` with ``MODEL_RUNTIME=openvino``:
conversion, NNCF int8 calibrated on ``--calibration`` or the bundled photos, the accuracy gate against
float32 on held-out images, fallback int8 -> bfloat16 -> float32) and writes what serves as one zip: the
IR (``openvino/model.xml`` + ``.bin``) and ``openvino/report.json`` (the gate's measurements, the source
file's SHA-256, the preprocessing, the CPU and the OpenVINO / NNCF versions). ``MODEL_PATH=<the zip>`` then
starts in the time it takes to read and compile the IR. Prints the report's summary and the archive's
SHA-256 (``MODEL_SHA256`` for ``MODEL_URI``). Exit status: 0 written, 3 the model did not load, 9 an
explicit ``--dtype`` failed the gate.

The gate and int8's speed depend on the CPU: compile on the VM family the pods run on (docs/performance.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of ``path`` (4 MiB chunks)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def compile_file(model: Path, out: Path, labels: Path | None = None, dtype: str = "auto",
                 calibration: Path | None = None, **settings) -> dict:
    """Compile ``model`` into the archive ``out``; return its report (``report["archive_sha256"]`` added).

    ``settings``: further ``service.settings.Settings`` fields (e.g. ``crop_size``). Raises
    ``ModelLoadError`` (``PrecisionRejected`` for an explicit ``dtype`` that fails the gate).
    """
    from service import openvino_backend
    from service.model import ImageClassifier
    from service.settings import Settings

    config = Settings(model_path=model, model_labels=labels, model_runtime="openvino", model_dtype=dtype,
                      calibration_dir=calibration, **settings)
    classifier = ImageClassifier(config)
    classifier.load()
    pre = classifier.preprocessor
    report = {**classifier.gate_report, "source_file": model.name, "source_sha256": sha256_file(model),
              "preprocessing": {"resize_size": pre.resize_size, "crop_size": pre.crop_size,
                                "mean": list(pre.mean), "std": list(pre.std)},
              "cpu": classifier.cpu.describe(), "openvino": _version("openvino"), "nncf": _version("nncf")}
    report.setdefault("serving", classifier.precision)
    openvino_backend.write_archive(out, classifier.module.model, report)
    return {**report, "archive_sha256": sha256_file(out)}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, compile, print the summary. Returns the exit status (see module doc)."""
    from service.errors import ModelLoadError
    from service.logs import configure_logging

    parser = argparse.ArgumentParser(prog="python -m tools.compile_model", description=__doc__.split("\n")[0])
    parser.add_argument("--file", type=Path, required=True, help="TorchScript, .pt2 or state_dict file")
    parser.add_argument("--labels", type=Path, help="labels file, one per line")
    parser.add_argument("--out", type=Path, required=True, help="archive to write (.zip)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "int8", "bfloat16", "float32"))
    parser.add_argument("--calibration", type=Path, help="folder of images (default: the bundled photos)")
    args = parser.parse_args(argv)
    configure_logging("info", "text")
    try:
        report = compile_file(args.file, args.out, args.labels, args.dtype, args.calibration)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_status", 3)
    summary = {key: report.get(key) for key in ("serving", "plan", "archive_sha256", "source_sha256")}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
