"""``handaug-export``: a generator checkpoint as ONNX, TorchScript or a Hub folder, or a training checkpoint's generator.

    handaug-export runs/hgan/export --format onnx                 # -> runs/hgan/export/generator.onnx
    handaug-export g.safetensors --format torchscript --out g.pt
    handaug-export runs/hgan/checkpoints/last.ckpt --format handaug --out runs/hgan/export-last
    handaug-export runs/hgan/export --format hub hub-upload --license mit --repo-id ORG/REPO
    handaug-export hf://ORG/REPO --format onnx --out g.onnx       # checkpoints by Hub name work everywhere
"""

from __future__ import annotations

import argparse
import sys

from handaug.checkpoint_config import DIRECTIONS
from handaug.export import FORMATS, export_generator, export_hub_folder, export_training_checkpoint

#: ``--format handaug``: a Lightning ``.ckpt`` of handaug-train to a handaug generator checkpoint.
HANDAUG_FORMAT = "handaug"
#: ``--format hub``: a folder ready to upload as a Hugging Face Hub model repository (weights, config, model card).
HUB_FORMAT = "hub"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="handaug-export", description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt", help="handaug generator checkpoint (directory, .safetensors or hf://ORG/REPO[@REVISION]"
                        "[/SUBFOLDER]); with --format handaug, a Lightning training checkpoint of handaug-train (.ckpt)")
    parser.add_argument("dir", nargs="?", help="with --format hub: the folder to write (same as --out)")
    parser.add_argument("--format", choices=(*FORMATS, HANDAUG_FORMAT, HUB_FORMAT), default="onnx",
                        help="onnx, torchscript; handaug: the generator of a training checkpoint as a handaug "
                        "generator checkpoint (read with torch.load(weights_only=True), never unpickled); hub: a folder "
                        "to upload as a Hugging Face Hub model repository (weights, config.json, README.md model card)")
    parser.add_argument("--out", help="output file (default: beside the checkpoint; for --format handaug, "
                        "a directory or .safetensors file, default CKPT-without-.ckpt + '-generator/'; for --format hub, "
                        "the folder to write, required)")
    parser.add_argument("--license", default="other",
                        help="with --format hub: the model card's license identifier, e.g. mit (default: %(default)s)")
    parser.add_argument("--repo-id", metavar="ORG/REPO",
                        help="with --format hub: the repository name for the card's usage example")
    parser.add_argument("--example-size", type=int, default=128, help="side of the tracing input (multiple of the stride)")
    parser.add_argument("--opset", type=int, help="ONNX opset version")
    parser.add_argument("--direction", choices=DIRECTIONS, default="synthetic_to_real",
                        help="with --format handaug: which of the two generators to export")
    args = parser.parse_intermixed_args(argv)  # the folder may follow --format hub
    if args.dir is not None:
        if args.format != HUB_FORMAT:
            parser.error("a second positional argument (the folder) goes with --format hub only; "
                         f"use --out with --format {args.format}")
        if args.out is not None and args.out != args.dir:
            parser.error(f"give the folder once: {args.dir!r} or --out {args.out!r}")
        args.out = args.dir
    if args.format == HUB_FORMAT and args.out is None:
        parser.error("--format hub needs the folder to write: handaug-export CKPT --format hub DIR")
    if args.format != HUB_FORMAT and (args.license != "other" or args.repo_id is not None):
        parser.error("--license and --repo-id go with --format hub")

    try:
        if args.format == HUB_FORMAT:
            path = export_hub_folder(args.ckpt, args.out, license=args.license, repo_id=args.repo_id)
        elif args.format == HANDAUG_FORMAT:
            path = export_training_checkpoint(args.ckpt, args.out, direction=args.direction)
        else:
            path = export_generator(args.ckpt, args.out, args.format, example_size=args.example_size, opset=args.opset)
    except (FileNotFoundError, ValueError, ImportError) as err:
        parser.exit(2, f"handaug-export: error: {err}\n")
    print(f"wrote {path}")
    if args.format == HUB_FORMAT:
        print(f"upload it with huggingface_hub, e.g. `hf upload {args.repo_id or 'ORG/REPO'} {path} .`; "
              f"load it with SynthToReal('hf://{args.repo_id or 'ORG/REPO'}')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
