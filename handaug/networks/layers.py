"""Small building blocks shared by the built-in networks (the plugins' generators and discriminators, SilNet, the metrics' regressor)."""

from __future__ import annotations

from typing import Literal

import torch.nn as nn

Norm = Literal["instance", "batch", "none"]
NORMS: tuple[str, ...] = ("instance", "batch", "none")


def norm_layer(norm: Norm, channels: int) -> nn.Module:
    """CycleGAN's normalisation choices: instance norm without affine parameters or running
    statistics, batch norm with both, or none."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    return nn.Identity()


def double_conv(in_channels: int, out_channels: int, stride: int = 1, bias: bool = False) -> nn.Sequential:
    """Two 3×3 conv + batch norm + ReLU layers (the U-Net block); the first may downsample by ``stride``.

    ``(B, in_channels, H, W)`` → ``(B, out_channels, ceil(H / stride), ceil(W / stride))``.
    ``bias``: convolutions with a bias (redundant before batch norm; the H-GAN reference's U-Net has them).
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=bias),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def conv_bias(norm: Norm) -> bool:
    """Convolutions before batch norm need no bias (its shift replaces it); before instance
    norm CycleGAN keeps the bias, and without normalisation it is needed."""
    return norm != "batch"
