"""Which reduced precision an inference device runs fast and well enough."""

from __future__ import annotations

from typing import Literal

import torch

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")

#: Bound on the difference of bf16 autocast from fp32 for ResNet generators, in [0, 1] units:
#: mean absolute error at most 1 uint8 level, maximum at most 8 levels of 255. Measured: the
#: demo checkpoint at 128 px, inside the hands, 0.07 levels mean and 1 level max; randomly
#: initialised ResNet-1..4 generators 0.4-0.6 mean and 4-6 max (the test's case).
BF16_TOLERANCE = {"mean": 1.0 / 255, "max": 8.0 / 255}


def cpu_supports_bf16() -> bool:
    """True on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX), where oneDNN runs bf16 convs fast."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``, or ``None`` for plain fp32.

    ``"auto"`` picks bf16 on CUDA devices that support it and on CPUs with native bf16, fp32
    elsewhere. ``"fp16"`` is only offered on CUDA.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError(f"precision='fp16' needs a CUDA device, got {device}")
        return torch.float16
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
    elif device.type == "cpu":
        supported = cpu_supports_bf16()
    else:
        supported = False
    if precision == "bf16":
        if not supported:
            raise ValueError(f"precision='bf16' is not supported on {device}; use 'fp32' or 'auto'")
        return torch.bfloat16
    return torch.bfloat16 if supported else None
