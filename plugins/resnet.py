"""The ResNet generator of CycleGAN (Johnson et al.'s style-transfer network), registered as ``"resnet"``.

Layout for ``ngf = 64``, ``n_blocks = 9`` (11,378,179 parameters with instance norm)::

    reflect-pad 3, conv 7×7 → 64, norm, ReLU
    conv 3×3 stride 2 → 128, norm, ReLU
    conv 3×3 stride 2 → 256, norm, ReLU
    n_blocks × [pad, conv 3×3, norm, ReLU, (dropout), pad, conv 3×3, norm] + identity (no ReLU after the sum)
    transposed conv 3×3 stride 2 (padding 1, output padding 1) → 128, norm, ReLU
    transposed conv 3×3 stride 2 → 64, norm, ReLU
    reflect-pad 3, conv 7×7 → 3, tanh            (residual=True: tanh(atanh(0.999 x) + conv))
                                                 (residual_space="log": a gain exp(conv) on [0, 1] intensities)

H-GAN uses 4, 6 or 9 residual blocks. The two stride-2 stages make the network need heights
and widths that are multiples of 4 (:attr:`ResnetGenerator.stride`).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from handaug.arguments import check_choice, check_flag, check_int, check_real
from handaug.hookspecs import hookimpl
from handaug.networks.layers import NORMS, Norm, conv_bias, norm_layer

Padding = Literal["reflect", "replicate", "zero"]
ResidualSpace = Literal["atanh", "log"]
RESIDUAL_SPACES: tuple[str, ...] = ("atanh", "log")
PADDINGS: tuple[str, ...] = ("reflect", "replicate", "zero")

#: Ranges the registry enforces before building (from a command line or a checkpoint config):
#: far beyond any H-GAN/CycleGAN size, small enough that a config cannot ask for a network
#: that does not fit in memory by accident.
RESNET_BOUNDS = {
    "in_channels": (1, 64), "out_channels": (1, 64), "ngf": (1, 1024), "n_blocks": (0, 64), "dropout": (0.0, 1.0),
}


def _padded_conv3x3(channels: int, padding: Padding, bias: bool) -> list[nn.Module]:
    if padding == "zero":
        return [nn.Conv2d(channels, channels, 3, padding=1, bias=bias)]
    pad = nn.ReflectionPad2d(1) if padding == "reflect" else nn.ReplicationPad2d(1)
    return [pad, nn.Conv2d(channels, channels, 3, bias=bias)]


class ResidualBlock(nn.Module):
    """Two 3×3 convolutions with normalisation, added to the input."""

    def __init__(self, channels: int, norm: Norm, padding: Padding, dropout: float) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [*_padded_conv3x3(channels, padding, bias), norm_layer(norm, channels), nn.ReLU(True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [*_padded_conv3x3(channels, padding, bias), norm_layer(norm, channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator.

    Args:
        in_channels: channels of the input image (3 for RGB; 1 to 64).
        out_channels: channels of the output image (1 to 64).
        ngf: filters of the first convolution; doubled at each of the two downsamplings (1 to 1024).
        n_blocks: residual blocks at the bottleneck (H-GAN: 4, 6 or 9; 0 to 64).
        norm: ``"instance"`` (CycleGAN's choice), ``"batch"`` or ``"none"``.
        padding: padding inside the residual blocks: ``"reflect"``, ``"replicate"`` or ``"zero"``.
        dropout: dropout probability inside the residual blocks (0 disables it, CycleGAN's default).
        residual: predict a change of the input instead of a new image:
            ``output = tanh(atanh(0.999 x) + f(x))``, where ``f`` is the network above without its
            final tanh. ``f``'s last layer starts at zero, so the generator starts as the identity
            so a hand keeps its fingers, creases and shading
            from the first step and training only has to learn the change of appearance; a
            plain generator starts from a flat grey image and must learn to redraw the hand's
            inner structure before it can keep it. Off in the H-GAN paper's configs.
        residual_space: how ``f(x)`` changes the input, with ``residual=True``. ``"atanh"``:
            added in atanh space (above). ``"log"``: multiplied in, as a per-pixel, per-channel
            gain on the ``[0, 1]`` intensities: ``(x₀₁ + ε) exp(f(x)) − ε`` (``ε = 0.01``),
            clamped to ``[0, 1]``. A skin-tone or white-balance change is a gain: shadows and
            highlights keep their hue relative to each other. An additive change of the same mean
            takes more red out of a dark red pixel than its share, so salmon shadows turn olive.

    Shapes:
        input ``(B, in_channels, H, W)`` float in ``[-1, 1]``, H and W multiples of 4;
        output ``(B, out_channels, H, W)`` in ``[-1, 1]``.
    """

    stride: int = 4

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: Norm = "instance",
        padding: Padding = "reflect",
        dropout: float = 0.0,
        residual: bool = False,
        residual_space: ResidualSpace = "atanh",
    ) -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels", 1)
        out_channels = check_int(out_channels, "out_channels", 1)
        ngf = check_int(ngf, "ngf", 1)
        n_blocks = check_int(n_blocks, "n_blocks", 0)
        norm = check_choice(norm, "norm", NORMS)
        padding = check_choice(padding, "padding", PADDINGS)
        dropout = check_real(dropout, "dropout", 0.0, 1.0, open_high=True)
        residual = check_flag(residual, "residual")
        if residual and in_channels != out_channels:
            raise ValueError(f"residual=True needs in_channels == out_channels, got {in_channels} and {out_channels}")
        residual_space = check_choice(residual_space, "residual_space", RESIDUAL_SPACES)
        if residual_space != "atanh" and not residual:
            raise ValueError(f"residual_space={residual_space!r} needs residual=True (it says how the residual is applied)")
        self.in_channels = in_channels
        self.residual = residual
        self.residual_space = residual_space
        bias = conv_bias(norm)

        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            norm_layer(norm, ngf),
            nn.ReLU(True),
        ]
        channels = ngf
        for _ in range(2):  # downsampling
            layers += [
                nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1, bias=bias),
                norm_layer(norm, channels * 2),
                nn.ReLU(True),
            ]
            channels *= 2
        layers += [ResidualBlock(channels, norm, padding, float(dropout)) for _ in range(n_blocks)]
        for _ in range(2):  # upsampling
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                norm_layer(norm, channels // 2),
                nn.ReLU(True),
            ]
            channels //= 2
        last = nn.Conv2d(channels, out_channels, 7)
        layers += [nn.ReflectionPad2d(3), last]
        if residual:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            last.zero_init = True  # init_weights keeps it at zero: the generator starts as the identity
        else:
            layers.append(nn.Tanh())
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"input must have shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % self.stride or w % self.stride:
            raise ValueError(
                f"input height and width must be multiples of the generator's stride {self.stride}, got {h}×{w}"
            )
        if self.residual:
            base = x.clamp(-1.0, 1.0)
            if self.residual_space == "log":
                gain = torch.exp(self.model(x))
                return (((base + 1.0) * 0.5 + LOG_EPSILON) * gain - LOG_EPSILON).clamp(0.0, 1.0) * 2.0 - 1.0
            return torch.tanh(torch.atanh(base * RESIDUAL_SCALE) + self.model(x))
        return self.model(x)


#: ``residual_space="log"``: the offset that lets a gain lift a black pixel.
LOG_EPSILON = 0.01

#: ``residual=True`` maps the input through ``atanh(RESIDUAL_SCALE * x)``, finite for ``x = ±1``.
RESIDUAL_SCALE = 0.999


@hookimpl
def handaug_register_generators(registry) -> None:  # noqa: ANN001 - the hookspec types it
    registry.add("resnet", ResnetGenerator, bounds=RESNET_BOUNDS)
