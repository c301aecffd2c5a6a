"""Background vocabulary, in one table: the scene rendered behind a procedural hand, and the fill
that pixels outside a hand mask are set to.

Two different things are called "background":

- the **rendered** background of :class:`~handaug.data.procedural.ProceduralHands`, the scene
  behind the hand: one of :data:`RENDERED_BACKGROUNDS` (``"green_screen"``: exactly
  :data:`GREEN_SCREEN_RGB` in the synthetic style, a green cloth in the real one; ``"noise"``;
  ``"white"``);
- the **fill** outside a hand mask, set after loading so that a generator or a measure sees
  hands, not backgrounds: a name in :data:`FILLS`, or ``"keep"`` (:data:`KEEP`: no fill).
  Training (:func:`background_value`) also takes a number in ``[-1, 1]``; evaluation takes the
  names :data:`FILL_NAMES` only. Each name's value is in :data:`FILLS` for float images in
  ``[-1, 1]`` (``uint8 / 127.5 - 1``) and in :data:`FILLS_UINT8` for uint8 images;
  :func:`fill_uint8` converts any value in ``[-1, 1]`` the same way.

Standard library only (no albumentations, unlike :mod:`handaug.data.unpaired`, which uses it),
so that reading a training checkpoint's data settings needs only handaug's core requirements.
"""

from __future__ import annotations

__all__ = [
    "FILLS",
    "FILLS_UINT8",
    "FILL_NAMES",
    "GREEN_SCREEN_RGB",
    "KEEP",
    "RENDERED_BACKGROUNDS",
    "background_value",
    "fill_uint8",
]

RENDERED_BACKGROUNDS: tuple[str, ...] = ("green_screen", "noise", "white")
"""What :class:`~handaug.data.procedural.ProceduralHands` can render behind its hands."""

GREEN_SCREEN_RGB: tuple[int, int, int] = (14, 255, 14)
"""The flat chroma green of SynthHands (uint8 RGB), used as the synthetic style's green screen."""

KEEP = "keep"
"""The fill name that leaves the background as it is."""

FILLS: dict[str, float] = {"white": 1.0, "black": -1.0}
"""Named fills outside the hand mask, as values in ``[-1, 1]``."""


def fill_uint8(value: float) -> int:
    """A fill ``value`` in ``[-1, 1]`` as a uint8 level: ``round((value + 1) * 127.5)`` (1.0 → 255, -1.0 → 0)."""
    return int(round((float(value) + 1.0) * 127.5))


FILLS_UINT8: dict[str, int] = {name: fill_uint8(value) for name, value in FILLS.items()}
"""Named fills outside the hand mask, as uint8 levels: ``{"white": 255, "black": 0}``."""

FILL_NAMES: tuple[str, ...] = (*FILLS, KEEP)
"""Every fill by name: ``("white", "black", "keep")`` (what evaluation accepts)."""


def background_value(background: str | float) -> float | None:
    """The value in ``[-1, 1]`` that the background outside the hand mask is set to.

    ``"keep"`` (``None``: the background stays as it is), ``"white"`` (1.0, H-GAN's choice for
    SynthHands/RealHands), ``"black"`` (-1.0), or a number in ``[-1, 1]`` (also as a string).
    """
    if isinstance(background, str):
        if background == KEEP:
            return None
        if background in FILLS:
            return FILLS[background]
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
