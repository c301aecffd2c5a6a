"""``SynthToReal`` as a torchvision ``transforms.v2`` transform.

>>> from torchvision import tv_tensors
>>> from torchvision.transforms import v2
>>> from handaug.integrations.torchvision import SynthToReal
>>> transform = v2.Compose([v2.RandomAffine(degrees=30), SynthToReal("runs/hgan/export", p=0.7, use_mask=True)])
>>> sample = {"image": tv_tensors.Image(image), "mask": tv_tensors.Mask(hand_mask),
...           "keypoints": tv_tensors.KeyPoints(joints_2d, canvas_size=(H, W)), "joints_3d": joints_3d, "label": 3}
>>> out = transform(sample)

Only images change: ``tv_tensors.Image``, ``tv_tensors.Video`` (every frame), PIL images, and a
plain tensor where the sample has no explicit image (torchvision's rule: then the first plain
tensor is the image). ``KeyPoints``, ``BoundingBoxes``, ``Mask``, plain tensors next to an image
(e.g. 3D joints) and any other value are returned as the very same objects: the translation
moves no pixel, so they stay valid.

**Hand mask.** With ``use_mask=True`` the sample must hold exactly one ``tv_tensors.Mask``; its
non-zero pixels (bool, any integer type, or a float alpha in ``[0, 1]``) are the hand, and the
translated hand is pasted over the original background, which stays bit-exact. The mask may
be ``(H, W)`` / ``(1, H, W)``, ``(K, H, W)`` instance masks (their union is used), or hold one
mask per image of a batched ``Image`` ``(B, 3, H, W)`` as ``(B, H, W)`` / ``(B, K, H, W)``.
Without ``use_mask`` masks are ignored and whole images are translated; the flag is explicit
because a sample's ``Mask`` is not always a hand silhouette (it may segment objects).

**Probability.** As for torchvision's own random transforms, ``p`` decides once per call: the
images of one sample (including every image of a batched ``Image``) are translated together or
not at all, with one pool generator. Per-image decisions on a batch are what
:class:`handaug.SynthToReal` itself and :mod:`handaug.integrations.kornia` do. Draws come from
torch's global RNG (seeded per DataLoader worker), like torchvision's.

Images: ``uint8`` or float in ``[0, 1]``, 3 (RGB) channels, any size; outputs keep the input's
type (``Image``, ``Video``, PIL or plain tensor), shape, dtype and device. Generators are loaded
on first use in each process, so the transform pickles small for DataLoader workers.

**DataLoader workers and CUDA.** With ``device="cuda"`` each worker runs the generator on the
GPU; that needs ``DataLoader(..., multiprocessing_context="spawn")`` (or ``"forkserver"``).
CUDA does not work after ``fork``: in a forked worker the call raises
:class:`handaug.integrations.workers.CUDAInForkedProcessError` naming the ways that work.

**Batched GPU path (``defer=True``).** The transform draws what it draws without ``defer``
(``p`` and the pool member, one per call, from torch's global RNG) but translates nothing: the
sample must be a ``dict``, and a new ``dict`` comes back with the same values (the very same
objects) plus ``decision_key`` (``"synth_to_real"``): the ``int`` ``-1`` (not translated) or the
pool member. After the default collate (a ``(B,)`` tensor) and the transfer to the GPU,
:func:`handaug.integrations.batch.translate_batch` translates the chosen images in one call
(``handaug.integrations.lightning.SynthToRealCallback`` in Lightning). The translation then comes
after the whole pipeline: transforms placed after this one run before it (see
:mod:`handaug.integrations.batch`); put it last.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import PIL.Image
import torch
from torch.utils._pytree import tree_flatten
from torchvision import tv_tensors
from torchvision.transforms.v2 import Transform
from torchvision.transforms.v2 import functional as TF

import handaug
from handaug.arguments import check_flag, check_probability
from handaug.image_tensors import check_images, check_mask
from handaug.integrations.batch import DECISION_KEY, NOT_TRANSLATED
from handaug.integrations.workers import ForkGuard
from handaug.precision import Precision
from handaug.synth_to_real import MaskMode, PathLike

__all__ = ["SynthToReal"]

#: What a forked worker's error proposes instead of CUDA in workers.
_BATCHED_PATH = (
    "defer=True in the workers' transform and handaug.integrations.batch.translate_batch on the collated batch "
    "on the GPU (handaug.integrations.lightning.SynthToRealCallback in Lightning)"
)


def _is_plain_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and not isinstance(value, tv_tensors.TVTensor)


def _hand_masks(mask: torch.Tensor, lead: tuple[int, ...], size: tuple[int, int]) -> torch.Tensor:
    """The sample's hand ``mask`` for images of leading shape ``lead`` and ``size`` → ``(N, 1, H, W)``
    (bool, or float alpha), N = the number of images. See the module docstring for the shapes."""
    m = mask.as_subclass(torch.Tensor)
    if m.ndim < 2 or tuple(m.shape[-2:]) != size:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not match the image size {size[0]}×{size[1]}")
    if not m.dtype.is_floating_point:
        m = m != 0
    n = math.prod(lead)
    if tuple(m.shape[:-2]) == lead:  # one mask per image
        return m.reshape(n, 1, *size)
    union = (lambda t: t.any(dim=-3)) if m.dtype == torch.bool else (lambda t: t.amax(dim=-3))
    if m.ndim >= 3 and tuple(m.shape[:-3]) == lead:  # instance masks per image
        return union(m).reshape(n, 1, *size)
    if m.ndim == 3:  # instance masks shared by every image
        return union(m).reshape(1, 1, *size).expand(n, 1, *size)
    if m.ndim == 2:
        return m.reshape(1, 1, *size).expand(n, 1, *size)
    raise ValueError(
        f"mask of shape {tuple(mask.shape)} does not fit images of leading shape {lead}: expected (H, W), "
        f"(K, H, W) or one mask per image {(*lead, 'H', 'W')}"
    )


class SynthToReal(Transform):
    """Translate the sample's images from the synthetic to the real domain with trained H-GAN generators.

    Args:
        ckpt: a handaug generator checkpoint (directory or ``.safetensors``) or a list of them
            (a pool: one generator drawn per call).
        p: probability that a call (a sample) is translated.
        device: where the generators run; ``None``: where the images are.
        mask_mode: ``"composite"``: with ``use_mask``, keep the background bit-exact; ``"none"``:
            translate whole images.
        use_mask: take the hand mask from the sample's ``tv_tensors.Mask`` (exactly one needed).
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``: see :class:`handaug.SynthToReal`.
        hand_crop: with a mask, translate only a box around each hand (faster for small hands).
        crop_margin: padding around the hand box, as a fraction of its larger side.
        compile: ``torch.compile`` the generators.
        defer: draw the decision but translate nothing; the sample (a ``dict``) comes back with
            ``decision_key`` added, for :func:`handaug.integrations.batch.translate_batch`.
        decision_key: the sample key of the deferred decision (default ``"synth_to_real"``).

    Raises:
        ValueError: a bad argument; at call time, images that are not 3-channel uint8/float in
            ``[0, 1]``, or (with ``use_mask``) a sample without exactly one fitting ``Mask``; with
            ``defer``, a sample that is not a ``dict`` or already has ``decision_key``.
        handaug.integrations.workers.CUDAInForkedProcessError: at call time, ``device="cuda"``
            (without ``defer``) in a forked process such as a forked DataLoader worker.
    """

    # Masks take part so that make_params sees them; transform() returns them untouched.
    _transformed_types = (tv_tensors.Image, tv_tensors.Video, tv_tensors.Mask, PIL.Image.Image, _is_plain_tensor)

    def __init__(
        self,
        ckpt: PathLike | Sequence[PathLike],
        p: float = 1.0,
        device: str | torch.device | None = None,
        mask_mode: MaskMode = "composite",
        *,
        use_mask: bool = False,
        precision: Precision = "auto",
        hand_crop: bool = False,
        crop_margin: float = 0.15,
        compile: bool = False,
        defer: bool = False,
        decision_key: str = DECISION_KEY,
    ) -> None:
        p = check_probability(p, "p")
        use_mask = check_flag(use_mask, "use_mask")
        defer = check_flag(defer, "defer")
        if not isinstance(decision_key, str) or not decision_key:
            raise ValueError(f"decision_key must be a non-empty string, got {decision_key!r}")
        super().__init__()
        # The core draws nothing: this transform decides per call, as torchvision's transforms do.
        self.translator = handaug.SynthToReal(
            ckpt, p=1.0, device=device, mask_mode=mask_mode, precision=precision,
            hand_crop=hand_crop, crop_margin=crop_margin, compile=compile,
        )  # fmt: skip
        self.p = p
        self.use_mask = use_mask
        self.defer = defer
        self.decision_key = decision_key
        self._fork_guard = ForkGuard("handaug.integrations.torchvision.SynthToReal", device, _BATCHED_PATH)

    def forward(self, *inputs: Any) -> Any:
        """torchvision's call; refuses CUDA in a forked process first (whatever ``p`` decides), and with
        ``defer`` returns the sample with its decision instead of translating it."""
        if not self.defer:
            self._fork_guard.check()
            return super().forward(*inputs)
        sample = inputs[0] if len(inputs) == 1 else inputs
        if not isinstance(sample, dict):
            raise ValueError(
                f"defer=True records the decision in the sample, so the sample must be a dict, got {type(sample).__name__}"
                f"{' of ' + str(len(inputs)) + ' inputs' if len(inputs) > 1 else ''}; e.g. {{'image': ..., 'mask': ...}}"
            )
        if self.decision_key in sample:
            raise ValueError(
                f"the sample already has {self.decision_key!r}: two deferred SynthToReal in one pipeline, or a key "
                "of that name; give this one another decision_key"
            )
        flat_inputs, _ = tree_flatten(sample)
        needs_transform = self._needs_transform_list(flat_inputs)
        params = self.make_params([x for x, needed in zip(flat_inputs, needs_transform) if needed])
        for x, needed in zip(flat_inputs, needs_transform):  # the checks of the per-sample path
            if needed and not isinstance(x, tv_tensors.Mask):
                images = x.as_subclass(torch.Tensor) if isinstance(x, torch.Tensor) else TF.pil_to_tensor(x)
                batch = self._checked(images)
                if params["apply"] and params["mask"] is not None:
                    lead, size = tuple(images.shape[:-3]), (int(images.shape[-2]), int(images.shape[-1]))
                    check_mask(_hand_masks(params["mask"], lead, size), batch, unbatched=False, argument="mask")
        decision = NOT_TRANSLATED if not params["apply"] else (params["pool_index"] or 0)
        return {**sample, self.decision_key: decision}

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Find the hand mask, decide whether this call translates and draw its pool generator."""
        mask = None
        if self.use_mask and self.translator.mask_mode == "composite":
            masks = [x for x in flat_inputs if isinstance(x, tv_tensors.Mask)]
            if len(masks) != 1:
                raise ValueError(f"use_mask=True needs exactly one tv_tensors.Mask in the sample, found {len(masks)}")
            mask = masks[0]
        apply = self.p >= 1.0 or (self.p > 0.0 and bool(torch.rand(1) < self.p))
        if not apply:
            return {"apply": False}
        pool = len(self.translator.checkpoints)
        pool_index = int(torch.randint(pool, (1,))) if pool > 1 else None
        return {"apply": True, "pool_index": pool_index, "mask": mask}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Translate one image-like input of the sample; masks (and, if not chosen, everything) pass unchanged."""
        if not params["apply"] or isinstance(inpt, tv_tensors.Mask):
            return inpt
        if isinstance(inpt, PIL.Image.Image):
            if inpt.mode != "RGB":
                raise ValueError(f"PIL images must be in mode 'RGB', got {inpt.mode!r} (use image.convert('RGB'))")
            return TF.to_pil_image(self._translate(TF.pil_to_tensor(inpt), params))
        out = self._translate(inpt.as_subclass(torch.Tensor), params)
        return out if _is_plain_tensor(inpt) else tv_tensors.wrap(out, like=inpt)

    @staticmethod
    def _checked(images: torch.Tensor) -> torch.Tensor:
        """``images`` ``(..., 3, H, W)`` checked → ``(N, 3, H, W)``."""
        if images.ndim < 3 or images.shape[-3] != 3:
            raise ValueError(f"images must have shape (..., 3, H, W) with 3 (RGB) channels, got {tuple(images.shape)}")
        return check_images(images.reshape(-1, *images.shape[-3:]), "images")

    def _translate(self, images: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
        """``images`` ``(..., 3, H, W)`` → translated, same shape; all images in one generator batch."""
        batch = self._checked(images)
        lead, size = tuple(images.shape[:-3]), (int(images.shape[-2]), int(images.shape[-1]))
        n = batch.shape[0]
        masks = None
        if params["mask"] is not None:
            masks = check_mask(_hand_masks(params["mask"], lead, size), batch, unbatched=False, argument="mask")
        assignment = None
        if params["pool_index"] is not None:
            assignment = torch.full((n,), params["pool_index"], dtype=torch.int64)
        return self.translator.translate(batch, masks, assignment=assignment).reshape(images.shape)

    def extra_repr(self) -> str:
        t = self.translator
        ckpt = t.ckpt_paths[0] if len(t.ckpt_paths) == 1 else t.ckpt_paths
        return (
            f"ckpt={ckpt!r}, p={self.p}, device={t.device}, mask_mode={t.mask_mode!r}, use_mask={self.use_mask}, "
            f"precision={t.precision!r}, hand_crop={t.hand_crop}"
        )
