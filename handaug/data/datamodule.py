"""``UnpairedDataModule``: two image sources (synthetic, real) → unpaired training and validation batches."""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from handaug.arguments import check_choice, check_flag, check_int, is_integer
from handaug.data.background import background_value
from handaug.data.crops import CROP_MODES, CropMode
from handaug.data.pairing import EPOCH_LENGTHS, PAIRINGS, EpochLength, Pairing, PairSampler, ResumableDataLoader
from handaug.data.sources import parse_source
from handaug.data.unpaired import DomainDataset, UnpairedDataset
from handaug.registry import create_dataset

DOMAINS: tuple[str, ...] = ("synthetic", "real")
VAL_CROPS: tuple[str, ...] = ("centre", "centroid")


class UnpairedDataModule(L.LightningDataModule):
    """Unpaired synthetic and real hand images for H-GAN.

    Args:
        synthetic: the synthetic-domain source: ``"procedural"`` (the built-in renderer, no files),
            a folder path, or ``"NAME:ROOT"`` for a registered dataset reader.
        real: the real-domain source, same forms.
        synthetic_masks: for folder sources, where each synthetic image's hand mask is, as a
            pattern relative to the image (``"{stem}_mask.png"``, ``"../masks/{stem}.png"``).
        real_masks: same for the real folder.
        synthetic_kwargs: extra keyword arguments for the synthetic reader (e.g.
            ``{"length": 500, "image_size": 64}`` for the procedural hands).
        real_kwargs: same for the real reader.
        crop_size: side of the random square training crops (paper: 128).
        crop_mode: ``"hand"`` (default): each training crop of an image with a hand mask is
            centred on a random pixel of the mask eroded away from its border, the frame padded
            by half a crop with the background colour (the H-GAN reference code's
            ``MaskedRandomCrop``), so every crop shows hand; images without masks get uniform
            crops. ``"uniform"``: uniform random crops for every image.
        val_size: side of the validation crops (paper: 256).
        val_crop: ``"centre"``: validation crops at the image centre; ``"centroid"``: around the
            hand mask's centroid shifted by ``val_crop_offset`` (the H-GAN reference's
            ``CentroidCrop``; images without a hand mask are centre-cropped).
        val_crop_offset: ``(dx, dy)`` pixels right and down of the centroid (the reference:
            ``(20, -100)`` on 640×480 SynthHands/RealHands frames).
        synthetic_val_kwargs: reader options of a separate validation source, e.g.
            ``{"split": "val"}``: validation images come from the same source read with these
            options merged over ``synthetic_kwargs`` (the first ``val_count`` of them), and
            training keeps all of its images. ``None``: ``val_count`` images are held out of
            the training images instead.
        real_val_kwargs: the same for the real domain.
        load_size: if set, images are first resized so their shorter side is this.
        val_count: images of each domain held out for validation (0: no validation).
        background: what the background outside the hand masks becomes before training:
            ``"white"`` (H-GAN's choice), ``"black"``, ``"keep"``, or a value in ``[-1, 1]``.
            Translated images are composited over their source with the same mask, so the
            networks learn the hand only.
        hflip: random horizontal flips in training (off by default: it turns right hands into
            left hands, which matters for some real datasets' statistics).
        pairing: which real image goes with which synthetic one in training: ``"random"`` (both
            sets reshuffled every epoch, a fresh pairing each time) or ``"index"`` (item ``i``
            with item ``i``, in order, every epoch; the H-GAN reference code's loader).
        epoch_length: ``"max"`` (an epoch runs over the larger set, the smaller repeats;
            CycleGAN's convention) or ``"min"`` (over the smaller set; the reference's).
        batch_size: training batch size (CycleGAN: 1).
        val_batch_size: validation batch size (default: ``batch_size``).
        num_workers: DataLoader worker processes (on a GPU, enough of them to keep up: procedural
            hands take about 6.5 ms per 256 px image per core).
        seed: seed of the validation hold-out split, of the training order and crops, and of the
            procedural renderers (the real procedural domain uses ``seed + 1`` so the two domains
            show different hands).

    The training order and every random crop are pure functions of ``seed`` and the epoch (see
    :mod:`handaug.data.pairing`): the same on any number of workers or DDP ranks, and a run
    resumed from a mid-epoch checkpoint continues with exactly the batches it would have seen.

    Batches are ``{"synthetic": {...}, "real": {...}}``, each with ``image`` ``(B, 3, S, S)``
    float32 in ``[-1, 1]``, ``mask`` ``(B, 1, S, S)`` float32 in ``{0, 1}``, ``has_mask`` ``(B,)``
    bool and ``index`` ``(B,)``.
    """

    def __init__(
        self,
        synthetic: str = "procedural",
        real: str = "procedural",
        synthetic_masks: str | None = None,
        real_masks: str | None = None,
        synthetic_kwargs: dict[str, Any] | None = None,
        real_kwargs: dict[str, Any] | None = None,
        crop_size: int = 128,
        crop_mode: CropMode = "hand",
        val_size: int = 256,
        val_crop: Literal["centre", "centroid"] = "centre",
        val_crop_offset: tuple[int, int] = (0, 0),
        synthetic_val_kwargs: dict[str, Any] | None = None,
        real_val_kwargs: dict[str, Any] | None = None,
        load_size: int | None = None,
        val_count: int = 16,
        background: str | float = "white",
        hflip: bool = False,
        pairing: Pairing = "random",
        epoch_length: EpochLength = "max",
        batch_size: int = 1,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        crop_size = check_int(crop_size, "crop_size", 1)
        val_size = check_int(val_size, "val_size", 1)
        batch_size = check_int(batch_size, "batch_size", 1)
        if load_size is not None:
            load_size = check_int(load_size, "load_size", 1)
        val_count = check_int(val_count, "val_count", 0)
        num_workers = check_int(num_workers, "num_workers", 0)
        if val_batch_size is not None:
            val_batch_size = check_int(val_batch_size, "val_batch_size", 1)
        seed = check_int(seed, "seed", 0)  # numpy's generators, seeded with [seed, domain], refuse negative seeds
        hflip = check_flag(hflip, "hflip")
        val_crop = check_choice(val_crop, "val_crop", VAL_CROPS)
        if len(tuple(val_crop_offset)) != 2 or not all(is_integer(v) for v in val_crop_offset):
            raise ValueError(f"val_crop_offset must be two integers (dx, dy), got {val_crop_offset!r}")
        crop_mode = check_choice(crop_mode, "crop_mode", CROP_MODES)
        pairing = check_choice(pairing, "pairing", PAIRINGS)
        epoch_length = check_choice(epoch_length, "epoch_length", EPOCH_LENGTHS)
        self.save_hyperparameters()
        self.sources = {"synthetic": parse_source(synthetic, "synthetic"), "real": parse_source(real, "real")}
        self.reader_kwargs = {
            "synthetic": self._reader_kwargs("synthetic", synthetic_kwargs, synthetic_masks, seed, val_size),
            "real": self._reader_kwargs("real", real_kwargs, real_masks, seed + 1, val_size),
        }
        self.crop_size = crop_size
        self.crop_mode = crop_mode
        self.val_crop_offset = tuple(int(v) for v in val_crop_offset) if val_crop == "centroid" else None
        self.val_kwargs = {"synthetic": synthetic_val_kwargs, "real": real_val_kwargs}
        self.val_size = val_size
        self.load_size = load_size
        self.val_count = val_count
        self.background = background_value(background)
        self.hflip = hflip
        self.pairing = pairing
        self.epoch_length = epoch_length
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.readers: dict[str, Any] = {}
        self.train_set: UnpairedDataset | None = None
        self.val_set: UnpairedDataset | None = None

    def _reader_kwargs(
        self, domain: str, kwargs: dict[str, Any] | None, masks: str | None, seed: int, val_size: int
    ) -> dict[str, Any]:
        kwargs = dict(kwargs or {})
        source = self.sources[domain]
        if masks is not None:
            if source.name != "folder":
                raise ValueError(
                    f"{domain}_masks applies to folder sources, but {domain}={str(source)!r} is read by "
                    f"{source.name!r}; pass that reader's own options in {domain}_kwargs"
                )
            kwargs["mask_pattern"] = masks
        if source.name == "procedural":
            kwargs.setdefault("style", domain)
            kwargs.setdefault("seed", seed)
            kwargs.setdefault("image_size", val_size)
            kwargs.setdefault("length", 1000)
        return kwargs

    def _reader(self, domain: str, validation: bool = False) -> Any:
        key = f"{domain} (val)" if validation else domain
        if key not in self.readers:
            source = self.sources[domain]
            kwargs = {**self.reader_kwargs[domain], **(self.val_kwargs[domain] or {})} if validation else self.reader_kwargs[domain]
            self.readers[key] = create_dataset(source.name, root=source.root, **kwargs)
        return self.readers[key]

    def _split(self, domain: str, n: int) -> tuple[list[int], list[int]]:
        if self.val_count == 0:
            return list(range(n)), []
        if n <= self.val_count:
            raise ValueError(
                f"{domain} source {str(self.sources[domain])!r} has {n} images: it needs more than "
                f"val_count={self.val_count} (images held out for validation); lower val_count"
            )
        order = np.random.default_rng([self.seed, DOMAINS.index(domain)]).permutation(n)
        return sorted(order[self.val_count :].tolist()), sorted(order[: self.val_count].tolist())

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        domains = {}
        for domain in DOMAINS:
            reader = val_reader = self._reader(domain)
            if self.val_kwargs[domain] is not None:
                val_reader = self._reader(domain, validation=True)
                train_idx, val_idx = list(range(len(reader))), list(range(min(self.val_count, len(val_reader))))
            else:
                train_idx, val_idx = self._split(domain, len(reader))
            common = {"load_size": self.load_size, "background": self.background}
            train = DomainDataset(
                reader, train_idx, self.crop_size, random_crop=True, hflip=self.hflip, crop_mode=self.crop_mode,
                name=f"{domain} (train)", **common,
            )
            val = (
                DomainDataset(val_reader, val_idx, self.val_size, random_crop=False, centroid_offset=self.val_crop_offset,
                              name=f"{domain} (val)", **common)
                if val_idx
                else None
            )
            domains[domain] = (train, val)
        self.train_set = UnpairedDataset(domains["synthetic"][0], domains["real"][0], seed=self.seed)
        if self.val_count:
            self.val_set = UnpairedDataset(domains["synthetic"][1], domains["real"][1], seed=self.seed)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        trainer = self.trainer
        sampler = PairSampler(
            len(self.train_set.synthetic),
            len(self.train_set.real),
            self.batch_size,
            seed=self.seed,
            pairing=self.pairing,
            epoch_length=self.epoch_length,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
        )
        loader = ResumableDataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=len(sampler) >= self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self._pin_memory(),
            generator=self._loader_generator(),
        )
        if trainer is not None:
            loader.progress = lambda: _epoch_progress(trainer)
        return loader

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=self.val_batch_size, shuffle=False, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=self._pin_memory(),
                          generator=self._loader_generator())

    def _pin_memory(self) -> bool:
        # Page-locked batches copy to a CUDA device without making the host wait for it.
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def _loader_generator(self) -> torch.Generator:
        # A DataLoader draws its workers' base seed from this generator when it starts an epoch;
        # with none it would draw from torch's global RNG and shift the image pool's and dropout's
        # random numbers by when iterators happen to be created (a resumed run creates one more).
        return torch.Generator().manual_seed(self.seed)

    def describe(self) -> dict[str, Any]:
        """JSON summary of the data, stored in exported checkpoints."""
        summary: dict[str, Any] = {
            "crop_size": self.crop_size,
            "crop_mode": self.crop_mode,
            "val_crop_offset": list(self.val_crop_offset) if self.val_crop_offset is not None else None,
            "val_size": self.val_size,
            "load_size": self.load_size,
            "background": self.background,
            "pairing": self.pairing,
            "epoch_length": self.epoch_length,
        }
        for domain in DOMAINS:
            reader = self.readers.get(domain)
            summary[domain] = {
                "source": str(self.sources[domain]),
                "images": len(reader) if reader is not None else None,
                "masks": bool(reader is not None and len(reader) and "mask" in reader[0]),
                "kwargs": self.reader_kwargs[domain],
            }
        return summary


def _epoch_progress(trainer: L.Trainer) -> tuple[int, int, bool]:
    """``(epoch, batches done in it, whether its training batches are all done)`` from Lightning's loop counters."""
    done = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
    return int(trainer.current_epoch), done, done >= trainer.num_training_batches
