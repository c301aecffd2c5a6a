"""``handaug-translate``: translate every image of a dataset folder, copy everything else.

    handaug-translate runs/hgan/export /data/SynthHands /data/SynthHands-real --dataset synthhands
    handaug-translate CKPT SRC DST --dataset folder --dataset-kwargs '{"mask_pattern": "{stem}_mask.png"}'
    handaug-translate CKPT SRC DST --dataset synthhands --accelerator gpu --devices 4 --num_nodes 2

Run the same command again to resume a run that was stopped: finished files are skipped.
A manifest (source, checkpoint hash, handaug version, settings, counts, skipped files and why)
is written to DST/handaug-translate.json.

handaug-translate changes only files it wrote into DST (its journal in DST/.handaug-translate/
lists them) and never writes into SRC. DST must be new, empty or an earlier handaug-translate
output of the same checkpoint and settings; another run writing to DST holds its lock.
It never follows a symbolic link inside DST, nor one out of SRC (also one put there while it
runs): such files are refused or skipped and listed.
"""

from __future__ import annotations

import argparse
import json
import sys

from handaug.data.folder import MAX_IMAGE_PIXELS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="handaug-translate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("ckpt", help="handaug generator checkpoint (directory or .safetensors)")
    parser.add_argument("source", help="dataset folder to read")
    parser.add_argument("target", help="folder to write the translated dataset to (created)")
    parser.add_argument("--dataset", default="folder", help="dataset reader name (see `handaug plugins`), default: folder")
    parser.add_argument("--dataset-kwargs", default="{}", help="JSON object of reader options")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers reading images")
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu, auto (Lightning's names)")
    parser.add_argument("--devices", default="1", help="devices per node (Lightning's syntax)")
    parser.add_argument("--num_nodes", "--num-nodes", type=int, default=1, dest="num_nodes")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--mask-mode", default="composite", choices=["composite", "none"])
    parser.add_argument("--hand-crop", action="store_true", help="translate only a box around each hand (needs masks)")
    parser.add_argument("--max-image-pixels", type=int, default=None, metavar="N",
                        help="skip images whose header claims more than N pixels (height x width), without decoding "
                             "them; default 50000000")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the outputs of an earlier run in TARGET (only files handaug wrote) and translate again")
    parser.add_argument("--allow-nonempty-target", action="store_true",
                        help="write into a non-empty folder that is not a handaug-translate output, beside its files "
                             "(which are never changed: a name clash is refused)")
    parser.add_argument("--png-compression", type=_png_level, default=None, metavar="0..9",
                        help="zlib level of translated PNGs (lossless at every level: only time against size); default "
                             "OpenCV's level 1 with run-length coding, the fastest that still compresses (256 px: 3 ms, 61 KiB "
                             "an image; level 6: 22 ms, 42 KiB; level 9: 257 ms, 40 KiB)")
    parser.add_argument("--writer-threads", type=int, default=None, metavar="N",
                        help="threads encoding and writing images (default: one per core, 2 to 8)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        dataset_kwargs = json.loads(args.dataset_kwargs)
        if not isinstance(dataset_kwargs, dict):
            raise ValueError
    except ValueError:
        parser.error(f"--dataset-kwargs must be a JSON object, got {args.dataset_kwargs!r}")
    devices = int(args.devices) if args.devices.isdigit() else args.devices

    # deferred: handaug.translation imports lightning (the [train] extra, seconds to load), so --help
    # and a refused argument answer at once
    from handaug.translation import translate_dataset
    from handaug.translation.state import MANIFEST_FILE

    try:
        report = translate_dataset(
            args.ckpt, args.source, args.target, args.dataset, dataset_kwargs,
            batch_size=args.batch_size, num_workers=args.num_workers, accelerator=args.accelerator,
            devices=devices, num_nodes=args.num_nodes, precision=args.precision, mask_mode=args.mask_mode,
            hand_crop=args.hand_crop, progress=not args.no_progress, png_compression=args.png_compression,
            writer_threads=args.writer_threads,
            max_image_pixels=MAX_IMAGE_PIXELS if args.max_image_pixels is None else args.max_image_pixels,
            overwrite=args.overwrite, allow_nonempty_target=args.allow_nonempty_target,
        )
    except (ValueError, OSError) as err:  # bad input, a refused target, a file that cannot be written
        parser.exit(2, f"handaug-translate: error: {_one_line(err)}\n")
    if report is not None:
        print(
            f"handaug-translate: {report.images} images ({report.images_translated} translated now, "
            f"{report.images_already_done} already done, {report.images_skipped} skipped), {report.files} other files "
            f"({report.files_copied} copied now, {report.files_already_copied} already there, {report.files_skipped} skipped) "
            f"in {report.wall_time_s:.1f} s on {report.world_size} process(es) -> {report.target}"
        )
        if report.skipped:
            shown = "; ".join(f"{s['path']} ({s['reason']})" for s in report.skipped[:5])
            print(f"handaug-translate: skipped {len(report.skipped)} file(s), all listed with the reason in "
                  f"{report.target}/{MANIFEST_FILE}: {shown}{' ...' if len(report.skipped) > 5 else ''}", file=sys.stderr)
    return 0


def _png_level(text: str) -> int:
    """``--png-compression``'s value: an integer in 0..9."""
    try:
        level = int(text)
    except ValueError:
        level = -1
    if not 0 <= level <= 9:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 9, got {text!r}")
    return level


def _one_line(err: BaseException) -> str:
    """The error as one line; an ``OSError`` from the system as ``'<file>': <reason>``."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        text = f"{str(err.filename)!r}: {err.strerror}"
    else:
        text = str(err)
    return " ".join(text.splitlines())


if __name__ == "__main__":
    sys.exit(main())
