"""The three adapters in DataLoader workers, and the batched GPU path: one line per case.

    python benchmarks/adapters_in_workers.py --device cuda    # on a GPU (under a minute)
    python benchmarks/adapters_in_workers.py --device cpu     # anywhere (under a minute on 2 cores)

Cases, each with a tiny random-weight generator pool (two checkpoints written to a temporary
directory) and procedural hands at 64 px, 8 samples in batches of 4, 2 workers:

- ``<library> spawn``: the albumentations, torchvision and kornia adapters built with
  ``device=DEVICE`` run in workers started with ``spawn``. Expected: ok.
- ``<library> fork``: the same with ``fork`` workers, after the main process has used CUDA (as a
  training script has). Expected on CUDA: handaug's ``CUDAInForkedProcessError`` (its message's
  first line is printed); on the CPU: ok.
- ``<library> batched``: albumentations and torchvision with ``defer=True`` in fork workers
  (they never touch the device there), then ``translate_batch`` on DEVICE; kornia's adapter on
  the collated batch on DEVICE. Compared with the per-sample path run in the main process on
  DEVICE with the same seeds: the uint8 difference must stay within
  :data:`handaug.precision.BF16_TOLERANCE` (different batch sizes round differently).
- ``lightning callback``: ``SynthToRealCallback`` in a one-epoch fit on DEVICE.

Each line: the case, PASS or FAIL against the expectation, the time, and what happened. The exit
status is 1 if any case failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HANDAUG_OFFLINE", "1")

import albumentations as A  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset, default_collate  # noqa: E402
from torchvision import tv_tensors  # noqa: E402

from handaug import save_generator  # noqa: E402
from handaug.data.procedural import ProceduralHands  # noqa: E402
from handaug.integrations import albumentations as albu_adapter  # noqa: E402
from handaug.integrations import kornia as kornia_adapter  # noqa: E402
from handaug.integrations import torchvision as tv_adapter  # noqa: E402
from handaug.integrations.batch import translate_batch  # noqa: E402
from handaug.integrations.workers import CUDAInForkedProcessError  # noqa: E402
from handaug.precision import BF16_TOLERANCE  # noqa: E402
from handaug.registry import create_generator  # noqa: E402

SIZE, SAMPLES, BATCH, WORKERS = 64, 8, 4, 2
LIBRARIES = ("albumentations", "torchvision", "kornia")


def write_pool(root: Path) -> list[Path]:
    """Two tiny ResNet generators with random weights (speed and plumbing do not depend on weights)."""
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        generator = create_generator("resnet", n_blocks=1, ngf=8)
        paths.append(save_generator(generator, root / f"g{seed}", background=1.0, trained_with_masks=True))
    return paths


def hand(i: int) -> dict[str, np.ndarray]:
    return ProceduralHands("synthetic", image_size=SIZE, length=SAMPLES, seed=4)[i]


class Hands(Dataset):
    """A user's dataset: one library's per-sample pipeline, seeded by index. Items are dicts of tensors."""

    def __init__(self, library: str, transform: Callable) -> None:
        self.library = library
        self.transform = transform

    def __len__(self) -> int:
        return SAMPLES

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = hand(i)
        if self.library == "albumentations":
            self.transform.set_random_seed(i)
            out = self.transform(image=s["image"], mask=s["mask"])
            image = torch.from_numpy(out["image"]).permute(2, 0, 1)
            decision = out.get("synth_to_real", 0)
        elif self.library == "torchvision":
            torch.manual_seed(i)
            sample = {"image": tv_tensors.Image(torch.from_numpy(s["image"]).permute(2, 0, 1)),
                      "mask": tv_tensors.Mask(torch.from_numpy(s["mask"]))}  # fmt: skip
            out = self.transform(sample)
            image = out["image"].as_subclass(torch.Tensor)
            decision = out.get("synth_to_real", 0)
        else:
            torch.manual_seed(i)
            x = torch.from_numpy(s["image"]).permute(2, 0, 1).float() / 255
            image = (self.transform(x[None], mask=torch.from_numpy(s["mask"])[None])[0] * 255).round().to(torch.uint8)
            decision = 0
        return {"image": image.cpu(), "mask": torch.from_numpy(s["mask"] > 0), "synth_to_real": torch.tensor(decision)}


def transform(library: str, pool: list[Path], device: str, defer: bool = False, p: float = 1.0) -> Callable:
    if library == "albumentations":
        return A.Compose([albu_adapter.SynthToReal(pool, p=p, device=device, hand_mask_key="mask", defer=defer)])
    if library == "torchvision":
        return tv_adapter.SynthToReal(pool, p=p, device=device, use_mask=True, defer=defer)
    return kornia_adapter.SynthToReal(pool, p=p, device=device)


class AllLibraries(Dataset):
    """The three libraries' datasets one after the other, so that one set of spawn workers serves all
    three (starting spawn workers is most of the time). A worker's error is returned as text, per item."""

    def __init__(self, datasets: list[Hands]) -> None:
        self.datasets = datasets

    def __len__(self) -> int:
        return SAMPLES * len(self.datasets)

    def __getitem__(self, i: int) -> dict[str, object]:
        dataset = self.datasets[i // SAMPLES]
        try:
            item: dict[str, object] = dict(dataset[i % SAMPLES])
            item["error"] = ""
        except Exception as error:  # noqa: BLE001 - reported per library by the main process
            item = {"image": torch.zeros(3, SIZE, SIZE, dtype=torch.uint8), "mask": torch.zeros(SIZE, SIZE, dtype=torch.bool),
                    "synth_to_real": torch.tensor(0), "error": error_line(error)}  # fmt: skip
        item["library"] = dataset.library
        return item


def load_all(dataset: Dataset, context: str) -> dict[str, torch.Tensor | list]:
    loader = DataLoader(dataset, batch_size=BATCH, num_workers=WORKERS, multiprocessing_context=context, timeout=120)
    batches = list(loader)
    return {k: torch.cat([b[k] for b in batches]) if isinstance(batches[0][k], torch.Tensor) else
            [v for b in batches for v in b[k]] for k in batches[0]}  # fmt: skip


def error_line(error: BaseException) -> str:
    """The error's own first line (a DataLoader prefixes a worker's message with its traceback)."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    own = [line for line in lines if line.startswith(f"{type(error).__module__}.{type(error).__name__}:")]
    text = own[-1] if own else (lines[-1] if lines else "")
    return f"{type(error).__name__}: {text.split(': ', 1)[-1]}"


def within_tolerance(a: torch.Tensor, b: torch.Tensor) -> tuple[bool, str]:
    diff = (a.float() - b.float()).abs() / 255
    mean, worst = float(diff.mean()), float(diff.max())
    ok = mean <= BF16_TOLERANCE["mean"] and worst <= BF16_TOLERANCE["max"]
    return ok, f"against the per-sample path: mean {mean * 255:.3f}, max {worst * 255:.0f} uint8 levels"


def all_translated(images: torch.Tensor, context: str) -> tuple[bool, str]:
    originals = torch.stack([torch.from_numpy(hand(i)["image"]).permute(2, 0, 1) for i in range(SAMPLES)])
    changed = int((images != originals).flatten(1).any(1).sum())
    return changed == SAMPLES, f"ok: {changed}/{SAMPLES} images translated in {WORKERS} {context} workers"


def spawn_cases(pool: list[Path], device: str) -> dict[str, tuple[bool, str]]:
    """Every library in spawn workers (must work), through one DataLoader: one result per library."""
    try:
        batch = load_all(AllLibraries([Hands(lib, transform(lib, pool, device)) for lib in LIBRARIES]), "spawn")
    except Exception as error:  # noqa: BLE001 - the loader itself failed
        return {lib: (False, "unexpected: " + error_line(error)) for lib in LIBRARIES}
    results = {}
    for k, library in enumerate(LIBRARIES):
        rows = slice(k * SAMPLES, (k + 1) * SAMPLES)
        errors = [e for e in batch["error"][rows] if e]
        results[library] = (False, "unexpected: " + errors[0]) if errors else all_translated(batch["image"][rows], "spawn")
    return results


def fork_case(library: str, pool: list[Path], device: str) -> tuple[bool, str]:
    """fork workers: the handaug error on CUDA (after the main process used CUDA), translated images on the CPU."""
    expect_error = torch.device(device).type == "cuda"
    try:
        batch = load_all(Hands(library, transform(library, pool, device)), "fork")
    except CUDAInForkedProcessError as error:
        return expect_error, ("expected handaug error: " if expect_error else "unexpected: ") + error_line(error)
    except Exception as error:  # noqa: BLE001 - any other error is the failure this script looks for
        return False, "unexpected: " + error_line(error)
    if expect_error:
        return False, "ran in forked workers on CUDA: the handaug error was expected"
    return all_translated(batch["image"], "fork")


def batched_case(library: str, pool: list[Path], device: str) -> tuple[bool, str]:
    """Deferred decisions in fork workers + one translate_batch on DEVICE, against the per-sample path."""
    reference = Hands(library, transform(library, pool, device, p=0.5))
    expected = torch.stack([reference[i]["image"] for i in range(SAMPLES)])
    if library == "kornia":  # a batch augmentation: per-image p on the collated batch
        aug = kornia_adapter.SynthToReal(pool, p=0.5, device=device)
        images = default_collate([{"image": torch.from_numpy(hand(i)["image"]).permute(2, 0, 1)} for i in range(SAMPLES)])
        x = images["image"].to(device).float() / 255
        masks = torch.stack([torch.from_numpy(hand(i)["mask"]) for i in range(SAMPLES)]).to(device)
        out = aug(x, mask=masks)
        chosen = (aug._params["batch_prob"] > 0.5).to(device)
        kept = torch.equal(out[~chosen], x[~chosen])
        return kept, f"ok: one call on {SAMPLES} images on {device}, {int(chosen.sum())} chosen, others bit-exact"
    deferred = transform(library, pool, device, defer=True, p=0.5)
    batch = load_all(Hands(library, deferred), "fork")
    adapter = deferred.transforms[-1] if library == "albumentations" else deferred
    images = batch["image"].to(device, non_blocking=True)
    out = translate_batch(adapter, images, batch["synth_to_real"], batch["mask"].to(device)).cpu()
    ok, detail = within_tolerance(out, expected)
    chosen = int((batch["synth_to_real"] >= 0).sum())
    return ok, f"{'ok' if ok else 'too far'}: {chosen}/{SAMPLES} chosen in fork workers, one call on {device}, {detail}"


def lightning_case(pool: list[Path], device: str) -> tuple[bool, str]:
    import lightning as L

    from handaug.integrations.lightning import SynthToRealCallback

    for name in list(logging.root.manager.loggerDict):  # one line per case: no trainer banners
        if name.startswith("lightning"):
            logging.getLogger(name).setLevel(logging.ERROR)

    class Recorder(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.seen: list[torch.Tensor] = []

        def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
            self.seen.append(batch["image"].cpu())
            return (self.weight**2).sum()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    deferred = transform("albumentations", pool, device, defer=True, p=0.5)
    reference = Hands("albumentations", transform("albumentations", pool, device, p=0.5))
    expected = torch.stack([reference[i]["image"] for i in range(SAMPLES)])
    model = Recorder()
    callback = SynthToRealCallback(deferred.transforms[-1], mask_key="mask")
    with tempfile.TemporaryDirectory() as root:
        trainer = L.Trainer(default_root_dir=root, accelerator="gpu" if device.startswith("cuda") else "cpu", devices=1,
                            max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=[callback])  # fmt: skip
        trainer.fit(model, DataLoader(Hands("albumentations", deferred), batch_size=BATCH))
    ok, detail = within_tolerance(torch.cat(model.seen), expected)
    return ok, f"{'ok' if ok else 'too far'}: training_step saw translated batches, {detail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = args.device
    if torch.device(device).type == "cuda":
        torch.zeros(1, device=device)  # the main process uses CUDA before its loaders fork, as a training script does
    failures = 0
    with tempfile.TemporaryDirectory() as root:
        pool = write_pool(Path(root))
        print(f"adapters in DataLoader workers, device={device}, {SAMPLES} hands at {SIZE} px, {WORKERS} workers")
        start = time.perf_counter()
        spawned = spawn_cases(pool, device)
        seconds = time.perf_counter() - start
        for library in LIBRARIES:
            ok, detail = spawned[library]
            failures += not ok
            print(f"{library + ' spawn':<26} {'PASS' if ok else 'FAIL'}  {seconds:5.1f} s  {detail} (one loader for all three)")
        cases: list[tuple[str, Callable[[], tuple[bool, str]]]] = []
        for library in LIBRARIES:
            cases.append((f"{library} fork", lambda lib=library: fork_case(lib, pool, device)))
            cases.append((f"{library} batched", lambda lib=library: batched_case(lib, pool, device)))
        cases.append(("lightning callback", lambda: lightning_case(pool, device)))
        for name, case in cases:
            start = time.perf_counter()
            try:
                ok, detail = case()
            except Exception as error:  # noqa: BLE001 - report and go on to the next case
                ok, detail = False, "unexpected: " + error_line(error)
            failures += not ok
            print(f"{name:<26} {'PASS' if ok else 'FAIL'}  {time.perf_counter() - start:5.1f} s  {detail}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
