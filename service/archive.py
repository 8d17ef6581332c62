"""Compile the configured model into an OpenVINO archive that the service then loads without converting,
calibrating or re-quantizing: ``python -m service --compile OUT`` (the image build, for baked models) and
``tools.compile_model`` (a model file, also behind ``tools.publish_model --compile``) both call
``compile_archive``.

It runs the service's own start-up choice (``service.model.ImageClassifier`` with ``MODEL_RUNTIME=openvino``:
conversion, NNCF int8 calibrated on the configured images, the accuracy gate against float32 on held-out
ones, fallback int8 -> bfloat16 -> float32), planned for ``MODEL_TARGET_CPU`` (default: this host), and
writes what serves as one zip (``service.openvino_backend.write_archive``): the IR and ``report.json`` with
the gate's measurements, the source's SHA-256, the preprocessing, the CPU it was measured on and the one it
was planned for (``target_cpu``), and the OpenVINO / NNCF versions.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from service import loaders
from service.errors import ModelLoadError
from service.model_repository import sha256_file
from service.settings import Settings

#: Report keys ``summary`` prints (the build log, ``tools.compile_model``'s output).
SUMMARY_KEYS = ("serving", "plan", "target_cpu", "calibration_source", "archive_sha256", "source_sha256")


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def source_of(settings: Settings) -> tuple[str, str | None]:
    """(what was compiled, its SHA-256): the ``MODEL_PATH`` file's name and digest, or
    ``torchvision <arch> <weights>`` and the digest of its checkpoint in the torch hub cache (None when
    it is not there)."""
    if settings.model_path is not None:
        return settings.model_path.name, sha256_file(settings.model_path)
    import torch

    weights = loaders.resolve_weights(settings.model_arch, settings.model_weights)
    checkpoint = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    return (f"torchvision {settings.model_arch} {weights.name}",
            sha256_file(checkpoint) if checkpoint.is_file() else None)


def compile_archive(settings: Settings, out: Path) -> dict:
    """Compile the model ``settings`` name (``MODEL_PATH`` file or torchvision ``MODEL_ARCH`` /
    ``MODEL_WEIGHTS``) into the archive ``out``; return its report with ``archive_sha256`` added.

    Raises ``ModelLoadError`` (``PrecisionRejected`` for an explicit ``MODEL_DTYPE`` that fails the gate;
    a ``ModelFetchError`` for ``CALIBRATION_URI``), also when ``MODEL_PATH`` is an archive already.
    """
    from service import openvino_backend
    from service.model import ImageClassifier

    if settings.model_path and loaders.detect_format(settings.model_path) == loaders.OPENVINO_ARCHIVE:
        raise ModelLoadError(f"MODEL_PATH={settings.model_path} is an OpenVINO archive already")
    classifier = ImageClassifier(settings.model_copy(update={"model_runtime": "openvino"}))
    classifier.load()
    pre = classifier.preprocessor
    source, source_sha256 = source_of(settings)
    target = classifier.cpu.tier if settings.model_target_cpu == "host" else settings.model_target_cpu
    report = {**classifier.gate_report, "source_file": source, "source_sha256": source_sha256,
              "preprocessing": {"resize_size": pre.resize_size, "crop_size": pre.crop_size,
                                "mean": list(pre.mean), "std": list(pre.std)},
              "cpu": classifier.cpu.describe(), "target_cpu": target,
              "openvino": _version("openvino"), "nncf": _version("nncf")}
    report.setdefault("serving", classifier.precision)
    openvino_backend.write_archive(out, classifier.module.model, report)
    return {**report, "archive_sha256": sha256_file(out)}


def summary(report: dict) -> dict:
    """The report's ``SUMMARY_KEYS`` (for printing)."""
    return {key: report.get(key) for key in SUMMARY_KEYS}


def compile_and_print(settings: Settings, out: Path) -> int:
    """``compile_archive``, then its ``summary`` as JSON on stdout, or one ``error: ...`` line on stderr.
    Returns the exit status: 0, or the error's (3 the model did not load, 4-7 fetching ``CALIBRATION_URI``,
    9 an explicit ``MODEL_DTYPE`` that fails the gate)."""
    import json
    import sys

    try:
        report = compile_archive(settings, out)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_status", 3)
    print(json.dumps(summary(report), indent=2))
    return 0
