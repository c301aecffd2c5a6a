"""RHD, the Rendered Hand Pose dataset (Zimmermann & Brox, ICCV 2017): 320×320, two hands, 42 joints.

Layout (``RHD_published_v2/``): ``training/color/NNNNN.png``, ``training/mask/NNNNN.png``
(per-part labels: 0 background, 1 person, 2-17 the left hand's parts, 18-33 the right hand's)
and ``training/anno_training.pickle``: a dict ``index → {'xyz': (42, 3) metres camera frame,
'uv_vis': (42, 3) u, v pixels and a visibility flag, 'K': (3, 3)}``. The ``evaluation`` split
uses the same names. Rows 0-20 are the left hand, 21-41 the right, each wrist then fingers
tip→base; :func:`handaug.data.joints.remap_joints` reorders the chosen hand.

The pickle is read by :func:`handaug.data.readers.safe_pickle.safe_load_pickle`, which builds
plain numeric numpy arrays, numpy scalars and builtin containers only, under size limits:
pickles can run arbitrary code or corrupt memory through hand-made dtypes, and annotation files
are often re-shared. Every entry is then checked: a dict with ``xyz`` and ``uv_vis`` ``(42, 3)``
and ``K`` ``(3, 3)`` of finite numbers; a malformed one is an error naming the file, the sample
and the key (like the other readers, which refuse a malformed annotation rather than skip it).
"""

from __future__ import annotations

import os
from typing import Any

import cv2
import numpy as np

from handaug.data.folder import read_image_file
from handaug.data.joints import remap_joints
from handaug.data.readers.base import DatasetReader, find_files, require_root
from handaug.data.readers.safe_pickle import RestrictedUnpickler, safe_load_pickle

__all__ = ["RHD", "RestrictedUnpickler", "safe_load_pickle"]

HANDS: tuple[str, ...] = ("left", "right", "visible")
SPLITS: tuple[str, ...] = ("training", "evaluation")
#: Mask labels of each hand's parts in RHD's ``mask/`` images.
HAND_LABELS: dict[str, tuple[int, int]] = {"left": (2, 17), "right": (18, 33)}
#: The shape of each array of an annotation entry.
ANNOTATION_SHAPES: dict[str, tuple[int, int]] = {"xyz": (42, 3), "uv_vis": (42, 3), "K": (3, 3)}


def _layout(split: str) -> str:
    return f"ROOT/{split}/color/NNNNN.png, ROOT/{split}/anno_{split}.pickle and optionally ROOT/{split}/mask/NNNNN.png"


class RHD(DatasetReader):
    """RHD images with the chosen hand's mask and 21 keypoints.

    Args:
        root: the release folder (holding ``training/`` and ``evaluation/``).
        split: ``"training"`` or ``"evaluation"``.
        hand: ``"left"``, ``"right"`` or ``"visible"`` (per image, the hand with more visible
            keypoints; the left hand on a tie).

    Items: ``image`` ``(320, 320, 3)`` uint8 RGB; ``mask`` ``(320, 320)`` uint8 {0, 255}, the
    chosen hand's parts (when ``mask/`` exists); ``keypoints_2d`` ``(21, 2)`` float32 pixels (the
    file's ``uv``); ``visible`` ``(21,)`` bool; ``keypoints_3d`` ``(21, 3)`` float32 metres; ``K``
    ``(3, 3)`` float32; ``hand`` (``"left"`` / ``"right"``); ``path``.

    Raises:
        ValueError / FileNotFoundError: ``root`` missing, no images, a missing annotation file
            or an image without its annotation, an entry without ``xyz``, ``uv_vis`` or ``K``,
            of another shape, not numbers, or not finite (the message names the file, the
            sample and the key); :class:`pickle.UnpicklingError` for an unsafe or malformed pickle.
    """

    dataset = "RHD"

    def __init__(self, root: str | os.PathLike[str], split: str = "training", hand: str = "visible") -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if hand not in HANDS:
            raise ValueError(f"hand must be one of {HANDS}, got {hand!r}")
        self.split, self.hand = split, hand
        layout = _layout(split)
        self.root = require_root(root, self.dataset, layout)
        self.image_paths = find_files(self.root, f"{split}/color/*.png", self.dataset, layout)
        annotation_path = self.root / split / f"anno_{split}.pickle"
        if not annotation_path.is_file():
            raise FileNotFoundError(f"{str(annotation_path)!r} does not exist; the RHD reader expects {layout}")
        annotations = safe_load_pickle(annotation_path)
        if not isinstance(annotations, dict):
            raise ValueError(f"{str(annotation_path)!r} must hold a dict index → annotation, got {type(annotations).__name__}")
        self.annotations: list[dict[str, np.ndarray]] = []
        missing: list[str] = []
        for path in self.image_paths:
            key = int(path.stem)
            entry = annotations.get(key)
            if entry is None:
                missing.append(path.name)
                continue
            self.annotations.append(_check_entry(entry, key, repr(str(annotation_path))))
        if missing:
            raise ValueError(
                f"{len(missing)} image(s) under root {str(self.root)!r} have no entry in {annotation_path.name}: "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
            )
        mask_dir = self.root / split / "mask"
        self.mask_paths = [mask_dir / p.name for p in self.image_paths] if mask_dir.is_dir() else None

    def chosen_hand(self, index: int) -> str:
        """``"left"`` or ``"right"``: the hand item ``index`` describes."""
        if self.hand != "visible":
            return self.hand
        visible = self.annotations[index]["uv_vis"][:, 2] > 0
        return "left" if visible[:21].sum() >= visible[21:].sum() else "right"

    def load(self, index: int) -> dict[str, Any]:
        annotation = self.annotations[index]
        hand = self.chosen_hand(index)
        uv_vis = remap_joints(annotation["uv_vis"], "rhd", hand=hand)
        sample: dict[str, Any] = {
            "image": self.read_image(self.image_paths[index]),
            "keypoints_2d": uv_vis[:, :2].astype(np.float32),
            "visible": uv_vis[:, 2] > 0,
            "keypoints_3d": remap_joints(annotation["xyz"], "rhd", hand=hand).astype(np.float32),
            "K": annotation["K"].astype(np.float32),
            "hand": hand,
        }
        if self.mask_paths is not None:
            labels = read_image_file(self.mask_paths[index], cv2.IMREAD_UNCHANGED, self.max_image_pixels)
            if labels is None:
                raise OSError(f"mask {str(self.mask_paths[index])!r} cannot be decoded")
            if labels.ndim == 3:
                labels = labels[..., 0]
            low, high = HAND_LABELS[hand]
            sample["mask"] = np.where((labels >= low) & (labels <= high), 255, 0).astype(np.uint8)
        return sample


def _check_entry(entry: Any, sample: int, file: str) -> dict[str, np.ndarray]:
    """The ``xyz``, ``uv_vis`` and ``K`` arrays of one annotation entry, checked (see the module docstring)."""
    if not isinstance(entry, dict):
        raise ValueError(
            f"{file}: sample {sample} must be a dict with keys {list(ANNOTATION_SHAPES)}, got {type(entry).__name__}"
        )
    arrays: dict[str, np.ndarray] = {}
    for key, shape in ANNOTATION_SHAPES.items():
        where = f"{file}: sample {sample}, key {key!r}"
        if key not in entry:
            raise ValueError(f"{where} is missing (an entry holds {list(ANNOTATION_SHAPES)})")
        try:
            array = np.asarray(entry[key])
        except (TypeError, ValueError) as error:  # ragged nested lists
            raise ValueError(f"{where} must be a {shape} array of numbers: {error}") from None
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{where} must be a {shape} array of numbers, got dtype {array.dtype}")
        if array.shape != shape:
            raise ValueError(f"{where} must have shape {shape}, got {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError(f"{where} contains NaN or infinite values")
        arrays[key] = array
    return arrays
