"""Pose consistency of several checkpoints against the same real-style oracles, with a flat-fill row.

    python pose_consistency_runs.py --runs 3 --out pose_consistency.md runs/A*/export

Trains ``--runs`` oracles with :func:`handaug.metrics.pose_benefit.train_oracles` (real-style
procedural hands only), then scores real-style hands, the untranslated synthetic hands, their
silhouettes filled with one flat colour (what a translation that erases the inside of the hand
gives) and each checkpoint's translations against the source keypoints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from handaug.metrics.pose_benefit import pose_test_set, train_oracles
from handaug.metrics.pose_consistency import pose_consistency


def flat_fill(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` uint8 images whose hand pixels (``masks`` ``(N, 1, H, W)``) all get the hand's mean colour."""
    hand = (masks > 0).expand_as(images)
    out = images.clone()
    for image, inside in zip(out, hand):
        for channel, where in zip(image, inside):
            if where.any():
                channel[where] = channel[where].float().mean().round().to(channel.dtype)
    return out


def add_oracle_arguments(parser: argparse.ArgumentParser, *, runs: int, out: str) -> None:
    """The oracle and test-set options shared with ``oracle_probe.py``."""
    parser.add_argument("--runs", type=int, default=runs, help="oracles trained with different seeds")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--train", type=int, default=2000, help="real-style training hands per oracle")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path(out))


def oracles_and_test_sets(args: argparse.Namespace):  # noqa: ANN201 - (oracles, synthetic EvalSet, real EvalSet)
    """Trains ``args.runs`` real-style oracles and renders the paired synthetic / real-style test hands."""
    oracles = train_oracles(image_size=args.image_size, n_train=args.train, epochs=args.epochs, width=args.width,
                            runs=args.runs, seed=0, show_progress=False)  # fmt: skip
    synthetic = pose_test_set("synthetic", image_size=args.image_size, n_test=args.test, seed=0, show_progress=False)
    real = pose_test_set("real", image_size=args.image_size, n_test=args.test, seed=0, show_progress=False)
    return oracles, synthetic, real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exports", nargs="+", type=Path, help="generator checkpoints (export folders)")
    add_oracle_arguments(parser, runs=3, out="pose_consistency.md")
    args = parser.parse_args()
    oracles, synthetic, real = oracles_and_test_sets(args)
    translators = {"flat fill": flat_fill, **{(path.parent.name if path.name == "export" else path.name): path for path in args.exports}}
    rows = pose_consistency(translators, oracles, synthetic, real, n_train=args.train)
    lines = ["| images | PCK@0.1 (%) | per oracle | mean error (px) |", "| --- | --- | --- | --- |"]
    for row in rows:
        per_oracle = ", ".join(f"{100 * value:.1f}" for value in row.pck)
        lines.append(f"| {row.label} | {100 * row.pck_mean:.1f} ± {100 * (row.pck_std or 0.0):.1f} | {per_oracle} | {row.error_mean:.2f} |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
