"""``handaug-export``: a generator checkpoint as ONNX or TorchScript.

    handaug-export runs/hgan/export --format onnx                 # -> runs/hgan/export/generator.onnx
    handaug-export g.safetensors --format torchscript --out g.pt
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from handaug.export import FORMATS

    parser = argparse.ArgumentParser(prog="handaug-export", description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt", help="handaug generator checkpoint (directory or .safetensors)")
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--out", help="output file (default: beside the checkpoint)")
    parser.add_argument("--example-size", type=int, default=128, help="side of the tracing input (multiple of the stride)")
    parser.add_argument("--opset", type=int, help="ONNX opset version")
    args = parser.parse_args(argv)

    from handaug.export import export_generator

    try:
        path = export_generator(args.ckpt, args.out, args.format, example_size=args.example_size, opset=args.opset)
    except (FileNotFoundError, ValueError, ImportError) as err:
        parser.exit(2, f"handaug-export: error: {err}\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
