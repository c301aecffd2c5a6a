"""handaug-translate against a naive one-image-at-a-time loop, same weights and files, in one run.

    python benchmarks/translate_speed.py                         # CPU: 96 images of 256 px
    python benchmarks/translate_speed.py --images 512 --size 256 --repeats 3 --ckpt handaug-demo/export
    python benchmarks/translate_speed.py --accelerator gpu --batch-size 64 --images 2048    # on a GPU

The dataset is a folder of procedural hands laid out like a real one (``images/`` PNGs,
``masks/``, one JSON annotation per image, a README). The naive loop is what a user would write
by hand: for each file, ``cv2.imread`` the image and its mask, run the generator eagerly in fp32
on that one image under ``torch.no_grad()``, composite with ``torch.where``, ``cv2.imwrite``
the result, then copy the other files with ``shutil.copy2``. ``handaug-translate`` does the same
work with DataLoader workers reading, batched translation by :class:`handaug.SynthToReal`
(bf16 where the device supports it, channels_last) and a background thread writing. Every figure
is the median wall time of ``--repeats`` runs into a fresh target folder, after one warm-up run
of each; images/s counts translated images.

Without ``--ckpt`` the generator is the paper's msH-GAN4 size (ResNet, ngf 64, 4 blocks) with
random weights: speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import torch

import handaug
from handaug.data.procedural_folder import MASK_PATTERN, write_procedural_folder
from handaug.registry import create_generator
from handaug.translation import translate_dataset

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


def median_seconds(run: Callable[[Path], object], scratch: Path, repeats: int) -> float:
    """Median wall time of ``run(fresh_target)`` over ``repeats`` runs after one warm-up."""
    times = []
    for attempt in range(repeats + 1):
        target = scratch / f"run-{attempt}"
        start = time.perf_counter()
        run(target)
        elapsed = time.perf_counter() - start
        shutil.rmtree(target)
        if attempt:
            times.append(elapsed)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", help="generator checkpoint (default: random msH-GAN4-size ResNet)")
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", type=int, default=1, help="DataLoader workers of handaug-translate")
    parser.add_argument("--accelerator", default="cpu", help="cpu or gpu (the naive loop runs on the same device)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hand-crop", action="store_true", help="also time handaug-translate --hand-crop")
    args = parser.parse_args()
    device = torch.device("cuda" if args.accelerator in ("gpu", "cuda") else "cpu")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no trainer banner in the table

    with tempfile.TemporaryDirectory(prefix="handaug-translate-bench-") as tmp:
        scratch = Path(tmp)
        ckpt = args.ckpt
        if ckpt is None:
            torch.manual_seed(0)
            ckpt = handaug.save_generator(create_generator("resnet", ngf=64, n_blocks=4), scratch / "msh-gan4",
                                          background=1.0, trained_with_masks=True)  # fmt: skip
        source = write_procedural_folder(scratch / "source", args.images, image_size=args.size)
        generator = handaug.load_generator(ckpt, device=device)
        runs: dict[str, Callable[[Path], object]] = {
            "naive loop (eager fp32, 1 image)": lambda target: naive_translate(generator, source, target, device),
        }
        for hand_crop in (False, True) if args.hand_crop else (False,):
            name = "handaug-translate" + (" --hand-crop" if hand_crop else "")
            runs[name] = lambda target, hand_crop=hand_crop: translate_dataset(
                ckpt, source, target, "folder", {"mask_pattern": MASK_PATTERN}, batch_size=args.batch_size,
                num_workers=args.num_workers, accelerator=args.accelerator, hand_crop=hand_crop, progress=False,
            )  # fmt: skip
        print(f"{args.images} images of {args.size} px, batch {args.batch_size}, {args.num_workers} reader worker(s), "
              f"torch threads {torch.get_num_threads()}, device {device}, median of {args.repeats}")  # fmt: skip
        print(f"{'method':<36} {'seconds':>8} {'images/s':>9} {'ratio':>6}")
        baseline = None
        for name, run in runs.items():
            seconds = median_seconds(run, scratch, args.repeats)
            baseline = baseline or seconds
            print(f"{name:<36} {seconds:>8.2f} {args.images / seconds:>9.1f} {baseline / seconds:>5.2f}x")


if __name__ == "__main__":
    main()
