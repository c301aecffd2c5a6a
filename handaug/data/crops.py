"""Hand-centred training crops: every crop shows hand, however small the hand is in the frame.

Uniform random crops of a 640×480 frame where the hand covers a few percent of the image mostly
show background, and the networks learn little about hands from them. The H-GAN reference code
(``MaskedRandomCrop``) instead centres each crop on a random pixel of the hand mask eroded away
from its border, after padding the frame by half a crop with the background colour, so a hand at
the frame's edge can still be the centre of a crop.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

CropMode = Literal["hand", "uniform"]
CROP_MODES: tuple[str, ...] = ("hand", "uniform")

#: The reference's erosion: a 5×5 square applied 3 times (centres stay about 6 px inside the hand).
EROSION_KERNEL = np.ones((5, 5), np.uint8)
EROSION_ITERATIONS = 3


def crop_centre_candidates(mask: np.ndarray) -> np.ndarray:
    """``(M, 2)`` ``(row, col)`` of the pixels a hand-centred crop may be centred on.

    The mask's hand pixels after the reference's erosion; a hand too thin to survive it gives its
    un-eroded pixels, and an empty mask gives none (``M = 0``).
    """
    hand = (mask > 0).astype(np.uint8)
    eroded = cv2.erode(hand, EROSION_KERNEL, iterations=EROSION_ITERATIONS)
    candidates = np.argwhere(eroded > 0)
    return candidates if len(candidates) else np.argwhere(hand > 0)


def hand_centred_crop(
    image: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator, fill: tuple[int, int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """A ``size``×``size`` crop of ``image`` and ``mask`` centred on a random hand pixel.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` uint8, non-zero on the hand.
        size: side of the square crop, in pixels.
        rng: draws the centre.
        fill: RGB colour the frame is padded with where the crop leaves it (the training
            background); ``None`` repeats the frame's edge pixels.

    Returns:
        the cropped image ``(size, size, 3)`` and mask ``(size, size)``. With an empty mask the
        crop is uniform at random (inside the frame when it is large enough).
    """
    candidates = crop_centre_candidates(mask)
    half = size // 2
    if len(candidates) == 0:
        h, w = mask.shape
        row, col = int(rng.integers(0, max(h - size, 0) + 1)) + half, int(rng.integers(0, max(w - size, 0) + 1)) + half
    else:
        row, col = (int(v) for v in candidates[int(rng.integers(len(candidates)))])
    # In the frame padded by `half` on every side, the crop starts at (row, col).
    border = cv2.BORDER_REPLICATE if fill is None else cv2.BORDER_CONSTANT
    padded_image = cv2.copyMakeBorder(image, half, half + size, half, half + size, border, value=fill or 0)
    padded_mask = cv2.copyMakeBorder(mask, half, half + size, half, half + size, cv2.BORDER_CONSTANT, value=0)
    return (
        np.ascontiguousarray(padded_image[row : row + size, col : col + size]),
        np.ascontiguousarray(padded_mask[row : row + size, col : col + size]),
    )
