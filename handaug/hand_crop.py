"""Hand-crop windows: translate only a padded box around each hand instead of the whole frame.

Each hand's bounding box grows by a margin; its height and width are each rounded up to the next
rung of a geometric ladder (ratio :data:`SIDE_RATIO`, multiples of the generator's stride), so
window sizes come from a small fixed set whatever the batch (compiled generators and cuDNN's
algorithm caches see a bounded set of shapes). The hands are then split into at most
``max_groups`` groups (default :data:`MAX_GROUPS`), each translated in one generator call at one
window size: the largest height and width of its members. The split is the one that translates
the fewest pixels, found by dynamic programming over the hands sorted by window area, by height and
by width. Windows are rectangles, not squares: a hand with spread fingers or a forearm has a long
thin box, and a square around it would translate about 1.5× more background.

On a GPU the whole computation costs one read of the device by the host (the window sizes, which
decide the shapes), through :func:`handaug.device_sync.to_host`; the bucketing runs on the host in
numpy, and the index tensors go back from pinned memory without waiting. Gathering and pasting are
one indexing kernel each per group: no Python loop over images and no boolean-mask indexing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from handaug import device_sync
from handaug.arguments import check_int


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
#: Generator calls per batch at most: each is a kernel launch sequence, and on a GPU a call on a
#: few small crops costs about as much as on many.
MAX_GROUPS = 3


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


def _hand_boxes(mask: torch.Tensor, margin: float) -> torch.Tensor:
    """``(5, N)`` int64 on the mask's device: hand present (0/1), grown box height and width, box centre y and x."""
    _, _, h, w = mask.shape
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
    return torch.stack([present.long(), box_h + pad, box_w + pad, (top + bottom) // 2, (left + right) // 2])


def _segment_costs(heights: np.ndarray, widths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``cost[i, j]`` (j > i): pixels translated if items ``i..j-1`` share one window (their largest sides)."""
    n = len(heights)
    cost = np.full((n + 1, n + 1), np.inf)
    csum = np.concatenate([[0], np.cumsum(counts)])
    for i in range(n):
        seg_h = np.maximum.accumulate(heights[i:])
        seg_w = np.maximum.accumulate(widths[i:])
        cost[i, i + 1 :] = (csum[i + 1 :] - csum[i]) * seg_h * seg_w
    return cost


def _best_split(cost: np.ndarray, max_groups: int) -> tuple[float, list[int]]:
    """Fewest pixels over splits of ``0..n`` into at most ``max_groups`` contiguous segments: (cost, the
    segments' starts after the first, then ``n``)."""
    n = cost.shape[0] - 1
    best = cost[0].copy()  # best[j]: items 0..j-1 in one segment
    choices: list[np.ndarray] = []
    result, result_groups = best[n], 1
    for groups in range(2, max_groups + 1):
        total = best[:, None] + cost  # total[i, j]: items 0..i-1 in groups-1 segments, then i..j-1
        arg = np.argmin(total, axis=0)
        best = total[arg, np.arange(n + 1)]
        choices.append(arg)
        if best[n] < result:  # strictly fewer pixels: more calls only when they pay
            result, result_groups = best[n], groups
    cuts, j = [n], n
    for arg in reversed(choices[: result_groups - 1]):
        j = int(arg[j])
        cuts.append(j)
    return float(result), sorted(cuts)


def bucket_sizes(heights: np.ndarray, widths: np.ndarray, max_groups: int = MAX_GROUPS) -> np.ndarray:
    """Group label ``(N,)`` for windows of ``heights`` × ``widths`` (host arrays): at most ``max_groups``
    groups, each to be run at its members' largest height and width, translating the fewest pixels."""
    sizes = np.stack([heights, widths], axis=1)
    unique, inverse, counts = np.unique(sizes, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    if len(unique) <= max_groups:
        return inverse
    best_cost, best_labels = np.inf, inverse
    for key in (unique[:, 0] * unique[:, 1], unique[:, 0], unique[:, 1]):
        order = np.lexsort((unique[:, 1], unique[:, 0], key))
        cost, cuts = _best_split(_segment_costs(unique[order, 0], unique[order, 1], counts[order]), max_groups)
        if cost < best_cost:
            label_of_sorted = np.searchsorted(np.asarray(cuts[:-1]), np.arange(len(unique)), side="right")
            labels_unique = np.empty(len(unique), dtype=np.int64)
            labels_unique[order] = label_of_sorted
            best_cost, best_labels = cost, labels_unique[inverse]
    return best_labels


def hand_window_groups(
    mask: torch.Tensor, margin: float, stride: int, min_side: int | None = None, max_groups: int = MAX_GROUPS
) -> list[WindowGroup]:
    """Crop windows around the hands of ``mask`` ``(N, 1, H, W)`` (> 0 is hand), in at most ``max_groups`` sizes.

    Each hand's bounding box grows by ``margin`` × its larger side on every side; its height and
    width are each rounded up to the ladder (see the module docstring), which starts at
    ``min_side`` (default ``stride``; give the smallest window the generator runs on, so that
    a hand of one pixel still gets a usable window), and capped by the stride-rounded image
    size. Hands are then grouped (:func:`bucket_sizes`) and each group's window is its members'
    largest height and width. Windows are centred on their hand and shifted to stay inside the
    image where the image is large enough. Images without hand pixels are in no group
    (compositing leaves them unchanged anyway); an empty list means no image has a hand.
    One host read of the device per call (:func:`handaug.device_sync.to_host`).
    """
    max_groups = check_int(max_groups, "max_groups", 1)
    _, _, h, w = mask.shape
    present, grown_h, grown_w, centre_y, centre_x = device_sync.to_host(_hand_boxes(mask, margin))
    chosen = np.flatnonzero(present)
    if not len(chosen):
        return []
    ladder = np.asarray(side_ladder(int(max(grown_h.max(), grown_w.max())), stride, min_side))
    cap_h, cap_w = _round_up(h, stride), _round_up(w, stride)
    sides_h = np.minimum(ladder[np.searchsorted(ladder, grown_h[chosen])], cap_h)
    sides_w = np.minimum(ladder[np.searchsorted(ladder, grown_w[chosen])], cap_w)
    labels = bucket_sizes(sides_h, sides_w, max_groups)
    plan = []
    for label in np.unique(labels):
        members = labels == label
        idx = chosen[members]
        side_h, side_w = int(sides_h[members].max()), int(sides_w[members].max())
        top = np.clip(centre_y[idx] - side_h // 2, 0, max(h - side_h, 0))
        left = np.clip(centre_x[idx] - side_w // 2, 0, max(w - side_w, 0))
        plan.append((idx, top, left, side_h, side_w))
    # One host-to-device copy for every group's indices and corners.
    flat = device_sync.to_device(np.concatenate([np.concatenate([i, t, l]) for i, t, l, _, _ in plan]), mask.device)
    groups, offset = [], 0
    for idx, _, _, side_h, side_w in plan:
        k = len(idx)
        part = flat[offset : offset + 3 * k]
        offset += 3 * k
        groups.append(WindowGroup(part[:k], CropWindows(part[k : 2 * k], part[2 * k :], side_h, side_w)))
    return groups


def gather_windows(images: torch.Tensor, windows: CropWindows, indices: torch.Tensor | None = None) -> torch.Tensor:
    """Cut the windows out of ``images`` ``(N, C, H, W)`` (or out of its images ``indices``, one per
    window) → ``(len(windows), C, side_h, side_w)``, in one indexing kernel.

    A window larger than the image (tiny images) is filled by replicating the edge pixels.
    """
    n, c, h, w = images.shape
    rows = windows.rows().clamp(max=h - 1)  # (N, S_h)
    cols = windows.cols().clamp(max=w - 1)  # (N, S_w)
    batch = (torch.arange(n, device=images.device) if indices is None else indices)[:, None, None, None]
    channel = torch.arange(c, device=images.device)[None, :, None, None]
    return images[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def paste_windows(target: torch.Tensor, crops: torch.Tensor, windows: CropWindows) -> torch.Tensor:
    """Write ``crops`` back into a copy of ``target`` ``(N, C, H, W)`` at ``windows`` (parts outside the image dropped)."""
    return paste_windows_(target.clone(), crops, windows)


def paste_windows_(target: torch.Tensor, crops: torch.Tensor, windows: CropWindows, indices: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`paste_windows` in place, into the images ``indices`` of ``target`` (all if ``None``).

    A window is shifted inside the image whenever the image is large enough, so only windows
    larger than the image overhang it, and then by the same amount for every window of the
    group: the pasted part is one rectangle, the same for all.
    """
    n, c, h, w = crops.shape[0], crops.shape[1], target.shape[-2], target.shape[-1]
    valid_h, valid_w = min(windows.height, h), min(windows.width, w)
    rows = windows.rows()[:, :valid_h]
    cols = windows.cols()[:, :valid_w]
    batch = torch.arange(n, device=target.device) if indices is None else indices
    channel = torch.arange(c, device=target.device)[None, :, None, None]
    target.index_put_(
        (batch[:, None, None, None], channel, rows[:, None, :, None], cols[:, None, None, :]),
        crops[..., :valid_h, :valid_w].to(target.dtype),
    )
    return target
