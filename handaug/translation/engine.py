"""``translate_dataset``: every image of a dataset through SynthToReal, on one device or many (Lightning DDP).

Each rank gets every ``world_size``-th pending image (no padding, so no image is done twice)
and every ``world_size``-th pending file copy. Reading runs in DataLoader workers, translation
on the rank's device, and encoding/writing in a background thread pool. Targets appear only by
atomic rename, so a killed run leaves no partial file and the next run skips what is done.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from handaug._version import __version__
from handaug.atomic_files import file_sha256, write_json_atomically
from handaug.checkpoint import read_checkpoint
from handaug.registry import create_dataset
from handaug.synth_to_real import SynthToReal
from handaug.translation.plan import ImageJob, TranslationPlan, build_plan
from handaug.translation.writer import BackgroundWriter, copy_atomically, remove_partial_files, write_image_atomically

MANIFEST_FILE = "handaug-translate.json"
SHARD_DIR = ".handaug-translate"


@dataclass
class TranslationReport:
    """What a run did, as written to ``<target>/handaug-translate.json``."""

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
    files: int
    files_copied: int
    files_already_copied: int
    world_size: int
    wall_time_s: float


class _PendingImages(Dataset):
    """The images of one rank's shard: ``{"position", "image" (3, H, W) uint8, "mask" (H, W) bool or None}``."""

    def __init__(self, reader: Any, jobs: list[ImageJob]) -> None:
        self.reader = reader
        self.jobs = jobs

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, position: int) -> dict[str, Any]:
        sample = self.reader[self.jobs[position].index]
        image = torch.from_numpy(np.ascontiguousarray(sample["image"])).permute(2, 0, 1)
        mask = sample.get("mask")
        return {"position": position, "image": image, "mask": None if mask is None else torch.from_numpy(mask > 0)}


def _collate_by_size(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stack items of equal size (and mask presence) together; a batch may hold several groups."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for item in items:
        key = (tuple(item["image"].shape), item["mask"] is not None)
        groups.setdefault(key, []).append(item)
    return [
        {
            "positions": torch.tensor([i["position"] for i in group]),
            "images": torch.stack([i["image"] for i in group]),
            "masks": torch.stack([i["mask"] for i in group]) if has_mask else None,
        }
        for (_, has_mask), group in groups.items()
    ]


class _TranslationData(L.LightningDataModule):
    def __init__(self, reader: Any, plan: TranslationPlan, batch_size: int, num_workers: int) -> None:
        super().__init__()
        self.reader, self.plan = reader, plan
        self.batch_size, self.num_workers = batch_size, num_workers
        self.jobs: list[ImageJob] = []
        self.copies: list[tuple[Path, Path]] = []
        self.already_done = (0, 0)

    def setup(self, stage: str) -> None:
        # Rank 0 decides what is pending and tells everyone, so that every rank shards the same list.
        strategy = self.trainer.strategy
        pending = None
        if self.trainer.is_global_zero:
            remove_partial_files(self.plan.target_root)
            images = [job.index for job in self.plan.pending_images]
            todo = set(self.plan.pending_copies)
            copies = [i for i, pair in enumerate(self.plan.copies) if pair in todo]
            pending = (images, copies)
        images, copies = strategy.broadcast(pending, src=0)
        rank, world = self.trainer.global_rank, self.trainer.world_size
        by_index = {job.index: job for job in self.plan.images}
        self.jobs = [by_index[i] for i in images[rank::world]]
        self.copies = [self.plan.copies[i] for i in copies[rank::world]]
        self.already_done = (len(self.plan.images) - len(images), len(self.plan.copies) - len(copies))

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(
            _PendingImages(self.reader, self.jobs),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=_collate_by_size,
            persistent_workers=False,
        )


class _Translator(L.LightningModule):
    def __init__(self, transform: SynthToReal) -> None:
        super().__init__()
        self.transform = transform

    def predict_step(self, batch: list[dict[str, Any]], batch_idx: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for group in batch:
            translated = self.transform(group["images"], mask=group["masks"])
            out.append((group["positions"].cpu(), translated.permute(0, 2, 3, 1).cpu()))
        return out


class _ImageWriter(BasePredictionWriter):
    """Hands each batch's translations to the background writer as soon as the batch is done."""

    def __init__(self, data: _TranslationData, writer: BackgroundWriter) -> None:
        super().__init__(write_interval="batch")
        self.data, self.writer = data, writer
        self.translated: list[str] = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):  # noqa: ANN001
        for positions, images in prediction:
            for position, rgb in zip(positions.tolist(), images.numpy()):
                target = self.data.jobs[position].target
                self.writer.submit(write_image_atomically, target, rgb)
                self.translated.append(str(target.relative_to(self.data.plan.target_root)))


def _finish_shards(trainer: L.Trainer, data: _TranslationData, writer: BackgroundWriter, translated: list[str]) -> dict[str, Any] | None:
    """Copy this rank's files, wait for every write, record the shard; rank 0 merges and checks all ranks' work.

    Runs after ``trainer.predict`` (whose hooks a rank with an empty shard never sees), on every rank.
    """
    for src, dst in data.copies:
        writer.submit(copy_atomically, src, dst)
    writer.close()
    shard_dir = data.plan.target_root / SHARD_DIR
    shard_dir.mkdir(parents=True, exist_ok=True)
    # The shard record lists what this rank wrote: the audit trail that no image was done twice.
    write_json_atomically(shard_dir / f"rank-{trainer.global_rank}.json",
                {"rank": trainer.global_rank, "translated": translated, "copied": len(data.copies)})
    trainer.strategy.barrier("handaug-translate-shards")
    if not trainer.is_global_zero:
        return None
    shards = [json.loads((shard_dir / f"rank-{r}.json").read_text()) for r in range(trainer.world_size)]
    missing = [str(job.target) for job in data.plan.images if not job.target.exists()]
    if missing:
        raise RuntimeError(f"{len(missing)} translated images are missing after the run, e.g. {missing[:3]}")
    done_images, done_files = data.already_done
    return {
        "images": len(data.plan.images),
        "images_translated": sum(len(s["translated"]) for s in shards),
        "images_already_done": done_images,
        "files": len(data.plan.copies),
        "files_copied": sum(s["copied"] for s in shards),
        "files_already_copied": done_files,
        "world_size": trainer.world_size,
    }


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
    writer_threads: int = 2,
    progress: bool = True,
) -> TranslationReport | None:
    """Translate every image of the ``dataset`` reader over ``source`` into ``target``.

    Images keep their relative paths, file names and formats (PNG stays lossless; JPEG is
    written at quality 95); every other file under ``source`` is copied unchanged. With a
    reader that yields masks and ``mask_mode="composite"``, only the hands change. A run that
    was killed resumes: finished images and copies are skipped. ``devices``/``num_nodes`` > 1
    run Lightning DDP, each rank translating its own shard.

    Returns the report on global rank 0 (also written to ``target/handaug-translate.json``),
    ``None`` on the other ranks.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
    started = time.time()
    checkpoint = read_checkpoint(ckpt)
    dataset_kwargs = dict(dataset_kwargs or {})
    reader = create_dataset(dataset, root=str(source), **dataset_kwargs)
    plan = build_plan(reader, source, target)
    transform = SynthToReal(ckpt, p=1.0, mask_mode=mask_mode, precision=precision, hand_crop=hand_crop)
    data = _TranslationData(reader, plan, batch_size, num_workers)
    writer = BackgroundWriter(writer_threads)
    image_writer = _ImageWriter(data, writer)
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
    with warnings.catch_warnings():
        # Lightning's batch-tree helper trips a torch deprecation notice on every run: not the user's concern.
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        # A resumed run with nothing left has empty shards; the report says so in plain words.
        warnings.filterwarnings("ignore", message=".*Total length of `DataLoader` across ranks is zero.*")
        trainer.predict(_Translator(transform), datamodule=data, return_predictions=False)
    report = _finish_shards(trainer, data, writer, image_writer.translated)
    if report is None:
        return None
    result = TranslationReport(
        source=str(plan.source_root),
        target=str(plan.target_root),
        dataset=dataset,
        dataset_kwargs=dataset_kwargs,
        checkpoint=str(Path(ckpt).resolve()),
        checkpoint_sha256=checkpoint.config.get("weights_sha256") or file_sha256(checkpoint.weights_path),
        handaug_version=__version__,
        settings={"mask_mode": mask_mode, "hand_crop": hand_crop, "precision": precision, "batch_size": batch_size},
        wall_time_s=round(time.time() - started, 2),
        **report,
    )
    write_json_atomically(plan.target_root / MANIFEST_FILE, asdict(result))
    return result
