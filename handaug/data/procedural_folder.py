"""Write procedural hands to disk in a real dataset's layout, to try the file-based tools on.

``handaug-translate``, the ``folder`` reader and the benchmarks read datasets from disk; this
writes one without any download::

    ROOT/images/00000.png        (H, W, 3) RGB hand on the chosen background
    ROOT/masks/00000.png         (H, W) uint8, 255 on the hand
    ROOT/annotations/00000.json  {"keypoints_2d": 21 x 2 px, "keypoints_3d": 21 x 3 m, "K": 3 x 3}
    ROOT/README.md

Read it back with ``create_dataset("folder", root=ROOT, mask_pattern=MASK_PATTERN)`` or translate it with
``handaug-translate CKPT ROOT DST --dataset-kwargs '{"mask_pattern": "../masks/{stem}.png"}'``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2

from handaug.data.procedural import ProceduralHands

#: The ``folder`` reader's mask pattern for this layout (relative to each image).
MASK_PATTERN = "../masks/{stem}.png"


def write_procedural_folder(
    root: str | os.PathLike[str],
    count: int,
    image_size: int = 64,
    style: str = "synthetic",
    seed: int = 0,
    background: str = "noise",
) -> Path:
    """Render ``count`` procedural hands (see :class:`ProceduralHands`) into ``root``; returns ``root``.

    File stems are zero-padded indices (at least 4 digits). Existing files are overwritten.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    root = Path(root)
    hands = ProceduralHands(style, image_size=image_size, length=count, seed=seed, background=background)
    for sub in ("images", "masks", "annotations"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    digits = max(4, len(str(count - 1)))
    for i in range(count):
        sample = hands[i]
        stem = f"{i:0{digits}d}"
        cv2.imwrite(str(root / "images" / f"{stem}.png"), cv2.cvtColor(sample["image"], cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "masks" / f"{stem}.png"), sample["mask"])
        annotation = {key: sample[key].tolist() for key in ("keypoints_2d", "keypoints_3d", "K")}
        (root / "annotations" / f"{stem}.json").write_text(json.dumps(annotation))
    (root / "README.md").write_text(f"{count} procedural hands ({style} style, seed {seed}) written by handaug\n")
    return root
