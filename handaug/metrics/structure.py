"""Inner structure: how much of the source hand's internal edges and shading survives in its translation.

Compositing keeps the hand's silhouette exactly, so a generator can only fail *inside* it: a
translation that turns the hand into a flat blob of skin colour keeps every silhouette pixel and
still destroys what a pose model looks at (creases, knuckles, the shading that tells which finger
is in front). This measure compares each source image with its own translation, so it needs no
paired ground truth and works on unpaired real datasets too.

In every ``w × w`` window that lies entirely inside the source hand's mask (the mask eroded by
the window's radius, so the silhouette edge, kept by compositing anyway, plays no part), the
source's colours ``s`` are regressed on the translation's colours ``t`` with an affine map. With
the local 3 × 3 covariances ``Css``, ``Ctt`` and the cross-covariance ``Cst`` (box filters of
products, computed for every window at once), the source variance the translation explains is

    explained = tr(Cst (Ctt + eps I)^-1 Cts)    out of    tr(Css).

Per image, ``R² = Σ explained / Σ tr(Css)`` over its windows: windows with more source variance
(edges, shading) weigh more, flat source regions barely count. The score corrects R² for chance,
``clamp((R² − c) / (1 − c), 0, 1)`` with ``c = 3 / (w² − 1)``, the expected R² of a 3-predictor
regression on ``w²`` unrelated samples (0.06 at the 7 px window of 64 px images, 0.018 at the
13 px window of 128 px images). Reports give mean ± std of the per-image scores.

What it captures:

- structure kept up to *any* per-window affine colour map: an identity translation, a global hue
  rotation, a brightness or contrast change, a new skin tone (a gain per channel) all score ≈ 1
  (exactly 1 before uint8 rounding and the small ``eps``);
- a flat fill of the hand scores 0, and so, on average, does noise unrelated to the source
  (pixels shuffled inside the hand); a blurred inside loses the fine edges and scores in between;
- local changes of colour or lighting are forgiven as long as they are smooth at the window's
  scale (each window gets its own affine map).

What it does not capture:

- whether the translation looks *real* (FID/KID and the domain classifiers measure that), nor the
  silhouette (compositing keeps it; the shape measure judges the generator's own);
- structure the translation *adds*: new texture or wrinkles where the source is flat do not lower
  the score (the regression runs from the translation to the source, and flat source regions
  weigh nothing), though texture *replacing* the source's edges does;
- thin parts narrower than the window (fingers at low resolution): only windows entirely inside
  the hand count, so at 64 px mostly the palm and the base of the fingers are judged;
- smooth content is locally almost linear, so an *unrelated* smooth image can explain part of a
  smooth source (a ramp explains a ramp): the inside of another hand scores above 0, though far
  below a kept inside.

Images whose eroded mask is empty, or whose source has (almost) no colour variance inside it, have
no score: they are left out of the mean and counted in :attr:`StructureResult.n_excluded`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from handaug.arguments import check_int, check_odd, is_real
from handaug.metrics.features import as_unit_float

#: Regularisation of ``Ctt`` (colour variance, images in [0, 1]): about the variance of 2 uint8 levels
#: of noise, so that a translation varying only at the rounding level explains nothing.
DEFAULT_EPS: float = (2.0 / 255.0) ** 2 / 12.0
#: Mean source variance tr(Css) per window (images in [0, 1]) below which an image has no score: about uint8 rounding noise.
MIN_SOURCE_VARIANCE: float = (1.0 / 255.0) ** 2
#: Images per chunk of the vectorised computation (bounds memory: 28 float64 maps per image).
CHUNK: int = 16


def default_window(image_size: int) -> int:
    """The default window side for images of side ``image_size``: ``2 * max(2, round(3 * image_size / 64)) + 1``.

    7 px at 64 px, 9 px at 96 px, 13 px at 128 px, 25 px at 256 px: about a tenth of the image,
    a few finger widths of a hand that fills a third of the frame. Smaller windows keep more of
    the hand (windows must lie entirely inside it), larger ones lower the raw chance level.
    """
    image_size = check_int(image_size, "image_size", 1)
    return 2 * max(2, round(3 * image_size / 64)) + 1


def chance_level(window: int) -> float:
    """The raw explained fraction of a translation unrelated to the source (uncorrelated noise): ``3 / (w² − 1)``.

    The expected R² of a regression on 3 predictors from ``w²`` samples when nothing is related;
    the reported score is corrected for it (see :func:`inner_structure_per_image`).
    """
    return 3.0 / (window * window - 1)


def _check_inputs(source: torch.Tensor, translated: torch.Tensor, masks: torch.Tensor) -> None:
    for name, x in (("source", source), ("translated", translated)):
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 or not x.dtype.is_floating_point:
            shape = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a float tensor of shape (N, 3, H, W) with values in [0, 1], got {shape}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
    if translated.shape != source.shape:
        raise ValueError(f"translated must have the shape of source {tuple(source.shape)}, got {tuple(translated.shape)}")
    n, _, h, w = source.shape
    if not isinstance(masks, torch.Tensor) or masks.shape != (n, 1, h, w):
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"masks must have shape {(n, 1, h, w)}, got {shape}")


def _box(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over every ``window × window`` window entirely inside the image (separable, no padding)."""
    return F.avg_pool2d(F.avg_pool2d(x, (window, 1), stride=1), (1, window), stride=1)


_S_PAIRS = [(i, j) for i in range(3) for j in range(i, 3)]


def _symmetric(pairs: torch.Tensor) -> torch.Tensor:
    """``(M, 6)`` upper-triangle entries (in :data:`_S_PAIRS` order) → ``(M, 3, 3)`` symmetric matrices."""
    out = pairs.new_empty(pairs.shape[0], 3, 3)
    for k, (i, j) in enumerate(_S_PAIRS):
        out[:, i, j] = pairs[:, k]
        out[:, j, i] = pairs[:, k]
    return out


def _chunk_sums(source: torch.Tensor, translated: torch.Tensor, masks: torch.Tensor, window: int, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image: explained variance, source variance (both summed over windows) and the number of windows."""
    n = source.shape[0]
    s = source.double()
    t = translated.double()
    # Centre on each image's mean colour inside the hand: keeps the products well conditioned.
    weight = masks.double()
    area = weight.sum(dim=(2, 3), keepdim=True).clamp(min=1.0)
    s = s - (s * weight).sum(dim=(2, 3), keepdim=True) / area
    t = t - (t * weight).sum(dim=(2, 3), keepdim=True) / area
    maps = [weight, s, t]
    maps += [s[:, i : i + 1] * s[:, j : j + 1] for i, j in _S_PAIRS]
    maps += [t[:, i : i + 1] * t[:, j : j + 1] for i, j in _S_PAIRS]
    maps += [s[:, i : i + 1] * t[:, j : j + 1] for i in range(3) for j in range(3)]
    local = _box(torch.cat(maps, dim=1), window)  # (n, 28, h', w')
    inside = local[:, 0] > 1.0 - 1e-9  # the whole window is hand
    image_index = torch.arange(n, device=source.device).view(n, 1, 1).expand_as(inside)[inside]
    m = local.permute(0, 2, 3, 1)[inside]  # (M, 28)
    ms, mt = m[:, 1:4], m[:, 4:7]
    css = _symmetric(m[:, 7:13]) - ms[:, :, None] * ms[:, None, :]
    ctt = _symmetric(m[:, 13:19]) - mt[:, :, None] * mt[:, None, :]
    cst = m[:, 19:28].reshape(-1, 3, 3) - ms[:, :, None] * mt[:, None, :]
    regularised = ctt + eps * torch.eye(3, dtype=ctt.dtype, device=ctt.device)
    # tr(Cst Ctt^-1 Cts) = sum of Cst ∘ (Ctt^-1 Cts)^T
    solved = torch.linalg.solve(regularised, cst.transpose(1, 2))  # (M, 3, 3) = Ctt^-1 Cts
    explained = (cst * solved.transpose(1, 2)).sum(dim=(1, 2)).clamp(min=0.0)
    total = css.diagonal(dim1=1, dim2=2).sum(dim=1).clamp(min=0.0)
    zeros = torch.zeros(n, dtype=torch.float64, device=source.device)
    return (
        zeros.index_add(0, image_index, explained),
        zeros.index_add(0, image_index, total),
        zeros.index_add(0, image_index, torch.ones_like(total)),
    )


def check_window(window: object, image_size: tuple[int, int]) -> int:
    """``window`` if it is an odd integer >= 3 no larger than the images, else a ``ValueError``."""
    h, w = image_size
    window = check_odd(window, "window", 3)
    if window > min(h, w):
        raise ValueError(f"window ({window}) must not be larger than the images ({h}×{w})")
    return window


@torch.no_grad()
def inner_structure_per_image(
    source: torch.Tensor,
    translated: torch.Tensor,
    masks: torch.Tensor,
    *,
    window: int | None = None,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """Per-image inner-structure scores (see the module docstring), corrected for chance.

    With ``R² = Σ explained / Σ tr(Css)`` over the image's windows and ``c`` =
    :func:`chance_level` of the window, the score is ``clamp((R² − c) / (1 − c), 0, 1)``: 1 when
    the translation keeps all of the source's structure (up to an affine colour map per window),
    0 for a flat fill and, on average, for unrelated noise.

    Args:
        source: ``(N, 3, H, W)`` float in ``[0, 1]``: the images before translation.
        translated: the same shape: their translations.
        masks: ``(N, 1, H, W)`` hand masks of the sources: bool, or numbers where ``> 0.5`` is hand.
        window: odd window side in pixels (default :func:`default_window` of ``min(H, W)``).
        eps: regularisation added to the diagonal of the translation's local covariance.

    Returns:
        ``(N,)`` float64 in ``[0, 1]`` on the CPU; NaN for an image without a score (no window
        entirely inside its hand, or less than :data:`MIN_SOURCE_VARIANCE` per window there).

    Raises:
        ValueError: wrong shapes or dtypes, NaN values, an even or too large ``window``, a
            negative ``eps``.
    """
    _check_inputs(source, translated, masks)
    window = check_window(default_window(min(source.shape[-2:])) if window is None else window, tuple(source.shape[-2:]))
    if not is_real(eps) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a non-negative number, got {eps!r}")
    eps = float(eps)
    hand = masks if masks.dtype == torch.bool else masks > 0.5
    sums = [
        _chunk_sums(source[part], translated[part].to(source.device), hand[part].to(source.device), window, float(eps))
        for part in (slice(i, i + CHUNK) for i in range(0, source.shape[0], CHUNK))
    ]
    explained, total, count = (torch.cat(column).cpu() for column in zip(*sums))
    scorable = (count > 0) & (total > MIN_SOURCE_VARIANCE * count)
    chance = chance_level(window)
    r2 = explained / total.clamp(min=1e-300)
    scores = ((r2 - chance) / (1.0 - chance)).clamp(0.0, 1.0)
    return torch.where(scorable, scores, torch.full_like(scores, math.nan))


@dataclass(frozen=True)
class StructureResult:
    """Inner-structure score over images: mean, standard deviation, and how many images had a score.

    ``n`` images were scored; ``n_excluded`` had no window inside their hand or no source variance
    there. ``window`` is the window side in pixels, ``chance`` the score of uncorrelated noise.
    """

    label: str
    mean: float
    std: float
    n: int
    n_excluded: int
    window: int
    chance: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(scores: torch.Tensor, *, label: str, window: int) -> StructureResult:
    """A :class:`StructureResult` of per-image ``scores`` (NaN: excluded)."""
    kept = scores[~torch.isnan(scores)]
    mean = float(kept.mean()) if kept.numel() else math.nan
    std = float(kept.std(unbiased=False)) if kept.numel() else math.nan
    return StructureResult(label, mean, std, int(kept.numel()), int(scores.numel() - kept.numel()), window, chance_level(window))


def inner_structure(
    source: torch.Tensor,
    translated: torch.Tensor,
    masks: torch.Tensor,
    *,
    label: str = "translated",
    window: int | None = None,
    eps: float = DEFAULT_EPS,
) -> StructureResult:
    """Mean ± std of :func:`inner_structure_per_image` over the images that have a score.

    ``source`` and ``translated`` may also be uint8 ``(N, 3, H, W)`` (converted to ``[0, 1]``).
    """
    source, translated = as_unit_float(source), as_unit_float(translated)
    if window is None and source.ndim == 4:
        window = default_window(min(source.shape[-2:]))
    scores = inner_structure_per_image(source, translated, masks, window=window, eps=eps)
    return summarize(scores, label=label, window=window)
