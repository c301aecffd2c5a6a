"""Checkpoint selection: validation FID, the best k states kept, the best generator exported, resume keeps it."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from tiny import tiny_datamodule, tiny_hgan, tiny_trainer

from handaug import load_generator, read_checkpoint
from handaug.training import GeneratorExport
from handaug.training.resume import ResumeCheckpoint, resolve_resume_path
from handaug.training.selection import CheckpointSelection


class _Record(L.Callback):
    """The logged val/fid after every validation, with the step it was measured at."""

    def __init__(self):
        self.values = []

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.values.append((float(trainer.callback_metrics["val/fid"]), trainer.global_step))


def _fit(root, *, max_epochs=2, ckpt_path=None, callbacks=(), features="random_conv", limit_train_batches=4):
    L.seed_everything(0, workers=True)
    selection = CheckpointSelection(monitor="val/fid", save_top_k=2, features=features)
    record = _Record()
    trainer = tiny_trainer(
        root, max_epochs=max_epochs, limit_train_batches=limit_train_batches, limit_val_batches=1, val_check_interval=2,
        enable_checkpointing=True,
        callbacks=[ResumeCheckpoint(every_n_batches=1, every_minutes=None), selection, record, GeneratorExport(), *callbacks],
    )
    model = tiny_hgan()
    trainer.fit(model, datamodule=tiny_datamodule(), ckpt_path=resolve_resume_path(ckpt_path, root, overwrite_run=True),
                weights_only=True)
    return trainer, model, selection, record


def test_the_best_two_states_are_kept_and_the_best_generator_is_exported(tmp_path):
    _, model, selection, record = _fit(tmp_path)
    assert len(record.values) == 4  # validation every 2 batches, 4 batches an epoch, 2 epochs
    best_value, best_step = min(record.values)
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("best-*.ckpt"))
    assert kept == sorted(f"best-step{step:07d}.ckpt" for _, step in sorted(record.values)[:2])

    config = read_checkpoint(tmp_path / "export").config["training"]["selection"]
    assert config["monitor"] == "val/fid" and config["features"] == "random_conv" and config["mode"] == "min"
    assert config["value"] == pytest.approx(best_value) and config["global_step"] == best_step
    exported = load_generator(tmp_path / "export").state_dict()
    best = torch.load(tmp_path / "checkpoints" / config["checkpoint"], weights_only=True)["state_dict"]
    assert all(torch.equal(v, best[f"generator_s2r.{k}"]) for k, v in exported.items())
    if best_step != record.values[-1][1]:  # the best is not the last state: the export is not the final weights
        assert not all(torch.equal(v, model.generator_s2r.state_dict()[k]) for k, v in exported.items())


def test_missing_inception_weights_fall_back_to_random_conv_and_say_so(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    with pytest.warns(UserWarning, match="random_conv"):
        _fit(tmp_path / "run", max_epochs=1, features="inception")
    assert read_checkpoint(tmp_path / "run" / "export").config["training"]["selection"]["features"] == "random_conv"


class _Crash(RuntimeError):
    pass


class _CrashAt(L.Callback):
    def __init__(self, batches):
        self.batches, self.seen = batches, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen += 1
        if self.seen == self.batches:
            raise _Crash


def test_a_resumed_run_keeps_the_selection(tmp_path):
    _, _, straight, straight_record = _fit(tmp_path / "straight", max_epochs=3)
    with pytest.raises(_Crash):
        _fit(tmp_path / "resumed", max_epochs=3, callbacks=[_CrashAt(7)])  # after 3 validations, mid-epoch
    _, _, resumed, resumed_record = _fit(tmp_path / "resumed", max_epochs=3, ckpt_path="last")
    assert resumed_record.values == straight_record.values[3:]  # the validations after the crash, identical
    names = lambda s: {p.split("/")[-1]: v for p, v in s.best_k_models.items()}  # noqa: E731
    assert names(resumed).keys() == names(straight).keys()
    assert all(float(v) == pytest.approx(float(names(straight)[k])) for k, v in names(resumed).items())
    a = read_checkpoint(tmp_path / "straight" / "export").config["training"]["selection"]
    b = read_checkpoint(tmp_path / "resumed" / "export").config["training"]["selection"]
    assert (a["global_step"], a["value"]) == (b["global_step"], pytest.approx(b["value"]))


def test_no_monitor_keeps_nothing_and_exports_the_last_state(tmp_path):
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1, enable_checkpointing=True,
                           callbacks=[CheckpointSelection(), GeneratorExport()])
    model = tiny_hgan()
    trainer.fit(model, datamodule=tiny_datamodule())
    assert not list(tmp_path.rglob("*.ckpt"))
    assert read_checkpoint(tmp_path / "export").config["training"]["selection"] == {"monitor": None, "exported": "last"}


@pytest.mark.parametrize("kwargs, name", [({"mode": "lowest"}, "mode"), ({"save_top_k": 0, "monitor": "val/fid"}, "save_top_k")])
def test_selection_arguments_are_checked(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CheckpointSelection(**kwargs)
