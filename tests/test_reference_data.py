"""The H-GAN reference code's data selection (issue 10, item 7), on tiny fixtures in the datasets' real layouts.

SynthHands: only ``*_noobject`` sequences; both readers: the fixed test / validation / training
split (first 2,000 / next 1,000 / rest of a seeded shuffle); RealHands: the > 60 contours reject
and the hand-area range (handaug's true 5-50 %, the reference's effective 1.67-16.7 %).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from test_readers import composite, write_line, write_rgb

from handaug.data.background import GREEN_SCREEN_RGB
from handaug.data.masks import MAX_CONTOURS, HandAreaFilter, refine_green_screen, refine_green_screen_mask
from handaug.data.procedural import ProceduralHands
from handaug.data.readers import RealHands, SynthHands
from handaug.data.readers.split import fixed_split
from handaug.registry import create_dataset

SKIN = (200, 150, 120)


def make_synthhands_sequences(root, per_sequence=3):
    """The release's four top-level folders, ``per_sequence`` frames each (a few pixels of hand each)."""
    hands = ProceduralHands("synthetic", image_size=48, length=per_sequence, seed=5, background="green_screen")
    joints = np.stack([np.arange(21.0), np.arange(21.0), 400 + np.arange(21.0)], axis=1)
    names = {}
    for top in ("female_noobject", "female_object", "male_noobject", "male_object"):
        folder = root / top / "seq01" / "cam01" / "01"
        for i in range(per_sequence):
            image, _ = composite(hands[i], 120, 160, 10 + 5 * i, 20, GREEN_SCREEN_RGB)
            write_rgb(folder / f"{i:08d}_color.png", image)
            write_line(folder / f"{i:08d}_joint_pos.txt", joints)
            names.setdefault(top, []).append(str(folder / f"{i:08d}_color.png"))
    return names


def green_screen(shape, rng, sigma=6.0):
    return np.clip(rng.normal(0, sigma, (*shape, 3)) + GREEN_SCREEN_RGB, 0, 255).astype(np.uint8)


def frame_with_area(fraction, rng, size=100):
    """A skin-coloured square covering ``fraction`` of a noisy green-screen frame."""
    image = green_screen((size, size), rng)
    side = int(round(np.sqrt(fraction) * size))
    image[10 : 10 + side, 10 : 10 + side] = SKIN
    return image


def frame_with_blobs(blobs, rng, size=160):
    """A hand-sized square plus ``blobs`` separate 5×5 skin-coloured specks (artefacts)."""
    image = green_screen((size, size), rng)
    image[5:45, 5:45] = SKIN
    for k in range(blobs):
        row, col = 55 + 9 * (k // 7), 5 + 9 * (k % 7)
        image[row : row + 5, col : col + 5] = SKIN
    return image


# ------------------------------------------------------------------------------ SynthHands: *_noobject only


def test_synthhands_noobject_only_keeps_the_noobject_sequences(tmp_path):
    names = make_synthhands_sequences(tmp_path)
    assert len(SynthHands(tmp_path)) == 12  # default: every sequence, as before
    data = SynthHands(tmp_path, noobject_only=True)
    assert [str(p) for p in data.image_paths] == names["female_noobject"] + names["male_noobject"]
    assert data[0]["keypoints_2d"].shape == (21, 2)
    # A root inside a *_noobject folder is all no-object frames; one inside *_object holds none.
    assert len(SynthHands(tmp_path / "male_noobject" / "seq01", noobject_only=True)) == 3
    with pytest.raises(ValueError, match=r"no frames in a '\*_noobject' folder \(noobject_only=True\)"):
        SynthHands(tmp_path / "male_object", noobject_only=True)
    with pytest.raises(ValueError, match="^noobject_only must be True or False, got"):
        SynthHands(tmp_path, noobject_only="yes")


# ------------------------------------------------------------------------------ the fixed split


def test_fixed_split_cuts_test_then_validation_then_training():
    items = [f"f{i:02d}" for i in range(20)]
    assert fixed_split(items, "test", test_size=5, val_size=3, seed=None) == items[:5]
    assert fixed_split(items, "val", test_size=5, val_size=3, seed=None) == items[5:8]
    assert fixed_split(items, "train", test_size=5, val_size=3, seed=None) == items[8:]
    parts = {s: fixed_split(items, s, test_size=5, val_size=3, seed=7) for s in ("test", "val", "train")}
    assert [len(p) for p in parts.values()] == [5, 3, 12]
    assert sorted(sum(parts.values(), [])) == items  # disjoint and complete
    assert parts["test"] != items[:5]  # shuffled first, as the reference does
    assert parts["test"] == fixed_split(list(items), "test", test_size=5, val_size=3, seed=7)  # reproducible
    assert fixed_split(items, None) == items
    with pytest.raises(ValueError, match=r"the 'train' split of dataset is empty.*20 frames.*first 15 \(test_size\)"):
        fixed_split(items, "train", test_size=15, val_size=5)
    with pytest.raises(ValueError, match="split must be one of"):
        fixed_split(items, "validation")
    with pytest.raises(ValueError, match="val_size must be a non-negative integer"):
        fixed_split(items, "val", val_size=-1)


def test_fixed_split_defaults_are_the_references_2000_and_1000():
    items = list(range(3100))
    assert [len(fixed_split(items, s)) for s in ("test", "val", "train")] == [2000, 1000, 100]


def test_synthhands_split_is_disjoint_and_seeded(tmp_path, caplog):
    make_synthhands_sequences(tmp_path, per_sequence=4)
    every = [str(p) for p in SynthHands(tmp_path, noobject_only=True).image_paths]
    parts = {
        s: [str(p) for p in SynthHands(tmp_path, noobject_only=True, split=s, test_size=3, val_size=2, split_seed=1).image_paths]
        for s in ("test", "val", "train")
    }
    assert [len(p) for p in parts.values()] == [3, 2, 3] and sorted(sum(parts.values(), [])) == sorted(every)
    ordered = SynthHands(tmp_path, noobject_only=True, split="test", test_size=3, val_size=2, split_seed=None)
    assert [str(p) for p in ordered.image_paths] == every[:3]
    with caplog.at_level(logging.WARNING, logger="handaug.data.readers.split"):
        short = SynthHands(tmp_path, split="test", test_size=50)
    assert len(short) == 16 and "fewer than the 50 asked for" in caplog.text
    # Through the registry, as --data.synthetic_kwargs passes them.
    assert len(create_dataset("synthhands", root=str(tmp_path), noobject_only=True, split="val", test_size=3, val_size=2)) == 2


# ------------------------------------------------------------------------------ RealHands: contours, area, split


def test_refinement_rejects_frames_with_more_than_60_contours():
    rng = np.random.default_rng(0)
    clean, noisy = frame_with_blobs(0, rng), frame_with_blobs(70, rng)
    ok = refine_green_screen(clean)
    assert not ok.rejected and ok.contours == 1 and ok.mask[20, 20] == 255
    bad = refine_green_screen(noisy)
    assert MAX_CONTOURS == 60 and bad.rejected and bad.contours == 71 and bad.mask.max() == 0
    assert refine_green_screen_mask(noisy).max() == 0  # the mask-only function rejects too
    # The reference counts holes as outlines too (OpenCV's RETR_TREE).
    ring = frame_with_blobs(0, rng)
    ring[20:25, 20:25] = GREEN_SCREEN_RGB
    assert refine_green_screen(ring, median_kernel=1).contours == 2
    # Off, or a higher threshold: the largest contour is kept as before.
    for params in ({"max_contours": None}, {"max_contours": 71}):
        kept = refine_green_screen(noisy, **params)
        assert not kept.rejected and kept.mask[20, 20] == 255 and kept.mask[57, 7] == 0
    with pytest.raises(ValueError, match="max_contours"):
        refine_green_screen(clean, max_contours=0)


def write_realhands_frames(root, frames):
    for i, image in enumerate(frames):
        write_rgb(root / "user01" / "color" / f"{i:04d}_color.png", image)


def test_realhands_drops_frames_with_too_many_contours(tmp_path, caplog):
    rng = np.random.default_rng(1)
    write_realhands_frames(tmp_path, [frame_with_blobs(0, rng), frame_with_blobs(70, rng), frame_with_blobs(10, rng)])
    with caplog.at_level(logging.INFO, logger="handaug.data.readers.realhands"):
        data = RealHands(tmp_path)
    assert [p.name for p in data.image_paths] == ["0000_color.png", "0002_color.png"]
    assert [p.name for p in data.rejected_contours] == ["0001_color.png"] and data.dropped == 1
    assert "dropped 1 of 3 frames for too many contours" in caplog.text
    # Also without the area filter, and off on request.
    assert len(RealHands(tmp_path, filter_area=False)) == 2
    assert len(RealHands(tmp_path, filter_area=False, mask_params={"max_contours": None})) == 3


def test_realhands_area_range_true_fraction_and_the_references_effective_range(tmp_path):
    rng = np.random.default_rng(2)
    write_realhands_frames(tmp_path, [frame_with_area(f, rng) for f in (0.03, 0.10, 0.30)])
    kept = lambda data: [p.name for p in data.image_paths]  # noqa: E731
    assert kept(RealHands(tmp_path)) == ["0001_color.png", "0002_color.png"]  # default: 5-50 % of the frame
    reference = RealHands(tmp_path, area_range=(0.05 / 3, 0.5 / 3))  # the reference script's 1.67-16.7 %
    assert kept(reference) == ["0000_color.png", "0001_color.png"]
    assert "outside [1.67%, 16.7%]" in reference.area_filter.report()
    with pytest.raises(ValueError, match=r"area_range: min_fraction \(0.5\) must not exceed max_fraction \(0.1\)"):
        RealHands(tmp_path, area_range=(0.5, 0.1))
    with pytest.raises(ValueError, match="area_range must be"):
        RealHands(tmp_path, area_range=0.05)


def test_realhands_split_after_filtering(tmp_path):
    rng = np.random.default_rng(3)
    frames = [frame_with_area(0.1 + 0.01 * i, rng) for i in range(8)] + [frame_with_area(0.02, rng)]
    write_realhands_frames(tmp_path, frames)
    parts = {s: RealHands(tmp_path, split=s, test_size=3, val_size=2, split_seed=4) for s in ("test", "val", "train")}
    names = {s: [p.name for p in d.image_paths] for s, d in parts.items()}
    assert [len(n) for n in names.values()] == [3, 2, 3]
    assert sorted(sum(names.values(), [])) == [f"{i:04d}_color.png" for i in range(8)]  # the 2 % frame is gone first
    assert parts["test"][0]["mask"].shape == (100, 100)
    with pytest.raises(ValueError, match="split must be one of"):
        RealHands(tmp_path, split="valid")


def test_area_filter_reference_range_in_numbers():
    reference = HandAreaFilter(0.05 / 3, 0.5 / 3)
    for fraction, expected in ((0.016, False), (0.017, True), (0.166, True), (0.168, False)):
        mask = np.zeros((100, 100), np.uint8)
        mask.flat[: int(round(fraction * 10000))] = 255
        assert reference.accept(mask) is expected, fraction
