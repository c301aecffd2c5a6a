"""The two crossings between host and device that the GPU path allows itself, in one place.

A read of device memory by the host (``.item()``, ``bool(t)``, ``.tolist()``, ``nonzero``, a
boolean-mask index) makes the CPU wait until the GPU has finished everything queued before it:
inside a user's training loop that is the previous step's backward pass, and the GPU then idles
while the CPU queues the next work. :class:`handaug.SynthToReal` reads the device at most once per
call, through :func:`to_host`, and only where a shape depends on the data (the hand-crop window
sizes). Index tensors built on the host go the other way through :func:`to_device`, from pinned
memory and without waiting. Tests count the calls of :func:`to_host` and the aten operations that
synchronise, so a new hidden sync in the hot path fails on a machine without a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def to_host(tensor: torch.Tensor) -> np.ndarray:
    """``tensor`` as a numpy array on the host: one synchronising copy when it lives on a GPU.

    The only place where handaug's translation path waits for the device (see the module docstring).
    """
    return tensor.detach().to("cpu").numpy()


def to_device(values: Sequence[int] | np.ndarray, device: torch.device) -> torch.Tensor:
    """An int64 tensor of ``values`` on ``device``, copied from pinned memory without waiting for the GPU."""
    host = torch.as_tensor(np.asarray(values, dtype=np.int64))
    if device.type == "cpu":
        return host
    if device.type == "cuda" and torch.cuda.is_available():
        host = host.pin_memory()
    return host.to(device, non_blocking=True)
