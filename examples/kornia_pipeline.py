"""SynthToReal with kornia on a (GPU) batch: hand-mask-aware translation, then a random affine sequential.

    handaug-train --demo                       # once: trains the demo generator into handaug-demo/export
    python examples/kornia_pipeline.py [--ckpt handaug-demo/export] [--out examples-out/kornia_pipeline.png]

Kornia gives intensity augmentations no masks, so the mask-aware translation is a direct call
before the geometric AugmentationSequential (the translation moves no pixel, so the order does not
matter for keypoints and masks). Also runs SynthToReal inside the sequential (whole frames
translated). Checks keypoints and masks against the geometric-only path and writes a PNG:
top row geometric only, bottom row translated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import kornia.augmentation as K
import torch

from handaug.data.procedural import ProceduralHands
from handaug.integrations.kornia import SynthToReal
from handaug.training.callbacks import write_png


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default="handaug-demo/export", help="generator checkpoint (dir or .safetensors)")
    parser.add_argument("--out", type=Path, default=Path("examples-out/kornia_pipeline.png"))
    parser.add_argument("--count", type=int, default=6, help="batch size")
    args = parser.parse_args(argv)
    if not Path(args.ckpt).exists():
        sys.exit(f"no checkpoint at {args.ckpt}: run `handaug-train --demo` first (it writes handaug-demo/export)"
                 " or pass --ckpt")  # fmt: skip
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    hands = ProceduralHands("synthetic", image_size=128, length=args.count, seed=0)  # the demo trains on 128 px frames
    samples = [hands[i] for i in range(args.count)]
    images = torch.stack([torch.from_numpy(s["image"]).permute(2, 0, 1) for s in samples]).to(device).float() / 255
    masks = torch.stack([torch.from_numpy(s["mask"] > 0) for s in samples]).to(device).unsqueeze(1).float()
    keypoints = torch.stack([torch.from_numpy(s["keypoints_2d"]) for s in samples]).to(device)

    def geometry() -> K.AugmentationSequential:
        return K.AugmentationSequential(K.RandomAffine(degrees=30.0, scale=(0.8, 1.1), p=1.0),
                                        data_keys=["input", "keypoints", "mask"])  # fmt: skip

    translated = SynthToReal(args.ckpt, p=1.0)(images, mask=masks)  # only the hands change
    torch.manual_seed(0)
    ref_images, ref_keypoints, ref_masks = geometry()(images, keypoints, masks)
    torch.manual_seed(0)
    out_images, out_keypoints, out_masks = geometry()(translated, keypoints, masks)
    assert torch.equal(out_keypoints, ref_keypoints) and torch.equal(out_masks, ref_masks), "targets changed"

    affine = K.RandomAffine(degrees=30.0, scale=(0.8, 1.1), p=1.0)
    inside = K.AugmentationSequential(affine, SynthToReal(args.ckpt, p=0.5), data_keys=["input", "keypoints", "mask"])
    torch.manual_seed(0)
    _, in_keypoints, in_masks = inside(images, keypoints, masks)
    assert torch.equal(in_keypoints, ref_keypoints) and torch.equal(in_masks, ref_masks), "targets changed"

    grid = torch.cat([torch.cat(list(ref_images), dim=2), torch.cat(list(out_images), dim=2)], dim=1)
    rgb = grid.permute(1, 2, 0).mul(255).round().to(torch.uint8).cpu().numpy()
    write_png(args.out, rgb)
    print(f"{args.count} hands on {device}: keypoints and masks identical to the geometric-only path "
          f"(mask-aware direct call and inside the sequential); wrote {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
