"""FID and KID between two image sets, computed by torchmetrics, or by torch-fidelity on two folders.

Features are extracted once per set (:func:`handaug.metrics.features.extract_features`) and handed
to torchmetrics' ``FrechetInceptionDistance`` and ``KernelInceptionDistance`` through a
pass-through module, so the real set's features can be reused for every checkpoint and no metric
arithmetic is written here. KID is the mean ± standard deviation over random subsets (torchmetrics'
polynomial-kernel MMD, degree 3), drawn from a generator seeded by ``seed``.

>>> from handaug.registry import create_feature_extractor
>>> extractor = create_feature_extractor("random_conv")      # tests; "inception" for real FID
>>> result = fid_kid(real_images, fake_images, extractor)     # doctest: +SKIP
>>> result.fid, result.kid_mean, result.kid_std               # doctest: +SKIP

:func:`fid_kid_of_folders` is the H-GAN reference code's way (``handaug-eval fid --protocol hgan``):
torch-fidelity reads two folders of image files and computes FID, KID (and the Inception Score)
itself, with its own InceptionV3 or, for tests, a handaug feature extractor handed to it.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from handaug.metrics.features import extract_features, find_inception_weights
from handaug.pretrained import load_state_dict_file


@dataclass(frozen=True)
class FidKid:
    """FID and KID of a fake set against a real set.

    ``fid`` is the Fréchet distance of the two feature Gaussians; ``kid_mean`` / ``kid_std`` the
    mean and standard deviation of the KID estimate over ``kid_subsets`` subsets of
    ``kid_subset_size`` images of each set. Lower is better for both. ``isc_mean`` /
    ``isc_std``: the fake set's Inception Score where it was computed (higher is better).
    """

    fid: float
    kid_mean: float
    kid_std: float
    n_real: int
    n_fake: int
    kid_subsets: int
    kid_subset_size: int
    isc_mean: float | None = None
    isc_std: float | None = None

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


def frechet_distance(real_features: torch.Tensor, fake_features: torch.Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to features ``(N_real, d)`` and ``(N_fake, d)`` (FID's formula), in float64."""
    # deferred: torchmetrics is the [eval] extra
    from torchmetrics.image.fid import FrechetInceptionDistance

    real = _check_features(real_features, "real_features")
    fake = _check_features(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real_features have {real.shape[1]} features per image but fake_features {fake.shape[1]}")
    metric = FrechetInceptionDistance(feature=_PrecomputedFeatures(real.shape[1]), normalize=True)
    metric.set_dtype(torch.float64)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


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
    # deferred: torchmetrics is the [eval] extra
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
    fid = frechet_distance(real, fake)

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


#: torch-fidelity's name of the FID InceptionV3, and the name handaug registers its adapter under.
FIDELITY_INCEPTION = "inception-v3-compat"
FIDELITY_HANDAUG_FEATURES = "handaug-features"
#: The file extensions torch-fidelity reads from a folder (its default ``samples_find_ext``).
FIDELITY_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _handaug_features_class() -> type:
    """torch-fidelity's feature-extractor interface around a handaug extractor (registered once)."""
    # deferred: torch-fidelity is the [eval] extra
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if FIDELITY_HANDAUG_FEATURES in FEATURE_EXTRACTORS_REGISTRY:
        return FEATURE_EXTRACTORS_REGISTRY[FIDELITY_HANDAUG_FEATURES]

    class HandaugFeatures(FeatureExtractorBase):
        """uint8 ``(B, 3, H, W)`` from torch-fidelity → the handaug extractor's ``(B, d)`` features (as ``"features"``)."""

        def __init__(self, name: str, features_list: list[str], handaug_extractor: nn.Module | None = None, **kwargs: Any) -> None:
            super().__init__(name, features_list)
            if handaug_extractor is None:
                raise ValueError("the handaug-features extractor needs handaug_extractor=<a handaug feature extractor module>")
            self.extractor = handaug_extractor

        @staticmethod
        def get_provided_features_list() -> tuple[str, ...]:
            return ("features",)

        @staticmethod
        def get_default_feature_layer_for_metric(metric: str) -> str:
            return "features"

        @staticmethod
        def can_be_compiled() -> bool:
            return False

        @staticmethod
        def get_dummy_input_for_compile() -> torch.Tensor:
            return torch.zeros(1, 3, 32, 32, dtype=torch.uint8)

        def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return (self.extractor(images.float().div(255.0)).float(),)

    register_feature_extractor(FIDELITY_HANDAUG_FEATURES, HandaugFeatures)
    return HandaugFeatures


def count_images(folder: str | os.PathLike[str]) -> int:
    """How many files torch-fidelity reads from ``folder`` (``.png``, ``.jpg``, ``.jpeg``, not recursive)."""
    return sum(1 for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in FIDELITY_EXTENSIONS)


def fid_kid_of_folders(
    fake: str | os.PathLike[str],
    real: str | os.PathLike[str],
    *,
    features: str | nn.Module = "inception",
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    isc: bool = False,
    device: str | torch.device = "cpu",
    weights: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
) -> FidKid:
    """FID and KID (and optionally the Inception Score of ``fake``) by torch-fidelity on two image folders.

    torch-fidelity reads every ``.png``/``.jpg``/``.jpeg`` file of each folder (sorted by name),
    extracts features, and computes the metrics with its own code: KID subsets drawn with its
    fixed seed (2020), polynomial kernel of degree 3. ``fake`` is its first input, ``real`` its
    second (the H-GAN reference code's order).

    Args:
        fake, real: folders of images.
        features: ``"inception"`` (torch-fidelity's ``inception-v3-compat``, pool3 features, its
            weights read from ``weights`` or the hub cache and handed to torch-fidelity as a copy
            holding tensors only), or a handaug feature extractor module (``(B, 3, H, W)`` in
            ``[0, 1]`` → ``(B, d)``), which torch-fidelity then runs in its place.
        kid_subsets, kid_subset_size: KID's subsets; the size may not exceed either folder's count.
        isc: also the Inception Score of ``fake`` (``"inception"`` only).
        device: ``"cpu"`` or a CUDA device.
        weights: InceptionV3 weights file (default: the torch hub cache).

    Raises:
        ImportError: torch-fidelity is not installed.
        FileNotFoundError: a folder or the InceptionV3 weights are missing (the message says which file, where).
        ValueError: fewer than 2 images in a folder, ``kid_subset_size`` larger than a folder,
            ``isc`` without the InceptionV3, or a weights file that is not the InceptionV3 state dict.
    """
    try:
        import torch_fidelity  # deferred: torch-fidelity is the [eval] extra
    except ImportError as err:
        raise ImportError("FID/KID on image folders needs torch-fidelity: pip install 'handaug[eval]' (or pip install torch-fidelity)") from err
    counts = {}
    for name, folder in (("fake", fake), ("real", real)):
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"{name} folder {str(folder)!r} does not exist")
        counts[name] = count_images(folder)
        if counts[name] < 2:
            raise ValueError(f"{name} folder {str(folder)!r} holds {counts[name]} images; FID and KID need at least 2")
    for name, value, least in (("kid_subsets", kid_subsets, 1), ("kid_subset_size", kid_subset_size, 2)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if kid_subset_size > min(counts.values()):
        raise ValueError(
            f"kid_subset_size {kid_subset_size} exceeds the images of a folder (fake {counts['fake']}, real {counts['real']})"
        )
    device = torch.device(device)
    common: dict[str, Any] = dict(
        input1=str(fake), input2=str(real), fid=True, kid=True, isc=bool(isc), kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size, cuda=device.type == "cuda", batch_size=batch_size, cache=False,
        save_cpu_ram=True, verbose=False,
    )
    with tempfile.TemporaryDirectory(prefix="handaug-fidelity-") as tmp, torch.cuda.device(device) if device.type == "cuda" else nullcontext():
        if isinstance(features, str):
            if features != "inception":
                raise ValueError(f"features must be 'inception' or a feature extractor module, got {features!r}")
            # torch-fidelity unpickles its weights file in full: hand it a copy holding only checked tensors.
            private = os.path.join(tmp, "inception.pth")
            torch.save(load_state_dict_file(find_inception_weights(weights)), private)
            common.update(feature_extractor=FIDELITY_INCEPTION, feature_extractor_weights_path=private)
        else:
            if isc:
                raise ValueError("isc needs the InceptionV3 (features='inception'): a custom feature extractor has no class logits")
            _handaug_features_class()
            common.update(feature_extractor=FIDELITY_HANDAUG_FEATURES, handaug_extractor=features)
        try:
            metrics = torch_fidelity.calculate_metrics(**common)
        except RuntimeError as err:
            raise ValueError(f"torch-fidelity could not compute the metrics: {err}") from err
    return FidKid(
        fid=float(metrics[torch_fidelity.KEY_METRIC_FID]),
        kid_mean=float(metrics[torch_fidelity.KEY_METRIC_KID_MEAN]),
        kid_std=float(metrics[torch_fidelity.KEY_METRIC_KID_STD]),
        n_real=counts["real"],
        n_fake=counts["fake"],
        kid_subsets=int(kid_subsets),
        kid_subset_size=int(kid_subset_size),
        isc_mean=float(metrics[torch_fidelity.KEY_METRIC_ISC_MEAN]) if isc else None,
        isc_std=float(metrics[torch_fidelity.KEY_METRIC_ISC_STD]) if isc else None,
    )
