"""One clear error, not torch's, when an adapter with ``device="cuda"`` runs in a forked process.

CUDA does not survive ``fork``: PyTorch refuses CUDA in a child forked after the parent used it
(``RuntimeError: Cannot re-initialize CUDA in forked subprocess``) and documents the fork start
method as unsupported for CUDA in subprocesses altogether. A ``DataLoader`` on Linux forks its
workers by default, so a per-sample pipeline whose ``SynthToReal`` adapter was built with
``device="cuda"`` used to die in the first worker with torch's message.

:class:`ForkGuard` detects the situation without touching CUDA in the child: it records the
process that built (or unpickled) the adapter, and at each call refuses a CUDA device when

- torch marks the process as a bad fork (``torch.cuda._is_in_bad_fork()``: CUDA was initialised
  in the parent before the fork), or
- the adapter was inherited through ``fork``: the current process id is not the recorded one.
  A ``spawn`` or ``forkserver`` worker unpickles its copy, which records that worker's own id.

It raises :class:`CUDAInForkedProcessError` (a ``RuntimeError``), whose message names the three
ways that work: ``multiprocessing_context="spawn"`` (or ``"forkserver"``) on the ``DataLoader``;
``device=None`` (or ``"cpu"``) for the transform in workers; or the batched GPU path of
:mod:`handaug.integrations.batch`. A ``DataLoader`` re-raises a worker's exception in the main
process with the same class, so ``except CUDAInForkedProcessError`` works there.
"""

from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["CUDAInForkedProcessError", "ForkGuard"]


from handaug.fork_safety import CUDAInForkedProcessError, refuse_cuda_in_bad_fork


class ForkGuard:
    """Refuses a CUDA ``device`` in a process forked from the one that built the adapter.

    Args:
        owner: how the adapter is named in the message, e.g. ``"handaug.integrations.torchvision.SynthToReal"``.
        device: the adapter's ``device`` (``None`` or a device string or ``torch.device``).
        batched_path: the sentence that tells how to translate the collated batch on the GPU
            instead (each adapter has its own).

    Pickling carries the arguments; unpickling records the unpickling process as the owner, so
    spawned and forkserver workers pass.
    """

    def __init__(self, owner: str, device: str | torch.device | None, batched_path: str) -> None:
        self.owner = owner
        self.device = None if device is None else str(device)
        self.batched_path = batched_path
        self.pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("pid", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.pid = os.getpid()

    @property
    def uses_cuda(self) -> bool:
        """Whether the adapter's generators run on a CUDA device."""
        return self.device is not None and torch.device(self.device).type == "cuda"

    def check(self) -> None:
        """Raise :class:`CUDAInForkedProcessError` if CUDA is requested in a forked process; else nothing.

        Reads only the process id, torch's bad-fork flag and the DataLoader worker info: it never
        initialises CUDA.
        """
        if self.uses_cuda:
            refuse_cuda_in_bad_fork(self.owner, self.device, inherited=os.getpid() != self.pid, batched_path=self.batched_path)
