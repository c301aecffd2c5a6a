"""Sample grids like the paper's Fig. 5: the same synthetic hands, one row per checkpoint, as a PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from handaug.metrics.report import save_figure


def sample_grid(
    rows: Sequence[tuple[str, torch.Tensor]],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    scale: float = 2.0,
) -> Path:
    """Draw labelled rows of images and write them as a PNG at ``path`` (atomically).

    Args:
        rows: ``(label, images)`` pairs; ``images`` is ``(K, 3, H, W)`` uint8 RGB, the same K, H
            and W in every row (e.g. the synthetic inputs, then each checkpoint's translations of
            them, then real images for reference).
        path: the PNG file to write.
        title: drawn above the grid.
        scale: screen pixels per image pixel (images are drawn without smoothing).

    Raises:
        ValueError: no rows, or rows whose images differ in number or size.
    """
    import matplotlib  # deferred: matplotlib is the [eval] extra

    matplotlib.use("Agg", force=False)
    # deferred: matplotlib is the [eval] extra; importing torchvision takes over a second
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    if not rows:
        raise ValueError("rows must hold at least one (label, images) pair")
    shape = None
    for label, images in rows:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
            raise ValueError(f"row {label!r}: images must be a uint8 tensor of shape (K, 3, H, W)")
        if shape is None:
            shape = tuple(images.shape)
        elif tuple(images.shape) != shape:
            raise ValueError(f"row {label!r} has images of shape {tuple(images.shape)}, but the first row has {shape}")
    assert shape is not None
    k, _, h, w = shape
    pad = 2
    dpi = 100
    width_in = (k * (w + pad) + pad) * scale / dpi
    height_in = (h + 2 * pad) * scale / dpi
    fig, axes = plt.subplots(len(rows), 1, figsize=(width_in + 1.8, height_in * len(rows) + (0.4 if title else 0.1)), dpi=dpi, squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows, strict=True):
        strip = make_grid(images, nrow=k, padding=pad, pad_value=255)
        ax.imshow(strip.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.2, right=0.99, top=0.92 if title else 0.99, bottom=0.01, hspace=0.05)
    return save_figure(fig, path, dpi=dpi)
