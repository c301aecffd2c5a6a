"""SynthToReal in an albumentations pipeline: random affine warp and flip, then synthetic-to-real translation.

    handaug-train --demo                       # once: trains the demo generator into handaug-demo/export
    python examples/albumentations_pipeline.py --ckpt handaug-demo/export --out examples-out/albumentations_pipeline.png

Runs procedural hands through the pipeline and through the same geometric transforms without
SynthToReal (same seeds), checks that the keypoints (2D, with the 3D joints as extra columns), the
masks and the backgrounds are identical, and writes a PNG: top row geometric only, bottom row translated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import albumentations as A
import numpy as np

from handaug.data.procedural import ProceduralHands
from handaug.integrations.albumentations import SynthToReal
from handaug.training.callbacks import write_png


def geometric() -> list[A.BasicTransform]:
    return [A.Affine(rotate=(-30, 30), scale=(0.8, 1.1), translate_percent=(-0.1, 0.1), p=1.0), A.HorizontalFlip(p=0.5)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default="handaug-demo/export", help="generator checkpoint (dir or .safetensors)")
    parser.add_argument("--out", type=Path, default=Path("examples-out/albumentations_pipeline.png"))
    parser.add_argument("--count", type=int, default=6, help="number of hands")
    args = parser.parse_args(argv)
    if not Path(args.ckpt).exists():
        sys.exit(f"no checkpoint at {args.ckpt}: run `handaug-train --demo` first (it writes handaug-demo/export)"
                 " or pass --ckpt")  # fmt: skip

    keypoint_params = A.KeypointParams(format="xy", remove_invisible=False)
    # hand_mask_key names the target that holds the hand mask (here the call's "mask"); without it
    # no mask is read and whole images are translated.
    pipeline = A.Compose([*geometric(), SynthToReal(args.ckpt, p=1.0, hand_mask_key="mask")], keypoint_params=keypoint_params)
    geometric_only = A.Compose(geometric(), keypoint_params=keypoint_params)

    hands = ProceduralHands("synthetic", image_size=128, length=args.count, seed=0)  # the demo trains on 128 px frames
    before, after = [], []
    for i in range(args.count):
        sample = hands[i]
        keypoints = np.concatenate([sample["keypoints_2d"], sample["keypoints_3d"]], axis=1)  # (21, 2 + 3)
        inputs = {"image": sample["image"], "mask": sample["mask"], "keypoints": keypoints}
        pipeline.set_random_seed(i)
        geometric_only.set_random_seed(i)
        out, ref = pipeline(**inputs), geometric_only(**inputs)
        assert np.array_equal(out["keypoints"], ref["keypoints"]), "keypoints changed"
        assert np.array_equal(out["mask"], ref["mask"]), "mask changed"
        background = ref["mask"] == 0
        assert np.array_equal(out["image"][background], ref["image"][background]), "background changed"
        before.append(ref["image"])
        after.append(out["image"])

    grid = np.concatenate([np.concatenate(before, axis=1), np.concatenate(after, axis=1)], axis=0)
    write_png(args.out, grid)
    print(f"{args.count} hands: keypoints (21 x 5: 2D + 3D) and masks identical to the geometric-only path, "
          f"backgrounds unchanged; wrote {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
