"""``SynthToReal``: a trained H-GAN generator as an on-the-fly augmentation that keeps keypoints exact.

>>> s2r = SynthToReal("runs/hgan/export", p=0.7)
>>> out = s2r(images)                  # (B, 3, H, W) uint8 or float in [0, 1] -> same shape, dtype, device
>>> out = s2r(images, mask=hand_masks) # only the hand changes; the background stays bit-exact

The translation never moves pixels: the image size is unchanged (inputs are padded to the
generator's stride, and tiny ones to :attr:`SynthToReal.min_side`, inside and cropped back) and
the hand's silhouette is the one of the input, so 2D/3D keypoints, boxes, masks and labels stay
valid as they are.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from handaug import device_sync
from handaug.arguments import check_device, check_flag, check_optional_flag, check_probability, check_real, check_seed
from handaug.checkpoint import GeneratorCheckpoint, read_checkpoint
from handaug.fork_safety import refuse_cuda_in_bad_fork, register_fork_handler
from handaug.hand_crop import MAX_GROUPS, gather_windows, hand_window_groups, paste_windows_
from handaug.image_tensors import check_images, check_mask, from_model_range, to_model_range
from handaug.precision import PRECISIONS, Precision, resolve_precision
from handaug.space_to_depth import SpaceToDepthConv2d, fold_thin_convolutions

MaskMode = Literal["composite", "none"]
MASK_MODES: tuple[str, ...] = ("composite", "none")
PathLike = str | os.PathLike[str]

# Children forked after a translation (multiprocessing.Pool with fork) run torch on one thread
# instead of hanging in OpenMP; see handaug.fork_safety. Registered once, at ``import handaug``.
register_fork_handler()


#: Checkpoints in one pool at most: each is loaded on every device it runs on, in every worker.
MAX_POOL = 64


def _as_paths(ckpt: PathLike | Sequence[PathLike]) -> list[PathLike]:
    if isinstance(ckpt, (str, os.PathLike)):
        return [ckpt]
    if isinstance(ckpt, Sequence) and ckpt and all(isinstance(c, (str, os.PathLike)) for c in ckpt):
        if len(ckpt) > MAX_POOL:
            raise ValueError(f"ckpt holds {len(ckpt)} checkpoints; a pool holds at most {MAX_POOL}")
        return list(ckpt)
    raise ValueError(f"ckpt must be a checkpoint path or a non-empty list of paths, got {ckpt!r}")


def _pad_for_generator(x: torch.Tensor, stride: int, min_side: int) -> tuple[torch.Tensor, int, int]:
    """Pad ``x`` ``(N, C, H, W)`` at the bottom and right to multiples of ``stride`` of at least
    ``min_side``; returns the padded tensor and the original ``H``, ``W`` to crop back to."""
    h, w = x.shape[-2:]
    ph = max(-h % stride, min_side - h)
    pw = max(-w % stride, min_side - w)
    # Reflection looks most like the image near the border; it needs the pad smaller than the
    # side, so a tiny side (a 1×1 image, a 3-px strip) replicates its edge instead.
    mode_h, mode_w = ("reflect" if ph < h else "replicate"), ("reflect" if pw < w else "replicate")
    if mode_h == mode_w or not (ph and pw):  # the usual case: one copy
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode=mode_h if ph else mode_w)
        return x, h, w
    # Mixed modes: padding is separable, the height first, then the width (a 2-D reflection's corner).
    x = F.pad(x, (0, 0, 0, ph), mode=mode_h)
    return F.pad(x, (0, pw, 0, 0), mode=mode_w), h, w


class SynthToReal(nn.Module):
    """Translate synthetic hand images to the real domain with trained generators.

    Args:
        ckpt: a handaug generator checkpoint (directory or ``.safetensors`` file, or a Hugging
            Face Hub name ``hf://ORG/REPO[@REVISION][/SUBFOLDER]``, see :mod:`handaug.hub`), or a list of
            them: a pool from which one generator is drawn per image (e.g. checkpoints trained on
            different subjects or skin tones), for more appearance diversity than one CycleGAN.
        p: probability that an image is translated (a Python or numpy real number in ``[0, 1]``).
            An image not chosen is returned bit for bit.
        device: where the generators run; ``None`` runs them where the images are (CPU in
            DataLoader workers, the GPU for a GPU batch). Outputs are always on the input's device.
            A device this process cannot run on (``"meta"``, CUDA without a GPU) is an error here.
        mask_mode: with a ``mask``, ``"composite"`` pastes the translated hand over the original
            background (pixels outside the mask unchanged bit for bit, soft masks blend) and feeds
            the generator the background it was trained with; ``"none"`` translates whole images
            and ignores masks.
        seed: an integer (Python or numpy) seeding this transform's own random generator (per
            DataLoader worker, the worker id is mixed in so workers do not repeat each other).
            Without ``seed`` and ``generator``, torch's global RNG is used (seeded per worker by
            the DataLoader).
        generator: a ``torch.Generator`` (CPU) to draw from instead.
        precision: ``"auto"`` (bf16 autocast where the device runs it natively: recent CUDA GPUs
            and CPUs with AVX512-BF16/AMX; fp32 elsewhere), ``"fp32"``, ``"bf16"``, ``"fp16"``
            (CUDA). bf16 stays within :data:`handaug.precision.BF16_TOLERANCE` of fp32.
        hand_crop: with masks in composite mode, translate only a padded box around each hand
            instead of the whole frame: several times faster for small hands. The hands of a
            batch share at most :data:`handaug.hand_crop.MAX_GROUPS` (3) window sizes on a GPU
            (8 on the CPU, :attr:`HAND_CROP_GROUPS`), so a batch costs at most that many
            generator calls per pool member and one read of the device (see
            :mod:`handaug.hand_crop`). It is a different translation of the hand, not the
            full-frame one cut out: the generator sees less background, and instance
            normalisation computes its statistics over the window, whose size also depends on the
            other hands of the batch (a window is its group's largest). The README gives the measured differences.
            Use one mode consistently within a training set. A window is at least
            :attr:`min_side` a side (clipped to the image), so a stray mask pixel or a hand
            pushed almost out of frame is translated in a window of that size, never an error.
        crop_margin: box padding on each side, as a fraction of the hand box's larger side, a
            number in ``[0, 4]``; larger is closer to full-frame translation and slower.
        compile: ``torch.compile`` the translation (normalisation, padding, generator, output
            conversion and compositing as one graph). ``None`` (the default) compiles on CUDA
            devices and not elsewhere; ``False`` opts out. The first call on a new device costs
            the compilation (tens of seconds); a second batch size or image size adds one more
            compilation with dynamic shapes, after which sizes do not recompile. Compiled and eager
            calls agree within :data:`handaug.precision.BF16_TOLERANCE`.
        check_values: check float images (and float masks) for NaN and values outside ``[0, 1]``
            at every call. On a GPU that check reads the device, which makes the CPU wait for
            all queued GPU work (a host synchronisation); uint8 images and bool/uint8 masks need
            no value check, and ``check_values=False`` skips it for float ones (out-of-range
            values are then clamped, NaN propagates).

    Shapes and types:
        ``images``: ``(B, 3, H, W)`` or ``(3, H, W)``, uint8 in ``[0, 255]`` or float in ``[0, 1]``,
        any H and W ≥ 1. Inside, images are padded at the bottom and right to a multiple of the
        generator's stride and to at least :attr:`min_side` (16 px for the ResNet generators)
        a side, by reflection or, for sides too small to reflect, by repeating the edge pixels;
        the output is cropped back. A tiny image (1×1, a 3-px strip) is thus translated as the
        top-left corner of a larger, edge-repeated image: valid, but with little context.
        ``mask``: ``(B, 1, H, W)`` / ``(B, H, W)`` (``(1, H, W)`` / ``(H, W)`` when unbatched),
        bool, uint8 (non-zero is hand) or float alpha in ``[0, 1]``. The output has the shape,
        dtype and device of ``images``.

    The module holds no weights of its own: generators are loaded on first use in each process
    (so pickling it for DataLoader workers never copies weights) and run without gradients in
    eval mode. Calls from several threads are safe. Processes forked after a translation (e.g. a
    ``multiprocessing.Pool`` with the fork start method) run torch on one thread instead of
    hanging in OpenMP (see :mod:`handaug.fork_safety`).
    """

    #: Pixels per generator call on the CPU (larger batches are split; 2 images of 256², 8 of 128²).
    CPU_CHUNK_PIXELS: int = 1 << 17
    #: Smallest height and width a generator is run at (see :attr:`min_side`). ResNet generators
    #: need 8 px (their bottleneck, 4× smaller, must be 2 px for its reflection padding); 16
    #: leaves room for other generators' layers.
    MIN_SIDE: int = 16

    def __init__(
        self,
        ckpt: PathLike | Sequence[PathLike],
        p: float = 1.0,
        device: str | torch.device | None = None,
        mask_mode: MaskMode = "composite",
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        precision: Precision = "auto",
        hand_crop: bool = False,
        crop_margin: float = 0.15,
        compile: bool | None = None,
        check_values: bool = True,
    ) -> None:
        super().__init__()
        p = check_probability(p, "p")
        if mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        crop_margin = check_real(crop_margin, "crop_margin", 0.0, 4.0)
        hand_crop, check_values = check_flag(hand_crop, "hand_crop"), check_flag(check_values, "check_values")
        compile = check_optional_flag(compile, "compile", "compile on CUDA")
        seed = check_seed(seed)
        device = check_device(device)
        if seed is not None and generator is not None:
            raise ValueError("give either seed or generator, not both")
        if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
            raise ValueError(f"generator must be a CPU torch.Generator, got {generator!r}")
        self.ckpt_paths = [str(c) for c in _as_paths(ckpt)]
        self.checkpoints: list[GeneratorCheckpoint] = [read_checkpoint(c) for c in self.ckpt_paths]
        for c in self.checkpoints:
            if c.direction != "synthetic_to_real":
                raise ValueError(f"ckpt {str(c.path)!r} translates {c.direction}, expected synthetic_to_real")
        self.p = p
        self.device = device
        self.mask_mode = mask_mode
        self.seed = seed
        self.precision = precision
        self.hand_crop = hand_crop
        self.crop_margin = crop_margin
        self.compile = compile
        self.check_values = check_values
        self._user_generator = generator
        self._init_process_state()

    # ------------------------------------------------------------------ per-process state
    def _init_process_state(self) -> None:
        self._lock = threading.Lock()
        # Per device (its str): the pool's members, loaded on first use in each process.
        self._members: dict[str, list[_Member]] = {}
        self._rng: torch.Generator | None = self._user_generator
        self._rng_pid: int | None = os.getpid() if self._user_generator is not None else None

    def __getstate__(self) -> dict[str, Any]:
        # Pickled for DataLoader workers (spawn) or multiprocessing: never the weights, locks or RNG.
        state = self.__dict__.copy()
        for key in ("_lock", "_members", "_rng", "_rng_pid"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_process_state()

    def _random_generator(self) -> torch.Generator | None:
        if self._user_generator is not None:
            return self._user_generator
        if self.seed is None:
            return None
        if self._rng is None or self._rng_pid != os.getpid():
            info = torch.utils.data.get_worker_info()
            worker = info.id + 1 if info is not None else 0
            rng = torch.Generator()
            rng.manual_seed((int(self.seed) * 1_000_003 + worker) % (2**63 - 1))
            self._rng, self._rng_pid = rng, os.getpid()
        return self._rng

    #: Device types on which thin wide-kernel convolutions (a ResNet generator's first and last
    #: 7×7 layers) run as equivalent space-to-depth convolutions (see :mod:`handaug.space_to_depth`):
    #: 4× the channels for the GPU's matrix units, about 1.3× the arithmetic, so not on the CPU.
    FOLD_THIN_CONVS_ON: tuple[str, ...] = ("cuda",)
    #: Window sizes per batch in hand-crop mode, by device type (others:
    #: :data:`handaug.hand_crop.MAX_GROUPS`, 3). On a GPU each generator call is a sequence of
    #: kernel launches, so few calls pay; the CPU is bound by the pixels it translates, not by
    #: calls, so there more window sizes (tighter windows) pay: at batch 8 and 256 px, 45 % of
    #: the frame is translated with 8 sizes against 57 % with 3.
    HAND_CROP_GROUPS: dict[str, int] = {"cpu": 8}

    def compiles_on(self, device: torch.device | str) -> bool:
        """Whether calls on ``device`` run compiled: ``compile`` if given, else on CUDA devices only."""
        return self.compile if self.compile is not None else torch.device(device).type == "cuda"

    def _members_on(self, device: torch.device) -> list[_Member]:
        key = str(device)
        members = self._members.get(key)
        if members is not None:
            return members
        if torch.compiler.is_compiling():
            raise RuntimeError(
                f"the generators are not loaded on {key} yet and torch.compile cannot load them: call "
                f"the transform once without compiling on a batch on {key}, or call .generators({key!r}), first"
            )
        if device.type == "cuda":
            refuse_cuda_in_bad_fork("handaug.SynthToReal", device)
        with self._lock:
            members = self._members.get(key)
            if members is None:
                autocast = resolve_precision(self.precision, device)
                compiled = self.compiles_on(device)
                members = []
                for ckpt in self.checkpoints:
                    g = ckpt.build(device)
                    if device.type in self.FOLD_THIN_CONVS_ON:
                        fold_thin_convolutions(g)
                    if autocast is not None:
                        cast_autocast_weights(g, autocast)
                    channels_last = compiled and device.type == "cuda"
                    if channels_last:
                        g = g.to(memory_format=torch.channels_last)
                    members.append(_Member(self, g, ckpt, device, autocast, compiled, channels_last))
                self._members[key] = members
        return members

    def generators(self, device: torch.device | str = "cpu") -> list[nn.Module]:
        """The generators of the pool on ``device`` (eager modules), loaded (once per process and device) if needed.

        On CUDA their thin 7×7 convolutions are already folded for the GPU's matrix units
        (:mod:`handaug.space_to_depth`): the same function, other weights' layout.
        """
        return [member.generator for member in self._members_on(torch.device(device))]

    @property
    def stride(self) -> int:
        """Inputs are padded inside to a multiple of this (the least common multiple of the pool's strides)."""
        return math.lcm(*(max(c.stride, 1) for c in self.checkpoints))

    @property
    def min_side(self) -> int:
        """Inputs and hand-crop windows are padded inside to at least this height and width: the
        larger of :attr:`MIN_SIDE` and twice the stride, rounded up to the stride."""
        stride = self.stride
        return -(-max(self.MIN_SIDE, 2 * stride) // stride) * stride

    # ------------------------------------------------------------------ translation
    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Translate each image with probability ``p``; see the class docstring for shapes."""
        unbatched = isinstance(images, torch.Tensor) and images.ndim == 3
        check = self.check_values and not torch.compiler.is_compiling()
        batch = check_images(images, check_values=check)
        masks = None
        if mask is not None and self.mask_mode == "composite":
            masks = check_mask(mask, batch, unbatched, check_values=check)
        n = batch.shape[0]
        rng = self._random_generator()
        # Decisions are drawn on the CPU (never a read of the GPU), in the order they always were.
        chosen = None
        if self.p < 1.0:
            chosen = torch.rand(n, generator=rng) < self.p
            if not chosen.numpy().any():
                return images
            if chosen.numpy().all():
                chosen = None
        assignment = torch.randint(len(self.checkpoints), (n,), generator=rng) if len(self.checkpoints) > 1 else None
        out = self.translate(batch, masks, chosen=chosen, assignment=assignment)
        return out[0] if unbatched else out

    def translate(
        self,
        images: torch.Tensor,
        masks: torch.Tensor | None = None,
        *,
        chosen: torch.Tensor | None = None,
        assignment: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Translate the ``chosen`` images (all if ``None``) of a checked batch, without drawing randomness.

        Args:
            images: ``(B, 3, H, W)`` uint8 or float in ``[0, 1]`` (already validated).
            masks: ``(B, 1, H, W)`` float in ``[0, 1]`` for compositing, or ``None``.
            chosen: ``(B,)`` bool, which images to translate (the others are copied unchanged).
            assignment: ``(B,)`` int64, index of the pool generator for each image (default 0).

        ``chosen`` and ``assignment`` are read on the host: keep them on the CPU (as
        :meth:`forward` draws them), or each costs one read of the device.

        While ``torch.compile`` traces this method, every image is translated and the ``chosen``
        ones are picked with ``torch.where`` (so are the pool members' outputs): nothing has a
        data-dependent shape, and the graph has no break (``fullgraph=True`` works). Eager calls
        translate only the chosen images. ``hand_crop`` cannot be traced (its windows depend on
        the masks' values): it raises then.
        """
        if torch.compiler.is_compiling():
            return self._translate_traced(images, masks, chosen, assignment)
        n = images.shape[0]
        rows = np.arange(n) if chosen is None else np.flatnonzero(_host_array(chosen))
        member_of = np.zeros(n, dtype=np.int64) if assignment is None else _host_array(assignment).astype(np.int64)
        parts = [(k, rows[member_of[rows] == k]) for k in range(len(self.checkpoints))]
        parts = [(k, r) for k, r in parts if len(r)]
        if len(parts) == 1 and len(parts[0][1]) == n:  # the usual case: the whole batch, one generator
            return self._translate_member(parts[0][0], images, masks)
        out = images.clone()
        for k, r in parts:
            idx = device_sync.to_device(r, images.device)
            sub_masks = None if masks is None else masks.index_select(0, idx.to(masks.device, non_blocking=True))
            out.index_copy_(0, idx, self._translate_member(k, images.index_select(0, idx), sub_masks))
        return out

    def _translate_member(self, k: int, images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        """All of ``images`` (and their ``masks``) through pool member ``k``; the result on the input's device."""
        device = self.device or images.device
        member = self._members_on(torch.device(device))[k]
        x = images.to(device, non_blocking=True)
        m = None if masks is None else masks.to(device, non_blocking=True)
        if m is not None and self.hand_crop:
            out = member.translate_hand_crops(x, m, self.crop_margin)
        else:
            out = member.frames(x, m)  # whole frames (n, 3, H, W), masks (n, 1, H, W) float or None → same dtype
        # Back to the caller's device; to the CPU without non_blocking, so the values are there on return.
        return out.to(images.device, non_blocking=images.device.type != "cpu")

    def _translate_traced(
        self, images: torch.Tensor, masks: torch.Tensor | None, chosen: torch.Tensor | None, assignment: torch.Tensor | None
    ) -> torch.Tensor:
        """:meth:`translate` while ``torch.compile`` traces it: no data-dependent shapes, no host reads."""
        if masks is not None and self.hand_crop:
            raise ValueError(
                "hand_crop=True cannot be compiled (its windows depend on the masks' values); "
                "use hand_crop=False under torch.compile"
            )
        device = self.device or images.device
        members = self._members_on(torch.device(device))
        x = images.to(device, non_blocking=True)
        m = None if masks is None else masks.to(device, non_blocking=True)
        translated = members[0].frames(x, m)
        if assignment is not None:
            member = assignment.to(device).reshape(-1, 1, 1, 1)
            for k, other in enumerate(members[1:], start=1):
                translated = torch.where(member == k, other.frames(x, m), translated)
        translated = translated.to(images.device)
        if chosen is None:
            return translated
        return torch.where(chosen.to(images.device).reshape(-1, 1, 1, 1), translated, images)

    def extra_repr(self) -> str:
        ckpts = self.ckpt_paths[0] if len(self.ckpt_paths) == 1 else f"{len(self.ckpt_paths)} checkpoints"
        return (
            f"ckpt={ckpts!r}, p={self.p}, device={self.device}, mask_mode={self.mask_mode!r}, "
            f"precision={self.precision!r}, hand_crop={self.hand_crop}"
        )


def _host_array(values: torch.Tensor) -> np.ndarray:
    """A decision tensor (``chosen``, ``assignment``) on the host; one read of the device if it is elsewhere."""
    if values.device.type == "cpu":
        return values.detach().numpy()
    return device_sync.to_host(values)


def _composite(translated: torch.Tensor, original: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Blend ``translated`` over ``original`` by ``mask`` (B, 1, H, W) in [0, 1]; where the mask is 0
    the result is ``original`` exactly (same dtype)."""
    if original.dtype == torch.uint8:
        blended = torch.lerp(original.float(), translated.float(), mask).round_().to(torch.uint8)
    else:
        blended = torch.lerp(original, translated.to(original.dtype), mask.to(original.dtype))
    return torch.where(mask > 0, blended, original)


#: Module types whose weights autocast casts to the lower precision at every call (the ops it runs
#: in bf16/fp16): holding them in that precision gives the same result without the per-call casts.
AUTOCAST_WEIGHT_MODULES: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear, SpaceToDepthConv2d,
)


def cast_autocast_weights(module: nn.Module, dtype: torch.dtype) -> None:
    """Cast, in place, the weights that autocast would cast to ``dtype`` at every call (see
    :data:`AUTOCAST_WEIGHT_MODULES`); every other parameter and buffer keeps its precision.

    Under ``torch.autocast(dtype=dtype)`` the module then computes bit for bit what it computed
    before, without a weight cast per layer and call (on a GPU, one kernel each).
    """
    for child in module.modules():
        if isinstance(child, AUTOCAST_WEIGHT_MODULES):
            for name, param in child.named_parameters(recurse=False):
                if param.is_floating_point():
                    setattr(child, name, nn.Parameter(param.detach().to(dtype), requires_grad=False))


def _run_generator(
    generator: nn.Module,
    x: torch.Tensor,
    stride: int,
    min_side: int,
    autocast_dtype: torch.dtype | None,
    chunk_pixels: int,
    channels_last: bool = False,
) -> torch.Tensor:
    """``x`` ``(n, 3, H, W)`` in ``[-1, 1]`` → the generator's output in ``[-1, 1]``, fp32, same size.

    Padded at the bottom and right for the generator's stride, cropped back. Off the CPU the batch
    runs in one call, channels-last when ``channels_last`` (the layout cuDNN's tensor-core
    convolutions read; worth it compiled only: eager instance normalisation copies a
    channels-last tensor to NCHW and back at every layer). On the CPU a batch runs in chunks of
    about ``chunk_pixels`` pixels, so a convolution's activations stay in cache (msH-GAN4 at
    256 px: 5.6 images/s at batch 2, 4.1 at batch 16).
    """
    padded, h, w = _pad_for_generator(x, stride, min_side)
    if padded.device.type != "cpu":
        if channels_last:
            padded = padded.contiguous(memory_format=torch.channels_last)
        return _call(generator, padded, autocast_dtype)[..., :h, :w].float()
    per_chunk = max(1, chunk_pixels // (padded.shape[-2] * padded.shape[-1]))
    outputs = [_call(generator, chunk, autocast_dtype) for chunk in padded.split(per_chunk)]
    y = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
    return y[..., :h, :w].float()


def _call(generator: nn.Module, x: torch.Tensor, autocast_dtype: torch.dtype | None) -> torch.Tensor:
    if autocast_dtype is None:
        return generator(x)
    with torch.autocast(x.device.type, dtype=autocast_dtype):
        return generator(x)


class _CompiledOrEager:
    """``torch.compile(function)``, falling back to ``function`` for good if compiling fails.

    ``compile=None`` compiles by default on CUDA, where a machine may still lack what
    compiling needs (Triton, a C compiler, a writable cache): the translation must not fail for
    that. A failure of the compiler (an exception raised from ``torch._dynamo`` or
    ``torch._inductor``, at the first call or at a recompilation for a new shape) is reported
    once as a warning and the eager function is used from then on. Other errors propagate.
    """

    def __init__(self, function: Any) -> None:
        self.function = function
        self.compiled: Any = torch.compile(function)

    def __call__(self, *args: Any) -> torch.Tensor:
        if self.compiled is None:
            return self.function(*args)
        try:
            return self.compiled(*args)
        except Exception as error:  # noqa: BLE001 - only the compiler's own failures are swallowed below
            origin = type(error).__module__
            if not origin.startswith(("torch._dynamo", "torch._inductor", "triton")):
                raise
            warnings.warn(
                f"SynthToReal: torch.compile failed ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                "translating without compiling from now on (pass compile=False to skip the attempt)",
                RuntimeWarning,
                stacklevel=3,
            )
            self.compiled = None
            return self.function(*args)


class _Member:
    """One generator of the pool on one device, with the functions that run it (compiled or not).

    :meth:`frames` is the whole translation of full frames (uint8 or float in, same out: range
    conversion, the trained background under the mask, padding, the generator, the output
    conversion and the composite) as one function, which ``torch.compile`` fuses into a few
    kernels around the convolutions. :meth:`run` is the generator alone on model-range crops (the
    hand-crop path, whose window sizes are read on the host between the two).
    """

    def __init__(self, owner: SynthToReal, generator: nn.Module, ckpt: GeneratorCheckpoint, device: torch.device,
                 autocast: torch.dtype | None, compiled: bool, channels_last: bool) -> None:
        self.generator = generator
        self.channels_last = channels_last
        self.background = ckpt.background
        self.stride, self.min_side = owner.stride, owner.min_side
        self.chunk_pixels = owner.CPU_CHUNK_PIXELS
        self.max_groups = owner.HAND_CROP_GROUPS.get(device.type, MAX_GROUPS)  # a generator may hold no parameters
        self.autocast = autocast
        self.frames = _CompiledOrEager(self._frames) if compiled else self._frames
        self.run = _CompiledOrEager(self._run) if compiled else self._run

    def _model_input(self, x: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        model_in = to_model_range(x)
        if m is not None and self.background is not None:
            # The generator learnt hands on this background: give it the same.
            model_in = torch.where(m > 0, model_in, torch.as_tensor(self.background, dtype=model_in.dtype, device=model_in.device))
        return model_in

    def _run(self, model_in: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return _run_generator(
                self.generator, model_in, self.stride, self.min_side, self.autocast, self.chunk_pixels, self.channels_last
            )

    def _frames(self, x: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            y = self._run(self._model_input(x, m))
            out = from_model_range(y, like=x)
            return out if m is None else _composite(out, x, m)

    def translate_hand_crops(self, x: torch.Tensor, m: torch.Tensor, margin: float) -> torch.Tensor:
        """Only windows around the hands of ``m`` go through the generator (see :mod:`handaug.hand_crop`)."""
        with torch.no_grad():
            model_in = self._model_input(x, m)
            model_out = model_in.clone()  # images without a hand keep their input: compositing discards it anyway
            for group in hand_window_groups(m, margin, self.stride, self.min_side, self.max_groups):
                crops = self.run(gather_windows(model_in, group.windows, group.indices))
                paste_windows_(model_out, crops, group.windows, group.indices)
            out = from_model_range(model_out, like=x)
            return _composite(out, x, m)
