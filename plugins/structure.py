"""A structure-keeping generator loss, registered as ``"structure"`` (optional; not part of H-GAN).

The translation of a hand should look real *and* still show the pose its keypoints describe:
finger gaps, knuckles, creases and shading edges must survive, while colour, texture and light
may change. :class:`StructureLoss` compares the local luminance *pattern* of the source and its
translation inside the source's hand mask, by the local correlation of luminance (close to
SSIM's structure term, Wang et al. 2004):

    s(x, y) = σ_xy / (σ_x σ_y + C)

over Gaussian windows, which is about 1 where one window's luminance is a positive affine
function of the other's (a brightness, contrast or skin-tone change keeps it there), 0 where the
translation is flat or unrelated, and negative where its shading is inverted. The loss is
``1 - Σ σ_x s / Σ σ_x`` over the hand's pixels: windows with more source contrast count more, and
flat source regions (nothing to keep) barely count. Unlike SSIM's term there is no constant in
the numerator, so a flat translation of a textured source is not scored as a match.

It says nothing about colour (the adversarial loss sets that) and is blind to structure that has
no luminance contrast; the hand mask keeps the background out of it.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from handaug.arguments import check_real
from handaug.hookspecs import hookimpl

#: ITU-R BT.601 luma weights of R, G, B.
LUMA = (0.299, 0.587, 0.114)
#: Stabilises windows with no contrast (images in [-1, 1]; a standard deviation of 0.01 is ~1.3 grey levels).
STRUCTURE_C = 1e-4

STRUCTURE_BOUNDS = {"weight": (0.0, 1e4), "sigma": (0.3, 16.0)}


def _gaussian_window(sigma: float) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def local_structure(
    source: torch.Tensor, translated: torch.Tensor, mask: torch.Tensor | None = None, sigma: float = 1.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local correlation of the two images' luminance, per pixel.

    Args:
        source, translated: ``(B, 3, H, W)`` float in ``[-1, 1]``.
        mask: optional ``(B, 1, H, W)`` in ``{0, 1}``: the windows' statistics are taken over
            these pixels only (normalised convolution), so the silhouette's edge against the
            background, which compositing keeps anyway, is not counted as structure.
        sigma: standard deviation of the Gaussian window, in pixels.

    Returns:
        the local correlation ``(B, 1, H, W)`` in ``[-1, 1]`` and the source's local standard
        deviation ``(B, 1, H, W)``.
    """
    luma = torch.tensor(LUMA, dtype=source.dtype, device=source.device).view(1, 3, 1, 1)
    x = (source * luma).sum(1, keepdim=True)
    y = (translated.to(source.dtype) * luma).sum(1, keepdim=True)
    g = _gaussian_window(sigma).to(source)
    pad = g.numel() // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        t = F.pad(t, (pad, pad, pad, pad), mode="replicate")
        t = F.conv2d(t, g.view(1, 1, 1, -1))
        return F.conv2d(t, g.view(1, 1, -1, 1))

    m = torch.ones_like(x) if mask is None else mask.to(x.dtype)
    coverage = blur(m).clamp(min=1e-6)

    def mean(t: torch.Tensor) -> torch.Tensor:
        return blur(m * t) / coverage

    mx, my = mean(x), mean(y)
    vx = (mean(x * x) - mx * mx).clamp(min=0)
    vy = (mean(y * y) - my * my).clamp(min=0)
    cxy = mean(x * y) - mx * my
    sx = torch.sqrt(vx + 1e-12)
    return cxy / (sx * torch.sqrt(vy + 1e-12) + STRUCTURE_C), sx


class StructureLoss(nn.Module):
    """``1 -`` the contrast-weighted mean of :func:`local_structure` between the source and its raw translation, over the source's hand.

    Args:
        weight: factor of this loss in the generator's objective (per direction).
        sigma: window of the structure term, in pixels (SSIM's 1.5 by default).

    Without a hand mask (a source that has none) every pixel counts.
    """

    def __init__(self, weight: float = 1.0, sigma: float = 1.5) -> None:
        super().__init__()
        self.weight = check_real(weight, "weight", 0.0, math.inf)
        self.sigma = check_real(sigma, "sigma", 0.0, math.inf)
        if self.sigma == 0:
            raise ValueError(f"sigma must be positive, got {sigma!r}")

    def forward(self, source: torch.Tensor, translated: torch.Tensor, source_mask: torch.Tensor | None, direction: str) -> torch.Tensor:
        s, weight = local_structure(source, translated, source_mask, self.sigma)
        if source_mask is not None:
            weight = weight * source_mask.to(weight.dtype)
        return 1.0 - (s * weight).sum() / weight.sum().clamp(min=1e-6)


@hookimpl
def handaug_register_losses(registry) -> None:  # noqa: ANN001 - the hookspec types it
    registry.add("structure", StructureLoss, bounds=STRUCTURE_BOUNDS)
