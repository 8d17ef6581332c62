"""service.archive: what a compiled archive records (the source, the tier it was planned for), and the one
warning a pod logs when it loads an archive planned for a CPU tier its host lacks."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
import torch

from service import hostcpu
from service.archive import compile_archive, source_of
from service.errors import ModelLoadError
from service.model import ImageClassifier
from service.settings import Settings
from tests.service.tiny import LABELS, save_tiny_torchscript

pytest.importorskip("openvino")
pytest.importorskip("nncf")

TARGET = "avx512_vnni"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> tuple[Path, Path, dict]:
    """The tiny model compiled for an avx512_vnni target on this host: archive, labels, report."""
    folder = tmp_path_factory.mktemp("archive")
    labels = folder / "labels.txt"
    labels.write_text("".join(f"{label}\n" for label in LABELS))
    settings = Settings(model_path=save_tiny_torchscript(folder / "tiny.pt"), model_labels=labels,
                        resize_size=32, crop_size=32, calibration_images=4, torch_threads=1,
                        model_dtype="auto", model_target_cpu=TARGET)
    archive = folder / "tiny.openvino.zip"
    return archive, labels, compile_archive(settings, archive)


def test_the_report_names_the_source_and_the_target(compiled):
    archive, _, report = compiled
    assert report["target_cpu"] == TARGET and report["cpu"] == hostcpu.detect().describe()
    assert report["plan"].startswith(f"MODEL_RUNTIME=openvino, MODEL_DTYPE=auto for a {TARGET} target")
    assert report["source_file"] == "tiny.pt"
    assert report["archive_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()


@pytest.mark.parametrize(("host", "warned"), [("avx2", True), (TARGET, False), ("amx", False)])
def test_a_host_below_the_target_tier_logs_one_warning(compiled, monkeypatch, caplog, host, warned):
    archive, labels, report = compiled
    monkeypatch.setattr(hostcpu, "detect", lambda: hostcpu.CpuFeatures.for_tier(host))
    caplog.set_level(logging.INFO, logger="service")
    classifier = ImageClassifier(Settings(model_path=archive, model_labels=labels, torch_threads=1,
                                          model_runtime="auto", model_dtype="auto"))
    classifier.load()
    assert classifier.precision == report["serving"]  # it serves, whatever the host
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = (f"OpenVINO archive compiled for {TARGET} CPUs; this host is "
                f"{hostcpu.CpuFeatures.for_tier(host).describe()}: it serves {report['serving']} anyway, "
                "slower than on its target")
    assert warnings == ([expected] if warned else [])


def test_an_archive_is_not_compiled_again(compiled):
    archive, labels, _ = compiled
    with pytest.raises(ModelLoadError, match="is an OpenVINO archive already"):
        compile_archive(Settings(model_path=archive, model_labels=labels), archive.with_name("again.zip"))


def test_torchvision_weights_are_named_and_hashed_from_the_hub_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    settings = Settings(model_arch="resnet18", model_weights="DEFAULT")
    assert source_of(settings) == (f"torchvision resnet18 {weights.name}", None)  # not downloaded
    checkpoint = tmp_path / "checkpoints" / Path(weights.url).name
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    assert source_of(settings) == (f"torchvision resnet18 {weights.name}", digest)
