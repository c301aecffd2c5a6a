"""What SynthToReal adds to a user's training step: the step alone against the step plus each mode, in one run.

    python benchmarks/loop_overhead.py                     # CPU: 128 px, batch 8, a few steps
    python benchmarks/loop_overhead.py --device cuda       # GPU: 256 px, batch 64 (the issue's loop)

The user's loop is a ResNet-50 keypoint regressor (torchvision's ResNet-50, random weights, its
classifier replaced by 21 × 2 coordinates), trained with AdamW under bf16 autocast on a GPU (fp32
on the CPU) on uint8 batches already on the device, as a prefetching DataLoader delivers them.
Each mode calls SynthToReal on the batch before the forward pass, inside the same loop:

- ``p=1`` full frame; ``p=0.5``; ``masked composite`` (p=1 with the hand masks); ``hand_crop``.

The generator is msH-GAN4-size (ResNet, ngf 64, 4 blocks) with random weights, or ``--ckpt``.
Every mode shares one SynthToReal (``p`` and ``hand_crop`` are set between modes), so a compiled
default compiles once per shape. A figure is the median over ``--repeats`` windows of ``--steps``
steps (device synchronised at each window's ends only, as in a real loop), after ``--warmup`` steps.
The ratio is a step with the transform over the step alone: the goal on a GPU is at most 1.3 at
p=1 full frame and 1.15 with hand_crop.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

import handaug
from handaug.registry import create_generator

sys.path.insert(0, str(Path(__file__).parent))
from reports import write_json  # noqa: E402
from transform_speed import hand_batch, synchronize  # noqa: E402


def keypoint_regressor(device: torch.device) -> torch.nn.Module:
    model = torchvision.models.resnet50(weights=None)
    model.fc = torch.nn.Linear(model.fc.in_features, 21 * 2)
    return model.to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", help="generator checkpoint (default: random msH-GAN4-size ResNet)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, help="image size (default 256 on CUDA, 128 on the CPU)")
    parser.add_argument("--batch", type=int, help="batch size (default 64 on CUDA, 8 on the CPU)")
    parser.add_argument("--steps", type=int, help="steps per timed window (default 20 on CUDA, 2 on the CPU)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    size, batch = args.size or (256 if cuda else 128), args.batch or (64 if cuda else 8)
    steps = args.steps or (20 if cuda else 2)

    ckpt = args.ckpt
    if ckpt is None:
        torch.manual_seed(0)
        ckpt = str(handaug.save_generator(create_generator("resnet", ngf=64, n_blocks=4), tempfile.mkdtemp() + "/msh-gan4"))
    batches = [tuple(t.to(device) for t in hand_batch(size, batch, seed=k)) for k in range(2)]
    targets = torch.rand(batch, 42, device=device)
    torch.manual_seed(0)
    model = keypoint_regressor(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1) * 255
    s2r = handaug.SynthToReal(ckpt, device=device, seed=0)

    def step(images: torch.Tensor) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = F.mse_loss(model((images.float() - mean) / std).float(), targets)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    def configure(p: float, hand_crop: bool) -> None:
        s2r.p, s2r.hand_crop = p, hand_crop

    modes = {
        "step alone": None,
        "+ SynthToReal p=1": (1.0, False, False),
        "+ p=0.5": (0.5, False, False),
        "+ masked composite p=1": (1.0, False, True),
        "+ hand_crop": (1.0, True, True),
    }

    def run(mode: tuple[float, bool, bool] | None, n: int, k0: int = 0) -> None:
        for k in range(n):
            images, masks = batches[(k0 + k) % len(batches)]
            if mode is not None:
                images = s2r(images, mask=masks if mode[2] else None)
            step(images)

    print(f"device {device} ({torch.cuda.get_device_name(device) if cuda else 'CPU'}), torch {torch.__version__}, ResNet-50 "
          f"keypoint regressor, {size} px, batch {batch}, AdamW, {'bf16 autocast' if cuda else 'fp32'}; median of {args.repeats} "
          f"windows of {steps} steps; SynthToReal compiled: {s2r.compiles_on(device)}")
    print(f"{'mode':<26} {'first call s':>12} {'ms/step':>9} {'x the step':>10}")
    rows, alone = [], None
    for name, mode in modes.items():
        if mode is not None:
            configure(*mode[:2])
        synchronize(device)
        start = time.perf_counter()
        run(mode, 1)
        synchronize(device)
        first = time.perf_counter() - start
        run(mode, args.warmup)
        windows = []
        for r in range(args.repeats):
            synchronize(device)
            start = time.perf_counter()
            run(mode, steps, k0=r)
            synchronize(device)
            windows.append((time.perf_counter() - start) / steps)
        ms = 1000 * statistics.median(windows)
        alone = ms if mode is None else alone
        ratio = ms / alone
        rows.append({"mode": name, "first_call_s": first, "ms_per_step": ms, "ratio": ratio})
        print(f"{name:<26} {first:>12.1f} {ms:>9.1f} {ratio:>9.2f}x", flush=True)
        if args.json:
            write_json(args.json, {"device": str(device), "size": size, "batch": batch, "rows": rows})


if __name__ == "__main__":
    main()
