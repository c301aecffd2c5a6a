"""RealHands (Mueller et al., CVPR 2018, the GeoConGAN paper): webcam frames of 7 subjects' hands on a green screen.

Layout: one folder per recording, each with a ``color/`` folder of frames (``.png`` or
``.jpg``) and, in the release, a ``mask/`` folder of noisy masks named ``<frame prefix>_mask.jpg``
(the frame's stem up to its first ``"_c"``, as in H-GAN's preprocessing script). When ``root``
holds ``color/`` folders (at any depth), every image inside them is a frame; otherwise every
image under ``root`` whose name does not end in ``_mask`` and which is not in a ``mask``/``masks``
folder is one.

Masks (``mask_source``):

* ``"refine"`` (default): computed from the colour frame by the paper's §IV-B pipeline,
  :func:`handaug.data.masks.refine_green_screen_mask` (``mask_params`` passes its parameters);
* ``"provided"``: the release's ``mask/<prefix>_mask.jpg``, thresholded;
* ``"none"``: no masks.

With ``"refine"``, the constructor computes every frame's mask once and **drops** frames

* whose thresholded green key has more than ``max_contours`` outlines (60, the H-GAN reference
  script's artefact test; a ``mask_params`` entry, ``None`` turns it off), and
* with ``filter_area`` on, whose hand area lies outside ``area_range`` (5-50 % of the frame by
  default, as the paper says). The reference script's bounds are written 5-50 % too but, as it
  counts a 3-channel mask against one channel's pixel count, it keeps 1.67-16.7 %:
  ``area_range=(0.05 / 3, 0.5 / 3)`` reproduces that (it measures the raw key, handaug the
  refined mask).

Dropped frames are not listed in :attr:`image_paths`; their number is :attr:`dropped` (and
:attr:`dropped_paths`, :attr:`rejected_contours`), logged at INFO level.

``split`` then keeps one part of the reference's fixed split of the remaining frames
(:mod:`handaug.data.readers.split`): after a seeded shuffle, the first ``test_size`` (2,000)
are ``"test"``, the next ``val_size`` (1,000) ``"val"``, the rest ``"train"``.

RealHands ships no keypoints. If ``keypoints_pattern`` is given (e.g. ``"{stem}_joint2D.txt"``,
relative to the frame's folder, 21 × 2 numbers), frames with such a file get ``keypoints_2d``;
they are assumed to be in handaug's joint order already.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from handaug.data.folder import IMAGE_EXTENSIONS
from handaug.data.joints import remap_joints
from handaug.data.masks import MAX_CONTOURS, HandAreaFilter, refine_green_screen, refine_green_screen_mask
from handaug.data.readers.base import DatasetReader, read_numbers, require_root
from handaug.data.readers.split import REFERENCE_TEST_SIZE, REFERENCE_VAL_SIZE, check_split_arguments, fixed_split

__all__ = ["RealHands"]

log = logging.getLogger(__name__)

LAYOUT = "ROOT/<recording>/color/<frame>.png|.jpg (green-screen frames), optionally ROOT/<recording>/mask/<prefix>_mask.jpg"
MASK_SOURCES: tuple[str, ...] = ("refine", "provided", "none")
_MASK_FOLDERS = {"mask", "masks"}


class RealHands(DatasetReader):
    """RealHands green-screen frames with refined (or provided) hand masks.

    Args:
        root: the dataset folder.
        mask_source: ``"refine"``, ``"provided"`` or ``"none"`` (see the module docstring).
        mask_params: keyword arguments of :func:`~handaug.data.masks.refine_green_screen`
            (``max_contours``: 60 by default).
        filter_area: drop frames whose refined hand area is outside ``area_range`` (``"refine"`` only).
        area_range: ``(smallest, largest)`` kept hand area, fractions of the frame (default
            ``(0.05, 0.5)``; the reference script's effective range is ``(0.05 / 3, 0.5 / 3)``).
        keypoints_pattern: optional per-frame 2D keypoint file, ``{stem}`` / ``{name}`` formatted.
        split: ``"train"``, ``"val"`` or ``"test"``: one part of the reference's fixed split of
            the kept frames; ``None`` (default): every kept frame.
        test_size, val_size: sizes of the test and validation parts (reference: 2,000 and 1,000).
        split_seed: seed of the shuffle before the split; ``None`` keeps the sorted path order.

    Items: ``image`` ``(H, W, 3)`` uint8 RGB; ``mask`` ``(H, W)`` uint8 {0, 255} (unless
    ``"none"``); ``keypoints_2d`` ``(21, 2)`` float32 pixels (only where a keypoint file exists); ``path``.

    Attributes:
        image_paths: the kept frames (of the split), in index order.
        dropped: how many frames the contour reject and the area filter dropped; ``dropped_paths``
            lists them, ``rejected_contours`` those of the contour reject.
        area_filter: the :class:`~handaug.data.masks.HandAreaFilter` with its counts.

    Raises:
        ValueError / FileNotFoundError: ``root`` missing or without frames, an unknown
            ``mask_source``, bad mask parameters, ``area_range`` or split arguments, missing
            provided masks, every frame dropped, or an empty split.
    """

    dataset = "RealHands"

    def __init__(
        self,
        root: str | os.PathLike[str],
        mask_source: str = "refine",
        mask_params: dict[str, Any] | None = None,
        filter_area: bool = True,
        area_range: tuple[float, float] | list[float] = (0.05, 0.5),
        keypoints_pattern: str | None = None,
        split: str | None = None,
        test_size: int = REFERENCE_TEST_SIZE,
        val_size: int = REFERENCE_VAL_SIZE,
        split_seed: int | None = 0,
    ) -> None:
        if mask_source not in MASK_SOURCES:
            raise ValueError(f"mask_source must be one of {MASK_SOURCES}, got {mask_source!r}")
        if not isinstance(area_range, (tuple, list)) or len(area_range) != 2:
            raise ValueError(f"area_range must be (smallest, largest) hand area as fractions of the frame, got {area_range!r}")
        check_split_arguments(split, test_size, val_size, split_seed)
        self.mask_source = mask_source
        self.mask_params = dict(mask_params or {})
        self.keypoints_pattern = keypoints_pattern
        try:
            self.area_filter = HandAreaFilter(min_fraction=area_range[0], max_fraction=area_range[1])
        except ValueError as error:
            raise ValueError(f"area_range: {error}") from None
        self.split = split
        self.root = require_root(root, self.dataset, LAYOUT)
        frames = _find_frames(self.root)
        if not frames:
            raise ValueError(f"root {str(self.root)!r} holds no images: the {self.dataset} reader expects {LAYOUT}")
        if mask_source == "provided":
            missing = [str(_provided_mask(p)) for p in frames if not _provided_mask(p).is_file()]
            if missing:
                raise ValueError(
                    f"{len(missing)} frame(s) under root {str(self.root)!r} have no provided mask (mask_source='provided'): "
                    f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
                )
        self.dropped_paths: list[Path] = []
        self.rejected_contours: list[Path] = []
        if mask_source == "refine":
            try:  # check the parameters before reading any frame
                refine_green_screen(np.zeros((1, 1, 3), np.uint8), **self.mask_params)
            except TypeError as error:
                raise ValueError(f"mask_params holds an unknown parameter of refine_green_screen: {error}") from None
            if filter_area or self.mask_params.get("max_contours", MAX_CONTOURS) is not None:
                frames = self._screen(frames, filter_area)
        self.image_paths = fixed_split(
            frames, split, test_size=test_size, val_size=val_size, seed=split_seed, what=f"RealHands {str(self.root)!r}"
        )

    def _screen(self, frames: list[Path], filter_area: bool) -> list[Path]:
        """The frames that pass the contour reject and (with ``filter_area``) the area filter."""
        kept = []
        for path in frames:
            refined = refine_green_screen(self.read_image(path), **self.mask_params)
            if refined.rejected:
                self.rejected_contours.append(path)
                self.dropped_paths.append(path)
            elif not filter_area or self.area_filter.accept(refined.mask, name=str(path)):
                kept.append(path)
            else:
                self.dropped_paths.append(path)
        report = f"dropped {len(self.rejected_contours)} of {len(frames)} frames for too many contours"
        if filter_area:
            report += f"; of the others, {self.area_filter.report()}"
        log.info("RealHands %s: %s", self.root, report)
        if not kept:
            raise ValueError(
                f"all {len(frames)} frames under root {str(self.root)!r} were dropped: {report}; "
                "check mask_params (max_contours) or widen area_range"
            )
        return kept

    @property
    def dropped(self) -> int:
        """Frames dropped by the hand-area filter."""
        return len(self.dropped_paths)

    def load(self, index: int) -> dict[str, Any]:
        path = self.image_paths[index]
        image = self.read_image(path)
        sample: dict[str, Any] = {"image": image}
        if self.mask_source == "refine":
            sample["mask"] = refine_green_screen_mask(image, **self.mask_params)
        elif self.mask_source == "provided":
            sample["mask"] = self.read_mask(_provided_mask(path))
        if self.keypoints_pattern:
            keypoint_path = path.parent / self.keypoints_pattern.format(stem=path.stem, name=path.name)
            if keypoint_path.is_file():
                keypoints = read_numbers(keypoint_path, (21, 2))
                sample["keypoints_2d"] = remap_joints(keypoints, "realhands").astype(np.float32)
        return sample


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def _find_frames(root: Path) -> list[Path]:
    colour_dirs = sorted(d for d in [root, *root.rglob("color")] if d.name == "color" and d.is_dir())
    if colour_dirs:
        return sorted(p for d in colour_dirs for p in d.rglob("*") if _is_image(p))
    return sorted(
        p
        for p in root.rglob("*")
        if _is_image(p) and not p.stem.endswith("_mask") and not (_MASK_FOLDERS & {part.lower() for part in p.relative_to(root).parts[:-1]})
    )


def _provided_mask(frame: Path) -> Path:
    """The release's mask of a frame: ``<recording>/mask/<stem up to '_c'>_mask.jpg``."""
    prefix = frame.stem.split("_c")[0]
    return frame.parent.parent / "mask" / f"{prefix}_mask.jpg"
