"""Checkpoints as translators: the one adapter from generator checkpoints to the callables the measures run.

A :data:`Translator` maps ``images (B, 3, H, W) uint8`` and ``masks (B, 1, H, W) bool`` (or
``None``) to ``(B, 3, H, W) uint8``; any callable of that form can stand in for a checkpoint in
every measure. :func:`checkpoint_translator` makes one from checkpoint files, running them
through :class:`handaug.SynthToReal` with every image translated (``p = 1``), in float32, with
seed 0 (which picks the pool member of each image when several checkpoints are given). What the
measures need differs only in how masks are used and in the output:

- ``mask_mode="composite"``: the masks go to ``SynthToReal``, which feeds the generator its
  training background outside the hand and pastes the translated hand over the original
  background (the background stays bit for bit): how ``SynthToReal`` is used with masks
  (:func:`handaug.metrics.eval_data.translate_set`);
- ``mask_mode="none"``: whole images are translated and masks are ignored;
- ``mask_mode="fill"``: pixels outside the mask become the checkpoint's training background (its
  ``background`` in ``[-1, 1]`` as a uint8 level, :func:`handaug.data.background.fill_uint8`;
  nothing if it records none), then the whole image is translated and nothing is composited:
  the generator's own output, silhouette included (:func:`handaug.metrics.shape.generator_view`);
- ``output="model_range"``: the images go to the generator as float (``uint8 / 255``) and come
  back as float32 in ``[-1, 1]``, never rounded to uint8 in between
  (:func:`handaug.metrics.hgan_protocol.raw_translator`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

from handaug.checkpoint import read_checkpoint
from handaug.data.background import fill_uint8
from handaug.synth_to_real import SynthToReal

__all__ = ["MASK_MODES", "OUTPUTS", "PathLike", "Translator", "checkpoint_translator"]

#: A translation: ``(images (B, 3, H, W) uint8, masks (B, 1, H, W) bool or None) -> (B, 3, H, W) uint8``.
Translator = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]
PathLike = str | os.PathLike[str]

#: How :func:`checkpoint_translator` uses the masks it is given.
MASK_MODES: tuple[str, ...] = ("composite", "none", "fill")
#: What :func:`checkpoint_translator`'s translators return: uint8 images, or float32 in ``[-1, 1]``.
OUTPUTS: tuple[str, ...] = ("uint8", "model_range")


def checkpoint_translator(
    ckpt: PathLike | Sequence[PathLike],
    *,
    mask_mode: str = "composite",
    output: str = "uint8",
    device: str | torch.device | None = None,
) -> Translator:
    """A :data:`Translator` running the checkpoint(s) ``ckpt`` through :class:`handaug.SynthToReal` (p = 1).

    Args:
        ckpt: a checkpoint path, or a list of paths (a pool: each image goes to one of them,
            drawn with seed 0); ``mask_mode="fill"`` takes one path.
        mask_mode: ``"composite"``, ``"none"`` or ``"fill"`` (see the module docstring).
        output: ``"uint8"`` (``(B, 3, H, W)`` uint8) or ``"model_range"`` (float32 in ``[-1, 1]``,
            from float input: no rounding to uint8 in between).
        device: where the generators run (``None``: the images' device).

    The translator's ``masks`` argument may be left out (``translate(images)``): then no mask is
    used, whatever ``mask_mode``.

    Raises:
        ValueError: an unknown ``mask_mode`` or ``output``, or several checkpoints with ``"fill"``.
    """
    if mask_mode not in MASK_MODES:
        raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    fill = None
    if mask_mode == "fill":
        if not isinstance(ckpt, (str, os.PathLike)):
            raise ValueError(
                f"ckpt must be one checkpoint path (the fill is one checkpoint's training background: one generator at a time), got {ckpt!r}"
            )
        background = read_checkpoint(ckpt).background
        fill = None if background is None else fill_uint8(background)
    composite = mask_mode == "composite"
    s2r = SynthToReal(ckpt, p=1.0, device=device, mask_mode="composite" if composite else "none", seed=0, precision="fp32")

    def translate(images: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        if masks is not None and fill is not None:
            images = torch.where(masks, images, torch.full_like(images, fill))
        if output == "model_range":
            images = images.float().div(255.0)  # float in, float in [0, 1] out
        out = s2r(images, mask=masks) if masks is not None and composite else s2r(images)
        return out.mul(2.0).sub(1.0) if output == "model_range" else out

    return translate
