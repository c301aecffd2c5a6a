"""SilNet, GeoConGAN's hand-segmentation U-Net (Mueller et al., "GANerated Hands", CVPR 2018).

:class:`SilNet` maps ``(B, 3, H, W)`` float images in ``[-1, 1]`` to hand logits ``(B, 1, H, W)``
(``sigmoid > 0.5``, i.e. logits ``> 0``, is the silhouette). Its shape (:data:`SILNET_SHAPES`):
handaug's default is a U-Net of widths 16-128 with 3 poolings and bias-free convolutions; the H-GAN
reference's is widths 64-256 with 2 poolings and convolutions with a bias (``base_channels=64,
depth=2, conv_bias=True``), BatchNorm in both.

Used by the ``geoconsistency`` loss (the ``geocongan`` plugin), by its checkpoint format and
pretraining (:mod:`handaug.silnet`), and by the shape-preservation measure
(:mod:`handaug.metrics.shape`), which fits one with :func:`train_silnet`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from handaug.arguments import check_flag, check_int
from handaug.fitting import fit, random_batches
from handaug.networks.layers import double_conv

__all__ = ["SILNET_BOUNDS", "SILNET_SHAPES", "SilNet", "silnet_loss", "train_silnet"]


#: Ranges of SilNet's ``base_channels`` and ``depth`` that handaug builds and reads: the bounds the
#: registry enforces on the ``geoconsistency`` loss's arguments (see :meth:`handaug.registry.Registry.add`),
#: and those a SilNet checkpoint's config and pretraining's settings must keep to.
SILNET_BOUNDS: dict[str, tuple[int, int]] = {"base_channels": (1, 256), "depth": (1, 8)}

#: SilNet shapes by name: handaug's default, and the H-GAN reference code's (a U-Net of widths
#: 64, 128, 256: two poolings, BatchNorm, convolutions with a bias).
SILNET_SHAPES: dict[str, dict[str, int | bool]] = {
    "handaug": {"base_channels": 16, "depth": 3, "conv_bias": False},
    "hgan": {"base_channels": 64, "depth": 2, "conv_bias": True},
}


class SilNet(nn.Module):
    """A small U-Net that segments the hand: ``(B, 3, H, W)`` in ``[-1, 1]`` → logits ``(B, 1, H, W)``.

    Args:
        base_channels: width of the first level, doubled at each level down.
        depth: number of 2× downsamplings (inputs need H and W that are multiples of ``2**depth``;
            other sizes are padded inside and cropped back).
        conv_bias: the 3×3 convolutions have a bias (the reference's U-Net; redundant before
            BatchNorm, so handaug's default leaves it out).

    ``sigmoid(logits) > 0.5`` is the predicted hand silhouette. ``SilNet(**SILNET_SHAPES["hgan"])``
    is the H-GAN reference's shape.
    """

    def __init__(self, base_channels: int = 16, depth: int = 3, conv_bias: bool = False) -> None:
        super().__init__()
        base_channels = check_int(base_channels, "base_channels", 1)
        depth = check_int(depth, "depth", 1)
        conv_bias = check_flag(conv_bias, "conv_bias")
        self.depth = depth
        self.shape = {"base_channels": base_channels, "depth": depth, "conv_bias": conv_bias}
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList(
            [double_conv(3, widths[0], bias=conv_bias)] + [double_conv(widths[i], widths[i + 1], bias=conv_bias) for i in range(depth)]
        )
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth)))
        self.merge = nn.ModuleList(double_conv(2 * widths[i], widths[i], bias=conv_bias) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"input must have shape (B, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        multiple = 2**self.depth
        x = F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="replicate")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)[..., :h, :w]


def silnet_loss(silnet: SilNet, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of ``silnet`` on ``images`` ``(N, 3, H, W)`` in ``[-1, 1]`` against ``masks`` ``(N, 1, H, W)`` in {0, 1}."""
    return F.binary_cross_entropy_with_logits(silnet(images), masks.to(images.dtype))


def train_silnet(
    silnet: SilNet,
    images: torch.Tensor,
    masks: torch.Tensor,
    steps: int = 200,
    lr: float = 1e-3,
    batch_size: int = 16,
    seed: int = 0,
) -> list[float]:
    """Fit ``silnet`` to ``images`` ``(N, 3, H, W)`` in ``[-1, 1]`` and ``masks`` ``(N, 1, H, W)`` in {0, 1}.

    Adam on random mini-batches (drawn with a generator seeded by ``seed``; see
    :func:`handaug.fitting.fit`). Leaves the network in eval mode and returns the loss of every step.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
    if masks.shape != (images.shape[0], 1, *images.shape[-2:]):
        raise ValueError(f"masks must have shape {(images.shape[0], 1, *images.shape[-2:])}, got {tuple(masks.shape)}")
    steps = check_int(steps, "steps", 1)
    picks = random_batches(images.shape[0], batch_size, steps, torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(silnet.parameters(), lr=lr)
    return fit(silnet, picks, lambda pick: silnet_loss(silnet, images[pick], masks[pick]), optimizer)
