"""``SynthToReal`` as an albumentations transform (albumentations 2.0.x).

>>> import albumentations as A
>>> from handaug.integrations.albumentations import SynthToReal
>>> pipeline = A.Compose(
...     [A.Affine(rotate=(-30, 30), p=1.0), SynthToReal("runs/hgan/export", p=0.7)],
...     keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
... )
>>> out = pipeline(image=image, mask=hand_mask, keypoints=joints)  # joints (21, 2) or (21, 2 + 3)

It is an :class:`albumentations.ImageOnlyTransform`: only the image changes. Keypoints (with any
extra columns, e.g. 3D joints carried as ``(N, 2 + 3)``), boxes, masks and labels come back as
they went in, because the translation never moves a pixel.

Hand mask: when the call carries a ``mask`` (``(H, W)`` or ``(H, W, 1)``; non-zero is hand, or a
float alpha in ``[0, 1]``), the translated hand is pasted over the original background, so
pixels outside the mask are unchanged bit for bit (see :class:`handaug.SynthToReal`). The mask
is the one at this point of the pipeline, i.e. after the geometric transforms before it. For
``images`` (a stack ``(N, H, W, 3)``) the hand masks are ``masks`` ``(N, H, W)`` (one per image)
or a single ``mask`` shared by all; for a ``volume`` ``(D, H, W, 3)`` (e.g. a video clip) it is
``mask3d`` ``(D, H, W)``, for ``volumes`` ``masks3d``.

Randomness is albumentations': the base class decides with probability ``p`` whether a call is
translated (one decision per call, as for every albumentations transform, so a whole ``images``
stack or ``volume`` is translated or not together), and with a pool of checkpoints the
generator of each image (each volume) is drawn from the transform's numpy generator, so
``A.Compose(..., seed=...)`` makes a pipeline reproducible.

The hand mask is read in ``get_params_dependent_on_data`` and kept with the call's parameters,
so ``A.ReplayCompose`` replays the recorded call's mask too (replay it on the same sample).

Images: ``(H, W, 3)`` RGB ``uint8`` or ``float32`` in ``[0, 1]`` (albumentations' two image
types); the output has the input's shape and dtype. ``images`` stacks run through the generator
as one batch.

Serialisation: ``A.to_dict`` stores the checkpoint *path* (never weights); ``A.from_dict`` needs
this module imported first (``import handaug.integrations.albumentations``) so that albumentations
knows the class. Generators are loaded on first use in each process, so pipelines pickle small
for DataLoader workers (fork or spawn).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import albumentations as A
import numpy as np
import torch

import handaug
from handaug.image_tensors import check_images, check_mask
from handaug.precision import Precision
from handaug.synth_to_real import MaskMode, PathLike, check_probability

__all__ = ["SynthToReal"]

#: The mask key that goes with each image target of albumentations.
_MASK_KEYS: dict[str, tuple[str, ...]] = {
    "image": ("mask",),
    "images": ("masks", "mask"),
    "volume": ("mask3d",),
    "volumes": ("masks3d",),
}


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    """A torch view of ``array`` (a copy only when numpy marks it read-only)."""
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


def _mask_tensor(mask: Any, count: int, size: tuple[int, int], argument: str) -> torch.Tensor:
    """Hand masks for ``count`` images of ``size`` → ``(count, 1, H, W)`` tensor (bool for integer
    masks, the float alpha otherwise; values are checked by :func:`check_mask` afterwards).

    Accepted: ``(..., H, W)`` or ``(..., H, W, 1)`` whose leading dimensions hold ``count`` masks
    in the images' order, or a single ``(H, W)`` mask shared by all images.
    """
    if isinstance(mask, (list, tuple)) and mask:
        mask = np.stack(mask)
    if not isinstance(mask, np.ndarray):
        raise ValueError(f"{argument} must be a numpy array, got {type(mask).__name__}")
    m = mask[..., 0] if mask.ndim >= 3 and mask.shape[-1] == 1 and mask.shape[-3:-1] == size else mask
    if m.ndim < 2 or m.shape[-2:] != size:
        raise ValueError(f"{argument} of shape {mask.shape} does not match the image size {size[0]}×{size[1]}")
    t = _to_tensor(m)
    if t.ndim == 2:
        t = t.expand(count, *size)
    t = t.reshape(-1, *size)
    if t.shape[0] != count:
        raise ValueError(
            f"{argument} of shape {mask.shape} holds {t.shape[0]} masks for {count} images: give one per image"
        )
    if not t.dtype.is_floating_point:
        t = t != 0  # bool, uint8 0/255 or integer labels: non-zero is hand
    return t.unsqueeze(1)


class SynthToReal(A.ImageOnlyTransform):
    """Translate the image from the synthetic to the real domain with a trained H-GAN generator.

    Args:
        ckpt: a handaug generator checkpoint (directory or ``.safetensors``) or a list of them
            (a pool: one generator drawn per image). Stored as path strings.
        p: probability that a call is translated (albumentations' per-call decision).
        device: where the generator runs (e.g. ``"cuda"``); ``None`` runs it on the CPU, where
            albumentations' numpy images are. Results always come back as numpy arrays.
        mask_mode: ``"composite"`` uses the call's hand mask, if any, to keep the background
            bit-exact; ``"none"`` translates whole images and ignores masks.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``: see :class:`handaug.SynthToReal`.
        hand_crop: with a mask, translate only a box around the hand (faster for small hands).
        crop_margin: padding around the hand box, as a fraction of its larger side.
        compile: ``torch.compile`` the generators.

    There is no ``seed`` argument: albumentations seeds its transforms itself
    (``A.Compose(..., seed=...)``).

    Raises:
        ValueError: a bad argument (named in the message); at call time, an image that is not
            ``(H, W, 3)`` uint8/float in ``[0, 1]`` or a mask that does not match it.
        FileNotFoundError: the checkpoint does not exist.
    """

    def __init__(
        self,
        ckpt: PathLike | Sequence[PathLike],
        p: float = 1.0,
        device: str | None = None,
        mask_mode: MaskMode = "composite",
        precision: Precision = "auto",
        hand_crop: bool = False,
        crop_margin: float = 0.15,
        compile: bool = False,
    ) -> None:
        p = check_probability(p, "p")
        # The core draws nothing here: albumentations makes the per-call decision (p) and the
        # pool choice comes from this transform's numpy generator.
        self.translator = handaug.SynthToReal(
            ckpt, p=1.0, device=device, mask_mode=mask_mode, precision=precision,
            hand_crop=hand_crop, crop_margin=crop_margin, compile=compile,
        )  # fmt: skip
        super().__init__(p=p)
        paths = self.translator.ckpt_paths
        self.ckpt: str | list[str] = paths[0] if isinstance(ckpt, (str, os.PathLike)) else list(paths)
        self.device = None if device is None else str(device)
        self.mask_mode = mask_mode
        self.precision = precision
        self.hand_crop = self.translator.hand_crop
        self.crop_margin = self.translator.crop_margin
        self.compile = self.translator.compile

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        # ``p`` is stored by the base class; everything here is a string, number, bool or None (JSON-ready).
        return ("ckpt", "device", "mask_mode", "precision", "hand_crop", "crop_margin", "compile")

    # ------------------------------------------------------------------ parameters
    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """Draw the pool generator of each image and fetch the hand mask of this call."""
        target = next((key for key in _MASK_KEYS if key in data and data[key] is not None), None)
        if target is None:
            return {"pool_index": None, "hand_mask": None}
        draws = 1 if target in ("image", "volume") else len(data[target])
        pool = len(self.translator.checkpoints)
        pool_index = self.random_generator.integers(pool, size=draws) if pool > 1 else None
        hand_mask = None
        if self.mask_mode == "composite":
            key = next((k for k in _MASK_KEYS[target] if data.get(k) is not None), None)
            if key is not None:
                hand_mask = (key, data[key])
        return {"pool_index": pool_index, "hand_mask": hand_mask}

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
            masks = check_mask(_mask_tensor(mask, n, (h, w), key), batch, unbatched=False, argument=key)
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
