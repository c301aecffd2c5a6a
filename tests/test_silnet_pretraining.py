"""GeoConGAN parity (issue 10, item 8): the reference's SilNet shape, its separate pretraining, and loading it frozen."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from tiny import tiny_hgan

import handaug.silnet.pretraining as pretraining
from handaug.cli.silnet import main as silnet_main
from handaug.data.procedural import ProceduralHands
from handaug.networks.silnet import SILNET_SHAPES, SilNet
from handaug.plugins.geocongan import GeometricConsistencyLoss
from handaug.registry import create_loss
from handaug.silnet.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_silnet, read_silnet_checkpoint, save_silnet
from handaug.silnet.pretraining import SilNetPretraining, pretrain_silnet

#: Procedural hands at 40 px, 32 px crops, a SilNet of the reference's shape but 4 channels wide.
TINY = dict(base_channels=4, crop_size=32, val_size=40, val_count=8, batch_size=8, val_batch_size=4, val_batches=2,
            synthetic_kwargs={"length": 40, "image_size": 40}, real_kwargs={"length": 40, "image_size": 40})


@pytest.fixture(autouse=True)
def _one_thread():
    """Networks this small run fastest on one thread (and several threads crawl on a busy shared CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def trained_silnet(seed=0, **shape):
    torch.manual_seed(seed)
    net = SilNet(**(shape or {"base_channels": 4, "depth": 2, "conv_bias": True}))
    net.train()
    with torch.no_grad():  # move the BatchNorm statistics away from their defaults
        net(torch.randn(4, 3, 16, 16))
    return net.eval()


# ------------------------------------------------------------------------------ the reference's shape


def test_reference_silnet_shape_is_the_unet_of_width_64_with_2_poolings():
    reference = SilNet(**SILNET_SHAPES["hgan"])
    # The reference's UNet(num_classes=1, input_channels=3, num_layers=3, features_start=64), counted by hand:
    # double convs 3→64, 64→128, 128→256, 256→128, 128→64 (3×3 convs with bias, BatchNorm), two 2×2
    # transposed convs, a 1×1 head.
    assert sum(p.numel() for p in reference.parameters()) == 1_865_409
    assert reference.depth == 2 and reference.down[-1][0].out_channels == 256
    assert all(conv.bias is not None for conv in reference.modules() if isinstance(conv, torch.nn.Conv2d))
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in reference.modules()) == 10
    assert reference.eval()(torch.zeros(1, 3, 36, 52)).shape == (1, 1, 36, 52)
    # handaug's own shape stays the default: widths 16-128, 3 poolings, no conv bias.
    default = SilNet()
    assert default.shape == SILNET_SHAPES["handaug"] == {"base_channels": 16, "depth": 3, "conv_bias": False}
    assert default.down[-1][0].out_channels == 128 and default.down[0][0].bias is None
    with pytest.raises(ValueError, match="^conv_bias must be True or False, got 'yes'$"):
        SilNet(conv_bias="yes")
    assert SilNet(base_channels=2, depth=1, conv_bias=np.True_).shape["conv_bias"] is True  # a plain bool: saved as JSON


# ------------------------------------------------------------------------------ the checkpoint


def test_silnet_checkpoint_round_trips_bit_identically(tmp_path):
    net = trained_silnet()
    first = save_silnet(net, tmp_path / "a", training={"steps": 3})
    loaded = load_silnet(first)
    assert loaded.shape == net.shape and not loaded.training
    for (name, a), (other, b) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert name == other and a.dtype == b.dtype and torch.equal(a, b), name
    second = save_silnet(loaded, tmp_path / "b", training={"steps": 3})
    assert (first / WEIGHTS_FILE).read_bytes() == (second / WEIGHTS_FILE).read_bytes()
    config = json.loads((first / CONFIG_FILE).read_text())
    assert config["format"] == "handaug.silnet" and config["network"] == net.shape and config["training"] == {"steps": 3}
    assert sorted(p.name for p in first.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]  # no temporaries left


def test_silnet_checkpoint_refuses_what_does_not_fit(tmp_path):
    path = save_silnet(trained_silnet(), tmp_path / "ok")
    config = json.loads((path / CONFIG_FILE).read_text())
    with pytest.raises(FileNotFoundError, match="not a directory"):
        read_silnet_checkpoint(path / WEIGHTS_FILE)
    for key, value, message in (
        ("network", {**config["network"], "base_channels": 4096}, r"network.base_channels' must be an integer in \[1, 256\]"),
        ("network", {**config["network"], "conv_bias": 1}, "conv_bias' must be true or false"),
        ("format", "handaug.generator", "must be 'handaug.silnet'"),
        ("format_version", 9, "format_version"),
    ):
        (path / CONFIG_FILE).write_text(json.dumps({**config, key: value}))
        with pytest.raises(ValueError, match=message):
            read_silnet_checkpoint(path)
    (path / CONFIG_FILE).write_text(json.dumps({**config, "network": {**config["network"], "base_channels": 8}}))
    with pytest.raises(ValueError, match="do not fit a SilNet"):
        load_silnet(path)
    (path / CONFIG_FILE).write_text(json.dumps(config))
    (path / WEIGHTS_FILE).write_bytes((path / WEIGHTS_FILE).read_bytes() + b" ")
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        load_silnet(path)


# ------------------------------------------------------------------------------ frozen in the loss


def test_loss_with_a_silnet_checkpoint_is_frozen_and_has_no_optimiser(tmp_path):
    net = trained_silnet()
    path = save_silnet(net, tmp_path / "silnet")
    loss = create_loss("geoconsistency", silnet_checkpoint=str(path))
    assert loss.silnet.shape == net.shape  # the checkpoint's shape, without repeating it
    assert not loss.trainable and not any(p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.silnet.training  # BatchNorm keeps its running statistics
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), loss.silnet.state_dict().values()))
    translated = torch.rand(2, 3, 16, 16, requires_grad=True)
    loss(source=translated.detach(), translated=translated, source_mask=torch.ones(2, 1, 16, 16), direction="synthetic_to_real").backward()
    assert translated.grad is not None and translated.grad.abs().sum() > 0  # the generator still learns through it
    model = tiny_hgan(discriminator="patch", discriminator_kwargs={"ndf": 8}, mask_generated=False, extra_losses=["geoconsistency"],
                      extra_loss_kwargs={"geoconsistency": {"silnet_checkpoint": str(path)}})
    optimizers = model.configure_optimizers()
    assert len(optimizers) == 2  # generators and discriminators only: no auxiliary SilNet optimiser
    silnet_params = {id(p) for p in model.extra_losses.parameters()}
    assert not silnet_params & {id(p) for opt in optimizers for group in opt.param_groups for p in group["params"]}
    with pytest.raises(ValueError, match=r"base_channels=16 does not match silnet_checkpoint"):
        GeometricConsistencyLoss(silnet_checkpoint=str(path), base_channels=16)
    with pytest.raises(ValueError, match="not both"):
        GeometricConsistencyLoss(silnet_checkpoint=str(path), silnet_weights=str(path / WEIGHTS_FILE))
    with pytest.raises(FileNotFoundError, match="not a directory"):
        GeometricConsistencyLoss(silnet_checkpoint=str(tmp_path / "missing"))


# ------------------------------------------------------------------------------ the pretraining


def test_pretraining_reduces_the_loss_on_procedural_hands_with_the_references_optimiser(tmp_path, monkeypatch):
    seen = {"clip": []}
    rmsprop, clip = torch.optim.RMSprop, torch.nn.utils.clip_grad_norm_

    def spy_rmsprop(params, **kwargs):
        seen["rmsprop"] = kwargs
        return rmsprop(params, **kwargs)

    def spy_clip(params, max_norm, *args, **kwargs):
        seen["clip"].append(max_norm)
        return clip(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.optim, "RMSprop", spy_rmsprop)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy_clip)
    result = pretrain_silnet(tmp_path / "silnet", SilNetPretraining(max_steps=24, val_every=12, **TINY), log=None)
    assert seen["rmsprop"] == {"lr": 1e-3, "weight_decay": 1e-8, "momentum": 0.9} and seen["clip"] == [0.5] * 24
    first, last = np.mean(result.train_losses[:4]), np.mean(result.train_losses[-4:])
    assert result.steps == 24 and last < 0.8 * first, result.train_losses
    assert [step for step, _ in result.val_losses] == [12, 24]
    kept = load_silnet(tmp_path / "silnet")
    assert kept.shape == {"base_channels": 4, "depth": 2, "conv_bias": True}  # the reference's shape, narrower
    config = json.loads((tmp_path / "silnet" / CONFIG_FILE).read_text())
    assert config["training"]["best_val_loss"] == result.best_val_loss and config["training"]["step"] == result.best_step


def test_pretraining_stops_early_and_keeps_the_best_weights(tmp_path, monkeypatch):
    curve = iter([0.5, 0.4, 0.45, 0.6, 0.7, 0.1])
    snapshots = {}
    real_save = pretraining.save_silnet

    def spy_save(silnet, out, training):
        snapshots[training["step"]] = {k: v.clone() for k, v in silnet.state_dict().items()}
        return real_save(silnet, out, training=training)

    monkeypatch.setattr(pretraining, "_validate", lambda *args: next(curve))
    monkeypatch.setattr(pretraining, "save_silnet", spy_save)
    result = pretrain_silnet(tmp_path / "silnet", SilNetPretraining(val_every=2, patience=3, max_steps=40, **TINY), log=None)
    assert result.stopped_early and result.steps == 10 and result.best_step == 4 and result.best_val_loss == 0.4
    assert sorted(snapshots) == [2, 4]  # written at each improvement only
    kept = load_silnet(tmp_path / "silnet").state_dict()
    assert all(torch.equal(kept[k], v) for k, v in snapshots[4].items())


def test_cli_trains_on_procedural_hands_and_names_sources_without_masks(tmp_path, capsys):
    out = tmp_path / "silnet"
    argv = ["--out", str(out), "--base-channels", "4", "--crop-size", "32", "--val-size", "40", "--val-count", "4",
            "--max-steps", "3", "--val-every", "3", "--val-batches", "1",
            "--synthetic-kwargs", '{"length": 12, "image_size": 40}', "--real-kwargs", '{"length": 12, "image_size": 40}']
    assert silnet_main(argv) == 0
    assert "SilNet pretraining: 3 steps" in capsys.readouterr().out
    assert read_silnet_checkpoint(out).shape["base_channels"] == 4
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, sample in enumerate(ProceduralHands("real", image_size=40, length=12, seed=3)):
        if i == 12:
            break
        cv2.imwrite(str(folder / f"{i:02d}.png"), sample["image"])
    with pytest.raises(SystemExit) as err:
        silnet_main(["--out", str(tmp_path / "x"), "--real", str(folder), "--val-count", "2", "--crop-size", "32"])
    assert err.value.code == 2
    assert f"the real source {str(folder)!r} has none" in capsys.readouterr().err
