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

SilNet's shape (:data:`SILNET_SHAPES`): handaug's default is a U-Net of widths 16-128 with 3
poolings and bias-free convolutions; the H-GAN reference's is widths 64-256 with 2 poolings and
convolutions with a bias (``base_channels=64, depth=2, conv_bias=True``), BatchNorm in both.

:class:`SilNet` and :func:`train_silnet` are also usable on their own (e.g. to segment
translated hands when measuring shape preservation).
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from handaug.hookspecs import hookimpl
from handaug.plugins.layers import check_positive_int, double_conv
from handaug.pretrained import load_state_dict_file


#: Ranges the registry enforces before building the loss's SilNet (see :meth:`handaug.registry.Registry.add`).
GEOCONSISTENCY_BOUNDS = {"base_channels": (1, 256), "depth": (1, 8)}

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
        check_positive_int("base_channels", base_channels)
        check_positive_int("depth", depth)
        if not isinstance(conv_bias, bool):
            raise ValueError(f"conv_bias must be true or false, got {conv_bias!r}")
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

    Adam on random mini-batches (drawn with a generator seeded by ``seed``). Leaves the network in
    eval mode and returns the loss of every step.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
    if masks.shape != (images.shape[0], 1, *images.shape[-2:]):
        raise ValueError(f"masks must have shape {(images.shape[0], 1, *images.shape[-2:])}, got {tuple(masks.shape)}")
    check_positive_int("steps", steps)
    rng = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(silnet.parameters(), lr=lr)
    silnet.train()
    history = []
    for _ in range(steps):
        pick = torch.randint(images.shape[0], (min(batch_size, images.shape[0]),), generator=rng)
        loss = silnet_loss(silnet, images[pick], masks[pick])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
    silnet.eval()
    return history


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
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
            raise ValueError(f"weight must be a non-negative number, got {weight!r}")
        if silnet_checkpoint is not None and silnet_weights is not None:
            raise ValueError("give silnet_checkpoint (a handaug-train-silnet directory) or silnet_weights (a state dict file), not both")
        self.weight = float(weight)
        self.auxiliary_lr = float(silnet_lr)  # read by HGAN for SilNet's own optimiser
        asked = {"base_channels": base_channels, "depth": depth, "conv_bias": conv_bias}
        if silnet_checkpoint is not None:
            from handaug.plugins.silnet_checkpoint import load_silnet

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
    registry.add("geoconsistency", GeometricConsistencyLoss, bounds=GEOCONSISTENCY_BOUNDS)
