"""Hand-crop windows: every hand inside its window, size groups, exact gather/paste."""

from __future__ import annotations

import torch

from handaug.hand_crop import SIDE_RATIO, gather_windows, hand_window_groups, paste_windows, side_ladder


def boxes_mask(boxes, size=(100, 120)):
    mask = torch.zeros(len(boxes), 1, *size, dtype=torch.bool)
    for i, box in enumerate(boxes):
        if box is not None:
            t, l, b, r = box
            mask[i, 0, t:b, l:r] = True
    return mask


def test_ladder_rungs_are_stride_multiples_growing_by_at_most_the_ratio():
    rungs = side_ladder(500, 4)
    assert rungs[-1] >= 500 and all(r % 4 == 0 for r in rungs)
    assert all(b / a <= SIDE_RATIO or b - a == 4 for a, b in zip(rungs, rungs[1:]))


def test_similar_hands_share_one_window_size_and_different_ones_do_not():
    mask = boxes_mask([(10, 10, 40, 40), (50, 60, 81, 91), (5, 5, 95, 95), None])
    groups = hand_window_groups(mask, margin=0.1, stride=4)
    assert [g.indices.tolist() for g in groups] == [[0, 1], [2]]  # the image without a hand is in no group
    small, large = groups
    assert small.windows.height == small.windows.width and small.windows.height % 4 == 0
    assert large.windows.height == 100  # capped by the image (rounded to the stride)


def test_a_long_thin_hand_gets_a_rectangular_window():
    mask = boxes_mask([(10, 40, 90, 60)])  # 80 rows by 20 columns
    (group,) = hand_window_groups(mask, margin=0.1, stride=4)
    win = group.windows
    # 80 + 2 * 8 = 96 rows and 20 + 16 = 36 columns, each rounded up to a ladder rung
    assert 96 <= win.height <= 100 and 36 <= win.width < 48
    assert win.height % 4 == 0 and win.width % 4 == 0


def test_every_hand_lies_inside_its_window():
    torch.manual_seed(0)
    boxes = []
    for _ in range(20):
        t, l = torch.randint(0, 70, (2,)).tolist()
        h, w = torch.randint(3, 30, (2,)).tolist()
        boxes.append((t, l, t + h, l + w))
    mask = boxes_mask(boxes)
    for group in hand_window_groups(mask, margin=0.15, stride=4):
        win = group.windows
        for k, i in enumerate(group.indices.tolist()):
            t, l, b, r = boxes[i]
            top, left = int(win.top[k]), int(win.left[k])
            assert top <= t and left <= l and b <= top + win.height and r <= left + win.width
            assert top >= 0 and left >= 0 and top + win.height <= 100 and left + win.width <= 120


def test_gather_then_paste_is_the_identity_and_paste_touches_only_the_window():
    images = torch.rand(3, 3, 50, 60)
    mask = boxes_mask([(5, 5, 20, 20), (30, 40, 45, 58), (0, 0, 10, 10)], size=(50, 60))
    for group in hand_window_groups(mask, margin=0.1, stride=4):
        part = images[group.indices]
        crops = gather_windows(part, group.windows)
        assert crops.shape[-2:] == (group.windows.height, group.windows.width)
        assert torch.equal(paste_windows(part, crops, group.windows), part)
        pasted = paste_windows(part, torch.zeros_like(crops), group.windows)
        changed = (pasted != part).any(dim=1)
        assert int(changed.sum()) <= crops.shape[0] * group.windows.height * group.windows.width
        assert bool(changed.any())


def test_window_larger_than_a_tiny_image_replicates_edges():
    images = torch.rand(1, 3, 6, 7)
    mask = boxes_mask([(0, 0, 6, 7)], size=(6, 7))
    (group,) = hand_window_groups(mask, margin=0.5, stride=4)
    assert (group.windows.height, group.windows.width) == (8, 8)
    crops = gather_windows(images, group.windows)
    assert torch.equal(crops[..., :6, :7], images) and torch.equal(crops[..., 7, :7], images[..., 5, :])
    assert torch.equal(paste_windows(images, crops, group.windows), images)


def test_a_one_pixel_hand_gets_a_window_of_at_least_min_side_clipped_to_the_image():
    # A stray pixel and a 2×2 hand in the corner: windows of the generator's minimum size (16),
    # inside the image; in a 10-px-high image the window is clipped to the stride-rounded height.
    mask = boxes_mask([(50, 60, 51, 61), (98, 118, 100, 120)])
    (group,) = hand_window_groups(mask, margin=0.15, stride=4, min_side=16)
    win = group.windows
    assert (win.height, win.width) == (16, 16) and group.indices.tolist() == [0, 1]
    assert int(win.top[1]) + 16 == 100 and int(win.left[1]) + 16 == 120  # shifted inside, still covering the hand
    (group,) = hand_window_groups(boxes_mask([(4, 4, 5, 5)], size=(10, 50)), margin=0.15, stride=4, min_side=16)
    assert (group.windows.height, group.windows.width) == (12, 16)
    assert side_ladder(10, 4, smallest=16)[0] == 16 and side_ladder(10, 4)[0] == 4
