"""service.loaders: formats detected from contents; round trips match the eager model; clear load errors."""

from __future__ import annotations

import pickle

import pytest
import torch

from service.errors import ModelLoadError
from service.loaders import (
    EXPORT,
    STATE_DICT,
    TORCHSCRIPT,
    detect_format,
    load_file,
    load_torchvision,
    read_labels,
)
from tests.service.conftest import SMALL_ARCH


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(3, 3, 224, 224)


@pytest.mark.parametrize(("fmt", "expected"), [("torchscript", TORCHSCRIPT), ("export", EXPORT),
                                               ("state_dict", STATE_DICT)])
def test_round_trip_matches_the_eager_model(model_files, eager_model, batch, fmt, expected):
    path = model_files(fmt)  # named *.bin: detection must not rely on the extension
    assert detect_format(path) == expected
    loaded = load_file(path, SMALL_ARCH)
    assert loaded.source_format == expected
    with torch.inference_mode():
        reference = eager_model(batch)
        got = loaded.module(batch)
    assert got.shape == (3, 1000)
    torch.testing.assert_close(got, reference, rtol=1e-4, atol=1e-4)
    assert torch.equal(got.argmax(1), reference.argmax(1))


def test_legacy_pickle_state_dict(tmp_path, eager_model, batch):
    path = tmp_path / "legacy.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in eager_model.state_dict().items()}}, path,
               _use_new_zipfile_serialization=False)
    assert detect_format(path) == STATE_DICT
    loaded = load_file(path, SMALL_ARCH)  # checkpoint layout + DataParallel prefix unwrapped
    with torch.inference_mode():
        torch.testing.assert_close(loaded.module(batch), eager_model(batch), rtol=1e-4, atol=1e-4)


def test_quantized_torchscript_loads_and_runs(model_dir):
    from tools.make_model import build_model, save_model

    model = build_model("mobilenet_v2", quantized=True, num_classes=10)
    path = save_model(model, model_dir / "q.pt", "quantized")
    loaded = load_file(path, "ignored")
    assert loaded.source_format == TORCHSCRIPT
    with torch.inference_mode():
        out = loaded.module(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match=r"MODEL_PATH=.*nope\.pt: no such file"):
        load_file(tmp_path / "nope.pt", SMALL_ARCH)


def test_unreadable_path_is_a_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="cannot read it"):
        load_file(tmp_path, SMALL_ARCH)


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"PK\x03\x04 broken zip"])
def test_garbage_file(tmp_path, content):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match="MODEL_PATH="):
        load_file(path, SMALL_ARCH)


def test_truncated_torchscript(tmp_path, model_files):
    path = tmp_path / "cut.pt"
    path.write_bytes(model_files("torchscript").read_bytes()[:50_000])
    with pytest.raises(ModelLoadError, match="MODEL_PATH="):
        load_file(path, SMALL_ARCH)


def test_pickled_module_is_refused_without_running_code(tmp_path, eager_model):
    path = tmp_path / "whole.pt"
    torch.save(eager_model, path, pickle_module=pickle)
    with pytest.raises(ModelLoadError, match="not a plain state_dict"):
        load_file(path, SMALL_ARCH)


def test_state_dict_of_another_architecture(model_files):
    with pytest.raises(ModelLoadError, match="does not fit MODEL_ARCH=resnet18"):
        load_file(model_files("state_dict"), "resnet18")


def test_state_dict_with_unknown_architecture(model_files):
    with pytest.raises(ModelLoadError, match="MODEL_ARCH=no_such_net"):
        load_file(model_files("state_dict"), "no_such_net")


def test_torchvision_offline_says_how_to_supply_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty cache: a download is attempted and fails here
    monkeypatch.setattr("torch.hub._hub_dir", None)

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr("torch.hub.download_url_to_file", offline)
    with pytest.raises(ModelLoadError) as info:
        load_torchvision(SMALL_ARCH, "DEFAULT")
    message = str(info.value)
    assert "Set MODEL_PATH" in message
    assert str(tmp_path) in message
    assert "\n" not in message


def test_unknown_weights_name():
    with pytest.raises(ModelLoadError, match=r"MODEL_WEIGHTS=NOPE.*IMAGENET1K_V1"):
        load_torchvision(SMALL_ARCH, "NOPE")


def test_labels_file(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("cat\ndog\n\n")
    assert read_labels(path) == ["cat", "dog"]
    with pytest.raises(ModelLoadError, match=r"MODEL_LABELS=.*no such file"):
        read_labels(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ModelLoadError, match="no labels"):
        read_labels(tmp_path / "empty.txt")
