"""The work of one ``handaug-translate`` run: images to translate, other files to copy, files skipped, and what is done.

What is read from the source folder (symbolic links):

- a regular file is read; a symbolic link to a file inside the source folder is read as that file;
- a symbolic link that resolves outside the source folder, a broken link, a link to a folder
  and anything that is not a regular file (a FIFO, a socket, a device) is never read: it is
  skipped and listed, with the reason, in the manifest.

What is read is what was planned: the plan records each file's device and inode (of the file
itself, or of the file inside the source a link points to), and the run opens each file so that
a link put in its place is refused and another file is noticed
(:func:`~handaug.data.source_files.only_planned_files`); such a file is skipped and listed.

What is written into the target folder: only files whose names the journal (see
:mod:`.state`) records as handaug's. A target name that exists in DST but is not in the journal
(or whose folder in DST is a symbolic link or a file) is someone else's, and the run is refused.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handaug.data.source_files import FileIdentity
from handaug.translation.state import MANIFEST_FILE, STATE_DIR


@dataclass(frozen=True)
class ImageJob:
    """One image of the dataset: its reader index, where it is read from and where its translation goes."""

    index: int
    source: Path
    target: Path


@dataclass(frozen=True)
class Skipped:
    """A file of the source folder that was neither translated nor copied: its path relative to the source, and why."""

    path: str
    reason: str


OUTSIDE_LINK = "symbolic link to outside the source folder: not followed"
EARLIER_RECORD = "handaug-translate's record of an earlier translation: not copied"


@dataclass
class TranslationPlan:
    """Everything a run has to do.

    Images are translated to the same relative path and file name under the target folder;
    every other file under the source folder (annotations, masks, depth maps, calibration,
    READMEs) is copied unchanged. ``skipped_images`` and ``skipped_files`` are the files that
    are neither, with the reason.
    """

    source_root: Path
    target_root: Path
    images: list[ImageJob] = field(default_factory=list)
    copies: list[tuple[Path, Path]] = field(default_factory=list)
    skipped_images: list[Skipped] = field(default_factory=list)
    skipped_files: list[Skipped] = field(default_factory=list)
    #: Every source file the run reads (images, their masks, copies), by its path relative to the
    #: source (POSIX form): what it was when planned.
    identities: dict[str, FileIdentity] = field(default_factory=dict)
    #: The source folder as given and resolved (a file's path relative to either is its key in ``identities``).
    source_roots: tuple[Path, ...] = ()

    def targets(self) -> list[Path]:
        """Every file this plan writes into the target folder."""
        return [job.target for job in self.images] + [dst for _, dst in self.copies]

    def pending_images(self, written: set[str]) -> list[ImageJob]:
        """Images not yet done: a target counts as done when the journal names it and it exists.

        Targets only ever appear by an atomic rename, so an existing, journalled target is complete.
        """
        return [job for job in self.images if not self._done(job.target, written)]

    def pending_copies(self, written: set[str]) -> list[tuple[Path, Path]]:
        """Copies not yet done, or whose source changed since (size or modification time)."""
        return [(src, dst) for src, dst in self.copies if not (self._done(dst, written) and _same_file(src, dst))]

    def _done(self, target: Path, written: set[str]) -> bool:
        return target.relative_to(self.target_root).as_posix() in written and os.path.lexists(target)


def _same_file(src: Path, dst: Path) -> bool:
    """A copy is done when the target has the source's size and modification time (the copy keeps both)."""
    try:
        a, b = src.stat(), dst.stat()
    except OSError:
        return False
    return a.st_size == b.st_size and int(a.st_mtime) == int(b.st_mtime)


def foreign_files(target_root: Path, targets: list[Path], written: set[str]) -> list[str]:
    """The targets that would touch a file handaug did not write, each with why (empty: all clear).

    A target is refused when a file (or link, or folder) of that name exists in ``target_root``
    but is not in the journal's ``written``, or when one of its folders in ``target_root`` is a
    symbolic link or not a folder (writing there would go elsewhere or fail).
    """
    problems: list[str] = []
    folders: dict[Path, str | None] = {}
    for target in targets:
        relative = target.relative_to(target_root)
        problem = None
        for folder in list(reversed(relative.parents))[1:]:
            if folder not in folders:
                path = target_root / folder
                folders[folder] = (
                    "a symbolic link" if path.is_symlink() else
                    "not a folder" if os.path.lexists(path) and not path.is_dir() else None
                )
            if folders[folder]:
                problem = f"{folder.as_posix()} is {folders[folder]}"
                break
        if problem is None and os.path.lexists(target) and relative.as_posix() not in written:
            problem = f"{relative.as_posix()} exists and was not written by handaug"
        if problem:
            problems.append(problem)
    return problems


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


def check_folders(source_root: str | os.PathLike[str], target_root: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The source and target folders, resolved, checked not to overlap.

    Raises:
        FileNotFoundError: ``source_root`` is not a folder.
        ValueError: the target is the source, inside it (a run would feed on its own output) or
            contains it (a run would write over the source), or the target is not a folder.
    """
    source, target = Path(source_root).resolve(), Path(target_root).resolve()
    if not source.is_dir():
        raise FileNotFoundError(f"source folder {str(source)!r} does not exist or is not a folder")
    if target == source or source in target.parents:
        raise ValueError(f"target folder {str(target)!r} must not be the source folder or inside it")
    if target in source.parents:
        raise ValueError(f"target folder {str(target)!r} must not contain the source folder {str(source)!r}")
    if os.path.lexists(target) and not target.is_dir():
        raise ValueError(f"target {str(target)!r} exists and is not a folder")
    return source, target


def _relative_to_source(path: Path, roots: tuple[Path, ...]) -> Path | None:
    absolute = Path(os.path.abspath(path))
    for root in roots:
        if absolute == root or root in absolute.parents:
            return absolute.relative_to(root)
    return None


def _source_check(path: Path, source_root: Path) -> str | FileIdentity:
    """Why the file ``path`` (inside the source folder, maybe a link) must not be read, or the identity of what it is."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return "broken symbolic link" if path.is_symlink() else "cannot be read"
    if source_root not in real.parents:
        return OUTSIDE_LINK
    try:
        info = os.lstat(real)
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    if stat.S_ISDIR(info.st_mode):
        return "symbolic link to a folder: not followed"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    return FileIdentity(info.st_dev, info.st_ino, via_link=path.is_symlink())


def _source_problem(path: Path, source_root: Path) -> str | None:
    """Why the file ``path`` (inside the source folder, maybe a link) must not be read; ``None`` if it may."""
    check = _source_check(path, source_root)
    return check if isinstance(check, str) else None


def _walked_file_check(path: Path, source_root: Path) -> str | FileIdentity:
    """:func:`_source_check` for a file found by walking the source (its folders are real folders inside it)."""
    try:
        info = os.lstat(path)
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    if stat.S_ISLNK(info.st_mode):
        return _source_check(path, source_root)
    return FileIdentity(info.st_dev, info.st_ino) if stat.S_ISREG(info.st_mode) else "not a regular file"


def build_plan(reader: Any, source_root: str | os.PathLike[str], target_root: str | os.PathLike[str]) -> TranslationPlan:
    """Plan the translation of every image of ``reader`` (all under ``source_root``) into ``target_root``.

    Images of the reader that must not be read (see the module) or lie outside ``source_root``,
    the images the reader itself found unreadable (its ``unreadable`` list) and images whose
    mask (the reader's ``masks``, when aligned with its images) links outside the source are
    skipped. Every other file under ``source_root`` is copied, unless it must not be read.

    Raises:
        FileNotFoundError, ValueError: as :func:`check_folders`; ``ValueError`` also when the
            dataset has no image that can be translated.
    """
    given_root = Path(os.path.abspath(source_root))
    source, target = check_folders(source_root, target_root)
    roots = (given_root, source)
    plan = TranslationPlan(source, target, source_roots=roots)
    handled: set[str] = set()
    paths = reader_image_paths(reader)
    masks = getattr(reader, "masks", None)
    masks = masks if isinstance(masks, (list, tuple)) and len(masks) == len(paths) else None
    for index, path in enumerate(paths):
        relative = _relative_to_source(path, roots)
        if relative is None:
            plan.skipped_images.append(Skipped(str(path), "not under the source folder"))
            continue
        handled.add(relative.as_posix())
        check = _source_check(given_root / relative, source)
        problem = check if isinstance(check, str) else None
        if problem is None and masks is not None:
            mask_relative = _relative_to_source(Path(masks[index]), roots)
            mask_check = _source_check(Path(masks[index]), source) if mask_relative is not None else OUTSIDE_LINK
            if mask_check == OUTSIDE_LINK:
                problem = f"its mask {Path(masks[index]).name} is a {OUTSIDE_LINK}"
            elif isinstance(mask_check, FileIdentity):
                plan.identities[mask_relative.as_posix()] = mask_check
        if problem:
            plan.skipped_images.append(Skipped(relative.as_posix(), problem))
        else:
            plan.identities[relative.as_posix()] = check
            plan.images.append(ImageJob(index, given_root / relative, target / relative))
    for path in getattr(reader, "unreadable", None) or []:
        relative = _relative_to_source(Path(path), roots)
        if relative is not None:
            handled.add(relative.as_posix())
            plan.skipped_images.append(Skipped(relative.as_posix(), "the dataset reader cannot read its header"))
    if not plan.images:
        raise ValueError(
            f"the dataset under {str(source)!r} has no images that can be translated"
            + (f" ({len(plan.skipped_images)} skipped, e.g. {plan.skipped_images[0].path}: {plan.skipped_images[0].reason})"
               if plan.skipped_images else "")
        )

    def unlistable(err: OSError) -> None:
        where = _relative_to_source(Path(err.filename), roots) if err.filename else None
        plan.skipped_files.append(Skipped(where.as_posix() if where else str(err.filename), f"folder cannot be read: {err.strerror}"))

    for folder, subfolders, files in os.walk(given_root, onerror=unlistable):
        folder = Path(folder)
        for name in sorted(subfolders):
            if (folder / name).is_symlink():
                problem = _source_problem(folder / name, source)
                relative = (folder / name).relative_to(given_root).as_posix()
                plan.skipped_files.append(Skipped(relative, problem or "symbolic link to a folder: not followed"))
        subfolders.sort()
        for name in sorted(files):
            relative = (folder / name).relative_to(given_root)
            if relative.as_posix() in handled:
                continue
            # A translated dataset translated again: its manifest and state are not this run's.
            ours = relative.parts[0] == STATE_DIR or relative.as_posix() == MANIFEST_FILE
            check = EARLIER_RECORD if ours else _walked_file_check(folder / name, source)
            if isinstance(check, str):
                plan.skipped_files.append(Skipped(relative.as_posix(), check))
            else:
                plan.identities[relative.as_posix()] = check
                plan.copies.append((folder / name, target / relative))
    return plan
