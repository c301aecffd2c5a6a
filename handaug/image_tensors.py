"""Checking and converting the image and mask tensors that users hand to ``SynthToReal``.

Accepted images: ``(B, 3, H, W)`` or ``(3, H, W)``; ``uint8`` in ``[0, 255]`` or floating point
in ``[0, 1]`` (values outside by more than :data:`FLOAT_TOLERANCE` are an error, smaller
overshoots from resampling are clamped). Masks: ``(B, 1, H, W)`` or ``(B, H, W)`` (``(1, H, W)``
or ``(H, W)`` for an unbatched image); ``bool``, ``uint8`` (non-zero is hand) or floating point
in ``[0, 1]`` (a soft alpha: 0 keeps the original pixel, 1 takes the translated one).
"""

from __future__ import annotations

import torch

#: How far a float image may leave [0, 1] (half a uint8 level) before it is called out of range.
FLOAT_TOLERANCE = 0.5 / 255


def check_images(images: object, argument: str = "images", *, check_values: bool = True) -> torch.Tensor:
    """Validate ``images`` and return it as a 4-D ``(B, 3, H, W)`` view (unbatched input gains B = 1).

    ``check_values=False`` skips the one check that reads the values (NaN and the range of float
    images), which on a GPU is a host synchronisation; shape and dtype are always checked.

    Raises:
        ValueError: not a tensor, wrong number of dimensions or channels, an unsupported dtype,
            an empty batch, NaN/inf, or float values outside ``[0, 1]``.
    """
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{argument} must be a torch.Tensor of shape (B, 3, H, W) or (3, H, W), got {type(images).__name__}")
    if images.ndim not in (3, 4):
        raise ValueError(f"{argument} must have shape (B, 3, H, W) or (3, H, W), got a {images.ndim}-D tensor of shape {tuple(images.shape)}")
    batch = images if images.ndim == 4 else images.unsqueeze(0)
    if batch.shape[1] != 3:
        raise ValueError(f"{argument} must have 3 (RGB) channels in dimension {images.ndim - 3}, got shape {tuple(images.shape)}")
    if batch.shape[-1] == 0 or batch.shape[-2] == 0:
        raise ValueError(f"{argument} has an empty spatial size {tuple(images.shape[-2:])}")
    if images.dtype == torch.uint8:
        return batch
    if not images.dtype.is_floating_point:
        raise ValueError(f"{argument} must be uint8 in [0, 255] or floating point in [0, 1], got dtype {images.dtype}")
    if check_values and batch.numel():
        lo, hi = torch.aminmax(batch)
        lo, hi = float(lo), float(hi)
        if not (lo >= -FLOAT_TOLERANCE and hi <= 1 + FLOAT_TOLERANCE):  # also catches NaN
            if not torch.isfinite(batch).all():
                raise ValueError(f"{argument} contains NaN or infinite values")
            raise ValueError(
                f"{argument} of dtype {images.dtype} must have values in [0, 1], got [{lo:.4g}, {hi:.4g}]"
                " (convert 0..255 floats to uint8 or divide them by 255)"
            )
    return batch


def check_mask(
    mask: object, images: torch.Tensor, unbatched: bool, argument: str = "mask", *, check_values: bool = True
) -> torch.Tensor:
    """Validate ``mask`` against the 4-D ``images`` and return it as ``(B, 1, H, W)`` float in ``[0, 1]``.

    ``check_values=False`` skips the NaN and range check of float masks (a host synchronisation on a GPU).

    Raises:
        ValueError: wrong type, shape or size, an unsupported dtype, NaN, or float values outside ``[0, 1]``.
    """
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{argument} must be a torch.Tensor, got {type(mask).__name__}")
    b, _, h, w = images.shape
    m = mask
    if unbatched and m.ndim in (2, 3):
        m = m.unsqueeze(0)
    if m.ndim == 3:
        m = m.unsqueeze(1)
    expected = "(1, H, W) or (H, W)" if unbatched else "(B, 1, H, W) or (B, H, W)"
    if m.ndim != 4 or m.shape[1] != 1:
        raise ValueError(f"{argument} must have shape {expected}, got {tuple(mask.shape)}")
    if m.shape[0] != b or m.shape[-2:] != (h, w):
        raise ValueError(
            f"{argument} of shape {tuple(mask.shape)} does not match the images: expected batch {b} and size {h}×{w}"
        )
    if m.dtype == torch.bool or m.dtype == torch.uint8:
        return (m != 0).to(torch.float32)
    if not m.dtype.is_floating_point:
        raise ValueError(f"{argument} must be bool, uint8 or floating point in [0, 1], got dtype {mask.dtype}")
    if check_values and m.numel():
        lo, hi = torch.aminmax(m)
        if not (float(lo) >= 0.0 and float(hi) <= 1.0):
            if not torch.isfinite(m).all():
                raise ValueError(f"{argument} contains NaN or infinite values")
            raise ValueError(f"{argument} of dtype {mask.dtype} must have values in [0, 1], got [{float(lo):.4g}, {float(hi):.4g}]")
    return m.to(torch.float32)


def to_model_range(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 ``[0, 255]`` or float ``[0, 1]`` → float ``[-1, 1]`` (the generators' input range)."""
    if images.dtype == torch.uint8:
        return images.to(dtype).div_(127.5).sub_(1.0)  # exactly as training normalises uint8 images
    return images.to(dtype).clamp(0.0, 1.0).mul(2.0).sub_(1.0)


def from_model_range(output: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Generator output in ``[-1, 1]`` → the dtype and range of ``like`` (uint8 rounded, float in ``[0, 1]``)."""
    unit = output.float().add(1.0).mul_(0.5).clamp_(0.0, 1.0)
    if like.dtype == torch.uint8:
        return unit.mul_(255.0).round_().to(torch.uint8)
    return unit.to(like.dtype)
