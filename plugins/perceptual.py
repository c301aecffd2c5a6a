"""The multi-scale perceptual discriminator of H-GAN (after Sungatullina et al., ECCV 2018), ``"perceptual"``.

The image goes through a frozen VGG16 (:class:`~handaug.networks.vgg.VGG16Features`), tapped at
relu1_2, relu2_2, relu3_3 and relu4_3. A learnable path starts from the first tap and halves
the resolution at every layer (4×4 stride-2 convolution + LeakyReLU). After the layer whose
output has the size of the next tap, that tap is projected by a 3×3 convolution + LeakyReLU to
the path's width and concatenated to it (H-GAN paper, Fig. 2). A 3×3 convolution head gives one
1-channel score map at each output stride (default 8, 16 and 32: 16×16, 8×8 and 4×4 patches at
the 128×128 training crops, 32/16/8 at 256×256).

Unlike the public PerceptualGAN/H-GAN code, which decides where the heads are from the training
resolution and so only runs at that size, the structure here depends only on strides: the same
weights run at any input of at least ``max(output_strides)`` pixels per side (sizes that are
multiples of 16 keep every map exactly aligned).

With ``ndf = 64`` the widths match the reference code at 128 px: path widths 64, 128, 256, 512,
512; concatenated widths 128, 256, 512.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from handaug.arguments import check_int, is_integer
from handaug.hookspecs import hookimpl
from handaug.networks.vgg import TAP_CHANNELS, VGG16Features

#: Ranges the registry enforces before building (see :meth:`handaug.registry.Registry.add`).
PERCEPTUAL_BOUNDS = {"ndf": (1, 1024), "max_channels": (1, 4096), "output_strides": (2, 256)}


def _conv_lrelu(in_channels: int, out_channels: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=1), nn.LeakyReLU(0.2, True)
    )


class PerceptualDiscriminator(nn.Module):
    """Multi-scale discriminator on frozen VGG16 features.

    Args:
        ndf: width of the first learnable layer, doubled per layer up to ``max_channels`` (1 to 1024).
        max_channels: widest learnable layer (1 to 4096).
        output_strides: strides (relative to the input image) at which a score map is output;
            powers of two from 2 to 256, the largest at least 8 so that every VGG tap is used.
        vgg_weights: ``"imagenet"``, a file path, or ``"random"`` (see
            :class:`~handaug.networks.vgg.VGG16Features`).

    Shapes:
        input ``(B, 3, H, W)`` float in ``[-1, 1]``, ``H, W >= max(output_strides)``;
        output a list with one ``(B, 1, H / s, W / s)`` raw score map per stride ``s``
        (finest first; sizes floored).
    """

    def __init__(
        self,
        ndf: int = 64,
        max_channels: int = 512,
        output_strides: Sequence[int] = (8, 16, 32),
        vgg_weights: str = "imagenet",
    ) -> None:
        super().__init__()
        ndf = check_int(ndf, "ndf", 1)
        max_channels = check_int(max_channels, "max_channels", 1)
        strides = sorted({int(s) for s in output_strides}) if all(is_integer(s) for s in output_strides) else []
        if not strides or any(s < 2 or s & (s - 1) for s in strides) or strides[-1] < 8:
            raise ValueError(
                f"output_strides must be powers of two >= 2 with the largest >= 8, got {list(output_strides)!r}"
            )
        self.output_strides = tuple(strides)
        self.vgg = VGG16Features(vgg_weights)

        n_layers = int(math.log2(strides[-1]))
        self.path = nn.ModuleList()
        self.tap_projections = nn.ModuleList()
        self.heads = nn.ModuleDict()
        channels = TAP_CHANNELS[0]
        for i in range(n_layers):
            width = min(ndf * 2**i, max_channels)
            self.path.append(_conv_lrelu(channels, width, 4, 2))
            channels = width
            tap = i + 1  # the layer's output has the size of VGG tap i + 1
            if tap < len(TAP_CHANNELS):
                self.tap_projections.append(_conv_lrelu(TAP_CHANNELS[tap], width, 3, 1))
                channels += width
            stride = 2 ** (i + 1)
            if stride in strides:
                self.heads[str(stride)] = nn.Conv2d(channels, 1, 3, padding=1)

    @property
    def min_size(self) -> int:
        return self.output_strides[-1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"input must have shape (B, 3, H, W), got {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(
                f"input of {tuple(x.shape[-2:])} pixels is too small for output stride {self.min_size}: "
                f"height and width must be at least {self.min_size}"
            )
        taps = self.vgg(x)
        out = taps[0]
        scores = []
        for i, layer in enumerate(self.path):
            out = layer(out)
            if i + 1 < len(taps):
                out = torch.cat([out, self.tap_projections[i](taps[i + 1])], dim=1)
            key = str(2 ** (i + 1))
            if key in self.heads:
                scores.append(self.heads[key](out))
        return scores


@hookimpl
def handaug_register_discriminators(registry) -> None:  # noqa: ANN001 - the hookspec types it
    registry.add("perceptual", PerceptualDiscriminator, bounds=PERCEPTUAL_BOUNDS)
