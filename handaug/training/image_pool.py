"""The history buffer of generated images that discriminators are trained on (Shrivastava et al.; CycleGAN)."""

from __future__ import annotations

from typing import Any

import torch

from handaug.arguments import check_int


class ImagePool:
    """Up to ``size`` previously generated images.

    :meth:`query` takes a batch of new translations and returns a batch of the same size: while
    the pool is filling, each new image is stored and returned; afterwards each new image is,
    with probability 0.5, swapped with a random stored one (which is returned instead), and
    otherwise returned as is. ``size = 0`` disables the pool.

    Random draws use torch's global generator (reproducible under ``seed_everything``). The
    content is part of Lightning checkpoints through :meth:`state_dict`, so a resumed run keeps
    the history it had.
    """

    def __init__(self, size: int = 50) -> None:
        self.size = check_int(size, "pool_size", 0)
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """``images``: ``(B, C, H, W)``, detached translations. Returns ``(B, C, H, W)``."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()) < 0.5:
                slot = int(torch.randint(self.size, ()).item())
                out.append(self.images[slot].to(image.dtype))
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "images": [im.cpu() for im in self.images]}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | None = None) -> None:
        if state.get("size") != self.size:
            raise ValueError(f"image pool of size {state.get('size')} in the checkpoint, this run's pool_size is {self.size}")
        self.images = [im.to(device) if device is not None else im for im in state["images"]]
