"""Weight initialisation of trainable networks (H-GAN's Xavier, CycleGAN's normal(0, 0.02), ...)."""

from __future__ import annotations

from typing import Literal

import torch.nn as nn

InitType = Literal["xavier", "normal", "kaiming", "orthogonal", "none"]
INIT_TYPES: tuple[str, ...] = ("xavier", "normal", "kaiming", "orthogonal", "none")


def init_weights(module: nn.Module, init_type: InitType = "xavier", gain: float = 0.02) -> nn.Module:
    """Initialise every trainable convolution / linear / batch-norm layer of ``module`` in place.

    - ``"xavier"``: Xavier-normal with ``gain`` (H-GAN's choice, with CycleGAN's gain 0.02);
    - ``"normal"``: normal(0, ``gain``) (CycleGAN's default);
    - ``"kaiming"``: Kaiming-normal (fan-in); ``"orthogonal"``: orthogonal with ``gain``;
    - ``"none"``: leave the layers' own initialisation.

    Biases are set to 0, batch-norm scales to normal(1, ``gain``). Layers whose weight does not
    require gradients (a frozen pretrained VGG inside a discriminator) are left untouched, and
    layers marked ``zero_init = True`` (a residual generator's last convolution, so that it
    starts as the identity) are set to zero whatever ``init_type`` is.
    """
    if init_type not in INIT_TYPES:
        raise ValueError(f"init_type must be one of {INIT_TYPES}, got {init_type!r}")
    if init_type == "none":
        return module
    for layer in module.modules():
        weight = getattr(layer, "weight", None)
        if not isinstance(weight, nn.Parameter) or not weight.requires_grad:
            continue
        bias = getattr(layer, "bias", None)
        if getattr(layer, "zero_init", False):
            nn.init.zeros_(weight)
            if isinstance(bias, nn.Parameter):
                nn.init.zeros_(bias)
        elif isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "xavier":
                nn.init.xavier_normal_(weight, gain=gain)
            elif init_type == "normal":
                nn.init.normal_(weight, 0.0, gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(weight, gain=gain)
            if isinstance(bias, nn.Parameter):
                nn.init.zeros_(bias)
        elif isinstance(layer, (nn.BatchNorm2d, nn.InstanceNorm2d)) and layer.affine:
            nn.init.normal_(weight, 1.0, gain)
            if isinstance(bias, nn.Parameter):
                nn.init.zeros_(bias)
    return module
