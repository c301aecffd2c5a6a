"""``SynthToReal`` as a kornia intensity augmentation, for batches on the GPU.

>>> import kornia.augmentation as K
>>> from handaug.integrations.kornia import SynthToReal
>>> s2r = SynthToReal("runs/hgan/export", p=0.7)
>>> geometry = K.AugmentationSequential(
...     K.RandomAffine(degrees=30.0, p=1.0), data_keys=["input", "keypoints", "mask"]
... )
>>> images = s2r(images, mask=hand_masks)                        # mask-aware: background bit-exact
>>> images, keypoints, hand_masks = geometry(images, keypoints, hand_masks)

or, without hand masks, inside the sequential (the whole frame is translated)::

    aug = K.AugmentationSequential(K.RandomAffine(30.0, p=1.0), SynthToReal(ckpt, p=0.7),
                                   data_keys=["input", "keypoints", "mask"])

It is a :class:`kornia.augmentation.IntensityAugmentationBase2D`: kornia passes keypoints,
boxes, masks and class labels through it unchanged, and the translation moves no pixel.

**Hand masks.** Kornia hands an intensity augmentation only the images, never the masks of the
same call, so inside ``AugmentationSequential`` this augmentation cannot composite. To keep the
background bit-exact, call it directly with ``mask=`` (``(B, 1, H, W)`` or ``(B, H, W)``; bool,
uint8 non-zero or a float alpha in ``[0, 1]``), before or after the geometric sequential: since
it moves no pixel, translating first and warping afterwards gives the same keypoints and masks
as warping first (the image is only resampled once either way).

**Probability.** Kornia's gate is per image: each image is translated with probability ``p``
(``p_batch`` gates the whole batch, ``same_on_batch`` shares one decision and one pool
generator for the batch). Only the chosen images go through the generator. Both gate
conventions of kornia are handled: up to 0.8 ``apply_transform`` receives only the chosen images,
from 0.9 the whole batch with ``params["batch_prob"]`` and the result is blended by kornia.
Random draws use torch's global RNG, as kornia's own augmentations do.

**torch.compile.** ``torch.compile(aug, fullgraph=True)`` (alone or inside a compiled
sequential) traces without a graph break: while tracing, the whole batch goes through the
generator and the gate picks the chosen rows with ``torch.where``, so nothing has a
data-dependent shape (eager calls still translate only the chosen images). The generators are
loaded when the augmentation is built, on ``device`` or else the CPU; for batches on another
device (``device=None`` and a GPU batch), make one eager call on such a batch before compiling.
While compiled, image values are not checked against ``[0, 1]`` (they are clamped), the hand
mask of a direct call must be bool or uint8, and ``hand_crop=True`` is refused.

Images: ``(B, 3, H, W)`` or ``(3, H, W)`` float in ``[0, 1]`` (kornia's convention); the
generator runs on the images' device unless ``device`` is given. The output is not
differentiable with respect to the translated images (the generator runs in inference mode).

**Batched GPU path.** This augmentation is a batch transform: call it on the collated batch
after moving it to the GPU (in a plain loop, or in Lightning with
``handaug.integrations.lightning.SynthToRealCallback`` or your module's
``on_after_batch_transfer``). Each image is translated with probability ``p`` and its own pool
member, which is what ``p`` means for one image per call in a per-sample pipeline. Augmentations
that followed it in a per-sample pipeline must then follow it on the batch too (a photometric
one placed after it sees the translated image only if it runs after this call).

**DataLoader workers and CUDA.** The generators load on ``device`` when the augmentation is
built, which initialises CUDA for ``device="cuda"``: workers that call it must be started with
``spawn`` or ``forkserver``. In a forked process (a forked DataLoader worker) a call raises
:class:`handaug.integrations.workers.CUDAInForkedProcessError` naming the ways that work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from handaug.optional import require

# Without the extra, importing this module raises one ImportError line naming it.
require("kornia", "kornia", needed_by=__name__)

from kornia.augmentation import IntensityAugmentationBase2D

import handaug
from handaug.arguments import check_flag, check_probability
from handaug.image_tensors import check_images, check_mask
from handaug.integrations.workers import ForkGuard
from handaug.precision import Precision
from handaug.synth_to_real import MaskMode, PathLike

__all__ = ["SynthToReal"]

#: The key under which a direct call's checked hand masks travel in ``params``.
HAND_MASK_KEY = "hand_mask"
#: The key of the per-image pool indices in ``params`` (only with a pool of several checkpoints).
POOL_INDEX_KEY = "pool_index"
#: What a forked worker's error proposes instead of CUDA in workers.
_BATCHED_PATH = (
    "call this augmentation on the collated batch after moving it to the GPU, in the main process "
    "(handaug.integrations.lightning.SynthToRealCallback in Lightning)"
)


class SynthToReal(IntensityAugmentationBase2D):
    """Translate a batch from the synthetic to the real domain with trained H-GAN generators.

    Args:
        ckpt: a handaug generator checkpoint (directory or ``.safetensors``) or a list of them
            (a pool: one generator drawn per image).
        p: probability that an image is translated (per image).
        device: where the generators run; ``None``: where the images are.
        mask_mode: ``"composite"`` uses the ``mask`` of a direct call to keep the background
            bit-exact; ``"none"`` translates whole images and ignores masks.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``: see :class:`handaug.SynthToReal`.
        hand_crop: with a mask, translate only a box around each hand (faster for small hands).
        crop_margin: padding around the hand box, as a fraction of its larger side.
        compile: ``torch.compile`` the generators.
        p_batch: probability that the batch is considered at all (kornia's batch gate).
        same_on_batch: one decision and one pool generator for the whole batch.
        keepdim: keep an unbatched ``(3, H, W)`` input unbatched (kornia's ``keepdim``).

    The generators are loaded when the augmentation is built (on ``device``, else the CPU) and on
    first use on any other device; they are never part of ``state_dict()`` or of a pickle.
    ``torch.compile(..., fullgraph=True)`` works (see the module docstring). With a CUDA
    ``device``, a call in a forked process raises
    :class:`handaug.integrations.workers.CUDAInForkedProcessError`.
    """

    def __init__(
        self,
        ckpt: PathLike | Sequence[PathLike],
        p: float = 1.0,
        device: str | torch.device | None = None,
        mask_mode: MaskMode = "composite",
        *,
        precision: Precision = "auto",
        hand_crop: bool = False,
        crop_margin: float = 0.15,
        compile: bool = False,
        p_batch: float = 1.0,
        same_on_batch: bool = False,
        keepdim: bool = False,
    ) -> None:
        p, p_batch = check_probability(p, "p"), check_probability(p_batch, "p_batch")
        same_on_batch, keepdim = check_flag(same_on_batch, "same_on_batch"), check_flag(keepdim, "keepdim")
        super().__init__(p=p, p_batch=p_batch, same_on_batch=same_on_batch, keepdim=keepdim)
        # The core draws nothing: kornia's gate chooses the images, generate_parameters the pool members.
        self.translator = handaug.SynthToReal(
            ckpt, p=1.0, device=device, mask_mode=mask_mode, precision=precision,
            hand_crop=hand_crop, crop_margin=crop_margin, compile=compile,
        )  # fmt: skip
        self.flags = {"mask_mode": mask_mode}
        self._fork_guard = ForkGuard("handaug.integrations.kornia.SynthToReal", self.translator.device, _BATCHED_PATH)
        # Loaded now, not at the first call, so that torch.compile can trace a fresh augmentation
        # (it cannot load files). Other devices load at their first eager call.
        self.translator.generators(self.translator.device or "cpu")

    def generate_parameters(self, batch_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        """The pool member of each image (``pool_index`` ``(B,)`` int64), with a pool of checkpoints."""
        pool = len(self.translator.checkpoints)
        if pool == 1:
            return {}
        n = int(batch_shape[0])
        if self.same_on_batch:
            return {POOL_INDEX_KEY: torch.randint(pool, (1,)).expand(n).clone()}
        return {POOL_INDEX_KEY: torch.randint(pool, (n,))}

    def forward(
        self,
        input: torch.Tensor,
        params: dict[str, torch.Tensor] | None = None,
        mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Translate ``input`` (see the class docstring); with ``mask`` (``(B, 1, H, W)`` or
        ``(B, H, W)``, ``(1, H, W)`` / ``(H, W)`` for a single image) and ``mask_mode="composite"``
        only the hands change and the background stays bit-exact."""
        if not torch.compiler.is_compiling():
            self._fork_guard.check()
        if mask is not None and self.translator.mask_mode == "composite":
            if torch.compiler.is_compiling():  # no data-dependent value checks while tracing
                batch = input if input.ndim == 4 else input.unsqueeze(0)
            else:
                batch = check_images(input, "input")
            hand_mask = check_mask(mask, batch, unbatched=input.ndim == 3, argument="mask")
            params = dict(self.forward_parameters(batch.shape) if params is None else params)
            params[HAND_MASK_KEY] = hand_mask
            output = super().forward(input, params, **kwargs)
            # The recorded parameters (``_params``, for replaying) are the random draws, not the data.
            recorded = getattr(self, "_params", None)
            if isinstance(recorded, dict) and HAND_MASK_KEY in recorded:
                self._params = {k: v for k, v in recorded.items() if k != HAND_MASK_KEY}
            return output
        return super().forward(input, params, **kwargs)

    def apply_transform(
        self,
        input: torch.Tensor,
        params: dict[str, torch.Tensor],
        flags: dict[str, Any],
        transform: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Translate the rows of ``input`` ``(N, 3, H, W)`` that kornia's gate chose.

        ``params["batch_prob"]`` has one entry per image of the call. When ``N`` equals that
        count, ``input`` is the whole batch (kornia >= 0.9, or every image chosen) and only the
        chosen rows are translated, the others copied; otherwise kornia (< 0.9) already cut
        ``input`` down to the chosen rows, and the per-image parameters are cut the same way.
        """
        if torch.compiler.is_compiling():
            return self._apply_traced(input, params)
        n = input.shape[0]
        gate = params.get("batch_prob")
        applied = torch.ones(n, dtype=torch.bool) if gate is None else (torch.atleast_1d(gate) > 0.5).reshape(-1).cpu()
        if applied.numel() == 1 and n > 1:
            applied = applied.expand(n)
        pool_index = params.get(POOL_INDEX_KEY)
        hand_mask = params.get(HAND_MASK_KEY) if self.translator.mask_mode == "composite" else None
        if applied.numel() == n:
            chosen: torch.Tensor | None = applied
        else:
            # Only the chosen rows were handed over (kornia < 0.9): pick their parameters.
            rows = applied.nonzero().squeeze(1)
            if rows.numel() != n:
                raise ValueError(
                    f"input has {n} images but params['batch_prob'] chooses {rows.numel()} of {applied.numel()}"
                )
            chosen = None
            pool_index = None if pool_index is None else pool_index.cpu()[rows]
            hand_mask = None if hand_mask is None else hand_mask[rows.to(hand_mask.device)]
        if chosen is not None:
            if not bool(chosen.any()):
                return input
            if bool(chosen.all()):
                chosen = None
        batch = check_images(input, "input")
        if hand_mask is not None and hand_mask.shape[0] != n:
            raise ValueError(f"mask holds {hand_mask.shape[0]} masks for {n} images")
        assignment = None if pool_index is None else pool_index.cpu().to(torch.int64)
        return self.translator.translate(batch, hand_mask, chosen=chosen, assignment=assignment)

    def _apply_traced(self, input: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """:meth:`apply_transform` while ``torch.compile`` traces it: the whole batch (kornia >= 0.9's
        convention) goes through the generator and the gate picks rows with ``torch.where``, so no
        shape depends on the data. The images' shape and dtype are checked, their values are not
        (a data-dependent check would break the graph): floats outside ``[0, 1]`` are clamped."""
        n = input.shape[0]
        if input.ndim != 4 or input.shape[1] != 3 or not input.dtype.is_floating_point:
            raise ValueError(f"input must be float (B, 3, H, W) in [0, 1], got {input.dtype} {tuple(input.shape)}")
        gate = params.get("batch_prob")
        chosen = None
        if gate is not None:
            chosen = (torch.atleast_1d(gate) > 0.5).reshape(-1)
            if chosen.shape[0] == 1:
                chosen = chosen.expand(n)
            elif chosen.shape[0] != n:
                raise ValueError(f"input has {n} images but params['batch_prob'] has {chosen.shape[0]} entries")
        pool_index = params.get(POOL_INDEX_KEY)
        hand_mask = params.get(HAND_MASK_KEY) if self.translator.mask_mode == "composite" else None
        assignment = None if pool_index is None else pool_index.to(torch.int64)
        return self.translator.translate(input, hand_mask, chosen=chosen, assignment=assignment)
