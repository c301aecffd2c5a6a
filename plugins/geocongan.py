"""GeoConGAN (Mueller et al., "GANerated Hands", CVPR 2018), the H-GAN paper's baseline, as a plugin.

GeoConGAN is a CycleGAN (ResNet-9 generators, PatchGAN discriminators) with one more generator
loss: the *geometric consistency* loss, the binary cross-entropy between the hand silhouette of
a source image and the silhouette that a segmentation network, SilNet, sees in its translation.
It keeps the hand's shape (no filled gaps between fingers) without masking the generator's
output.

Registered names:

- loss ``"geoconsistency"`` (:class:`GeometricConsistencyLoss`): select it with
  ``--model.extra_losses '[geoconsistency]'``. Its SilNet is either pretrained separately and
  loaded frozen (``silnet_checkpoint=DIR``, written by ``handaug-train-silnet``, as GeoConGAN
  and the H-GAN reference code do; or ``silnet_weights=FILE``, a bare state dict), or trained
  alongside the GAN on the data module's hand masks (the default), through the
  ``auxiliary_loss`` the HGAN module optimises separately.

SilNet itself (its shapes, :data:`~handaug.networks.silnet.SILNET_SHAPES`, and its fit loop) is
core: :mod:`handaug.networks.silnet`; its checkpoint format and pretraining: :mod:`handaug.silnet`.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from handaug.arguments import check_real
from handaug.hookspecs import hookimpl
from handaug.networks.silnet import SILNET_BOUNDS, SILNET_SHAPES, SilNet, silnet_loss
from handaug.pretrained import load_state_dict_file
from handaug.silnet.checkpoint import load_silnet


class GeometricConsistencyLoss(nn.Module):
    """GeoConGAN's shape-keeping generator loss: BCE between SilNet's silhouette of the translation and the source's.

    The target silhouette is the source's hand mask when the data has masks, and otherwise
    SilNet's own (thresholded, detached) segmentation of the source image. Gradients reach the
    generator through SilNet. SilNet itself is either

    - pretrained and **frozen** (``silnet_checkpoint``, the reference's way, or
      ``silnet_weights``): no parameter requires gradients, it stays in eval mode (BatchNorm
      uses its running statistics) and the HGAN module creates no optimiser for it; or
    - trained alongside by :meth:`auxiliary_loss` (the HGAN module optimises it with a separate
      Adam optimiser at ``silnet_lr``): the default, when neither file is given.

    Args:
        weight: factor of this loss in the generator's objective.
        silnet_checkpoint: a SilNet checkpoint directory (``handaug-train-silnet --out DIR``:
            safetensors weights + JSON config with its shape); its shape is used.
        silnet_weights: path to a bare SilNet state dict (``.safetensors`` or ``.pth``, weights
            only) of the shape given by ``base_channels`` / ``depth`` / ``conv_bias``.
        base_channels, depth, conv_bias: SilNet's shape (1 to 256 and 1 to 8 through the
            registry). ``None``: the checkpoint's, else handaug's (16, 3, no bias). Given with
            a checkpoint, they must match it. The reference's shape: 64, 2, true.
        silnet_lr: learning rate of SilNet's own optimiser when trained alongside.

    Raises:
        ValueError: both files given, a shape that does not match the file, a negative weight.
        FileNotFoundError: a file that does not exist.
    """

    def __init__(
        self,
        weight: float = 1.0,
        silnet_checkpoint: str | os.PathLike[str] | None = None,
        silnet_weights: str | os.PathLike[str] | None = None,
        base_channels: int | None = None,
        depth: int | None = None,
        conv_bias: bool | None = None,
        silnet_lr: float = 1e-3,
    ) -> None:
        super().__init__()
        weight = check_real(weight, "weight", 0.0, math.inf)
        if silnet_checkpoint is not None and silnet_weights is not None:
            raise ValueError("give silnet_checkpoint (a handaug-train-silnet directory) or silnet_weights (a state dict file), not both")
        self.weight = weight
        self.auxiliary_lr = float(silnet_lr)  # read by HGAN for SilNet's own optimiser
        asked = {"base_channels": base_channels, "depth": depth, "conv_bias": conv_bias}
        if silnet_checkpoint is not None:
            self.silnet = load_silnet(silnet_checkpoint)
            for key, value in asked.items():
                if value is not None and value != self.silnet.shape[key]:
                    raise ValueError(
                        f"{key}={value!r} does not match silnet_checkpoint {str(silnet_checkpoint)!r}, whose SilNet has "
                        f"{self.silnet.shape}; leave {key} out to use the checkpoint's"
                    )
        else:
            shape = {k: (SILNET_SHAPES["handaug"][k] if v is None else v) for k, v in asked.items()}
            self.silnet = SilNet(**shape)
            if silnet_weights is not None:
                state = load_state_dict_file(silnet_weights)
                try:
                    self.silnet.load_state_dict(state)
                except RuntimeError as err:
                    raise ValueError(f"silnet_weights {str(silnet_weights)!r} does not fit SilNet({shape}): {err}") from err
        if silnet_checkpoint is not None or silnet_weights is not None:
            self.silnet.requires_grad_(False).eval()

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.silnet.parameters())

    def train(self, mode: bool = True) -> GeometricConsistencyLoss:
        super().train(mode)
        if not self.trainable:
            self.silnet.eval()  # a loaded SilNet stays frozen, batch norm included
        return self

    def forward(
        self,
        source: torch.Tensor,
        translated: torch.Tensor,
        source_mask: torch.Tensor | None,
        direction: str,
    ) -> torch.Tensor:
        if source_mask is None:
            with torch.no_grad():
                source_mask = (self.silnet(source) > 0).to(translated.dtype)
        return F.binary_cross_entropy_with_logits(self.silnet(translated), source_mask.to(translated.dtype))

    def auxiliary_loss(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """SilNet's own segmentation loss on real and synthetic images with known masks."""
        return silnet_loss(self.silnet, images, masks)


@hookimpl
def handaug_register_losses(registry) -> None:  # noqa: ANN001 - the hookspec types it
    registry.add("geoconsistency", GeometricConsistencyLoss, bounds=SILNET_BOUNDS)
