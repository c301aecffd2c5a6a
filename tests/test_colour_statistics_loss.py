"""The optional "colour_statistics" generator loss: hand colours pulled towards the other domain's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiny import tiny_datamodule, tiny_hgan, tiny_trainer

from handaug.data.procedural import ProceduralHands
from handaug.plugins.colour_statistics import ColourStatisticsLoss
from handaug.plugins.geocongan import GeometricConsistencyLoss
from handaug.plugins.structure import StructureLoss
from handaug.registry import create_loss


def _hands(style: str, n: int = 4, size: int = 64, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    hands = ProceduralHands(style, image_size=size, length=n, seed=seed, background="white")
    images = torch.stack([torch.from_numpy(hands[i]["image"]).permute(2, 0, 1) for i in range(n)]).float() / 127.5 - 1
    masks = torch.stack([torch.from_numpy(hands[i]["mask"] > 0)[None] for i in range(n)]).float()
    return images, masks


def _loss(loss, translated, source_mask, target, target_mask):
    return float(loss(source=translated, translated=translated, source_mask=source_mask, direction="synthetic_to_real",
                      target=target, target_mask=target_mask))  # fmt: skip


def test_colour_statistics_is_zero_on_the_targets_own_colours_and_grows_with_the_gap():
    loss = create_loss("colour_statistics")
    synthetic, mask_s = _hands("synthetic")
    real, mask_r = _hands("real")
    assert _loss(loss, real, mask_r, real, mask_r) == pytest.approx(0.0, abs=1e-6)
    gap = _loss(loss, synthetic, mask_s, real, mask_r)
    # Move the synthetic hands' pixels half-way to the real hands' mean colour: the loss falls, and the
    # background (outside the masks) does not count.
    mean_r = (real * mask_r).sum(dim=(0, 2, 3)) / mask_r.sum()
    halfway = synthetic + mask_s * 0.5 * (mean_r.view(1, 3, 1, 1) - synthetic)
    painted_background = torch.where(mask_s > 0, synthetic, torch.tensor([-1.0, 1.0, -1.0]).view(1, 3, 1, 1))
    assert 0 < _loss(loss, halfway, mask_s, real, mask_r) < gap
    assert _loss(loss, painted_background, mask_s, real, mask_r) == pytest.approx(gap, rel=1e-5)


def test_colour_statistics_gradient_moves_the_translation_towards_the_target_colours():
    loss = create_loss("colour_statistics")
    synthetic, mask_s = _hands("synthetic")
    real, mask_r = _hands("real")
    translated = synthetic.clone().requires_grad_(True)
    start = _loss(loss, translated.detach(), mask_s, real, mask_r)
    optimizer = torch.optim.SGD([translated], lr=50.0)
    for _ in range(20):
        optimizer.zero_grad()
        loss(source=synthetic, translated=translated, source_mask=mask_s, direction="synthetic_to_real",
             target=real, target_mask=mask_r).backward()  # fmt: skip
        optimizer.step()
    assert _loss(loss, translated.detach(), mask_s, real, mask_r) < 0.5 * start
    assert torch.equal(translated.detach()[(mask_s == 0).expand_as(synthetic)], synthetic[(mask_s == 0).expand_as(synthetic)])


def test_colour_statistics_needs_the_target_and_checks_its_weight():
    loss = create_loss("colour_statistics")
    x, m = _hands("synthetic", n=1)
    with pytest.raises(ValueError, match="target"):
        loss(source=x, translated=x, source_mask=m, direction="synthetic_to_real")
    with pytest.raises(ValueError, match="weight"):
        create_loss("colour_statistics", weight=-1)


def test_hgan_passes_the_other_domain_to_colour_statistics(tmp_path):
    model = tiny_hgan(generator_kwargs={"n_blocks": 1, "ngf": 8, "residual": True}, extra_losses=["colour_statistics"],
                      extra_loss_kwargs={"colour_statistics": {"weight": 2.0}})
    trainer = tiny_trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=0)
    trainer.fit(model, datamodule=tiny_datamodule())
    value = trainer.callback_metrics["train/colour_statistics"]
    assert torch.isfinite(value) and value > 0


def test_colour_statistics_target_is_a_running_average_kept_in_the_state_dict():
    from handaug.plugins.colour_statistics import hand_colour_moments

    loss = create_loss("colour_statistics", momentum=0.75)
    x, m = _hands("synthetic", n=2)
    light, mask_a = _hands("real", n=2, seed=5)
    dark, mask_b = _hands("real", n=2, seed=9)
    for target, mask in ((light, mask_a), (dark, mask_b)):
        loss(source=x, translated=x, source_mask=m, direction="synthetic_to_real", target=target, target_mask=mask)
    (mean_a, cov_a, _), (mean_b, cov_b, _) = hand_colour_moments(light, mask_a), hand_colour_moments(dark, mask_b)
    state = loss.state_dict()
    torch.testing.assert_close(state["synthetic_to_real_mean"], 0.75 * mean_a + 0.25 * mean_b)
    torch.testing.assert_close(state["synthetic_to_real_covariance"], 0.75 * cov_a + 0.25 * cov_b)
    assert not bool(state["real_to_synthetic_seen"])
    restored = create_loss("colour_statistics", momentum=0.75)
    restored.load_state_dict(state)
    restored.eval()  # in eval mode the running target is used and left as it is
    kwargs = dict(source=x, translated=x, source_mask=m, direction="synthetic_to_real", target=dark, target_mask=mask_b)
    assert float(restored(**kwargs)) == pytest.approx(float(loss.eval()(**kwargs)))
    torch.testing.assert_close(restored.state_dict()["synthetic_to_real_mean"], state["synthetic_to_real_mean"])


def test_colour_statistics_does_not_ask_one_skin_tone_for_the_spread_between_hands():
    # Target: flat hands of two different tones. Its within-image covariance is zero; the spread is
    # all between the hands. A deterministic generator fed one synthetic tone cannot reproduce that
    # spread, so a translation that paints every hand the targets' mean tone, flat, scores 0, and
    # one that paints half of each hand pale and half dark (the patches the spread would ask for) scores more.
    from handaug.plugins.colour_statistics import hand_colour_moments

    loss = create_loss("colour_statistics", momentum=0.0)
    _, masks = _hands("synthetic", n=2)
    pale, dark = torch.tensor([0.8, 0.5, 0.3]), torch.tensor([-0.4, -0.6, -0.7])
    target = torch.stack([pale, dark]).view(2, 3, 1, 1) * masks + (1 - masks)
    mean_t, within_t, _ = hand_colour_moments(target, masks)
    torch.testing.assert_close(within_t, torch.zeros(3, 3), atol=1e-6, rtol=0)
    flat = mean_t.view(1, 3, 1, 1).expand(2, 3, 64, 64) * masks + (1 - masks)
    left = (torch.arange(64) < 32).view(1, 1, 1, 64)
    patched = torch.where(left, pale.view(1, 3, 1, 1), dark.view(1, 3, 1, 1)) * masks + (1 - masks)
    assert _loss(loss, flat, masks, target, masks) < 0.02
    assert _loss(loss, patched, masks, target, masks) > 0.2


def test_colour_statistics_covariance_weight_zero_matches_the_mean_only():
    synthetic, mask_s = _hands("synthetic")
    real, mask_r = _hands("real")
    full, mean_only = create_loss("colour_statistics"), create_loss("colour_statistics", covariance_weight=0.0)
    # shading scaled about the hand's mean: the same mean colour, another within-hand spread
    mean_s = (synthetic * mask_s).sum(dim=(0, 2, 3), keepdim=True) / mask_s.sum()
    flatter = torch.where(mask_s > 0, mean_s + 0.5 * (synthetic - mean_s), synthetic)
    assert _loss(mean_only, flatter, mask_s, real, mask_r) == pytest.approx(_loss(mean_only, synthetic, mask_s, real, mask_r), abs=1e-5)
    assert _loss(full, flatter, mask_s, real, mask_r) != pytest.approx(_loss(full, synthetic, mask_s, real, mask_r), abs=1e-3)
    with pytest.raises(ValueError, match="covariance_weight"):
        create_loss("colour_statistics", covariance_weight=-0.5)


def test_loss_weights_follow_the_one_rule():
    """The losses' weights take numpy scalars (stored as floats) and refuse bools and infinities."""
    loss = ColourStatisticsLoss(weight=np.float32(2), momentum=np.float64(0.5), covariance_weight=np.int64(1))
    assert (loss.weight, loss.momentum, loss.covariance_weight) == (2.0, 0.5, 1.0) and type(loss.momentum) is float
    assert type(StructureLoss(weight=np.float32(0.5), sigma=np.int64(2)).sigma) is float
    assert type(GeometricConsistencyLoss(weight=np.float64(0.5)).weight) is float
    for make in (ColourStatisticsLoss, StructureLoss, GeometricConsistencyLoss):
        for value in (True, math.inf, -1.0):
            with pytest.raises(ValueError, match=rf"^weight must be a non-negative number, got {value!r}$"):
                make(weight=value)
    with pytest.raises(ValueError, match=r"^momentum must be a number in \[0, 1\), got 1$"):
        ColourStatisticsLoss(momentum=1)
    with pytest.raises(ValueError, match=r"^sigma must be positive, got 0$"):
        StructureLoss(sigma=0)
