"""A colour-statistics generator loss, registered as ``"colour_statistics"`` (optional; not part of H-GAN).

The adversarial loss is the only thing that tells an H-GAN generator which colours real hands
have, and it learns them slowly: with the demo's few hundred steps on a CPU (and a perceptual
discriminator on random VGG16 features, which judges edges and texture far better than hue) the
translations keep the synthetic skin tone or drift to colours no real hand has. This loss states
the target directly: the mean and covariance of the translated hands' RGB pixels should match
those of the target domain's hands in the same batch (moment matching of the two colour
distributions, as in colour transfer by statistics, Reinhard et al. 2001, in RGB).

For ``direction="synthetic_to_real"`` the translation's statistics are taken over the pixels
inside the source's hand mask in the generator's raw output, and the target's over the pixels
inside the real images' hand masks; ``"real_to_synthetic"`` likewise. A batch holds a few hands
of a few skin tones, so the target's statistics are a running average over batches (an
exponential moving average with ``momentum``, kept per direction in buffers that the training
checkpoint saves), which stands for the whole domain; the target images get no gradient. The
loss is ``|μ_t − μ̄_r|₁ + c |W_t − W̄_r|₁ / 3`` (``c = covariance_weight``) (3-vectors and 3×3 matrices, images in ``[-1, 1]``):
``μ`` is the mean hand colour over the batch, ``W`` the *within-image* covariance, the spread of
each hand's pixels around that hand's own mean colour (its shading and texture).

Why within-image: a generator is a deterministic function of its input, and the synthetic hands
share one skin tone, so it cannot give different hands different tones. Asking the translated
pixels for the real domain's pooled covariance, which is mostly the spread *between* pale and
dark hands, made it paint that spread inside each hand: patches of other colours (cyan on the
palms in one demo run). The between-hand spread of skin tones is therefore not asked for; the
translations move to the real hands' mean tone and their shading contrast.

What it does not do: it knows nothing of where a colour goes on the hand (the adversarial and
cycle terms decide that) and nothing of texture, and it needs hand masks on both sides (without
them it counts the background too). It is blind to structure: pair it with a residual generator
or the ``structure`` loss to keep the fingers.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from handaug.arguments import check_real
from handaug.hookspecs import hookimpl

COLOUR_STATISTICS_BOUNDS = {"weight": (0.0, 1e4), "momentum": (0.0, 1.0), "covariance_weight": (0.0, 1e4)}
DIRECTIONS = ("synthetic_to_real", "real_to_synthetic")
#: Fewer hand pixels than this on either side and the term is zero (no reliable statistics).
MIN_PIXELS = 16


def hand_colour_moments(images: torch.Tensor, masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean ``(3,)`` and within-image covariance ``(3, 3)`` of the RGB values of a batch's hand pixels.

    The mean is over all hand pixels of the batch. The covariance is that of each pixel around its
    *own image's* mean hand colour, pooled over the batch (images weighted by their pixel counts):
    the shading and texture inside a hand, not the spread of skin tones between hands.

    Args:
        images: ``(B, 3, H, W)`` float in ``[-1, 1]``.
        masks: ``(B, 1, H, W)`` in ``{0, 1}`` or ``None`` (every pixel counts).

    Returns:
        the mean, the within-image covariance and the number of pixels counted.
    """
    b = images.shape[0]
    pixels = images.reshape(b, 3, -1)  # (B, 3, H*W)
    weight = torch.ones_like(pixels[:, :1]) if masks is None else (masks > 0.5).to(images.dtype).reshape(b, 1, -1)
    per_image = weight.sum(dim=2)  # (B, 1)
    count = per_image.sum()
    mean = (pixels * weight).sum(dim=(0, 2)) / count.clamp(min=1.0)
    image_means = (pixels * weight).sum(dim=2, keepdim=True) / per_image[..., None].clamp(min=1.0)
    centred = ((pixels - image_means) * weight).permute(1, 0, 2).reshape(3, -1)
    covariance = centred @ centred.T / count.clamp(min=1.0)
    return mean, covariance, int(count.item())


class ColourStatisticsLoss(nn.Module):
    """Match the hand-pixel colour mean and covariance of the translations to the target domain's.

    Args:
        weight: factor of this loss in the generator's objective (per direction).
        momentum: how much of the running target statistics each batch keeps, in ``[0, 1)``
            (0: the batch's own statistics only).
        covariance_weight: factor of the covariance term relative to the mean term (0: match the
            mean colour only). At high total weights the covariance term makes the generator invent
            texture of other hues to reach the real hands' within-hand spread (teal speckle at weight
            100 in the demo's recipe).

    Called by H-GAN with ``target`` and ``target_mask`` as well (``uses_target = True``): the
    batch of the domain the generator translates into, and its hand masks.
    """

    uses_target = True

    def __init__(self, weight: float = 1.0, momentum: float = 0.95, covariance_weight: float = 1.0) -> None:
        super().__init__()
        self.weight = check_real(weight, "weight", 0.0, math.inf)
        self.momentum = check_real(momentum, "momentum", 0.0, 1.0, open_high=True)
        self.covariance_weight = check_real(covariance_weight, "covariance_weight", 0.0, math.inf)
        for direction in DIRECTIONS:
            self.register_buffer(f"{direction}_mean", torch.zeros(3))
            self.register_buffer(f"{direction}_covariance", torch.zeros(3, 3))
            self.register_buffer(f"{direction}_seen", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def _running_target(self, direction: str, mean: torch.Tensor, covariance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        running_mean, running_cov = getattr(self, f"{direction}_mean"), getattr(self, f"{direction}_covariance")
        seen = getattr(self, f"{direction}_seen")
        keep = self.momentum if bool(seen) else 0.0
        running_mean.mul_(keep).add_((1 - keep) * mean.to(running_mean))
        running_cov.mul_(keep).add_((1 - keep) * covariance.to(running_cov))
        seen.fill_(True)
        return running_mean.to(mean), running_cov.to(covariance)

    def forward(
        self,
        source: torch.Tensor,
        translated: torch.Tensor,
        source_mask: torch.Tensor | None,
        direction: str,
        target: torch.Tensor | None = None,
        target_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if target is None:
            raise ValueError("colour_statistics needs the target domain's images: pass target=")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        mean_t, cov_t, n_t = hand_colour_moments(translated, source_mask)
        with torch.no_grad():
            mean_r, cov_r, n_r = hand_colour_moments(target.detach().float(), target_mask)
        if n_r >= MIN_PIXELS and self.training:
            mean_r, cov_r = self._running_target(direction, mean_r, cov_r)
        elif bool(getattr(self, f"{direction}_seen")):
            mean_r, cov_r = getattr(self, f"{direction}_mean"), getattr(self, f"{direction}_covariance")
        if n_t < MIN_PIXELS or (n_r < MIN_PIXELS and not bool(getattr(self, f"{direction}_seen"))):
            return translated.sum() * 0.0
        mean_r, cov_r = mean_r.to(mean_t), cov_r.to(cov_t)
        return (mean_t - mean_r).abs().sum() + self.covariance_weight * (cov_t - cov_r).abs().sum() / 3.0


@hookimpl
def handaug_register_losses(registry) -> None:  # noqa: ANN001 - the hookspec types it
    registry.add("colour_statistics", ColourStatisticsLoss, bounds=COLOUR_STATISTICS_BOUNDS)
