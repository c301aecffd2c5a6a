"""handaug.integrations.kornia.SynthToReal: inside AugmentationSequential (keypoints, boxes, masks untouched),
direct calls with hand masks, kornia's per-image gate in both conventions (sub-batch < 0.9, whole batch
with batch_prob >= 0.9), pools, pickling, bad input. Tiny random generators (no trained weights)."""

from __future__ import annotations

import pickle

import kornia.augmentation as K
import numpy as np
import pytest
import torch

import handaug
from handaug import save_generator
from handaug.data.procedural import ProceduralHands
from handaug.integrations.kornia import HAND_MASK_KEY, POOL_INDEX_KEY, SynthToReal
from handaug.registry import create_generator


def make_checkpoint(path, seed=0):
    torch.manual_seed(seed)
    return save_generator(create_generator("resnet", n_blocks=1, ngf=8), path, background=1.0, trained_with_masks=True)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("kornia") / "ckpt")


def hands(n=6, size=48):
    """Kornia-style batch: images (n, 3, H, W) float in [0, 1], masks (n, 1, H, W) float, keypoints (n, 21, 2)."""
    data = ProceduralHands("synthetic", image_size=size, length=n, seed=2)
    samples = [data[i] for i in range(n)]
    images = torch.stack([torch.from_numpy(s["image"]).permute(2, 0, 1) for s in samples]).float() / 255
    masks = torch.stack([torch.from_numpy(s["mask"] > 0) for s in samples]).unsqueeze(1).float()
    keypoints = torch.stack([torch.from_numpy(s["keypoints_2d"]) for s in samples])
    return images, masks, keypoints


def boxes_of(masks):
    rows, cols = masks[:, 0].any(2), masks[:, 0].any(1)
    ar = torch.arange(masks.shape[-1], dtype=torch.float32)
    x0 = torch.where(cols, ar, 1e9).amin(1)
    x1 = torch.where(cols, ar, -1).amax(1)
    y0 = torch.where(rows, ar, 1e9).amin(1)
    y1 = torch.where(rows, ar, -1).amax(1)
    return torch.stack([x0, y0, x1, y1], 1)[:, None]  # (B, 1, 4) xyxy


def core(ckpt, images, masks=None):
    return handaug.SynthToReal(ckpt, precision="fp32")(images, mask=masks)


# ----------------------------------------------------------------------------- inside AugmentationSequential
@pytest.mark.parametrize("p", [1.0, 0.5])
def test_sequential_keypoints_boxes_masks_equal_the_geometric_only_path(ckpt, p):
    images, masks, keypoints = hands()
    boxes = boxes_of(masks)
    keys = ["input", "keypoints", "bbox_xyxy", "mask"]
    affine = K.RandomAffine(30.0, scale=(0.8, 1.2), p=1.0)
    full = K.AugmentationSequential(affine, SynthToReal(ckpt, p=p, precision="fp32"), data_keys=keys)
    plain = K.AugmentationSequential(K.RandomAffine(30.0, scale=(0.8, 1.2), p=1.0), data_keys=keys)
    torch.manual_seed(0)
    a = full(images, keypoints, boxes, masks)
    torch.manual_seed(0)
    b = plain(images, keypoints, boxes, masks)
    assert not torch.equal(b[1], keypoints)  # the warp moved them
    for x, y in zip(a[1:], b[1:]):
        assert torch.equal(x, y)  # keypoints, boxes and masks: bit for bit
    changed = (a[0] != b[0]).flatten(1).any(1)
    if p == 1.0:
        assert changed.all()
        assert torch.equal(a[0], core(ckpt, b[0]))  # whole frames translated (no mask inside the sequential)
    else:
        assert 0 < changed.sum() < len(changed)
        assert torch.equal(a[0][~changed], b[0][~changed])


# ----------------------------------------------------------------------------- direct call with masks
def test_direct_call_with_mask_keeps_background_and_matches_the_core(ckpt):
    images, masks, _ = hands()
    out = SynthToReal(ckpt, precision="fp32")(images, mask=masks)
    background = (masks == 0).expand_as(images)
    assert torch.equal(out[background], images[background])
    assert (out[~background] != images[~background]).float().mean() > 0.5
    assert torch.equal(out, core(ckpt, images, masks))
    assert torch.equal(SynthToReal(ckpt, precision="fp32")(images, mask=masks[:, 0] > 0), out)  # (B, H, W) bool


def test_translate_then_warp_gives_the_geometric_only_targets(ckpt):
    images, masks, keypoints = hands()
    geometry = K.AugmentationSequential(K.RandomAffine(30.0, p=1.0), data_keys=["input", "keypoints", "mask"])
    translated = SynthToReal(ckpt, p=0.5, precision="fp32")(images, mask=masks)
    torch.manual_seed(1)
    a = geometry(translated, keypoints, masks)
    torch.manual_seed(1)
    b = geometry(images, keypoints, masks)
    assert torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])


def test_unbatched_input_and_keepdim(ckpt):
    images, masks, _ = hands(1)
    out = SynthToReal(ckpt, precision="fp32", keepdim=True)(images[0], mask=masks[0])
    assert out.shape == images[0].shape
    assert torch.equal(out, core(ckpt, images, masks)[0])
    assert SynthToReal(ckpt)(images[0]).shape == images.shape  # kornia's default: batched output


def test_mask_mode_none_ignores_the_mask(ckpt):
    images, masks, _ = hands(2)
    out = SynthToReal(ckpt, precision="fp32", mask_mode="none")(images, mask=masks)
    assert torch.equal(out, core(ckpt, images))


TINY_SIZES = [(1, 1), (2, 2), (3, 64), (1, 1000), (64, 3)]


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # kornia's images are float; it refuses uint8
@pytest.mark.parametrize("size", TINY_SIZES)
def test_tiny_images_keep_shape_dtype_device_and_background(ckpt, size, dtype, with_mask):
    images = torch.randint(0, 256, (2, 3, *size)).to(dtype) / 255
    mask = (torch.arange(size[0] * size[1]) % 2 == 0).reshape(1, *size).expand(2, *size)  # pixel (0, 0) is hand
    out = SynthToReal(ckpt, p=1.0)(images, mask=mask if with_mask else None)
    assert out.shape == images.shape and out.dtype == images.dtype and out.device == images.device
    if with_mask:
        outside = ~mask.unsqueeze(1).expand_as(images)
        assert torch.equal(out[outside], images[outside])


def test_numpy_probabilities_are_accepted(ckpt):
    s2r = SynthToReal(ckpt, p=np.float64(0.25), p_batch=np.float32(0.5))
    assert s2r.p == 0.25 and s2r.p_batch == 0.5


# ----------------------------------------------------------------------------- kornia's gate, both conventions
def test_per_image_gate_translates_only_the_chosen_images(ckpt):
    images, masks, _ = hands(12)
    aug = SynthToReal(ckpt, p=0.5, precision="fp32")
    torch.manual_seed(3)
    out = aug(images, mask=masks)
    chosen = aug._params["batch_prob"] > 0.5
    assert 0 < chosen.sum() < 12
    assert torch.equal(out[~chosen], images[~chosen])
    assert torch.equal(out[chosen], core(ckpt, images[chosen], masks[chosen]))
    torch.manual_seed(3)
    assert torch.equal(aug(images, mask=masks), out)  # torch's global RNG drives it, like kornia's own augmentations


def test_apply_transform_handles_the_whole_batch_and_the_chosen_sub_batch(ckpt, tmp_path):
    """kornia >= 0.9 passes the whole batch with batch_prob; kornia < 0.9 passes only the chosen rows with the
    full params. Both must give the same translated rows (pool choice and hand mask included)."""
    pool = [ckpt, make_checkpoint(tmp_path / "other", seed=7)]
    images, masks, _ = hands(6)
    aug = SynthToReal(pool, p=0.5, precision="fp32")
    params = {
        "batch_prob": torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0]),
        POOL_INDEX_KEY: torch.tensor([0, 1, 1, 0, 1, 0]),
        HAND_MASK_KEY: masks,
    }
    chosen = params["batch_prob"] > 0.5
    whole = aug.apply_transform(images, params, aug.flags)
    sub = aug.apply_transform(images[chosen], params, aug.flags)
    assert torch.equal(whole[~chosen], images[~chosen])
    assert torch.equal(whole[chosen], sub)
    reference = handaug.SynthToReal(pool, precision="fp32")
    expected = reference.translate(images[chosen], masks[chosen], assignment=params[POOL_INDEX_KEY][chosen])
    assert torch.equal(sub, expected)
    nothing = {"batch_prob": torch.zeros(6)}
    assert aug.apply_transform(images, nothing, aug.flags) is images


def test_pool_draws_per_image_or_once_with_same_on_batch(ckpt, tmp_path):
    pool = [ckpt, make_checkpoint(tmp_path / "other", seed=7)]
    torch.manual_seed(0)
    per_image = SynthToReal(pool).forward_parameters(torch.Size([64, 3, 8, 8]))[POOL_INDEX_KEY]
    assert per_image.shape == (64,) and set(per_image.tolist()) == {0, 1}
    shared = SynthToReal(pool, same_on_batch=True).forward_parameters(torch.Size([64, 3, 8, 8]))[POOL_INDEX_KEY]
    assert shared.unique().numel() == 1
    assert POOL_INDEX_KEY not in SynthToReal(ckpt).forward_parameters(torch.Size([4, 3, 8, 8]))


# ----------------------------------------------------------------------------- weights never travel
def test_no_weights_in_state_dict_or_pickle(ckpt):
    images, masks, _ = hands(2)
    aug = SynthToReal(ckpt, precision="fp32")
    aug.translator.generators("cpu")  # loaded, as after a first call (a call would also make kornia keep its input)
    assert aug.state_dict() == {}
    blob = pickle.dumps(aug)
    assert len(blob) < 20_000  # the tiny generator's weights alone are 131 kB
    assert torch.equal(pickle.loads(blob)(images, mask=masks), aug(images, mask=masks))


# ----------------------------------------------------------------------------- bad input
def test_bad_arguments_and_inputs_name_what_is_wrong(ckpt, tmp_path):
    with pytest.raises(ValueError, match="p must be a probability"):
        SynthToReal(ckpt, p=2.0)
    with pytest.raises(ValueError, match="p_batch must be a probability"):
        SynthToReal(ckpt, p_batch=-0.1)
    with pytest.raises(ValueError, match="same_on_batch must be True or False, got 1"):  # flags are bools only
        SynthToReal(ckpt, same_on_batch=1)
    with pytest.raises(ValueError, match="keepdim must be True or False, got 'yes'"):
        SynthToReal(ckpt, keepdim="yes")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SynthToReal(tmp_path / "missing")
    images, masks, _ = hands(2)
    aug = SynthToReal(ckpt)
    with pytest.raises(ValueError, match="mask of shape .* does not match the images"):
        aug(images, mask=masks[:1])
    with pytest.raises(ValueError, match=r"input of dtype torch.float32 must have values in \[0, 1\]"):
        aug(images * 255)
    with pytest.raises(ValueError, match=r"input must have 3 \(RGB\) channels"):
        aug(images[:, :1])
