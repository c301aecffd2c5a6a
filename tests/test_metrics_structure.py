"""Inner structure: kept edges and shading score ≈ 1 under any colour change, a flat blob ≈ 0, damage in between."""

from __future__ import annotations

import math

import kornia
import pytest
import torch

from handaug.metrics.eval_data import procedural_set
from handaug.metrics.structure import (
    chance_level,
    default_window,
    inner_structure,
    inner_structure_per_image,
)


def as_uint8_levels(images: torch.Tensor) -> torch.Tensor:
    """Round to uint8 levels, as a translation written to disk or returned as uint8 would be."""
    return images.clamp(0.0, 1.0).mul(255.0).round().div(255.0)


def inside(changed: torch.Tensor, source: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``changed`` inside the hand, ``source`` outside (compositing, as SynthToReal does)."""
    return torch.where(masks, changed, source)


def shuffle_inside(images: torch.Tensor, masks: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The hand's pixels permuted among themselves (same colours, no structure)."""
    g = torch.Generator().manual_seed(seed)
    out = images.clone()
    for i in range(images.shape[0]):
        where = masks[i, 0].flatten().nonzero().squeeze(1)
        flat = out[i].reshape(3, -1)
        flat[:, where] = images[i].reshape(3, -1)[:, where[torch.randperm(where.numel(), generator=g)]]
    return out


@pytest.fixture(scope="module", params=["synthetic", "real"])
def hands(request):
    data = procedural_set(request.param, 16, 4242, image_size=96)
    return data.images.float() / 255.0, data.masks


def score(source, translated, masks, **kwargs) -> float:
    return inner_structure(source, translated, masks, **kwargs).mean


def test_identity_scores_one(hands):
    source, masks = hands
    result = inner_structure(source, source, masks)
    assert result.mean > 0.99
    assert result.n + result.n_excluded == 16 and result.n >= 12
    assert result.window == default_window(96) == 9


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda x: kornia.enhance.adjust_hue(x, math.pi / 2), id="hue rotation 90°"),
        pytest.param(lambda x: kornia.enhance.adjust_hue(x, -math.pi / 3), id="hue rotation -60°"),
        pytest.param(lambda x: x * 0.7, id="darker"),
        pytest.param(lambda x: x + 0.12, id="brighter"),
        pytest.param(lambda x: x * torch.tensor([0.55, 0.4, 0.3]).view(1, 3, 1, 1), id="dark skin tone"),
        pytest.param(lambda x: 0.2 + x * torch.tensor([1.1, 1.0, 0.8]).view(1, 3, 1, 1), id="gain and offset"),
    ],
)
def test_global_colour_changes_keep_the_structure(hands, change):
    source, masks = hands
    translated = inside(as_uint8_levels(change(source)), source, masks)
    assert score(source, translated, masks) > 0.95


def test_a_flat_fill_scores_zero(hands):
    source, masks = hands
    mean_colour = (source * masks).sum(dim=(2, 3), keepdim=True) / masks.sum(dim=(2, 3), keepdim=True)
    flat = inside(as_uint8_levels(mean_colour.expand_as(source)), source, masks)
    assert score(source, flat, masks) < 0.05


def test_damage_orders_the_scores(hands):
    source, masks = hands
    blurred = inside(as_uint8_levels(kornia.filters.gaussian_blur2d(source, (9, 9), (1.5, 1.5))), source, masks)
    scrambled = shuffle_inside(source, masks)
    other = procedural_set("synthetic", 16, 4243, image_size=96)
    other_inside = inside(other.images.float() / 255.0, source, masks)
    identity, kept, lost, unrelated = (score(source, t, masks) for t in (source, blurred, scrambled, other_inside))
    assert identity > kept + 0.1
    assert kept > 0.3
    assert lost < 0.1 and unrelated < 0.25
    assert kept > max(lost, unrelated) + 0.2


def test_noise_scores_about_zero_after_the_chance_correction(hands):
    source, masks = hands
    noise = inside(torch.rand(source.shape, generator=torch.Generator().manual_seed(1)), source, masks)
    raw_window = 7
    assert score(source, noise, masks, window=raw_window) < 0.03
    assert chance_level(raw_window) == pytest.approx(3 / 48)


def test_images_without_windows_or_variance_are_excluded():
    data = procedural_set("synthetic", 4, 4244, image_size=64)
    source, masks = data.images.float() / 255.0, data.masks.clone()
    masks[1] = False  # no hand
    source[2] = 0.5  # a hand without any structure
    scores = inner_structure_per_image(source, source, masks)
    assert torch.isnan(scores[1]) and torch.isnan(scores[2])
    assert not torch.isnan(scores[[0, 3]]).any()
    result = inner_structure(source, source, masks)
    assert result.n == 2 and result.n_excluded == 2 and result.mean > 0.99


def test_uint8_inputs_and_float_masks_are_accepted():
    data = procedural_set("real", 4, 4245, image_size=64)
    float_masks = data.masks.float()
    assert inner_structure(data.images, data.images, float_masks).mean > 0.99


def test_works_at_128_px():
    data = procedural_set("real", 4, 4246, image_size=128)
    source = data.images.float() / 255.0
    flat = inside(torch.full_like(source, 0.6), source, data.masks)
    assert default_window(128) == 13 and default_window(64) == 7
    assert score(source, source, data.masks) > 0.99
    assert score(source, flat, data.masks) < 0.05


def test_bad_inputs_are_named():
    x = torch.rand(2, 3, 32, 32)
    m = torch.ones(2, 1, 32, 32, dtype=torch.bool)
    with pytest.raises(ValueError, match="translated must have the shape"):
        inner_structure_per_image(x, x[:1], m)
    with pytest.raises(ValueError, match="masks must have shape"):
        inner_structure_per_image(x, x, m[:, :, :16])
    with pytest.raises(ValueError, match="source must be a float tensor"):
        inner_structure_per_image(x[:, :2], x[:, :2], m)
    with pytest.raises(ValueError, match="translated contains NaN"):
        inner_structure_per_image(x, torch.full_like(x, math.nan), m)
    with pytest.raises(ValueError, match="window must be an odd integer"):
        inner_structure_per_image(x, x, m, window=6)
    with pytest.raises(ValueError, match="must not be larger than the images"):
        inner_structure_per_image(x, x, m, window=33)
    with pytest.raises(ValueError, match="eps must be a non-negative number"):
        inner_structure_per_image(x, x, m, eps=-1.0)
