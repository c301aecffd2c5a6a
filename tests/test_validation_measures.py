"""Validation-time measures: StructureMonitor and PoseConsistencyMonitor log through Lightning during a tiny fit."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from tiny import tiny_datamodule, tiny_hgan, tiny_trainer

from handaug.metrics.pose_benefit import train_oracles
from handaug.metrics.pose_consistency import save_oracle
from handaug.training.validation_measures import PoseConsistencyMonitor, StructureMonitor


class Flat(nn.Module):
    """A generator whose every output is one grey: no structure survives."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def logged_rows(root) -> list[dict[str, str]]:
    (path,) = list(root.glob("**/metrics.csv"))
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def oracle_file(tmp_path_factory):
    oracle = train_oracles(image_size=32, n_train=96, epochs=4, width=4, seed=0, show_progress=False)[0]
    return save_oracle(oracle, tmp_path_factory.mktemp("oracle") / "oracle.safetensors", image_size=32)


def test_a_tiny_fit_logs_inner_structure_and_pose_consistency(tmp_path, oracle_file):
    structure = StructureMonitor()
    pose = PoseConsistencyMonitor(oracle_file, probes=8)
    best = ModelCheckpoint(dirpath=tmp_path / "best", monitor="val/inner_structure", mode="max", filename="best")
    trainer = tiny_trainer(
        tmp_path, logger=CSVLogger(str(tmp_path), name="logs"), callbacks=[structure, pose, best], enable_checkpointing=True,
        limit_train_batches=2, limit_val_batches=1,
    )
    trainer.fit(tiny_hgan(), datamodule=tiny_datamodule())
    assert structure.last_value is not None and 0.0 <= structure.last_value <= 1.0
    rows = [r for r in logged_rows(tmp_path) if r.get("val/inner_structure")]
    assert len(rows) == 1 and math.isfinite(float(rows[0]["val/inner_structure"]))
    assert float(rows[0]["val/inner_structure"]) == pytest.approx(structure.last_value, abs=1e-6)
    for key in ("val/pose_pck", "val/pose_error_px"):
        assert math.isfinite(float(rows[0][key]))
    assert 0.0 <= float(rows[0]["val/pose_pck"]) <= 1.0
    assert best.best_model_score is not None and float(best.best_model_score) == pytest.approx(structure.last_value, abs=1e-6)


def test_structure_monitor_tells_a_kept_hand_from_a_blob(tmp_path):
    scores = {}
    for name, generator in (("identity", nn.Identity()), ("flat", Flat())):
        model = tiny_hgan()
        model.generator_s2r = generator
        monitor = StructureMonitor(window=5)
        results = tiny_trainer(tmp_path / name, callbacks=[monitor], limit_val_batches=1).validate(model, datamodule=tiny_datamodule())
        scores[name] = results[0]["val/inner_structure"]
    assert scores["identity"] > 0.99
    assert scores["flat"] < 0.05


def test_pose_monitor_scores_the_current_generator(oracle_file):
    monitor = PoseConsistencyMonitor(oracle_file, probes=8)
    identity = monitor.translate_probes(nn.Identity(), torch.device("cpu"))
    probes = monitor._probe_set
    expected = torch.where(probes.masks, probes.images, torch.full_like(probes.images, 255)).float() / 255.0
    assert identity.shape == (8, 3, 32, 32)
    assert torch.allclose(identity, expected, atol=1e-6)  # white background outside, the hand untouched
    flat = monitor.translate_probes(Flat(), torch.device("cpu"))
    assert torch.equal(flat[~probes.masks.expand_as(flat)], expected[~probes.masks.expand_as(flat)])
    assert torch.allclose(flat[probes.masks.expand_as(flat)], torch.tensor(0.5))


def test_monitor_arguments_are_checked(tmp_path, oracle_file):
    from handaug.metrics.pose_benefit import KeypointRegressor

    with pytest.raises(ValueError, match="window must be an odd integer"):
        StructureMonitor(window=4)
    with pytest.raises(ValueError, match="image_size is required"):
        PoseConsistencyMonitor(KeypointRegressor(width=4))
    with pytest.raises(ValueError, match="image_size must be a positive multiple of 16"):
        PoseConsistencyMonitor(KeypointRegressor(width=4), image_size=40)
    with pytest.raises(ValueError, match="oracle must be a KeypointRegressor"):
        PoseConsistencyMonitor(nn.Identity())
    with pytest.raises(FileNotFoundError, match="oracle file"):
        PoseConsistencyMonitor(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="background must be"):
        PoseConsistencyMonitor(oracle_file, background="green")
    with pytest.raises(ValueError, match=r"^probes must be an integer >= 1, got 0$"):
        PoseConsistencyMonitor(oracle_file, probes=0)
    # the one rule (handaug.arguments): numpy integers are stored as int; bools are not numbers
    monitor = PoseConsistencyMonitor(oracle_file, probes=np.int64(4), batch_size=np.uint8(2), seed=np.int32(3),
                                     image_size=np.int64(32), background=np.float32(0.5))
    assert (monitor.probes, monitor.batch_size, monitor.seed, monitor.image_size) == (4, 2, 3, 32)
    assert all(type(v) is int for v in (monitor.probes, monitor.batch_size, monitor.seed, monitor.image_size))
    assert PoseConsistencyMonitor(oracle_file, background="black").background_value == -1.0
    for kwargs, message in [({"batch_size": True}, r"^batch_size must be an integer >= 1, got True$"),
                            ({"seed": -1}, r"^seed must be a non-negative integer, got -1$"),
                            ({"background": True}, r"^background must be 'white', 'black' or a number in \[-1, 1\], got True$"),
                            ({"background": "keep"}, r"^background must be 'white', 'black' or a number in \[-1, 1\], got 'keep'$")]:
        with pytest.raises(ValueError, match=message):
            PoseConsistencyMonitor(oracle_file, **kwargs)
