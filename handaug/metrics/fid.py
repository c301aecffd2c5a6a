"""FID and KID between two image sets, computed by torchmetrics (as in the paper's Table I).

Features are extracted once per set (:func:`handaug.metrics.features.extract_features`) and handed
to torchmetrics' ``FrechetInceptionDistance`` and ``KernelInceptionDistance`` through a
pass-through module, so the real set's features can be reused for every checkpoint and no metric
arithmetic is written here. KID is the mean ± standard deviation over random subsets (torchmetrics'
polynomial-kernel MMD, degree 3), drawn from a generator seeded by ``seed``.

>>> from handaug.registry import create_feature_extractor
>>> extractor = create_feature_extractor("random_conv")      # tests; "inception" for real FID
>>> result = fid_kid(real_images, fake_images, extractor)     # doctest: +SKIP
>>> result.fid, result.kid_mean, result.kid_std               # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn

from handaug.metrics.features import extract_features


@dataclass(frozen=True)
class FidKid:
    """FID and KID of a fake set against a real set.

    ``fid`` is the Fréchet distance of the two feature Gaussians; ``kid_mean`` / ``kid_std`` the
    mean and standard deviation of the KID estimate over ``kid_subsets`` subsets of
    ``kid_subset_size`` images of each set. Lower is better for both.
    """

    fid: float
    kid_mean: float
    kid_std: float
    n_real: int
    n_fake: int
    kid_subsets: int
    kid_subset_size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _PrecomputedFeatures(nn.Module):
    """Hands already-extracted features ``(B, d)`` to torchmetrics unchanged."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def _check_features(features: object, argument: str) -> torch.Tensor:
    if not isinstance(features, torch.Tensor) or features.ndim != 2:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"{argument} must be a tensor of shape (N, d), got {shape}")
    if features.shape[0] < 2:
        raise ValueError(f"{argument} has {features.shape[0]} samples; FID and KID need at least 2 per set")
    if not torch.isfinite(features).all():
        raise ValueError(f"{argument} contains NaN or infinite values")
    return features.double()


def fid_kid_from_features(
    real_features: torch.Tensor,
    fake_features: torch.Tensor,
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> FidKid:
    """FID and KID from features ``(N_real, d)`` and ``(N_fake, d)`` (any float dtype, CPU).

    When ``kid_subset_size`` exceeds the smaller set, it is lowered to half of that set (at least 2),
    so that the subsets differ and the standard deviation means something. KID subsets are drawn with torch's RNG seeded with ``seed``
    inside a forked RNG state, so the global random state is left as it was.

    Raises:
        ValueError: features of the wrong shape, fewer than 2 samples, different feature sizes,
            or a non-positive ``kid_subsets`` / ``kid_subset_size``.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    real = _check_features(real_features, "real_features")
    fake = _check_features(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real_features have {real.shape[1]} features per image but fake_features {fake.shape[1]}")
    for name, value in (("kid_subsets", kid_subsets), ("kid_subset_size", kid_subset_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    smaller = min(real.shape[0], fake.shape[0])
    subset_size = kid_subset_size if kid_subset_size <= smaller else max(2, smaller // 2)
    passthrough = _PrecomputedFeatures(real.shape[1])

    fid_metric = FrechetInceptionDistance(feature=passthrough, normalize=True)
    fid_metric.set_dtype(torch.float64)
    fid_metric.update(real, real=True)
    fid_metric.update(fake, real=False)
    fid = float(fid_metric.compute())

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
        kid_metric = KernelInceptionDistance(feature=passthrough, subsets=kid_subsets, subset_size=subset_size, normalize=True)
    kid_metric.update(real, real=True)
    kid_metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kid_mean, kid_std = kid_metric.compute()
    return FidKid(
        fid=fid,
        kid_mean=float(kid_mean),
        kid_std=float(kid_std),
        n_real=int(real.shape[0]),
        n_fake=int(fake.shape[0]),
        kid_subsets=int(kid_subsets),
        kid_subset_size=int(subset_size),
    )


def fid_kid(
    real_images: torch.Tensor,
    fake_images: torch.Tensor,
    extractor: nn.Module,
    *,
    batch_size: int = 50,
    device: str | torch.device | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    show_progress: bool = True,
) -> FidKid:
    """FID and KID of ``fake_images`` against ``real_images``, both ``(N, 3, H, W)`` uint8 or float in ``[0, 1]``.

    ``extractor`` is a feature extractor (``handaug.registry.create_feature_extractor("inception")``
    for the paper's metric). See :func:`fid_kid_from_features` for the KID subsets.
    """
    real = extract_features(extractor, real_images, batch_size=batch_size, device=device, show_progress=show_progress, desc="features (real)")
    fake = extract_features(extractor, fake_images, batch_size=batch_size, device=device, show_progress=show_progress, desc="features (fake)")
    return fid_kid_from_features(real, fake, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, seed=seed)
