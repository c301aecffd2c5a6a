"""Hand-centred training crops (the H-GAN reference's MaskedRandomCrop)."""

from __future__ import annotations

import numpy as np
import pytest

from handaug.data.crops import crop_centre_candidates, hand_centred_crop
from handaug.data.pairing import PairKey, item_rng
from handaug.data.procedural import ProceduralHands
from handaug.data.unpaired import DomainDataset


def _small_hands_in_large_frames(n: int = 12) -> list[dict]:
    """640×480 frames, each with a procedural hand pasted somewhere, covering at most 5 % of the frame."""
    hands = ProceduralHands("synthetic", image_size=112, length=n, seed=4, hand_scale=(0.5, 0.7))
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        sample = hands[i]
        image = np.full((480, 640, 3), 255, np.uint8)
        mask = np.zeros((480, 640), np.uint8)
        top, left = int(rng.integers(0, 480 - 112)), int(rng.integers(0, 640 - 112))
        image[top : top + 112, left : left + 112] = sample["image"]
        mask[top : top + 112, left : left + 112] = sample["mask"]
        assert 0 < (mask > 0).mean() <= 0.05
        frames.append({"image": image, "mask": mask})
    return frames


def _fraction_of_crops_with_hand(crop_mode: str, draws: int = 20) -> float:
    frames = _small_hands_in_large_frames()
    dataset = DomainDataset(frames, range(len(frames)), 128, random_crop=True, background=1.0, crop_mode=crop_mode)
    hits = []
    for i in range(len(frames)):
        for d in range(draws):
            item = dataset.item(i, item_rng(0, PairKey(d, i, i, i), 0))
            assert item["image"].shape == (3, 128, 128)
            hits.append(bool(item["mask"].any()))
    return float(np.mean(hits))


def test_hand_centred_crops_show_hand_where_uniform_crops_mostly_do_not():
    hand, uniform = _fraction_of_crops_with_hand("hand"), _fraction_of_crops_with_hand("uniform")
    assert hand >= 0.95
    assert uniform < 0.5 and hand - uniform > 0.45


def test_the_crop_is_centred_on_an_eroded_hand_pixel_and_padded_with_the_background():
    mask = np.zeros((40, 60), np.uint8)
    mask[2:20, 2:22] = 255  # a hand in the corner: crops centred on it leave the frame
    image = np.zeros((40, 60, 3), np.uint8)
    image[mask > 0] = 100
    candidates = crop_centre_candidates(mask)
    assert len(candidates) and candidates[:, 0].min() >= 2 + 6 and candidates[:, 1].min() >= 2 + 6  # ~6 px inside
    rng = np.random.default_rng(1)
    for _ in range(20):
        crop, crop_mask = hand_centred_crop(image, mask, 32, rng, fill=(255, 255, 255))
        assert crop.shape == (32, 32, 3) and crop_mask.shape == (32, 32)
        assert crop_mask[16, 16] == 255  # the centre is on the hand
        outside_frame = (crop == 255).all(axis=2)
        assert outside_frame.any()  # the padding is the background colour
        assert not crop_mask[outside_frame].any()


def test_a_thin_or_empty_mask_still_gives_a_crop():
    thin = np.zeros((50, 50), np.uint8)
    thin[25, 10:40] = 255  # one pixel wide: nothing survives the erosion
    image = np.zeros((50, 50, 3), np.uint8)
    crop, crop_mask = hand_centred_crop(image, thin, 16, np.random.default_rng(0), fill=None)
    assert crop_mask[8, 8] == 255
    crop, crop_mask = hand_centred_crop(image, np.zeros((50, 50), np.uint8), 16, np.random.default_rng(0), fill=None)
    assert crop.shape == (16, 16, 3) and not crop_mask.any()


def test_unknown_crop_mode_is_named():
    with pytest.raises(ValueError, match="crop_mode"):
        DomainDataset([{"image": np.zeros((8, 8, 3), np.uint8)}], [0], 8, random_crop=True, crop_mode="centre")


def test_validation_from_a_separate_source_with_centroid_crops():
    from handaug.data.datamodule import UnpairedDataModule

    dm = UnpairedDataModule(
        synthetic_kwargs={"image_size": 64, "length": 12}, real_kwargs={"image_size": 64, "length": 12},
        synthetic_val_kwargs={"seed": 99, "length": 5}, real_val_kwargs={"seed": 98, "length": 5},
        crop_size=32, val_size=32, val_count=4, val_crop="centroid", num_workers=0,
    )
    dm.setup("fit")
    assert len(dm.train_set.synthetic) == 12 and len(dm.val_set.synthetic) == 4  # nothing held out of training
    assert dm.val_set.synthetic.source.seed == 99 and dm.train_set.synthetic.source.seed != 99
    item = dm.val_set[0]["synthetic"]
    rows, cols = item["mask"][0].nonzero(as_tuple=True)
    assert abs(rows.float().mean() - 16) <= 2 and abs(cols.float().mean() - 16) <= 2  # centred on the hand
    with pytest.raises(ValueError, match="val_crop"):
        UnpairedDataModule(val_crop="middle")
