"""Progress bars (tqdm, on stderr) and seeding for the long steps of ``handaug-eval``."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")


def progress(iterable: Iterable[T], desc: str, *, total: int | None = None, enabled: bool = True) -> Iterator[T]:
    """Iterate over ``iterable`` with a tqdm bar labelled ``desc`` (no bar when ``enabled`` is false)."""
    if not enabled:
        yield from iterable
        return
    from tqdm.auto import tqdm  # deferred: tqdm is the [eval] extra

    with tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True) as bar:
        yield from bar


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global random generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def batches(n: int, batch_size: int) -> list[slice]:
    """``[0:batch_size], [batch_size:2*batch_size], ...`` covering ``range(n)``."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
