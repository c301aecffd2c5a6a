"""The batched GPU path: per-sample pipelines decide in their workers, the collated batch is translated in one call.

A per-sample pipeline (albumentations, torchvision) runs in ``DataLoader`` workers on the CPU.
Built with ``defer=True``, its ``SynthToReal`` adapter does not run the generator there: it
draws exactly what it draws today (whether the sample is translated, with probability ``p``, and
with a pool of checkpoints which member) and records that *decision* in the sample, under
``"synth_to_real"`` (:data:`DECISION_KEY`). The image leaves the pipeline untranslated. After
collation and the transfer to the GPU, :func:`translate_batch` translates the chosen images of
the whole batch in one call::

    for batch in loader:                                        # dicts with image, mask, synth_to_real
        batch = {k: v.cuda(non_blocking=True) for k, v in batch.items()}
        batch["image"] = translate_batch(s2r, batch["image"], batch["synth_to_real"], batch["mask"])

A decision is an ``int64``: :data:`NOT_TRANSLATED` (``-1``) or the index ``k >= 0`` of the pool
member that translates the image (``0`` with one checkpoint). Collated, the decisions of a batch
are a ``(B,)`` tensor (``(B, N)`` for albumentations ``images`` stacks, one per image).

**What stays the same.** The decisions are drawn by the same code from the same random streams
as the per-sample path, so a seeded pipeline makes the same decisions with and without
``defer``; the translation of a chosen image is the same (the same generator, ``precision``,
``mask_mode``, ``hand_crop``), up to the rounding of the generator's convolutions at another
batch size (fp32 on the CPU: within 1e-6 for float images, which can put a rare uint8 pixel on
the neighbouring level; on a GPU, within the precision's tolerance). Keypoints, boxes, masks
and labels are untouched on both paths.

**What changes: the translation happens after the whole pipeline.** The batched path
translates the pipeline's *final* image, as if ``SynthToReal`` were the last transform. Placed
last, nothing changes. Every transform placed after it now runs *before* the translation:
photometric ones (colour jitter, blur, noise) then change the synthetic image that the
generator sees instead of the translated one, and geometric ones warp the image before it is
translated rather than after (the keypoints and masks are the same either way, since the
translation moves no pixel; the pixels are not). So put ``SynthToReal(defer=True)`` last in the
per-sample pipeline and run the photometric augmentations that followed it after
:func:`translate_batch`, on the GPU (e.g. ``kornia.augmentation``). With a hand mask, the
batched path composites with the collated (final) mask of each sample.

kornia's adapter is a batch augmentation already: its batched path is to call it on the
collated batch on the GPU (per-image ``p``, which means what ``p`` means per sample), or to pass
it here with decisions drawn elsewhere. :mod:`handaug.integrations.lightning` does either in a
Lightning training loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from handaug.arguments import is_integer
from handaug.image_tensors import check_images, check_mask
from handaug.synth_to_real import SynthToReal as CoreSynthToReal

__all__ = ["DECISION_KEY", "NOT_TRANSLATED", "core_translator", "translate_batch"]

#: The sample key under which deferred adapters record their decision (their ``decision_key`` default).
DECISION_KEY = "synth_to_real"
#: The decision of an image that is not translated; ``k >= 0`` translates with pool member ``k``.
NOT_TRANSLATED = -1

Channels = Literal["first", "last"]


def core_translator(s2r: Any) -> CoreSynthToReal:
    """The :class:`handaug.SynthToReal` behind ``s2r``: ``s2r`` itself, or an adapter's ``translator``.

    Raises:
        ValueError: ``s2r`` is neither.
    """
    if isinstance(s2r, CoreSynthToReal):
        return s2r
    translator = getattr(s2r, "translator", None)
    if isinstance(translator, CoreSynthToReal):
        return translator
    raise ValueError(
        f"s2r must be a handaug.SynthToReal or one of the handaug.integrations adapters, got {type(s2r).__name__}"
    )


def _decisions(decisions: object, lead: tuple[int, ...], pool: int) -> torch.Tensor:
    """``decisions`` checked against the images' leading shape ``lead`` → ``(prod(lead),)`` int64 on the CPU."""
    if is_integer(decisions):
        decisions = [decisions]
    if isinstance(decisions, np.ndarray) or (isinstance(decisions, Sequence) and not isinstance(decisions, str)):
        decisions = torch.as_tensor(np.asarray(decisions))
    if not isinstance(decisions, torch.Tensor):
        raise ValueError(f"decisions must be an integer tensor of shape {lead}, got {type(decisions).__name__}")
    if decisions.dtype == torch.bool or decisions.dtype.is_floating_point or decisions.dtype.is_complex:
        raise ValueError(
            f"decisions must be integers (-1: not translated, k >= 0: pool member k), got dtype {decisions.dtype}"
        )
    shape = tuple(decisions.shape)
    if shape == () and lead == (1,):
        shape, decisions = (1,), decisions.reshape(1)
    if shape != lead[: len(shape)] or not shape:
        raise ValueError(
            f"decisions of shape {shape} do not fit images whose leading shape is {lead}: expected {lead} "
            f"or a prefix of it (one decision per sample, shared by its images)"
        )
    d = decisions.to("cpu", torch.int64).reshape(*shape, *([1] * (len(lead) - len(shape)))).expand(lead).reshape(-1)
    if d.numel() and (int(d.min()) < NOT_TRANSLATED or int(d.max()) >= pool):
        raise ValueError(
            f"decisions must be -1 (not translated) or a pool member in [0, {pool - 1}], got values in "
            f"[{int(d.min())}, {int(d.max())}]: were they drawn by an adapter with another checkpoint pool?"
        )
    return d


def _masks(
    masks: object, images: torch.Tensor, lead: tuple[int, ...], channels: Channels, check_values: bool
) -> torch.Tensor:
    """``masks`` ``(*lead, H, W)`` or with a channel of 1 → checked ``(N, 1, H, W)`` float in ``[0, 1]``."""
    if not isinstance(masks, torch.Tensor):
        raise ValueError(f"masks must be a torch.Tensor, got {type(masks).__name__}")
    n, _, h, w = images.shape
    with_channel = (*lead, h, w, 1) if channels == "last" else (*lead, 1, h, w)
    if tuple(masks.shape) not in ((*lead, h, w), with_channel):
        raise ValueError(
            f"masks must have shape {(*lead, h, w)} or {with_channel} for images of leading shape {lead} "
            f"and size {h}×{w}, got {tuple(masks.shape)}"
        )
    return check_mask(masks.reshape(n, 1, h, w), images, unbatched=False, argument="masks", check_values=check_values)


def translate_batch(
    s2r: Any,
    images: torch.Tensor,
    decisions: object,
    masks: torch.Tensor | None = None,
    *,
    channels: Channels = "first",
) -> torch.Tensor:
    """Translate the images of a collated batch that their deferred decisions chose, in one call.

    Args:
        s2r: a :class:`handaug.SynthToReal` or a ``handaug.integrations`` adapter (its generators,
            ``device``, ``precision``, ``mask_mode`` and ``hand_crop`` are used; its ``p`` is not:
            the decisions were drawn already). Its checkpoint pool must be the one that drew the
            decisions.
        images: ``(*lead, 3, H, W)`` (``channels="first"``) or ``(*lead, H, W, 3)``
            (``channels="last"``, e.g. albumentations images collated without ``ToTensorV2``);
            ``uint8`` in ``[0, 255]`` or float in ``[0, 1]``; usually on the GPU. ``lead`` is
            ``(B,)`` for one image per sample.
        decisions: integers of shape ``lead`` or a prefix of it (e.g. ``(B,)`` for
            ``(B, T, 3, H, W)``: one per sample, shared by its images): ``-1`` not translated,
            ``k >= 0`` translated by pool member ``k``. A tensor, numpy array or list; they are read
            on the host, so decisions on a GPU cost one wait for the device (keep them on the CPU
            when you move the batch yourself).
        masks: hand masks ``(*lead, H, W)`` or ``(*lead, 1, H, W)`` (``(*lead, H, W, 1)`` with
            ``channels="last"``): bool, uint8 (non-zero is hand) or float alpha in ``[0, 1]``.
            With ``mask_mode="composite"`` only the hands change and the background stays
            bit-exact; ignored with ``mask_mode="none"``.
        channels: where the images' channel dimension is.

    Returns:
        The batch with the chosen images translated: same shape, dtype, device and layout as
        ``images`` (``images`` itself when no image is chosen). Images not chosen are copied bit
        for bit.

    Raises:
        ValueError: naming the argument: ``s2r`` not a SynthToReal, images or masks of another
            shape, dtype or range, decisions that are not integers, do not fit the images'
            leading shape, or name a pool member the checkpoint pool does not have.
    """
    core = core_translator(s2r)
    if channels not in ("first", "last"):
        raise ValueError(f"channels must be 'first' or 'last', got {channels!r}")
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor of shape (B, 3, H, W), got {type(images).__name__}")
    expected = "(*lead, H, W, 3)" if channels == "last" else "(*lead, 3, H, W)"
    channel_dim = -1 if channels == "last" else -3
    if images.ndim < 4 or images.shape[channel_dim] != 3:
        raise ValueError(
            f"images must have shape {expected} with 3 (RGB) channels (channels={channels!r}), got {tuple(images.shape)}"
        )
    lead = tuple(images.shape[:-3])
    flat = images.reshape(-1, *images.shape[-3:])
    if channels == "last":
        flat = flat.permute(0, 3, 1, 2)
    # Float values are checked as the core checks them (check_values=False skips that read of the device).
    check_values = bool(getattr(core, "check_values", True))
    batch = check_images(flat, "images", check_values=check_values)
    drawn = _decisions(decisions, lead, len(core.checkpoints))
    chosen, member = drawn != NOT_TRANSLATED, drawn.clamp(min=0)
    hand_masks = None
    if masks is not None and core.mask_mode == "composite":
        hand_masks = _masks(masks, batch, lead, channels, check_values)
    if not bool(chosen.any()):
        return images
    assignment = member if len(core.checkpoints) > 1 else None
    out = core.translate(batch, hand_masks, chosen=None if bool(chosen.all()) else chosen, assignment=assignment)
    if channels == "last":
        out = out.permute(0, 2, 3, 1)
    return out.reshape(images.shape)
