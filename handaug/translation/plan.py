"""The work of one ``handaug-translate`` run: images to translate, other files to copy, and what is already done."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ImageJob:
    """One image of the dataset: its reader index, where it is read from and where its translation goes."""

    index: int
    source: Path
    target: Path


@dataclass
class TranslationPlan:
    """Everything a run has to do, split into what is pending and what an earlier run finished.

    Images are translated to the same relative path and file name under the target folder;
    every other file under the source folder (annotations, masks, depth maps, calibration,
    READMEs) is copied unchanged. An image counts as done when its target exists: targets are
    only ever created by an atomic rename, so an existing target is complete.
    """

    source_root: Path
    target_root: Path
    images: list[ImageJob] = field(default_factory=list)
    copies: list[tuple[Path, Path]] = field(default_factory=list)

    @property
    def pending_images(self) -> list[ImageJob]:
        return [job for job in self.images if not job.target.exists()]

    @property
    def pending_copies(self) -> list[tuple[Path, Path]]:
        return [(src, dst) for src, dst in self.copies if not _same_file(src, dst)]


def _same_file(src: Path, dst: Path) -> bool:
    """A copy is done when the target has the source's size and modification time (copy2 keeps both)."""
    try:
        a, b = src.stat(), dst.stat()
    except FileNotFoundError:
        return False
    return a.st_size == b.st_size and int(a.st_mtime) == int(b.st_mtime)


def reader_image_paths(reader: Any) -> list[Path]:
    """The image path of every item of ``reader``, aligned with its indices.

    Uses the reader's ``image_paths`` (or ``images``, as :class:`~handaug.data.folder.ImageFolder`
    has) when it offers one, and otherwise reads each item's ``path`` (slow: decodes every item).
    """
    for attribute in ("image_paths", "images"):
        paths = getattr(reader, attribute, None)
        if isinstance(paths, (list, tuple)) and len(paths) == len(reader) and all(isinstance(p, (str, os.PathLike)) for p in paths):
            return [Path(p) for p in paths]
    paths = []
    for i in range(len(reader)):
        path = reader[i].get("path")
        if path is None:
            raise ValueError(f"dataset item {i} has no 'path': handaug-translate needs to know where each image is")
        paths.append(Path(path))
    return paths


def build_plan(reader: Any, source_root: str | os.PathLike[str], target_root: str | os.PathLike[str]) -> TranslationPlan:
    """Plan the translation of every image of ``reader`` (all under ``source_root``) into ``target_root``.

    Raises:
        FileNotFoundError: ``source_root`` is not a folder.
        ValueError: the target is inside the source (a run would feed on its own output), or an
            image of the dataset lies outside ``source_root``.
    """
    source_root, target_root = Path(source_root).resolve(), Path(target_root).resolve()
    if not source_root.is_dir():
        raise FileNotFoundError(f"source folder {str(source_root)!r} does not exist or is not a folder")
    if target_root == source_root or source_root in target_root.parents:
        raise ValueError(f"target folder {str(target_root)!r} must not be the source folder or inside it")
    plan = TranslationPlan(source_root, target_root)
    image_files = set()
    for index, path in enumerate(reader_image_paths(reader)):
        path = path.resolve()
        if source_root not in path.parents:
            raise ValueError(f"image {str(path)!r} of the dataset is not under the source folder {str(source_root)!r}")
        plan.images.append(ImageJob(index, path, target_root / path.relative_to(source_root)))
        image_files.add(path)
    if not plan.images:
        raise ValueError(f"the dataset under {str(source_root)!r} has no images")
    for path in sorted(source_root.rglob("*")):
        if path.is_file() and path.resolve() not in image_files:
            plan.copies.append((path, target_root / path.relative_to(source_root)))
    return plan
