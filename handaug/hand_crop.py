"""Hand-crop windows: translate only a padded box around each hand instead of the whole frame.

Hands of a batch are grouped by size: the height and the width of each image's padded hand box
are each rounded up to the next rung of a geometric ladder (ratio :data:`SIDE_RATIO`,
multiples of the generator's stride), and the images with the same (height, width) rungs share
that window size, so their crops stack into one tensor and run as one batch. Windows are
rectangles, not squares: a hand with spread fingers or a forearm has a long thin box, and a
square around it would translate ~1.5× more background. A batch of similar hands is one or a
few groups; a mix of small and large hands costs a few generator calls instead of padding every
crop to the largest hand. Gathering and pasting use index tensors: no Python loop over images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CropWindows:
    """Windows, one per image: top-left corners ``(N,)`` int64 and a shared height and width (pixels)."""

    top: torch.Tensor
    left: torch.Tensor
    height: int
    width: int

    def rows(self) -> torch.Tensor:
        return self.top[:, None] + torch.arange(self.height, device=self.top.device)

    def cols(self) -> torch.Tensor:
        return self.left[:, None] + torch.arange(self.width, device=self.left.device)


#: Consecutive crop sides differ by at most this factor (so a crop is at most 25 % wider than its hand box).
SIDE_RATIO = 1.25


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def side_ladder(largest: int, stride: int, smallest: int | None = None) -> list[int]:
    """Crop sides from ``smallest`` (default ``stride``; a multiple of it) up to at least ``largest``:
    multiples of ``stride``, each at most :data:`SIDE_RATIO` times the previous one (but at least
    one ``stride`` larger)."""
    rungs = [stride if smallest is None else _round_up(max(smallest, 1), stride)]
    while rungs[-1] < largest:
        rungs.append(max(rungs[-1] + stride, (int(rungs[-1] * SIDE_RATIO) // stride) * stride))
    return rungs


@dataclass(frozen=True)
class WindowGroup:
    """Images (indices into the batch) whose hands share one crop size, and their windows."""

    indices: torch.Tensor
    windows: CropWindows


def hand_window_groups(
    mask: torch.Tensor, margin: float, stride: int, min_side: int | None = None
) -> list[WindowGroup]:
    """Crop windows around the hands of ``mask`` ``(N, 1, H, W)`` (> 0 is hand), grouped by size.

    Each hand's bounding box grows by ``margin`` × its larger side on every side; its height and
    width are each rounded up to the ladder (see the module docstring), which starts at
    ``min_side`` (default ``stride``; give the smallest window the generator runs on, so that
    a hand of one pixel still gets a usable window), and capped by the stride-rounded image
    size. Windows are centred on their hand and shifted to stay inside the image where the
    image is large enough. Images without hand pixels are in no group
    (compositing leaves them unchanged anyway); an empty list means no image has a hand.
    """
    n, _, h, w = mask.shape
    hand = mask[:, 0] > 0
    any_rows, any_cols = hand.any(dim=2), hand.any(dim=1)  # (N, H), (N, W)
    present = any_rows.any(dim=1)
    ar_h = torch.arange(h, device=mask.device)
    ar_w = torch.arange(w, device=mask.device)
    top = torch.where(any_rows, ar_h, h).amin(dim=1)
    bottom = torch.where(any_rows, ar_h, -1).amax(dim=1) + 1
    left = torch.where(any_cols, ar_w, w).amin(dim=1)
    right = torch.where(any_cols, ar_w, -1).amax(dim=1) + 1
    box_h, box_w = (bottom - top).clamp_min(1), (right - left).clamp_min(1)
    pad = 2 * torch.ceil(torch.maximum(box_h, box_w).float() * margin).long()
    grown_h, grown_w = box_h + pad, box_w + pad
    centre_y, centre_x = (top + bottom) // 2, (left + right) // 2
    # One host sync for the batch: the sizes decide the groups.
    largest = int(torch.maximum(grown_h, grown_w).max())
    ladder = torch.tensor(side_ladder(largest, stride, min_side), device=mask.device)
    cap_h, cap_w = _round_up(h, stride), _round_up(w, stride)
    sides_h = ladder[torch.searchsorted(ladder, grown_h)].clamp(max=cap_h)
    sides_w = ladder[torch.searchsorted(ladder, grown_w)].clamp(max=cap_w)
    keys = sides_h * (cap_w + 1) + sides_w  # one integer per (height, width) pair
    groups = []
    for key in torch.unique(keys[present]).tolist():
        idx = ((keys == key) & present).nonzero().squeeze(1)
        side_h, side_w = divmod(int(key), cap_w + 1)
        win_top = (centre_y[idx] - side_h // 2).clamp(min=0, max=max(h - side_h, 0))
        win_left = (centre_x[idx] - side_w // 2).clamp(min=0, max=max(w - side_w, 0))
        groups.append(WindowGroup(idx, CropWindows(win_top, win_left, side_h, side_w)))
    return groups


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
