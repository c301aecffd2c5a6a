"""Pose benefit: PCK / pixel error on known cases, the soft-argmax regressor, and the experiment's determinism."""

from __future__ import annotations

import pytest
import torch

from handaug.metrics.eval_data import procedural_set
from handaug.metrics.pose_benefit import (
    KeypointRegressor,
    _flip,
    mean_pixel_error,
    pck,
    pose_benefit,
    pose_table,
    predict_keypoints,
    train_regressor,
    visible_keypoints,
)
from handaug.metrics.shape import identity_translator


def test_pck_threshold_is_a_tenth_of_the_keypoint_box():
    target = torch.tensor([[[0.0, 0.0], [20.0, 0.0], [0.0, 10.0]]])  # box 20 × 10: hand size 20, threshold 2 px
    assert pck(target, target) == 1.0
    inside = target + torch.tensor([1.9, 0.0])
    outside = target + torch.tensor([0.0, 2.1])
    assert pck(inside, target) == 1.0
    assert pck(outside, target) == 0.0
    mixed = target.clone()
    mixed[0, 0] += torch.tensor([0.0, 3.0])
    assert pck(mixed, target) == pytest.approx(2 / 3)
    visible = torch.tensor([[False, True, True]])
    assert pck(mixed, target, visible) == 1.0
    assert pck(outside, target, alpha=0.2) == 1.0
    with pytest.raises(ValueError, match="shape"):
        pck(target[:, :2], target)


def test_mean_pixel_error_is_euclidean():
    target = torch.zeros(2, 3, 2)
    predicted = target + torch.tensor([3.0, 4.0])
    assert mean_pixel_error(predicted, target) == pytest.approx(5.0)
    visible = torch.tensor([[True, False, False], [False, False, False]])
    predicted[0, 1] = 100.0
    assert mean_pixel_error(predicted, target, visible) == pytest.approx(5.0)


def test_visible_keypoints_use_pixel_centre_convention():
    k = torch.tensor([[[-0.5, 0.0], [-0.6, 0.0], [63.5, 63.5], [63.6, 10.0]]])
    assert visible_keypoints(k, (64, 64)).tolist() == [[True, False, True, False]]


def test_soft_argmax_maps_heatmap_cells_to_pixels():
    model = KeypointRegressor(num_keypoints=2, width=4)
    spikes = torch.full((1, 2, 16, 16), -1e4)
    spikes[0, 0, 3, 5] = 0.0  # row 3, column 5
    spikes[0, 1, 15, 0] = 0.0
    model.heatmaps = lambda images: spikes
    out = model(torch.zeros(1, 3, 64, 64))
    # cell centre (c + 0.5) * 4 - 0.5
    assert out.tolist() == [[[21.5, 13.5], [1.5, 61.5]]]
    with pytest.raises(ValueError, match="multiples of 16"):
        KeypointRegressor()(torch.zeros(1, 3, 40, 40))


def test_flip_mirrors_images_and_keypoints():
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    keypoints = torch.tensor([[[0.0, 1.0]], [[1.0, 2.0]]])
    out, k = _flip(images, keypoints, torch.tensor([True, False]))
    assert torch.equal(out[0], images[0].flip(-1)) and torch.equal(out[1], images[1])
    assert k.tolist() == [[[3.0, 1.0]], [[1.0, 2.0]]]


def test_regressor_learns_the_training_hands():
    data = procedural_set("synthetic", 96, 600, image_size=32)
    visible = visible_keypoints(data.keypoints, (32, 32))
    untrained = train_regressor(data, epochs=1, width=8, lr=1e-9, seed=0, show_progress=False)
    trained = train_regressor(data, epochs=40, width=8, seed=0, show_progress=False)
    before = mean_pixel_error(predict_keypoints(untrained, data.images), data.keypoints, visible)
    after = mean_pixel_error(predict_keypoints(trained, data.images), data.keypoints, visible)
    assert after < 0.6 * before


def test_pose_benefit_rows_and_determinism():
    rows = pose_benefit(
        {"identity": identity_translator}, image_size=32, n_train=48, n_test=16, epochs=2, width=8, show_progress=False,
    )
    assert [r.label for r in rows] == ["synthetic", "identity", "real (oracle)"]
    # the identity "translation" trains on the same images with the same seed: the same numbers
    assert rows[0].pck == rows[1].pck and rows[0].pixel_error == rows[1].pixel_error
    assert rows[2].pixel_error != rows[0].pixel_error
    assert all(r.n_train == 48 and r.n_test == 16 for r in rows)
    table = pose_table(rows)
    assert [row[0] for row in table.rows] == ["synthetic", "identity", "real (oracle)"]
    assert table.rows[0][5] == 1 and "±" not in table.rows[0][1]


def test_pose_benefit_runs_give_mean_and_std():
    rows = pose_benefit({}, image_size=32, n_train=32, n_test=16, epochs=1, width=4, runs=2, include_real=False, show_progress=False)
    assert [r.label for r in rows] == ["synthetic"]
    assert len(rows[0].pck) == 2 and rows[0].pck_std is not None
    assert "±" in pose_table(rows).rows[0][1]
    with pytest.raises(ValueError, match="multiple of 16"):
        pose_benefit({}, image_size=40)
