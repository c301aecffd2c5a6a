"""``translate_dataset``: every image of a dataset through SynthToReal, on one device or many (Lightning DDP).

The launching process (global rank 0) prepares the target before any other rank starts: it
takes the target's lock, checks that the target holds nothing of anyone else's under the names
it will write and no outputs of other settings, deletes the temporary files a killed run left
(only those its journal names), records the run's settings, and works out what is pending.
Each rank then gets every ``world_size``-th pending image (no padding, so no image is done
twice) and every ``world_size``-th pending file copy. Reading runs in DataLoader workers,
translation on the rank's device, and encoding/writing in a background thread pool (one thread
per core by default: OpenCV encodes without the GIL). JPEGs of the ``folder`` reader are decoded
by torchvision from bytes the workers read safely: on a GPU in batches on the device, on the CPU
in the workers. On the CPU the translation runs a few frames at a time, so that its element-wise
steps stay in the cache. Targets
appear only by atomic rename, so a killed run leaves no partial file and the next run skips
what is done. A file that cannot be read, decoded or translated is skipped and listed, never a
reason to stop the run.
"""

from __future__ import annotations

import inspect
import json
import os
import secrets
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision.io import ImageReadMode, decode_jpeg

from handaug._version import __version__
from handaug.arguments import check_int
from handaug.atomic_files import file_sha256
from handaug.checkpoint import read_checkpoint
from handaug.data.folder import MAX_IMAGE_FILE_BYTES, MAX_IMAGE_PIXELS, ImageFolder, checked_image_size, read_mask
from handaug.data.source_files import FileIdentity, only_planned_files, read_source_bytes
from handaug.hub import is_hub_name
from handaug.registry import create_dataset, get_registry
from handaug.synth_to_real import SynthToReal
from handaug.translation.plan import ImageJob, Skipped, TranslationPlan, build_plan, check_folders, foreign_files
from handaug.translation.state import (
    MANIFEST_FILE,
    MAX_RECORD_BYTES,
    RUN_RECORD,
    STATE_DIR,
    Journal,
    JournalContents,
    TargetFolderError,
    TargetLock,
    read_journals,
    read_run_record,
    remove_journalled_temps,
    remove_written_files,
    state_dir,
    write_json_journalled,
    write_run_record,
)
from handaug.translation.target import TargetFolder
from handaug.translation.writer import (
    PNG_COMPRESSION,
    BackgroundWriter,
    SourceUnreadable,
    copy_atomically,
    default_writer_threads,
    encoding_parameters,
    write_image_atomically,
)

#: Where the per-rank records and the run's state live, inside the target folder.
SHARD_DIR = STATE_DIR
#: The run-record entries that decide the pixels of the outputs: a run whose values differ is refused.
COMPARED_SETTINGS: tuple[str, ...] = ("source", "dataset", "dataset_kwargs", "checkpoint_sha256", "mask_mode", "hand_crop", "precision")
#: On the CPU, frames go through SynthToReal this many pixels at a time (2 frames of 256 px; as
#: SynthToReal runs its generator on the CPU, so one generator call each): on a whole batch its
#: element-wise steps leave the cache (identity generator, 256 px, one core: 2.7 ms per frame at 32
#: frames a call, 0.34 ms at 4).
CPU_CHUNK_PIXELS = SynthToReal.CPU_CHUNK_PIXELS
#: File name endings of the images that torchvision decodes (the ``folder`` reader only).
JPEG_SUFFIXES = (".jpg", ".jpeg")
#: How JPEGs of the ``folder`` reader are decoded: by the reader (OpenCV), by torchvision in the
#: DataLoader workers, or by torchvision in batches on the device (nvJPEG on a GPU).
JPEG_DECODERS = ("reader", "worker", "device")


@dataclass
class TranslationReport:
    """What a run did, as written to ``<target>/handaug-translate.json``.

    ``images`` = ``images_translated + images_already_done + images_skipped`` and ``files`` =
    ``files_copied + files_already_copied + files_skipped``; ``skipped`` lists every skipped
    file as ``{"path": relative to the source, "reason": ...}``.
    """

    source: str
    target: str
    dataset: str
    dataset_kwargs: dict[str, Any]
    checkpoint: str
    checkpoint_sha256: str | None
    handaug_version: str
    settings: dict[str, Any]
    images: int
    images_translated: int
    images_already_done: int
    images_skipped: int
    files: int
    files_copied: int
    files_already_copied: int
    files_skipped: int
    world_size: int
    wall_time_s: float
    skipped: list[dict[str, str]] = field(default_factory=list)


@dataclass
class _Work:
    """What rank 0 decided and every rank shares: the pending images and copies, and the run's name."""

    run_id: str
    target_root: Path
    target_identity: tuple[int, int]
    images: list[ImageJob]
    copies: list[tuple[Path, Path]]
    #: The source folder (as given, resolved) and what each file to read was when planned.
    source_roots: tuple[Path, ...] = ()
    identities: dict[str, FileIdentity] = field(default_factory=dict)


class _PendingImages(Dataset):
    """The images of one rank's shard: ``{"position", "image" (3, H, W) uint8, "mask" (H, W) bool or None}``.

    An image that is too large (from its header, before decoding), that the reader cannot
    read, or that is no longer the file planned (a link put in its place, see
    :func:`~handaug.data.source_files.only_planned_files`) is returned as
    ``{"position", "error": reason}`` instead.

    ``jpeg_decoder`` (see :data:`JPEG_DECODERS`): with the ``folder`` reader (without keypoints),
    a JPEG's bytes are read here under the same checks (planned file, header size, byte limit)
    and decoded by torchvision, here (``"worker"``) or on the device (``"device"``: the item
    then holds ``"jpeg"``, the file's bytes as a 1-D uint8 array, and ``"size"`` ``(H, W)`` from
    its header, instead of ``"image"``).
    """

    def __init__(self, reader: Any, jobs: list[ImageJob], max_image_pixels: int,
                 source_roots: tuple[Path, ...] = (), identities: dict[str, FileIdentity] | None = None,
                 jpeg_decoder: str = "reader") -> None:
        if jpeg_decoder not in JPEG_DECODERS:
            raise ValueError(f"jpeg_decoder must be one of {JPEG_DECODERS}, got {jpeg_decoder!r}")
        self.reader = reader
        self.jobs = jobs
        self.max_image_pixels = max_image_pixels
        self.source_roots = tuple(str(root) for root in source_roots)
        self.identities = identities or {}
        # Only the folder reader is read here: its image and mask files are known, and it yields nothing else needed.
        self.jpeg_decoder = jpeg_decoder if isinstance(reader, ImageFolder) and reader.keypoints is None else "reader"
        # The folder reader checks each header against its max_image_pixels (this run's limit) before decoding:
        # no need to open and parse the header a second time first. Other readers are checked here.
        self.reader_checks_size = isinstance(reader, ImageFolder) and reader.max_image_pixels == max_image_pixels

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, position: int) -> dict[str, Any]:
        job = self.jobs[position]
        try:
            with only_planned_files(self.source_roots, self.identities):
                jpeg = self.jpeg_decoder != "reader" and job.source.suffix.lower() in JPEG_SUFFIXES
                if jpeg or not self.reader_checks_size:
                    size = checked_image_size(job.source, self.max_image_pixels)
                    if jpeg and size is not None:
                        return self._jpeg_item(position, job, size)
                sample = self.reader[job.index]
            image = np.asarray(sample["image"])
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"the dataset reader returned an image of shape {image.shape} {image.dtype}, expected (H, W, 3) uint8")
            mask = sample.get("mask")
            if mask is not None and np.shape(mask) != image.shape[:2]:
                raise ValueError(f"its mask is {np.shape(mask)}, the image {image.shape[:2]}")
        except (OSError, ValueError) as err:
            return {"position": position, "error": self._reason(err, job)}
        # Planes by OpenCV in one pass: a strided (H, W, 3) → (3, H, W) copy costs 4 times as long.
        image = torch.from_numpy(np.stack(cv2.split(np.ascontiguousarray(image))))
        return {"position": position, "image": image, "mask": None if mask is None else torch.from_numpy(np.asarray(mask) > 0)}


    def _jpeg_item(self, position: int, job: ImageJob, size: tuple[int, int]) -> dict[str, Any]:
        """The item of a JPEG of the folder reader, read (under the caller's plan) as the reader reads it."""
        data = np.frombuffer(read_source_bytes(job.source, MAX_IMAGE_FILE_BYTES), dtype=np.uint8)
        mask = None
        if self.reader.masks:
            mask_path = self.reader.masks[job.index]
            mask = read_mask(mask_path, self.max_image_pixels)
            if mask is None:
                raise OSError(f"mask {str(mask_path)!r} cannot be decoded")
            if mask.shape != size:
                raise ValueError(f"its mask is {mask.shape}, the image {size}")
            mask = torch.from_numpy(mask > 0)
        if self.jpeg_decoder == "device":
            return {"position": position, "jpeg": data, "size": size, "mask": mask}
        image = decode_jpeg_bytes(data, torch.device("cpu"))
        if image is None or tuple(image.shape[1:]) != size:
            raise OSError(f"image {str(job.source)!r} has a readable header but its pixels cannot be decoded")
        return {"position": position, "image": image, "mask": mask}

    def _reason(self, err: Exception, job: ImageJob) -> str:
        """Why the image was skipped; an error of another file (its mask) names that file."""
        if not isinstance(err, OSError) or not err.strerror:
            return str(err)
        if err.filename is not None and os.path.abspath(err.filename) != os.path.abspath(job.source):
            other = _relative_posix(Path(os.fsdecode(err.filename)), self.source_roots)
            return f"{other or err.filename}: {err.strerror}"
        return err.strerror


def _torchvision_decode_jpeg(data: list[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    """``torchvision.io.decode_jpeg`` of JPEG files' bytes → ``(3, H, W)`` uint8 RGB each, on ``device``, in one call.

    torchvision 0.29 announces on every call that its image decoders will move to TorchCodec; they
    still work, and the notice is not the user's concern. Raises ``RuntimeError`` as ``decode_jpeg``.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*decoding and encoding capabilities of TorchVision are deprecated.*")
        return decode_jpeg([torch.from_numpy(np.array(d)) for d in data], mode=ImageReadMode.RGB, device=device)


def decode_jpeg_bytes(data: np.ndarray, device: torch.device) -> torch.Tensor | None:
    """A JPEG file's bytes (1-D uint8) → ``(3, H, W)`` uint8 RGB on ``device`` (torchvision; OpenCV if it fails); ``None`` if undecodable."""
    try:
        return _torchvision_decode_jpeg([data], device)[0]
    except RuntimeError:
        pass  # a JPEG that libjpeg-turbo or nvJPEG refuses: OpenCV may still read it
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    return torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).to(device)


def _collate_by_size(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items of equal size (and mask presence) together (a batch may hold several groups); keep the errors apart.

    Undecoded JPEGs (``"jpeg"`` items) form groups of their own, whose ``"jpegs"`` lists their
    bytes (numpy arrays, which stay on the host), whose ``"size"`` is their ``(H, W)`` from the
    headers, and whose ``"images"`` is ``None``.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    errors = []
    for item in items:
        if "error" in item:
            errors.append((item["position"], item["error"]))
            continue
        shape = ("jpeg", *item["size"]) if "jpeg" in item else tuple(item["image"].shape)
        groups.setdefault((shape, item["mask"] is not None), []).append(item)
    return {
        "groups": [
            {
                # A list, not a tensor: a worker sends each tensor through a socket of its own (about 1 ms).
                "positions": [i["position"] for i in group],
                # default_collate stacks straight into shared memory in a worker: no copy to send the batch.
                "images": None if shape[0] == "jpeg" else default_collate([i["image"] for i in group]),
                "jpegs": [i["jpeg"] for i in group] if shape[0] == "jpeg" else None,
                "size": shape[1:] if shape[0] == "jpeg" else None,
                "masks": default_collate([i["mask"] for i in group]) if has_mask else None,
            }
            for (shape, has_mask), group in groups.items()
        ],
        "errors": errors,
    }


class _TranslationData(L.LightningDataModule):
    def __init__(self, reader: Any, work: _Work | None, journal: Journal | None, batch_size: int, num_workers: int,
                 max_image_pixels: int) -> None:
        super().__init__()
        self.reader, self.work, self.journal = reader, work, journal
        self.batch_size, self.num_workers, self.max_image_pixels = batch_size, num_workers, max_image_pixels
        self.jpeg_decoder = "worker"
        self.jobs: list[ImageJob] = []
        self.copies: list[tuple[Path, Path]] = []

    def setup(self, stage: str) -> None:
        # Rank 0 decided what is pending before the other ranks started; everyone shards that same list.
        self.work = self.trainer.strategy.broadcast(self.work, src=0)
        rank, world = self.trainer.global_rank, self.trainer.world_size
        self.jobs = self.work.images[rank::world]
        self.copies = self.work.copies[rank::world]
        if self.journal is None:
            # This process reaches DST from its own descriptor, checked to be the folder rank 0 prepared.
            self.journal = Journal(TargetFolder(self.work.target_root, self.work.target_identity), f"{self.work.run_id}-rank{rank}")
        # nvJPEG decodes a batch on the GPU faster than the workers can; on the CPU the workers decode in parallel.
        self.jpeg_decoder = "device" if self.trainer.strategy.root_device.type == "cuda" else "worker"

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(
            _PendingImages(self.reader, self.jobs, self.max_image_pixels, self.work.source_roots, self.work.identities,
                           self.jpeg_decoder),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=_collate_by_size,
            persistent_workers=False,
        )


class _Translator(L.LightningModule):
    def __init__(self, transform: SynthToReal, writer: BackgroundWriter) -> None:
        super().__init__()
        self.transform = transform
        self.writer = writer

    def _translate(self, images: torch.Tensor, masks: torch.Tensor | None) -> list[torch.Tensor]:
        """``(n, 3, H, W)`` uint8 (and masks) → the translations, ``(n_i, 3, H, W)`` uint8 RGB chunks on the host, in order.

        On the CPU, one chunk per call of :data:`CPU_CHUNK_PIXELS` pixels, kept apart (joining
        them would copy the batch once more); elsewhere one chunk. The writer threads interleave
        the channels (OpenCV does it in one pass, without the GIL).
        """
        if images.device.type == "cpu":
            per_chunk = max(1, CPU_CHUNK_PIXELS // (images.shape[-2] * images.shape[-1]))
            mask_chunks = [None] * images.shape[0] if masks is None else masks.split(per_chunk)
            return [self.transform(x, mask=m).contiguous() for x, m in zip(images.split(per_chunk), mask_chunks)]
        return [self.transform(images, mask=masks).contiguous().cpu()]

    def _decoded(self, group: dict[str, Any], errors: list[tuple[int, str]]) -> dict[str, Any]:
        """A group of undecoded JPEGs with its ``"images"`` decoded on this device in one batch; the undecodable are dropped into ``errors``."""
        positions = torch.as_tensor(group["positions"]).cpu()
        try:
            images: list[torch.Tensor | None] = list(_torchvision_decode_jpeg(group["jpegs"], self.device))
        except RuntimeError:  # one file spoils the batch: decode them one by one to find it
            images = [decode_jpeg_bytes(jpeg, self.device) for jpeg in group["jpegs"]]
        keep = []
        for i, image in enumerate(images):
            if image is None or tuple(image.shape) != (3, *group["size"]):
                errors.append((int(positions[i]), "has a readable header but its pixels cannot be decoded"))
            else:
                keep.append(i)
        index = torch.tensor(keep, dtype=torch.long)
        return {
            "positions": positions[index],
            "images": torch.stack([images[i] for i in keep]) if keep else None,
            "masks": None if group["masks"] is None else group["masks"][index.to(group["masks"].device)],
        }

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        out: dict[str, Any] = {"translated": [], "errors": list(batch["errors"])}
        if self.writer.failed:
            return out  # the run stops with the writer's error; no point translating more
        for group in batch["groups"]:
            if group.get("jpegs") is not None:
                group = self._decoded(group, out["errors"])
                if group["images"] is None:
                    continue
            positions = torch.as_tensor(group["positions"]).cpu()
            try:
                out["translated"].append((positions, self._translate(group["images"], group["masks"])))
                continue
            except (RuntimeError, ValueError):
                pass  # one bad image spoils the group: translate them one by one to find it
            for i, position in enumerate(positions.tolist()):
                masks = None if group["masks"] is None else group["masks"][i : i + 1]
                try:
                    out["translated"].append((positions[i : i + 1], self._translate(group["images"][i : i + 1], masks)))
                except (RuntimeError, ValueError) as err:
                    out["errors"].append((position, f"could not be translated: {err}"))
        return out


class _ImageWriter(BasePredictionWriter):
    """Hands each batch's translations to the background writer as soon as the batch is done; notes the skipped."""

    def __init__(self, data: _TranslationData, writer: BackgroundWriter, png_compression: int | None = PNG_COMPRESSION) -> None:
        super().__init__(write_interval="batch")
        self.data, self.writer, self.png_compression = data, writer, png_compression
        self.translated: list[str] = []
        self.skipped: list[Skipped] = []

    def _relative(self, position: int) -> str:
        return self.data.jobs[position].target.relative_to(self.data.work.target_root).as_posix()

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx) -> None:  # noqa: ANN001
        for position, reason in prediction["errors"]:
            self.skipped.append(Skipped(self._relative(position), reason))
        for positions, chunks in prediction["translated"]:
            for position, planes in zip(positions.tolist(), (planes for chunk in chunks for planes in chunk.numpy())):
                self.writer.submit(write_image_atomically, self.data.jobs[position].target, planes, self.data.journal,
                                   self.png_compression, channels_first=True)
                self.translated.append(self._relative(position))


def _copy_or_skip(source: Path, target: Path, journal: Journal, root: Path, skipped: list[Skipped],
                  expected: FileIdentity | None) -> None:
    try:
        copy_atomically(source, target, journal, expected)
    except SourceUnreadable as err:
        skipped.append(Skipped(target.relative_to(root).as_posix(), err.strerror or str(err)))


def _finish_shards(trainer: L.Trainer, data: _TranslationData, writer: BackgroundWriter, image_writer: _ImageWriter) -> list[dict[str, Any]] | None:
    """Copy this rank's files, wait for every write, record the shard; rank 0 gets every rank's record.

    Runs after ``trainer.predict`` (whose hooks a rank with an empty shard never sees), on every
    rank. A rank that could not write does not leave the others waiting: every rank learns that
    one failed and stops with an error.
    """
    root = data.work.target_root
    copy_skipped: list[Skipped] = []
    roots = tuple(str(r) for r in data.work.source_roots)
    for src, dst in data.copies:
        relative = _relative_posix(src, roots)
        expected = data.work.identities.get(relative) if relative is not None else None
        writer.submit(_copy_or_skip, src, dst, data.journal, root, copy_skipped, expected)
    error: BaseException | None = None
    try:
        writer.close()
        # The shard record lists what this rank wrote: the audit trail that no image was done twice.
        write_json_journalled(state_dir(root) / f"rank-{trainer.global_rank}.json", {
            "rank": trainer.global_rank,
            "translated": image_writer.translated,
            "copied": len(data.copies) - len(copy_skipped),
            "skipped_images": [asdict(s) for s in image_writer.skipped],
            "skipped_files": [asdict(s) for s in copy_skipped],
        }, data.journal)
    except Exception as err:  # noqa: BLE001 - reported to every rank below, then raised
        error = err
    if trainer.strategy.reduce_boolean_decision(error is not None, all=False):
        if error is not None:
            raise error
        raise OSError("another process of this run could not write its outputs (its error says why); "
                      "the finished files are kept and running the same command again resumes")
    if not trainer.is_global_zero:
        return None
    records = [data.journal.target.read_bytes(f"{STATE_DIR}/rank-{r}.json", MAX_RECORD_BYTES) for r in range(trainer.world_size)]
    if any(record is None for record in records):
        raise OSError(f"a per-process record in {str(state_dir(root))!r} is missing or was replaced during the run")
    return [json.loads(record) for record in records]


def _relative_posix(path: Path, roots: tuple[str, ...]) -> str | None:
    absolute = os.path.abspath(path)
    for root in roots:
        if absolute.startswith(root.rstrip(os.sep) + os.sep):
            return Path(absolute).relative_to(root).as_posix()
    return None


def _check_dataset_kwargs(dataset: str, dataset_kwargs: dict[str, Any]) -> None:
    """Refuse an option the reader does not take, naming it and the ones it takes."""
    entry = get_registry("dataset").get(dataset)
    if "root" in dataset_kwargs:
        raise ValueError("dataset_kwargs (--dataset-kwargs) must not set 'root': the source folder is the reader's root")
    try:
        parameters = inspect.signature(entry.factory).parameters.values()
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    accepted = [p.name for p in parameters
                if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY) and p.name != "root"]
    unknown = sorted(set(dataset_kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown dataset option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in dataset_kwargs "
            f"(--dataset-kwargs) for the {dataset!r} reader; it accepts: {', '.join(accepted) or '(none)'}"
        )


def _json_ready(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _refuse_if_not_empty(target_root: Path) -> None:
    others = sorted(name for name in os.listdir(target_root) if name != STATE_DIR)
    if others:
        raise TargetFolderError(
            f"target folder {str(target_root)!r} is not empty ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}) "
            "and is not a handaug-translate output. Choose a new or empty folder, or pass --allow-nonempty-target "
            "(allow_nonempty_target=True) to write beside those files (handaug never changes a file it did not write)"
        )


def _prepare_target(
    reader: Any, source: Path, target: Path, record: dict[str, Any], *, overwrite: bool, allow_nonempty_target: bool,
) -> tuple[TargetLock, Journal, TranslationPlan, _Work, tuple[int, int]]:
    """Rank 0, before any other rank starts: lock the target, check it, clean it up, record the run, plan the work.

    Returns the held lock, rank 0's journal, the plan, the shared work and the numbers of images
    and files already done.

    Raises:
        TargetFolderError: the target is locked, not empty and not a handaug output, holds
            someone else's file under a name this run writes, or holds outputs of other settings
            or of unknown settings (their run record is missing or unreadable).
        OSError: the target cannot be created or written (read-only, full).
    """
    source_root, target_root = check_folders(source, target)
    if target_root.is_dir() and not state_dir(target_root).exists() and not allow_nonempty_target:
        _refuse_if_not_empty(target_root)  # before writing anything there
    target_root.mkdir(parents=True, exist_ok=True)
    target_folder = TargetFolder(target_root)
    try:
        lock = TargetLock(target_folder).acquire()
    except BaseException:
        target_folder.close()
        raise
    try:
        previous = read_run_record(target_folder)
        contents = read_journals(target_folder)
        outputs = {w for w in contents.written if not w.startswith(f"{STATE_DIR}/")}
        if previous is None and not outputs and not allow_nonempty_target:
            _refuse_if_not_empty(target_root)
        remove_journalled_temps(target_folder, contents)
        if overwrite:
            remove_written_files(target_folder, contents)
            contents = JournalContents()
        elif previous is None and outputs:
            # Without the record, nothing says which checkpoint and settings made them: never count them as done.
            raise TargetFolderError(
                f"target folder {str(target_root)!r} holds {len(outputs)} file(s) of an earlier translation, but its run record "
                f"{str(state_dir(target_root) / RUN_RECORD)!r} is missing or unreadable, so their checkpoint and settings are unknown. "
                "Pass --overwrite (overwrite=True) to delete them and translate again, or choose another target"
            )
        elif outputs:
            differences = [f"{key} was {previous.get(key)!r}, now {record[key]!r}" for key in COMPARED_SETTINGS
                           if previous.get(key) != record[key]]
            if differences:
                raise TargetFolderError(
                    f"target folder {str(target_root)!r} holds translations made with other settings ({'; '.join(differences)}). "
                    "Pass --overwrite (overwrite=True) to delete them and translate again, or choose another target"
                )
        plan = build_plan(reader, source, target)
        problems = foreign_files(target_root, [*plan.targets(), target_root / MANIFEST_FILE], contents.written)
        if problems:
            raise TargetFolderError(
                f"{len(problems)} name(s) this run would write in {str(target_root)!r} hold files that handaug did not write, "
                f"and handaug never changes those: {'; '.join(problems[:5])}{' ...' if len(problems) > 5 else ''}. "
                "Move them away or choose another target"
            )
        run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
        journal = Journal(target_folder, f"{run_id}-rank0")
        write_run_record(target_folder, record, journal)
        images, copies = plan.pending_images(contents.written), plan.pending_copies(contents.written)
        done = (len(plan.images) - len(images), len(plan.copies) - len(copies))
        work = _Work(run_id, target_root, target_folder.identity, images, copies, plan.source_roots, plan.identities)
        return lock, journal, plan, work, done
    except BaseException:
        lock.release()
        target_folder.close()
        raise


def translate_dataset(
    ckpt: str | os.PathLike[str],
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    dataset: str = "folder",
    dataset_kwargs: dict[str, Any] | None = None,
    *,
    batch_size: int = 8,
    num_workers: int = 2,
    accelerator: str = "auto",
    devices: int | str = 1,
    num_nodes: int = 1,
    precision: str = "auto",
    mask_mode: str = "composite",
    hand_crop: bool = False,
    writer_threads: int | None = None,
    png_compression: int | None = PNG_COMPRESSION,
    progress: bool = True,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    overwrite: bool = False,
    allow_nonempty_target: bool = False,
) -> TranslationReport | None:
    """Translate every image of the ``dataset`` reader over ``source`` into ``target``.

    Images keep their relative paths, file names and formats (PNG stays lossless, at zlib level
    ``png_compression``, default OpenCV's fast level 1: see
    :data:`~handaug.translation.writer.PNG_COMPRESSION`; JPEG is written at quality 95); every
    other file under ``source`` is copied unchanged. ``writer_threads`` threads encode and write
    (default: one per core, 2 to 8; see :func:`~handaug.translation.writer.default_writer_threads`). With a
    reader that yields masks and ``mask_mode="composite"``, only the hands change. A run that
    was killed resumes: finished images and copies are skipped. ``devices``/``num_nodes`` > 1
    run Lightning DDP, each rank translating its own shard.

    What is touched: only files handaug wrote into ``target`` (listed in its journal, see
    :mod:`handaug.translation.state`). A non-empty ``target`` that is not a handaug output is
    refused unless ``allow_nonempty_target``; even then a name clash with an existing file is
    refused. ``target`` outputs made with another checkpoint or settings are refused unless
    ``overwrite`` (which deletes handaug's earlier outputs first). Images of more than
    ``max_image_pixels`` pixels, files that cannot be read or translated, and symbolic links
    that leave ``source`` are skipped and listed in the report.

    Returns the report on global rank 0 (also written to ``target/handaug-translate.json``),
    ``None`` on the other ranks.

    Raises:
        ValueError: bad arguments, an unknown reader or reader option, a refused target
            (:class:`~handaug.translation.state.TargetFolderError`, also when another run holds its lock).
        FileNotFoundError: ``source`` or ``ckpt`` does not exist.
        OSError: the target cannot be written (read-only, full); the message names the file.
    """
    writer_threads = default_writer_threads() if writer_threads is None else writer_threads
    batch_size = check_int(batch_size, "batch_size", 1)
    num_workers = check_int(num_workers, "num_workers", 0)
    max_image_pixels = check_int(max_image_pixels, "max_image_pixels", 1)
    writer_threads = check_int(writer_threads, "writer_threads", 1)
    encoding_parameters(".png", png_compression)  # refuses a level outside 0..9
    png_compression = None if png_compression is None else int(png_compression)  # a numpy integer recorded as int
    started = time.time()
    check_folders(source, target)  # before anything else: a target that is a file, or overlaps the source
    checkpoint = read_checkpoint(ckpt)
    dataset_kwargs = dict(dataset_kwargs or {})
    _check_dataset_kwargs(dataset, dataset_kwargs)
    try:
        reader = create_dataset(dataset, root=str(source), **dataset_kwargs)
    except (TypeError, AttributeError, KeyError, IndexError) as err:  # an option of the wrong type, deep in a reader
        raise ValueError(f"the {dataset!r} reader rejected dataset_kwargs (--dataset-kwargs) {dataset_kwargs}: {err}") from None
    if hasattr(reader, "max_image_pixels"):
        reader.max_image_pixels = max_image_pixels  # the reader decodes what this run's limit allows
    transform = SynthToReal(ckpt, p=1.0, mask_mode=mask_mode, precision=precision, hand_crop=hand_crop)
    # Two batches may wait: one is encoded and written while the next is translated.
    writer = BackgroundWriter(writer_threads, max_pending=max(64, 2 * batch_size, 4 * writer_threads))
    data = _TranslationData(reader, None, None, batch_size, num_workers, max_image_pixels)
    image_writer = _ImageWriter(data, writer, png_compression)
    world = (int(devices) if str(devices).isdigit() else 1) * num_nodes
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy="ddp" if world > 1 else "auto",
        precision="32-true",  # SynthToReal chooses its own inference precision
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        use_distributed_sampler=False,  # shards are made without padding: no image twice
        callbacks=[image_writer],
    )
    settings = {"mask_mode": mask_mode, "hand_crop": hand_crop, "precision": precision}
    lock = journal = plan = None
    done = (0, 0)
    record: dict[str, Any] = {}
    if trainer.is_global_zero:  # known before the other ranks are launched: only this process locks and prepares
        record = {
            "source": str(Path(source).resolve()),
            "dataset": dataset,
            "dataset_kwargs": _json_ready(dataset_kwargs),
            "checkpoint": str(ckpt) if is_hub_name(str(ckpt)) else str(Path(ckpt).resolve()),
            # The hash the weights were verified against when read, and are again when loaded (build()).
            "checkpoint_sha256": checkpoint.weights_sha256 or file_sha256(checkpoint.weights_path),
            "handaug_version": __version__,
            **settings,
        }
        lock, journal, plan, data.work, done = _prepare_target(
            reader, Path(source), Path(target), record, overwrite=overwrite, allow_nonempty_target=allow_nonempty_target,
        )
        data.journal = journal
    try:
        with warnings.catch_warnings():
            # Lightning's batch-tree helper trips a torch deprecation notice on every run: not the user's concern.
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            # A resumed run with nothing left has empty shards; the report says so in plain words.
            warnings.filterwarnings("ignore", message=".*Total length of `DataLoader` across ranks is zero.*")
            trainer.predict(_Translator(transform, writer), datamodule=data, return_predictions=False)
        shards = _finish_shards(trainer, data, writer, image_writer)
        if shards is None:
            data.journal.close()
            data.journal.target.close()
            return None
        assert plan is not None and data.journal is not None
        skipped_images = [*plan.skipped_images, *(Skipped(**s) for shard in shards for s in shard["skipped_images"])]
        skipped_files = [*plan.skipped_files, *(Skipped(**s) for shard in shards for s in shard["skipped_files"])]
        skipped_targets = {plan.target_root / s.path for s in skipped_images}
        missing = [str(job.target) for job in plan.images if job.target not in skipped_targets
                   and not data.journal.target.lexists(job.target.relative_to(plan.target_root).as_posix())]
        if missing:
            raise RuntimeError(f"{len(missing)} translated images are missing after the run, e.g. {missing[:3]}")
        result = TranslationReport(
            source=record["source"],
            target=str(plan.target_root),
            dataset=dataset,
            dataset_kwargs=record["dataset_kwargs"],
            checkpoint=record["checkpoint"],
            checkpoint_sha256=record["checkpoint_sha256"],
            handaug_version=__version__,
            settings={**settings, "batch_size": batch_size, "max_image_pixels": max_image_pixels,
                      "png_compression": png_compression, "writer_threads": writer_threads},
            images=len(plan.images) + len(plan.skipped_images),
            images_translated=sum(len(s["translated"]) for s in shards),
            images_already_done=done[0],
            images_skipped=len(skipped_images),
            files=len(plan.copies) + len(plan.skipped_files),
            files_copied=sum(s["copied"] for s in shards),
            files_already_copied=done[1],
            files_skipped=len(skipped_files),
            world_size=trainer.world_size,
            wall_time_s=round(time.time() - started, 2),
            skipped=[asdict(s) for s in sorted([*skipped_images, *skipped_files], key=lambda s: s.path)],
        )
        write_json_journalled(plan.target_root / MANIFEST_FILE, asdict(result), data.journal)
        return result
    finally:
        writer.shut_down()  # no write may outlive the journal and the lock, even on Ctrl-C
        if journal is not None:
            journal.close()
        if lock is not None:
            lock.release()
        if journal is not None:
            journal.target.close()
