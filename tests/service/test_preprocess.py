"""service.preprocess.Preprocessor: uint8 pixels in the decode threads, a normalised batch in the model
thread; the same numbers as torchvision's reference pipeline."""

from __future__ import annotations

import pytest
import torch
import torchvision
from PIL import Image
from torchvision.transforms import v2

from service.preprocess import Preprocessor, stack_images
from service.settings import Settings


def _torchvision_reference(resize: int = 256, crop: int = 224) -> v2.Compose:
    """torchvision's own uint8-tensor pipeline: the numbers ``Preprocessor`` must reproduce."""
    return v2.Compose([v2.PILToTensor(), v2.Resize(resize, antialias=True), v2.CenterCrop(crop),
                       v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


#: Pillow's and torchvision's antialiased resize agree to within one 8-bit level, which after
#: normalisation is 1 / (255 * std) <= 0.0176 (std >= 0.224).
ONE_LEVEL = 1 / (255 * 0.224) + 1e-5


def test_preprocessing_matches_torchvision_tensor_pipeline(photos, photo_batch):
    reference = _torchvision_reference()
    expected = torch.stack([reference(Image.fromarray(p)) for p in photos.values()])
    difference = (photo_batch - expected).abs()
    assert difference.max() <= ONE_LEVEL
    assert (difference > 1e-5).float().mean() < 0.01  # they differ on ~0.1 % of the pixels


def test_pixels_are_uint8_and_collate_normalises_them_to_the_single_image_numbers(photos, photo_batch):
    # The server makes each image's uint8 pixels in a decode thread and normalises the whole batch in
    # the model thread; calling the preprocessor on one image does both. Same numbers, to the last bit.
    preprocessor = Preprocessor.from_settings(Settings())
    pixels = [preprocessor.pixels(Image.fromarray(p)) for p in photos.values()]
    assert all(t.dtype == torch.uint8 and t.shape == (3, 224, 224) for t in pixels)
    batch = preprocessor.collate(pixels)
    assert batch.dtype == torch.float32 and batch.shape == (len(photos), 3, 224, 224)
    assert batch.is_contiguous(memory_format=torch.channels_last)  # no transpose on the way
    assert torch.equal(batch, photo_batch)


def test_collate_of_normalised_tensors_only_stacks_them():
    preprocessor = Preprocessor.from_settings(Settings(crop_size=8))
    rows = [torch.randn(3, 8, 8) for _ in range(3)]
    assert torch.equal(preprocessor.collate(rows, normalized=True), torch.stack(rows))


@pytest.mark.parametrize(("dtype", "normalized"), [(torch.uint8, True), (torch.float32, False)])
def test_collate_refuses_tensors_that_contradict_what_the_caller_says(dtype, normalized):
    preprocessor = Preprocessor.from_settings(Settings(crop_size=8))
    with pytest.raises(TypeError, match=f"normalized={normalized}"):
        preprocessor.collate([torch.zeros(3, 8, 8, dtype=dtype)], normalized=normalized)


def test_custom_settings_resize_crop_and_normalise():
    preprocessor = Preprocessor.from_settings(Settings(resize_size=160, crop_size=128,
                                                       norm_mean="0.5,0.5,0.5", norm_std="[0.5, 0.5, 0.5]"))
    tensor = preprocessor(Image.new("RGB", (300, 200), (255, 255, 255)))
    assert tensor.shape == (3, 128, 128)
    torch.testing.assert_close(tensor, torch.ones(3, 128, 128))  # (1 - 0.5) / 0.5


def test_torchvision_weights_bring_their_transforms_unless_a_setting_is_given():
    weights = torchvision.models.Swin_T_Weights.DEFAULT  # resize 232, bicubic: not the defaults
    preset = weights.transforms()
    chosen = Preprocessor.from_settings(Settings(), weights)
    assert (chosen.resize_size, chosen.crop_size) == (preset.resize_size[0], preset.crop_size[0])
    assert chosen.interpolation == preset.interpolation
    assert Preprocessor.from_settings(Settings(resize_size=300), weights).resize_size == 300


@pytest.mark.parametrize(("size", "resize", "crop"), [((600, 100), 256, 224), ((97, 301), 160, 128),
                                                       ((300, 200), 100, 128)])
def test_box_resize_matches_resize_then_crop_for_odd_shapes(photos, size, resize, crop):
    """Very wide / tall photos and a crop larger than the resized image (padded, torchvision path)."""
    image = Image.fromarray(photos["astronaut"]).resize(size)
    ours = Preprocessor.from_settings(Settings(resize_size=resize, crop_size=crop))(image)
    expected = _torchvision_reference(resize, crop)(image)
    assert ours.shape == expected.shape == (3, crop, crop)
    assert (ours - expected).abs().max() <= ONE_LEVEL


def test_stack_images_keeps_channels_last_pixels_without_a_transpose():
    hwc = [torch.randint(0, 256, (5, 6, 3), dtype=torch.uint8) for _ in range(3)]
    views = [t.permute(2, 0, 1) for t in hwc]  # [3, 5, 6] seen through the HWC array, as Pillow gives
    batch = stack_images(views)
    assert batch.shape == (3, 3, 5, 6)
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(batch, torch.stack(views))
    planar = [torch.rand(3, 5, 6) for _ in range(2)]  # V2 tensors: plain NCHW, stacked as they are
    assert torch.equal(stack_images(planar), torch.stack(planar))
