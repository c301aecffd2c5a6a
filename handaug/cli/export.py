"""``handaug-export``: a generator checkpoint as ONNX or TorchScript, or a training checkpoint's generator.

    handaug-export runs/hgan/export --format onnx                 # -> runs/hgan/export/generator.onnx
    handaug-export g.safetensors --format torchscript --out g.pt
    handaug-export runs/hgan/checkpoints/last.ckpt --format handaug --out runs/hgan/export-last
"""

from __future__ import annotations

import argparse
import sys

#: ``--format handaug``: a Lightning ``.ckpt`` of handaug-train to a handaug generator checkpoint.
HANDAUG_FORMAT = "handaug"


def main(argv: list[str] | None = None) -> int:
    from handaug.checkpoint_config import DIRECTIONS
    from handaug.export import FORMATS

    parser = argparse.ArgumentParser(prog="handaug-export", description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt", help="handaug generator checkpoint (directory or .safetensors); with --format handaug, "
                        "a Lightning training checkpoint of handaug-train (.ckpt)")
    parser.add_argument("--format", choices=(*FORMATS, HANDAUG_FORMAT), default="onnx",
                        help="onnx, torchscript, or handaug: the generator of a training checkpoint as a handaug "
                        "generator checkpoint (read with torch.load(weights_only=True), never unpickled)")
    parser.add_argument("--out", help="output file (default: beside the checkpoint; for --format handaug, "
                        "a directory or .safetensors file, default CKPT-without-.ckpt + '-generator/')")
    parser.add_argument("--example-size", type=int, default=128, help="side of the tracing input (multiple of the stride)")
    parser.add_argument("--opset", type=int, help="ONNX opset version")
    parser.add_argument("--direction", choices=DIRECTIONS, default="synthetic_to_real",
                        help="with --format handaug: which of the two generators to export")
    args = parser.parse_args(argv)

    try:
        if args.format == HANDAUG_FORMAT:
            from handaug.lightning_checkpoint import export_training_checkpoint

            path = export_training_checkpoint(args.ckpt, args.out, direction=args.direction)
        else:
            from handaug.export import export_generator

            path = export_generator(args.ckpt, args.out, args.format, example_size=args.example_size, opset=args.opset)
    except (FileNotFoundError, ValueError, ImportError) as err:
        parser.exit(2, f"handaug-export: error: {err}\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
