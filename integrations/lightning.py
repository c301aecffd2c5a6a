"""The batched GPU path in a Lightning training loop: translate each training batch on the device.

>>> import lightning as L
>>> from handaug.integrations.lightning import SynthToRealCallback
>>> s2r = SynthToReal("runs/hgan/export", p=0.7, hand_mask_key="mask", defer=True)   # albumentations, in workers
>>> trainer = L.Trainer(callbacks=[SynthToRealCallback(s2r, image_key="image", mask_key="mask")])

Registered as a callback, it translates the training batch in ``on_train_batch_start``: after
Lightning moved the batch to the device (and after the module's ``on_after_batch_transfer``),
before ``training_step``. The batch is changed in place, so it must be a ``dict`` (or a
``list``, with integer keys). Validation, test and predict batches are left alone.

GPU augmentations in the module's ``on_after_batch_transfer`` (the kornia + Lightning
convention) run *before* that hook. If a photometric one must see the translated image, call
the object yourself first in that hook instead of registering it (any batch type, returns a
new batch)::

    def on_after_batch_transfer(self, batch, dataloader_idx):
        if self.trainer.training:
            batch = self.synth_to_real(batch)                  # SynthToRealCallback(...), not registered
            batch["image"] = self.photometric(batch["image"])  # e.g. kornia.augmentation.ColorJitter
        return batch

Decisions: with ``decision_key`` (default ``"synth_to_real"``) the batch carries the decisions
that deferred per-sample adapters (``defer=True``) drew in the workers, and
:func:`handaug.integrations.batch.translate_batch` applies them. With ``decision_key=None`` the
decisions are drawn now, per image, by ``s2r`` itself (a :class:`handaug.SynthToReal` or the
kornia adapter, each image with probability ``p``).

This module imports Lightning; ``import handaug`` does not import it.
"""

from __future__ import annotations

from typing import Any

from handaug.optional import require

# Without the train extra, importing this module raises one ImportError line naming it.
require("lightning", "train", needed_by=__name__)

import lightning as L

from handaug.arguments import is_integer
from handaug.integrations.batch import DECISION_KEY, Channels, core_translator, translate_batch
from handaug.synth_to_real import SynthToReal as CoreSynthToReal

__all__ = ["SynthToRealCallback"]

Key = str | int


class SynthToRealCallback(L.Callback):
    """Translate the images of each training batch on the device, in one call.

    Args:
        s2r: the transform whose generators translate: the deferred adapter of the per-sample
            pipeline (albumentations or torchvision, ``defer=True``), a :class:`handaug.SynthToReal`,
            or the kornia adapter. Its ``device``, ``precision``, ``mask_mode`` and ``hand_crop``
            apply.
        image_key: where the batch holds the images (a ``dict`` key, or an index into a
            ``list``/``tuple`` batch): ``(B, 3, H, W)`` (or ``(B, H, W, 3)`` with
            ``channels="last"``), uint8 or float in ``[0, 1]``.
        mask_key: where the batch holds the hand masks (``(B, H, W)`` or ``(B, 1, H, W)``), or
            ``None`` (the default): whole images are translated.
        decision_key: where the batch holds the deferred decisions (``(B,)`` int, ``-1`` for not
            translated); ``None`` draws them now with ``s2r``'s own ``p`` (a
            :class:`handaug.SynthToReal` or the kornia adapter only).
        channels: ``"first"`` or ``"last"``: where the images' channel dimension is.

    Raises:
        ValueError: a bad argument, naming it; at a batch, a missing key or images, masks or
            decisions that do not fit (see :func:`handaug.integrations.batch.translate_batch`).
    """

    def __init__(
        self,
        s2r: Any,
        image_key: Key = "image",
        mask_key: Key | None = None,
        decision_key: Key | None = DECISION_KEY,
        channels: Channels = "first",
    ) -> None:
        super().__init__()
        core_translator(s2r)  # raises unless s2r holds a handaug.SynthToReal
        if decision_key is None and not (isinstance(s2r, CoreSynthToReal) or hasattr(s2r, "generate_parameters")):
            kind = f"{type(s2r).__module__}.{type(s2r).__name__}"
            raise ValueError(
                f"decision_key=None draws the decisions on the batch, which {kind} cannot do "
                "(it decides per sample): give a handaug.SynthToReal or the kornia adapter, or record the "
                "decisions in the workers with defer=True and pass decision_key"
            )
        keys: dict[str, Key | None] = {}
        for name, key in (("image_key", image_key), ("mask_key", mask_key), ("decision_key", decision_key)):
            if key is not None and not (isinstance(key, str) or is_integer(key)):
                raise ValueError(f"{name} must be a dict key (str) or a list index (int), got {key!r}")
            keys[name] = int(key) if is_integer(key) else key  # type: ignore[call-overload]
        if image_key is None:
            raise ValueError("image_key must name the images of the batch, got None")
        if channels not in ("first", "last"):
            raise ValueError(f"channels must be 'first' or 'last', got {channels!r}")
        if channels == "last" and decision_key is None:
            raise ValueError("channels='last' needs decision_key: drawing on the batch takes (B, 3, H, W) images")
        self.s2r = s2r
        self.image_key: Key = keys["image_key"]  # type: ignore[assignment]
        self.mask_key = keys["mask_key"]
        self.decision_key = keys["decision_key"]
        self.channels: Channels = channels

    @staticmethod
    def _get(batch: Any, key: Key, name: str) -> Any:
        try:
            return batch[key]
        except (KeyError, IndexError, TypeError):
            held = f"keys {list(batch)}" if isinstance(batch, dict) else f"a {type(batch).__name__}"
            raise ValueError(f"{name}={key!r} is not in the batch ({held})") from None

    def translated_images(self, batch: Any) -> Any:
        """The batch's images translated (see the class docstring); the batch itself is not changed."""
        images = self._get(batch, self.image_key, "image_key")
        masks = None if self.mask_key is None else self._get(batch, self.mask_key, "mask_key")
        if self.decision_key is None:
            return self.s2r(images, mask=masks) if masks is not None else self.s2r(images)
        decisions = self._get(batch, self.decision_key, "decision_key")
        return translate_batch(self.s2r, images, decisions, masks, channels=self.channels)

    def __call__(self, batch: Any) -> Any:
        """A new batch of the same type (``dict``, ``list`` or ``tuple``) with the images translated."""
        images = self.translated_images(batch)
        if isinstance(batch, dict):
            return {**batch, self.image_key: images}
        if isinstance(batch, (list, tuple)):
            parts = list(batch)
            parts[self.image_key] = images  # type: ignore[index]
            return type(batch)(parts) if isinstance(batch, list) else tuple(parts)
        raise ValueError(f"the batch must be a dict, list or tuple, got {type(batch).__name__}")

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        """Translate the training batch in place, on the device, before ``training_step``."""
        if not isinstance(batch, (dict, list)):
            raise ValueError(
                f"SynthToRealCallback changes the batch in place, so it must be a dict or a list, got "
                f"{type(batch).__name__}; for other batches call it in on_after_batch_transfer: batch = callback(batch)"
            )
        batch[self.image_key] = self.translated_images(batch)  # type: ignore[index]
