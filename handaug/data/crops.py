"""Crops that show the hand: random hand-centred ones for training, centroid ones for validation and test.

Uniform random crops of a 640×480 frame where the hand covers a few percent of the image mostly
show background, and the networks learn little about hands from them. The H-GAN reference code
(``MaskedRandomCrop``) instead centres each crop on a random pixel of the hand mask eroded away
from its border, after padding the frame by half a crop with the background colour, so a hand at
the frame's edge can still be the centre of a crop. For validation and test it takes the
window around the mask's centroid (:func:`centroid_crop`, its ``CentroidCrop``).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

CropMode = Literal["hand", "uniform"]
CROP_MODES: tuple[str, ...] = ("hand", "uniform")

#: The reference's ``CentroidCrop(256)`` (validation and test): window side and its shift from the
#: mask centroid, (right, down) in px: 20 px right and 100 px up (SynthHands/RealHands frames are
#: egocentric, the forearm comes in from the bottom).
REFERENCE_CROP_SIZE = 256
REFERENCE_CROP_OFFSET = (20, -100)
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


def centroid_crop(
    image: np.ndarray,
    mask: np.ndarray,
    size: int = REFERENCE_CROP_SIZE,
    offset: tuple[int, int] = REFERENCE_CROP_OFFSET,
    *,
    fill: int = 255,
) -> tuple[np.ndarray, np.ndarray]:
    """The reference's ``CentroidCrop``: a ``size`` square around the mask centroid, moved by ``offset``.

    The frame is first padded on every side by ``size // 2 + max(|dx|, |dy|)`` pixels (the image
    with ``fill``, white by default; the mask with 0), so the window always lies inside the
    padded frame. The centroid is OpenCV's image moment of the padded mask (values weigh: a
    0/255 mask gives the plain centroid), truncated to whole pixels. The window's top-left corner
    in the padded frame is ``(cx - size // 2 + dx, cy - size // 2 + dy)``: the reference's
    ``thresh=[20, 100]`` is ``offset=(20, -100)``, 20 px right and 100 px up.

    Args:
        image: ``(H, W, 3)`` uint8 RGB at native resolution.
        mask: ``(H, W)`` uint8, non-zero on the hand.
        size: side of the square window.
        offset: ``(dx, dy)`` shift of the window, pixels (positive: right, down).
        fill: value of the padding around the image (0-255).

    Returns:
        ``(size, size, 3)`` image and ``(size, size)`` mask crops (uint8).

    Raises:
        ValueError: wrong shapes or dtypes, a non-positive ``size``, or an empty mask (no centroid).
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be an (H, W, 3) uint8 array, got {getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}")
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.shape != image.shape[:2]:
        raise ValueError(f"mask must be an (H, W) uint8 array of the image's size {image.shape[:2]}, got {getattr(mask, 'dtype', '')} {getattr(mask, 'shape', '')}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    dx, dy = (int(v) for v in offset)
    border = size // 2 + max(abs(dx), abs(dy))
    padded_image = np.pad(image, ((border, border), (border, border), (0, 0)), constant_values=fill)
    padded_mask = np.pad(mask, border, constant_values=0)
    moments = cv2.moments(padded_mask)
    if moments["m00"] == 0:
        raise ValueError("mask is empty: the centroid crop needs a hand mask with at least one non-zero pixel")
    cx, cy = int(moments["m10"] / moments["m00"]), int(moments["m01"] / moments["m00"])
    left, top = cx - size // 2 + dx, cy - size // 2 + dy
    return padded_image[top : top + size, left : left + size].copy(), padded_mask[top : top + size, left : left + size].copy()
