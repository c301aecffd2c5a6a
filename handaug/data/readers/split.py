"""The H-GAN reference code's fixed test / validation / training split of a dataset's frames.

The reference lists a dataset's frames, shuffles the list once, and cuts it: the first
``test_size`` frames (2,000) are the test set, the next ``val_size`` (1,000) the validation set,
the rest the training set. Its shuffle is Python's ``random.shuffle`` without a seed, so its
exact split cannot be reproduced; :func:`fixed_split` shuffles with ``seed`` instead (or keeps
the reader's sorted order when ``seed`` is ``None``) and cuts the same way.

>>> fixed_split(list("abcdefgh"), "val", test_size=3, val_size=2, seed=None)
['d', 'e']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from handaug.arguments import check_int

__all__ = ["SPLITS", "check_split_arguments", "fixed_split"]

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
#: The reference's sizes (``--test_size`` and ``--valid_size`` of its data module).
REFERENCE_TEST_SIZE = 2000
REFERENCE_VAL_SIZE = 1000

T = TypeVar("T")


def check_split_arguments(split: str | None, test_size: int, val_size: int, seed: int | None) -> None:
    """Raise a ``ValueError`` naming the argument unless they describe a split (``split=None``: no split)."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    check_int(test_size, "test_size", 0)
    check_int(val_size, "val_size", 0)
    if seed is not None:
        check_int(seed, "split_seed", 0)


def fixed_split(
    items: Sequence[T],
    split: str | None,
    *,
    test_size: int = REFERENCE_TEST_SIZE,
    val_size: int = REFERENCE_VAL_SIZE,
    seed: int | None = 0,
    what: str = "dataset",
) -> list[T]:
    """The ``split`` part of ``items``: the first ``test_size`` of a shuffled order are ``"test"``,
    the next ``val_size`` ``"val"``, the rest ``"train"``; ``split=None`` returns every item.

    Args:
        items: the frames in the reader's (sorted) order.
        split: ``"train"``, ``"val"``, ``"test"`` or ``None``.
        test_size, val_size: sizes of the test and validation parts (the reference: 2,000 and 1,000).
        seed: seed of the one shuffle before cutting (numpy's ``default_rng``); ``None`` keeps
            the order of ``items``. The same items and seed always give the same split.
        what: the dataset, for messages.

    Returns the chosen items in the shuffled order. A part smaller than asked (too few frames)
    is logged at WARNING level.

    Raises:
        ValueError: a bad argument, or the chosen part is empty.
    """
    check_split_arguments(split, test_size, val_size, seed)
    items = list(items)
    if split is None:
        return items
    order = np.arange(len(items)) if seed is None else np.random.default_rng(seed).permutation(len(items))
    bounds = {"test": (0, test_size), "val": (test_size, test_size + val_size), "train": (test_size + val_size, len(items))}
    start, stop = bounds[split]
    chosen = [items[i] for i in order[start:stop]]
    if not chosen:
        raise ValueError(
            f"the {split!r} split of {what} is empty: it has {len(items)} frames, and the first {test_size} (test_size) "
            f"and next {val_size} (val_size) of them are the test and validation sets"
        )
    if split != "train" and len(chosen) < stop - start:
        log.warning("the %r split of %s has %d frames, fewer than the %d asked for", split, what, len(chosen), stop - start)
    return chosen
