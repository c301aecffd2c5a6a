"""Checkpoint selection: keep the best training states by a validation measure and export the best one.

The H-GAN reference code validates every 0.2 epoch, computes FID between the translations of
the validation synthetic images and the validation real images, keeps the two best states and
tests the best. :class:`CheckpointSelection` is Lightning's ``ModelCheckpoint`` set up that way:
``monitor="val/fid"`` (lowest is best) makes it compute that FID at every validation with a
registered feature extractor (the FID InceptionV3 by default; when its weights are missing it
says so and falls back to ``random_conv``, whose numbers rank checkpoints of one run but are not
FID values). Any other logged measure can be monitored instead (``val/inner_structure`` with
``mode="max"``). How often validation runs is Lightning's ``--trainer.val_check_interval``
(``0.2``: five times an epoch; an integer: every that many batches).

:class:`~handaug.training.callbacks.GeneratorExport` then exports the generator of the best
state, and records the step, the measure and its value in the export's ``config.json``. The
selection's state (best paths and values) is part of ``last.ckpt``, so a resumed run keeps it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

from handaug.arguments import check_choice, check_int
from handaug.metrics.fid import frechet_distance
from handaug.registry import create_feature_extractor

FID_MONITOR = "val/fid"


class ValidationFID:
    """Accumulates feature vectors of one validation run and gives their FID.

    Args:
        features: registered feature extractor (``handaug plugins``): ``"inception"`` (FID's
            InceptionV3, needs its weights) or ``"random_conv"``.
        fallback: used instead (with a warning) when ``features`` cannot be built because a
            weights file is missing; ``None``: that is an error.
    """

    def __init__(self, features: str = "inception", fallback: str | None = "random_conv") -> None:
        self.requested = features
        try:
            self.extractor = create_feature_extractor(features)
            self.name = features
        except FileNotFoundError as err:
            if fallback is None:
                raise
            rank_zero_warn(
                f"checkpoint selection: {features!r} features are unavailable ({err}); ranking checkpoints by FID "
                f"with {fallback!r} features instead: they rank the states of this run, but are not FID values "
                "comparable with any other number"
            )
            self.extractor = create_feature_extractor(fallback)
            self.name = fallback
        self.extractor.eval().requires_grad_(False)
        self.real: list[torch.Tensor] = []
        self.fake: list[torch.Tensor] = []

    def reset(self) -> None:
        self.real, self.fake = [], []

    @torch.no_grad()
    def update(self, real: torch.Tensor, translated: torch.Tensor) -> None:
        """Add a batch: ``(B, 3, H, W)`` images in ``[-1, 1]`` of the real domain and translations."""
        device = real.device
        self.extractor.to(device)
        self.real.append(self.extractor(real.float().add(1).div(2).clamp(0, 1)).double().cpu())
        self.fake.append(self.extractor(translated.float().add(1).div(2).clamp(0, 1)).double().cpu())

    def compute(self, trainer: L.Trainer) -> float:
        """FID of everything accumulated on every rank."""
        real, fake = torch.cat(self.real), torch.cat(self.fake)
        if trainer.world_size > 1:
            real = trainer.strategy.all_gather(real).flatten(0, 1)
            fake = trainer.strategy.all_gather(fake).flatten(0, 1)
        return frechet_distance(real, fake)


class CheckpointSelection(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` keeping the ``save_top_k`` best training states by ``monitor``.

    Args:
        monitor: the logged measure (``"val/fid"``: computed here at every validation;
            ``"val/inner_structure"``, ``"val/cycle_l1_synthetic"``, ...), or ``None`` to keep
            none (the run exports its last state).
        mode: ``"min"`` (lower is better, FID) or ``"max"``.
        save_top_k: how many best states to keep (the reference: 2).
        features: feature extractor of ``val/fid`` (see :class:`ValidationFID`).
        dirpath: folder of the kept states (default ``<default_root_dir>/checkpoints``), named
            ``best-step{step}.ckpt``.
    """

    def __init__(
        self,
        monitor: str | None = None,
        mode: Literal["min", "max"] = "min",
        save_top_k: int = 2,
        features: str = "inception",
        dirpath: str | None = None,
    ) -> None:
        mode = check_choice(mode, "mode", ("min", "max"))
        save_top_k = check_int(save_top_k, "save_top_k", 1)
        super().__init__(
            dirpath=dirpath,
            filename="best-step{step:07d}",
            monitor=monitor,
            mode=mode,
            save_top_k=save_top_k if monitor is not None else 0,
            save_last=False,
            auto_insert_metric_name=False,
        )
        self.features = features
        self.fid: ValidationFID | None = None

    @property
    def active(self) -> bool:
        return self.monitor is not None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = str(Path(trainer.default_root_dir) / "checkpoints")
        super().setup(trainer, pl_module, stage)
        if self.monitor == FID_MONITOR and self.fid is None:
            self.fid = ValidationFID(self.features)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.fid is not None:
            self.fid.reset()

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self.fid is not None and isinstance(outputs, dict) and "translated" in outputs:
            self.fid.update(batch["real"]["image"], outputs["translated"])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.fid is not None and self.fid.real:
            pl_module.log(FID_MONITOR, self.fid.compute(trainer), prog_bar=True)
            self.fid.reset()

    def best_states(self) -> list[tuple[float, str]]:
        """``(value, path)`` of the kept states, best first."""
        ranked = sorted(((float(v), p) for p, v in self.best_k_models.items()), reverse=self.mode == "max")
        return [(v, p) for v, p in ranked if Path(p).is_file()]

    def describe(self) -> dict[str, Any]:
        """What the selection is, for the export's config."""
        return {"monitor": self.monitor, "mode": self.mode, "save_top_k": self.save_top_k,
                "features": self.fid.name if self.fid is not None else None}
