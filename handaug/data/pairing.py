"""Which synthetic and which real image each training step sees, and how a killed run finds its place again.

An epoch's order is a pure function of ``(seed, epoch)``: no global random state is read or
consumed, so it does not depend on the number of DataLoader workers, on the DDP world size or on
where a run was interrupted. Each item of the order is a :class:`PairKey`; the dataset derives the
item's own random generator (crop position, flip) from the key, so an item's pixels are a pure
function of its key too.

:class:`PairSampler` shards the order over DDP ranks itself and can start an epoch part-way
(:meth:`PairSampler.resume`); :class:`ResumableDataLoader` puts the place in the epoch into
Lightning's checkpoints (Lightning saves ``state_dict()`` of a stateful training loader and calls
``load_state_dict()`` before iterating again), which is what makes mid-epoch resume exact.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Literal, NamedTuple

import numpy as np
from torch.utils.data import DataLoader, DistributedSampler

Pairing = Literal["random", "index"]
EpochLength = Literal["max", "min"]
PAIRINGS: tuple[str, ...] = ("random", "index")
EPOCH_LENGTHS: tuple[str, ...] = ("max", "min")


class PairKey(NamedTuple):
    """One training item: the epoch, its position in the epoch's order, and the two images it pairs."""

    epoch: int
    position: int
    synthetic: int
    real: int


def item_rng(seed: int, key: PairKey, stream: int) -> np.random.Generator:
    """The random generator of one item's ``stream`` (0: synthetic image, 1: real image)."""
    return np.random.default_rng([seed, key.epoch, key.position, stream])


def _tiled_permutation(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """``length`` indices in ``[0, n)``: fresh permutations of ``n`` laid end to end, so every index
    appears ``length // n`` or ``length // n + 1`` times."""
    reps = -(-length // n)
    return np.concatenate([rng.permutation(n) for _ in range(reps)])[:length]


def epoch_order(
    n_synthetic: int, n_real: int, epoch: int, seed: int, pairing: Pairing = "random", epoch_length: EpochLength = "max"
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(synthetic, real)`` index arrays of one epoch, each of the epoch's length.

    ``pairing="random"``: both sides are shuffled independently every epoch (a fresh pairing
    each time, every image used about equally often); ``"index"``: item ``i`` of one set with
    item ``i`` of the other, in order, the same every epoch (the H-GAN reference code's loader).
    ``epoch_length``: ``"max"`` runs over the larger set (the smaller one repeats, CycleGAN's
    convention), ``"min"`` over the smaller one (the reference's).
    """
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
    if epoch_length not in EPOCH_LENGTHS:
        raise ValueError(f"epoch_length must be one of {EPOCH_LENGTHS}, got {epoch_length!r}")
    length = max(n_synthetic, n_real) if epoch_length == "max" else min(n_synthetic, n_real)
    if pairing == "index":
        positions = np.arange(length)
        return positions % n_synthetic, positions % n_real
    rng = np.random.default_rng([seed, epoch])
    return _tiled_permutation(rng, n_synthetic, length), _tiled_permutation(rng, n_real, length)


class PairSampler(DistributedSampler):
    """Yields the :class:`PairKey` of this rank's items of each epoch, in order.

    The epoch's order (:func:`epoch_order`) is split over ``num_replicas`` ranks by position
    (rank ``r`` takes positions ``r, r + R, ...``; the order is wrapped around so that every rank
    gets the same number). It is a ``DistributedSampler`` so that Lightning leaves the sharding
    to it instead of wrapping it in one of its own.

    Args:
        n_synthetic, n_real: sizes of the two training sets.
        batch_size: the DataLoader's batch size (to skip whole batches on resume).
        seed: seed of the order.
        pairing, epoch_length: see :func:`epoch_order`.
        num_replicas, rank: DDP world size and this process's rank.
    """

    def __init__(
        self,
        n_synthetic: int,
        n_real: int,
        batch_size: int,
        *,
        seed: int = 0,
        pairing: Pairing = "random",
        epoch_length: EpochLength = "max",
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        # DistributedSampler's own fields (dataset, shuffle, ...) are not used; they are set for
        # code that inspects samplers (Lightning does).
        if n_synthetic < 1 or n_real < 1:
            raise ValueError(f"both training sets need images, got {n_synthetic} synthetic and {n_real} real")
        self.n_synthetic, self.n_real = n_synthetic, n_real
        self.batch_size = batch_size
        self.pairing, self.epoch_length = pairing, epoch_length
        epoch_order(1, 1, 0, 0, pairing, epoch_length)  # validates both names
        self.length = max(n_synthetic, n_real) if epoch_length == "max" else min(n_synthetic, n_real)
        super().__init__(range(self.length), num_replicas=num_replicas, rank=rank, shuffle=pairing == "random",
                         seed=seed, drop_last=False)
        self.num_samples = math.ceil(self.length / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self._skip: tuple[int, int] | None = None  # (epoch, items of this rank to skip in it)

    def fingerprint(self) -> dict[str, Any]:
        """What the order depends on: a resume is exact only if these are unchanged."""
        return {"n_synthetic": self.n_synthetic, "n_real": self.n_real, "batch_size": self.batch_size,
                "seed": self.seed, "pairing": self.pairing, "epoch_length": self.epoch_length,
                "num_replicas": self.num_replicas}

    def resume(self, epoch: int, batches_done: int) -> None:
        """Start at ``epoch`` after its first ``batches_done`` batches (every later ``iter`` of
        that epoch skips them too, until :meth:`set_epoch` moves to another epoch)."""
        self.epoch = epoch
        self._skip = (epoch, batches_done * self.batch_size) if batches_done else None

    def set_epoch(self, epoch: int) -> None:
        if self._skip is not None and self._skip[0] != epoch:
            self._skip = None
        self.epoch = epoch

    def keys(self, epoch: int) -> list[PairKey]:
        """This rank's keys of ``epoch``, from the start of the epoch."""
        synthetic, real = epoch_order(self.n_synthetic, self.n_real, epoch, self.seed, self.pairing, self.epoch_length)
        positions = np.arange(self.total_size) % self.length
        mine = positions[self.rank :: self.num_replicas]
        return [PairKey(epoch, int(p), int(synthetic[p]), int(real[p])) for p in mine]

    def __iter__(self) -> Iterator[PairKey]:
        keys = self.keys(self.epoch)
        start = self._skip[1] if self._skip is not None and self._skip[0] == self.epoch else 0
        return iter(keys[start:])

    def __len__(self) -> int:
        return self.num_samples


class ResumableDataLoader(DataLoader):
    """A DataLoader over a :class:`PairSampler` that records its place in the epoch in Lightning checkpoints.

    ``progress`` (set by the data module) returns ``(epoch, batches_done, epoch_finished)`` from
    the trainer's own loop counters at the moment a checkpoint is written.
    """

    progress: Callable[[], tuple[int, int, bool]] | None = None

    def state_dict(self) -> dict[str, Any]:
        if self.progress is None:
            return {}
        epoch, batches_done, finished = self.progress()
        return {"epoch": int(epoch), "batches_done": int(batches_done), "epoch_finished": bool(finished),
                "order": self.sampler.fingerprint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        sampler: PairSampler = self.sampler  # type: ignore[assignment]
        if state.get("order") != sampler.fingerprint():
            warnings.warn(
                "the training data or its order changed since the checkpoint was written "
                f"({state.get('order')} then, {sampler.fingerprint()} now): the interrupted epoch starts from "
                "its beginning, so the resumed run is not identical to an uninterrupted one",
                stacklevel=2,
            )
            sampler.resume(int(state["epoch"]) + int(state["epoch_finished"]), 0)
            return
        if state["epoch_finished"]:
            sampler.resume(int(state["epoch"]) + 1, 0)
        else:
            sampler.resume(int(state["epoch"]), int(state["batches_done"]))
