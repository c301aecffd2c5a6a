"""A folder of images, optionally with hand masks found by a file-name pattern (registered as ``"folder"``)."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray | None:
    """Decode an image file to ``(H, W, 3)`` uint8 RGB; ``None`` if it cannot be decoded.

    Grey images are expanded to three channels, an alpha channel is dropped, 16-bit images are
    scaled to 8 bits.
    """
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        return None
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: str | os.PathLike[str]) -> np.ndarray | None:
    """Decode a mask file to ``(H, W)`` uint8 with 255 on the hand and 0 elsewhere.

    Masks stored as 0/1 count every 1 as hand; masks stored as 0..255 (possibly with soft
    edges) are thresholded at 128. Colour masks are read as grey. ``None`` if it cannot be decoded.
    """
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        return None
    threshold = 127 if (mask.max() > 1) else 0
    return np.where(mask > threshold, 255, 0).astype(np.uint8)


def _image_header(path: Path) -> tuple[int, int] | None:
    """(height, width) from the file header without decoding the pixels; ``None`` if unreadable."""
    try:
        with Image.open(path) as im:
            width, height = im.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    return height, width


class ImageFolder:
    """Every image under ``root`` (recursively, sorted by path), each with its mask if asked for.

    Args:
        root: the folder.
        mask_pattern: where each image's mask is, relative to the image's own folder, as a
            format string with ``{stem}`` (file name without extension), ``{name}`` (with it)
            and ``{ext}`` (e.g. ``".png"``). Examples: ``"{stem}_mask.png"`` (beside the image),
            ``"../masks/{stem}.png"`` (a sibling folder). Files that are some image's mask are not
            used as images. ``None``: no masks.
        max_unreadable_fraction: images whose header cannot be read are skipped and counted;
            more than this fraction of them is an error.
        recursive: look in sub-folders too.

    Items are dicts: ``image`` ``(H, W, 3)`` uint8 RGB, ``mask`` ``(H, W)`` uint8 in {0, 255}
    (only with ``mask_pattern``), ``path`` (str).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: no images, an image without its mask, a mask whose size differs from its
            image, or too many unreadable images; the message names the files.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        mask_pattern: str | None = None,
        max_unreadable_fraction: float = 0.05,
        recursive: bool = True,
    ) -> None:
        if root is None:
            raise ValueError("root must be a folder of images, got None")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {str(self.root)!r} does not exist or is not a folder")
        if not 0.0 <= max_unreadable_fraction <= 1.0:
            raise ValueError(f"max_unreadable_fraction must be in [0, 1], got {max_unreadable_fraction!r}")
        self.mask_pattern = mask_pattern
        files = sorted(
            p for p in (self.root.rglob("*") if recursive else self.root.iterdir())
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        mask_of = {p: self._mask_path(p) for p in files} if mask_pattern else {}
        mask_files = {m.resolve() for m in mask_of.values()}
        candidates = [p for p in files if p.resolve() not in mask_files]
        if not candidates:
            raise ValueError(
                f"image folder {str(self.root)!r} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)}"
                f"{' recursively' if recursive else ''})"
            )

        self.unreadable: list[Path] = []
        missing_masks: list[str] = []
        mismatched: list[str] = []
        self.images: list[Path] = []
        self.masks: list[Path] = []
        for path in candidates:
            size = _image_header(path)
            if size is None:
                self.unreadable.append(path)
                continue
            if mask_pattern:
                mask = mask_of[path]
                if not mask.is_file():
                    missing_masks.append(f"{path} (expected {mask})")
                    continue
                mask_size = _image_header(mask)
                if mask_size != size:
                    mismatched.append(f"{mask} is {_hw(mask_size)} but {path.name} is {_hw(size)}")
                    continue
                self.masks.append(mask)
            self.images.append(path)

        if missing_masks:
            raise ValueError(
                f"{len(missing_masks)} image(s) in {str(self.root)!r} have no mask matching mask_pattern="
                f"{mask_pattern!r}: {'; '.join(missing_masks[:5])}{' ...' if len(missing_masks) > 5 else ''}"
            )
        if mismatched:
            raise ValueError(
                f"{len(mismatched)} mask(s) in {str(self.root)!r} do not match their image's size: "
                f"{'; '.join(mismatched[:5])}{' ...' if len(mismatched) > 5 else ''}"
            )
        if self.unreadable:
            fraction = len(self.unreadable) / len(candidates)
            listed = ", ".join(str(p) for p in self.unreadable[:5]) + (" ..." if len(self.unreadable) > 5 else "")
            if fraction > max_unreadable_fraction or not self.images:
                raise ValueError(
                    f"{len(self.unreadable)} of {len(candidates)} images in {str(self.root)!r} are unreadable "
                    f"({fraction:.1%} > max_unreadable_fraction={max_unreadable_fraction}): {listed}"
                )
            warnings.warn(
                f"skipped {len(self.unreadable)} of {len(candidates)} unreadable images in {str(self.root)!r}: {listed}",
                RuntimeWarning,
                stacklevel=2,
            )

    def _mask_path(self, image: Path) -> Path:
        assert self.mask_pattern is not None
        relative = self.mask_pattern.format(stem=image.stem, name=image.name, ext=image.suffix)
        return image.parent / relative

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.images[index]
        image = read_rgb(path)
        if image is None:
            raise OSError(f"image {str(path)!r} has a readable header but its pixels cannot be decoded")
        sample: dict[str, Any] = {"image": image, "path": str(path)}
        if self.masks:
            mask = read_mask(self.masks[index])
            if mask is None:
                raise OSError(f"mask {str(self.masks[index])!r} cannot be decoded")
            sample["mask"] = mask
        return sample

    def __repr__(self) -> str:
        masks = f", mask_pattern={self.mask_pattern!r}" if self.mask_pattern else ""
        return f"ImageFolder({str(self.root)!r}, {len(self)} images{masks})"


def _hw(size: tuple[int, int] | None) -> str:
    return "unreadable" if size is None else f"{size[0]}×{size[1]}"
