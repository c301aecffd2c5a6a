"""Checks of user-supplied scalar arguments (numbers, flags, seeds, devices, named choices), with one rule for all.

The rule, the same at every public entry point (the core, the readers and the adapters):

- **integers**: a Python ``int`` or a numpy integer scalar (``np.int64(3)``, ``np.uint8(3)``, ...);
- **real numbers**: a Python ``int`` or ``float``, or a numpy integer or floating scalar
  (``np.float32(0.5)``); NaN and ±inf are refused;
- **bools are not numbers**: ``True``, ``False`` and ``np.bool_`` are refused wherever an integer
  or a real number is expected (although Python counts ``bool`` as an ``int``);
- **flags**: ``True``/``False`` or a ``np.bool_`` only; ``0``, ``1`` and strings are refused;
- strings are never parsed (``"0.5"`` is not a number);
- **choices**: one of a fixed tuple of names (:func:`check_choice`).

Each checker returns the plain Python value (``int``, ``float``, ``bool``), so a numpy scalar
never leaks into stored attributes, ``repr``\\ s or JSON. A refused value raises ``ValueError``
whose message names the argument, says what was expected and shows the value given (its
``repr``), e.g. ``p must be a probability in [0, 1], got True``. The ``is_*`` predicates state
the rule for callers that word their own message.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

__all__ = [
    "check_choice",
    "check_device",
    "check_flag",
    "check_int",
    "check_odd",
    "check_optional_flag",
    "check_probability",
    "check_real",
    "check_seed",
    "device_problem",
    "is_flag",
    "is_integer",
    "is_real",
]


def is_flag(value: object) -> bool:
    """Whether ``value`` is a flag: ``True``/``False`` or a numpy bool."""
    return isinstance(value, (bool, np.bool_))


def is_integer(value: object) -> bool:
    """Whether ``value`` is an integer: a Python or numpy integer (numpy registers its scalars with
    :mod:`numbers`), not a bool."""
    return isinstance(value, numbers.Integral) and not is_flag(value)


def is_real(value: object) -> bool:
    """Whether ``value`` is a real number: a Python or numpy integer or floating scalar, not a bool
    (NaN and infinities included: :func:`check_real` refuses them)."""
    return isinstance(value, numbers.Real) and not is_flag(value)


def _integer_kind(low: int | None, high: int | None) -> str:
    if low is None and high is None:
        return "an integer"
    if high is None:
        return "a non-negative integer" if low == 0 else f"an integer >= {low}"
    if low is None:
        return f"an integer <= {high}"
    return f"an integer in [{low}, {high}]"


def check_int(value: object, argument: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer (Python or numpy, not bool) in ``[low, high]``
    (either bound may be ``None``: unbounded on that side).

    Raises:
        ValueError: naming ``argument``, e.g. ``"test_size must be a non-negative integer, got -1"``
            or ``"hue_center must be an integer in [0, 179], got 200"``.
    """
    if is_integer(value):
        number = int(value)  # type: ignore[call-overload]
        if (low is None or number >= low) and (high is None or number <= high):
            return number
    raise ValueError(f"{argument} must be {_integer_kind(low, high)}, got {value!r}")


def check_odd(value: object, argument: str, minimum: int) -> int:
    """``value`` as an ``int`` if it is an odd integer (Python or numpy, not bool) ``>= minimum``.

    Raises:
        ValueError: naming ``argument``: ``"<argument> must be an odd integer >= <minimum>, got ..."``.
    """
    if is_integer(value):
        number = int(value)  # type: ignore[call-overload]
        if number >= minimum and number % 2 == 1:
            return number
    raise ValueError(f"{argument} must be an odd integer >= {minimum}, got {value!r}")


def _finite_float(value: object) -> float | None:
    """``value`` as a finite float if it is a real number (see :func:`is_real`), else ``None``."""
    if not is_real(value):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a float
        return None
    return number if math.isfinite(number) else None


def _real_kind(low: float, high: float, open_high: bool) -> str:
    if open_high:
        return f"a number in [{low:g}, {high:g})"
    if high == math.inf and low == 0:
        return "a non-negative number"
    if high == math.inf and low != -math.inf:
        return f"a number >= {low:g}"
    return f"a number in [{low:g}, {high:g}]"


def check_real(value: object, argument: str, low: float, high: float, *, open_high: bool = False) -> float:
    """``value`` as a ``float`` if it is a finite real number (Python or numpy scalar, not bool) in ``[low, high]``
    (``high = math.inf``: unbounded above; infinities themselves are still refused), or in
    ``[low, high)`` with ``open_high=True`` (a momentum, a dropout probability).

    Raises:
        ValueError: naming ``argument`` for a bool, a non-number, NaN, an infinity or a value out of
            range: ``"<argument> must be a number in [<low>, <high>], got ..."``, or with
            ``high = math.inf`` ``"... must be a non-negative number, got ..."`` (``low = 0``) or
            ``"... must be a number >= <low>, got ..."``; with ``open_high=True``
            ``"... must be a number in [<low>, <high>), got ..."``.
    """
    number = _finite_float(value)
    if number is None or not low <= number <= high or (open_high and number == high):
        raise ValueError(f"{argument} must be {_real_kind(low, high, open_high)}, got {value!r}")
    return number


def check_probability(value: object, argument: str = "p") -> float:
    """``value`` as a ``float`` if it is a probability: a real number (Python or numpy, not bool or NaN) in ``[0, 1]``.

    Raises:
        ValueError: naming ``argument``: ``"<argument> must be a probability in [0, 1], got ..."``.
    """
    number = _finite_float(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise ValueError(f"{argument} must be a probability in [0, 1], got {value!r}")
    return number


def check_choice(value: object, argument: str, choices: tuple[str, ...]) -> str:
    """``value`` as a plain ``str`` if it is one of ``choices`` (compared as strings; a non-string is refused).

    Raises:
        ValueError: naming ``argument``: ``"<argument> must be one of (<choices>), got ..."``.
    """
    if isinstance(value, str) and value in choices:
        return str(value)
    raise ValueError(f"{argument} must be one of {choices}, got {value!r}")


def check_flag(value: object, argument: str) -> bool:
    """``value`` as a ``bool`` if it is ``True`` or ``False`` (numpy bools too; not ``0``/``1``).

    Raises:
        ValueError: naming ``argument``: ``"<argument> must be True or False, got ..."``.
    """
    if not is_flag(value):
        raise ValueError(f"{argument} must be True or False, got {value!r}")
    return bool(value)


def check_optional_flag(value: object, argument: str, none_means: str) -> bool | None:
    """``None``, or ``value`` as a ``bool`` if it is ``True`` or ``False`` (numpy bools too).

    ``none_means`` says what ``None`` does, for the message.

    Raises:
        ValueError: naming ``argument``: ``"<argument> must be True, False or None (<none_means>), got ..."``.
    """
    if value is None:
        return None
    if not is_flag(value):
        raise ValueError(f"{argument} must be True, False or None ({none_means}), got {value!r}")
    return bool(value)


def check_seed(value: object, argument: str = "seed") -> int | None:
    """``None``, or ``value`` as an ``int`` if it is an integer (Python or numpy, not bool; any sign).

    Raises:
        ValueError: naming ``argument``: ``"<argument> must be an integer (or None), got ..."``.
    """
    if value is not None and not is_integer(value):
        raise ValueError(f"{argument} must be an integer (or None), got {value!r}")
    return None if value is None else int(value)  # type: ignore[call-overload]


def device_problem(device: torch.device) -> str | None:
    """Why this process cannot compute on ``device`` now, as a phrase that follows the device's name
    (``"is not available: this process sees 0 CUDA device(s)"``), or ``None`` if it can.

    ``meta`` holds no data; CUDA needs a device with that index; another backend (MPS, XPU, ...)
    must report itself available.
    """
    if device.type == "cpu":
        return None
    if device.type == "meta":
        return "holds no data, so nothing can be computed there"
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index is not None and device.index >= count):
            return f"is not available: this process sees {count} CUDA device(s)"
        return None
    backend = getattr(torch.backends, device.type, None) if device.type == "mps" else getattr(torch, device.type, None)
    available = getattr(backend, "is_available", None)
    return None if available is not None and available() else "is not available in this process"


def check_device(device: object, argument: str = "device") -> torch.device | None:
    """``device`` as a ``torch.device`` that this process can run on now, or ``None``.

    Raises:
        ValueError: naming ``argument``: not a device, or one this process cannot compute on
            (:func:`device_problem`: the ``meta`` device, CUDA absent or index out of range,
            MPS/XPU unavailable).
    """
    if device is None:
        return None
    try:
        parsed = torch.device(device)  # type: ignore[arg-type]
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(
            f"{argument} must be a torch device such as 'cpu' or 'cuda:0' (or None), got {device!r}: {error}"
        ) from None
    problem = device_problem(parsed)
    if problem is not None:
        raise ValueError(f"{argument}={device!r} {problem}; use 'cpu', 'cuda' or None")
    return parsed
