"""handaug's H-GAN training step against a plain PyTorch H-GAN step, same networks and batch, in one run.

    python benchmarks/train_speed.py                                  # CPU: 64 px crops, batch 2, ngf/ndf 16
    python benchmarks/train_speed.py --device cuda --json train.json   # GPU: 256 px, batches 8 and 32, ngf/ndf 64
    python benchmarks/train_speed.py --device cuda --handaug-args --model.compile false

The plain step is the reference code's loop (CycleGAN / H-GAN), written by hand: both ResNet
generators (4 blocks) and both multi-scale perceptual discriminators (random VGG16) built through
handaug's registry, with the same weights as handaug's; LSGAN losses, cycle L1 × 10, identity
L1 × 0.5 × 10; one Adam (lr 5e-5, betas 0.5, 0.999) for the generators and one for the
discriminators; image pools of 50; eager fp32, NCHW. Each step moves the batch to the device,
takes the generator step (discriminators frozen), then the discriminator step.

handaug's step is ``handaug-train`` itself: the :class:`~handaug.training.HGAN` module and the
``lightning.Trainer`` built by handaug-train's command line (its defaults, its callbacks, its
logger and progress bar, and whatever it chooses on this device: precision, compilation,
memory format, fused Adam), fed by a loader that hands it the same batch every step. Its timed
windows are measured by a callback, from the end of one batch to the end of the batch K later,
with ``torch.cuda.synchronize`` at both ends; the warm-up batches (compilation included) are
not timed. On the CPU the two sides' windows alternate (plain window, handaug window, ...) so
that other load on the machine hits both alike; on a GPU they run one after the other, so that
each one's peak memory is its own. ``--with-data`` adds a handaug row fed by handaug's own
data module (procedural hands rendered in its loader workers), to see whether loading keeps up.

Reported per setting: images/s (one image = one synthetic and one real crop, so batch B is B
images), milliseconds per step, peak memory, achieved TFLOP/s and its share of the GPU's dense
bf16 peak (FLOPs of one plain step counted with ``torch.utils.flop_counter.FlopCounterMode``;
the same model FLOPs for both sides), and handaug's images/s over the plain step's. Each figure
is the median over ``--windows`` timed windows. Peak memory: on CUDA
``torch.cuda.max_memory_allocated`` during that side's windows; on the CPU the process's
resident set size (RSS), sampled every 5 ms during that side's windows (the whole process, both
sides' networks included: an upper bound, not an allocation count).

On the CPU the script runs torch on one thread by default and also reports each side's process
CPU time per step and their ratio: on a machine shared with other work, wall time swings with
the load (and multi-threaded steps stall at OpenMP barriers), while CPU time measures the work.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HANDAUG_OFFLINE", "1")

import lightning as L  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from reports import profiled, write_json  # noqa: E402

#: Dense bf16 tensor-core peaks (TFLOP/s) of GPUs this may run on (as benchmarks/transform_speed.py).
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "RTX 4090": 165.0}

LAMBDA_CYCLE, LAMBDA_IDENTITY, LR, BETAS, POOL = 10.0, 0.5, 5e-5, (0.5, 0.999), 50

#: handaug-train batches profiled with --profile.
PROFILED_BATCHES = 3

#: handaug-train's images/s before the speed work (issue 19: H200, 256 px, batch 8, ngf/ndf 64, bf16-mixed).
BEFORE_H200 = {(256, 8): 56.0}


# ----------------------------------------------------------------------------- the plain step
class PlainPool:
    """The reference code's image history: fill to 50, then swap each new image with probability 0.5."""

    def __init__(self, size: int = POOL) -> None:
        self.size, self.images = size, []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif torch.rand(1).item() > 0.5:
                slot = int(torch.randint(0, self.size, (1,)).item())
                out.append(self.images[slot].clone())
                self.images[slot] = image
            else:
                out.append(image)
        return torch.cat(out)


def lsgan(scores: list[torch.Tensor], target: float) -> torch.Tensor:
    """Sum over the discriminator's output scales of ``mean((score - target)^2)``."""
    return sum(F.mse_loss(s, torch.full_like(s, target)) for s in scores)


class PlainHGAN:
    """H-GAN's training step as a simple eager loop: G step (both generators), then D step (both discriminators)."""

    def __init__(self, networks: dict[str, torch.nn.Module], device: torch.device) -> None:
        self.device = device
        self.g_s2r, self.g_r2s = networks["generator_s2r"], networks["generator_r2s"]
        self.d_real, self.d_synthetic = networks["discriminator_real"], networks["discriminator_synthetic"]
        for net in networks.values():
            net.to(device).train()
        trainable = lambda *nets: [p for n in nets for p in n.parameters() if p.requires_grad]  # noqa: E731
        self.d_params = trainable(self.d_real, self.d_synthetic)
        self.opt_g = torch.optim.Adam(trainable(self.g_s2r, self.g_r2s), lr=LR, betas=BETAS)
        self.opt_d = torch.optim.Adam(self.d_params, lr=LR, betas=BETAS)
        self.pool_real, self.pool_synthetic = PlainPool(), PlainPool()

    def _discriminators_trainable(self, on: bool) -> None:
        for p in self.d_params:
            p.requires_grad_(on)

    def step(self, batch: dict[str, dict[str, torch.Tensor]]) -> None:
        synthetic = batch["synthetic"]["image"].to(self.device)
        real = batch["real"]["image"].to(self.device)
        # Generators.
        self._discriminators_trainable(False)
        fake_real, fake_synthetic = self.g_s2r(synthetic), self.g_r2s(real)
        rec_synthetic, rec_real = self.g_r2s(fake_real), self.g_s2r(fake_synthetic)
        idt_real, idt_synthetic = self.g_s2r(real), self.g_r2s(synthetic)
        loss_g = (
            lsgan(self.d_real(fake_real), 1.0)
            + lsgan(self.d_synthetic(fake_synthetic), 1.0)
            + LAMBDA_CYCLE * (F.l1_loss(rec_synthetic, synthetic) + F.l1_loss(rec_real, real))
            + LAMBDA_CYCLE * LAMBDA_IDENTITY * (F.l1_loss(idt_real, real) + F.l1_loss(idt_synthetic, synthetic))
        )
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        # Discriminators.
        self._discriminators_trainable(True)
        self.opt_d.zero_grad(set_to_none=True)
        pooled_real = self.pool_real.query(fake_real.detach())
        loss_d_real = 0.5 * (lsgan(self.d_real(real), 1.0) + lsgan(self.d_real(pooled_real), 0.0))
        loss_d_real.backward()
        pooled_synthetic = self.pool_synthetic.query(fake_synthetic.detach())
        loss_d_synthetic = 0.5 * (lsgan(self.d_synthetic(synthetic), 1.0) + lsgan(self.d_synthetic(pooled_synthetic), 0.0))
        loss_d_synthetic.backward()
        self.opt_d.step()


# ----------------------------------------------------------------------------- measuring
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory over the windows it is started and stopped around (bytes): CUDA allocations or sampled CPU RSS."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak = device, 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.rss())

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif os.path.exists("/proc/self/statm"):
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self.device.type == "cuda":
            self.peak = max(self.peak, torch.cuda.max_memory_allocated(self.device))
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self.rss())
            self._thread = None


@dataclass
class Side:
    """One side's timed windows (seconds per step) and peak memory."""

    name: str
    step_seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    peak_bytes: int = 0
    warmup_seconds: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.step_seconds) if self.step_seconds else math.nan

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_seconds) if self.cpu_seconds else math.nan


class WindowTimer(L.Callback):
    """Times handaug-train's batches in windows of ``window`` batches after ``warmup`` batches.

    A window runs from the end of one batch (after a device sync) to the end of the batch
    ``window`` later (after a sync), so it holds whole iterations: loading, transfer, hooks, step.
    ``between`` (if given) runs after each window, outside the timing (the plain side's window).
    """

    def __init__(self, warmup: int, window: int, windows: int, device: torch.device, side: Side,
                 between: Callable[[], None] | None = None) -> None:
        self.warmup, self.window, self.windows, self.device, self.side = warmup, window, windows, device, side
        self.between = between
        self.memory = PeakMemory(device)
        self._start: float | None = None
        self._cpu_start = 0.0
        self._fit_start = 0.0
        self._seen = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._seen += 1
        done = self._seen - self.warmup
        if done < 0 or done % self.window:
            return
        sync(self.device)
        now = time.perf_counter()
        if self._start is None:
            self.side.warmup_seconds = now - self._fit_start
        else:
            self.side.step_seconds.append((now - self._start) / self.window)
            self.side.cpu_seconds.append((time.process_time() - self._cpu_start) / self.window)
            self.memory.stop()
        if self.between is not None and len(self.side.step_seconds) < self.windows:
            self.between()
        sync(self.device)
        self.memory.start()
        self._cpu_start = time.process_time()
        self._start = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.side.peak_bytes = self.memory.peak


class ProfileBatches(L.Callback):
    """Profiles handaug-train's batches ``first`` .. ``first + count - 1`` (after the timed windows) into ``path``."""

    def __init__(self, first: int, count: int, device: torch.device, path: Path, title: str) -> None:
        self.first, self.count, self.device, self.path, self.title = first, count, device, path, title
        self._open = contextlib.ExitStack()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if batch_idx == self.first:
            self._open.enter_context(profiled(self.device, self.path, self.title))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if batch_idx == self.first + self.count - 1:
            self._open.close()


def plain_windows(plain: PlainHGAN, batch: dict, device: torch.device, side: Side, steps: int) -> Callable[[], None]:
    """A function that times one window of ``steps`` plain steps into ``side``."""
    memory = PeakMemory(device)

    def run() -> None:
        sync(device)
        memory.start()
        cpu_start, start = time.process_time(), time.perf_counter()
        for _ in range(steps):
            plain.step(batch)
        sync(device)
        side.step_seconds.append((time.perf_counter() - start) / steps)
        side.cpu_seconds.append((time.process_time() - cpu_start) / steps)
        memory.stop()
        side.peak_bytes = memory.peak

    return run


class SameBatch(Dataset):
    """``length`` times the same (already collated) batch; with ``batch_size=None`` a DataLoader yields it as is."""

    def __init__(self, batch: dict, length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        return self.batch


class SameBatchData(L.LightningDataModule):
    def __init__(self, batch: dict, length: int, pin_memory: bool) -> None:
        super().__init__()
        self.data, self.pin_memory = SameBatch(batch, length), pin_memory

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=None, shuffle=False, num_workers=0, pin_memory=self.pin_memory)


# ----------------------------------------------------------------------------- settings
@dataclass
class Setting:
    size: int
    batch: int
    ngf: int
    ndf: int
    n_blocks: int

    def model_args(self) -> list[str]:
        return [
            "--model.generator", "resnet",
            "--model.generator_kwargs", json.dumps({"n_blocks": self.n_blocks, "ngf": self.ngf}),
            "--model.discriminator", "perceptual",
            "--model.discriminator_kwargs", json.dumps({"ndf": self.ndf, "vgg_weights": "random"}),
            "--model.lr", str(LR), "--model.betas", json.dumps(list(BETAS)),
            "--model.lambda_cycle", str(LAMBDA_CYCLE), "--model.lambda_identity", str(LAMBDA_IDENTITY),
            "--model.pool_size", str(POOL),
        ]

    def data_args(self, workers: int) -> list[str]:
        frames = {"image_size": self.size, "length": 4096}
        return [
            "--data.synthetic", "procedural", "--data.real", "procedural",
            "--data.synthetic_kwargs", json.dumps(frames), "--data.real_kwargs", json.dumps(frames),
            "--data.crop_size", str(self.size), "--data.val_count", "0", "--data.batch_size", str(self.batch),
            "--data.num_workers", str(workers),
        ]


def make_batch(setting: Setting) -> dict[str, dict[str, torch.Tensor]]:
    """One training batch as handaug's data module makes it: procedural hands, crops of ``size``, CPU tensors."""
    from handaug.data.datamodule import UnpairedDataModule

    frames = {"image_size": setting.size, "length": setting.batch}
    dm = UnpairedDataModule(synthetic_kwargs=frames, real_kwargs=frames, crop_size=setting.size, val_count=0,
                            batch_size=setting.batch, num_workers=0)
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


def handaug_cli(setting: Setting, device: torch.device, root: str, batches: int, extra: list[str],
                data_workers: int | None = None) -> Any:
    """handaug-train's LightningCLI (its defaults and callbacks), set up for ``batches`` training batches."""
    from handaug.cli.train import HandaugCLI, _trainer_defaults
    from handaug.data.datamodule import UnpairedDataModule
    from handaug.training.module import HGAN

    args = [
        *setting.model_args(),
        *(setting.data_args(data_workers) if data_workers is not None else []),
        "--trainer.default_root_dir", root,
        "--trainer.accelerator", "gpu" if device.type == "cuda" else "cpu",
        "--trainer.devices", "1",
        "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", str(batches),
        "--trainer.limit_val_batches", "0",
        "--overwrite_run", "true",
        *extra,
    ]
    saved_argv, sys.argv = sys.argv, sys.argv[:1]  # LightningCLI warns when it sees this script's own options
    try:
        return HandaugCLI(HGAN, UnpairedDataModule, args=args, run=False, seed_everything_default=0,
                          trainer_defaults=_trainer_defaults(), save_config_kwargs={"overwrite": True})
    finally:
        sys.argv = saved_argv


def plain_step_flops(plain: PlainHGAN, batch: dict) -> float:
    """FLOPs of one plain step (forward and backward of G and D, optimiser excluded) on ``batch``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        plain.step(batch)
    return float(counter.get_total_flops())


def one_image(batch: dict) -> dict:
    return {d: {k: v[:1] for k, v in batch[d].items()} for d in batch}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Lightning's and the progress bar's output goes to a file: the table stays readable."""
    with tempfile.TemporaryFile("w+") as sink, contextlib.redirect_stderr(sink):
        yield


def measure(setting: Setting, device: torch.device, args: argparse.Namespace) -> list[dict[str, Any]]:
    torch.manual_seed(0)
    # PyTorch's defaults for the plain side (an earlier handaug Trainer may have switched cuDNN's autotuner on).
    torch.backends.cudnn.benchmark = False
    batch = make_batch(setting)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as root:
        # Build handaug's module once, for the plain side's weights; the handaug side builds its own.
        probe = handaug_cli(setting, torch.device("cpu"), root + "/probe", 1, args.handaug_args)
        networks = {name: copy.deepcopy(getattr(probe.model, name)) for name in
                    ("generator_s2r", "generator_r2s", "discriminator_real", "discriminator_synthetic")}
        del probe
        plain = PlainHGAN(networks, device)
        flops = plain_step_flops(plain, one_image(batch)) * setting.batch

        # Warm the plain step and size the windows so that each lasts about --window-seconds.
        for _ in range(2):
            plain.step(batch)
        sync(device)
        start = time.perf_counter()
        plain.step(batch)
        sync(device)
        plain_seconds = time.perf_counter() - start
        steps = max(args.min_window, math.ceil(args.window_seconds / max(plain_seconds, 1e-6)))
        total = args.warmup + steps * args.windows
        profile_path = Path(args.profile) / f"train_{setting.size}px_b{setting.batch}.txt" if args.profile else None

        plain_side, ours = Side("plain PyTorch (eager fp32, NCHW)"), Side("handaug-train")
        plain_window = plain_windows(plain, batch, device, plain_side, steps)
        interleave = device.type == "cpu" and not args.no_interleave
        if not interleave:
            for _ in range(args.windows):
                plain_window()
            del plain, plain_window
            if device.type == "cuda":
                torch.cuda.empty_cache()
        extra = PROFILED_BATCHES if profile_path else 0  # profiled after the timed windows, never inside one
        cli = handaug_cli(setting, device, root + "/handaug", total + extra, args.handaug_args)
        timer = WindowTimer(args.warmup, steps, args.windows, device, ours, between=plain_window if interleave else None)
        cli.trainer.callbacks.append(timer)
        if profile_path:
            title = f"handaug-train, {setting.size} px, batch {setting.batch}, {PROFILED_BATCHES} batches after the timed ones, {device}"
            cli.trainer.callbacks.append(ProfileBatches(total, PROFILED_BATCHES, device, profile_path, title))
        data = SameBatchData(batch, total + extra, pin_memory=device.type == "cuda")
        with quiet():
            cli.trainer.fit(cli.model, datamodule=data)
        precision = str(cli.trainer.precision)
        options = describe_module(cli.model)
        del cli, timer, data
        if device.type == "cuda":
            torch.cuda.empty_cache()

        sides = [plain_side, ours]
        if args.with_data:
            fed = Side(f"handaug-train, procedural data ({args.data_workers} workers)")
            cli = handaug_cli(setting, device, root + "/data", total, args.handaug_args, data_workers=args.data_workers)
            cli.trainer.callbacks.append(WindowTimer(args.warmup, steps, args.windows, device, fed))
            with quiet():
                cli.trainer.fit(cli.model, datamodule=cli.datamodule)
            del cli
            sides.append(fed)

    peak = peak_tflops(device, args.peak_tflops)
    for side in sides:
        seconds = side.median
        achieved = flops / seconds / 1e12
        rows.append({
            "size": setting.size, "batch": setting.batch, "ngf": setting.ngf, "ndf": setting.ndf,
            "n_blocks": setting.n_blocks, "side": side.name,
            "precision": "32 (fp32)" if side is plain_side else precision,
            "options": "" if side is plain_side else options,
            "images_per_s": setting.batch / seconds, "ms_per_step": 1000 * seconds,
            "cpu_ms_per_step": 1000 * side.cpu_median, "ratio_vs_plain_cpu_time": plain_side.cpu_median / side.cpu_median,
            "step_ms_windows": [1000 * s for s in side.step_seconds], "window_steps": steps,
            "peak_memory_gib": side.peak_bytes / 2**30,
            "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process RSS (sampled)",
            "gflop_per_step": flops / 1e9, "tflops": achieved,
            "bf16_peak_fraction": achieved / peak if peak else None,
            "ratio_vs_plain": plain_side.median / seconds,
            "warmup_seconds": side.warmup_seconds if side is not plain_side else None,
        })
    return rows


def describe_module(model: Any) -> str:
    """The speed options the HGAN module ran with, as it reports them (empty if it reports none)."""
    describe = getattr(model, "speed_options", None)
    if describe is None:
        return ""
    return ", ".join(f"{k}={v}" for k, v in describe().items())


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    if device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return given or next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def print_table(rows: list[dict[str, Any]], device: torch.device) -> None:
    peak = peak_tflops(device, None)
    head = (f"{'size':>4} {'batch':>5} {'ngf/ndf':>7}  {'step':<42} {'precision':<10} {'img/s':>8} {'ms/step':>8} "
            f"{'CPU ms':>8} {'peak GiB':>8} {'TFLOP/s':>8} {'% bf16 pk':>9} {'ratio':>6} {'CPU-time ratio':>14}")
    print(head)
    print("-" * len(head))
    for r in rows:
        share = f"{100 * r['bf16_peak_fraction']:.1f}" if r["bf16_peak_fraction"] is not None else "-"
        print(f"{r['size']:>4} {r['batch']:>5} {r['ngf']:>3}/{r['ndf']:<3}  {r['side']:<42} {r['precision']:<10} "
              f"{r['images_per_s']:>8.1f} {r['ms_per_step']:>8.1f} {r['cpu_ms_per_step']:>8.0f} {r['peak_memory_gib']:>8.2f} {r['tflops']:>8.2f} "
              f"{share:>9} {r['ratio_vs_plain']:>5.2f}x {r['ratio_vs_plain_cpu_time']:>13.2f}x")
    for r in rows:
        if r["options"]:
            print(f"  handaug options at {r['size']} px, batch {r['batch']}: {r['options']}; "
                  f"warm-up {r['warmup_seconds']:.1f} s (untimed)")
    memory = rows[0]["peak_memory_kind"] if rows else ""
    print(f"peak memory: {memory}; % bf16 pk: achieved model TFLOP/s over "
          f"{f'{peak:.0f} TFLOP/s' if peak else 'the GPU dense bf16 peak (CPU: none)'}; "
          f"ratio: images/s over the plain step's; CPU ms: process CPU time per step (all threads); "
          f"CPU-time ratio: the plain step's CPU ms over this one's (steadier than wall time on a loaded CPU)")


def summarise(rows: list[dict[str, Any]], device: str) -> str:
    """One line: handaug's images/s per batch size, over the plain step's (and over issue 19's figure where it applies)."""
    parts = []
    for r in rows:
        if r["side"] != "handaug-train":
            continue
        part = f"b{r['batch']}: {r['images_per_s']:.1f}/s, {r['ratio_vs_plain']:.2f}x plain"
        if "CPU" in device:
            part += f" ({r['ratio_vs_plain_cpu_time']:.2f}x by CPU time)"
        before = BEFORE_H200.get((r["size"], r["batch"]))
        if before and "H200" in device and (r["ngf"], r["ndf"]) == (64, 64):
            part += f", {r['images_per_s'] / before:.2f}x before"
        parts.append(part)
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", type=int, help="crop side in pixels (CPU: 64, CUDA: 256)")
    parser.add_argument("--batches", type=int, nargs="+", help="batch sizes (CPU: 2, CUDA: 8 32)")
    parser.add_argument("--ngf", type=int, help="generator width (CPU: 16, CUDA: 64, the paper's)")
    parser.add_argument("--ndf", type=int, help="discriminator width (CPU: 16, CUDA: 64)")
    parser.add_argument("--n-blocks", type=int, default=4, help="residual blocks (msH-GAN4: 4)")
    parser.add_argument("--windows", type=int, default=5, help="timed windows per side (the median is reported)")
    parser.add_argument("--window-seconds", type=float, default=None, help="about how long a window lasts (CPU 4, CUDA 1)")
    parser.add_argument("--min-window", type=int, default=2, help="fewest steps in a window")
    parser.add_argument("--warmup", type=int, default=None, help="untimed handaug batches first (CPU 2, CUDA 6: compilation)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (CPU: 1, so that other load on a shared machine cannot stall a "
                             "thread barrier; CUDA: torch's default)")
    parser.add_argument("--no-interleave", action="store_true", help="on the CPU too, time the sides one after the other")
    parser.add_argument("--with-data", action="store_true", help="also time handaug fed by its own procedural data module")
    parser.add_argument("--data-workers", type=int, default=max(1, min(8, (os.cpu_count() or 2) - 2)))
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of the GPU (default: a table of known GPUs)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--profile", metavar="DIR", help="also profile 3 handaug-train batches per setting (torch.profiler tables in DIR)")
    parser.add_argument("--handaug-args", nargs=argparse.REMAINDER, default=[],
                        help="the rest of the command line goes to handaug-train (e.g. --model.compile false)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("train_speed.py: error: --device cuda but torch sees no CUDA device")
    gpu = device.type == "cuda"
    args.window_seconds = args.window_seconds or (1.0 if gpu else 4.0)
    args.warmup = args.warmup if args.warmup is not None else (6 if gpu else 2)
    threads = args.threads if args.threads is not None else (0 if gpu else 1)
    if threads:
        torch.set_num_threads(threads)
    size = args.size or (256 if gpu else 64)
    width = 64 if gpu else 16
    settings = [Setting(size, b, args.ngf or width, args.ndf or width, args.n_blocks)
                for b in (args.batches or ([8, 32] if gpu else [2]))]

    where = torch.cuda.get_device_name(device) if gpu else f"CPU ({platform.processor() or platform.machine()})"
    print(f"train_speed: {where}, torch {torch.__version__}, lightning {L.__version__}, "
          f"{torch.get_num_threads()} threads; msH-GAN{args.n_blocks}, random VGG16, median of {args.windows} windows",
          flush=True)
    rows: list[dict] = []

    for setting in settings:
        started = time.perf_counter()
        measured = measure(setting, device, args)
        rows += measured
        print(f"  {setting.size} px, batch {setting.batch}: measured in {time.perf_counter() - started:.0f} s; "
              + "; ".join(f"{r['side']}: {r['images_per_s']:.1f} img/s" for r in measured), flush=True)
        if args.json:  # after every setting: a run stopped by gpu_check's time limit keeps what it measured
            write_json(args.json, {"summary": summarise(rows, where), "device": where, "torch": torch.__version__,
                                   "lightning": L.__version__, "python": sys.version.split()[0], "threads": torch.get_num_threads(),
                                   "argv": sys.argv[1:], "settings": [asdict(s) for s in settings], "rows": rows})
    print()
    print_table(rows, device)
    print(summarise(rows, where))
    if args.json:
        print(f"wrote {args.json}")

if __name__ == "__main__":
    main()
