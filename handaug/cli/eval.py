"""``handaug-eval``: is a trained checkpoint any good? The paper's measures, and whether it helps a pose model.

    handaug-eval all --ckpt runs/hgan/export                      # everything, report in ./handaug-eval/
    handaug-eval fid --ckpt msH-GAN4=a/export --ckpt CycleGAN=b/export --features inception
    handaug-eval fid --protocol hgan --ckpt a/export --synthetic synthhands:/data/SynthHands_Release --real realhands:/data/RealHands
    handaug-eval classifier --ckpt a/export --backbone vit_b_16 --device cuda
    handaug-eval shape --ckpt a/export
    handaug-eval structure --ckpt a/export --ckpt b/export --image-size 128
    handaug-eval pose-benefit --ckpt a/export --runs 3
    handaug-eval pose-consistency --ckpt a/export --save-oracle oracle.safetensors
    handaug-eval grid --ckpt a/export --ckpt b/export

Subcommands (each writes Markdown + CSV tables, PNGs, report.md and results.json into --out):

- ``fid``: FID and KID against real images (Table I), InceptionV3 features by default;
  ``--protocol hgan`` measures exactly as the H-GAN reference code (:mod:`handaug.metrics.hgan_protocol`);
- ``classifier``: the §IV-D Vision-Transformer tests (Tables II, III) and the confusion matrix (Fig. 7);
- ``shape``: IoU of the silhouette the generator draws itself (raw output, no compositing) with the source mask;
- ``structure``: how much of the hand's inner edges and shading the translation keeps (1 kept, 0 flat blob);
- ``pose-benefit``: a 2D keypoint regressor trained on synthetic vs translated hands, tested on real-style hands;
- ``pose-consistency``: a keypoint model trained on real-style hands only, run on the translations (source keypoints);
- ``grid``: sample grid, one row per checkpoint (Fig. 5);
- ``all``: all of the above.

The data are the built-in procedural hands unless ``--synthetic`` / ``--real`` name folders or
registered datasets (as for ``handaug-train``).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from handaug.cli.argument_types import batch_size, image_side, positive_int, seed, threads, torch_device
from handaug.data.background import FILL_NAMES
from handaug.metrics.hgan_protocol import REFERENCE_CROP_OFFSET, REFERENCE_CROP_SIZE, HganProtocol, run_hgan_protocol
from handaug.metrics.progress import seed_everything
from handaug.metrics.suite import EvalSettings, EvalSuite, parse_checkpoints

SUBCOMMANDS: dict[str, tuple[str, ...]] = {
    "fid": ("fid",),
    "classifier": ("classifier",),
    "shape": ("shape",),
    "structure": ("structure",),
    "pose-benefit": ("pose-benefit",),
    "pose-consistency": ("pose-consistency",),
    "grid": ("grid",),
    "all": ("fid", "classifier", "shape", "structure", "pose-benefit", "pose-consistency", "grid"),
}


def _odd_window(text: str) -> int:
    value = int(text)
    if value < 3 or value % 2 == 0:
        raise argparse.ArgumentTypeError(f"expected an odd integer >= 3, got {text}")
    return value


def _common_parser() -> argparse.ArgumentParser:
    d = EvalSettings()
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("checkpoints and data")
    g.add_argument("--ckpt", action="append", required=True, metavar="[LABEL=]PATH",
                   help="generator checkpoint (directory or .safetensors); repeat for several, one table row each")
    g.add_argument("--out", default="handaug-eval", help="report folder (default: %(default)s)")
    g.add_argument("--synthetic", default=d.synthetic, help="synthetic source: procedural, a folder, or NAME:ROOT")
    g.add_argument("--real", default=d.real, help="real source: procedural, a folder, or NAME:ROOT")
    g.add_argument("--synthetic-masks", help="mask pattern of a synthetic folder, e.g. '{stem}_mask.png'")
    g.add_argument("--real-masks", help="mask pattern of a real folder")
    g.add_argument("--image-size", type=image_side, default=d.image_size,
                   help="square evaluation size in px, 16 to 4096, e.g. 128 for checkpoints trained on larger hands; a multiple of 16 "
                        "for the pose measures (default: %(default)s)")
    g.add_argument("--background", choices=FILL_NAMES, default=d.background,
                   help="what the background outside the hand masks becomes, as in training (default: %(default)s)")
    g.add_argument("--seed", type=seed, default=d.seed,
                   help="seed of every data set, network and sample, 0 to 2^32-1 (default: %(default)s)")
    g.add_argument("--device", type=torch_device, default=d.device, help="torch device: cpu, cuda, cuda:N, mps (default: %(default)s)")
    g.add_argument("--batch-size", type=batch_size, default=d.batch_size)
    g.add_argument("--threads", type=threads, help="torch CPU threads, 1 to 1024 (default: torch's choice)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _add_fid(p: argparse.ArgumentParser, d: EvalSettings) -> None:
    g = p.add_argument_group("FID / KID")
    g.add_argument("--fid-images", type=positive_int, default=None,
                   help=f"images per set (paper: 2000; default: {d.fid_images}, 2000 with --protocol hgan)")
    g.add_argument("--features", default=d.features,
                   help="registered feature extractor: inception (FID's InceptionV3, needs its weights) or random_conv "
                        "(tiny random CNN: ranks checkpoints, not FID values) (default: %(default)s)")
    g.add_argument("--inception-weights", help="path to weights-inception-2015-12-05-6726825d.pth or pt_inception-2015-12-05-6726825d.pth")
    g.add_argument("--kid-subsets", type=positive_int, default=d.kid_subsets)
    g.add_argument("--kid-subset-size", type=positive_int, default=d.kid_subset_size)


def _add_protocol(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("protocol")
    g.add_argument("--protocol", choices=("handaug", "hgan"), default="handaug",
                   help="handaug: images resized and centre-cropped to --image-size, translations composited, torchmetrics; "
                        "hgan: the H-GAN reference code's test (centroid crops at native resolution, raw generator output, "
                        "JPEG round trip, torch-fidelity, KID subsets of n/10; --image-size is then only the procedural "
                        "hands' size and --kid-subset-size is not used) (default: %(default)s)")
    g.add_argument("--crop-size", type=image_side, default=REFERENCE_CROP_SIZE,
                   help="hgan: side of the centroid crop, 16 to 4096 px (default: %(default)s)")
    g.add_argument("--crop-offset", type=int, nargs=2, default=list(REFERENCE_CROP_OFFSET), metavar=("DX", "DY"),
                   help="hgan: shift of the crop from the mask centroid, px right and down (default: 20 -100)")


def _run_hgan_protocol(args: argparse.Namespace) -> None:
    s = settings_from_args(args)
    settings = HganProtocol(
        n_images=args.fid_images or HganProtocol.n_images, crop_size=args.crop_size, crop_offset=tuple(args.crop_offset),
        kid_subsets=args.kid_subsets, features=args.features, inception_weights=args.inception_weights,
        procedural_size=args.image_size, background=args.background, synthetic=args.synthetic, real=args.real,
        synthetic_masks=args.synthetic_masks, real_masks=args.real_masks, seed=args.seed, device=args.device,
        batch_size=args.batch_size, show_progress=s.show_progress,
    )
    run_hgan_protocol(parse_checkpoints(args.ckpt), args.out, settings)
    print(f"report: {args.out}/report.md")


def _add_classifier(p: argparse.ArgumentParser, d: EvalSettings) -> None:
    g = p.add_argument_group("domain classifier (Tables II, III)")
    g.add_argument("--backbone", choices=("vit_small", "vit_b_16"), default=d.backbone,
                   help="vit_small: small ViT from scratch (CPU); vit_b_16: the paper's ViT-B/16 from ImageNet weights (GPU) (default: %(default)s)")
    g.add_argument("--vit-weights", help="path to vit_b_16-c867db91.pth (default: the torch hub cache)")
    g.add_argument("--no-pretrained", action="store_true", help="train vit_b_16 from scratch")
    g.add_argument("--classifier-train", type=positive_int, default=d.classifier_train, help="training images per class (paper: 10500)")
    g.add_argument("--classifier-test", type=positive_int, default=d.classifier_test, help="test images per class (paper: 3500)")
    g.add_argument("--classifier-epochs", type=positive_int, default=d.classifier_epochs, help="(paper: 20)")
    g.add_argument("--classifier-lr", type=float, default=d.classifier_lr, help="default: 1e-3 for vit_small, 1e-5 (paper) for vit_b_16")


def _add_shape(p: argparse.ArgumentParser, d: EvalSettings) -> None:
    g = p.add_argument_group("shape preservation")
    g.add_argument("--shape-images", type=positive_int, default=d.shape_images)
    g.add_argument("--segmenter-steps", type=positive_int, default=d.segmenter_steps, help="training steps of the SilNet segmenter")


def _add_structure(p: argparse.ArgumentParser, d: EvalSettings) -> None:
    g = p.add_argument_group("inner structure")
    g.add_argument("--structure-images", type=positive_int, default=d.structure_images, help="synthetic images (default: %(default)s)")
    g.add_argument("--structure-window", type=_odd_window, default=d.structure_window,
                   help="odd window side in px (default: 7 at 64 px, 13 at 128 px: 2 * round(3 * image size / 64) + 1)")


def _add_pose(p: argparse.ArgumentParser, d: EvalSettings) -> None:
    g = p.add_argument_group("pose benefit and pose consistency (one real-style oracle serves both)")
    g.add_argument("--pose-train", type=positive_int, default=d.pose_train, help="training images (default: %(default)s)")
    g.add_argument("--pose-test", type=positive_int, default=d.pose_test, help="test images (default: %(default)s)")
    g.add_argument("--pose-epochs", type=positive_int, default=d.pose_epochs)
    g.add_argument("--runs", type=positive_int, default=d.pose_runs, help="regressors per training set, for mean ± std (default: %(default)s)")
    g.add_argument("--no-oracle", action="store_true", help="pose-benefit: skip the upper-bound row trained on real-style renderings")
    g.add_argument("--save-oracle", metavar="FILE.safetensors",
                   help="write the real-style keypoint oracle (first run) here, for handaug's PoseConsistencyMonitor during training")


def _add_grid(p: argparse.ArgumentParser, d: EvalSettings) -> None:
    g = p.add_argument_group("sample grid")
    g.add_argument("--grid-images", type=positive_int, default=d.grid_images, help="columns of the grid")


def build_parser() -> argparse.ArgumentParser:
    d = EvalSettings()
    parser = argparse.ArgumentParser(prog="handaug-eval", description=__doc__.split("\n\n")[0].replace("``handaug-eval``: ", ""),
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    common = _common_parser()
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}")
    adders = {
        "fid": _add_fid, "classifier": _add_classifier, "shape": _add_shape, "structure": _add_structure,
        "pose-benefit": _add_pose, "pose-consistency": _add_pose, "grid": _add_grid,
    }
    helps = {
        "fid": "FID and KID against real images (Table I)",
        "classifier": "the paper's ViT domain-classifier tests (Tables II, III, Fig. 7)",
        "shape": "silhouette IoU between source masks and the generator's own (uncomposited) hands",
        "structure": "how much of the hand's inner edges and shading each translation keeps",
        "pose-benefit": "does training a keypoint model on translated hands help on real-style hands",
        "pose-consistency": "can a keypoint model trained on real-style hands find the source pose in the translations",
        "grid": "sample grid, one row per checkpoint (Fig. 5)",
        "all": "every measure above, one report folder",
    }
    for name, measures in SUBCOMMANDS.items():
        p = sub.add_parser(name, parents=[common], help=helps[name], description=helps[name])
        for adder in dict.fromkeys(adders[measure] for measure in measures):  # shared groups once
            adder(p, d)
        if name == "fid":
            _add_protocol(p)
    return parser


def settings_from_args(args: argparse.Namespace) -> EvalSettings:
    """The :class:`handaug.metrics.suite.EvalSettings` of parsed command-line arguments."""
    s = EvalSettings(
        image_size=args.image_size, seed=args.seed, device=args.device, batch_size=args.batch_size,
        background=args.background, synthetic=args.synthetic, real=args.real, synthetic_masks=args.synthetic_masks,
        real_masks=args.real_masks, show_progress=not args.no_progress,
    )
    for field_name, arg in (
        ("fid_images", "fid_images"), ("features", "features"), ("kid_subsets", "kid_subsets"), ("kid_subset_size", "kid_subset_size"),
        ("backbone", "backbone"), ("vit_weights", "vit_weights"), ("classifier_train", "classifier_train"),
        ("classifier_test", "classifier_test"), ("classifier_epochs", "classifier_epochs"), ("classifier_lr", "classifier_lr"),
        ("shape_images", "shape_images"), ("segmenter_steps", "segmenter_steps"),
        ("structure_images", "structure_images"), ("structure_window", "structure_window"), ("save_oracle", "save_oracle"),
        ("pose_train", "pose_train"), ("pose_test", "pose_test"), ("pose_epochs", "pose_epochs"), ("pose_runs", "runs"),
        ("grid_images", "grid_images"),
    ):
        if getattr(args, arg, None) is not None:
            setattr(s, field_name, getattr(args, arg))
    if getattr(args, "inception_weights", None):
        s.feature_kwargs = {"weights": args.inception_weights}
    if getattr(args, "no_pretrained", False):
        s.pretrained = False
    if getattr(args, "no_oracle", False):
        s.pose_oracle = False
    return s


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"argument --out: {args.out!r} exists and is not a folder; give the folder to write the report into")

    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    try:
        if getattr(args, "protocol", "handaug") == "hgan":
            _run_hgan_protocol(args)
            return 0
        checkpoints = parse_checkpoints(args.ckpt)
        suite = EvalSuite(checkpoints, out=args.out, settings=settings_from_args(args))
        suite.run(SUBCOMMANDS[args.command])
    except (OSError, ValueError, ImportError) as err:  # OSError: also a report folder that cannot be written
        parser.exit(2, f"handaug-eval: error: {err}\n")
    print(f"report: {suite.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
