"""GANeratedHands (Mueller et al., CVPR 2018): synthetic hands translated by GeoConGAN, 256×256 crops.

Layout (``GANeratedHands_Release/data/``): ``noObject/NNNN/`` and ``withObject/NNNN/`` folders
holding, per frame, ``NNNN_color_composed.png`` (256×256 RGB, the hand composited on a random
background), ``NNNN_joint2D.txt`` (21 × 2 pixel coordinates in the 256×256 crop, one line,
comma separated), ``NNNN_joint_pos.txt`` (21 × 3, root-relative and scale-normalised),
``NNNN_joint_pos_global.txt`` (21 × 3, millimetres in the camera frame) and
``NNNN_crop_params.txt``. Every ``*_color_composed.png`` under ``root`` is one sample.

The images are crops, so no intrinsics matching them are provided: items have no ``K``.
``keypoints_3d`` comes from ``_joint_pos_global.txt`` converted to **metres**;
``keypoints_3d_normalized`` is ``_joint_pos.txt`` as stored (unitless). There are no masks.
Joint order: ``W, T0..L3``, already handaug's (see :mod:`handaug.data.joints`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from handaug.data.joints import remap_joints
from handaug.data.readers.base import DatasetReader, find_files, read_numbers, require_root

__all__ = ["GANeratedHands"]

LAYOUT = (
    "ROOT/**/NNNN_color_composed.png with NNNN_joint2D.txt (21×2 px) beside each, and optionally "
    "NNNN_joint_pos_global.txt (21×3 mm) and NNNN_joint_pos.txt (21×3 normalised)"
)
_SUFFIX = "_color_composed.png"


class GANeratedHands(DatasetReader):
    """GANeratedHands frames with 21 keypoints.

    Args:
        root: the release's ``data`` folder (or any sub-folder).

    Items: ``image`` ``(256, 256, 3)`` uint8 RGB; ``keypoints_2d`` ``(21, 2)`` float32 pixels;
    ``keypoints_3d`` ``(21, 3)`` float32 metres (when ``_joint_pos_global.txt`` exists);
    ``keypoints_3d_normalized`` ``(21, 3)`` float32 (when ``_joint_pos.txt`` exists); ``path``.

    Raises:
        ValueError / FileNotFoundError: ``root`` missing or without ``*_color_composed.png``, or
            a frame without its ``_joint2D.txt`` (the message names them).
    """

    dataset = "GANeratedHands"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = require_root(root, self.dataset, LAYOUT)
        self.image_paths = find_files(self.root, f"**/*{_SUFFIX}", self.dataset, LAYOUT)
        missing = [str(self._annotation(p, "joint2D")) for p in self.image_paths if not self._annotation(p, "joint2D").is_file()]
        if missing:
            raise ValueError(
                f"{len(missing)} GANeratedHands frame(s) under root {str(self.root)!r} have no 2D joint file: "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
            )

    @staticmethod
    def _annotation(image: Path, kind: str) -> Path:
        return image.with_name(f"{image.name[: -len(_SUFFIX)]}_{kind}.txt")

    def load(self, index: int) -> dict[str, Any]:
        path = self.image_paths[index]
        sample: dict[str, Any] = {
            "image": self.read_image(path),
            "keypoints_2d": remap_joints(read_numbers(self._annotation(path, "joint2D"), (21, 2)), "ganerated").astype(np.float32),
        }
        global_path = self._annotation(path, "joint_pos_global")
        if global_path.is_file():
            joints_mm = remap_joints(read_numbers(global_path, (21, 3)), "ganerated")
            sample["keypoints_3d"] = (joints_mm / 1000.0).astype(np.float32)
        normalized_path = self._annotation(path, "joint_pos")
        if normalized_path.is_file():
            sample["keypoints_3d_normalized"] = remap_joints(read_numbers(normalized_path, (21, 3)), "ganerated").astype(np.float32)
        return sample
