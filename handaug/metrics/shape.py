"""Shape preservation: does the generator's own output keep the source hand's silhouette?

GeoConGAN's concern (and the paper's Fig. 5, middle row): a generator that is not held to the
hand's shape fills the gaps between fingers or grows the hand. Used with hand masks,
``SynthToReal`` composites the translated hand over the original background, so the silhouette is
kept by construction; this measure judges what the generator itself draws, which is what a user
gets without masks (``mask_mode="none"``, ``handaug-translate`` without masks).

Each checkpoint gets the input it was trained on (pixels outside the hand mask set to the
checkpoint's ``background`` value, as ``SynthToReal`` does before the generator in composite
mode), and its raw output (no compositing) is segmented. The silhouette is compared with the
source's hand mask by intersection over union, per image: over the whole image, and inside the
source hand's padded bounding box (where gaps between fingers are).

The default segmenter is GeoConGAN's SilNet (:class:`handaug.networks.silnet.SilNet`) trained
on procedural hands of both styles with their exact masks, over varied backgrounds (white, flat
random colours, smooth colour fields, noise) and with random colour gains on the hand
(:func:`train_default_segmenter`), so that it finds the hand by its shape and shading rather than
by "not the background colour". A generator trained with masks never learnt what to draw outside
the hand (it was composited away) and paints it some colour; a segmenter trained on white
backgrounds only calls all of that "hand", which made every such checkpoint score exactly the
IoU of the whole frame (the mean hand area). Any callable can replace the segmenter. The same
segmenter on the untranslated sources gives the reference IoU (its own error), and on the sources
over other backgrounds its error off white.

What it does not capture: a generator that paints a halo or a hand-coloured smear around the hand
counts against it here even though compositing removes both; and the inside of the hand only
matters as far as the segmenter needs it (:mod:`handaug.metrics.structure` measures that).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from handaug.metrics.eval_data import EvalSet, PathLike, Translator, procedural_set, role_seed, translate_set
from handaug.metrics.features import as_unit_float
from handaug.metrics.progress import batches, progress
from handaug.metrics.translators import checkpoint_translator
from handaug.networks.silnet import SilNet, train_silnet

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
    """A trained :class:`~handaug.networks.silnet.SilNet` as a :data:`Segmenter`: ``(B, 3, H, W)`` in ``[0, 1]`` → bool ``(B, 1, H, W)``."""

    def __init__(self, silnet: nn.Module) -> None:
        super().__init__()
        self.silnet = silnet.eval()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.silnet(images.float().mul(2.0).sub(1.0)) > 0.0  # sigmoid(logit) > 0.5


#: Kinds of background :func:`varied_backgrounds` draws from, in equal parts.
BACKGROUND_KINDS: tuple[str, ...] = ("as given", "flat colour", "smooth colours", "noisy colour")


def varied_backgrounds(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator, *, hand_gain: float = 0.4) -> torch.Tensor:
    """``images`` with the background outside ``masks`` replaced, per image, by one of :data:`BACKGROUND_KINDS`.

    ``"as given"`` keeps the image's own background; ``"flat colour"`` is one random RGB colour;
    ``"smooth colours"`` a random 4 × 4 colour grid upsampled bilinearly; ``"noisy colour"`` a random
    colour with Gaussian noise (std 0.15). Each hand's colour channels are also multiplied by random
    gains in ``[1 - hand_gain, 1 + hand_gain]`` (a skin tone or white balance the segmenter never saw).

    Args:
        images: ``(N, 3, H, W)`` float in ``[0, 1]``.
        masks: ``(N, 1, H, W)`` bool.
        generator: the CPU random generator every draw comes from.

    Returns:
        ``(N, 3, H, W)`` float in ``[0, 1]``.
    """
    n, _, h, w = images.shape
    kind = torch.randint(len(BACKGROUND_KINDS), (n,), generator=generator)
    flat = torch.rand(n, 3, 1, 1, generator=generator).expand(n, 3, h, w)
    smooth = F.interpolate(torch.rand(n, 3, 4, 4, generator=generator), size=(h, w), mode="bilinear", align_corners=False)
    noisy = (torch.rand(n, 3, 1, 1, generator=generator) + 0.15 * torch.randn(n, 3, h, w, generator=generator)).clamp(0.0, 1.0)
    background = torch.stack([images, flat, smooth, noisy])[kind, torch.arange(n)]
    gain = 1.0 - hand_gain + 2.0 * hand_gain * torch.rand(n, 3, 1, 1, generator=generator)
    return torch.where(masks, (images * gain).clamp(0.0, 1.0), background)


def _random_crops(images: torch.Tensor, masks: torch.Tensor, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One random ``size × size`` crop of every image and its mask (``size`` no larger than the images)."""
    n, _, h, w = images.shape
    if size >= h and size >= w:
        return images, masks
    tops = torch.randint(h - size + 1, (n,), generator=generator).tolist()
    lefts = torch.randint(w - size + 1, (n,), generator=generator).tolist()
    crops = [(images[i, :, t : t + size, l : l + size], masks[i, :, t : t + size, l : l + size]) for i, (t, l) in enumerate(zip(tops, lefts))]
    return torch.stack([c[0] for c in crops]), torch.stack([c[1] for c in crops])


def train_default_segmenter(
    *,
    image_size: int = 64,
    n: int = 400,
    seed: int = role_seed(0, "segmenter_train"),
    steps: int = 400,
    background: str = "white",
    base_channels: int = 8,
    crop_size: int = 64,
    show_progress: bool = True,
) -> SilNetSegmenter:
    """SilNet trained on ``n`` procedural hands (half synthetic, half real style, procedural ``seed``) and their masks.

    The hands are rendered at ``image_size`` with ``background`` outside the mask (the
    evaluation's background), then put over :func:`varied_backgrounds` (a quarter keep it) and
    cut to one random ``crop_size`` crop each (at the hands' own scale: training costs the same
    at any ``image_size``; the network is fully convolutional). Deterministic for a given
    ``seed`` (data, weights and mini-batches are seeded).
    """
    sets = [
        procedural_set("synthetic", max(1, n // 2), seed, image_size=image_size, background=background, show_progress=show_progress),
        procedural_set("real", max(1, n - n // 2), seed + 1, image_size=image_size, background=background, show_progress=show_progress),
    ]
    rng = torch.Generator().manual_seed(seed)
    masks = torch.cat([s.masks for s in sets])
    images = varied_backgrounds(torch.cat([as_unit_float(s.images) for s in sets]), masks, rng)
    images, masks = _random_crops(images, masks, min(crop_size, image_size), rng)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        silnet = SilNet(base_channels=base_channels, depth=3)
        if show_progress:
            print(f"training the SilNet segmenter ({steps} steps on {len(images)} procedural hands)...", flush=True)
        train_silnet(silnet, images.mul(2.0).sub(1.0), masks.float(), steps=steps, lr=5e-3, batch_size=16, seed=seed)
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


def generator_view(ckpt: PathLike, *, device: str | torch.device | None = None) -> Translator:
    """A :data:`Translator` giving the checkpoint's generator the input it was trained on and returning its raw output.

    Pixels outside the mask become the checkpoint's ``background`` value (if it records one and a
    mask is given), then the whole image is translated with ``mask_mode="none"``: nothing is
    composited, so the output is the generator's own, silhouette included
    (:func:`handaug.metrics.translators.checkpoint_translator` with ``mask_mode="fill"``).

    Raises:
        ValueError: ``ckpt`` is not one path (shape preservation judges one generator at a time).
    """
    return checkpoint_translator(ckpt, mask_mode="fill", device=device)


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
        translator: a checkpoint path (run through :func:`generator_view`: its training
            background outside the mask, raw output, no compositing) or a :data:`Translator`
            callable (it receives the images and their masks; its output is segmented as it is).
        images: source images with masks.
        segmenter: a :data:`Segmenter`, e.g. :func:`train_default_segmenter`'s.

    Raises:
        ValueError: ``images`` has no masks.
    """
    if images.masks is None:
        raise ValueError(f"images {images.name!r} have no hand masks; shape preservation needs them")
    if isinstance(translator, (str, os.PathLike)):
        translator = generator_view(translator, device=device)
    # "composite" here only means: the translator is handed the masks (generator_view does not composite).
    translated = translate_set(translator, images, batch_size=batch_size, mask_mode="composite", device=device, show_progress=show_progress)
    predicted = silhouettes(segmenter, translated.images, show_progress=show_progress, desc=f"segment {label}")
    iou = mask_iou(predicted, images.masks)
    box_iou = mask_iou(predicted, images.masks, region=hand_boxes(images.masks))
    return ShapeResult(
        label, float(iou.mean()), float(iou.std(unbiased=False)), float(box_iou.mean()), float(box_iou.std(unbiased=False)), len(images)
    )


def identity_translator(images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """The translation that changes nothing (the reference row: the segmenter on the source images)."""
    return images


def other_backgrounds_translator(seed: int = 0) -> Translator:
    """A :data:`Translator` that keeps the hand and puts it over :func:`varied_backgrounds` (no colour gain).

    The segmenter's reference off its usual background: its IoU on these images is what a
    generator that keeps the hand exactly but paints the background can expect.
    """

    def translate(images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        if masks is None:
            return images
        rng = torch.Generator().manual_seed(seed)
        return varied_backgrounds(as_unit_float(images), masks, rng, hand_gain=0.0).mul(255.0).round().to(torch.uint8)

    return translate
