"""Speed settings of ``service.model.ImageClassifier``: CHANNELS_LAST, MODEL_DTYPE, TORCHSCRIPT_FREEZE.

They change how the model runs, never what it answers: the same top-1 class on the real photos and
(for channels_last) the same probabilities as the plain float32 eager model. Their speed is measured
by the benchmark (``python -m bench``), not here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from service.errors import ModelLoadError
from service.loaders import LoadedModel
from service.model import ImageClassifier
from service.settings import Settings


def _classifier(**kwargs) -> ImageClassifier:
    classifier = ImageClassifier(Settings(**kwargs))
    classifier.load()
    return classifier


def _preprocessing_only(resize: int = 256, crop: int = 224) -> ImageClassifier:
    """A classifier whose preprocessing is configured (ImageNet mean / std), with no model loaded."""
    classifier = ImageClassifier(Settings(resize_size=resize, crop_size=crop))
    classifier._configure_preprocessing(LoadedModel(torch.nn.Identity(), "state_dict"))
    return classifier


def _torchvision_reference(resize: int = 256, crop: int = 224) -> v2.Compose:
    """torchvision's own uint8-tensor pipeline: the numbers ``preprocess`` must reproduce."""
    return v2.Compose([v2.PILToTensor(), v2.Resize(resize, antialias=True), v2.CenterCrop(crop),
                       v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


@pytest.fixture(scope="module")
def photo_batch(photos) -> torch.Tensor:
    """The real photos, preprocessed by the service: ``[P, 3, 224, 224]`` float32."""
    classifier = _preprocessing_only()
    return torch.stack([classifier.preprocess(Image.fromarray(p)) for p in photos.values()])


def test_preprocessing_matches_torchvision_tensor_pipeline(photos, photo_batch):
    reference = _torchvision_reference()
    expected = torch.stack([reference(Image.fromarray(p)) for p in photos.values()])
    # Pillow's and torchvision's antialiased resize agree to within one 8-bit level, which after
    # normalisation is 1 / (255 * std) <= 0.0176; they differ on ~0.1 % of the pixels.
    difference = (photo_batch - expected).abs()
    assert difference.max() <= 1 / (255 * 0.224) + 1e-5
    assert (difference > 1e-5).float().mean() < 0.01


def test_uint8_pixels_batch_gives_the_same_probabilities_as_float_preprocessing(model_files, photos,
                                                                               photo_batch):
    # The server sends each image's uint8 pixels (decode thread) and normalises the whole batch in
    # the model thread; preprocess() does both for one image. Same numbers, to the last bit.
    from service.batching import stack_images

    classifier = _classifier(model_path=model_files("torchscript"))
    pixels = [classifier.pixels(Image.fromarray(p)) for p in photos.values()]
    assert all(t.dtype == torch.uint8 and t.shape == (3, 224, 224) for t in pixels)
    batch = stack_images(pixels)
    assert torch.equal(classifier.normalize(batch), photo_batch)
    torch.testing.assert_close(classifier.predict(batch), classifier.predict(photo_batch), rtol=0, atol=0)


def test_channels_last_is_the_default_and_changes_no_answer(model_files, eager_model, photo_batch):
    fast = _classifier(model_path=model_files("torchscript"))
    plain = _classifier(model_path=model_files("torchscript"), channels_last=False, torchscript_freeze=False)
    unfrozen = _classifier(model_path=model_files("torchscript"), torchscript_freeze=False)
    assert fast.memory_format is torch.channels_last and plain.memory_format is torch.contiguous_format
    conv = next(p for p in unfrozen.module.parameters() if p.ndim == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = torch.softmax(eager_model(photo_batch), 1)
    torch.testing.assert_close(fast.predict(photo_batch), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(plain.predict(photo_batch), expected, rtol=1e-4, atol=1e-5)


def test_bfloat16_top1_is_float32s_or_a_near_tie_of_it(model_files, photo_batch):
    """bfloat16 keeps 8 bits of mantissa: it may swap two classes that float32 scores within a few
    percent of each other (this seeded model's top-2 on the coffee photo: 0.0186 vs 0.0168), never
    more. The benchmark reports the agreement on its photos (``python -m bench --set MODEL_DTYPE=...``)."""
    float32 = _classifier(model_path=model_files("torchscript"))
    bfloat16 = _classifier(model_path=model_files("torchscript"), model_dtype="bfloat16")
    unfrozen = _classifier(model_path=model_files("torchscript"), model_dtype="bfloat16",
                           torchscript_freeze=False)
    assert next(unfrozen.module.parameters()).dtype == torch.bfloat16
    reference, reduced = float32.predict(photo_batch), bfloat16.predict(photo_batch)
    assert reduced.dtype == torch.float32  # probabilities stay float32 for the JSON answer
    torch.testing.assert_close(reduced.sum(1), torch.ones(len(photo_batch)))
    top_f32, top_bf16 = reference.argmax(1), reduced.argmax(1)
    assert (top_f32 == top_bf16).float().mean() >= 0.5
    rows = torch.arange(len(photo_batch))
    np.testing.assert_array_less(0.85 * reference[rows, top_f32], reference[rows, top_bf16] + 1e-12)


def test_torchscript_is_frozen_by_default_with_batch_norm_folded(model_files, eager_model, photo_batch):
    frozen = _classifier(model_path=model_files("torchscript"))
    unfrozen = _classifier(model_path=model_files("torchscript"), torchscript_freeze=False)
    assert list(frozen.module.parameters()) == []  # weights became graph constants
    assert "aten::batch_norm" in str(unfrozen.module.inlined_graph)
    assert "aten::batch_norm" not in str(frozen.module.graph)
    with torch.inference_mode():
        expected = torch.softmax(eager_model(photo_batch), 1)
    torch.testing.assert_close(frozen.predict(photo_batch), expected, rtol=1e-4, atol=1e-5)


def test_unknown_dtype_is_a_settings_error():
    with pytest.raises(ValueError, match="model_dtype"):
        Settings(model_dtype="float16")


def test_a_model_that_cannot_take_the_dtype_fails_load_with_the_setting_named(model_files, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise RuntimeError("int8 packed weights cannot become bfloat16")

    classifier = ImageClassifier(Settings(model_path=model_files("torchscript"), model_dtype="bfloat16"))
    monkeypatch.setattr(torch.jit.ScriptModule, "to", refuse, raising=False)
    with pytest.raises(ModelLoadError, match="MODEL_DTYPE=bfloat16"):
        classifier.load()


@pytest.mark.parametrize(("size", "resize", "crop"), [((600, 100), 256, 224), ((97, 301), 160, 128),
                                                       ((300, 200), 100, 128)])
def test_box_resize_matches_resize_then_crop_for_odd_shapes(photos, size, resize, crop):
    """Very wide / tall photos and a crop larger than the resized image (padded, torchvision path)."""
    image = Image.fromarray(photos["astronaut"]).resize(size)
    classifier = _preprocessing_only(resize, crop)
    ours, expected = classifier.preprocess(image), _torchvision_reference(resize, crop)(image)
    assert ours.shape == expected.shape == (3, crop, crop)
    assert (ours - expected).abs().max() <= 1 / (255 * 0.224) + 1e-5
