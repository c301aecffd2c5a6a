"""FreiHAND (Zimmermann et al., ICCV 2019): real hands, 224×224, MANO-fitted 3D keypoints.

Layout (``FreiHAND_pub_v2/``): ``training/rgb/NNNNNNNN.jpg``, ``training/mask/NNNNNNNN.jpg``,
``training_xyz.json`` (a list of ``N`` arrays 21 × 3, metres, camera frame) and
``training_K.json`` (a list of ``N`` intrinsic matrices 3 × 3). The ``evaluation`` split uses
the same names with ``evaluation`` in place of ``training``.

**Four versions per annotation.** The training set has ``N = 32560`` annotations but
``4 N = 130240`` RGB images: the green-screen recording, then three versions whose background
(and, for two, the hand's colour) was replaced. Image ``i`` shows the hand of annotation
``i % N``; masks exist for the first ``N`` images only and fit every version (same geometry),
so image ``i`` gets mask ``i % N``. This reader lists every image (``len == 4 N``) and applies
that rule; ``keypoints_2d`` is the projection of ``keypoints_3d`` by ``K``.
Joint order: wrist, thumb, index, middle, ring, pinky, base→tip — handaug's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from handaug.data.joints import remap_joints
from handaug.data.readers.base import DatasetReader, find_files, project, require_root
from handaug.data.source_files import read_source_json

__all__ = ["FreiHAND"]

SPLITS: tuple[str, ...] = ("training", "evaluation")


def _layout(split: str) -> str:
    return f"ROOT/{split}/rgb/NNNNNNNN.jpg, ROOT/{split}_xyz.json, ROOT/{split}_K.json and optionally ROOT/{split}/mask/"


class FreiHAND(DatasetReader):
    """FreiHAND images with masks (where available) and 21 keypoints.

    Args:
        root: the release folder (the one holding ``training_xyz.json``).
        split: ``"training"`` or ``"evaluation"``.

    Items: ``image`` ``(224, 224, 3)`` uint8 RGB; ``mask`` ``(224, 224)`` uint8 {0, 255} (when
    ``{split}/mask`` exists); ``keypoints_3d`` ``(21, 3)`` float32 metres; ``keypoints_2d``
    ``(21, 2)`` float32 pixels; ``K`` ``(3, 3)`` float32; ``annotation_index`` (int); ``path``.

    Raises:
        ValueError / FileNotFoundError: ``root`` missing, no images, missing or malformed JSON,
            or an image count that is not a multiple of the annotation count.
    """

    dataset = "FreiHAND"

    def __init__(self, root: str | os.PathLike[str], split: str = "training") -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.split = split
        layout = _layout(split)
        self.root = require_root(root, self.dataset, layout)
        self.image_paths = find_files(self.root, f"{split}/rgb/*.jpg", self.dataset, layout)
        self.xyz = _read_json_array(self.root / f"{split}_xyz.json", (21, 3), layout)
        self.K = _read_json_array(self.root / f"{split}_K.json", (3, 3), layout)
        if len(self.K) != len(self.xyz):
            raise ValueError(
                f"{split}_K.json has {len(self.K)} entries but {split}_xyz.json has {len(self.xyz)} under root {str(self.root)!r}"
            )
        self.num_annotations = len(self.xyz)
        if len(self.image_paths) % self.num_annotations:
            raise ValueError(
                f"root {str(self.root)!r} has {len(self.image_paths)} images in {split}/rgb, not a multiple of the "
                f"{self.num_annotations} annotations in {split}_xyz.json (FreiHAND has k versions of each)"
            )
        mask_dir = self.root / split / "mask"
        self.mask_paths: list[Path] | None = None
        if mask_dir.is_dir():
            self.mask_paths = [mask_dir / p.name for p in self.image_paths[: self.num_annotations]]
            missing = [str(m) for m in self.mask_paths if not m.is_file()]
            if missing:
                raise ValueError(
                    f"{len(missing)} mask(s) missing in {str(mask_dir)!r}: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
                )

    def load(self, index: int) -> dict[str, Any]:
        annotation = index % self.num_annotations
        xyz = remap_joints(self.xyz[annotation], "freihand")
        K = self.K[annotation]
        sample: dict[str, Any] = {
            "image": self.read_image(self.image_paths[index]),
            "keypoints_2d": project(xyz, K).astype(np.float32),
            "keypoints_3d": xyz.astype(np.float32),
            "K": K.astype(np.float32),
            "annotation_index": annotation,
        }
        if self.mask_paths is not None:
            sample["mask"] = self.read_mask(self.mask_paths[annotation])
        return sample


def _read_json_array(path: Path, shape: tuple[int, ...], layout: str) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist; the FreiHAND reader expects {layout}")
    try:
        array = np.asarray(read_source_json(path), dtype=np.float64)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{str(path)!r} is not a JSON list of {shape} arrays: {error}") from None
    if array.ndim != 1 + len(shape) or array.shape[1:] != shape or len(array) == 0:
        raise ValueError(f"{str(path)!r} must hold a non-empty list of {shape} arrays, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{str(path)!r} holds NaN or infinite values; annotations must be finite numbers")
    return array
