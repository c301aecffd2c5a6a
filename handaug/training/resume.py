"""What a killed ``handaug-train`` run resumes from: ``checkpoints/last.ckpt``, written often and atomically.

:class:`ResumeCheckpoint` writes Lightning's full training state (networks, optimisers, image
pools, RNG states, the loop counters and the place in the epoch; see
:mod:`handaug.data.pairing`) at the end of every epoch, and within an epoch every
``every_n_batches`` batches and/or every ``every_minutes`` minutes. Each write goes to a hidden
temporary file in the same folder (``.last.ckpt.<pid>.<random>.handaug-part``: a name no other
writer uses), is flushed to disk, and is renamed over ``last.ckpt``, so a ``kill -9`` at any
moment leaves the previous complete checkpoint or the new one, never a torn file. While it
trains, the run holds its folder's lock (:mod:`handaug.training.run_lock`): a second run in the
same folder is refused instead of overwriting this one's files. :func:`resolve_resume_path` turns ``--ckpt_path last`` / ``auto`` into a file, and refuses
to start a new run over an existing run's checkpoint unless asked to.
"""

from __future__ import annotations

import math
import os
import pickle
import stat
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from handaug.arguments import check_int, check_real
from handaug.atomic_files import temporary_name
from handaug.lightning_checkpoint import PICKLE_PROTO, ZIP_MAGIC
from handaug.training.run_lock import RunFolderLock
from handaug.untrusted_text import shown

LAST_CHECKPOINT = "last.ckpt"
CHECKPOINT_DIR = "checkpoints"
#: Suffix of the temporary files ``last.ckpt`` is written to before the rename.
TEMP_SUFFIX = ".handaug-part"


def last_checkpoint_path(root: str | os.PathLike[str]) -> Path:
    """``<root>/checkpoints/last.ckpt``: where a run under ``root`` keeps its resume checkpoint."""
    return Path(root) / CHECKPOINT_DIR / LAST_CHECKPOINT


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ResumeCheckpoint(L.Callback):
    """Keeps ``<dirpath>/last.ckpt`` current, atomically.

    Args:
        every_n_batches: also write after every this many training batches (each batch is one
            generator and one discriminator update); ``None`` or 0: not by count.
        every_minutes: also write when this many minutes have passed since the last write, checked
            after each batch; ``None`` or 0: not by time. Default 10: a killed run loses at most
            about ten minutes of work, plus the batch in flight.
        dirpath: the folder (default ``<trainer.default_root_dir>/checkpoints``).

    A write is also made at the end of every training epoch (after its validation). In DDP every
    rank takes part (Lightning gathers the state), rank 0 writes the file, and the decision to
    write by time is made on rank 0 and broadcast, so all ranks write at the same step.
    """

    def __init__(self, every_n_batches: int | None = None, every_minutes: float | None = 10.0, dirpath: str | None = None) -> None:
        super().__init__()
        self.every_n_batches = 0 if every_n_batches is None else check_int(every_n_batches, "every_n_batches", 0)
        self.every_seconds = 0.0 if every_minutes is None else check_real(every_minutes, "every_minutes", 0.0, math.inf) * 60.0
        self.dirpath = dirpath
        self._last_write = time.monotonic()
        self.writes = 0
        self._lock: RunFolderLock | None = None

    def path(self, trainer: L.Trainer) -> Path:
        """The file this callback keeps current for ``trainer``."""
        return Path(self.dirpath) / LAST_CHECKPOINT if self.dirpath else last_checkpoint_path(trainer.default_root_dir)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Rank 0 takes the run folder's lock for the fit (a no-op when ``handaug-train`` already holds it)
        and removes the temporary files of earlier, killed writers, which no one else can be writing now."""
        if stage != "fit" or not trainer.is_global_zero or self._lock is not None:
            return
        self._lock = RunFolderLock(trainer.default_root_dir).acquire()
        remove_stale_temporaries(self.path(trainer).parent)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_write = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.sanity_checking:
            return
        done = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        if done >= trainer.num_training_batches:
            return  # the epoch-end write follows, after validation
        due = bool(self.every_n_batches) and done % self.every_n_batches == 0
        if self.every_seconds and not due:
            due = time.monotonic() - self._last_write >= self.every_seconds
            if trainer.world_size > 1:
                due = bool(trainer.strategy.broadcast(due, src=0))
        if due:
            self.write(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer)

    def write(self, trainer: L.Trainer) -> Path:
        """Write the trainer's full state to ``last.ckpt`` now (every rank must call this)."""
        path = self.path(trainer)
        name = None
        if trainer.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
            # A name of this writer's own (process id and 16 random hex digits): no other process
            # writes or renames it. Rank 0 chooses it; every rank saves to the same name.
            name = temporary_name(f"{path.name}.{os.getpid()}", TEMP_SUFFIX)
        if trainer.world_size > 1:
            name = trainer.strategy.broadcast(name, src=0)
        tmp = path.with_name(str(name))
        try:
            trainer.save_checkpoint(tmp, weights_only=False)
            if trainer.is_global_zero:
                _fsync(tmp)
                os.replace(tmp, path)
                _fsync(path.parent)
        except BaseException:
            if trainer.is_global_zero:
                _remove_quietly(tmp)
            raise
        trainer.strategy.barrier("handaug-resume-checkpoint")
        self._last_write = time.monotonic()
        self.writes += 1
        return path


def _remove_quietly(path: Path) -> None:
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files (``.last.ckpt.*.handaug-part``, regular files only) that killed
    writers left in ``folder``; call it only while holding the run folder's lock. Returns what was removed."""
    removed = []
    if not folder.is_dir():
        return removed
    for candidate in folder.glob(f".{LAST_CHECKPOINT}.*{TEMP_SUFFIX.lstrip('.')}"):  # earlier versions' fixed name too
        _remove_quietly(candidate)
        removed.append(candidate)
    return removed


class ResumeError(ValueError):
    """``--ckpt_path`` cannot be honoured as asked (no checkpoint to resume, or one would be overwritten)."""


def resolve_resume_path(ckpt_path: str | None, root: str | os.PathLike[str], *, overwrite_run: bool = False) -> str | None:
    """The checkpoint file a run resumes from, or ``None`` for a new run.

    ``ckpt_path``: ``None`` (a new run), ``"last"`` (``<root>/checkpoints/last.ckpt``, which must
    exist), ``"auto"`` (that file if it exists, else a new run: for jobs that are simply started
    again after a preemption), or a path to a Lightning checkpoint (which must exist).

    Raises:
        ResumeError: ``"last"`` or a path that does not exist; a ``last.ckpt`` (or the path) that
            is a folder or another non-file; or a new run asked for in a folder that already
            holds a run's ``last.ckpt``, without ``overwrite_run``.
    """
    last = last_checkpoint_path(root)
    if os.path.lexists(last) and not last.is_file():
        raise ResumeError(
            f"{last} is {_what_it_is(last)}, not a checkpoint file: handaug-train keeps its resume checkpoint "
            "there; move it away, or choose another --trainer.default_root_dir"
        )
    if ckpt_path == "auto":
        if last.is_file():
            rank_zero_info(f"handaug-train: resuming from {last}")
            return str(last)
        rank_zero_info(f"handaug-train: no {last} yet, starting a new run")
        return None
    if ckpt_path == "last":
        if not last.is_file():
            raise ResumeError(
                f"--ckpt_path last: there is no checkpoint to resume at {last} (is --trainer.default_root_dir "
                "the folder of the run you mean?); use --ckpt_path auto to resume when there is one and "
                "start a new run otherwise"
            )
        return str(last)
    if ckpt_path is not None:
        if os.path.lexists(ckpt_path) and not Path(ckpt_path).is_file():
            raise ResumeError(f"--ckpt_path {ckpt_path!r} is {_what_it_is(Path(ckpt_path))}, not a checkpoint file")
        if not Path(ckpt_path).is_file():
            raise ResumeError(f"--ckpt_path {ckpt_path!r}: no such checkpoint file")
        return str(ckpt_path)
    if last.is_file() and not overwrite_run:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(last.stat().st_mtime))
        raise ResumeError(
            f"{last} (written {stamp}) holds an earlier run's checkpoint: resume it with --ckpt_path last, "
            "or start a new run over it with --overwrite_run true (its last.ckpt is then replaced at the new "
            "run's first checkpoint), or choose another --trainer.default_root_dir"
        )
    return None


def _what_it_is(path: Path) -> str:
    if path.is_dir():
        return "a folder"
    if path.is_symlink() and not path.exists():
        return "a symbolic link to nothing"
    return "not a regular file (a FIFO, socket or device?)"


#: Keys every Lightning checkpoint of handaug-train holds.
_REQUIRED_KEYS = ("state_dict", "optimizer_states", "loops", "epoch", "global_step")


def check_resume_checkpoint(path: str | os.PathLike[str], model: L.LightningModule) -> None:
    """Refuse, with one line, a checkpoint that ``Trainer.fit(ckpt_path=path)`` could not resume ``model`` from.

    Called before training starts, so that a damaged or foreign ``last.ckpt`` is an error at once
    instead of a long traceback (or, for a folder, a whole epoch of training and then a crash). The
    file is read as Lightning will read it, with ``torch.load(weights_only=True)`` (torch's
    restricted unpickler: tensors and plain containers only, nothing executed), memory-mapped.

    Raises:
        ResumeError: naming the file: not a regular file; not a torch zip checkpoint (a plain
            pickle, another format); truncated or corrupt; not a Lightning checkpoint; or its
            weights do not fit ``model`` (a tensor missing, unexpected or of another shape: a
            checkpoint of other ``--model.*`` options, or of another model).
    """
    path = Path(path)
    where = f"checkpoint {str(path)!r}"
    if not path.is_file():
        raise ResumeError(f"{where} is {_what_it_is(path) if os.path.lexists(path) else 'missing'}, not a checkpoint file")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith(ZIP_MAGIC):
        what = "a plain Python pickle" if head.startswith(PICKLE_PROTO) else "not a PyTorch zip file"
        raise ResumeError(
            f"{where} is {what}, not a checkpoint written by handaug-train (it is never unpickled); "
            "resume from the run's own last.ckpt, or start a new run with --overwrite_run true"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        raise ResumeError(
            f"{where} holds objects other than tensors and plain containers, which handaug-train never "
            "unpickles (they could run code): it was not written by handaug-train"
        ) from None
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a truncated, corrupt or hostile file
        raise ResumeError(
            f"{where} cannot be read (truncated or corrupt? written by another program?): "
            f"{type(err).__name__}: {shown(str(err).strip().splitlines()[0] if str(err).strip() else '', limit=200)}"
        ) from None
    missing_keys = [k for k in _REQUIRED_KEYS if not isinstance(data, dict) or k not in data]
    if missing_keys or not isinstance(data["state_dict"], dict):
        raise ResumeError(f"{where} is not a Lightning checkpoint of handaug-train: it has no {missing_keys[0] if missing_keys else 'state_dict'!r}")
    state, expected = data["state_dict"], model.state_dict()
    problem = None
    for name, tensor in state.items():
        if name not in expected:
            problem = f"it holds a tensor {shown(name)} that the model does not have"
        elif not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != tuple(expected[name].shape):
            shape = list(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            problem = f"tensor {shown(name)} is {shape} in the file, the model's is {list(expected[name].shape)}"
        if problem:
            break
    if problem is None:
        absent = [name for name in expected if name not in state]
        if absent:
            problem = f"it has no tensor {absent[0]!r}" + (f" (and {len(absent) - 1} more)" if len(absent) > 1 else "")
    if problem:
        raise ResumeError(
            f"{where} does not fit this model: {problem}; it was written by another model or other --model.* options "
            "(resume with the run's own config, or start a new run with --overwrite_run true)"
        )
