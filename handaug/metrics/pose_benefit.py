"""Pose benefit: does training a 2D hand-keypoint model on translated images help on real images?

The measure that matters to a pose researcher, which the H-GAN paper does not report. A small
keypoint regressor (:class:`KeypointRegressor`) is trained on

(i) synthetic-style procedural hands,
(ii) the same hands translated to the real domain by each checkpoint (hand pixels only: composited
     with the hand masks, keypoints unchanged), and, as an upper bound,
(iii) the same hands rendered in the real style (an oracle no real project has),

and every model is tested on real-style procedural hands of other seeds. Scores:

- PCK@α (α = 0.1): the fraction of keypoints whose predicted position is within α × the hand's
  size of the truth, where the hand's size is the longer side of the bounding box of its 21
  ground-truth keypoints (in pixels), per image;
- mean pixel error: the mean Euclidean distance between predicted and true keypoints, in pixels
  at the evaluation image size.

Only keypoints inside the image are trained on and scored (a fingertip may leave the frame).
Every run is seeded (data by procedural seed, weights and batches by the run seed); with
``runs > 1`` the tables give mean ± standard deviation over runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from handaug.arguments import check_int, is_integer
from handaug.fitting import fit, predict, shuffled_batches
from handaug.metrics.eval_data import EvalSet, PathLike, Translator, procedural_set, role_seed, translate_set
from handaug.metrics.features import as_unit_float
from handaug.metrics.progress import progress
from handaug.metrics.report import Table, format_mean_std
from handaug.networks.layers import double_conv

PCK_ALPHA = 0.1


class KeypointRegressor(nn.Module):
    """A small encoder-decoder CNN with soft-argmax heatmaps: ``(B, 3, S, S)`` float in ``[0, 1]`` → ``(B, K, 2)`` pixels.

    The encoder halves the resolution four times (S/16 gives every output the whole hand as
    context), the decoder comes back to S/4 with skip connections, and one heatmap per keypoint
    is turned into coordinates by its softmax-weighted mean position (differentiable, sub-pixel).
    Coordinates follow handaug's convention: the centre of pixel ``(i, j)`` is ``x = j, y = i``.
    S must be a multiple of 16.

    Args:
        num_keypoints: K.
        width: channels of the first stage (doubled at S/4, quadrupled below).
    """

    def __init__(self, num_keypoints: int = 21, width: int = 32) -> None:
        super().__init__()
        c = width
        self.num_keypoints = num_keypoints
        self.width = width
        self.enc1 = double_conv(3, c, 2)  # S/2
        self.enc2 = double_conv(c, 2 * c, 2)  # S/4
        self.enc3 = double_conv(2 * c, 4 * c, 2)  # S/8
        self.enc4 = double_conv(4 * c, 4 * c, 2)  # S/16
        self.dec3 = double_conv(8 * c, 4 * c, 1)
        self.dec2 = double_conv(6 * c, 2 * c, 1)
        self.head = nn.Conv2d(2 * c, num_keypoints, 1)
        self.stride = 4

    def heatmaps(self, images: torch.Tensor) -> torch.Tensor:
        """Keypoint logits ``(B, K, S/4, S/4)``."""
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[-1] % 16 or images.shape[-2] % 16:
            raise ValueError(f"images must have shape (B, 3, H, W) with H and W multiples of 16, got {tuple(images.shape)}")
        x = images.mul(2.0).sub(1.0)
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        d3 = self.dec3(torch.cat([F.interpolate(e4, size=e3.shape[-2:], mode="bilinear", align_corners=False), e3], dim=1))
        d2 = self.dec2(torch.cat([F.interpolate(d3, size=e2.shape[-2:], mode="bilinear", align_corners=False), e2], dim=1))
        return self.head(d2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.heatmaps(images)
        b, k, h, w = logits.shape
        weights = logits.flatten(2).softmax(dim=2).view(b, k, h, w)
        # Centre of heatmap cell (r, c) in input pixels: (c + 0.5) * stride - 0.5.
        xs = (torch.arange(w, device=logits.device, dtype=logits.dtype) + 0.5) * self.stride - 0.5
        ys = (torch.arange(h, device=logits.device, dtype=logits.dtype) + 0.5) * self.stride - 0.5
        x = (weights.sum(dim=2) * xs).sum(dim=2)
        y = (weights.sum(dim=3) * ys).sum(dim=2)
        return torch.stack([x, y], dim=2)


def visible_keypoints(keypoints: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """``(N, K)`` bool: keypoints ``(N, K, 2)`` that lie inside an image of ``(H, W)`` (``[-0.5, W - 0.5]``)."""
    h, w = image_size
    x, y = keypoints[..., 0], keypoints[..., 1]
    return (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)


def pck(predicted: torch.Tensor, target: torch.Tensor, visible: torch.Tensor | None = None, alpha: float = PCK_ALPHA) -> float:
    """PCK@``alpha``: the fraction of (visible) keypoints within ``alpha`` × hand size of the truth.

    Args:
        predicted: ``(N, K, 2)`` pixel coordinates.
        target: ``(N, K, 2)`` ground truth.
        visible: ``(N, K)`` bool, which keypoints count (default: all).
        alpha: threshold as a fraction of the hand size, the longer side of the bounding box of
            the image's K ground-truth keypoints.
    """
    if predicted.shape != target.shape or predicted.ndim != 3 or predicted.shape[-1] != 2:
        raise ValueError(f"predicted and target must both have shape (N, K, 2), got {tuple(predicted.shape)} and {tuple(target.shape)}")
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha!r}")
    visible = torch.ones(target.shape[:2], dtype=torch.bool) if visible is None else visible.bool()
    size = (target.amax(dim=1) - target.amin(dim=1)).amax(dim=1)  # (N,)
    distance = (predicted - target).norm(dim=2)
    correct = (distance <= alpha * size[:, None]) & visible
    return float(correct.sum()) / max(int(visible.sum()), 1)


def mean_pixel_error(predicted: torch.Tensor, target: torch.Tensor, visible: torch.Tensor | None = None) -> float:
    """Mean Euclidean distance in pixels over the (visible) keypoints of ``(N, K, 2)`` predictions."""
    if predicted.shape != target.shape:
        raise ValueError(f"predicted and target must have the same shape, got {tuple(predicted.shape)} and {tuple(target.shape)}")
    distance = (predicted - target).norm(dim=2)
    if visible is None:
        return float(distance.mean())
    return float(distance[visible.bool()].mean()) if bool(visible.any()) else math.nan


def _flip(images: torch.Tensor, keypoints: torch.Tensor, flip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror the chosen images left-right with their keypoints (a right hand becomes a left hand; joint order is unchanged)."""
    w = images.shape[-1]
    images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
    mirrored = keypoints.clone()
    mirrored[..., 0] = (w - 1) - keypoints[..., 0]
    return images, torch.where(flip.view(-1, 1, 1), mirrored, keypoints)


def train_regressor(
    data: EvalSet,
    *,
    epochs: int = 12,
    batch_size: int = 32,
    lr: float = 2e-3,
    width: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
    show_progress: bool = True,
    desc: str = "train keypoints",
) -> KeypointRegressor:
    """A :class:`KeypointRegressor` trained on ``data`` (images with keypoints).

    Adam with cosine decay, L1 loss on the visible keypoints' coordinates divided by the image
    size, random horizontal flips. Weights and batches are seeded by ``seed``.
    """
    if data.keypoints is None:
        raise ValueError(f"data {data.name!r} has no keypoints")
    epochs = check_int(epochs, "epochs", 1)
    batch_size = check_int(batch_size, "batch_size", 1)
    size = data.image_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = KeypointRegressor(num_keypoints=data.keypoints.shape[1], width=width)
    model.to(device)
    rng = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * math.ceil(len(data) / batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    scale = float(max(size))

    def loss(pick: torch.Tensor) -> torch.Tensor:
        images, keypoints = _flip(as_unit_float(data.images[pick]), data.keypoints[pick], torch.rand(len(pick), generator=rng) < 0.5)
        visible = visible_keypoints(keypoints, size).to(device)
        predicted = model(images.to(device))
        error = (predicted - keypoints.to(device)).abs().sum(dim=2) / scale
        return (error * visible).sum() / visible.sum().clamp(min=1)

    picks = shuffled_batches(len(data), batch_size, progress(range(epochs), desc, total=epochs, enabled=show_progress), rng)
    fit(model, picks, loss, optimizer, scheduler)
    return model


def predict_keypoints(model: nn.Module, images: torch.Tensor, *, batch_size: int = 128, device: str | torch.device = "cpu") -> torch.Tensor:
    """Keypoints ``(N, K, 2)`` predicted for ``images`` ``(N, 3, H, W)`` uint8."""
    return predict(model, images, batch_size=batch_size, device=device, prepare=as_unit_float)


def mean_of_runs(values: list[float]) -> float:
    """The mean of per-run values."""
    return float(torch.tensor(values).mean())


def std_of_runs(values: list[float]) -> float | None:
    """The population standard deviation of per-run values; ``None`` for a single run."""
    return float(torch.tensor(values).std(unbiased=False)) if len(values) > 1 else None


@dataclass(frozen=True)
class PoseScore:
    """PCK@0.1 (fraction) and mean pixel error of one training set, per run and as mean/std."""

    label: str
    pck: list[float]
    pixel_error: list[float]
    n_train: int
    n_test: int
    notes: list[str] = field(default_factory=list)

    @property
    def pck_mean(self) -> float:
        return mean_of_runs(self.pck)

    @property
    def pck_std(self) -> float | None:
        return std_of_runs(self.pck)

    @property
    def error_mean(self) -> float:
        return mean_of_runs(self.pixel_error)

    @property
    def error_std(self) -> float | None:
        return std_of_runs(self.pixel_error)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(pck_mean=self.pck_mean, pck_std=self.pck_std, error_mean=self.error_mean, error_std=self.error_std)
        return d


def train_models(
    label: str,
    train: EvalSet,
    *,
    runs: int = 1,
    seed: int = 0,
    epochs: int = 12,
    width: int = 32,
    device: str | torch.device = "cpu",
    show_progress: bool = True,
) -> list[KeypointRegressor]:
    """``runs`` regressors trained on ``train``, run ``r`` seeded by ``1000 * seed + r``."""
    runs = check_int(runs, "runs", 1)
    return [
        train_regressor(
            train, epochs=epochs, width=width, seed=1000 * seed + r, device=device, show_progress=show_progress,
            desc=f"pose: train on {label}" + (f" (run {r + 1}/{runs})" if runs > 1 else ""),
        )
        for r in range(runs)
    ]


def score_models(label: str, models: Sequence[nn.Module], test: EvalSet, *, n_train: int, device: str | torch.device = "cpu") -> PoseScore:
    """PCK@0.1 and mean pixel error of each of ``models`` on ``test`` (images with keypoints), one entry per model."""
    if test.keypoints is None:
        raise ValueError(f"test set {test.name!r} has no keypoints")
    if not models:
        raise ValueError("models must hold at least one keypoint model")
    visible = visible_keypoints(test.keypoints, test.image_size)
    pcks, errors = [], []
    for model in models:
        predicted = predict_keypoints(model, test.images, device=device)
        pcks.append(pck(predicted, test.keypoints, visible))
        errors.append(mean_pixel_error(predicted, test.keypoints, visible))
    return PoseScore(label, pcks, errors, n_train, len(test))


def score_training_set(
    label: str,
    train: EvalSet,
    test: EvalSet,
    *,
    runs: int = 1,
    seed: int = 0,
    epochs: int = 12,
    width: int = 32,
    device: str | torch.device = "cpu",
    show_progress: bool = True,
) -> PoseScore:
    """Train ``runs`` regressors on ``train`` (run ``r`` seeded by ``1000 * seed + r``) and score them on ``test``."""
    if test.keypoints is None:
        raise ValueError(f"test set {test.name!r} has no keypoints")
    models = train_models(label, train, runs=runs, seed=seed, epochs=epochs, width=width, device=device, show_progress=show_progress)
    return score_models(label, models, test, n_train=len(train), device=device)


def _check_image_size(image_size: int) -> int:
    if not is_integer(image_size) or image_size < 16 or image_size % 16:
        raise ValueError(f"image_size must be a multiple of 16 for the keypoint regressor, got {image_size!r}")
    return int(image_size)


def pose_test_set(style: str, *, image_size: int, n_test: int, seed: int, background: str = "white", show_progress: bool = True) -> EvalSet:
    """The pose test hands (procedural seed ``role_seed(seed, "pose_test")``) in ``style``.

    Both styles show the same hands in the same poses: the synthetic-style set, translated, is
    compared with the real-style one by :mod:`handaug.metrics.pose_consistency`.
    """
    name = "real (test)" if style == "real" else f"{style} (pose test)"
    return procedural_set(style, n_test, role_seed(seed, "pose_test"), image_size=image_size, background=background, show_progress=show_progress, name=name)


def oracle_training_set(*, image_size: int, n_train: int, seed: int, background: str = "white", show_progress: bool = True) -> EvalSet:
    """Real-style renderings of the pose training hands (procedural seed ``role_seed(seed, "pose_train")``)."""
    return procedural_set("real", n_train, role_seed(seed, "pose_train"), image_size=image_size, background=background, show_progress=show_progress, name="real (oracle)")


def train_oracles(
    *,
    image_size: int = 64,
    n_train: int = 2000,
    epochs: int = 12,
    runs: int = 1,
    seed: int = 0,
    background: str = "white",
    width: int = 32,
    device: str | torch.device = "cpu",
    show_progress: bool = True,
) -> list[KeypointRegressor]:
    """The ``"real (oracle)"`` keypoint models: ``runs`` regressors trained on real-style hands only.

    The same models :func:`pose_benefit` trains for its upper-bound row (same data, same seeds),
    so one set can serve both it and :func:`handaug.metrics.pose_consistency.pose_consistency`.
    """
    image_size = _check_image_size(image_size)
    real = oracle_training_set(image_size=image_size, n_train=n_train, seed=seed, background=background, show_progress=show_progress)
    return train_models("real (oracle)", real, runs=runs, seed=seed, epochs=epochs, width=width, device=device, show_progress=show_progress)


def pose_benefit(
    translators: Mapping[str, Translator | PathLike],
    *,
    image_size: int = 64,
    n_train: int = 2000,
    n_test: int = 500,
    epochs: int = 12,
    runs: int = 1,
    seed: int = 0,
    include_real: bool = True,
    oracles: Sequence[nn.Module] | None = None,
    background: str = "white",
    width: int = 32,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    show_progress: bool = True,
) -> list[PoseScore]:
    """Score keypoint regressors trained on synthetic, translated (one row per translator) and real-style hands.

    Args:
        translators: ``{label: checkpoint path or Translator}``.
        image_size: side of the procedural images (a multiple of 16).
        n_train: training images (the same hands for every row).
        n_test: real-style test images, other hands (procedural seed ``role_seed(seed, "pose_test")``).
        epochs: training epochs of each regressor.
        runs: regressors per training set (different weight/batch seeds): mean ± std over them.
        seed: the run seed (procedural seeds of the data, regressor seeds).
        include_real: add the oracle row trained on real-style renderings of the training hands.
        oracles: the oracle row's models if already trained by :func:`train_oracles` with the
            same settings (so that pose consistency and this measure train them once); ``None``
            trains them here.
        background: ``"white"`` / ``"black"`` outside the hand masks (as in training) or ``"keep"``.

    Returns:
        One :class:`PoseScore` per row: ``"synthetic"``, each translator's label, then ``"real (oracle)"``.
    """
    image_size = _check_image_size(image_size)
    runs = check_int(runs, "runs", 1)
    if oracles is not None and len(oracles) != runs:
        raise ValueError(f"oracles must hold one model per run ({runs}), got {len(oracles)}")
    train_seed = role_seed(seed, "pose_train")
    synthetic = procedural_set("synthetic", n_train, train_seed, image_size=image_size, background=background, show_progress=show_progress, name="synthetic")
    test = pose_test_set("real", image_size=image_size, n_test=n_test, seed=seed, background=background, show_progress=show_progress)
    common = dict(runs=runs, seed=seed, epochs=epochs, width=width, device=device, show_progress=show_progress)
    rows = [score_training_set("synthetic", synthetic, test, **common)]
    for label, translator in translators.items():
        translated = translate_set(translator, synthetic, batch_size=batch_size, device=device, show_progress=show_progress, name=label)
        rows.append(score_training_set(label, translated, test, **common))
    if include_real:
        if oracles is None:
            oracles = train_oracles(image_size=image_size, n_train=n_train, background=background, **common)
        rows.append(score_models("real (oracle)", oracles, test, n_train=n_train, device=device))
    return rows


def pose_table(rows: Sequence[PoseScore], title: str = "Pose benefit: 2D keypoints on real-style hands") -> Table:
    """One row per training set: PCK@0.1 in percent and mean pixel error (mean ± std over runs)."""
    table = Table(title, ["trained on", "PCK@0.1 (%) ↑", "mean error (px) ↓", "train images", "test images", "runs"])
    for row in rows:
        pck_std = None if row.pck_std is None else 100 * row.pck_std
        table.add_row([
            row.label,
            format_mean_std(100 * row.pck_mean, pck_std, 1),
            format_mean_std(row.error_mean, row.error_std, 2),
            row.n_train,
            row.n_test,
            len(row.pck),
        ])
    table.notes.append(
        "PCK@0.1: a keypoint counts as correct within 0.1 × the longer side of the bounding box of the "
        "hand's 21 true keypoints; errors in pixels of the evaluation image; keypoints outside the image are not scored."
    )
    return table
