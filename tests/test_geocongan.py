"""GeoConGAN as a plugin: SilNet, the geometric-consistency loss, and training with it."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from safetensors.torch import save_file
from tiny import tiny_datamodule, tiny_hgan, tiny_trainer

from handaug.data.procedural import ProceduralHands
from handaug.networks.silnet import SilNet, train_silnet
from handaug.plugins.geocongan import GeometricConsistencyLoss
from handaug.registry import create_loss


def hand_tensors(n=24, size=32, seed=0):
    data = ProceduralHands("synthetic", image_size=size, length=n, seed=seed)
    images = torch.stack([torch.from_numpy(data[i]["image"]).permute(2, 0, 1) for i in range(n)]).float() / 127.5 - 1
    masks = torch.stack([torch.from_numpy(data[i]["mask"] > 0) for i in range(n)]).unsqueeze(1).float()
    return images, masks


def test_silnet_shapes_at_any_size():
    net = SilNet(base_channels=4, depth=3).eval()
    assert net(torch.zeros(2, 3, 37, 50)).shape == (2, 1, 37, 50)
    with pytest.raises(ValueError, match="input"):
        net(torch.zeros(2, 1, 32, 32))


def test_silnet_learns_procedural_hand_masks():
    torch.manual_seed(0)
    images, masks = hand_tensors()
    net = SilNet(base_channels=8, depth=2)
    history = train_silnet(net, images, masks, steps=60, lr=3e-3, batch_size=8)
    assert sum(history[-5:]) / 5 < 0.5 * sum(history[:5]) / 5
    with torch.no_grad():
        predicted = net(images) > 0
    iou = (predicted & (masks > 0)).sum() / (predicted | (masks > 0)).sum()
    assert iou > 0.6


def test_loss_is_registered_and_prefers_the_right_shape():
    torch.manual_seed(0)
    images, masks = hand_tensors(16)
    loss = create_loss("geoconsistency", base_channels=8, depth=2)
    train_silnet(loss.silnet, images, masks, steps=60, lr=3e-3, batch_size=8)
    same = loss(source=images, translated=images, source_mask=masks, direction="synthetic_to_real")
    flipped = loss(source=images, translated=images.flip(-1), source_mask=masks, direction="synthetic_to_real")
    assert same < flipped
    # Without masks the target is SilNet's own view of the source.
    assert loss(source=images, translated=images, source_mask=None, direction="real_to_synthetic") < flipped


def test_silnet_weights_from_a_file_are_frozen(tmp_path):
    net = SilNet(base_channels=4, depth=2)
    save_file(net.state_dict(), str(tmp_path / "silnet.safetensors"))
    loss = GeometricConsistencyLoss(silnet_weights=str(tmp_path / "silnet.safetensors"), base_channels=4, depth=2)
    assert not loss.trainable
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), loss.silnet.state_dict().values()))
    loss.train()
    assert not loss.silnet.training
    with pytest.raises(ValueError, match="does not fit SilNet"):
        GeometricConsistencyLoss(silnet_weights=str(tmp_path / "silnet.safetensors"), base_channels=8, depth=2)
    with pytest.raises(FileNotFoundError):
        GeometricConsistencyLoss(silnet_weights=str(tmp_path / "missing.safetensors"))


def test_training_with_the_extra_loss_trains_silnet_apart_from_the_generators(tmp_path):
    L.seed_everything(0)
    model = tiny_hgan(discriminator="patch", discriminator_kwargs={"ndf": 8}, mask_generated=False,
                      extra_losses=["geoconsistency"], extra_loss_kwargs={"geoconsistency": {"base_channels": 4, "depth": 2}})
    silnet_before = [p.clone() for p in model.extra_losses["geoconsistency"].parameters()]
    logged = []

    class Spy(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            logged.append({k: float(v) for k, v in trainer.callback_metrics.items()})

    trainer = tiny_trainer(tmp_path, max_steps=3 * 3, limit_val_batches=0, callbacks=[Spy()])
    trainer.fit(model, datamodule=tiny_datamodule())
    assert len(trainer.optimizers) == 3
    generator_params = {id(p) for p in model.generator_s2r.parameters()} | {id(p) for p in model.generator_r2s.parameters()}
    silnet_params = {id(p) for p in model.extra_losses.parameters()}
    assert not generator_params & {id(p) for g in trainer.optimizers[2].param_groups for p in g["params"]}
    assert silnet_params == {id(p) for g in trainer.optimizers[2].param_groups for p in g["params"]}
    assert any(not torch.equal(a, b) for a, b in zip(silnet_before, model.extra_losses["geoconsistency"].parameters()))
    assert {"train/geoconsistency", "train/geoconsistency_auxiliary"} <= set(logged[-1])


def test_extra_loss_kwargs_must_name_selected_losses():
    with pytest.raises(ValueError, match="extra_loss_kwargs"):
        tiny_hgan(extra_loss_kwargs={"geoconsistency": {}})
    with pytest.raises(ValueError, match="unknown loss name 'geo'"):
        tiny_hgan(extra_losses=["geo"])
