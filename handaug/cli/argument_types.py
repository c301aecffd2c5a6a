"""argparse ``type=`` converters shared by handaug's command-line tools.

Each converter turns one command-line word into a value or raises
:class:`argparse.ArgumentTypeError`, which argparse prints as one usage line naming the option
(``error: argument --depth: expected an integer in [1, 8], got 60``) with exit status 2. Sizes
that allocate memory (image sides, network widths, batch sizes) are bounded here, so a typo is
refused before anything is built instead of ending in a memory error.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any

import torch

from handaug.arguments import device_problem, is_integer

#: Largest image side a command line accepts (images, crops, procedural hands): 4096 px.
MAX_IMAGE_SIDE = 4096
#: Smallest image or crop side a command line accepts: the networks pool and stride down by up to 16.
MIN_IMAGE_SIDE = 16
#: Largest batch a command line accepts.
MAX_BATCH_SIZE = 4096
#: Seeds are 32-bit (NumPy's limit; torch and Python take them too).
MAX_SEED = 2**32 - 1
#: Most CPU threads a command line may ask torch for.
MAX_THREADS = 1024
#: Options of dataset readers that are image sides, bounded like ``--image-size`` in ``--*-kwargs``.
IMAGE_SIDE_KEYS: tuple[str, ...] = ("image_size",)


def positive_int(text: str) -> int:
    """``text`` as an integer ≥ 1; anything else is argparse's usage error naming the option."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """A converter of ``text`` to an integer in ``[low, high]`` (both included).

    >>> bounded_int(1, 8)("3")
    3
    """

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}], got {_short(text)}")
        return value

    return convert


def bounded_float(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """A converter of ``text`` to a finite number in the interval ``low``..``high`` (``*_open``: that end excluded)."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        inside = math.isfinite(value) and (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
        if not inside:
            raise argparse.ArgumentTypeError(f"expected a number in {interval}, got {_short(text)}")
        return value

    return convert


#: An image side or crop: an integer in [MIN_IMAGE_SIDE, MAX_IMAGE_SIDE].
image_side = bounded_int(MIN_IMAGE_SIDE, MAX_IMAGE_SIDE)
#: A batch size: an integer in [1, MAX_BATCH_SIZE].
batch_size = bounded_int(1, MAX_BATCH_SIZE)
#: A seed: an integer in [0, MAX_SEED].
seed = bounded_int(0, MAX_SEED)
#: A number of CPU threads: an integer in [1, MAX_THREADS].
threads = bounded_int(1, MAX_THREADS)


def torch_device(text: str) -> str:
    """``text`` if it names a torch device this process can compute on now (``cpu``, ``cuda``,
    ``cuda:N`` with N below the number of CUDA devices, ``mps``, ...; see
    :func:`handaug.arguments.device_problem`); not ``meta``, which holds no data."""
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a torch device such as cpu, cuda or cuda:0, got {_short(text)}") from None
    problem = device_problem(device)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{_short(text)} {problem}; use cpu or cuda")
    return text


def reader_kwargs(text: str) -> dict[str, Any]:
    """``text`` as a JSON object of dataset-reader options; an image side among them (``image_size``)
    must be an integer in ``[MIN_IMAGE_SIDE, MAX_IMAGE_SIDE]``, like ``--image-size``."""
    value = json_object(text)
    for key in IMAGE_SIDE_KEYS:
        side = value.get(key)
        if key in value and (not is_integer(side) or not MIN_IMAGE_SIDE <= side <= MAX_IMAGE_SIDE):
            raise argparse.ArgumentTypeError(
                f"{key!r} must be an integer in [{MIN_IMAGE_SIDE}, {MAX_IMAGE_SIDE}], got {_short(json.dumps(side))}"
            )
    return value


def json_object(text: str) -> dict[str, Any]:
    """``text`` as a JSON object (the options of a reader, a data module, ...)."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {_short(text)}: {err}") from None
    except ValueError as err:  # an integer of thousands of digits
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {_short(text)}: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {_short(text)}")
    return value


def _short(text: str, limit: int = 80) -> str:
    """``text`` for a message: one line, at most ``limit`` characters."""
    shown = text if text.isprintable() else repr(text)
    return shown if len(shown) <= limit else shown[:limit] + "…"
