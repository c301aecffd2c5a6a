"""Hand masks from green-screen frames: H-GAN's §IV-B refinement and the hand-area filter.

The paper cleans RealHands' masks before using them: speckle removed with a median filter,
only the largest contour kept (the hand), gaps closed with a morphological closing, and the
border eroded to drop residual background pixels. :func:`refine_green_screen_mask` does this
from the colour frame itself:

1. **HSV green key**: each pixel's *greenness* is its saturation where its hue lies within
   ``hue_tolerance`` of ``hue_center`` (OpenCV hue units, 0-179; pure green is 60), its
   saturation is at least ``min_saturation`` and its value at least ``min_value``, else 0. The hand score is ``255 - greenness`` (uint8):
   high on the hand, low on saturated green.
2. **Median filter** of the score (``median_kernel``, odd) removes speckle.
3. **Otsu threshold** of the filtered score separates hand from screen without a fixed level;
   the level is never below ``min_threshold`` (so a frame of green screen alone, whose score
   is one noisy mode that Otsu would split in two, yields an empty mask).
4. **Contour reject** (``max_contours``, 60 by default as in the reference script): a frame
   whose thresholded key has more outlines than this (every outline counts, holes included:
   OpenCV's ``RETR_TREE``) is full of artefacts and is rejected: no mask (see
   :func:`refine_green_screen`, which says so, and :class:`~handaug.data.readers.RealHands`,
   which drops such frames). ``None`` turns the check off.
5. **Largest contour**: only the region inside the largest external contour is kept
   (holes inside it, e.g. between a touching thumb and index, stay holes).
6. **Closing** with an elliptical ``closing_kernel`` fills small gaps.
7. **Erosion** with an elliptical ``erosion_kernel`` (``erosion_iterations`` times) removes
   the green-tinted rim.

:class:`HandAreaFilter` then drops frames whose hand covers less than ``min_fraction`` or more
than ``max_fraction`` of the image (5 % and 50 % by default) and counts what it dropped.

The defaults follow H-GAN's public preprocessing script for RealHands (HSV key hue 30-90,
saturation >= 30, value >= 40; 3 px median; reject above 60 contours; 3 px closing; 3 px
elliptical erosion; 5-50 % area). Two differences from that script remain, on purpose:

- its area check counts the non-zero values of a **3-channel** mask against the pixel count of
  one channel, so its bounds "5-50 %" keep frames whose hand covers 1.67-16.7 % of the image
  (``HandAreaFilter(0.05 / 3, 0.5 / 3)`` reproduces that); handaug's 5-50 % is the true fraction;
- it measures the area on the raw HSV key, before median, Otsu and contour cleaning; handaug
  measures the refined mask (what training actually uses).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from handaug.arguments import check_int, check_odd

__all__ = ["MAX_CONTOURS", "HandAreaFilter", "RefinedMask", "hand_area_fraction", "refine_green_screen", "refine_green_screen_mask"]

log = logging.getLogger(__name__)

#: The reference script's artefact threshold: a key with more outlines than this is rejected.
MAX_CONTOURS = 60


def _check_image(image_rgb: Any, argument: str = "image_rgb") -> np.ndarray:
    if not isinstance(image_rgb, np.ndarray):
        raise ValueError(f"{argument} must be a numpy array (H, W, 3) uint8 RGB, got {type(image_rgb).__name__}")
    if image_rgb.dtype != np.uint8:
        raise ValueError(f"{argument} must be uint8 (values 0-255), got dtype {image_rgb.dtype}")
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or min(image_rgb.shape[:2]) < 1:
        raise ValueError(f"{argument} must have shape (H, W, 3) RGB, got {image_rgb.shape}")
    return image_rgb


@dataclass(frozen=True)
class RefinedMask:
    """What :func:`refine_green_screen` found in one frame.

    Attributes:
        mask: ``(H, W)`` uint8, 255 on the hand and 0 elsewhere; all zeros when no hand was
            found or the frame was rejected.
        contours: outlines in the thresholded key (every outline, holes included; 0 when the
            key is empty).
        rejected: the frame has more than ``max_contours`` outlines (the reference script drops it).
    """

    mask: np.ndarray
    contours: int
    rejected: bool


def refine_green_screen(
    image_rgb: np.ndarray,
    *,
    hue_center: int = 60,
    hue_tolerance: int = 30,
    min_saturation: int = 30,
    min_value: int = 40,
    median_kernel: int = 3,
    min_threshold: int = 127,
    max_contours: int | None = MAX_CONTOURS,
    closing_kernel: int = 3,
    erosion_kernel: int = 3,
    erosion_iterations: int = 1,
) -> RefinedMask:
    """The hand mask of a green-screen frame by the paper's §IV-B pipeline (see the module doc), with its contour count.

    Args:
        image_rgb: ``(H, W, 3)`` uint8 RGB frame of a hand in front of a green screen.
        hue_center: hue of the screen in OpenCV units (0-179; green is 60).
        hue_tolerance: hues within ``hue_center ± hue_tolerance`` count as screen (0-89).
        min_saturation: greyer pixels (HSV saturation below this, 0-255) are never screen.
        min_value: darker pixels (HSV value below this, 0-255) are never screen: shadows
            on the hand stay hand.
        median_kernel: side of the median filter, odd ``>= 1`` (1: none).
        min_threshold: lowest accepted Otsu level (0-254): a pixel is hand only if its score
            ``255 - greenness`` exceeds both Otsu's level and this.
        max_contours: reject the frame (``rejected`` true, empty mask) when the thresholded key
            has more outlines than this (H-GAN's script: 60); ``None``: never.
        closing_kernel: diameter of the elliptical closing element, odd ``>= 1`` (1: none).
        erosion_kernel: diameter of the elliptical erosion element, odd ``>= 1`` (1: none).
        erosion_iterations: how many times to erode, ``>= 0``.

    Raises:
        ValueError: ``image_rgb`` is not ``(H, W, 3)`` uint8, or a parameter is out of range
            (the message names it).
    """
    image = _check_image(image_rgb)
    hue_center = check_int(hue_center, "hue_center", 0, 179)
    hue_tolerance = check_int(hue_tolerance, "hue_tolerance", 0, 89)
    min_saturation = check_int(min_saturation, "min_saturation", 0, 255)
    min_value = check_int(min_value, "min_value", 0, 255)
    median_kernel = check_odd(median_kernel, "median_kernel", 1)
    min_threshold = check_int(min_threshold, "min_threshold", 0, 254)
    if max_contours is not None:
        max_contours = check_int(max_contours, "max_contours", 1, 2**31 - 1)
    closing_kernel = check_odd(closing_kernel, "closing_kernel", 1)
    erosion_kernel = check_odd(erosion_kernel, "erosion_kernel", 1)
    erosion_iterations = check_int(erosion_iterations, "erosion_iterations", 0, 1000)
    empty = np.zeros(image.shape[:2], np.uint8)

    # 1. HSV key: greenness = saturation where the hue is the screen's, hand score = its complement.
    hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)
    hue = hsv[..., 0].astype(np.int16)
    hue_distance = np.abs(hue - hue_center)
    hue_distance = np.minimum(hue_distance, 180 - hue_distance)  # hue is circular
    is_screen_hue = (hue_distance <= hue_tolerance) & (hsv[..., 1] >= min_saturation) & (hsv[..., 2] >= min_value)
    score = np.where(is_screen_hue, 255 - hsv[..., 1], 255).astype(np.uint8)

    # 2. Median filter against speckle; 3. Otsu's threshold on the filtered score.
    if median_kernel > 1:
        score = cv2.medianBlur(score, median_kernel)
    if int(score.min()) == int(score.max()):  # flat score: Otsu has nothing to split
        return RefinedMask(empty, 0, False)
    level, _ = cv2.threshold(score, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    _, binary = cv2.threshold(score, max(level, min_threshold), 255, cv2.THRESH_BINARY)
    if not binary.any():
        return RefinedMask(binary, 0, False)

    # 4. Too many outlines (holes included, as the reference counts them) means artefacts.
    outlines, _ = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if max_contours is not None and len(outlines) > max_contours:
        return RefinedMask(empty, len(outlines), True)

    # 5. Keep what lies inside the largest external contour (its holes stay holes).
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return RefinedMask(empty, len(outlines), False)
    largest = max(contours, key=cv2.contourArea)
    region = np.zeros_like(binary)
    cv2.drawContours(region, [largest], -1, 255, thickness=cv2.FILLED)
    mask = cv2.bitwise_and(binary, region)

    # 6. Closing fills small gaps; 7. erosion trims the green rim.
    if closing_kernel > 1:
        element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (closing_kernel, closing_kernel))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, element)
    if erosion_kernel > 1 and erosion_iterations > 0:
        element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (erosion_kernel, erosion_kernel))
        mask = cv2.erode(mask, element, iterations=erosion_iterations)
    return RefinedMask(np.where(mask > 0, 255, 0).astype(np.uint8), len(outlines), False)


def refine_green_screen_mask(image_rgb: np.ndarray, **params: Any) -> np.ndarray:
    """The hand mask of a green-screen frame: :func:`refine_green_screen`'s ``mask`` (same parameters).

    Returns:
        ``(H, W)`` uint8 mask, 255 on the hand and 0 elsewhere; all zeros when no hand is found
        or the frame has more than ``max_contours`` outlines (60 by default).

    Raises:
        ValueError: ``image_rgb`` is not ``(H, W, 3)`` uint8, or a parameter is out of range.
        TypeError: an unknown parameter.
    """
    return refine_green_screen(image_rgb, **params).mask


def hand_area_fraction(mask: np.ndarray) -> float:
    """Fraction of the pixels of ``mask`` (``(H, W)``, non-zero on the hand) that are hand, in [0, 1].

    Raises:
        ValueError: ``mask`` is not a non-empty 2-D array.
    """
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.size == 0:
        shape = getattr(mask, "shape", type(mask).__name__)
        raise ValueError(f"mask must be a non-empty (H, W) array, got {shape}")
    return float(np.count_nonzero(mask)) / mask.size


@dataclass
class HandAreaFilter:
    """Keeps frames whose hand area fraction lies in ``[min_fraction, max_fraction]``, counts the rest.

    Args:
        min_fraction: smallest accepted hand area, as a fraction of the image (default 5 %).
        max_fraction: largest accepted hand area (default 50 %).

    Call :meth:`accept` once per frame; ``kept``, ``dropped`` and ``dropped_items`` (what was
    passed as ``name``, with its fraction) record the outcome; :meth:`report` summarises it.

    Raises:
        ValueError: bounds outside ``[0, 1]`` or ``min_fraction > max_fraction``.
    """

    min_fraction: float = 0.05
    max_fraction: float = 0.5
    kept: int = 0
    dropped: int = 0
    dropped_items: list[tuple[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("min_fraction", "max_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        if self.min_fraction > self.max_fraction:
            raise ValueError(
                f"min_fraction ({self.min_fraction}) must not exceed max_fraction ({self.max_fraction})"
            )

    def accept(self, mask: np.ndarray, name: str = "") -> bool:
        """``True`` (and counted as kept) if the hand area of ``mask`` is within the bounds, else ``False``."""
        fraction = hand_area_fraction(mask)
        if self.min_fraction <= fraction <= self.max_fraction:
            self.kept += 1
            return True
        self.dropped += 1
        self.dropped_items.append((name, fraction))
        return False

    def report(self) -> str:
        """One line: how many frames were kept and dropped, with the bounds."""
        total = self.kept + self.dropped
        return (
            f"dropped {self.dropped} of {total} frames whose hand area is outside "
            f"[{_percent(self.min_fraction)}, {_percent(self.max_fraction)}] of the image; kept {self.kept}"
        )


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"
