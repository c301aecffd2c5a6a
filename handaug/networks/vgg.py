"""Frozen VGG16 feature taps (relu1_2, relu2_2, relu3_3, relu4_3), the input of the perceptual discriminator."""

from __future__ import annotations

import logging
import os

import torch
import torch.nn as nn
from torchvision.models.vgg import cfgs, make_layers

from handaug.pretrained import VGG16_IMAGENET, load_pretrained, load_state_dict_file

log = logging.getLogger(__name__)

#: Index in ``torchvision.models.vgg16().features`` of the last layer of each tap.
TAP_LAYERS: dict[str, int] = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}
TAP_CHANNELS: tuple[int, ...] = (64, 128, 256, 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG16Features(nn.Module):
    """VGG16's first four blocks, frozen, returning the activation at the end of each block.

    Args:
        weights: ``"imagenet"`` (torchvision's IMAGENET1K_V1, file ``vgg16-397923af.pth``, from
            the torch hub cache or a download), a path to a ``.pth``/``.safetensors`` VGG16 state
            dict (full-model keys ``features.N.weight`` or feature-only keys ``N.weight``), or
            ``"random"`` (explicit random weights; logs a warning: results will differ from the
            paper's).

    Shapes:
        input ``(B, 3, H, W)`` float in ``[-1, 1]`` (ImageNet normalisation is applied inside);
        output four tensors ``(B, 64, H, W)``, ``(B, 128, H/2, W/2)``, ``(B, 256, H/4, W/4)``,
        ``(B, 512, H/8, W/8)`` (sizes floored).

    The parameters never require gradients and the module stays in eval mode, but gradients flow
    through it to its input (the generator's output).
    """

    def __init__(self, weights: str = "imagenet") -> None:
        super().__init__()
        if not isinstance(weights, (str, os.PathLike)):
            raise ValueError(f"vgg_weights must be 'imagenet', 'random' or a file path, got {weights!r}")
        # Only the convolutional part: building all of vgg16() would allocate its 120 M-parameter classifier.
        features = make_layers(cfgs["D"], batch_norm=False)[: TAP_LAYERS["relu4_3"] + 1]
        if weights == "random":
            msg = "VGG16 weights are random (vgg_weights='random'): results will differ from the paper's"
            log.warning(msg)
        else:
            if weights == "imagenet":
                state = load_pretrained(VGG16_IMAGENET, argument="vgg_weights")
            else:
                state = load_state_dict_file(weights)
            _load_features(features, state, source=str(weights))
        bounds = [0, *(i + 1 for i in TAP_LAYERS.values())]
        self.blocks = nn.ModuleList(features[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        super().train(False)

    def train(self, mode: bool = True) -> VGG16Features:
        # A frozen feature extractor: Lightning's model.train() must not switch it.
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1.0) * 0.5 - self.mean) / self.std
        taps = []
        for block in self.blocks:
            x = block(x)
            taps.append(x)
        return taps


def _load_features(features: nn.Sequential, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a full-VGG16 or features-only state dict into the first 23 feature layers."""
    wanted = features.state_dict().keys()
    if any(k.startswith("features.") for k in state):
        state = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    state = {k: v for k, v in state.items() if k in wanted}
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise ValueError(f"vgg_weights {source!r} is not a VGG16 state dict: missing {missing[:4]}")
    try:
        features.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"vgg_weights {source!r} does not fit VGG16: {err}") from err
