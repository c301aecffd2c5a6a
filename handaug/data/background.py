"""The value the background outside a hand mask is set to, by name or number.

Its own module (no albumentations, unlike :mod:`handaug.data.unpaired`, which uses it), so that
reading a training checkpoint's data settings needs only handaug's core requirements.
"""

from __future__ import annotations

BACKGROUNDS: dict[str, float] = {"white": 1.0, "black": -1.0}


def background_value(background: str | float) -> float | None:
    """The value in ``[-1, 1]`` that the background outside the hand mask is set to.

    ``"keep"`` (``None``: the background stays as it is), ``"white"`` (1.0, H-GAN's choice for
    SynthHands/RealHands), ``"black"`` (-1.0), or a number in ``[-1, 1]``.
    """
    if isinstance(background, str):
        if background == "keep":
            return None
        if background in BACKGROUNDS:
            return BACKGROUNDS[background]
        try:
            background = float(background)
        except ValueError:
            raise ValueError(
                f"background must be 'keep', 'white', 'black' or a number in [-1, 1], got {background!r}"
            ) from None
    value = float(background)
    if not -1.0 <= value <= 1.0:
        raise ValueError(f"background must be in [-1, 1] when given as a number, got {value}")
    return value
