"""SynthToReal in a torchvision transforms.v2 pipeline: random affine warp and flip, then synthetic-to-real translation.

    handaug-train --demo                       # once: trains the demo generator into handaug-demo/export
    python examples/torchvision_pipeline.py [--ckpt handaug-demo/export] [--out examples-out/torchvision_pipeline.png]

Each sample holds an Image, its hand Mask (used for compositing: use_mask=True), 2D KeyPoints, 3D
joints (a plain tensor), a box and a label. Checks every target against the geometric-only path
(same seeds) and writes a PNG: top row geometric only, bottom row translated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from handaug.data.procedural import ProceduralHands
from handaug.integrations.torchvision import SynthToReal
from handaug.training.callbacks import write_png


def to_sample(hand: dict, size: int) -> dict:
    mask = torch.from_numpy(hand["mask"])
    ys, xs = torch.nonzero(mask, as_tuple=True)
    box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()[None]
    return {
        "image": tv_tensors.Image(torch.from_numpy(hand["image"]).permute(2, 0, 1)),
        "mask": tv_tensors.Mask(mask),
        "keypoints": tv_tensors.KeyPoints(torch.from_numpy(hand["keypoints_2d"]), canvas_size=(size, size)),
        "joints_3d": torch.from_numpy(hand["keypoints_3d"]),
        "boxes": tv_tensors.BoundingBoxes(box, format="XYXY", canvas_size=(size, size)),
        "label": 1,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default="handaug-demo/export", help="generator checkpoint (dir or .safetensors)")
    parser.add_argument("--out", type=Path, default=Path("examples-out/torchvision_pipeline.png"))
    parser.add_argument("--count", type=int, default=6, help="number of hands")
    args = parser.parse_args(argv)
    if not Path(args.ckpt).exists():
        sys.exit(f"no checkpoint at {args.ckpt}: run `handaug-train --demo` first (it writes handaug-demo/export)"
                 " or pass --ckpt")  # fmt: skip

    geometric = [v2.RandomAffine(degrees=30, translate=(0.1, 0.1), scale=(0.8, 1.1)), v2.RandomHorizontalFlip()]
    pipeline = v2.Compose([*geometric, SynthToReal(args.ckpt, p=1.0, use_mask=True)])
    geometric_only = v2.Compose(geometric)

    hands = ProceduralHands("synthetic", image_size=128, length=args.count, seed=0)  # the demo trains on 128 px frames
    before, after = [], []
    for i in range(args.count):
        sample = to_sample(hands[i], 128)
        torch.manual_seed(i)
        out = pipeline(sample)
        torch.manual_seed(i)
        ref = geometric_only(sample)
        for key in ("keypoints", "joints_3d", "boxes", "mask"):
            assert torch.equal(out[key], ref[key]), f"{key} changed"
        background = (ref["mask"] == 0).expand_as(ref["image"])
        assert torch.equal(out["image"][background], ref["image"][background]), "background changed"
        before.append(ref["image"])
        after.append(out["image"])

    grid = torch.cat([torch.cat(before, dim=2), torch.cat(after, dim=2)], dim=1).permute(1, 2, 0).numpy()
    write_png(args.out, grid)
    print(f"{args.count} hands: keypoints (2D and 3D), boxes and masks identical to the geometric-only path, "
          f"backgrounds unchanged; wrote {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
