"""``SynthToReal`` as an albumentations transform (albumentations 2.0.x).

>>> import albumentations as A
>>> from handaug.integrations.albumentations import SynthToReal
>>> pipeline = A.Compose(
...     [A.Affine(rotate=(-30, 30), p=1.0), SynthToReal("runs/hgan/export", p=0.7, hand_mask_key="hand_mask")],
...     keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
...     additional_targets={"hand_mask": "mask"},
... )
>>> out = pipeline(image=image, mask=segmentation, hand_mask=hand_mask, keypoints=joints)  # joints (21, 2) or (21, 2 + 3)

It is an :class:`albumentations.ImageOnlyTransform`: only the image changes. Keypoints (with any
extra columns, e.g. 3D joints carried as ``(N, 2 + 3)``), boxes, masks and labels come back as
they went in, because the translation never moves a pixel.

**Hand mask: named, never guessed.** In albumentations a ``mask`` is often a segmentation map
(several classes, several channels), so this transform reads no mask unless ``hand_mask_key``
names the target that holds the hand: ``hand_mask_key="mask"`` for the call's ``mask``, or the
name of an additional target declared as a mask (``A.Compose(..., additional_targets={"hand_mask":
"mask"})``), which the geometric transforms before it warp like any mask. Without it
(the default) whole images are translated and every mask is left alone. The named hand mask is
``(H, W)`` or ``(H, W, 1)``: ``bool``, an integer type (non-zero is hand) or a float alpha in
``[0, 1]``; the translated hand is pasted over the original background, so pixels outside the
mask are unchanged bit for bit (see :class:`handaug.SynthToReal`). For ``images`` (a stack
``(N, H, W, 3)``) it is one mask per image ``(N, H, W)`` (or ``(N, H, W, 1)``) or one ``(H, W)``
shared by all; for a ``volume`` ``(D, H, W, 3)`` one per slice ``(D, H, W)``, for ``volumes`` one
per slice of each ``(N, D, H, W)``. Anything else (a 3-channel mask, a stack that does not match)
is an error naming the target. A call without the named target is an error too.

Parameters: declared in ``InitSchema`` as albumentations 2.0's own transforms do, so bad values
raise albumentations' ``ValueError`` naming the parameter, ``strict=True`` is accepted and an
unknown argument is a warning (an error with ``strict=True`` here or in ``A.Compose``).

Randomness is albumentations': the base class decides with probability ``p`` whether a call is
translated (one decision per call, as for every albumentations transform, so a whole ``images``
stack or ``volume`` is translated or not together), and with a pool of checkpoints the
generator of each image (each volume) is drawn from the transform's numpy generator, so
``A.Compose(..., seed=...)`` makes a pipeline reproducible.

The hand mask is read in ``get_params_dependent_on_data`` and kept with the call's parameters,
so ``A.ReplayCompose`` replays the recorded call's mask too (replay it on the same sample).

Images: ``(H, W, 3)`` RGB ``uint8`` or ``float32`` in ``[0, 1]`` (albumentations' two image
types), any size; the output has the input's shape and dtype. ``images`` stacks run through the
generator as one batch.

**DataLoader workers and CUDA.** With ``device="cuda"`` the transform runs the generator on the
GPU from each worker. That needs workers started with ``spawn`` or ``forkserver``
(``DataLoader(..., multiprocessing_context="spawn")``): CUDA does not work after ``fork``, and
in a forked worker the call raises
:class:`handaug.integrations.workers.CUDAInForkedProcessError` naming the ways that work.

**Batched GPU path (``defer=True``).** The transform then draws exactly what it draws without
``defer`` (``p``, and the pool member of each image, from albumentations' generators) but does
not run the generator: the image passes unchanged and the output gains the key
``decision_key`` (``"synth_to_real"``): ``-1`` for not translated, else the pool member (an
``int`` for ``image``, an ``int64`` array of the stack's leading shape for ``images``,
``volume`` and ``volumes``). The default collate stacks it, and
:func:`handaug.integrations.batch.translate_batch` translates the chosen images of the batch on
the GPU in one call (``handaug.integrations.lightning.SynthToRealCallback`` in Lightning). The
translation then comes after the whole pipeline: transforms placed after this one run before
it (see :mod:`handaug.integrations.batch`); put it last.

Serialisation: ``A.to_dict`` stores the checkpoint *path* (never weights; an ``hf://`` name stays
a name); ``A.from_dict`` needs this module imported first (``import handaug.integrations.albumentations``)
so that albumentations knows the class. Generators are loaded on first use in each process, so
pipelines pickle small for DataLoader workers and ``multiprocessing.Pool`` (fork or spawn).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, Literal

from handaug.optional import require

# Without the extra, importing this module raises one ImportError line naming it.
require("albumentations", "albumentations", needed_by=__name__)
require("pydantic", "albumentations", needed_by=__name__)

import albumentations as A
import numpy as np
import torch
from albumentations.core.transforms_interface import BaseTransformInitSchema
from pydantic import Field, ValidationInfo, field_validator

import handaug
from handaug.arguments import check_flag, is_flag, is_real
from handaug.image_tensors import check_images, check_mask
from handaug.integrations.batch import DECISION_KEY, NOT_TRANSLATED
from handaug.integrations.workers import ForkGuard
from handaug.precision import Precision
from handaug.synth_to_real import MaskMode, PathLike

__all__ = ["SynthToReal"]

#: albumentations' image targets, in the order they are looked for in a call.
_IMAGE_TARGETS: tuple[str, ...] = ("image", "images", "volume", "volumes")

#: What a forked worker's error proposes instead of CUDA in workers.
_BATCHED_PATH = (
    "defer=True in the workers' pipeline and handaug.integrations.batch.translate_batch on the collated batch "
    "on the GPU (handaug.integrations.lightning.SynthToRealCallback in Lightning)"
)


def _decision_shape(target: str, array: Any) -> tuple[int, ...]:
    """The leading shape of the images of ``target`` (one decision per image): ``()`` for ``image``."""
    if target == "image":
        return ()
    shape = np.shape(array) if isinstance(array, np.ndarray) else (len(array),)
    return tuple(shape[:2]) if target == "volumes" else tuple(shape[:1])


def _decision(target: str, array: Any, pool_index: np.ndarray | None) -> int | np.ndarray:
    """The deferred decision of a translated call: the pool member of each image of ``target``."""
    shape = _decision_shape(target, array)
    if pool_index is None:  # one checkpoint: member 0
        draws = np.zeros(1 if target in ("image", "volume") else shape[0], np.int64)
    else:
        draws = np.asarray(pool_index, np.int64)
    if target == "image":
        return int(draws[0])
    if target == "volume":
        return np.full(shape, draws[0], np.int64)
    if target == "volumes":
        return np.repeat(draws[:, None], shape[1], axis=1)
    return draws


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    """A torch view of ``array`` (a copy only when numpy marks it read-only or it is not contiguous)."""
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(np.ascontiguousarray(array))


def _images_tensor(images: np.ndarray, argument: str) -> torch.Tensor:
    """``(..., H, W, 3)`` numpy → a checked ``(N, 3, H, W)`` tensor view."""
    if not isinstance(images, np.ndarray):
        raise ValueError(f"{argument} must be a numpy array of shape (..., H, W, 3), got {type(images).__name__}")
    if images.ndim < 3 or images.shape[-1] != 3:
        raise ValueError(f"{argument} must be RGB with shape (..., H, W, 3), got shape {images.shape}")
    batch = _to_tensor(images).reshape(-1, *images.shape[-3:]).permute(0, 3, 1, 2)
    return check_images(batch, argument)


def _hand_masks(mask: Any, lead: tuple[int, ...], size: tuple[int, int], key: str) -> torch.Tensor:
    """The hand mask target ``key`` for images of leading shape ``lead`` and ``size`` → ``(N, 1, H, W)``
    (bool for bool and integer masks, non-zero being hand; the float alpha otherwise), N = prod(lead).

    Accepted: one mask shared by all images, ``(H, W)`` or ``(H, W, 1)``, or one per image,
    ``(*lead, H, W)`` or ``(*lead, H, W, 1)``; a list of masks is stacked first.

    Raises:
        ValueError: naming ``key``: not an array, another shape (a multi-channel mask is not a
            hand mask), or a dtype that is not bool, integer or floating point.
    """
    if isinstance(mask, (list, tuple)) and mask:
        mask = np.stack(mask)
    if not isinstance(mask, np.ndarray):
        raise ValueError(f"hand mask {key!r} must be a numpy array, got {type(mask).__name__}")
    shape = tuple(mask.shape)
    shared = (size, (*size, 1))
    per_image = ((*lead, *size), (*lead, *size, 1))
    if shape not in shared + per_image:
        accepted = " or ".join(str(s) for s in dict.fromkeys(shared + per_image))
        raise ValueError(
            f"hand mask {key!r} must have shape {accepted} for images of shape {(*lead, *size, 3)}, got {shape}: "
            f"a multi-channel or label mask is not a hand mask; pass the hand's own mask (e.g. as an additional target)"
        )
    if not (mask.dtype == np.bool_ or np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating)):
        raise ValueError(f"hand mask {key!r} must be bool, integer or floating point, got dtype {mask.dtype}")
    t = _to_tensor(mask)
    if t.ndim == len(shape) and shape[-1:] == (1,) and shape[:-1] in (size, (*lead, *size)):
        t = t[..., 0]
    if not t.dtype.is_floating_point:
        t = t != 0  # bool, uint8 0/255 or integers: non-zero is hand
    count = math.prod(lead)
    return t.reshape(-1, 1, *size).expand(count, 1, *size)


class SynthToReal(A.ImageOnlyTransform):
    """Translate the image from the synthetic to the real domain with a trained H-GAN generator.

    Args:
        ckpt: a handaug generator checkpoint (directory, ``.safetensors`` or ``hf://ORG/REPO``)
            or a list of them (a pool: one generator drawn per image). Stored as strings.
        p: probability that a call is translated (albumentations' per-call decision).
        device: where the generator runs (e.g. ``"cuda"``); ``None`` runs it on the CPU, where
            albumentations' numpy images are. Results always come back as numpy arrays.
        mask_mode: ``"composite"`` uses the hand mask named by ``hand_mask_key`` to keep the
            background bit-exact; ``"none"`` translates whole images and reads no mask.
        hand_mask_key: the target of the call that holds the hand mask (``"mask"``, or an
            additional target such as ``"hand_mask"``); ``None`` (default): no mask is read and
            whole images are translated. See the module docstring for its shapes.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``: see :class:`handaug.SynthToReal`.
        hand_crop: with a hand mask, translate only a box around the hand (faster for small hands).
        crop_margin: padding around the hand box, as a fraction of its larger side, in ``[0, 4]``.
        compile: ``torch.compile`` the generators.
        defer: draw the decision but do not translate: the image passes unchanged and the output
            gains ``decision_key`` for :func:`handaug.integrations.batch.translate_batch` (see the
            module docstring).
        decision_key: the output key of the deferred decision (default ``"synth_to_real"``).

    There is no ``seed`` argument: albumentations seeds its transforms itself
    (``A.Compose(..., seed=...)``). ``strict`` is albumentations' (see the module docstring).

    Raises:
        ValueError: a bad argument (named in the message); at call time, an image that is not
            ``(H, W, 3)`` uint8/float in ``[0, 1]``, or a hand mask that is missing or does not fit it.
        FileNotFoundError: the checkpoint does not exist.
        handaug.integrations.workers.CUDAInForkedProcessError: at call time, ``device="cuda"``
            (without ``defer``) in a forked process such as a forked DataLoader worker.
    """

    class InitSchema(BaseTransformInitSchema):
        ckpt: str | list[str]
        device: str | None
        mask_mode: Literal["composite", "none"]
        hand_mask_key: str | None
        precision: Literal["auto", "fp32", "bf16", "fp16"]
        hand_crop: bool
        crop_margin: float = Field(ge=0, le=4)
        compile: bool
        defer: bool
        decision_key: str = Field(min_length=1)

        @field_validator("ckpt", mode="before")
        @classmethod
        def _paths_as_strings(cls, value: Any) -> Any:
            if isinstance(value, os.PathLike):
                return os.fspath(value)
            if isinstance(value, (list, tuple)):
                if not value:
                    raise ValueError("give a checkpoint path or a non-empty list of them")
                return [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
            return value

        @field_validator("p", "crop_margin", mode="before")
        @classmethod
        def _number_not_bool(cls, value: Any) -> Any:
            # handaug's rule (handaug.arguments), not pydantic's coercion: no bools, no strings.
            if is_flag(value):
                raise ValueError(f"expected a number, got the bool {value!r}")
            if not is_real(value):
                raise ValueError(f"expected a number, got {value!r}")
            return value

        @field_validator("hand_crop", "compile", "defer", mode="before")
        @classmethod
        def _flag(cls, value: Any, info: ValidationInfo) -> bool:
            return check_flag(value, info.field_name or "flag")

        @field_validator("device", mode="before")
        @classmethod
        def _device_as_string(cls, value: Any) -> Any:
            return str(value) if isinstance(value, torch.device) else value

        @field_validator("hand_mask_key")
        @classmethod
        def _non_empty_key(cls, value: str | None) -> str | None:
            if value is not None and not value:
                raise ValueError("the name of the target that holds the hand mask, or None")
            return value

    def __init__(
        self,
        ckpt: PathLike | Sequence[PathLike],
        p: float = 1.0,
        device: str | None = None,
        mask_mode: MaskMode = "composite",
        hand_mask_key: str | None = None,
        precision: Precision = "auto",
        hand_crop: bool = False,
        crop_margin: float = 0.15,
        compile: bool = False,
        defer: bool = False,
        decision_key: str = DECISION_KEY,
    ) -> None:
        # The core draws nothing here: albumentations makes the per-call decision (p) and the
        # pool choice comes from this transform's numpy generator. It checks the checkpoint.
        self.translator = handaug.SynthToReal(
            ckpt, p=1.0, device=device, mask_mode=mask_mode, precision=precision,
            hand_crop=hand_crop, crop_margin=crop_margin, compile=compile,
        )  # fmt: skip
        super().__init__(p=p)
        paths = self.translator.ckpt_paths
        self.ckpt: str | list[str] = paths[0] if isinstance(ckpt, (str, os.PathLike)) else list(paths)
        self.device = None if device is None else str(device)
        self.mask_mode = mask_mode
        self.hand_mask_key = hand_mask_key
        self.precision = precision
        self.hand_crop = self.translator.hand_crop
        self.crop_margin = self.translator.crop_margin
        self.compile = self.translator.compile
        self.defer = defer
        self.decision_key = decision_key
        self._fork_guard = ForkGuard("handaug.integrations.albumentations.SynthToReal", self.device, _BATCHED_PATH)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        # ``p`` is stored by the base class; everything here is a string, number, bool or None (JSON-ready).
        return ("ckpt", "device", "mask_mode", "hand_mask_key", "precision", "hand_crop", "crop_margin", "compile",
                "defer", "decision_key")  # fmt: skip

    def __call__(self, *args: Any, force_apply: bool = False, **kwargs: Any) -> Any:
        """albumentations' call; refuses CUDA in a forked process first (whatever ``p`` decides), and
        with ``defer`` adds the call's decision to the output under ``decision_key``."""
        if not self.defer:
            self._fork_guard.check()
            return super().__call__(*args, force_apply=force_apply, **kwargs)
        if self.decision_key in kwargs:
            raise ValueError(
                f"the data already has {self.decision_key!r}: two deferred SynthToReal in one pipeline, or a target "
                "of that name; give this one another decision_key"
            )
        out = super().__call__(*args, force_apply=force_apply, **kwargs)
        target = next((key for key in _IMAGE_TARGETS if kwargs.get(key) is not None), None)
        if target is None:
            return out
        applied = self.applied_in_replay if self.replay_mode else "decision" in self.params
        if applied:
            decision = self.params["decision"]
        else:
            shape = _decision_shape(target, kwargs[target])
            decision = NOT_TRANSLATED if not shape else np.full(shape, NOT_TRANSLATED, np.int64)
        return {**out, self.decision_key: decision}

    # ------------------------------------------------------------------ parameters
    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """Draw the pool generator of each image and fetch the named hand mask of this call."""
        target = next((key for key in _IMAGE_TARGETS if data.get(key) is not None), None)
        if target is None:
            return {"pool_index": None, "hand_mask": None, "decision": NOT_TRANSLATED}
        draws = 1 if target in ("image", "volume") else len(data[target])
        pool = len(self.translator.checkpoints)
        pool_index = self.random_generator.integers(pool, size=draws) if pool > 1 else None
        hand_mask = None
        if self.hand_mask_key is not None and self.mask_mode == "composite":
            if data.get(self.hand_mask_key) is None:
                given = ", ".join(sorted(k for k, v in data.items() if v is not None))
                raise ValueError(
                    f"hand_mask_key={self.hand_mask_key!r}, but the call has no {self.hand_mask_key!r} "
                    f"(it has: {given}); pass the hand mask as {self.hand_mask_key}=..., "
                    "or use hand_mask_key=None to translate whole images"
                )
            hand_mask = (self.hand_mask_key, data[self.hand_mask_key])
        decision = _decision(target, data[target], pool_index)
        return {"pool_index": pool_index, "hand_mask": hand_mask, "decision": decision}

    # ------------------------------------------------------------------ application
    def _translate(
        self,
        images: np.ndarray,
        argument: str,
        per_item: int,
        pool_index: np.ndarray | None,
        hand_mask: tuple[str, Any] | None,
    ) -> np.ndarray:
        """Translate ``images`` ``(..., H, W, 3)`` as one batch; each draw of ``pool_index`` covers
        ``per_item`` consecutive images (the slices of one volume)."""
        batch = _images_tensor(images, argument)
        n, _, h, w = batch.shape
        masks = None
        if hand_mask is not None:
            key, mask = hand_mask
            masks = check_mask(_hand_masks(mask, tuple(images.shape[:-3]), (h, w), key), batch, unbatched=False,
                               argument=f"hand mask {key!r}")  # fmt: skip
        if self.defer:  # checked as above; translated later, with the batch
            return images
        assignment = None
        if pool_index is not None:
            assignment = torch.as_tensor(np.asarray(pool_index), dtype=torch.int64).repeat_interleave(per_item)
            if assignment.numel() != n:  # an additional image target of another size: one draw for all
                assignment = assignment[:1].expand(n)
        out = self.translator.translate(batch, masks, assignment=assignment)
        return np.ascontiguousarray(out.permute(0, 2, 3, 1).reshape(images.shape).numpy())

    def apply(
        self, img: np.ndarray, pool_index: np.ndarray | None = None, hand_mask: Any = None, **params: Any
    ) -> np.ndarray:
        """``img`` ``(H, W, 3)`` uint8 or float32 in [0, 1] → translated, same shape and dtype."""
        return self._translate(img, "image", 1, pool_index, hand_mask)

    def apply_to_images(
        self, images: np.ndarray, pool_index: np.ndarray | None = None, hand_mask: Any = None, **params: Any
    ) -> np.ndarray:
        """``images`` ``(N, H, W, 3)``: one generator batch for the whole stack."""
        return self._translate(images, "images", 1, pool_index, hand_mask)

    def apply_to_volume(
        self, volume: np.ndarray, pool_index: np.ndarray | None = None, hand_mask: Any = None, **params: Any
    ) -> np.ndarray:
        """``volume`` ``(D, H, W, 3)``: all slices with the same generator, as one batch."""
        return self._translate(volume, "volume", volume.shape[0] if volume.ndim == 4 else 1, pool_index, hand_mask)

    def apply_to_volumes(
        self, volumes: np.ndarray, pool_index: np.ndarray | None = None, hand_mask: Any = None, **params: Any
    ) -> np.ndarray:
        """``volumes`` ``(N, D, H, W, 3)``: one generator per volume, every slice in one batch."""
        per_item = volumes.shape[1] if volumes.ndim == 5 else 1
        return self._translate(volumes, "volumes", per_item, pool_index, hand_mask)
