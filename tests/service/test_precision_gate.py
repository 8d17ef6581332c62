"""The accuracy gate on a model whose answers depend on the photo: a small CNN trained here in seconds on
scikit-learn's handwritten digits (8x8, shown to the service as 224x224 PNGs), served through OpenVINO.

- Trained as it is, int8 keeps float32's answers: the gate passes and int8 serves.
- The same network with one activation channel scaled by 1e4 (and the next layer's weights for it by
  1e-4) computes the same function in float32, but per-tensor int8 activation ranges are then set by
  that channel and the other channels round to zero: the "outlier channel" failure of 8-bit
  quantization (Dettmers et al., LLM.int8(), 2022; Xiao et al., SmoothQuant, 2023). The gate must
  reject int8 and fall back to bfloat16 (or float32 where the CPU has no bfloat16).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from service import hostcpu
from service.model import ImageClassifier
from service.precision_gate import PrecisionRejected, agreement
from service.settings import IMAGENET_MEAN, IMAGENET_STD, Settings

pytest.importorskip("openvino")
pytest.importorskip("nncf")

SIDE, BLOCK = 224, 28  # an 8x8 digit drawn as 28x28-pixel squares
TRAIN = 1400  # digits[:TRAIN] train the network; the rest are the photos it is served


def _normalise(pixels: np.ndarray) -> torch.Tensor:
    """uint8 ``[N, 8, 8]`` -> the service's normalised ``[N, 3, 32, 32]`` after the network's 7x7 pooling."""
    x = torch.from_numpy(pixels).float().div(255).repeat_interleave(4, 1).repeat_interleave(4, 2)
    x = x[:, None].expand(-1, 3, -1, -1)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


class DigitNet(torch.nn.Module):
    """``[N, 3, 224, 224]`` -> 10 logits: 7x7 average pooling (back to 4x the digit's 8x8), two convs."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = torch.nn.AvgPool2d(7)
        self.conv1, self.conv2 = torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.Conv2d(16, 32, 3, padding=1)
        self.head = torch.nn.Linear(32 * 8 * 8, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # [N, 3, 32, 32] -> logits
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.head(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.pool(x))


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return (data.images * (255 / 16)).round().astype(np.uint8), data.target


@pytest.fixture(scope="module")
def trained(digits) -> DigitNet:
    """DigitNet trained for 4 epochs (about 2 s on one thread: small batches are slower on two; seeded)."""
    images, labels = digits
    torch.manual_seed(0)
    net = DigitNet()
    x, y = _normalise(images[:TRAIN]), torch.from_numpy(labels[:TRAIN])
    optimiser = torch.optim.Adam(net.parameters(), lr=5e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(4):
            for index in torch.randperm(TRAIN).split(64):
                optimiser.zero_grad()
                torch.nn.functional.cross_entropy(net.features(x[index]), y[index]).backward()
                optimiser.step()
    finally:
        torch.set_num_threads(threads)
    return net.eval()


def _with_outlier_channel(net: DigitNet) -> DigitNet:
    """The same float32 function, with conv1's channel 0 output 1e4 times larger (conv2 compensates)."""
    twin = DigitNet()
    twin.load_state_dict(net.state_dict())
    with torch.no_grad():
        twin.conv1.weight[0] *= 1e4
        twin.conv1.bias[0] *= 1e4
        twin.conv2.weight[:, 0] /= 1e4
    return twin.eval()


def _export(net: torch.nn.Module, path: Path) -> Path:
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(net, (torch.zeros(2, 3, SIDE, SIDE),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


@pytest.fixture(scope="module")
def photo_dir(digits, tmp_path_factory) -> Path:
    """The digits the network never saw, as 224x224 RGB PNGs: the calibration and held-out images."""
    images, _ = digits
    folder = tmp_path_factory.mktemp("digits")
    for i, pixels in enumerate(images[TRAIN:TRAIN + 160]):
        big = np.kron(pixels, np.ones((BLOCK, BLOCK), np.uint8))
        Image.fromarray(big).convert("RGB").save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def files(trained, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("digit-models")
    (folder / "labels.txt").write_text("".join(f"{d}\n" for d in range(10)))
    return {"plain": _export(trained, folder / "digits.pt2"),
            "outlier": _export(_with_outlier_channel(trained), folder / "outlier.pt2"),
            "labels": folder / "labels.txt"}


def _settings(model: Path, labels: Path, photos: Path, **overrides) -> Settings:
    values = dict(model_path=model, model_labels=labels, model_runtime="openvino", model_dtype="auto",
                  calibration_dir=photos, calibration_images=64, resize_size=SIDE, crop_size=SIDE,
                  torch_threads=2, max_batch_size=8)
    return Settings(**{**values, **overrides})


def test_the_digit_model_answers_by_the_photo(trained, digits) -> None:
    """What makes the gate's test mean something: the network is right on digits it never saw."""
    images, labels = digits
    with torch.no_grad():
        predicted = trained.features(_normalise(images[TRAIN:])).argmax(1).numpy()
    assert (predicted == labels[TRAIN:]).mean() >= 0.9
    assert len(set(predicted.tolist())) == 10


def test_int8_passes_the_gate_and_serves(files, photo_dir, caplog) -> None:
    caplog.set_level(logging.INFO, logger="service")
    classifier = ImageClassifier(_settings(files["plain"], files["labels"], photo_dir))
    classifier.load()
    cpu = hostcpu.detect()
    expected = "int8" if cpu.fast_int8 else ("bfloat16" if cpu.fast_bfloat16 else "float32")
    assert (classifier.runtime, classifier.precision) == ("openvino", expected)
    first = classifier.gate_report["candidates"][0]
    assert first["passed"] and first["distinct_float32_classes"] >= 8
    assert first["overall"] >= 0.95 and first["confident"] >= 0.99
    assert f"accuracy gate: {first['precision']} agrees with float32" in caplog.text


def test_outlier_channel_fails_int8_and_falls_back(files, photo_dir, caplog) -> None:
    cpu = hostcpu.detect()
    if not cpu.fast_int8:
        pytest.skip("int8 is not a candidate on this CPU (no VNNI / AMX-INT8)")
    caplog.set_level(logging.INFO, logger="service")
    classifier = ImageClassifier(_settings(files["outlier"], files["labels"], photo_dir))
    classifier.load()
    int8 = classifier.gate_report["candidates"][0]
    assert int8["precision"] == "int8" and not int8["passed"] and int8["overall"] < 0.95
    assert classifier.precision == ("bfloat16" if cpu.fast_bfloat16 else "float32")
    assert "-> fails" in caplog.text and classifier.gate_report["serving"] == classifier.precision


def test_explicit_int8_that_fails_stops_with_one_line_and_status_9(files, photo_dir) -> None:
    classifier = ImageClassifier(_settings(files["outlier"], files["labels"], photo_dir, model_dtype="int8"))
    with pytest.raises(PrecisionRejected) as caught:
        classifier.load()
    message = str(caught.value)
    assert caught.value.exit_status == 9 and "\n" not in message
    assert message.startswith("MODEL_DTYPE=int8 fails the accuracy gate: int8 agrees with float32 on ")


def test_agreement_counts_near_ties_only_overall() -> None:
    reference = torch.tensor([[0.9, 0.1, 0.0], [0.52, 0.48, 0.0], [0.2, 0.7, 0.1]])
    candidate = torch.tensor([[0.8, 0.2, 0.0], [0.47, 0.53, 0.0], [0.1, 0.8, 0.1]])  # row 1 flips
    result = agreement("int8", reference, candidate, margin=0.1)
    assert (result.agree, result.images, result.confident_agree, result.confident_images) == (2, 3, 2, 2)
    assert result.confident == 1.0 and result.overall == pytest.approx(2 / 3)


def test_compiled_archive_serves_without_calibration(files, photo_dir, tmp_path, monkeypatch) -> None:
    """tools.compile_model writes what the gate chose; MODEL_PATH=<archive> loads it as it is (no
    calibration images read, no quantization) and answers as the gate-selected model did."""
    from service import calibration
    from tools.compile_model import compile_file, sha256_file

    archive = tmp_path / "digits.openvino.zip"
    report = compile_file(files["plain"], archive, files["labels"], calibration=photo_dir,
                          resize_size=SIDE, crop_size=SIDE, calibration_images=64, torch_threads=2)
    assert report["archive_sha256"] == sha256_file(archive)
    assert report["source_sha256"] == sha256_file(files["plain"])
    assert report["preprocessing"]["crop_size"] == SIDE and report["serving"] in ("int8", "bfloat16")

    def no_calibration(*args, **kwargs):
        raise AssertionError("an archive must not be calibrated again")

    monkeypatch.setattr(calibration, "load_files", no_calibration)  # every source ends there
    served = ImageClassifier(Settings(model_path=archive, model_labels=files["labels"], torch_threads=2,
                                      model_runtime="auto", model_dtype="auto"))
    served.load()
    assert (served.source_format, served.runtime, served.precision) == ("openvino", "openvino",
                                                                        report["serving"])
    assert served.crop_size == SIDE  # the preprocessing it was compiled with
    monkeypatch.undo()
    fresh = ImageClassifier(_settings(files["plain"], files["labels"], photo_dir))
    fresh.load()
    digits = calibration.load(photo_dir, fresh.preprocessor, 16).held_out
    assert served.predict(digits).argmax(1).tolist() == fresh.predict(digits).argmax(1).tolist()


def test_documented_gate_defaults_are_the_settings_defaults() -> None:
    """docs/configuration.md and docs/performance.md state the gate's defaults; they come from here."""
    from service.precision_gate import GateThresholds

    fields = Settings.model_fields
    defaults = (fields["gate_margin"].default, fields["gate_min_confident"].default,
                fields["gate_min_overall"].default)
    assert defaults == (GateThresholds.margin, GateThresholds.min_confident, GateThresholds.min_overall)
    root = Path(__file__).resolve().parents[2]
    keys = "`GATE_MARGIN` / `GATE_MIN_CONFIDENT` / `GATE_MIN_OVERALL`"
    row = f"| {keys} | `{defaults[0]}` / `{defaults[1]}` / `{defaults[2]}` |"
    assert row in (root / "docs" / "configuration.md").read_text()
    performance = " ".join((root / "docs" / "performance.md").read_text().split())
    assert (f"least {defaults[1] * 100:g} % where float32's top-1 leads by {defaults[0]} or more, and "
            f"{defaults[2] * 100:g} % overall") in performance
