"""Pose consistency: a keypoint model trained on real-style hands only, scored on translations against the source keypoints."""

from __future__ import annotations

import json

import pytest
import torch

from handaug.metrics.eval_data import EvalSet
from handaug.metrics.pose_benefit import (
    KeypointRegressor,
    pose_benefit,
    pose_test_set,
    predict_keypoints,
    train_oracles,
)
from handaug.metrics.pose_consistency import (
    REAL_LABEL,
    SYNTHETIC_LABEL,
    consistency_table,
    load_oracle,
    pose_consistency,
    save_oracle,
)
from handaug.metrics.shape import identity_translator

SIZE = 64


@pytest.fixture(scope="module")
def oracle():
    return train_oracles(image_size=SIZE, n_train=400, epochs=12, width=8, seed=0, show_progress=False)[0]


@pytest.fixture(scope="module")
def real_test():
    return pose_test_set("real", image_size=SIZE, n_test=64, seed=0, show_progress=False)


def flat_fill(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Every hand pixel becomes the hand's mean colour: the silhouette stays, the inside is gone."""
    m = masks.expand_as(images)
    mean = (images.float() * m).sum(dim=(2, 3), keepdim=True) / m.sum(dim=(2, 3), keepdim=True).clamp(min=1)
    return torch.where(m, mean.round().to(torch.uint8).expand_as(images), images)


def blank(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The hand becomes the white background: nothing left to find."""
    return torch.where(masks.expand_as(images), torch.full_like(images, 255), images)


def test_identity_on_real_style_images_scores_like_the_reference(oracle, real_test):
    rows = pose_consistency({"identity": identity_translator, "flat fill": flat_fill, "blank": blank}, [oracle], real_test, real_test, n_train=400)
    by_label = {row.label: row for row in rows}
    assert [row.label for row in rows] == [REAL_LABEL, SYNTHETIC_LABEL, "identity", "flat fill", "blank"]
    reference, identity = by_label[REAL_LABEL], by_label["identity"]
    assert reference.pck_mean > 0.05  # a small oracle, but it finds real-style hands
    assert identity.pck == reference.pck and identity.pixel_error == reference.pixel_error
    assert identity.ratio_mean == 1.0
    assert identity.gain_mean == 0.0  # here the "synthetic" images are the real-style ones: nothing to gain
    assert by_label["blank"].gain_mean < 0
    # a flat fill keeps the silhouette (what a small oracle at 64 px mostly relies on, so its PCK barely
    # moves) and loses the rest: the keypoints it finds are further off
    assert by_label["flat fill"].error_mean > identity.error_mean
    assert by_label["blank"].ratio_mean < 0.6
    assert by_label["blank"].error_mean > 1.3 * identity.error_mean


def test_translations_are_scored_against_the_source_keypoints(oracle, real_test):
    def shift(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return torch.roll(images, shifts=12, dims=3)  # the hand moves 12 px right; its keypoints do not

    rows = pose_consistency({"moved": shift}, [oracle], real_test, real_test)
    reference, moved = rows[0], rows[2]
    assert moved.ratio_mean < 0.9
    assert moved.error_mean > reference.error_mean + 2.0


def test_synthetic_row_and_table(oracle, real_test):
    synthetic = pose_test_set("synthetic", image_size=SIZE, n_test=64, seed=0, show_progress=False)
    rows = pose_consistency({}, [oracle, oracle], synthetic, real_test, n_train=400)
    assert [row.label for row in rows] == [REAL_LABEL, SYNTHETIC_LABEL]
    assert len(rows[1].pck_ratio) == 2 and rows[1].ratio_std == 0.0
    table = consistency_table(rows)
    assert table.columns[3] == "PCK / PCK on real ↑"
    assert table.rows[0][3] == "1.000 ± 0.000" and table.rows[0][6] == 2
    # the gain is paired per oracle: untranslated minus itself is exactly 0, the real row's is real − synthetic
    assert table.columns[4] == "PCK − untranslated (points) ↑" and rows[1].pck_gain == [0.0, 0.0]
    assert rows[0].pck_gain == [a - b for a, b in zip(rows[0].pck, rows[1].pck)]
    assert "trained only on 400 real-style hands" in table.notes[0]
    json.dumps(rows[1].to_dict())


def test_needs_keypoints_and_oracles(oracle, real_test):
    no_keypoints = EvalSet(real_test.images, real_test.masks, None, "no keypoints")
    with pytest.raises(ValueError, match="have no keypoints"):
        pose_consistency({}, [oracle], no_keypoints, real_test)
    with pytest.raises(ValueError, match="oracles must hold at least one"):
        pose_consistency({}, [], real_test, real_test)


def test_pose_benefit_reuses_the_shared_oracles():
    settings = dict(image_size=32, n_train=32, epochs=1, width=4, seed=0, show_progress=False)
    oracles = train_oracles(**settings)
    shared = pose_benefit({}, n_test=16, oracles=oracles, **settings)
    alone = pose_benefit({}, n_test=16, **settings)
    assert [r.label for r in shared] == ["synthetic", "real (oracle)"]
    assert shared[1].pck == alone[1].pck and shared[1].pixel_error == alone[1].pixel_error
    with pytest.raises(ValueError, match="one model per run"):
        pose_benefit({}, n_test=16, oracles=oracles + oracles, **settings)


def test_oracle_file_round_trip(oracle, real_test, tmp_path):
    path = save_oracle(oracle, tmp_path / "oracle.safetensors", image_size=SIZE, trained_on="test hands")
    loaded, settings = load_oracle(path)
    assert settings["image_size"] == SIZE and settings["width"] == 8 and settings["trained_on"] == "test hands"
    assert torch.equal(predict_keypoints(loaded, real_test.images), predict_keypoints(oracle, real_test.images))
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_oracle_files_are_refused(oracle, tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(FileNotFoundError, match="oracle file .* does not exist"):
        load_oracle(tmp_path / "missing.safetensors")
    (tmp_path / "garbage.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable .safetensors file"):
        load_oracle(tmp_path / "garbage.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="was not written by save_oracle"):
        load_oracle(tmp_path / "plain.safetensors")
    huge = {"format": "handaug.keypoint_oracle", "format_version": 1, "num_keypoints": 21, "width": 100000, "image_size": 64}
    save_file({"w": torch.zeros(2)}, str(tmp_path / "huge.safetensors"), metadata={"handaug_keypoint_oracle": json.dumps(huge)})
    with pytest.raises(ValueError, match=r"width must be an integer in \[1, 256\]"):
        load_oracle(tmp_path / "huge.safetensors")
    wrong = save_oracle(KeypointRegressor(width=4), tmp_path / "small.safetensors", image_size=SIZE)
    settings = {"format": "handaug.keypoint_oracle", "format_version": 1, "num_keypoints": 21, "width": 8, "image_size": SIZE}
    from safetensors.torch import load_file

    save_file(load_file(str(wrong)), str(tmp_path / "mismatch.safetensors"), metadata={"handaug_keypoint_oracle": json.dumps(settings)})
    with pytest.raises(ValueError, match="weights do not fit"):
        load_oracle(tmp_path / "mismatch.safetensors")
    with pytest.raises(ValueError, match="must end in .safetensors"):
        save_oracle(oracle, tmp_path / "oracle.pt", image_size=SIZE)


def test_white_background_real_hands_are_rendered_as_the_demo_trains_on_them():
    # The oracle's domain must be the real domain a checkpoint is trained towards: with background
    # "white", real-style hands are lit by a white wall (handaug-train's procedural data with
    # background: white), not rendered on green cloth and whitened afterwards, which leaves green
    # spill on every hand and rewards translations that paint hands green.
    from handaug.data.procedural import ProceduralHands
    from handaug.metrics.eval_data import procedural_set

    white = procedural_set("real", 4, 7, image_size=64, background="white")
    hands = ProceduralHands("real", image_size=64, length=4, seed=7, background="white")
    for i in range(4):
        item = hands[i]
        mask = torch.from_numpy(item["mask"] > 0)[None].expand(3, -1, -1)
        expected = torch.where(mask, torch.from_numpy(item["image"]).permute(2, 0, 1), torch.full_like(white.images[i], 255))
        assert torch.equal(white.images[i], expected)
    green = procedural_set("real", 4, 7, image_size=64, background="keep")
    assert torch.equal(green.masks, white.masks) and torch.equal(green.keypoints, white.keypoints)
    inside = white.masks.expand_as(white.images)

    def green_excess(images):  # mean G - mean (R + B) / 2 over hand pixels
        r, g, b = (images.float() * inside).sum(dim=(0, 2, 3)) / inside[:, 0].sum()
        return float(g - (r + b) / 2)

    assert green_excess(green.images) > green_excess(white.images) + 2.0
