"""Hand-crop windows: translate only a padded box around each hand instead of the whole frame.

All windows of a batch share one square side (the largest padded hand box, rounded up to the
generator's stride and capped by the image), so the crops stack into one tensor and run as one
batch. Gathering and pasting use index tensors: no Python loop over images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CropWindows:
    """Square windows, one per image: top-left corners ``(N,)`` and a shared side/size."""

    top: torch.Tensor
    left: torch.Tensor
    height: int
    width: int

    def rows(self) -> torch.Tensor:
        return self.top[:, None] + torch.arange(self.height, device=self.top.device)

    def cols(self) -> torch.Tensor:
        return self.left[:, None] + torch.arange(self.width, device=self.left.device)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def hand_windows(mask: torch.Tensor, margin: float, stride: int) -> CropWindows | None:
    """Windows around the hands of ``mask`` ``(N, 1, H, W)`` (> 0 is hand); ``None`` if no image has a hand.

    Each hand's bounding box grows by ``margin`` × its larger side on every side; the shared
    side is the largest grown box, rounded up to ``stride`` and at most the (stride-rounded)
    image size. Windows are centred on their hand and shifted to stay inside the image where
    the image is large enough. Images without hand pixels get a window too (their pixels are
    left alone by compositing).
    """
    n, _, h, w = mask.shape
    hand = mask[:, 0] > 0
    any_rows, any_cols = hand.any(dim=2), hand.any(dim=1)  # (N, H), (N, W)
    present = any_rows.any(dim=1)
    if not bool(present.any()):
        return None
    ar_h = torch.arange(h, device=mask.device)
    ar_w = torch.arange(w, device=mask.device)
    top = torch.where(any_rows, ar_h, h).amin(dim=1)
    bottom = torch.where(any_rows, ar_h, -1).amax(dim=1) + 1
    left = torch.where(any_cols, ar_w, w).amin(dim=1)
    right = torch.where(any_cols, ar_w, -1).amax(dim=1) + 1
    extent = torch.maximum(bottom - top, right - left).clamp_min(1)
    grown = extent + 2 * torch.ceil(extent.float() * margin).long()
    side = int(grown[present].max())  # the one host sync: the shared crop size
    side_h = min(_round_up(side, stride), _round_up(h, stride))
    side_w = min(_round_up(side, stride), _round_up(w, stride))
    centre_y = torch.where(present, (top + bottom) // 2, h // 2)
    centre_x = torch.where(present, (left + right) // 2, w // 2)
    win_top = (centre_y - side_h // 2).clamp(min=0, max=max(h - side_h, 0))
    win_left = (centre_x - side_w // 2).clamp(min=0, max=max(w - side_w, 0))
    return CropWindows(win_top, win_left, side_h, side_w)


def gather_windows(images: torch.Tensor, windows: CropWindows) -> torch.Tensor:
    """Cut the windows out of ``images`` ``(N, C, H, W)`` → ``(N, C, side_h, side_w)``.

    A window larger than the image (tiny images) is filled by replicating the edge pixels.
    """
    n, c, h, w = images.shape
    rows = windows.rows().clamp(max=h - 1)  # (N, S_h)
    cols = windows.cols().clamp(max=w - 1)  # (N, S_w)
    batch = torch.arange(n, device=images.device)[:, None, None]
    crops = images.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, S_h, S_w, C)
    return crops.permute(0, 3, 1, 2)


def paste_windows(target: torch.Tensor, crops: torch.Tensor, windows: CropWindows) -> torch.Tensor:
    """Write ``crops`` back into a copy of ``target`` ``(N, C, H, W)`` at ``windows`` (parts outside the image dropped)."""
    n, c, h, w = target.shape
    rows, cols = windows.rows(), windows.cols()
    valid = (rows[:, :, None] < h) & (cols[:, None, :] < w)  # (N, S_h, S_w)
    batch = torch.arange(n, device=target.device)[:, None, None].expand_as(valid)
    r = rows[:, :, None].expand_as(valid)
    cc = cols[:, None, :].expand_as(valid)
    out = target.permute(0, 2, 3, 1).clone()
    out[batch[valid], r[valid], cc[valid]] = crops.permute(0, 2, 3, 1)[valid]
    return out.permute(0, 3, 1, 2)
