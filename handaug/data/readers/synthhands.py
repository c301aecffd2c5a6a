"""SynthHands (Mueller et al., ICCV 2017): rendered egocentric hands on a chroma-green background.

Layout (the release, ``SynthHands_Release/``): sub-folders such as
``female_noobject/seq01/cam01/01/`` holding, per frame, ``NNNNNNNN_color.png`` (640×480 RGB,
background exactly RGB (14, 255, 14)), ``NNNNNNNN_joint_pos.txt`` (21 × 3 numbers, comma
separated, millimetres in the **depth** camera's frame) and depth / colour-on-depth images this
reader ignores. Every ``*_color.png`` under ``root`` (recursively) is one sample; with
``noobject_only`` only those in ``*_noobject`` sequences (``female_noobject``, ``male_noobject``:
hands without a held object), as the H-GAN reference code trains on.

``split`` keeps one part of the reference's fixed split (:mod:`handaug.data.readers.split`):
after a seeded shuffle of the frames, the first ``test_size`` (2,000) are ``"test"``, the next
``val_size`` (1,000) ``"val"`` and the rest ``"train"``.

Geometry: the colour camera sits at ``DEPTH_TO_COLOR_MM`` from the depth camera (a pure
translation), with intrinsics ``COLOR_K`` (fx = fy = 617.173, cx = 315.453, cy = 242.259). So

    keypoints_3d = (joint_pos + DEPTH_TO_COLOR_MM) / 1000      (metres, colour camera frame)
    keypoints_2d = project(keypoints_3d, COLOR_K)              (pixels of *_color.png)

``keypoints_3d`` is in **metres** (like the procedural hands), and ``keypoints_2d`` is its
exact projection by ``K``. Joint order: the file's ``W, T0..T3, I0..I3, M0..M3, R0..R3, L0..L3``
is already handaug's (see :mod:`handaug.data.joints`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from handaug.arguments import check_flag, check_int
from handaug.data.background import GREEN_SCREEN_RGB
from handaug.data.joints import remap_joints
from handaug.data.readers.base import DatasetReader, chroma_key_mask, find_files, project, read_numbers, require_root
from handaug.data.readers.split import REFERENCE_TEST_SIZE, REFERENCE_VAL_SIZE, check_split_arguments, fixed_split

__all__ = ["COLOR_K", "DEPTH_TO_COLOR_MM", "SynthHands"]

COLOR_K = np.array([[617.173, 0.0, 315.453], [0.0, 617.173, 242.259], [0.0, 0.0, 1.0]], dtype=np.float64)
"""Intrinsics of SynthHands' colour camera (640×480)."""

DEPTH_TO_COLOR_MM = np.array([24.7, -0.0471401, 3.72045], dtype=np.float64)
"""Translation from the depth camera's frame to the colour camera's, millimetres."""

LAYOUT = "ROOT/**/NNNNNNNN_color.png with NNNNNNNN_joint_pos.txt (21×3 mm) beside each"
#: Sequences without a held object end in this (the release's ``female_noobject`` and ``male_noobject``).
NOOBJECT_SUFFIX = "_noobject"


class SynthHands(DatasetReader):
    """SynthHands frames with chroma-key masks and 21 keypoints.

    Args:
        root: the release folder (or any sub-folder of it).
        mask_tolerance: a pixel is background when every RGB channel is within this many
            levels of the chroma green (14, 255, 14); 0 keys the exact colour only (what the
            H-GAN reference code does).
        noobject_only: keep only frames under a folder whose name ends in ``_noobject`` (any
            folder of the frame's path); the reference's choice. Default: every sequence.
        split: ``"train"``, ``"val"`` or ``"test"``: one part of the reference's fixed split;
            ``None`` (default): every frame.
        test_size, val_size: sizes of the test and validation parts (reference: 2,000 and 1,000).
        split_seed: seed of the shuffle before the split; ``None`` keeps the sorted path order.

    Items: ``image`` ``(480, 640, 3)`` uint8 RGB; ``mask`` ``(480, 640)`` uint8 {0, 255}
    (255 = not chroma green = hand and objects); ``keypoints_2d`` ``(21, 2)`` float32 pixels;
    ``keypoints_3d`` ``(21, 3)`` float32 metres in the colour camera frame; ``K`` ``(3, 3)``
    float32 (:data:`COLOR_K`); ``path``.

    Raises:
        ValueError / FileNotFoundError: ``root`` missing or without ``*_color.png`` (or without
            ``*_noobject`` frames when asked for), a frame without its ``_joint_pos.txt`` (the
            message names the files), a bad ``mask_tolerance`` or split argument, an empty split.
    """

    dataset = "SynthHands"

    def __init__(
        self,
        root: str | os.PathLike[str],
        mask_tolerance: int = 30,
        noobject_only: bool = False,
        split: str | None = None,
        test_size: int = REFERENCE_TEST_SIZE,
        val_size: int = REFERENCE_VAL_SIZE,
        split_seed: int | None = 0,
    ) -> None:
        mask_tolerance = check_int(mask_tolerance, "mask_tolerance", 0, 255)
        noobject_only = check_flag(noobject_only, "noobject_only")
        check_split_arguments(split, test_size, val_size, split_seed)
        self.mask_tolerance = mask_tolerance
        self.noobject_only = noobject_only
        self.split = split
        self.root = require_root(root, self.dataset, LAYOUT)
        paths = find_files(self.root, "**/*_color.png", self.dataset, LAYOUT)
        if noobject_only:
            paths = [p for p in paths if any(part.endswith(NOOBJECT_SUFFIX) for part in p.absolute().parts[:-1])]
            if not paths:
                raise ValueError(
                    f"root {str(self.root)!r} holds no frames in a '*{NOOBJECT_SUFFIX}' folder (noobject_only=True): "
                    f"the release has female{NOOBJECT_SUFFIX}/ and male{NOOBJECT_SUFFIX}/ beside the *_object/ sequences"
                )
        self.image_paths = fixed_split(
            paths, split, test_size=test_size, val_size=val_size, seed=split_seed, what=f"SynthHands {str(self.root)!r}"
        )
        self.joint_paths = [_joint_path(p) for p in self.image_paths]
        missing = [str(j) for j in self.joint_paths if not j.is_file()]
        if missing:
            raise ValueError(
                f"{len(missing)} SynthHands frame(s) under root {str(self.root)!r} have no joint file: "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
            )

    def load(self, index: int) -> dict[str, Any]:
        image = self.read_image(self.image_paths[index])
        joints_mm = remap_joints(read_numbers(self.joint_paths[index], (21, 3)), "synthhands")
        camera_mm = joints_mm + DEPTH_TO_COLOR_MM
        return {
            "image": image,
            "mask": chroma_key_mask(image, GREEN_SCREEN_RGB, self.mask_tolerance),
            "keypoints_2d": project(camera_mm, COLOR_K).astype(np.float32),
            "keypoints_3d": (camera_mm / 1000.0).astype(np.float32),
            "K": COLOR_K.astype(np.float32),
        }


def _joint_path(image: Path) -> Path:
    return image.with_name(image.name[: -len("_color.png")] + "_joint_pos.txt")
