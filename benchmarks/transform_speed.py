"""SynthToReal against a plain eager PyTorch translation, same weights and inputs, in one run.

    python benchmarks/transform_speed.py                      # CPU: 128 and 256 px, full frame and hand crop
    python benchmarks/transform_speed.py --ckpt handaug-demo/export --repeats 7
    python benchmarks/transform_speed.py --device cuda --sizes 256 --batch 64   # on a GPU

The baseline is what a user would write by hand: the generator in eval mode, fp32, NCHW,
``torch.no_grad()``, uint8 → [-1, 1] → generator → uint8, and ``torch.where`` with the mask for
the composite. Next to it, on a GPU, the same generator under plain bf16 autocast (NCHW, no
handaug): what one line of ``torch.autocast`` buys. The SynthToReal rows are its defaults
(``precision="auto"``; on CUDA ``compile=None`` compiles) and the variants that explain them:
``compile=False``, and on CUDA the default without the space-to-depth folding of the thin 7×7
convolutions (:mod:`handaug.space_to_depth`). The hand-crop rows translate a window around each
hand (``hand_crop=True``). All get the same uint8 batches of procedural hands on a noise
background (hands covering about 7 % of the frame: the measured share is printed, with the share
inside the hand-crop windows and the number of window sizes).

Each figure is the median of ``--repeats`` timed runs after warm-up (a compiled variant's first
call, the compilation, is timed separately and printed). The ratio is images/s over the eager
fp32 baseline's. ``diff`` is the mean and largest uint8 difference from the baseline's output
(hand-crop rows: from the same SynthToReal's full-frame output, inside the hands).

Without ``--ckpt`` the generator is the paper's msH-GAN4 size (ResNet, ngf 64, 4 blocks) with
random weights: speed does not depend on the weights. On CUDA the script reports the fraction of
the GPU's dense bf16 peak reached (FLOPs of the original generator counted with torch's
FlopCounterMode; peak from ``--peak-tflops`` or a table of known GPUs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import handaug
from handaug.data.procedural import ProceduralHands
from handaug.hand_crop import MAX_GROUPS, hand_window_groups
from handaug.registry import create_generator

sys.path.insert(0, str(Path(__file__).parent))
from reports import profiled, write_json  # noqa: E402

#: Dense bf16 tensor-core peaks (TFLOP/s) of GPUs this may run on.
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "RTX 4090": 165.0}


def hand_batch(size: int, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` procedural hands at ``size`` px: (B, 3, H, W) uint8 images and (B, 1, H, W) bool masks."""
    data = ProceduralHands("synthetic", image_size=size, length=batch, seed=seed, background="noise", hand_scale=(0.3, 0.5))
    samples = [data[i] for i in range(batch)]
    images = torch.stack([torch.from_numpy(s["image"]).permute(2, 0, 1) for s in samples])
    masks = torch.stack([torch.from_numpy(s["mask"] > 0) for s in samples]).unsqueeze(1)
    return images, masks


def baseline(generator: torch.nn.Module, autocast: torch.dtype | None = None) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """The translation a user writes by hand (optionally under ``torch.autocast``)."""

    def run(images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad(), torch.autocast(images.device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
            y = generator(images.float() / 127.5 - 1).float()
        out = ((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return out if masks is None else torch.where(masks, out, images)

    return run


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device, warmup: int = 2) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after ``warmup`` runs (device synchronised)."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def first_call_seconds(fn: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def flops_per_image(generator: torch.nn.Module, size: int, device: torch.device) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        generator(torch.zeros(1, 3, size, size, device=device))
    return float(counter.get_total_flops())


def difference(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor | None = None) -> tuple[float, int]:
    """Mean and largest absolute uint8 difference (inside ``where`` if given)."""
    d = (a.int() - b.int()).abs()
    if where is not None:
        d = d[where.expand_as(d)]
    return float(d.float().mean()), int(d.max())


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    if given or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def variants(ckpt: str, device: torch.device, quick: bool = False) -> dict[str, tuple[handaug.SynthToReal, bool]]:
    """Name → (SynthToReal, uses the mask as hand crop). ``quick``: the defaults only.

    The defaults come first, then the variants that explain them: on a GPU each compiled variant's
    first call is a compilation of tens of seconds, and a run cut short by its time limit must still
    have measured (and written) the defaults.
    """
    default = handaug.SynthToReal(ckpt, device=device)
    rows: dict[str, tuple[handaug.SynthToReal, bool]] = {
        "SynthToReal default": (default, False),
        "hand_crop": (handaug.SynthToReal(ckpt, device=device, hand_crop=True), True),
    }
    if device.type == "cuda" and not quick:
        rows["masked composite"] = (default, False)
        rows["  compile=False"] = (handaug.SynthToReal(ckpt, device=device, compile=False), False)
        unfolded = handaug.SynthToReal(ckpt, device=device)
        unfolded.FOLD_THIN_CONVS_ON = ()  # instance attribute: this object only
        rows["  without space-to-depth"] = (unfolded, False)
        rows["  hand_crop compile=False"] = (handaug.SynthToReal(ckpt, device=device, hand_crop=True, compile=False), True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", help="generator checkpoint (default: random msH-GAN4-size ResNet)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the GPU, for the utilisation column")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--quick", action="store_true", help="only the defaults (no variants that explain them)")
    parser.add_argument("--profile", metavar="DIR",
                        help="also profile 3 calls of the default and of hand_crop at the largest size (torch.profiler tables in DIR)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    ckpt = args.ckpt
    if ckpt is None:
        torch.manual_seed(0)
        ckpt = str(handaug.save_generator(create_generator("resnet", ngf=64, n_blocks=4), tempfile.mkdtemp() + "/msh-gan4"))
    plain = handaug.load_generator(ckpt, device=device)
    rows = variants(ckpt, device, args.quick)
    peak = peak_tflops(device, args.peak_tflops)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, batch {args.batch}, median of {args.repeats}, checkpoint {ckpt}")
    header = (f"{'size':>5} {'mode':<26} {'hand %':>6} {'window %':>8} {'first call s':>12} {'img/s':>9} "
              f"{'x eager fp32':>12} {'% bf16 peak':>11} {'diff mean/max':>13}")
    print(header)
    results = []
    for size in args.sizes:
        images, masks = hand_batch(size, args.batch)
        images, masks = images.to(device), masks.to(device)
        coverage = 100 * masks.float().mean().item()
        crop = rows["hand_crop"][0]
        cap = crop.HAND_CROP_GROUPS.get(device.type, MAX_GROUPS)
        groups = hand_window_groups(masks.float(), crop.crop_margin, crop.stride, crop.min_side, cap)
        windowed = 100 * sum(len(g.indices) * g.windows.height * g.windows.width for g in groups) / masks[:, 0].numel()
        flops = flops_per_image(plain, size, device)
        eager = baseline(plain)
        t_base = median_seconds(lambda: eager(images, None), args.repeats, device)
        reference = eager(images, None)
        timed: list[tuple[str, Callable[[], torch.Tensor], bool]] = [("eager fp32 (baseline)", lambda: eager(images, None), False)]
        if device.type == "cuda":
            autocast = baseline(plain, torch.bfloat16)
            timed.append(("plain bf16 autocast", lambda: autocast(images, None), False))
        full_frame = None  # the default's output: what hand_crop is compared with (the default is timed first)
        for name, (s2r, is_crop) in rows.items():
            use_mask = masks if (is_crop or name == "masked composite") else None
            timed.append((name, (lambda s=s2r, m=use_mask: s(images, mask=m)), True))
        for name, fn, is_synth_to_real in timed:
            # A variant is timed (and written) right after its first call: see variants().
            first = first_call_seconds(fn, device) if is_synth_to_real else None
            t = t_base if name.startswith("eager fp32") else median_seconds(fn, args.repeats, device)
            out = fn()
            if name == "SynthToReal default":
                full_frame = out
            is_crop = name.strip().startswith("hand_crop")
            if is_crop:
                diff = difference(out, full_frame, masks)
            elif name == "masked composite":
                diff = difference(out, torch.where(masks, reference, images))
            else:
                diff = difference(out, reference)
            share = 100 * flops * args.batch / t / 1e12 / peak if peak else None
            row = {"size": size, "mode": name.strip(), "hand_percent": coverage, "window_percent": windowed if is_crop else 100.0,
                   "window_sizes": len(groups) if is_crop else 1, "first_call_s": first, "images_per_s": args.batch / t,
                   "ratio": t_base / t, "peak_percent": None if is_crop else share, "diff_mean": diff[0], "diff_max": diff[1]}
            results.append(row)
            first_s = f"{first:.1f}" if first is not None else "-"
            peak_s = f"{share:.1f}" if share is not None and not is_crop else "-"
            window_s = f"{windowed:.0f} ({len(groups)})" if is_crop else "100"
            print(f"{size:>5} {name:<26} {coverage:>6.1f} {window_s:>8} {first_s:>12} {args.batch / t:>9.1f} {t_base / t:>11.2f}x "
                  f"{peak_s:>11} {diff[0]:>8.2f}/{diff[1]:<4d}", flush=True)
            if args.json:
                write_json(args.json, {"device": str(device), "batch": args.batch, "rows": results})
        if args.profile and size == max(args.sizes):
            for name in ("SynthToReal default", "hand_crop"):
                s2r, is_crop = rows[name]
                path = Path(args.profile) / f"transform_{size}px_{name.split()[-1]}.txt"
                with profiled(device, path, f"{name}, {size} px, batch {args.batch}, 3 calls, {device}"):
                    for _ in range(3):
                        s2r(images, mask=masks if is_crop else None)
                print(f"      profile: {path}")
        print(f"      {size} px: {flops / 1e9:.1f} GFLOP/image" + (f", bf16 peak {peak:.0f} TFLOP/s" if peak else ""))


if __name__ == "__main__":
    main()
