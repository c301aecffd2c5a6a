"""albumentations 2.0.8's generic checks for image-only transforms, applied to handaug's adapter.

albumentations runs these on every built-in ``ImageOnlyTransform`` (parametrised over
``get_image_only_transforms()`` / ``get_2d_transforms()`` / ``get_transforms()`` in its
``tests/``); they are rewritten here with ``SynthToReal`` in a built-in's place, on the same kinds
of inputs (random 100×100 and 101×99 RGB images, uint8 and float32). The checks albumentations
skips for its RGB-only transforms (grayscale and 5-channel images) are replaced by one that the
adapter refuses them with a clear error. Which upstream test each function covers is in its name
and docstring.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings

import albumentations as A
import numpy as np
import pytest
import torch
from albumentations.core.type_definitions import Targets

from handaug import save_generator
from handaug.integrations.albumentations import SynthToReal
from handaug.registry import create_generator

_rng = np.random.default_rng(137)
SQUARE_UINT8_IMAGE = _rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
RECTANGULAR_UINT8_IMAGE = _rng.integers(0, 256, (101, 99, 3), dtype=np.uint8)
SQUARE_FLOAT_IMAGE = _rng.random((100, 100, 3), dtype=np.float32)
RECTANGULAR_FLOAT_IMAGE = _rng.random((101, 99, 3), dtype=np.float32)
IMAGES = [SQUARE_UINT8_IMAGE, RECTANGULAR_UINT8_IMAGE, SQUARE_FLOAT_IMAGE, RECTANGULAR_FLOAT_IMAGE]
IMAGE_IDS = ["square uint8", "rectangular uint8", "square float32", "rectangular float32"]
SQUARE_MULTI_UINT8_IMAGE = _rng.integers(0, 256, (100, 100, 5), dtype=np.uint8)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    return save_generator(create_generator("resnet", n_blocks=1, ngf=8), tmp_path_factory.mktemp("ageneric") / "ckpt")


def aug(ckpt, **params):
    return SynthToReal(ckpt, **{"p": 1, **params})


# ----------------------------------------------------------------------------- test_augmentations.py
def test_image_only_augmentations_mask_persists(ckpt):
    """A 3-channel ``mask`` (a segmentation map, not a hand) under ``Compose(strict=True)``: kept as it is."""
    image, mask = SQUARE_UINT8_IMAGE, SQUARE_UINT8_IMAGE.copy()
    data = A.Compose([aug(ckpt)], strict=True)(image=image, mask=mask)
    assert data["image"].dtype == image.dtype and data["mask"].dtype == mask.dtype
    assert np.array_equal(data["mask"], mask)


def test_image_only_augmentations(ckpt):
    image = SQUARE_FLOAT_IMAGE
    mask = image[:, :, 0].copy().astype(np.uint8)
    data = aug(ckpt)(image=image, mask=mask)
    assert data["image"].dtype == image.dtype and data["mask"].dtype == mask.dtype
    assert np.array_equal(data["mask"], mask)


def test_augmentations_wont_change_input(ckpt):
    image = SQUARE_UINT8_IMAGE.copy()
    mask = image[:, :, 0].copy()
    image_copy, mask_copy = image.copy(), mask.copy()
    aug(ckpt)(image=image, mask=mask)
    aug(ckpt, hand_mask_key="mask")(image=image, mask=mask)  # also when the mask is read
    np.testing.assert_array_equal(image, image_copy)
    np.testing.assert_array_equal(mask, mask_copy)


def test_augmentations_wont_change_float_input(ckpt):
    image = SQUARE_FLOAT_IMAGE.copy()
    aug(ckpt)(image=image)
    np.testing.assert_array_equal(image, SQUARE_FLOAT_IMAGE)


def test_augmentations_wont_change_shape_rgb(ckpt):
    image_3ch = SQUARE_UINT8_IMAGE
    mask_3ch = np.zeros_like(image_3ch)
    result = aug(ckpt)(image=image_3ch, mask=mask_3ch)
    assert result["image"].shape == image_3ch.shape and result["mask"].shape == mask_3ch.shape


@pytest.mark.parametrize(
    "image", [np.zeros((100, 100), np.uint8), np.zeros((100, 100, 1), np.uint8), SQUARE_MULTI_UINT8_IMAGE],
    ids=["grayscale", "grayscale with channel", "5 channels"],
)
def test_grayscale_and_multichannel_images_are_refused_clearly(ckpt, image):
    """albumentations leaves its RGB-only transforms out of the grayscale and multichannel checks
    (test_augmentations_wont_change_shape_grayscale, test_multichannel_image_augmentations*)."""
    with pytest.raises(ValueError, match=r"image must be RGB with shape \(\.\.\., H, W, 3\)"):
        aug(ckpt)(image=image)


# ----------------------------------------------------------------------------- test_core.py
def test_contiguous_output_imageonly(ckpt):
    image = np.zeros([3, 100, 100], dtype=np.uint8).transpose(1, 2, 0)
    assert not image.flags["C_CONTIGUOUS"]
    assert aug(ckpt)(image=image)["image"].flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("as_array", [True, False])
def test_images_as_target(ckpt, as_array):
    image = np.random.default_rng(0).integers(0, 255, (101, 99, 3), dtype=np.uint8)
    data = {"images": np.stack([image] * 2) if as_array else [image] * 2}
    transformed = A.Compose([aug(ckpt)], p=1, strict=True, seed=137)(**data)
    np.testing.assert_allclose(transformed["images"][0], transformed["images"][1])
    if as_array:
        images = transformed["images"]
        assert isinstance(images, np.ndarray) and images.ndim == 4 and images.flags["C_CONTIGUOUS"]
        assert images.shape == (2, 101, 99, 3)
    else:
        assert isinstance(transformed["images"], list)


def test_non_contiguous_input_with_compose(ckpt):
    image = np.ones([3, 100, 100], dtype=np.uint8).transpose(1, 2, 0)
    mask = np.zeros([3, 100, 100], dtype=np.uint8).transpose(1, 2, 0)
    assert not image.flags["C_CONTIGUOUS"] and not mask.flags["C_CONTIGUOUS"]
    transformed = A.Compose([aug(ckpt)], strict=True, seed=137)(image=image, mask=mask)
    assert transformed["image"].flags["C_CONTIGUOUS"]  # (albumentations asks it of the mask for dual transforms only)
    assert np.array_equal(transformed["mask"], mask)


def test_transform_strict_mode_raises_error(ckpt):
    with pytest.raises(ValueError, match=r"Argument\(s\) 'invalid_param' are not valid for transform SynthToReal"):
        SynthToReal(ckpt, strict=True, invalid_param=123)


def test_transform_non_strict_mode_shows_warning(ckpt):
    with pytest.warns(UserWarning, match=r"Argument\(s\) 'invalid_param' are not valid for transform SynthToReal"):
        transform = SynthToReal(ckpt, invalid_param=123)
    assert transform.p == 1.0  # built with its defaults


def test_transform_valid_params_no_warning(ckpt):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        transform = SynthToReal(ckpt, p=0.7, crop_margin=0.3)
    assert transform.p == 0.7 and transform.crop_margin == 0.3


def test_transform_multiple_invalid_params(ckpt):
    with pytest.raises(ValueError, match=r"Argument\(s\) 'invalid1, invalid2' are not valid for transform SynthToReal"):
        SynthToReal(ckpt, strict=True, invalid1=123, invalid2=456)


def test_transform_strict_with_valid_params(ckpt):
    transform = SynthToReal(ckpt, strict=True, p=0.7, crop_margin=0.3)
    assert transform.p == 0.7 and transform.crop_margin == 0.3


@pytest.mark.parametrize("strict", [True, False])
def test_strict_validation_in_compose(ckpt, strict):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transforms = [SynthToReal(ckpt, p=0.5, invalid1=123), A.OneOf([SynthToReal(ckpt, p=0.7)], p=1.0)]
    if strict:
        with pytest.raises(ValueError, match="are not valid for transform"):
            A.Compose(transforms, strict=strict)
    else:
        A.Compose(transforms, strict=strict)


@pytest.mark.parametrize(
    ("params", "outcome"),
    [({"p": 0.5}, "valid"), ({"invalid_param": 123}, "warning"), ({"p": 1.5}, "value_error"),
     ({"p": -0.5}, "value_error"), ({"crop_margin": -1, "p": 1.5}, "value_error")],
)  # fmt: skip
def test_invalid_parameters(ckpt, params, outcome):
    """As albumentations' test_affine_invalid_parameters: unknown names warn, bad values always raise."""
    if outcome == "valid":
        assert not SynthToReal(ckpt, **params).invalid_args
    elif outcome == "warning":
        with pytest.warns(UserWarning):
            assert set(SynthToReal(ckpt, **params).invalid_args) == set(params)
    else:
        with pytest.raises(ValueError) as error:
            SynthToReal(ckpt, **params)
        for name in params:
            assert f"\n{name}\n" in str(error.value)


# ----------------------------------------------------------------------------- test_serialization.py
@pytest.mark.parametrize("image", IMAGES, ids=IMAGE_IDS)
def test_augmentations_serialization(ckpt, image):
    mask = image.copy()
    transform = SynthToReal(ckpt, p=0.5)
    transform.set_random_seed(137)  # the per-call decision draws from py_random, the pool from random_generator
    restored = A.from_dict(A.to_dict(transform))
    restored.set_random_seed(137)
    for _ in range(4):  # p=0.5: both branches of the per-call decision, in the same order
        a, b = transform(image=image, mask=mask), restored(image=image, mask=mask)
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["mask"], b["mask"])


def test_serialized_arguments_are_declared_parameters(ckpt):
    """Every serialised argument is an InitSchema field or a constructor parameter (and ``p``)."""
    declared = set(SynthToReal.InitSchema.model_fields) - {"strict"}
    assert set(SynthToReal(ckpt).to_dict()["transform"]) - {"__class_fullname__"} <= declared


def test_additional_targets_for_image_only_serialization(ckpt):
    image = SQUARE_UINT8_IMAGE
    pipeline = A.Compose([aug(ckpt)], additional_targets={"image2": "image"}, seed=137, strict=True)
    restored = A.from_dict(A.to_dict(pipeline))
    restored.set_random_seed(137)
    a, b = pipeline(image=image, image2=image.copy()), restored(image=image, image2=image.copy())
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["image2"], b["image2"])


# ----------------------------------------------------------------------------- test_targets.py
def test_image_only_targets(ckpt):
    assert aug(ckpt)._targets == (Targets.IMAGE, Targets.VOLUME)


# ----------------------------------------------------------------------------- test_transforms.py
def _apply(args):
    image, transform = args
    return transform(image=image)["image"]


def test_multiprocessing_support(ckpt):
    """albumentations maps a transform over a ``multiprocessing.Pool(4)`` (fork on Linux). The parent
    translates first on two threads (the case that hung); a hang fails after the timeout."""
    transform = aug(ckpt, precision="fp32")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        expected = transform(image=SQUARE_UINT8_IMAGE)["image"]
        context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
        pool = context.Pool(4)
        try:
            results = pool.map_async(_apply, [(SQUARE_UINT8_IMAGE, transform)] * 10).get(timeout=120)
        except multiprocessing.TimeoutError:
            pytest.fail("the transform hung in a multiprocessing.Pool")
        finally:
            pool.terminate()
            pool.join()
    finally:
        torch.set_num_threads(threads)
    assert all(np.abs(r.astype(int) - expected).max() <= 1 for r in results)


def test_additional_targets_for_image_only(ckpt):
    pipeline = A.Compose([aug(ckpt)], additional_targets={"image2": "image"}, strict=True)
    for image in (SQUARE_UINT8_IMAGE, SQUARE_FLOAT_IMAGE):
        res = pipeline(image=image, image2=image.copy())
        np.testing.assert_array_equal(res["image"], res["image2"])
    pipeline = A.Compose([aug(ckpt)], strict=True)
    pipeline.add_targets(additional_targets={"image2": "image"})
    res = pipeline(image=SQUARE_UINT8_IMAGE, image2=SQUARE_UINT8_IMAGE.copy())
    np.testing.assert_array_equal(res["image"], res["image2"])


@pytest.mark.parametrize("image", IMAGES, ids=IMAGE_IDS)
def test_change_image(ckpt, image):
    original = image.copy()
    transformed = A.Compose([aug(ckpt)], seed=137, strict=False)(image=image)
    np.testing.assert_array_equal(image, original)
    assert not np.array_equal(transformed["image"], image)


def test_selective_channel(ckpt):
    """Inside ``A.SelectiveChannelTransform`` the adapter sees 3 of 5 channels and changes only those."""
    image = SQUARE_MULTI_UINT8_IMAGE
    channels = [3, 2, 4]
    pipeline = A.Compose([A.SelectiveChannelTransform(transforms=[aug(ckpt)], channels=channels, p=1)],
                         seed=137, strict=False)  # fmt: skip
    transformed = pipeline(image=image)["image"]
    for channel in range(image.shape[-1]):
        changed = not np.array_equal(image[..., channel], transformed[..., channel])
        assert changed == (channel in channels)


@pytest.mark.parametrize("image", IMAGES, ids=IMAGE_IDS)
def test_return_nonzero(ckpt, image):
    assert np.max(A.Compose([aug(ckpt)], seed=137, strict=False)(image=image)["image"]) > 0


def test_keypoints_bboxes_match(ckpt):
    x_min, y_min, x_max, y_max = 40, 30, 50, 60
    pipeline = A.Compose(
        [aug(ckpt)],
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], min_area=0, min_visibility=0),
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
        seed=137, strict=False,
    )  # fmt: skip
    transformed = pipeline(image=RECTANGULAR_UINT8_IMAGE, bboxes=np.array([[x_min, y_min, x_max, y_max]]),
                           keypoints=np.array([[x_min, y_min], [x_max, y_max]]), labels=[1])  # fmt: skip
    box = transformed["bboxes"][0]
    np.testing.assert_allclose(transformed["keypoints"][0], box[:2], atol=1)
    np.testing.assert_allclose(transformed["keypoints"][1], box[2:], atol=1.5)
