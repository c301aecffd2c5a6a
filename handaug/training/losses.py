"""Least-squares GAN losses over one or several discriminator output scales (H-GAN eq. 1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

Scores = torch.Tensor | Sequence[torch.Tensor]


def as_scales(scores: Scores) -> list[torch.Tensor]:
    """A discriminator's output as a list of score maps (one map → a list of one)."""
    if isinstance(scores, torch.Tensor):
        return [scores]
    scales = list(scores)
    if not scales or not all(isinstance(s, torch.Tensor) for s in scales):
        raise TypeError(f"a discriminator must return a tensor or a non-empty list of tensors, got {type(scores).__name__}")
    return scales


def lsgan_discriminator_loss(real_scores: Scores, fake_scores: Scores) -> torch.Tensor:
    """``sum_i 0.5 * (mean((Y_i - 1)^2) + mean(Z_i^2))`` over output scales ``i``.

    ``Y_i`` are the scores of real images of the discriminator's domain, ``Z_i`` those of
    translated images (H-GAN eq. 1 and its multi-scale sum).
    """
    total = None
    for real, fake in zip(as_scales(real_scores), as_scales(fake_scores), strict=True):
        term = 0.5 * (F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake)))
        total = term if total is None else total + term
    assert total is not None
    return total


def lsgan_generator_loss(fake_scores: Scores) -> torch.Tensor:
    """``sum_i mean((Z_i - 1)^2)``: the generator wants its translations scored as real.

    Paper eq. 1 writes a factor 1/2 here too; like CycleGAN and the public H-GAN code we leave
    it out, which only rescales the adversarial term against the cycle and identity terms.
    """
    total = None
    for fake in as_scales(fake_scores):
        term = F.mse_loss(fake, torch.ones_like(fake))
        total = term if total is None else total + term
    assert total is not None
    return total
