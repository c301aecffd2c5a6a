"""PatchGAN (``"patch"``) and PixelGAN (``"pixel"``) discriminators of pix2pix / CycleGAN.

``"patch"`` with ``n_layers = 3`` is the 70×70 PatchGAN: each output score sees a 70×70 input
patch; 2,764,737 parameters with ``ndf = 64`` and instance norm, a 30×30 map at 256×256 input.
``"pixel"`` is the 1×1 PatchGAN: every pixel is judged on its own colour (pixCycleGAN in the
H-GAN paper).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from handaug.arguments import check_choice, check_int
from handaug.hookspecs import hookimpl
from handaug.networks.layers import NORMS, Norm, conv_bias, norm_layer

#: Ranges the registry enforces before building (see :meth:`handaug.registry.Registry.add`).
PATCH_BOUNDS = {"in_channels": (1, 64), "ndf": (1, 1024), "n_layers": (1, 8)}
PIXEL_BOUNDS = {"in_channels": (1, 64), "ndf": (1, 1024)}


def _check_input(x: torch.Tensor, in_channels: int) -> None:
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"input must have shape (B, {in_channels}, H, W), got {tuple(x.shape)}")


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``n_layers`` stride-2 4×4 convolutions, one stride-1, and a 1-channel head.

    Args:
        in_channels: image channels (1 to 64).
        ndf: filters of the first layer, doubled per layer up to ``8 * ndf`` (1 to 1024).
        n_layers: stride-2 layers (3 gives the 70×70 receptive field; 1 to 8).
        norm: ``"instance"``, ``"batch"`` or ``"none"`` (never on the first layer).

    Shapes:
        input ``(B, in_channels, H, W)`` float in ``[-1, 1]``, ``H, W >= min_size``;
        output ``(B, 1, h, w)`` raw scores (no sigmoid), ``h = H / 2**n_layers - 2``.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: Norm = "instance") -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels", 1)
        ndf = check_int(ndf, "ndf", 1)
        n_layers = check_int(n_layers, "n_layers", 1)
        norm = check_choice(norm, "norm", NORMS)
        self.in_channels = in_channels
        self.n_layers = n_layers
        bias = conv_bias(norm)

        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                norm_layer(norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    @property
    def min_size(self) -> int:
        """Smallest input side that still gives a 1×1 output map."""
        # n_layers stride-2 halvings, then two 4×4 stride-1 convolutions that each remove 1.
        return 3 * 2**self.n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels)
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(
                f"input of {tuple(x.shape[-2:])} pixels is too small for a {self.n_layers}-layer PatchGAN: "
                f"height and width must be at least {self.min_size}"
            )
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """PixelGAN (1×1 PatchGAN): three 1×1 convolutions, one score per pixel.

    Args: ``in_channels`` (1 to 64), ``ndf`` (1 to 1024), ``norm`` as for :class:`PatchDiscriminator`.

    Shapes:
        input ``(B, in_channels, H, W)`` float in ``[-1, 1]``, any size;
        output ``(B, 1, H, W)`` raw scores.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, norm: Norm = "instance") -> None:
        super().__init__()
        in_channels = check_int(in_channels, "in_channels", 1)
        ndf = check_int(ndf, "ndf", 1)
        norm = check_choice(norm, "norm", NORMS)
        self.in_channels = in_channels
        bias = conv_bias(norm)
        self.model = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias),
            norm_layer(norm, ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels)
        return self.model(x)


@hookimpl
def handaug_register_discriminators(registry) -> None:  # noqa: ANN001 - the hookspec types it
    registry.add("patch", PatchDiscriminator, bounds=PATCH_BOUNDS)
    registry.add("pixel", PixelDiscriminator, bounds=PIXEL_BOUNDS)
