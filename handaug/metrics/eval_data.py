"""Evaluation image sets: procedural hands or image folders, brought to one size, and their translations.

An :class:`EvalSet` holds ``N`` images as one uint8 tensor, with hand masks and 2D keypoints
where the source has them. Sets come from

- :func:`procedural_set`: the built-in renderer (:class:`handaug.data.procedural.ProceduralHands`),
  at seeds chosen by :func:`role_seed`, far from the seeds ``handaug-train`` uses (0 and 1 by
  default), so evaluation hands are never training hands;
- :func:`load_image_set`: any data source ``handaug-train`` accepts (``"procedural"``, a folder,
  ``"NAME:ROOT"`` for a registered dataset), resized and centre-cropped to a square.

Backgrounds are handled as in training: with ``background="white"`` (H-GAN's choice, the
default) every pixel outside the hand mask becomes white, for every set, so that measures look at
hands, not at backgrounds. :func:`translate_set` runs a checkpoint (through
:class:`handaug.SynthToReal`, see :func:`handaug.metrics.translators.checkpoint_translator`) or
any callable over a set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from handaug.arguments import check_int
from handaug.data.background import FILL_NAMES, FILLS_UINT8, KEEP
from handaug.data.procedural import ProceduralHands
from handaug.data.sources import parse_source
from handaug.metrics.progress import batches, progress
from handaug.metrics.translators import PathLike, Translator, checkpoint_translator
from handaug.registry import create_dataset

#: Offsets of the procedural seeds of each evaluation set (see :func:`role_seed`).
ROLES: tuple[str, ...] = (
    "fid_synthetic",
    "fid_real",
    "classifier_train_synthetic",
    "classifier_train_real",
    "classifier_train_generated",
    "classifier_test_synthetic",
    "classifier_test_real",
    "classifier_test_generated",
    "shape",
    "segmenter_train",
    "pose_train",
    "pose_test",
    "grid_synthetic",
    "grid_real",
    "structure",
)
EVAL_SEED_BASE = 10_000


def role_seed(seed: int, role: str) -> int:
    """The procedural seed of evaluation set ``role`` for the run seed ``seed``.

    ``10000 + 100 * seed + ROLES.index(role)``: distinct for every role and far from training's seeds.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    seed = check_int(seed, "seed", 0)
    return EVAL_SEED_BASE + 100 * seed + ROLES.index(role)


@dataclass(frozen=True)
class EvalSet:
    """``N`` images of one size, with optional masks and keypoints.

    Attributes:
        images: ``(N, 3, H, W)`` uint8 RGB.
        masks: ``(N, 1, H, W)`` bool hand silhouettes, or ``None``.
        keypoints: ``(N, 21, 2)`` float32 pixel coordinates (centre of pixel ``(i, j)`` at
            ``x = j, y = i``), or ``None``.
        name: what the set is (shown in progress bars and tables).
    """

    images: torch.Tensor
    masks: torch.Tensor | None = None
    keypoints: torch.Tensor | None = None
    name: str = "images"

    def __post_init__(self) -> None:
        x = self.images
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 or x.dtype != torch.uint8:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"images must be a uint8 tensor of shape (N, 3, H, W), got {shape}")
        n, _, h, w = x.shape
        if self.masks is not None and (self.masks.shape != (n, 1, h, w) or self.masks.dtype != torch.bool):
            raise ValueError(f"masks must be a bool tensor of shape {(n, 1, h, w)}, got {self.masks.dtype} {tuple(self.masks.shape)}")
        if self.keypoints is not None and (self.keypoints.ndim != 3 or self.keypoints.shape[0] != n or self.keypoints.shape[2] != 2):
            raise ValueError(f"keypoints must have shape ({n}, K, 2), got {tuple(self.keypoints.shape)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def subset(self, index: slice | Sequence[int] | torch.Tensor) -> EvalSet:
        """The images (and masks, keypoints) at ``index``."""
        if not isinstance(index, slice):
            index = torch.as_tensor(index, dtype=torch.long)
        return EvalSet(
            self.images[index],
            None if self.masks is None else self.masks[index],
            None if self.keypoints is None else self.keypoints[index],
            self.name,
        )

    def with_images(self, images: torch.Tensor, name: str | None = None) -> EvalSet:
        """The same masks and keypoints with other ``images`` of the same shape (e.g. a translation)."""
        if images.shape != self.images.shape:
            raise ValueError(f"images must have shape {tuple(self.images.shape)}, got {tuple(images.shape)}")
        return replace(self, images=images, name=name or self.name)


def concat_sets(sets: Sequence[EvalSet], name: str) -> EvalSet:
    """Images of several sets of one size in one set (masks/keypoints kept only if all have them)."""
    if not sets:
        raise ValueError("sets must not be empty")
    masks = None if any(s.masks is None for s in sets) else torch.cat([s.masks for s in sets])
    keypoints = None if any(s.keypoints is None for s in sets) else torch.cat([s.keypoints for s in sets])
    return EvalSet(torch.cat([s.images for s in sets]), masks, keypoints, name)


def _check_background(background: str) -> str:
    if background not in FILL_NAMES:
        raise ValueError(f"background must be one of {FILL_NAMES}, got {background!r}")
    return background


def apply_background(images: torch.Tensor, masks: torch.Tensor | None, background: str) -> torch.Tensor:
    """Set pixels outside ``masks`` ``(N, 1, H, W)`` bool to white or black (``"keep"``: unchanged)."""
    _check_background(background)
    if background == KEEP or masks is None:
        return images
    return torch.where(masks, images, torch.full_like(images, FILLS_UINT8[background]))


def _stack_items(items: list[dict], name: str) -> EvalSet:
    images = torch.from_numpy(np.stack([item["image"] for item in items])).permute(0, 3, 1, 2).contiguous()
    masks = None
    if all("mask" in item for item in items):
        masks = torch.from_numpy(np.stack([item["mask"] for item in items]) > 0).unsqueeze(1)
    keypoints = None
    if all("keypoints_2d" in item for item in items):
        keypoints = torch.from_numpy(np.stack([np.asarray(item["keypoints_2d"], dtype=np.float32) for item in items]))
    return EvalSet(images, masks, keypoints, name)


def procedural_set(
    style: str,
    n: int,
    seed: int,
    *,
    image_size: int = 64,
    background: str = "white",
    show_progress: bool = False,
    name: str | None = None,
) -> EvalSet:
    """``n`` procedural hands of ``style`` (``"synthetic"`` or ``"real"``) at procedural ``seed``, with masks and keypoints.

    ``"white"``: rendered in front of a white wall, so a real-style hand's ambient light, grazing
    spill and blurred edges come from white, exactly as ``handaug-train``'s procedural data with
    ``background: white`` (the demo's real hands); then every pixel outside the mask is set to white.
    ``"black"`` and ``"keep"``: rendered on the green screen (real-style hands then carry green spill
    at their edges, as in green-screen captures such as RealHands) and the background is set
    through the mask (``"keep"`` leaves the green). The hand geometry, masks and keypoints of a seed
    are the same for every background.
    """
    n = check_int(n, "n", 1)
    _check_background(background)
    render_on = "white" if background == "white" else "green_screen"
    hands = ProceduralHands(style=style, image_size=image_size, length=n, seed=seed, background=render_on)
    name = name or f"{style} (procedural seed {seed})"
    items = [hands[i] for i in progress(range(n), f"render {name}", total=n, enabled=show_progress)]
    result = _stack_items(items, name)
    return result.with_images(apply_background(result.images, result.masks, background))


def _resize_item(item: dict, image_size: int) -> dict:
    # deferred: albumentations is the [albumentations] extra, needed by folder sources only
    import albumentations as A

    pipeline = A.Compose(
        [A.SmallestMaxSize(max_size=image_size), A.CenterCrop(image_size, image_size)],
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False) if "keypoints_2d" in item else None,
    )
    kwargs = {"image": item["image"]}
    if "mask" in item:
        kwargs["mask"] = item["mask"]
    if "keypoints_2d" in item:
        kwargs["keypoints"] = np.asarray(item["keypoints_2d"], dtype=np.float32)
    out = pipeline(**kwargs)
    resized = {"image": out["image"]}
    if "mask" in item:
        resized["mask"] = out["mask"]
    if "keypoints_2d" in item:
        resized["keypoints_2d"] = np.asarray(out["keypoints"], dtype=np.float32)
    return resized


def load_image_set(
    source: str,
    *,
    style: str,
    n: int,
    seed: int,
    image_size: int = 64,
    background: str = "white",
    masks: str | None = None,
    show_progress: bool = False,
    name: str | None = None,
) -> EvalSet:
    """``n`` images of a data source, resized (shorter side) and centre-cropped to ``image_size``.

    Args:
        source: ``"procedural"`` (rendered in ``style`` at procedural seed ``seed``), a folder of
            images, or ``"NAME:ROOT"`` for a registered dataset (as for ``handaug-train``).
        style: ``"synthetic"`` or ``"real"``: the domain (the procedural style).
        n: how many images; a dataset with more is sampled without replacement (order drawn from
            ``seed``), one with fewer gives all it has.
        seed: procedural seed, or the seed of the sample drawn from a dataset.
        background: ``"white"``, ``"black"`` (outside the masks) or ``"keep"``.
        masks: for a folder source, where each image's mask is (``ImageFolder``'s ``mask_pattern``).

    Raises:
        ValueError: a bad argument, or a dataset with fewer than 2 images.
        FileNotFoundError: the folder does not exist.
    """
    n = check_int(n, "n", 1)
    _check_background(background)
    spec = parse_source(source, "source")
    if spec.name == "procedural":
        return procedural_set(style, n, seed, image_size=image_size, background=background, show_progress=show_progress, name=name)
    dataset = _open_dataset(source, masks)
    order = np.random.default_rng(seed).permutation(len(dataset))[: min(n, len(dataset))]
    return _load_items(dataset, order, image_size, background, name or f"{style} ({source})", show_progress)


def _open_dataset(source: str, masks: str | None):  # noqa: ANN202 - any map-style dataset
    spec = parse_source(source, "source")
    if masks is not None and spec.name != "folder":
        raise ValueError(f"masks applies to folder sources, but source {source!r} is read by {spec.name!r}")
    dataset = create_dataset(spec.name, root=spec.root, **({"mask_pattern": masks} if masks is not None else {}))
    if len(dataset) < 2:
        raise ValueError(f"source {source!r} has {len(dataset)} images; evaluation needs at least 2")
    return dataset


def _load_items(dataset, indices, image_size: int, background: str, name: str, show_progress: bool) -> EvalSet:  # noqa: ANN001
    items = [_resize_item(dataset[int(i)], image_size) for i in progress(indices, f"load {name}", total=len(indices), enabled=show_progress)]
    result = _stack_items(items, name)
    return result.with_images(apply_background(result.images, result.masks, background))


def translate_set(
    translator: Translator | PathLike | Sequence[PathLike],
    images: EvalSet,
    *,
    batch_size: int = 32,
    mask_mode: str = "composite",
    device: str | torch.device | None = None,
    show_progress: bool = False,
    name: str | None = None,
) -> EvalSet:
    """``images`` translated by a checkpoint (path or list of paths) or a :data:`Translator` callable.

    With ``mask_mode="composite"`` and masks, only the hands change (the background stays bit for
    bit); with ``"none"`` whole images are translated and masks are not used. Masks and keypoints
    are carried over unchanged.
    """
    if isinstance(translator, (str, os.PathLike)) or (isinstance(translator, Sequence) and not callable(translator)):
        translator = checkpoint_translator(translator, mask_mode=mask_mode, device=device)
    elif not callable(translator):
        raise ValueError(f"translator must be a checkpoint path, a list of paths or a callable, got {translator!r}")
    out = torch.empty_like(images.images)
    parts = batches(len(images), batch_size)
    name = name or f"{images.name} → translated"
    for part in progress(parts, f"translate {images.name}", total=len(parts), enabled=show_progress):
        masks = images.masks[part] if (images.masks is not None and mask_mode == "composite") else None
        translated = translator(images.images[part], masks)
        if translated.shape != images.images[part].shape or translated.dtype != torch.uint8:
            raise ValueError(
                f"translator returned {translated.dtype} {tuple(translated.shape)}, expected uint8 {tuple(images.images[part].shape)}"
            )
        out[part] = translated
    return images.with_images(out, name)


class DomainSources:
    """Disjoint evaluation sets of the synthetic and real domains, by role.

    For the procedural source each role is rendered at its own seed (:func:`role_seed`), so
    roles never share hands. For a folder or registered dataset, one seeded random order of its
    images is drawn per domain and roles take consecutive, non-overlapping runs of it (a role asked
    for again gets the same images).

    Args:
        synthetic: data source of the synthetic domain (``"procedural"``, a folder, ``"NAME:ROOT"``).
        real: data source of the real domain.
        image_size: side of the square evaluation images.
        seed: the run seed.
        background: ``"white"``, ``"black"`` or ``"keep"`` (outside the hand masks).
        synthetic_masks / real_masks: mask patterns for folder sources (``ImageFolder``'s ``mask_pattern``).
        show_progress: progress bars while rendering/loading.
    """

    def __init__(
        self,
        synthetic: str = "procedural",
        real: str = "procedural",
        *,
        image_size: int = 64,
        seed: int = 0,
        background: str = "white",
        synthetic_masks: str | None = None,
        real_masks: str | None = None,
        show_progress: bool = True,
    ) -> None:
        _check_background(background)
        self.sources = {"synthetic": synthetic, "real": real}
        self.masks = {"synthetic": synthetic_masks, "real": real_masks}
        self.image_size = image_size
        self.seed = seed
        self.background = background
        self.show_progress = show_progress
        self._datasets: dict[str, tuple[object, np.ndarray]] = {}
        self._taken: dict[str, int] = {"synthetic": 0, "real": 0}
        self._roles: dict[tuple[str, str], EvalSet] = {}

    def is_procedural(self, domain: str) -> bool:
        return self.sources[domain] == "procedural"

    def take(self, domain: str, role: str, n: int) -> EvalSet:
        """``n`` images of ``domain`` (``"synthetic"`` or ``"real"``) for ``role`` (one of :data:`ROLES`)."""
        if domain not in self.sources:
            raise ValueError(f"domain must be 'synthetic' or 'real', got {domain!r}")
        n = check_int(n, "n", 1)
        key = (domain, role)
        if key in self._roles and len(self._roles[key]) >= n:
            return self._roles[key].subset(slice(0, n))
        if self.is_procedural(domain):
            result = procedural_set(
                domain, n, role_seed(self.seed, role), image_size=self.image_size, background=self.background,
                show_progress=self.show_progress, name=f"{domain} ({role})",
            )
        else:
            dataset, order = self._dataset(domain)
            start = self._taken[domain]
            if start + n > len(order):
                raise ValueError(
                    f"the {domain} source {self.sources[domain]!r} has {len(order)} images, too few for the evaluation sets "
                    f"asked of it ({start} already used, {n} more for {role}); lower the image counts"
                )
            self._taken[domain] = start + n
            result = _load_items(dataset, order[start : start + n], self.image_size, self.background, f"{domain} ({role})", self.show_progress)
        self._roles[key] = result
        return result

    def _dataset(self, domain: str) -> tuple[object, np.ndarray]:
        if domain not in self._datasets:
            dataset = _open_dataset(self.sources[domain], self.masks[domain])
            order = np.random.default_rng([self.seed, 0 if domain == "synthetic" else 1]).permutation(len(dataset))
            self._datasets[domain] = (dataset, order)
        return self._datasets[domain]
