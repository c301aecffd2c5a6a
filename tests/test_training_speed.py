"""H-GAN training's speed options: what they choose, and that they change no result at fp32.

The fast path (channels_last, fused Adam, torch.compile) is on by default on CUDA devices only;
here, on the CPU, it is forced on to check that losses, resumes, exports and the progress bar
stay as they are.
"""

from __future__ import annotations

import warnings

import lightning as L
import pytest
import torch
from tiny import tiny_datamodule, tiny_hgan, tiny_trainer

from handaug import load_generator
from handaug.training import GeneratorExport
from handaug.training.resume import ResumeCheckpoint, resolve_resume_path

FAST = {"channels_last": True, "fused_adam": True, "compile": False}
FAST_RESOLVED = {"compile": False, "channels_last": "all", "fused_adam": True}


class LossRecorder(L.Callback):
    def __init__(self):
        self.history = []
        self.progress = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.history.append({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")})
        self.progress.append(dict(trainer.progress_bar_metrics))


def _losses(tmp_path, steps=3, callbacks=(), **model):
    L.seed_everything(0)
    recorder = LossRecorder()
    trainer = tiny_trainer(tmp_path, max_steps=2 * steps, limit_val_batches=0, callbacks=[recorder, *callbacks])
    module = tiny_hgan(**model)
    trainer.fit(module, datamodule=tiny_datamodule())
    assert len(recorder.history) == steps
    return recorder.history, module


def test_speed_options_are_on_for_cuda_only_unless_chosen():
    model = tiny_hgan()
    assert model.speed_options(torch.device("cpu")) == {"compile": False, "channels_last": "none", "fused_adam": False}
    assert model.speed_options(torch.device("cuda", 0)) == {"compile": True, "channels_last": "all", "fused_adam": True}
    eager = tiny_hgan(compile=False)  # eager instance norms stay in the usual layout
    assert eager.speed_options(torch.device("cuda")) == {"compile": False, "channels_last": "discriminators", "fused_adam": True}
    chosen = tiny_hgan(compile=False, channels_last=True)
    assert chosen.speed_options(torch.device("cuda")) == {"compile": False, "channels_last": "all", "fused_adam": True}
    assert chosen.speed_options(torch.device("cpu")) == {"compile": False, "channels_last": "all", "fused_adam": False}
    assert tiny_hgan(channels_last=False).speed_options(torch.device("cuda"))["channels_last"] == "none"
    with pytest.raises(ValueError, match=r"channels_last must be True, False or None \(automatic\), got 'yes'"):
        tiny_hgan(channels_last="yes")


def test_default_cpu_training_uses_no_fast_path(tmp_path):
    _, model = _losses(tmp_path, steps=1)
    assert model._speed == {"compile": False, "channels_last": "none", "fused_adam": False}
    assert model._compiled == {}
    assert all(not g.get("fused") for opt in model.trainer.optimizers for g in opt.param_groups)
    assert model.generator_s2r.model[1].weight.is_contiguous()


def test_channels_last_and_fused_adam_give_the_same_losses_at_fp32(tmp_path):
    """Forced on at fp32 on the CPU, the fast path trains to the same losses (to float rounding) as the default."""
    plain, _ = _losses(tmp_path / "plain")
    fast, model = _losses(tmp_path / "fast", callbacks=[GeneratorExport()], **FAST)
    assert model._speed == FAST_RESOLVED
    assert all(g["fused"] for opt in model.trainer.optimizers for g in opt.param_groups)
    for a, b in zip(plain, fast):
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
    # Back in the usual layout when training ends, so the export (safetensors) could be written.
    assert model.generator_s2r.model[1].weight.is_contiguous()
    exported = load_generator(tmp_path / "fast" / "export")
    assert torch.equal(exported.model[1].weight, model.generator_s2r.model[1].weight)


def test_a_failing_compiler_leaves_training_eager_and_unchanged(tmp_path, monkeypatch):
    plain, _ = _losses(tmp_path / "plain")

    def broken_compile(module, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("no C compiler here\nsecond line")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fallback, model = _losses(tmp_path / "fallback", compile=True)
    assert model._compiled == {}
    messages = [str(w.message) for w in caught if "torch.compile failed" in str(w.message)]
    assert messages and "RuntimeError: no C compiler here" in messages[0] and "second line" not in messages[0]
    assert fallback == plain  # bit for bit: the failed attempt used no random numbers and left no gradient behind


class CompiledSpy(L.Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen.append(sorted(pl_module._compiled))


@pytest.mark.slow
def test_compiled_generators_train_like_eager_ones_on_the_cpu(tmp_path):
    plain, _ = _losses(tmp_path / "plain", steps=2)
    spy = CompiledSpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # a fall back to eager (a warning) fails here
        warnings.filterwarnings("ignore", message="(?!HGAN: torch.compile failed)")
        compiled, model = _losses(tmp_path / "compiled", steps=2, callbacks=[spy], compile=True)
    assert spy.seen == [["generator_r2s", "generator_s2r"]] * 2
    assert model._compiled == {}  # dropped when training ends
    for a, b in zip(plain, compiled):
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-5), key


def test_progress_bar_values_reach_the_host_every_log_every_n_steps_on_a_gpu(tmp_path, monkeypatch):
    """The logger gets every step's losses as tensors; the progress bar's g and d are host copies,
    made every log_every_n_steps batches on an accelerator and every batch on the CPU."""
    from handaug.training import module

    assert module.progress_bar_interval(torch.device("cpu"), 50) == 1
    assert module.progress_bar_interval(torch.device("cuda", 0), 50) == 50
    assert module.progress_bar_interval(torch.device("cuda"), None) == 1

    def run(root):
        L.seed_everything(0)
        recorder = LossRecorder()
        trainer = tiny_trainer(root, max_steps=2 * 5, limit_val_batches=0, log_every_n_steps=2, callbacks=[recorder],
                               enable_progress_bar=True)
        trainer.fit(tiny_hgan(), datamodule=tiny_datamodule())
        return [p["g"] for p in recorder.progress], [h["train/g_total"] for h in recorder.history]

    g, totals = run(tmp_path / "cpu")
    assert g == pytest.approx(totals) and len(set(totals)) == 5  # on the CPU: every batch, as before
    # As on a GPU (the interval is log_every_n_steps = 2): the bar's values change at batches 0, 2 and 4 only.
    monkeypatch.setattr(module, "progress_bar_interval", lambda device, n: int(n))
    g, totals = run(tmp_path / "gpu-like")
    assert len(set(totals)) == 5  # the logger still gets a new value at every step
    assert g[0] == g[1] and g[2] == g[3] and g[1] != g[2]
    assert g[0] == pytest.approx(totals[0]) and g[2] == pytest.approx(totals[2]) and g[4] == pytest.approx(totals[4])


def _fit(root, max_epochs, ckpt_path=None, callbacks=(), every_n_batches=None, **model):
    L.seed_everything(0, workers=True)
    module = tiny_hgan(**model)
    checkpoint = ResumeCheckpoint(every_n_batches=every_n_batches, every_minutes=None)
    trainer = tiny_trainer(root, max_epochs=max_epochs, limit_train_batches=3, limit_val_batches=1,
                           callbacks=[checkpoint, *callbacks])
    trainer.fit(module, datamodule=tiny_datamodule(), ckpt_path=resolve_resume_path(ckpt_path, root), weights_only=True)
    return trainer, module


def _same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_resume_with_the_fast_path_continues_identically(tmp_path):
    """channels_last weights and fused Adam states survive a checkpoint and resume bit for bit."""
    _, straight = _fit(tmp_path / "straight", max_epochs=2, **FAST)
    _fit(tmp_path / "resumed", max_epochs=1, **FAST)
    _, resumed = _fit(tmp_path / "resumed", max_epochs=2, ckpt_path="last", **FAST)
    assert _same_weights(straight, resumed)


def test_a_run_saved_without_the_fast_path_resumes_with_it(tmp_path):
    """Optimiser states restored in the usual layout are re-laid out for channels_last parameters (fused Adam needs it)."""
    _fit(tmp_path, max_epochs=1)
    seen = {}

    class Probe(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            opt = trainer.optimizers[0]
            weight = pl_module.generator_s2r.model[1].weight
            seen["layout"] = opt.state[weight]["exp_avg"].stride() == weight.stride()

    trainer, model = _fit(tmp_path, max_epochs=2, ckpt_path="last", callbacks=[Probe()], **FAST)
    assert trainer.global_step == 12 and seen["layout"]
    assert all(torch.isfinite(p).all() for p in model.parameters())
