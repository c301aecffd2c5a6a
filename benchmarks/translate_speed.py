"""handaug-translate against a naive one-image-at-a-time loop, same weights and files, in one run.

    python benchmarks/translate_speed.py                         # CPU: 96 images of 256 px
    python benchmarks/translate_speed.py --images 512 --size 256 --repeats 3 --ckpt handaug-demo/export
    python benchmarks/translate_speed.py --accelerator gpu --batch-size 64 --images 2048    # on a GPU
    python benchmarks/translate_speed.py --identity --images 256 --json identity.json     # the I/O path alone

The dataset is a folder of procedural hands laid out like a real one (``images/`` PNGs,
``masks/``, one JSON annotation per image, a README). The naive loop is what a user would write
by hand: for each file, ``cv2.imread`` the image and its mask, run the generator eagerly in fp32
on that one image under ``torch.no_grad()``, composite with ``torch.where``, ``cv2.imwrite``
the result, then copy the other files with ``shutil.copy2``. ``handaug-translate`` does the same
work with DataLoader workers reading, batched translation by :class:`handaug.SynthToReal`
(bf16 where the device supports it, channels_last) and a pool of threads encoding and writing.

``--identity`` measures the I/O path alone: the folder holds only ``images/`` (PNG, or JPEG with
``--format jpg``), the generator returns its input, and the baseline is a plain loop of
``cv2.imread`` + ``cv2.imwrite`` over the same files, on the same cores; torch runs one
intra-op thread there (``--torch-threads``), as the generator has nothing to compute. Runs of the methods are
interleaved (one of each, then again) so that a shared machine's load falls on all of them alike;
every figure is the median wall time of ``--repeats`` runs into a fresh target folder, after one
warm-up run of each; images/s counts translated images. ``--json PATH`` also writes the figures
(``-`` for standard output).

Without ``--ckpt`` the generator is the paper's msH-GAN4 size (ResNet, ngf 64, 4 blocks) with
random weights: speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import torch

import handaug
from handaug.data.procedural_folder import MASK_PATTERN, write_procedural_folder
from handaug.registry import create_generator, get_registry
from handaug.translation import translate_dataset

#: Registry name of the benchmark's identity generator (registered in this process only).
IDENTITY_GENERATOR = "benchmark-identity"


class IdentityGenerator(torch.nn.Module):
    """Returns its input ``(B, 3, H, W)`` float in ``[-1, 1]`` unchanged; one unused parameter so that it saves."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def naive_translate(generator: torch.nn.Module, source: Path, target: Path, device: torch.device) -> None:
    """One image at a time: read, translate in eager fp32, composite, write; then copy the rest."""
    images = sorted((source / "images").glob("*.png"))
    (target / "images").mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        for path in images:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            mask = cv2.imread(str(source / "masks" / path.name), cv2.IMREAD_GRAYSCALE) > 0
            image = torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1).unsqueeze(0).to(device)
            hand = torch.from_numpy(mask).to(device)
            fake = generator(image.float() / 127.5 - 1)
            fake = ((fake + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
            out = torch.where(hand, fake, image)[0].permute(1, 2, 0).cpu().numpy()
            cv2.imwrite(str(target / "images" / path.name), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    for path in sorted(source.rglob("*")):
        if path.is_file() and path.parent.name != "images":
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)


def plain_copy_loop(source: Path, target: Path) -> None:
    """The I/O baseline: ``cv2.imread`` then ``cv2.imwrite`` (OpenCV's default settings) of each image, one by one."""
    (target / "images").mkdir(parents=True, exist_ok=True)
    for path in sorted((source / "images").iterdir()):
        cv2.imwrite(str(target / "images" / path.name), cv2.imread(str(path), cv2.IMREAD_COLOR))


def write_image_folder(root: Path, count: int, size: int, extension: str) -> Path:
    """``root/images/`` with ``count`` procedural hands of ``size`` px as ``extension`` files (JPEG at quality 95), nothing else."""
    rendered = write_procedural_folder(root / "render", count, image_size=size)
    (root / "images").mkdir(parents=True)
    for path in sorted((rendered / "images").glob("*.png")):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if extension == "jpg" else []
        cv2.imwrite(str(root / "images" / f"{path.stem}.{extension}"), image, params)
    shutil.rmtree(rendered)
    return root


def interleaved_medians(runs: dict[str, Callable[[Path], object]], scratch: Path, repeats: int) -> dict[str, list[float]]:
    """Wall times of each ``run(fresh_target)``, ``repeats`` rounds of one run of each after one warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for attempt in range(repeats + 1):
        for i, (name, run) in enumerate(runs.items()):
            target = scratch / f"run-{attempt}-{i}"
            start = time.perf_counter()
            run(target)
            elapsed = time.perf_counter() - start
            shutil.rmtree(target)
            if attempt:
                times[name].append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", help="generator checkpoint (default: random msH-GAN4-size ResNet)")
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", type=int, default=1, help="DataLoader workers of handaug-translate")
    parser.add_argument("--writer-threads", type=int, default=None,
                        help="encoding/writing threads of handaug-translate (default: its own default)")
    parser.add_argument("--png-compression", type=int, default=None, choices=range(10), metavar="0..9",
                        help="PNG compression level of handaug-translate (default: OpenCV's default, as the baselines)")
    parser.add_argument("--accelerator", default="cpu", help="cpu or gpu (the naive loop runs on the same device)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hand-crop", action="store_true", help="also time handaug-translate --hand-crop")
    parser.add_argument("--identity", action="store_true",
                        help="the I/O path alone: identity generator, images only, against cv2.imread + cv2.imwrite")
    parser.add_argument("--format", default="png", choices=["png", "jpg"], help="image format of --identity's folder")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch's intra-op threads in this process (default: 1 with --identity, torch's own otherwise)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH ('-': standard output)")
    args = parser.parse_args()
    if args.hand_crop and args.identity:
        parser.error("--hand-crop needs masks, which --identity's folder does not have")
    if args.format != "png" and not args.identity:
        parser.error("--format applies to --identity only (the translation benchmark's dataset is PNG)")
    device = torch.device("cuda" if args.accelerator in ("gpu", "cuda") else "cpu")
    if args.torch_threads is not None or args.identity:
        # The identity generator computes nothing: torch's threads would only busy-wait after each
        # element-wise step (GNU OpenMP spins before it sleeps) on the cores the readers and writers need.
        torch.set_num_threads(args.torch_threads or 1)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no trainer banner in the table
    options = {"batch_size": args.batch_size, "num_workers": args.num_workers, "accelerator": args.accelerator,
               "progress": False}  # fmt: skip
    for name in ("writer_threads", "png_compression"):  # left to handaug-translate's defaults unless given
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)

    with tempfile.TemporaryDirectory(prefix="handaug-translate-bench-") as tmp:
        scratch = Path(tmp)
        ckpt = args.ckpt
        runs: dict[str, Callable[[Path], object]] = {}
        if args.identity:
            get_registry("generator").add(IDENTITY_GENERATOR, IdentityGenerator)
            ckpt = handaug.save_generator(create_generator(IDENTITY_GENERATOR), scratch / "identity")
            source = write_image_folder(scratch / "source", args.images, args.size, args.format)
            runs["plain loop (cv2.imread + cv2.imwrite)"] = lambda target: plain_copy_loop(source, target)
            runs["handaug-translate (identity generator)"] = lambda target: translate_dataset(
                ckpt, source, target, "folder", mask_mode="none", **options)
        else:
            if ckpt is None:
                torch.manual_seed(0)
                ckpt = handaug.save_generator(create_generator("resnet", ngf=64, n_blocks=4), scratch / "msh-gan4",
                                              background=1.0, trained_with_masks=True)  # fmt: skip
            source = write_procedural_folder(scratch / "source", args.images, image_size=args.size)
            generator = handaug.load_generator(ckpt, device=device)
            runs["naive loop (eager fp32, 1 image)"] = lambda target: naive_translate(generator, source, target, device)
            for hand_crop in (False, True) if args.hand_crop else (False,):
                name = "handaug-translate" + (" --hand-crop" if hand_crop else "")
                runs[name] = lambda target, hand_crop=hand_crop: translate_dataset(
                    ckpt, source, target, "folder", {"mask_pattern": MASK_PATTERN}, hand_crop=hand_crop, **options)
        header = (f"{args.images} {args.format if args.identity else 'png'} images of {args.size} px, batch {args.batch_size}, "
                  f"{args.num_workers} reader worker(s), torch threads {torch.get_num_threads()}, {os.cpu_count()} cores, "
                  f"device {device}, median of {args.repeats} interleaved runs")  # fmt: skip
        print(header)
        print(f"{'method':<40} {'seconds':>8} {'images/s':>9} {'ratio':>6}")
        times = interleaved_medians(runs, scratch, args.repeats)
        results = []
        baseline = None
        for name, seconds_list in times.items():
            seconds = statistics.median(seconds_list)
            baseline = baseline or seconds
            results.append({"method": name, "seconds": seconds, "images_per_s": args.images / seconds,
                            "ratio": baseline / seconds, "all_seconds": seconds_list})  # fmt: skip
            print(f"{name:<40} {seconds:>8.2f} {args.images / seconds:>9.1f} {baseline / seconds:>5.2f}x")
    if args.json:
        report = {"settings": {**vars(args), "torch_threads": torch.get_num_threads(), "cores": os.cpu_count()},
                  "description": header, "results": results}  # fmt: skip
        text = json.dumps(report, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
