"""Pretraining SilNet on its own, as GeoConGAN and the H-GAN reference code do (``handaug-train-silnet``).

The reference trains SilNet before the GAN and then freezes it. Its recipe, reproduced here:

- data: both domains' images and hand masks (H-GAN's unpaired loader: item ``i`` of each
  domain); each batch, one domain is drawn with probability ½ and SilNet segments that
  domain's images (binary cross-entropy with logits against the mask);
- RMSprop, learning rate 1e-3, weight decay 1e-8, momentum 0.9 (PyTorch's alpha 0.99, eps 1e-8);
  gradients clipped to an L2 norm of 0.5; Xavier-normal initialisation with gain 0.02;
- batches of 8 crops of 128 px for training (the data module's crops: hand-centred with its
  ``crop_mode="hand"``, the reference's ``MaskedRandomCrop``; ``data_kwargs`` passes other
  data-module options), 4 images of 256 px for validation; validation every fifth
  of an epoch on at most 200 batches (again one domain drawn per batch); at most 5,000 training
  batches per epoch and 10 epochs;
- early stopping when the mean validation loss has not improved for 5 validations; the
  weights with the lowest validation loss are kept (written at each improvement, atomically).

The data come from :class:`handaug.data.datamodule.UnpairedDataModule` (procedural hands by
default, no download; or folders / registered datasets with masks). The result is a SilNet
checkpoint (:mod:`handaug.silnet.checkpoint`) that
``GeometricConsistencyLoss(silnet_checkpoint=DIR)`` loads frozen.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from handaug.initialization import init_weights
from handaug.networks.silnet import SILNET_BOUNDS, SILNET_SHAPES, SilNet
from handaug.silnet.checkpoint import save_silnet

__all__ = ["SilNetPretraining", "SilNetPretrainingResult", "pretrain_silnet"]

DOMAINS = ("synthetic", "real")
#: Widest SilNet layer (``base_channels * 2**depth``) pretraining builds: 2048 channels (the
#: reference's widest is 256, handaug's 128); a 3×3 convolution at that width holds 150 MB of weights.
MAX_SILNET_WIDTH = 2048
#: Optimiser settings pretraining accepts: name → (low, high, the interval as written). RMSprop's
#: momentum must stay below 1 (at 1 or more the steps grow without end: NaN weights).
HYPERPARAMETER_BOUNDS: dict[str, tuple[float, float, str]] = {
    "lr": (0.0, 10.0, "(0, 10]"),
    "weight_decay": (0.0, 1.0, "[0, 1]"),
    "momentum": (0.0, 1.0, "[0, 1)"),
    "clip_norm": (0.0, 1e6, "(0, 1e+06]"),
    "init_gain": (0.0, 10.0, "[0, 10]"),
}


@dataclass
class SilNetPretraining:
    """Settings of :func:`pretrain_silnet`; the defaults are the reference's (see the module doc).

    Attributes:
        shape: ``"hgan"`` (widths 64-256, 2 poolings, conv bias) or ``"handaug"`` (16-128, 3 poolings).
        base_channels, depth, conv_bias: override the shape's values (``None``: the shape's).
        synthetic, real: data sources (``"procedural"``, a folder, ``"NAME:ROOT"``); both need masks.
        synthetic_masks, real_masks: mask patterns of folder sources.
        synthetic_kwargs, real_kwargs: options of the readers (e.g. ``{"split": "train"}``, or
            ``{"length": 2000, "image_size": 256}`` for the procedural hands).
        data_kwargs: further :class:`~handaug.data.datamodule.UnpairedDataModule` arguments.
        crop_size, val_size: training crop and validation image sides (128, 256).
        batch_size, val_batch_size: 8 and 4.
        val_count: images of each domain held out for validation (reference: 1,000; 0: no
            validation, no early stopping, the last weights are kept).
        val_every: training batches between validations (``None``: a fifth of an epoch).
        val_batches: most validation batches per validation (200).
        max_epochs, max_batches_per_epoch, max_steps: when to stop training at the latest.
        patience: validations without improvement before stopping early.
        lr, weight_decay, momentum, clip_norm: RMSprop and gradient clipping (1e-3, 1e-8, 0.9, 0.5).
        init_gain: gain of the Xavier-normal initialisation (0.02).
        seed, device, num_workers: reproducibility and where it runs.
    """

    shape: str = "hgan"
    base_channels: int | None = None
    depth: int | None = None
    conv_bias: bool | None = None
    synthetic: str = "procedural"
    real: str = "procedural"
    synthetic_masks: str | None = None
    real_masks: str | None = None
    synthetic_kwargs: dict[str, Any] = field(default_factory=dict)
    real_kwargs: dict[str, Any] = field(default_factory=dict)
    data_kwargs: dict[str, Any] = field(default_factory=dict)
    crop_size: int = 128
    val_size: int = 256
    batch_size: int = 8
    val_batch_size: int = 4
    val_count: int = 1000
    val_every: int | None = None
    val_batches: int = 200
    max_epochs: int = 10
    max_batches_per_epoch: int = 5000
    max_steps: int | None = None
    patience: int = 5
    lr: float = 1e-3
    weight_decay: float = 1e-8
    momentum: float = 0.9
    clip_norm: float = 0.5
    init_gain: float = 0.02
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 0

    def network_shape(self) -> dict[str, Any]:
        """The SilNet keyword arguments: the named shape with the overrides applied."""
        if self.shape not in SILNET_SHAPES:
            raise ValueError(f"shape must be one of {tuple(SILNET_SHAPES)}, got {self.shape!r}")
        shape = dict(SILNET_SHAPES[self.shape])
        for key in shape:
            if getattr(self, key) is not None:
                shape[key] = getattr(self, key)
        for key, (low, high) in SILNET_BOUNDS.items():
            value = shape[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{key} must be an integer in [{low}, {high}], got {value!r}")
        widest = shape["base_channels"] * 2 ** shape["depth"]
        if widest > MAX_SILNET_WIDTH:
            raise ValueError(
                f"base_channels x 2^depth, the widest layer, must be at most {MAX_SILNET_WIDTH}: got "
                f"{shape['base_channels']} x 2^{shape['depth']} = {widest} (lower --base-channels or --depth)"
            )
        return shape

    def check(self) -> None:
        """Raise a ``ValueError`` naming the first setting that cannot work."""
        for name in ("crop_size", "val_size", "batch_size", "val_batch_size", "val_batches", "max_epochs", "max_batches_per_epoch", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("val_every", "max_steps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        for name, (low, high, interval) in HYPERPARAMETER_BOUNDS.items():
            value = getattr(self, name)
            inside = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            inside = inside and (value > low if interval[0] == "(" else value >= low)
            inside = inside and (value < high if interval[-1] == ")" else value <= high)
            if not inside:
                raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
        self.network_shape()


@dataclass
class SilNetPretrainingResult:
    """What :func:`pretrain_silnet` did: the checkpoint, the kept weights' validation loss and the loss curves."""

    checkpoint: Path
    steps: int
    epochs: int
    best_val_loss: float | None
    best_step: int | None
    stopped_early: bool
    train_losses: list[float]
    val_losses: list[tuple[int, float]]

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data["checkpoint"] = str(self.checkpoint)
        data["first_train_losses"] = self.train_losses[:10]
        data["last_train_losses"] = self.train_losses[-10:]
        del data["train_losses"]
        return data


def _datamodule(s: SilNetPretraining) -> Any:
    # deferred: the data module imports Lightning (the [train] extra); the settings and SilNet need neither
    from handaug.data.datamodule import UnpairedDataModule

    kwargs = dict(
        synthetic=s.synthetic, real=s.real, synthetic_masks=s.synthetic_masks, real_masks=s.real_masks,
        synthetic_kwargs=dict(s.synthetic_kwargs), real_kwargs=dict(s.real_kwargs), crop_size=s.crop_size,
        val_size=s.val_size, val_count=s.val_count, pairing="index", epoch_length="min", batch_size=s.batch_size,
        val_batch_size=s.val_batch_size, num_workers=s.num_workers, seed=s.seed, background="white",
    )
    overlap = set(kwargs) & set(s.data_kwargs)
    if overlap:
        raise ValueError(f"data_kwargs must not repeat settings of their own: {sorted(overlap)}")
    kwargs.update(s.data_kwargs)
    data = UnpairedDataModule(**kwargs)
    data.setup("fit")
    for domain in DOMAINS:
        reader = data.readers[domain]
        if len(reader) == 0 or "mask" not in reader[0]:
            source = s.synthetic if domain == "synthetic" else s.real
            raise ValueError(
                f"SilNet learns from hand masks, but the {domain} source {source!r} has none: "
                f"give --{domain}-masks for a folder, or a dataset reader that provides masks"
            )
    return data


def _segmentation_loss(silnet: SilNet, batch: dict[str, dict[str, torch.Tensor]], domain: str, device: torch.device) -> torch.Tensor:
    part = batch[domain]
    images, masks = part["image"].to(device), part["mask"].to(device)
    return F.binary_cross_entropy_with_logits(silnet(images), masks)


@torch.no_grad()
def _validate(silnet: SilNet, loader: Any, limit: int, rng: random.Random, device: torch.device) -> float:
    silnet.eval()
    losses = []
    with torch.no_grad():
        for i, batch in enumerate(loader):
            if i >= limit:
                break
            losses.append(float(_segmentation_loss(silnet, batch, DOMAINS[rng.random() > 0.5], device)))
    silnet.train()
    value = sum(losses) / max(len(losses), 1)
    if not math.isfinite(value):
        raise ValueError(f"SilNet pretraining diverged: the validation loss is {value} (lower --lr or --momentum)")
    return value


def pretrain_silnet(
    out: str | os.PathLike[str],
    settings: SilNetPretraining | None = None,
    *,
    log: Callable[[str], None] | None = print,
) -> SilNetPretrainingResult:
    """Pretrain a SilNet with the reference's recipe and write the kept weights to the checkpoint directory ``out``.

    Returns the result (also written into the checkpoint's ``training`` summary).

    Raises:
        ValueError: bad settings, or a data source without masks (the message names it).
        FileNotFoundError: a data folder that does not exist.
    """
    s = settings or SilNetPretraining()
    s.check()
    out = Path(out)
    device = torch.device(s.device)
    torch.manual_seed(s.seed)
    silnet = init_weights(SilNet(**s.network_shape()), "xavier", s.init_gain).to(device).train()
    optimizer = torch.optim.RMSprop(silnet.parameters(), lr=s.lr, weight_decay=s.weight_decay, momentum=s.momentum)
    data = _datamodule(s)
    train_loader = data.train_dataloader()
    val_loader = data.val_dataloader() if s.val_count else []
    per_epoch = min(len(train_loader), s.max_batches_per_epoch)
    val_every = s.val_every or max(1, math.ceil(per_epoch / 5))
    domain_rng, val_rng = random.Random(s.seed), random.Random(s.seed + 1)
    train_losses: list[float] = []
    val_losses: list[tuple[int, float]] = []
    best: tuple[float, int] | None = None
    waited, step, epoch, stopped_early = 0, 0, 0, False
    settings_json = asdict(s) | {"network": s.network_shape()}
    started = time.monotonic()

    def save(reason: str) -> None:
        summary = {"recipe": "H-GAN reference SilNet pretraining", "settings": settings_json, "step": step, "epoch": epoch,
                   "best_val_loss": None if best is None else best[0], "saved_because": reason, "data": data.describe()}
        save_silnet(silnet, out, training=summary)

    def done() -> bool:
        return stopped_early or (s.max_steps is not None and step >= s.max_steps)

    while epoch < s.max_epochs and not done():
        train_loader.sampler.set_epoch(epoch)
        for i, batch in enumerate(train_loader):
            if i >= per_epoch or done():
                break
            loss = _segmentation_loss(silnet, batch, DOMAINS[domain_rng.random() > 0.5], device)
            if not bool(torch.isfinite(loss.detach())):
                raise ValueError(
                    f"SilNet pretraining diverged at step {step + 1}: the training loss is {float(loss.detach())} "
                    f"(lower --lr or --momentum); {out} keeps only weights saved before, if any"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(silnet.parameters(), s.clip_norm)
            optimizer.step()
            step += 1
            train_losses.append(float(loss.detach()))
            if val_loader and step % val_every == 0:
                value = _validate(silnet, val_loader, s.val_batches, val_rng, device)
                val_losses.append((step, value))
                if best is None or value < best[0]:
                    best, waited = (value, step), 0
                    save("lowest validation loss so far")
                else:
                    waited += 1
                    stopped_early = waited >= s.patience
                if log:
                    log(f"step {step}: train loss {train_losses[-1]:.4f}, validation loss {value:.4f}"
                        f"{' (best)' if best[1] == step else ''}{', stopping early' if stopped_early else ''}")
        epoch += 1
    if not val_loader:
        save("last weights (no validation set)")
    elif best is None:  # fewer training batches than one validation interval: validate the end once
        value = _validate(silnet, val_loader, s.val_batches, val_rng, device)
        val_losses.append((step, value))
        best = (value, step)
        save("lowest validation loss so far")
    result = SilNetPretrainingResult(out, step, epoch, None if best is None else best[0], None if best is None else best[1],
                                     stopped_early, train_losses, val_losses)
    if log:
        kept = "last weights" if best is None else f"weights of step {best[1]} (validation loss {best[0]:.4f})"
        log(f"SilNet pretraining: {step} steps in {time.monotonic() - started:.0f} s; kept the {kept} in {out}")
    return result
