"""Shape preservation: does the translated hand keep the source hand's silhouette?

GeoConGAN's concern (and the paper's Fig. 5, middle row): a generator that is not held to the
hand's shape fills the gaps between fingers or grows the hand. Here the checkpoint translates
whole images (``mask_mode="none"``: no compositing, so the generator's own output is judged), a
segmenter finds the hand in each translation, and the silhouette is compared with the source's
hand mask by intersection over union, per image: over the whole image, and inside the source
hand's padded bounding box (where gaps between fingers are).

The default segmenter is GeoConGAN's SilNet (:class:`handaug.plugins.geocongan.SilNet`) trained
on procedural hands of both styles with their exact masks (:func:`train_default_segmenter`);
any callable can replace it. The same segmenter applied to the untranslated source images gives
the reference IoU: the segmenter's own error, which the translations cannot beat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn

from handaug.metrics.eval_data import EvalSet, PathLike, Translator, procedural_set, role_seed, translate_set
from handaug.metrics.features import as_unit_float
from handaug.metrics.progress import batches, progress

#: ``images (B, 3, H, W) float in [0, 1] -> (B, 1, H, W) or (B, H, W)``: bool, or a float hand
#: probability (``> 0.5`` is hand).
Segmenter = Callable[[torch.Tensor], torch.Tensor]


def mask_iou(predicted: torch.Tensor, target: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image intersection over union of two silhouette batches.

    Args:
        predicted: ``(N, 1, H, W)`` or ``(N, H, W)`` bool (or 0/1 numbers).
        target: the same shape.
        region: optional bool mask of the same shape: only pixels inside it are compared.

    Returns:
        ``(N,)`` float64 in ``[0, 1]``; an image where both silhouettes are empty counts as 1.
    """
    if predicted.shape != target.shape or predicted.ndim not in (3, 4):
        raise ValueError(f"predicted and target must have the same shape (N, 1, H, W) or (N, H, W), got {tuple(predicted.shape)} and {tuple(target.shape)}")
    p = predicted.bool().flatten(1)
    t = target.bool().flatten(1)
    if region is not None:
        if region.shape != predicted.shape:
            raise ValueError(f"region must have the shape of predicted {tuple(predicted.shape)}, got {tuple(region.shape)}")
        inside = region.bool().flatten(1)
        p, t = p & inside, t & inside
    intersection = (p & t).sum(dim=1).double()
    union = (p | t).sum(dim=1).double()
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))


def hand_boxes(masks: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """The bounding box of each hand mask ``(N, 1, H, W)`` bool, padded on every side by ``margin`` × its
    longer side (at least 1 px), as a bool mask of the same shape. Empty masks give empty boxes."""
    n, _, h, w = masks.shape
    rows = masks.any(dim=3).squeeze(1)  # (N, H)
    cols = masks.any(dim=2).squeeze(1)  # (N, W)
    out = torch.zeros_like(masks, dtype=torch.bool)
    for i in range(n):
        r, c = rows[i].nonzero().squeeze(1), cols[i].nonzero().squeeze(1)
        if r.numel() == 0:
            continue
        top, bottom, left, right = int(r[0]), int(r[-1]), int(c[0]), int(c[-1])
        pad = max(1, round(margin * max(bottom - top + 1, right - left + 1)))
        out[i, 0, max(0, top - pad) : min(h, bottom + pad + 1), max(0, left - pad) : min(w, right + pad + 1)] = True
    return out


class SilNetSegmenter(nn.Module):
    """A trained :class:`~handaug.plugins.geocongan.SilNet` as a :data:`Segmenter`: ``(B, 3, H, W)`` in ``[0, 1]`` → bool ``(B, 1, H, W)``."""

    def __init__(self, silnet: nn.Module) -> None:
        super().__init__()
        self.silnet = silnet.eval()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.silnet(images.float().mul(2.0).sub(1.0)) > 0.0  # sigmoid(logit) > 0.5


def train_default_segmenter(
    *,
    image_size: int = 64,
    n: int = 400,
    seed: int = role_seed(0, "segmenter_train"),
    steps: int = 200,
    background: str = "white",
    base_channels: int = 8,
    show_progress: bool = True,
) -> SilNetSegmenter:
    """SilNet trained on ``n`` procedural hands (half synthetic, half real style, procedural ``seed``) and their masks.

    Deterministic for a given ``seed`` (weights and mini-batches are seeded).
    """
    from handaug.plugins.geocongan import SilNet, train_silnet

    sets = [
        procedural_set("synthetic", max(1, n // 2), seed, image_size=image_size, background=background, show_progress=show_progress),
        procedural_set("real", max(1, n - n // 2), seed + 1, image_size=image_size, background=background, show_progress=show_progress),
    ]
    images = torch.cat([as_unit_float(s.images) for s in sets]).mul_(2.0).sub_(1.0)
    masks = torch.cat([s.masks for s in sets]).float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        silnet = SilNet(base_channels=base_channels, depth=3)
        if show_progress:
            print(f"training the SilNet segmenter ({steps} steps on {len(images)} procedural hands)...", flush=True)
        train_silnet(silnet, images, masks, steps=steps, lr=2e-3, batch_size=16, seed=seed)
    return SilNetSegmenter(silnet)


@torch.no_grad()
def silhouettes(segmenter: Segmenter, images: torch.Tensor, *, batch_size: int = 64, show_progress: bool = False, desc: str = "segment") -> torch.Tensor:
    """The segmenter's hand silhouettes of ``images`` ``(N, 3, H, W)`` uint8 → ``(N, 1, H, W)`` bool."""
    out = []
    parts = batches(images.shape[0], batch_size)
    for part in progress(parts, desc, total=len(parts), enabled=show_progress):
        x = images[part]
        result = segmenter(as_unit_float(x))
        if not isinstance(result, torch.Tensor):
            raise ValueError(f"segmenter must return a tensor, got {type(result).__name__}")
        if result.ndim == 3:
            result = result.unsqueeze(1)
        if result.shape != (x.shape[0], 1, *x.shape[-2:]):
            raise ValueError(f"segmenter returned shape {tuple(result.shape)}, expected {(x.shape[0], 1, *x.shape[-2:])}")
        out.append(result.cpu() if result.dtype == torch.bool else result.cpu().float() > 0.5)
    return torch.cat(out)


@dataclass(frozen=True)
class ShapeResult:
    """Silhouette IoU over images (mean and standard deviation), over the whole image and inside the hand's box.

    ``iou_*`` compares whole images: a generator that paints the background counts against it.
    ``box_iou_*`` compares only the source hand's bounding box padded by 10 % (see
    :func:`hand_boxes`): filled gaps between fingers and a grown or shrunk hand, but not what the
    generator does far from the hand (which a checkpoint trained with masks never learnt, as its
    background was composited away).
    """

    label: str
    iou_mean: float
    iou_std: float
    box_iou_mean: float
    box_iou_std: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shape_preservation(
    translator: Translator | PathLike,
    images: EvalSet,
    segmenter: Segmenter,
    *,
    label: str = "translated",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    show_progress: bool = False,
) -> ShapeResult:
    """IoU between the hand masks of ``images`` and the segmenter's silhouettes of their translations.

    Args:
        translator: a checkpoint path (run through :class:`handaug.SynthToReal` with
            ``mask_mode="none"``: whole images, no compositing) or a :data:`Translator` callable
            (it receives ``masks=None``).
        images: source images with masks.
        segmenter: a :data:`Segmenter`, e.g. :func:`train_default_segmenter`'s.

    Raises:
        ValueError: ``images`` has no masks.
    """
    if images.masks is None:
        raise ValueError(f"images {images.name!r} have no hand masks; shape preservation needs them")
    translated = translate_set(translator, images, batch_size=batch_size, mask_mode="none", device=device, show_progress=show_progress)
    predicted = silhouettes(segmenter, translated.images, show_progress=show_progress, desc=f"segment {label}")
    iou = mask_iou(predicted, images.masks)
    box_iou = mask_iou(predicted, images.masks, region=hand_boxes(images.masks))
    return ShapeResult(
        label, float(iou.mean()), float(iou.std(unbiased=False)), float(box_iou.mean()), float(box_iou.std(unbiased=False)), len(images)
    )


def identity_translator(images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """The translation that changes nothing (the reference row: the segmenter on the source images)."""
    return images
