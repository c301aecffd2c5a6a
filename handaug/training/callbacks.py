"""Callbacks of ``handaug-train``: sample grids after each validation, generator export at the end."""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torchvision.utils import make_grid

from handaug.atomic_files import write_bytes_atomically
from handaug.checkpoint import save_generator
from handaug.training.selection import CheckpointSelection

GRID_COLUMNS: tuple[str, ...] = ("synthetic", "translated", "cycled")


def to_uint8_image(grid: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` float in ``[-1, 1]`` → ``(H, W, 3)`` uint8 RGB."""
    return ((grid.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write ``(H, W, 3)`` uint8 RGB as PNG atomically (temporary file, then rename)."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode {path}")
    write_bytes_atomically(path, encoded.tobytes())


class SampleGridWriter(L.Callback):
    """After every validation, writes ``<root>/<dirname>/epoch{E}-step{S}.png``.

    One row per validation image (up to ``max_images``), columns: synthetic input | translated
    to real | cycled back to synthetic. Written by global rank 0 only, never during Lightning's
    sanity check.
    """

    def __init__(self, dirname: str = "samples", max_images: int = 8) -> None:
        super().__init__()
        self.dirname = dirname
        self.max_images = max_images
        self._rows: list[torch.Tensor] = []
        self.last_written: Path | None = None

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._rows = []

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not isinstance(outputs, dict):
            return
        if not all(k in outputs for k in GRID_COLUMNS):
            return
        for i in range(outputs["synthetic"].shape[0]):
            if len(self._rows) >= self.max_images:
                return
            self._rows.append(torch.stack([outputs[k][i].detach().float().cpu() for k in GRID_COLUMNS]))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not self._rows:
            return
        grid = make_grid(torch.cat(self._rows), nrow=len(GRID_COLUMNS), padding=2, pad_value=1.0)
        path = Path(trainer.default_root_dir) / self.dirname / f"epoch{trainer.current_epoch:03d}-step{trainer.global_step:07d}.png"
        write_png(path, to_uint8_image(grid))
        self.last_written = path
        self._rows = []


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[key] = float(value)
    return out


class GeneratorExport(L.Callback):
    """At the end of ``fit``, exports the synthetic→real generator to ``<root>/<dirname>/``:
    the best kept state's when a :class:`~handaug.training.selection.CheckpointSelection` is
    active (its config's ``training.selection`` records the measure, its value and the step),
    the last state's otherwise.

    The export is handaug's checkpoint format (see :mod:`handaug.checkpoint`): what
    ``handaug.load_generator`` and ``SynthToReal`` read. Its config records the data setup
    (crop sizes, background, masks) and a training summary (epochs, steps, last losses, model
    hyper-parameters). Lightning's own ``checkpoints/last.ckpt`` stays the file to resume from.
    """

    def __init__(self, dirname: str = "export") -> None:
        super().__init__()
        self.dirname = dirname
        self._started: float | None = None
        self.exported_to: Path | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.time()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self.exported_to = export_generator(trainer, pl_module, Path(trainer.default_root_dir) / self.dirname, self._started)
        rank_zero_info(f"handaug: exported the synthetic→real generator to {self.exported_to}")


def selected_generator(trainer: L.Trainer, pl_module: L.LightningModule) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The synthetic→real generator to export and how it was chosen.

    With an active :class:`~handaug.training.selection.CheckpointSelection`, the generator of
    its best kept state (the next best if a file cannot be read); otherwise the current one.
    """
    for callback in trainer.callbacks:
        if not isinstance(callback, CheckpointSelection) or not callback.active:
            continue
        for value, state_path in callback.best_states():
            try:
                state = torch.load(state_path, map_location="cpu", weights_only=True)
                weights = {k[len("generator_s2r."):]: v for k, v in state["state_dict"].items() if k.startswith("generator_s2r.")}
                generator = copy.deepcopy(pl_module.generator_s2r).cpu()
                generator.load_state_dict(weights)
            except Exception as err:  # noqa: BLE001 - a torn or foreign file: try the next best
                rank_zero_warn(f"checkpoint selection: cannot read {state_path} ({type(err).__name__}: {err}); trying the next best")
                continue
            record = {**callback.describe(), "value": value, "global_step": int(state["global_step"]),
                      "epoch": int(state["epoch"]), "checkpoint": Path(state_path).name}
            return generator, record
        rank_zero_warn("checkpoint selection kept no readable state: exporting the last one")
        return pl_module.generator_s2r, {**callback.describe(), "value": None, "exported": "last"}
    return pl_module.generator_s2r, {"monitor": None, "exported": "last"}


def export_generator(trainer: L.Trainer, pl_module: L.LightningModule, path: Path, started: float | None = None) -> Path:
    """Write the selected synthetic→real generator (:func:`selected_generator`) with the run's data setup and summary to ``path``."""
    generator, selection = selected_generator(trainer, pl_module)
    datamodule = getattr(trainer, "datamodule", None)
    data = datamodule.describe() if datamodule is not None and hasattr(datamodule, "describe") else {}
    hparams = {k: v for k, v in dict(pl_module.hparams).items()}
    hparams["betas"] = list(hparams.get("betas", ()))
    summary = {
        "epochs_completed": int(trainer.current_epoch),
        "optimizer_steps": int(trainer.global_step),
        "batches": int(trainer.fit_loop.epoch_loop.total_batch_idx + 1),
        "final_metrics": _scalars(dict(trainer.callback_metrics)),
        "model": hparams,
        "data": data,
        "precision": str(trainer.precision),
        "world_size": int(trainer.world_size),
        "wall_time_s": round(time.time() - started, 1) if started else None,
        "selection": selection,
    }
    trained_with_masks = bool(pl_module.hparams.get("mask_generated", False)) and any(
        bool((data.get(d) or {}).get("masks")) for d in ("synthetic", "real")
    )
    return save_generator(
        generator,
        path,
        direction="synthetic_to_real",
        image_size={"train": data.get("crop_size"), "val": data.get("val_size")},
        background=data.get("background"),
        trained_with_masks=trained_with_masks,
        training=summary,
    )
