"""From reader samples to the tensors H-GAN trains on: crops, masks, normalisation, unpaired draws.

Tensor conventions used everywhere in training:

- ``image``: ``(3, H, W)`` float32 in ``[-1, 1]`` (``uint8 / 127.5 - 1``), RGB;
- ``mask``: ``(1, H, W)`` float32 in ``{0, 1}``, 1 on the hand; all ones when the source has no
  masks (so masking becomes a no-op) and ``has_mask`` is False.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from handaug.data.background import fill_uint8
from handaug.data.crops import CROP_MODES, CropMode, centroid_crop, hand_centred_crop
from handaug.data.pairing import PairKey, item_rng

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # never phone home from a data loader
import albumentations as A  # noqa: E402

log = logging.getLogger(__name__)

def crop_pipeline(crop_size: int, *, random: bool, load_size: int | None = None, hflip: bool = False) -> A.Compose:
    """Albumentations pipeline: optional resize of the shorter side to ``load_size``, then a
    random (training) or centre (validation) square crop of ``crop_size``, optional flip."""
    steps: list[Any] = []
    if load_size:
        steps.append(A.SmallestMaxSize(max_size=load_size))
    steps.append(A.RandomCrop(crop_size, crop_size) if random else A.CenterCrop(crop_size, crop_size))
    if hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    return A.Compose(steps)


def to_tensor_pair(image: np.ndarray, mask: np.ndarray | None, background: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(H, W, 3)`` uint8 + optional ``(H, W)`` uint8 mask → image in ``[-1, 1]`` and 0/1 mask tensors."""
    img = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
    if mask is None:
        return img, torch.ones(1, *img.shape[-2:])
    m = torch.from_numpy(np.ascontiguousarray(mask > 0)).float().unsqueeze(0)
    if background is not None:
        img = img * m + background * (1.0 - m)
    return img, m


class DomainDataset(Dataset):
    """One domain (synthetic or real): reader samples → cropped, normalised tensors.

    Items: ``{"image": (3, S, S) float32 [-1, 1], "mask": (1, S, S) float32 {0, 1},
    "has_mask": bool, "index": int}`` with ``S = crop_size``.

    An image that cannot be decoded (its header was fine when the folder was scanned) is skipped:
    the next one is used instead, a warning names it and :attr:`decode_failures` counts it (per
    process: each DataLoader worker counts its own).
    """

    def __init__(
        self,
        source: Any,
        indices: Sequence[int],
        crop_size: int,
        *,
        random_crop: bool,
        load_size: int | None = None,
        hflip: bool = False,
        background: float | None = None,
        crop_mode: CropMode = "hand",
        centroid_offset: tuple[int, int] | None = None,
        name: str = "images",
    ) -> None:
        self.source = source
        self.indices = list(indices)
        if not self.indices:
            raise ValueError(f"{name}: no images left to use")
        if crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode must be one of {CROP_MODES}, got {crop_mode!r}")
        self.crop_size = crop_size
        self.load_size = load_size
        self.random = random_crop or hflip
        self.pipeline = crop_pipeline(crop_size, random=random_crop, load_size=load_size, hflip=hflip)
        # Hand-centred crops replace the random crop for images that have a mask.
        self.hand_crops = random_crop and crop_mode == "hand"
        # Validation/test crops around the mask's centroid (shifted by the offset) for images with a mask.
        self.centroid_offset = None if random_crop or centroid_offset is None else tuple(int(v) for v in centroid_offset)
        self.resize = A.Compose([A.SmallestMaxSize(max_size=load_size)]) if load_size else None
        self.hflip = hflip
        self.background = background
        self.name = name
        self.decode_failures = 0

    def __len__(self) -> int:
        return len(self.indices)

    def _read(self, index: int) -> dict[str, Any]:
        for attempt in range(len(self.indices)):
            position = (index + attempt) % len(self.indices)
            try:
                return self.source[self.indices[position]]
            except OSError as err:
                self.decode_failures += 1
                log.warning("%s: skipping an undecodable image (%s); %d skipped so far", self.name, err, self.decode_failures)
        raise OSError(f"{self.name}: none of the images can be decoded")

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.item(index)

    def item(self, index: int, rng: np.random.Generator | None = None) -> dict[str, Any]:
        """Item ``index``; ``rng`` draws its random crop and flip (required when they are random)."""
        sample = self._read(index)
        image, mask = sample["image"], sample.get("mask")
        height, width = image.shape[:2]
        if (self.load_size or min(height, width)) < self.crop_size:
            where = sample.get("path", f"item {self.indices[index]}")
            raise ValueError(
                f"{self.name}: image {where} is {height}×{width}, smaller than the crop size {self.crop_size}; "
                "use a smaller crop_size/val_size or set load_size"
            )
        if self.random:
            if rng is None:
                raise ValueError(f"{self.name}: random crops need the item's random generator")
            # Albumentations keeps its own RNG, blind to seed_everything and to DataLoader workers:
            # seed it from the item's own generator, so an item's crop depends on its key only.
            self.pipeline.set_random_seed(int(rng.integers(0, 2**31 - 1)))
        if mask is not None and (self.hand_crops or (self.centroid_offset is not None and mask.any())):
            image, mask = self._hand_crop(image, mask, rng)
        elif mask is not None:
            out = self.pipeline(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        else:
            image = self.pipeline(image=image)["image"]
        image_t, mask_t = to_tensor_pair(image, mask, self.background)
        return {"image": image_t, "mask": mask_t, "has_mask": mask is not None, "index": self.indices[index]}


    def _hand_crop(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self.resize is not None:
            out = self.resize(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        fill = None if self.background is None else (fill_uint8(self.background),) * 3
        if self.centroid_offset is not None:
            return centroid_crop(image, mask, self.crop_size, self.centroid_offset, fill=255 if fill is None else fill[0])
        image, mask = hand_centred_crop(image, mask, self.crop_size, rng, fill)
        if self.hflip and rng.random() < 0.5:
            image, mask = np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(mask[:, ::-1])
        return image, mask


class UnpairedDataset(Dataset):
    """Pairs of one synthetic and one real item that have nothing to do with each other.

    Items are addressed by :class:`~handaug.data.pairing.PairKey` (training batches come from a
    :class:`~handaug.data.pairing.PairSampler`): the key names both images, and each image's
    random crop is drawn from a generator seeded by ``(seed, key)``, so an item's pixels are the
    same on any number of workers and after a resume. A plain integer ``i`` (validation, or a
    look at the data) is synthetic ``i % len(synthetic)`` with real ``i % len(real)``, with the
    crops epoch 0 would give; the length is that of the larger set.
    """

    def __init__(self, synthetic: DomainDataset, real: DomainDataset, *, seed: int = 0) -> None:
        self.synthetic = synthetic
        self.real = real
        self.seed = seed

    def __len__(self) -> int:
        return max(len(self.synthetic), len(self.real))

    def __getitem__(self, key: int | PairKey) -> dict[str, dict[str, Any]]:
        if not isinstance(key, PairKey):
            key = PairKey(0, int(key), int(key) % len(self.synthetic), int(key) % len(self.real))
        return {
            "synthetic": self.synthetic.item(key.synthetic, item_rng(self.seed, key, 0)),
            "real": self.real.item(key.real, item_rng(self.seed, key, 1)),
        }
