"""§IV-B mask refinement and the hand-area filter, on procedural hands with known masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from handaug.data.background import GREEN_SCREEN_RGB
from handaug.data.masks import HandAreaFilter, hand_area_fraction, refine_green_screen_mask
from handaug.data.procedural import ProceduralHands


def on_noisy_green_screen(sample, rng, sigma=10.0, speckle=0.01):
    """Composite a procedural hand (by its exact mask) onto a noisy green screen with speckle."""
    shape = sample["image"].shape
    screen = rng.normal(0, sigma, shape) + GREEN_SCREEN_RGB
    speckled = rng.random(shape[:2]) < speckle
    screen[speckled] = rng.integers(0, 256, (int(speckled.sum()), 3))  # dead / hot pixels
    screen = np.clip(screen, 0, 255).astype(np.uint8)
    return np.where(sample["mask"][..., None] > 0, sample["image"], screen)


def iou(a, b):
    a, b = a > 0, b > 0
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("style", ["synthetic", "real"])
def test_refinement_recovers_known_masks_on_a_noisy_green_screen(style):
    hands = ProceduralHands(style, image_size=256, length=4, seed=3, background="white", hand_scale=(0.6, 0.9))
    rng = np.random.default_rng(0)
    scores = []
    for i in range(len(hands)):
        sample = hands[i]
        mask = refine_green_screen_mask(on_noisy_green_screen(sample, rng))
        assert mask.shape == (256, 256) and mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
        scores.append(iou(mask, sample["mask"]))
    assert min(scores) > 0.9, scores


def test_each_step_matters_speckle_gaps_and_rim():
    hands = ProceduralHands("synthetic", image_size=128, length=1, seed=1, background="white", hand_scale=(0.7, 0.8))
    sample = hands[0]
    image = on_noisy_green_screen(sample, np.random.default_rng(1), speckle=0.0)
    image[5:9, 5:9] = (200, 150, 120)  # a skin-coloured blob away from the hand: not the largest contour
    kept = refine_green_screen_mask(image, erosion_kernel=1)
    assert kept[5:9, 5:9].max() == 0 and iou(kept, sample["mask"]) > 0.95
    # Erosion only removes pixels, and removes the rim.
    eroded = refine_green_screen_mask(image, erosion_kernel=3)
    assert not np.any((eroded > 0) & (kept == 0)) and (eroded > 0).sum() < (kept > 0).sum()
    # Closing fills a one-pixel gap (a short green scratch inside the palm) that the raw key leaves open.
    depth = cv2.distanceTransform(sample["mask"], cv2.DIST_L2, 5)
    row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
    assert depth[row, col] > 5  # the scratch below lies well inside the hand
    scratched = image.copy()
    scratched[row, col - 3 : col + 4] = GREEN_SCREEN_RGB
    open_gap = refine_green_screen_mask(scratched, median_kernel=1, closing_kernel=1, erosion_kernel=1)
    closed = refine_green_screen_mask(scratched, median_kernel=1, closing_kernel=5, erosion_kernel=1)
    assert open_gap[row, col - 3 : col + 4].max() == 0 and closed[row, col - 3 : col + 4].min() == 255


def test_frames_without_a_hand_give_empty_masks():
    rng = np.random.default_rng(2)
    screen = np.clip(rng.normal(0, 10, (64, 64, 3)) + GREEN_SCREEN_RGB, 0, 255).astype(np.uint8)
    assert refine_green_screen_mask(screen).max() == 0
    assert refine_green_screen_mask(np.full((32, 32, 3), (200, 150, 120), np.uint8)).max() == 0  # flat: nothing to split


def test_bad_input_is_named():
    good = np.zeros((8, 8, 3), np.uint8)
    for bad, message in [
        (np.zeros((8, 8, 3), np.float32), "image_rgb must be uint8"),
        (np.zeros((8, 8), np.uint8), r"image_rgb must have shape \(H, W, 3\)"),
        (np.zeros((8, 8, 4), np.uint8), r"image_rgb must have shape \(H, W, 3\)"),
        ([[0, 0, 0]], "image_rgb must be a numpy array"),
    ]:
        with pytest.raises(ValueError, match=message):
            refine_green_screen_mask(bad)
    for name, value in [("median_kernel", 4), ("closing_kernel", 0), ("erosion_kernel", -3), ("hue_center", 200),
                        ("hue_tolerance", 90), ("min_value", 256), ("min_saturation", -1), ("min_threshold", 255),
                        ("erosion_iterations", -1)]:
        with pytest.raises(ValueError, match=name):
            refine_green_screen_mask(good, **{name: value})


def test_area_filter_drops_frames_outside_bounds_and_counts_them():
    area_filter = HandAreaFilter()  # 5 % - 50 %
    masks = {}
    for name, fraction in [("empty", 0.0), ("tiny", 0.04), ("low", 0.05), ("mid", 0.3), ("high", 0.5), ("huge", 0.51)]:
        mask = np.zeros((10, 10 * 10), np.uint8)
        mask.flat[: int(round(fraction * mask.size))] = 255
        masks[name] = mask
    accepted = [name for name, mask in masks.items() if area_filter.accept(mask, name=name)]
    assert accepted == ["low", "mid", "high"]
    assert (area_filter.kept, area_filter.dropped) == (3, 3)
    assert [name for name, _ in area_filter.dropped_items] == ["empty", "tiny", "huge"]
    assert area_filter.dropped_items[1][1] == pytest.approx(0.04)
    assert area_filter.report() == "dropped 3 of 6 frames whose hand area is outside [5%, 50%] of the image; kept 3"
    assert hand_area_fraction(masks["mid"]) == pytest.approx(0.3)


def test_area_filter_arguments_are_checked():
    with pytest.raises(ValueError, match="min_fraction"):
        HandAreaFilter(min_fraction=-0.1)
    with pytest.raises(ValueError, match="max_fraction"):
        HandAreaFilter(max_fraction=1.5)
    with pytest.raises(ValueError, match=r"min_fraction \(0.6\) must not exceed max_fraction \(0.5\)"):
        HandAreaFilter(min_fraction=0.6)
    with pytest.raises(ValueError, match="mask must be a non-empty"):
        hand_area_fraction(np.zeros((2, 2, 3), np.uint8))
