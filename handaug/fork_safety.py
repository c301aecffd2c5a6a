"""Processes forked after torch has used its CPU thread pool run torch on one thread, so they cannot hang.

The cause: PyTorch's Linux wheels run intra-op parallelism (convolutions, matrix products,
element-wise operations on large tensors) on GNU OpenMP (``libgomp``). libgomp starts its worker
threads at the first parallel region and is not fork-safe: a child forked after that inherits
libgomp's record of the thread team but not the threads, and its first parallel region waits for
them forever. Any operation big enough to run in parallel hangs, not only convolutions, and
oneDNN (MKL-DNN) convolutions hang the same way because they run on the same OpenMP runtime.
Setting one thread in the child avoids every parallel region, which is what PyTorch's own
DataLoader does in its workers; a plain ``multiprocessing.Pool`` with the fork start method does
not, and a ``SynthToReal`` pickled into such a pool hung at its first image.

The fix: at import, handaug registers an :func:`os.register_at_fork` hook, once, that sets torch's
intra-op threads to 1 in every forked child, when torch runs on OpenMP and the parent had more
than one thread. The parent keeps its threads. A child that raises its thread count again
(``torch.set_num_threads(n)``) brings the hang back if its parent had used the pool; a child
that needs several threads must be started with ``spawn`` or ``forkserver``.
"""

from __future__ import annotations

import os

import torch

_registered = False


def one_thread_in_forked_child() -> None:
    """The after-fork hook: one intra-op thread in the child (a no-op if it already has one)."""
    if torch.get_num_threads() > 1:
        torch.set_num_threads(1)


def register_fork_handler() -> bool:
    """Register :func:`one_thread_in_forked_child` to run in every forked child, once per process.

    Returns ``True`` if it was registered by this call; ``False`` if it already was, or if the
    platform has no ``fork`` or torch does not run on OpenMP (then nothing needs it).
    """
    global _registered
    if _registered or not hasattr(os, "register_at_fork") or not torch.backends.openmp.is_available():
        return False
    os.register_at_fork(after_in_child=one_thread_in_forked_child)
    _registered = True
    return True


class CUDAInForkedProcessError(RuntimeError):
    """CUDA was asked for in a process forked after the parent used CUDA (e.g. a forked DataLoader worker).

    CUDA does not survive ``fork``. Raised by :class:`handaug.SynthToReal` and the adapters of
    :mod:`handaug.integrations` instead of torch's ``Cannot re-initialize CUDA in forked
    subprocess``, with the ways that work in its message.
    """


def in_bad_fork() -> bool:
    """torch's own record that CUDA was initialised before this process was forked (never touches CUDA)."""
    predicate = getattr(torch.cuda, "_is_in_bad_fork", None)
    return bool(predicate()) if predicate is not None else False


def refuse_cuda_in_bad_fork(owner: str, device: object, *, inherited: bool = False, batched_path: str | None = None) -> None:
    """Raise :class:`CUDAInForkedProcessError` naming ``owner`` if this process cannot use CUDA because of a fork.

    ``inherited``: the caller knows it was inherited through ``fork`` (an adapter records the
    process that built it), which refuses CUDA even before torch marks the process.
    ``batched_path``: how that caller translates the collated batch on the GPU instead.
    """
    if not (inherited or in_bad_fork()):
        return
    info = torch.utils.data.get_worker_info()
    where = f"DataLoader worker {info.id}, a forked process" if info is not None else "a forked process"
    batched = batched_path or (
        "translate the collated batch on the GPU in the main process "
        "(handaug.integrations.batch.translate_batch, or call the transform on the GPU batch)"
    )
    raise CUDAInForkedProcessError(
        f"{owner}(device={str(device)!r}) cannot run on CUDA in {where}: CUDA does not work after fork. "
        "Use DataLoader(..., multiprocessing_context='spawn') (or 'forkserver'), "
        f"or device=None (or 'cpu') for the transform in workers, or {batched}"
    )
