"""SynthToReal against a plain eager PyTorch translation, same weights and inputs, in one run.

    python benchmarks/transform_speed.py                      # CPU: 128 and 256 px, full frame and hand crop
    python benchmarks/transform_speed.py --ckpt handaug-demo/export --repeats 7
    python benchmarks/transform_speed.py --device cuda --sizes 256 --batch 64   # on a GPU

The baseline is what a user would write by hand: the generator in eval mode, fp32, NCHW,
``torch.no_grad()``, uint8 → [-1, 1] → generator → uint8, and ``torch.where`` with the mask
for the composite. SynthToReal runs with its defaults (``precision="auto"``) and, in the
hand-crop rows, ``hand_crop=True``. Both get the same uint8 batches of procedural hands on a
noise background with hands covering at most a quarter of the frame (the measured fraction is
printed, and the share of the frame inside the hand-crop windows). Each figure is the median of ``--repeats`` timed runs after one warm-up; the ratio is
SynthToReal's images/s over the baseline's.

Without ``--ckpt`` the generator is the paper's msH-GAN4 size (ResNet, ngf 64, 4 blocks) with
random weights: speed does not depend on the weights. On CUDA the script also reports the
fraction of the GPU's dense bf16 peak reached (FLOPs counted with torch's FlopCounterMode;
peak from ``--peak-tflops`` or a table of known GPUs).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import torch

import handaug
from handaug.data.procedural import ProceduralHands
from handaug.hand_crop import hand_window_groups
from handaug.registry import create_generator

#: Dense bf16 tensor-core peaks (TFLOP/s) of GPUs this may run on.
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "RTX 4090": 165.0}


def hand_batch(size: int, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    data = ProceduralHands("synthetic", image_size=size, length=batch, seed=seed, background="noise", hand_scale=(0.3, 0.5))
    samples = [data[i] for i in range(batch)]
    images = torch.stack([torch.from_numpy(s["image"]).permute(2, 0, 1) for s in samples])
    masks = torch.stack([torch.from_numpy(s["mask"] > 0) for s in samples]).unsqueeze(1)
    return images, masks


def baseline(generator: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    def run(images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            y = generator(images.float() / 127.5 - 1)
            out = ((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
            return out if masks is None else torch.where(masks, out, images)

    return run


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def flops_per_image(generator: torch.nn.Module, size: int, device: torch.device) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        generator(torch.zeros(1, 3, size, size, device=device))
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", help="generator checkpoint (default: random msH-GAN4-size ResNet)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    parser.add_argument("--compile", action="store_true", help="also time SynthToReal(compile=True)")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the GPU, for the utilisation column")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    ckpt = args.ckpt
    if ckpt is None:
        torch.manual_seed(0)
        ckpt = handaug.save_generator(create_generator("resnet", ngf=64, n_blocks=4), tempfile.mkdtemp() + "/msh-gan4")
    plain = handaug.load_generator(ckpt, device=device)
    variants = {
        "full frame": handaug.SynthToReal(ckpt, device=device),
        "hand crop": handaug.SynthToReal(ckpt, device=device, hand_crop=True),
    }
    if args.compile:
        variants["full frame, compiled"] = handaug.SynthToReal(ckpt, device=device, compile=True)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"threads {torch.get_num_threads()}, batch {args.batch}, median of {args.repeats}, checkpoint {ckpt}")
    print(f"{'size':>5} {'mode':<22} {'hand %':>7} {'window %':>9} {'eager fp32 img/s':>17} {'SynthToReal img/s':>18} {'ratio':>6}")
    for size in args.sizes:
        images, masks = hand_batch(size, args.batch)
        images, masks = images.to(device), masks.to(device)
        coverage = 100 * masks.float().mean().item()
        # The share of the frame the hand-crop mode translates (padded, rounded hand boxes).
        crop = variants["hand crop"]
        groups = hand_window_groups(masks, crop.crop_margin, crop.stride, crop.min_side)
        windowed = 100 * sum(len(g.indices) * g.windows.height * g.windows.width for g in groups) / masks[:, 0].numel()
        eager = baseline(plain)
        for mode, s2r in variants.items():
            use_mask = masks if mode == "hand crop" else None
            t_base = median_seconds(lambda: eager(images, use_mask), args.repeats, device)
            t_ours = median_seconds(lambda: s2r(images, mask=use_mask), args.repeats, device)
            window = f"{windowed:.1f}" if mode == "hand crop" else "100"
            print(f"{size:>5} {mode:<22} {coverage:>7.1f} {window:>9} {args.batch / t_base:>17.1f} {args.batch / t_ours:>18.1f} "
                  f"{t_base / t_ours:>5.2f}x")
        if device.type == "cuda":
            flops = flops_per_image(plain, size, device)
            name = torch.cuda.get_device_name(device)
            peak = args.peak_tflops or next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
            t = median_seconds(lambda: variants["full frame"](images), args.repeats, device)
            achieved = flops * args.batch / t / 1e12
            share = f"{100 * achieved / peak:.1f} % of {peak:.0f}" if peak else "peak unknown (--peak-tflops)"
            print(f"      {size} px: {flops / 1e9:.1f} GFLOP/image, {achieved:.1f} TFLOP/s achieved, {share} TFLOP/s bf16")


if __name__ == "__main__":
    main()
