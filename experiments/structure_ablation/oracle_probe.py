"""What does the real-style keypoint oracle respond to? Hand-made changes of the synthetic hands, scored like translations.

    python oracle_probe.py --runs 2 --out oracle_probe.md [LABEL=EXPORT_DIR ...]

Trains ``--runs`` oracles (:func:`handaug.metrics.pose_benefit.train_oracles`, real-style
procedural hands only) and scores them, against the source keypoints, on the untranslated
synthetic hands, on real-style renderings of the same hands, and on the synthetic hands changed
inside their masks by one thing at a time: the skin recoloured to a mean real skin tone (shading
kept), desaturated, blurred, noised, or given a green fringe like the real renderings' green-screen
spill. Optional checkpoints are scored the same way. Issue 13 used it to find that the oracle
reads skin colour, not blur or noise, so a translation closes the pose gap by moving the hands'
colours, which is what the demo's ``colour_statistics`` term asks for.
"""

from __future__ import annotations

import argparse

import kornia
import torch
import torch.nn.functional as F
from pose_consistency_runs import add_oracle_arguments, oracles_and_test_sets

from handaug.metrics.eval_data import translate_set
from handaug.metrics.pose_benefit import score_models

SYNTHETIC_SKIN = (242.0, 150.0, 118.0)  # the synthetic style's albedo (handaug.data.procedural)
MEAN_REAL_SKIN = (170.0, 120.0, 92.0)  # about the middle of the real style's skin ramp


def luma(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def probes(images: torch.Tensor, masks: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """``{label: (N, 3, H, W) uint8}``: each change applied inside ``masks`` only."""
    x, m = images.float(), (masks > 0).float()
    noise = torch.Generator().manual_seed(seed)

    def inside(y: torch.Tensor) -> torch.Tensor:
        return (m * y.clamp(0, 255) + (1 - m) * x).round().to(torch.uint8)

    shading = luma(x) / luma(torch.tensor(SYNTHETIC_SKIN).view(1, 3, 1, 1))
    recoloured = torch.tensor(MEAN_REAL_SKIN).view(1, 3, 1, 1) * shading
    edge = m + F.max_pool2d(-m, 3, 1, 1)  # the mask's one-pixel inner border
    green = torch.tensor([50.0, 150.0, 50.0]).view(1, 3, 1, 1)
    return {
        "skin recoloured to a mean real tone": inside(recoloured),
        "desaturated by half": inside(0.5 * x + 0.5 * luma(x)),
        "blurred (sigma 1 px)": inside(kornia.filters.gaussian_blur2d(x, (7, 7), (1.0, 1.0))),
        "sensor noise (std 6)": inside(x + 6 * torch.randn(x.shape, generator=noise)),
        "green fringe (spill)": inside(x * (1 - 0.5 * edge) + 0.5 * edge * green),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exports", nargs="*", help="LABEL=EXPORT_DIR checkpoints to score too")
    add_oracle_arguments(parser, runs=2, out="oracle_probe.md")
    args = parser.parse_args()
    oracles, synthetic, real = oracles_and_test_sets(args)
    sets = {"synthetic (no change)": synthetic.images, "real-style renderings": real.images,
            **probes(synthetic.images, synthetic.masks)}  # fmt: skip
    for spec in args.exports:
        label, _, path = spec.partition("=")
        sets[label] = translate_set(path, synthetic, name=label).images
    lines = ["| images | PCK@0.1 (%) per oracle | mean | mean error (px) |", "| --- | --- | --- | --- |"]
    for label, images in sets.items():
        row = score_models(label, oracles, synthetic.with_images(images), n_train=args.train)
        per_oracle = ", ".join(f"{100 * value:.1f}" for value in row.pck)
        lines.append(f"| {label} | {per_oracle} | {100 * row.pck_mean:.1f} | {row.error_mean:.2f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
