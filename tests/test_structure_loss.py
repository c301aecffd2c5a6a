"""The optional "structure" generator loss: local luminance patterns kept, colour free."""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_datamodule, tiny_hgan, tiny_trainer

from handaug.data.procedural import ProceduralHands
from handaug.registry import create_loss


def _hands(n: int = 4, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    hands = ProceduralHands("synthetic", image_size=size, length=n, seed=3, background="white")
    images = torch.stack([torch.from_numpy(hands[i]["image"]).permute(2, 0, 1) for i in range(n)]).float() / 127.5 - 1
    masks = torch.stack([torch.from_numpy(hands[i]["mask"] > 0)[None] for i in range(n)]).float()
    return images, masks


def test_structure_loss_ignores_colour_and_punishes_lost_structure():
    loss = create_loss("structure")
    x, m = _hands()
    same = loss(source=x, translated=x, source_mask=m, direction="synthetic_to_real")
    recoloured = loss(source=x, translated=(0.6 * x[:, [2, 0, 1]] + 0.2).clamp(-1, 1), source_mask=m, direction="synthetic_to_real")
    skin = torch.tensor([0.4, 0.1, -0.1]).view(1, 3, 1, 1)
    flat = loss(source=x, translated=torch.where(m > 0, skin, x), source_mask=m, direction="synthetic_to_real")
    assert same < 0.02
    assert recoloured < 0.05
    assert flat > 0.9


def test_structure_loss_trains_a_residual_generator(tmp_path):
    model = tiny_hgan(generator_kwargs={"n_blocks": 1, "ngf": 8, "residual": True}, extra_losses=["structure"],
                      extra_loss_kwargs={"structure": {"weight": 2.0}})
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=0)
    trainer.fit(model, datamodule=tiny_datamodule())
    assert torch.isfinite(trainer.callback_metrics["train/structure"])


@pytest.mark.parametrize("kwargs, name", [({"weight": -1}, "weight"), ({"sigma": 0}, "sigma")])
def test_structure_loss_arguments_are_checked(kwargs, name):
    with pytest.raises(ValueError, match=name):
        create_loss("structure", **kwargs)
