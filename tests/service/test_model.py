"""service.model.ImageClassifier: load, labels check, preprocessing, predict, postprocess."""

from __future__ import annotations

import itertools

import pytest
import torch
import torchvision
from PIL import Image

from service.errors import ModelLoadError
from service.loaders import LoadedModel
from service.model import ImageClassifier
from service.settings import Settings
from tests.service.conftest import SMALL_ARCH


def _classifier(**kwargs) -> ImageClassifier:
    classifier = ImageClassifier(Settings(**kwargs))
    classifier.load()
    return classifier


def test_load_sets_ready_labels_and_platform(model_files, labels_file):
    classifier = ImageClassifier(Settings(model_path=model_files("torchscript"), model_labels=labels_file))
    assert not classifier.ready
    classifier.load()
    assert classifier.ready
    assert classifier.num_classes == 1000
    assert classifier.labels[:2] == ["class_000", "class_001"]
    assert classifier.platform == "pytorch_libtorch"
    assert classifier.name == "small-torchscript"  # the file's stem when MODEL_NAME is unset


def test_label_count_mismatch_is_a_clear_error(model_files, tmp_path):
    labels = tmp_path / "ten.txt"
    labels.write_text("\n".join(f"l{i}" for i in range(10)))
    with pytest.raises(ModelLoadError, match=r"has 10 labels but the model outputs 1000 classes"):
        _classifier(model_path=model_files("export"), model_labels=labels)


def test_default_labels_are_imagenet_categories_for_1000_classes(model_files):
    classifier = _classifier(model_path=model_files("export"))
    assert classifier.labels[281] == "tabby"
    assert classifier.platform == "pytorch_export"


def test_default_labels_are_indices_for_other_widths(tmp_path):
    from tools.make_model import build_model, save_model

    path = save_model(build_model(SMALL_ARCH, num_classes=3), tmp_path / "three.pt", "torchscript")
    assert _classifier(model_path=path).labels == ["0", "1", "2"]


def test_preprocess_and_predict(model_files, labels_file, eager_model, photos):
    classifier = _classifier(model_path=model_files("torchscript"), model_labels=labels_file)
    tensor = classifier.preprocessor(Image.fromarray(photos["chelsea"]))
    assert tensor.shape == (3, 224, 224) and tensor.dtype == torch.float32
    assert -3 < tensor.mean() < 3  # normalised, not 0..255
    probabilities = classifier.predict(torch.stack([tensor, tensor]))
    assert probabilities.shape == (2, 1000)
    torch.testing.assert_close(probabilities.sum(1), torch.ones(2))
    with torch.inference_mode():
        expected = torch.softmax(eager_model(tensor[None]), 1)[0]
    torch.testing.assert_close(probabilities[0], expected, rtol=1e-4, atol=1e-5)
    top = classifier.postprocess(probabilities, 5)[0]
    assert [p.index for p in top] == expected.topk(5).indices.tolist()
    assert all(a.score >= b.score for a, b in itertools.pairwise(top))
    assert top[0].label == labels_file.read_text().splitlines()[top[0].index]


def test_torchvision_weights_bring_their_transforms_and_categories(monkeypatch):
    weights = torchvision.models.MobileNet_V3_Small_Weights.DEFAULT
    model = torchvision.models.mobilenet_v3_small(weights=None).eval()
    monkeypatch.setattr("service.model.load_torchvision",
                        lambda arch, name: LoadedModel(model, "torchvision", weights))
    classifier = _classifier(model_arch=SMALL_ARCH)
    preset = weights.transforms()
    chosen = classifier.preprocessor
    assert (chosen.resize_size, chosen.crop_size) == (preset.resize_size[0], preset.crop_size[0])
    assert classifier.labels == weights.meta["categories"]
    assert classifier.name == SMALL_ARCH
    explicit = _classifier(model_arch=SMALL_ARCH, resize_size=300)  # a setting wins over the preset
    assert explicit.preprocessor.resize_size == 300


def test_model_fixed_to_batch_size_one_disables_batching(tmp_path, eager_model):
    program = torch.export.export(eager_model, (torch.randn(1, 3, 224, 224),))
    path = tmp_path / "static.pt2"
    torch.export.save(program, str(path))
    classifier = _classifier(model_path=path, max_batch_size=8)
    assert classifier.ready
    assert classifier.batch_limit == 1


def test_wrong_input_size_is_a_clear_error(model_files, tmp_path, eager_model):
    program = torch.export.export(eager_model, (torch.randn(1, 3, 224, 224),))
    path = tmp_path / "fixed224.pt2"
    torch.export.save(program, str(path))
    with pytest.raises(ModelLoadError, match="CROP_SIZE"):
        _classifier(model_path=path, crop_size=200)
