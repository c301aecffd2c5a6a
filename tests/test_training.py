"""H-GAN training: losses, masks, image pool, resume, precision, schedules, export."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from tiny import tiny_datamodule, tiny_hgan, tiny_trainer

from handaug import load_generator, read_checkpoint
from handaug.training import GeneratorExport, ImagePool, SampleGridWriter, composite, lsgan_discriminator_loss, lsgan_generator_loss
from handaug.training.resume import ResumeCheckpoint, last_checkpoint_path, resolve_resume_path


# ----------------------------------------------------------------------------- losses and pool
def test_lsgan_losses_sum_over_scales():
    ones, zeros = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 2, 2)
    assert lsgan_generator_loss([ones, ones]).item() == 0.0
    assert lsgan_generator_loss([zeros, zeros, zeros]).item() == 3.0
    assert lsgan_generator_loss(zeros).item() == 1.0
    # Perfect discriminator: 0; fooled on both scales: 0.5 * (1 + 1) per scale.
    assert lsgan_discriminator_loss([ones, ones], [zeros, zeros]).item() == 0.0
    assert lsgan_discriminator_loss([zeros, zeros], [ones, ones]).item() == 2.0
    with pytest.raises(ValueError):
        lsgan_discriminator_loss([ones], [zeros, zeros])


def test_composite_keeps_background_bit_for_bit():
    source, translated = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    out = composite(translated, source, mask)
    m = mask.expand_as(source).bool()
    assert torch.equal(out[~m], source[~m]) and torch.equal(out[m], translated[m])


def test_image_pool_fills_then_swaps_half_the_time():
    torch.manual_seed(0)
    pool = ImagePool(4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first) and len(pool) == 4
    returned = torch.cat([pool.query(torch.full((1, 1, 1, 1), 100.0 + i)) for i in range(200)])
    from_history = (returned < 100).sum().item() + sum((returned.flatten() != 100 + torch.arange(200)).tolist())
    assert 60 < (returned.flatten() != 100 + torch.arange(200)).sum().item() < 140  # about half swapped
    assert len(pool) == 4 and from_history > 0
    assert torch.equal(ImagePool(0).query(first), first)
    with pytest.raises(ValueError, match="pool_size"):
        ImagePool(-1)
    assert ImagePool(np.int64(2)).size == 2 and type(ImagePool(np.int64(2)).size) is int  # the one rule: numpy integers count,
    with pytest.raises(ValueError, match=r"^pool_size must be a non-negative integer, got True$"):  # bools do not
        ImagePool(True)


def test_image_pool_state_round_trip():
    pool = ImagePool(3)
    pool.query(torch.rand(2, 3, 4, 4))
    other = ImagePool(3)
    other.load_state_dict(pool.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(pool.images, other.images))
    with pytest.raises(ValueError, match="pool_size is 5"):
        ImagePool(5).load_state_dict(pool.state_dict())


# ----------------------------------------------------------------------------- training
class LossRecorder(L.Callback):
    def __init__(self):
        self.history = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        m = trainer.callback_metrics
        self.history.append({k.split("/")[-1]: float(v) for k, v in m.items() if k.startswith("train/")})


def test_short_training_lowers_generator_adversarial_plus_cycle_loss(tmp_path):
    L.seed_everything(0)
    recorder = LossRecorder()
    trainer = tiny_trainer(tmp_path, max_steps=2 * 30, callbacks=[recorder], limit_val_batches=0)
    trainer.fit(tiny_hgan(), datamodule=tiny_datamodule(synthetic_kwargs={"image_size": 48, "length": 200}))
    totals = [h["adv_s2r"] + h["adv_r2s"] + h["cycle"] for h in recorder.history]
    assert len(totals) == 30
    first, last = sum(totals[:5]) / 5, sum(totals[-5:]) / 5
    assert last < 0.7 * first, (first, last)
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in recorder.history)


def test_masks_keep_translated_backgrounds_equal_to_the_source():
    model = tiny_hgan().eval()
    dm = tiny_datamodule()
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    out = model.validation_step(batch, 0)
    mask = batch["synthetic"]["mask"].expand_as(out["synthetic"]).bool()
    assert (~mask).any() and mask.any()
    assert torch.equal(out["translated"][~mask], out["synthetic"][~mask])
    assert torch.equal(out["cycled"][~mask], out["synthetic"][~mask])
    assert not torch.equal(out["translated"][mask], out["synthetic"][mask])


def test_without_mask_generated_the_whole_image_changes():
    model = tiny_hgan(mask_generated=False).eval()
    dm = tiny_datamodule()
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    out = model.validation_step(batch, 0)
    mask = batch["synthetic"]["mask"].expand_as(out["synthetic"]).bool()
    assert not torch.equal(out["translated"][~mask], out["synthetic"][~mask])


def test_reconstructions_are_composited_or_raw_as_asked():
    """With an empty hand mask the composited translation is the source itself: composited
    reconstructions then equal the source (cycle and identity terms 0), raw ones (the reference's) do not."""
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    no_hand = torch.zeros(2, 1, 32, 32)
    for composite_reconstructions, expect_zero in ((True, True), (False, False)):
        torch.manual_seed(0)
        model = tiny_hgan(composite_reconstructions=composite_reconstructions)
        losses, fake_real, _ = model.generator_losses(x, x.flip(0), no_hand, no_hand)
        assert torch.equal(fake_real, x)  # translations are composited either way
        assert (float(losses["cycle"]) == 0.0) == expect_zero
        assert (float(losses["identity"]) == 0.0) == expect_zero


def test_crop_not_divisible_by_stride_is_rejected(tmp_path):
    trainer = tiny_trainer(tmp_path, max_steps=2, limit_val_batches=0)
    with pytest.raises(ValueError, match="multiples of the generator's stride 4"):
        trainer.fit(tiny_hgan(), datamodule=tiny_datamodule(crop_size=30))


def test_model_arguments_are_checked():
    with pytest.raises(ValueError, match="lr_schedule"):
        tiny_hgan(lr_schedule="cosine")
    with pytest.raises(ValueError, match="lambda_cycle"):
        tiny_hgan(lambda_cycle=float("nan"))
    with pytest.raises(ValueError, match="init_type"):
        tiny_hgan(init_type="uniform")
    with pytest.raises(ValueError, match="unknown discriminator name 'patchgan'"):
        tiny_hgan(discriminator="patchgan", discriminator_kwargs={})


def test_linear_schedule_decays_to_zero(tmp_path):
    model = tiny_hgan(lr_schedule="linear", lr_decay_start_epoch=1, discriminator="pixel", discriminator_kwargs={"ndf": 4})
    lrs = []

    class Spy(L.Callback):  # the rate each epoch's batches train with
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = tiny_trainer(tmp_path, max_epochs=4, limit_train_batches=1, limit_val_batches=0, callbacks=[Spy()])
    trainer.fit(model, datamodule=tiny_datamodule())
    assert lrs == pytest.approx([2e-4, 1.5e-4, 1e-4, 0.5e-4])  # decay from epoch 1 over 3 epochs


def test_constant_schedule_by_default(tmp_path):
    model = tiny_hgan(discriminator="pixel", discriminator_kwargs={"ndf": 4})
    trainer = tiny_trainer(tmp_path, max_epochs=2, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(model, datamodule=tiny_datamodule())
    assert trainer.lr_scheduler_configs == []
    assert trainer.optimizers[0].param_groups[0]["lr"] == 2e-4


def test_bf16_mixed_precision_trains(tmp_path):
    L.seed_everything(0)
    recorder = LossRecorder()
    trainer = tiny_trainer(tmp_path, precision="bf16-mixed", max_steps=4, limit_val_batches=0, callbacks=[recorder])
    model = tiny_hgan()
    trainer.fit(model, datamodule=tiny_datamodule())
    assert len(recorder.history) == 2
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in recorder.history)
    assert model.generator_s2r.model[1].weight.dtype == torch.float32  # master weights stay fp32


# ----------------------------------------------------------------------------- resume
def _fit(root, max_epochs, ckpt_path=None, callbacks=(), every_n_batches=None, limit_train_batches=3, **data):
    L.seed_everything(0, workers=True)
    model = tiny_hgan()
    checkpoint = ResumeCheckpoint(every_n_batches=every_n_batches, every_minutes=None)
    trainer = tiny_trainer(root, max_epochs=max_epochs, limit_train_batches=limit_train_batches, limit_val_batches=1,
                           callbacks=[checkpoint, *callbacks])
    trainer.fit(model, datamodule=tiny_datamodule(**data), ckpt_path=resolve_resume_path(ckpt_path, root),
                weights_only=True)
    return trainer, model


def _assert_same_weights(a, b):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def test_resume_restores_optimisers_pools_epoch_and_step_and_continues_identically(tmp_path):
    _, straight = _fit(tmp_path / "straight", max_epochs=2)

    first, _ = _fit(tmp_path / "resumed", max_epochs=1)
    assert first.global_step == 6  # two optimiser steps per batch
    saved = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert len(saved["handaug"]["pools"]["real"]["images"]) == 4

    seen = {}

    class Probe(L.Callback):
        def on_train_start(self, trainer, pl_module):
            seen["step"], seen["epoch"] = trainer.global_step, trainer.current_epoch
            seen["exp_avg"] = trainer.optimizers[0].state_dict()["state"][0]["exp_avg"].clone()
            seen["pool"] = [im.clone() for im in pl_module.pool_real.images]

    second, resumed = _fit(tmp_path / "resumed", max_epochs=2, ckpt_path="last", callbacks=[Probe()])
    assert (seen["step"], seen["epoch"]) == (6, 1)
    assert torch.equal(seen["exp_avg"], saved["optimizer_states"][0]["state"][0]["exp_avg"])
    assert all(torch.equal(a, b) for a, b in zip(seen["pool"], saved["handaug"]["pools"]["real"]["images"]))
    assert second.global_step == 12
    # The resumed run ends exactly where the uninterrupted one does.
    _assert_same_weights(straight, resumed)


class _Crash(RuntimeError):
    pass


class _CrashAfter(L.Callback):
    """Stops the run the hard way (an exception, no checkpoint on the way out) after ``batches`` batches."""

    def __init__(self, batches):
        self.batches, self.seen = batches, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen += 1
        if self.seen == self.batches:
            raise _Crash(f"crashed after {self.batches} batches")


@pytest.mark.parametrize("crash_after", [4, 8])  # mid-epoch: epoch 1 after 1 of 3 batches; epoch 2 after 2 of 3
def test_resume_from_a_mid_epoch_checkpoint_continues_identically(tmp_path, crash_after):
    """A run that dies mid-epoch resumes from the last in-epoch checkpoint and ends bit-identical to
    an uninterrupted run: same order of pairs, same crops, same pools and RNG states."""
    _, straight = _fit(tmp_path / "straight", max_epochs=3, every_n_batches=1)

    with pytest.raises(_Crash):
        _fit(tmp_path / "resumed", max_epochs=3, every_n_batches=1, callbacks=[_CrashAfter(crash_after)])
    saved = torch.load(last_checkpoint_path(tmp_path / "resumed"), weights_only=True)
    assert saved["global_step"] == 2 * crash_after  # written after the crashing batch, before the crash
    (loader_state,) = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert not loader_state["epoch_finished"] and loader_state["batches_done"] == crash_after - 3 * (crash_after // 3)

    second, resumed = _fit(tmp_path / "resumed", max_epochs=3, ckpt_path="last", every_n_batches=1)
    assert second.global_step == 18
    _assert_same_weights(straight, resumed)


def test_training_order_and_crops_do_not_depend_on_workers(tmp_path):
    """Two DataLoader workers give the batches of the main process, bit for bit (keys, not worker RNG)."""
    L.seed_everything(0)
    batches = {}
    for workers in (0, 2):
        dm = tiny_datamodule(num_workers=workers)
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(1)
        batches[workers] = [b for _, b in zip(range(3), loader)]
    for a, b in zip(batches[0], batches[2]):
        for domain in ("synthetic", "real"):
            assert torch.equal(a[domain]["image"], b[domain]["image"])
            assert torch.equal(a[domain]["index"], b[domain]["index"])


def test_every_n_batches_writes_last_ckpt_within_the_epoch(tmp_path):
    writes = []

    class Spy(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            path = last_checkpoint_path(tmp_path)
            writes.append(torch.load(path, weights_only=True)["global_step"] if path.exists() else None)

    _fit(tmp_path, max_epochs=1, every_n_batches=2, limit_train_batches=5, callbacks=[Spy()])
    # ResumeCheckpoint runs before the spy: written after batches 2 and 4, then at the epoch's end.
    assert writes == [None, 4, 4, 8, 8]
    assert torch.load(last_checkpoint_path(tmp_path), weights_only=True)["global_step"] == 10
    assert not list((tmp_path / "checkpoints").glob(".*"))  # no temporary file left behind


def test_hgan_arguments_follow_the_one_rule():
    """handaug.arguments' rule: numpy bools are flags (recorded as bool), 1 is not; bools are not weights."""
    model = tiny_hgan(compile=np.bool_(False), lambda_cycle=np.float32(5), init_type="normal")
    assert model.hparams["compile"] is False and model.hparams["init_type"] == "normal"
    # numbers are recorded as plain Python numbers: a checkpoint's hyperparameters hold no numpy scalar
    model = tiny_hgan(lambda_cycle=np.float32(5), lr=np.float64(1e-4), pool_size=np.int64(3), init_gain=np.float32(0.5),
                      betas=[np.float32(0.5), 0.9], lr_decay_start_epoch=np.int16(2), mask_generated=np.True_)
    for name, kind in (("lambda_cycle", float), ("lr", float), ("pool_size", int), ("init_gain", float),
                       ("lr_decay_start_epoch", int), ("mask_generated", bool)):
        assert type(model.hparams[name]) is kind, name
    assert model.hparams["betas"] == [0.5, 0.9] and all(type(b) is float for b in model.hparams["betas"])
    assert tiny_hgan().hparams["betas"] == (0.5, 0.999)
    for kwargs, message in [({"compile": 1}, r"^compile must be True, False or None \(automatic\), got 1$"),
                            ({"lambda_cycle": True}, r"^lambda_cycle must be a non-negative number, got True$"),
                            ({"lr": float("inf")}, r"^lr must be a non-negative number, got inf$"),
                            ({"lr_schedule": "cosine"}, r"^lr_schedule must be one of \('constant', 'linear'\), got 'cosine'$"),
                            ({"betas": (0.5, 1.0)}, r"^betas\[1\] must be a number in \[0, 1\), got 1.0$"),
                            ({"betas": "ab"}, r"^betas must be two numbers in \[0, 1\), got 'ab'$"),
                            ({"init_gain": -1}, r"^init_gain must be a non-negative number, got -1$"),
                            ({"lr_decay_start_epoch": -1}, r"^lr_decay_start_epoch must be a non-negative integer, got -1$"),
                            ({"mask_generated": 0}, r"^mask_generated must be True or False, got 0$")]:
        with pytest.raises(ValueError, match=message):
            tiny_hgan(**kwargs)


def test_resume_checkpoint_arguments_are_checked():
    with pytest.raises(ValueError, match="every_n_batches"):
        ResumeCheckpoint(every_n_batches=-1)
    with pytest.raises(ValueError, match="every_minutes"):
        ResumeCheckpoint(every_minutes=float("nan"))
    # the one rule (handaug.arguments): numpy scalars count, bools and infinities do not
    checkpoint = ResumeCheckpoint(every_n_batches=np.int64(3), every_minutes=np.float32(0.5))
    assert (checkpoint.every_n_batches, checkpoint.every_seconds) == (3, 30.0) and type(checkpoint.every_n_batches) is int
    with pytest.raises(ValueError, match=r"^every_n_batches must be a non-negative integer, got True$"):
        ResumeCheckpoint(every_n_batches=True)
    with pytest.raises(ValueError, match=r"^every_minutes must be a non-negative number, got inf$"):
        ResumeCheckpoint(every_minutes=float("inf"))


def test_resume_path_last_requires_a_checkpoint_and_new_runs_never_overwrite_one(tmp_path):
    from handaug.training.resume import ResumeError

    with pytest.raises(ResumeError, match="no checkpoint to resume"):
        resolve_resume_path("last", tmp_path)
    assert resolve_resume_path("auto", tmp_path) is None
    assert resolve_resume_path(None, tmp_path) is None
    last = last_checkpoint_path(tmp_path)
    last.parent.mkdir()
    last.write_bytes(b"earlier run")
    assert resolve_resume_path("last", tmp_path) == str(last)
    assert resolve_resume_path("auto", tmp_path) == str(last)
    with pytest.raises(ResumeError, match="earlier run's checkpoint"):
        resolve_resume_path(None, tmp_path)
    assert resolve_resume_path(None, tmp_path, overwrite_run=True) is None
    with pytest.raises(ResumeError, match="no such checkpoint file"):
        resolve_resume_path(str(tmp_path / "missing.ckpt"), tmp_path)


# ----------------------------------------------------------------------------- outputs
def test_export_and_sample_grid(tmp_path):
    L.seed_everything(0)
    grids, export = SampleGridWriter(max_images=3), GeneratorExport()
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1, callbacks=[grids, export])
    model = tiny_hgan()
    trainer.fit(model, datamodule=tiny_datamodule())
    assert grids.last_written is not None and grids.last_written.parent == tmp_path / "samples"
    import cv2

    grid = cv2.imread(str(grids.last_written))
    assert grid.shape == (2 + 3 * 50, 2 + 3 * 50, 3)  # 3 rows × (synthetic | translated | cycled) at 48 px
    ckpt = read_checkpoint(tmp_path / "export")
    assert ckpt.config["mask"] == {"background": 1.0, "trained_with_masks": True}
    assert ckpt.config["image_size"] == {"train": 32, "val": 48}
    assert ckpt.config["training"]["batches"] == 2 and ckpt.config["training"]["data"]["synthetic"]["source"] == "procedural"
    generator = load_generator(tmp_path / "export")
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(generator(x), model.generator_s2r.eval()(x))
