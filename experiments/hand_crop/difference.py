"""How far hand-crop translation is from full-frame translation, inside the hands, on a checkpoint.

    python experiments/hand_crop/difference.py handaug-demo/export

64 evaluation hands of 128 px (the procedural ``fid_synthetic`` set of handaug-eval, green-screen
background), translated by ``SynthToReal`` full frame and with ``hand_crop=True`` at margins 0.15
and 0.3, in batches of 64 and of 8 (hand-crop windows are shared within a batch, so the batch
matters); prints the mean and largest uint8 difference over the hand pixels, for fp32 and the
default precision. The README's hand-crop figures come from this script.
"""

from __future__ import annotations

import sys

import torch

import handaug
from handaug.metrics.eval_data import procedural_set, role_seed


def hand_difference(a: torch.Tensor, b: torch.Tensor, masks: torch.Tensor) -> tuple[float, int]:
    d = (a.int() - b.int()).abs()[masks.expand_as(a) > 0].float()
    return float(d.mean()), int(d.max())


def main() -> None:
    ckpt = sys.argv[1] if len(sys.argv) > 1 else "handaug-demo/export"
    hands = procedural_set("synthetic", 64, role_seed(0, "fid_synthetic"), image_size=128, background="keep")
    images = hands.images
    masks = hands.masks if hands.masks.ndim == 4 else hands.masks.unsqueeze(1)
    print(f"{ckpt}: 64 hands at 128 px, hands {100 * masks.float().mean():.1f} % of the frame")
    for precision in ("fp32", "auto"):
        full = handaug.SynthToReal(ckpt, precision=precision)(images, mask=masks)
        by_batch = {}
        for margin in (0.15, 0.3):
            for batch in (64, 8):
                s2r = handaug.SynthToReal(ckpt, precision=precision, hand_crop=True, crop_margin=margin)
                crop = torch.cat([s2r(images[i : i + batch], mask=masks[i : i + batch]) for i in range(0, 64, batch)])
                by_batch[(margin, batch)] = crop
                mean, largest = hand_difference(crop, full, masks)
                print(f"{precision:>5} margin {margin:<4} batch {batch:>2}: hand pixels vs full frame {mean:.2f} mean, {largest} max")
        mean, largest = hand_difference(by_batch[(0.15, 64)], by_batch[(0.15, 8)], masks)
        print(f"{precision:>5} margin 0.15: batch 64 vs batch 8 {mean:.2f} mean, {largest} max")


if __name__ == "__main__":
    main()
