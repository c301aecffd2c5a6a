"""A Lightning training checkpoint (last.ckpt) of handaug-train: its generator exported safely."""

from __future__ import annotations

import json
import pathlib

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from tiny import TINY_GENERATOR, tiny_datamodule, tiny_hgan, tiny_trainer

from handaug import load_generator, read_checkpoint
from handaug.cli.export import main as export_main
from handaug.export import export_training_checkpoint
from handaug.registry import create_generator


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny fit: the module and its last.ckpt."""
    from handaug.plugin_manager import reset_plugins

    reset_plugins()
    root = tmp_path_factory.mktemp("run")
    L.seed_everything(0)
    model = tiny_hgan(discriminator="pixel", discriminator_kwargs={"ndf": 4})
    checkpoint = ModelCheckpoint(dirpath=str(root / "checkpoints"), save_last=True, save_top_k=0)
    trainer = tiny_trainer(root, max_epochs=1, limit_train_batches=1, limit_val_batches=0,
                           enable_checkpointing=True, callbacks=[checkpoint])
    trainer.fit(model, datamodule=tiny_datamodule())
    return model.eval(), root / "checkpoints" / "last.ckpt"


def test_command_line_exports_the_generator_of_last_ckpt(trained, tmp_path, capsys):
    model, last = trained
    out = tmp_path / "export-last"
    assert export_main([str(last), "--format", "handaug", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    checkpoint = read_checkpoint(out)
    assert checkpoint.config["network"]["kwargs"] == TINY_GENERATOR
    assert checkpoint.config["mask"] == {"background": 1.0, "trained_with_masks": True}  # white, procedural masks
    assert checkpoint.config["image_size"] == {"train": 32, "val": 48}
    assert checkpoint.config["training"]["exported_from"] == "last.ckpt"
    assert checkpoint.config["training"]["model"]["betas"] == [0.5, 0.999]
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(load_generator(out)(x), model.generator_s2r(x))
        r2s = export_training_checkpoint(last, tmp_path / "r2s.safetensors", direction="real_to_synthetic")
        assert torch.equal(load_generator(r2s)(x), model.generator_r2s(x))
    assert read_checkpoint(r2s).direction == "real_to_synthetic"


def test_default_output_is_beside_the_ckpt(tmp_path):
    ckpt = _fake(tmp_path / "epoch=3.ckpt")
    assert export_training_checkpoint(ckpt) == tmp_path / "epoch=3-generator"
    assert read_checkpoint(tmp_path / "epoch=3-generator").config["training"]["epoch"] == 3


def _fake(path, kwargs=None, tweak=None, **extra):
    """A checkpoint with the layout Lightning gives handaug-train's module (no optimiser states)."""
    torch.manual_seed(0)
    g = create_generator("resnet", **TINY_GENERATOR)
    state = {f"generator_s2r.{k}": v for k, v in g.state_dict().items()}
    if tweak:
        tweak(state)
    torch.save({"epoch": 3, "global_step": 8, "pytorch-lightning_version": "2.6.6", "state_dict": state,
                "hyper_parameters": {"generator": "resnet", "generator_kwargs": kwargs or dict(TINY_GENERATOR)}, **extra}, path)
    return path


def test_hostile_hyper_parameters_and_weights_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"bomb.ckpt'?: key 'network.kwargs.ngf'.*\[1, 1024\], got 2000"):
        export_training_checkpoint(_fake(tmp_path / "bomb.ckpt", kwargs={"ngf": 2000, "n_blocks": 2}))
    with pytest.raises(ValueError, match=r"do not fit a 'resnet' generator.*shape \[8, 3, 7, 7\] in the file, the network's has \[16, 3, 7, 7\]"):
        export_training_checkpoint(_fake(tmp_path / "shape.ckpt", kwargs={"ngf": 16, "n_blocks": 2}))

    def poison(state):
        state["generator_s2r.model.1.weight"][0, 0, 0, 0] = float("nan")

    with pytest.raises(ValueError, match=r"nan.ckpt.*'generator_s2r.model.1.weight' has 1 NaN"):
        export_training_checkpoint(_fake(tmp_path / "nan.ckpt", tweak=poison))
    with pytest.raises(ValueError, match=r"datamodule_hyper_parameters.background"):
        export_training_checkpoint(_fake(tmp_path / "bg.ckpt", datamodule_hyper_parameters={"background": "nan"}))
    assert not any(p.name.endswith("-generator") for p in tmp_path.iterdir())  # nothing written for a refused file


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_files_that_are_not_a_training_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "x": _Payload(marker)}, tmp_path / "evil.ckpt")
    with pytest.raises(ValueError, match=r"could not be read with torch.load\(weights_only=True\)"):
        export_training_checkpoint(tmp_path / "evil.ckpt")
    assert not marker.exists()  # nothing was executed
    torch.save(torch.zeros(3), tmp_path / "tensor.ckpt")
    with pytest.raises(ValueError, match="not a Lightning checkpoint of handaug-train: it holds a Tensor"):
        export_training_checkpoint(tmp_path / "tensor.ckpt")
    torch.save({"state_dict": {}, "hyper_parameters": {}}, tmp_path / "empty.ckpt")
    with pytest.raises(ValueError, match=r"no generator_s2r\.\* tensors"):
        export_training_checkpoint(tmp_path / "empty.ckpt")
    (tmp_path / "text.ckpt").write_text(json.dumps({"state_dict": {}}))
    with pytest.raises(ValueError, match="not a PyTorch zip file"):
        export_training_checkpoint(tmp_path / "text.ckpt")
    with pytest.raises(FileNotFoundError):
        export_training_checkpoint(tmp_path / "missing.ckpt")
    with pytest.raises(SystemExit) as exit_:
        export_main([str(tmp_path / "tensor.ckpt"), "--format", "handaug"])
    assert exit_.value.code == 2
