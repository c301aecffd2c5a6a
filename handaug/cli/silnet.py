"""``handaug-train-silnet``: pretrain GeoConGAN's SilNet on its own, with the H-GAN reference code's recipe.

    handaug-train-silnet --out runs/silnet                                   # procedural hands, no download
    handaug-train-silnet --out runs/silnet --synthetic synthhands:/data/SynthHands_Release \\
        --real realhands:/data/RealHands --device cuda
    handaug-train --config examples/configs/geocongan.yaml \\
        --model.extra_loss_kwargs '{"geoconsistency": {"silnet_checkpoint": "runs/silnet"}}'

RMSprop (lr 1e-3, weight decay 1e-8, momentum 0.9), gradient norm clipped to 0.5, early stopping
on the validation loss (patience 5 validations, one every fifth of an epoch); the weights with the
lowest validation loss are written to ``--out`` (``silnet.safetensors`` + ``config.json``).
"""

from __future__ import annotations

import argparse
import sys

from handaug.cli.argument_types import (
    batch_size,
    bounded_float,
    bounded_int,
    image_side,
    json_object,
    positive_int,
    reader_kwargs,
    seed,
    torch_device,
)
from handaug.networks.silnet import SILNET_BOUNDS, SILNET_SHAPES
from handaug.silnet import pretraining
from handaug.silnet.pretraining import HYPERPARAMETER_BOUNDS, MAX_SILNET_WIDTH, SilNetPretraining


def build_parser() -> argparse.ArgumentParser:
    d = SilNetPretraining()
    parser = argparse.ArgumentParser(prog="handaug-train-silnet", description=__doc__.split("\n\n")[0].replace("``handaug-train-silnet``: ", ""),
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--out", required=True, help="checkpoint directory to write (silnet.safetensors + config.json)")
    g = parser.add_argument_group("network")
    g.add_argument("--shape", choices=tuple(SILNET_SHAPES), default=d.shape,
                   help="hgan: the reference's U-Net (widths 64-256, 2 poolings, conv bias); handaug: widths 16-128, 3 poolings (default: %(default)s)")
    widths, depths = SILNET_BOUNDS["base_channels"], SILNET_BOUNDS["depth"]
    g.add_argument("--base-channels", type=bounded_int(*widths),
                   help=f"override the shape's first width, {widths[0]} to {widths[1]} (the widest layer, "
                        f"base-channels x 2^depth, at most {MAX_SILNET_WIDTH})")
    g.add_argument("--depth", type=bounded_int(*depths), help=f"override the shape's number of poolings, {depths[0]} to {depths[1]}")
    g = parser.add_argument_group("data (both domains need hand masks)")
    g.add_argument("--synthetic", default=d.synthetic, help="procedural, a folder, or NAME:ROOT (default: %(default)s)")
    g.add_argument("--real", default=d.real, help="procedural, a folder, or NAME:ROOT (default: %(default)s)")
    g.add_argument("--synthetic-masks", help="mask pattern of a synthetic folder, e.g. '{stem}_mask.png'")
    g.add_argument("--real-masks", help="mask pattern of a real folder")
    g.add_argument("--synthetic-kwargs", type=reader_kwargs, default={}, help='reader options, e.g. \'{"split": "train"}\'')
    g.add_argument("--real-kwargs", type=reader_kwargs, default={}, help="reader options of the real source")
    g.add_argument("--data-kwargs", type=json_object, default={}, help="further UnpairedDataModule arguments (JSON object)")
    g.add_argument("--crop-size", type=image_side, default=d.crop_size, help="training crop side, 16 to 4096 (default: %(default)s)")
    g.add_argument("--val-size", type=image_side, default=d.val_size, help="validation image side, 16 to 4096 (default: %(default)s)")
    g.add_argument("--val-count", type=int, default=d.val_count, help="validation images per domain; 0: none (default: %(default)s)")
    g.add_argument("--num-workers", type=int, default=d.num_workers)
    g = parser.add_argument_group("optimisation (defaults: the reference's)")
    g.add_argument("--batch-size", type=batch_size, default=d.batch_size)
    g.add_argument("--val-batch-size", type=batch_size, default=d.val_batch_size)
    bounds = {name: bounded_float(low, high, low_open=interval[0] == "(", high_open=interval[-1] == ")")
              for name, (low, high, interval) in HYPERPARAMETER_BOUNDS.items()}  # fmt: skip
    g.add_argument("--lr", type=bounds["lr"], default=d.lr, help="(0, 10] (default: %(default)s)")
    g.add_argument("--weight-decay", type=bounds["weight_decay"], default=d.weight_decay, help="[0, 1] (default: %(default)s)")
    g.add_argument("--momentum", type=bounds["momentum"], default=d.momentum, help="[0, 1) (default: %(default)s)")
    g.add_argument("--clip-norm", type=bounds["clip_norm"], default=d.clip_norm,
                   help="gradient L2 norm limit, (0, 1e6] (default: %(default)s)")
    g.add_argument("--max-epochs", type=positive_int, default=d.max_epochs)
    g.add_argument("--max-batches-per-epoch", type=positive_int, default=d.max_batches_per_epoch)
    g.add_argument("--max-steps", type=positive_int, help="stop after this many training batches")
    g.add_argument("--val-every", type=positive_int, help="training batches between validations (default: a fifth of an epoch)")
    g.add_argument("--val-batches", type=positive_int, default=d.val_batches)
    g.add_argument("--patience", type=positive_int, default=d.patience, help="validations without improvement before stopping")
    g.add_argument("--seed", type=seed, default=d.seed, help="0 to 2^32-1 (default: %(default)s)")
    g.add_argument("--device", type=torch_device, default=d.device, help="torch device: cpu, cuda, cuda:N, mps (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = SilNetPretraining(
        shape=args.shape, base_channels=args.base_channels, depth=args.depth, synthetic=args.synthetic, real=args.real,
        synthetic_masks=args.synthetic_masks, real_masks=args.real_masks, synthetic_kwargs=args.synthetic_kwargs,
        real_kwargs=args.real_kwargs, data_kwargs=args.data_kwargs, crop_size=args.crop_size, val_size=args.val_size,
        val_count=args.val_count, batch_size=args.batch_size, val_batch_size=args.val_batch_size, lr=args.lr,
        weight_decay=args.weight_decay, momentum=args.momentum, clip_norm=args.clip_norm, max_epochs=args.max_epochs,
        max_batches_per_epoch=args.max_batches_per_epoch, max_steps=args.max_steps, val_every=args.val_every,
        val_batches=args.val_batches, patience=args.patience, seed=args.seed, device=args.device, num_workers=args.num_workers,
    )
    try:
        settings.check()  # every setting, before data or a network is built
        pretraining.pretrain_silnet(args.out, settings)  # looked up at call time: tests replace it with a tripwire
    except (FileNotFoundError, ValueError, ImportError, TypeError) as err:
        parser.exit(2, f"handaug-train-silnet: error: {err}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
