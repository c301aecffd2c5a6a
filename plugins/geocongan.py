"""GeoConGAN (Mueller et al., "GANerated Hands", CVPR 2018), the H-GAN paper's baseline, as a plugin.

GeoConGAN is a CycleGAN (ResNet-9 generators, PatchGAN discriminators) with one more generator
loss: the *geometric consistency* loss, the binary cross-entropy between the hand silhouette of
a source image and the silhouette that a segmentation network, SilNet, sees in its translation.
It keeps the hand's shape (no filled gaps between fingers) without masking the generator's
output.

Registered names:

- loss ``"geoconsistency"`` (:class:`GeometricConsistencyLoss`): select it with
  ``--model.extra_losses '[geoconsistency]'``. Its SilNet is either loaded from a file
  (``silnet_weights=PATH``, frozen) or trained alongside the GAN on the data module's hand
  masks (the default), through the ``auxiliary_loss`` the HGAN module optimises separately.

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


class SilNet(nn.Module):
    """A small U-Net that segments the hand: ``(B, 3, H, W)`` in ``[-1, 1]`` → logits ``(B, 1, H, W)``.

    Args:
        base_channels: width of the first level, doubled at each level down.
        depth: number of 2× downsamplings (inputs need H and W that are multiples of ``2**depth``;
            other sizes are padded inside and cropped back).

    ``sigmoid(logits) > 0.5`` is the predicted hand silhouette.
    """

    def __init__(self, base_channels: int = 16, depth: int = 3) -> None:
        super().__init__()
        check_positive_int("base_channels", base_channels)
        check_positive_int("depth", depth)
        self.depth = depth
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([double_conv(3, widths[0])] + [double_conv(widths[i], widths[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth)))
        self.merge = nn.ModuleList(double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth)))
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
    generator through SilNet; SilNet itself is trained only by :meth:`auxiliary_loss` (the HGAN
    module optimises it with a separate Adam optimiser at ``silnet_lr``), or frozen when loaded
    from ``silnet_weights``.

    Args:
        weight: factor of this loss in the generator's objective.
        silnet_weights: path to a SilNet state dict (``.safetensors`` or ``.pth``, weights only);
            ``None`` trains SilNet alongside the GAN on the batches' masks.
        base_channels, depth: SilNet's size (1 to 256 and 1 to 8 through the registry).
        silnet_lr: learning rate of SilNet's own optimiser when trained alongside.
    """

    def __init__(
        self,
        weight: float = 1.0,
        silnet_weights: str | os.PathLike[str] | None = None,
        base_channels: int = 16,
        depth: int = 3,
        silnet_lr: float = 1e-3,
    ) -> None:
        super().__init__()
        if not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"weight must be a non-negative number, got {weight!r}")
        self.weight = float(weight)
        self.auxiliary_lr = float(silnet_lr)  # read by HGAN for SilNet's own optimiser
        self.silnet = SilNet(base_channels, depth)
        if silnet_weights is not None:
            state = load_state_dict_file(silnet_weights)
            try:
                self.silnet.load_state_dict(state)
            except RuntimeError as err:
                raise ValueError(f"silnet_weights {str(silnet_weights)!r} does not fit SilNet(base_channels={base_channels}, depth={depth}): {err}") from err
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
