"""Speed settings of ``service.model.ImageClassifier``: CHANNELS_LAST, MODEL_DTYPE, TORCHSCRIPT_FREEZE.

They change how the model runs, never what it answers: the same top-1 class on the real photos and
(for channels_last) the same probabilities as the plain float32 eager model. Their speed is measured
by the benchmark (``python -m bench``), not here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from service.errors import ModelLoadError
from service.model import ImageClassifier
from service.settings import Settings


def _classifier(**kwargs) -> ImageClassifier:
    classifier = ImageClassifier(Settings(**kwargs))
    classifier.load()
    return classifier


@pytest.fixture(scope="module")
def default(model_files) -> ImageClassifier:
    """The small TorchScript model with the default speed settings (channels_last, frozen, float32)."""
    return _classifier(model_path=model_files("torchscript"))


@pytest.fixture(scope="module")
def unfrozen(model_files) -> ImageClassifier:
    return _classifier(model_path=model_files("torchscript"), torchscript_freeze=False)


def test_channels_last_is_the_default_and_changes_no_answer(model_files, eager_model, photo_batch, default,
                                                           unfrozen):
    fast = default
    plain = _classifier(model_path=model_files("torchscript"), channels_last=False, torchscript_freeze=False)
    assert fast.memory_format is torch.channels_last and plain.memory_format is torch.contiguous_format
    conv = next(p for p in unfrozen.module.parameters() if p.ndim == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = torch.softmax(eager_model(photo_batch), 1)
    torch.testing.assert_close(fast.predict(photo_batch), expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(plain.predict(photo_batch), expected, rtol=1e-4, atol=1e-5)


def test_bfloat16_top1_is_float32s_or_a_near_tie_of_it(model_files, photo_batch, default):
    """bfloat16 keeps 8 bits of mantissa: it may swap two classes that float32 scores within a few
    percent of each other (this seeded model's top-2 on the coffee photo: 0.0186 vs 0.0168), never
    more. The benchmark reports the agreement on its photos (``python -m bench --set MODEL_DTYPE=...``)."""
    float32 = default
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


def test_torchscript_is_frozen_by_default_with_batch_norm_folded(eager_model, photo_batch, default,
                                                                unfrozen):
    frozen = default
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
