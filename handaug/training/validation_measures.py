"""Cheap translation measures during training: Lightning callbacks that log them after every validation.

- :class:`StructureMonitor` logs ``val/inner_structure``: the inner-structure score
  (:mod:`handaug.metrics.structure`) of the validation batches' synthetic images against their
  translations, inside the synthetic hand masks. 1: the translation keeps the hand's internal
  edges and shading (up to a colour change); 0: the hand became a flat blob.
- :class:`PoseConsistencyMonitor` (optional, it needs an oracle keypoint model) logs
  ``val/pose_pck`` and ``val/pose_consistency``: an oracle trained on real-style hands only is run
  on a fixed set of procedural synthetic hands translated by the current generator, against the
  source keypoints; the consistency is that PCK over the oracle's PCK on real-style renderings of
  the same hands (see :mod:`handaug.metrics.pose_consistency`). Write an oracle with
  ``handaug-eval pose-consistency --ckpt ANY --save-oracle oracle.safetensors`` (or
  :func:`handaug.metrics.pose_consistency.save_oracle`).

Both log through ``pl_module.log`` at the end of each validation epoch (never during Lightning's
sanity check), so the values land in ``metrics.csv`` / TensorBoard and ``ModelCheckpoint`` can
monitor them (``mode="max"``).
"""

from __future__ import annotations

import math
import os
from typing import Any

import lightning as L
import torch
import torch.nn as nn
from lightning.pytorch.utilities import rank_zero_warn

from handaug.arguments import check_int, is_flag, is_integer
from handaug.data.background import background_value
from handaug.metrics.pose_benefit import (
    KeypointRegressor,
    mean_pixel_error,
    pck,
    pose_test_set,
    predict_keypoints,
    visible_keypoints,
)
from handaug.metrics.pose_consistency import load_oracle
from handaug.metrics.structure import DEFAULT_EPS, check_window, default_window, inner_structure_per_image
from handaug.training.module import composite


def _compute_device(x: torch.Tensor) -> torch.device:
    # float64 runs on CPU and CUDA; elsewhere (MPS) the batch comes to the CPU.
    return x.device if x.device.type in ("cpu", "cuda") else torch.device("cpu")


class StructureMonitor(L.Callback):
    """Logs the inner structure of the validation translations as ``name`` (default ``val/inner_structure``).

    On every validation batch, the ``"synthetic"`` and ``"translated"`` images that
    ``HGAN.validation_step`` returns (``(B, 3, H, W)`` in ``[-1, 1]``) are compared inside the
    batch's synthetic hand masks (``batch["synthetic"]["mask"]`` ``(B, 1, H, W)`` in ``{0, 1}``;
    images whose ``has_mask`` is false are skipped). At the end of the epoch the mean of the
    per-image scores (over every process under DDP) is logged: in ``[0, 1]``, higher is better;
    NaN (with a warning) when no image could be scored (no masks, or hands smaller than the window).

    Args:
        window: odd window side in pixels (default: :func:`handaug.metrics.structure.default_window`
            of the validation image size: 7 at 64 px, 13 at 128 px, 25 at 256 px).
        name: the logged metric's name.
        eps: the measure's regularisation (:data:`handaug.metrics.structure.DEFAULT_EPS`).
    """

    def __init__(self, window: int | None = None, name: str = "val/inner_structure", eps: float = DEFAULT_EPS) -> None:
        super().__init__()
        if window is not None:
            check_window(window, (window, window))
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        self.window = window
        self.name = name
        self.eps = eps
        self._sum = 0.0
        self._scored = 0
        self._skipped = 0
        self.last_value: float | None = None

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sum, self._scored, self._skipped = 0.0, 0, 0

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking or not isinstance(outputs, dict) or "synthetic" not in outputs or "translated" not in outputs:
            return
        synthetic = outputs["synthetic"].detach()
        device = _compute_device(synthetic)
        source = synthetic.to(device).float().add(1.0).div(2.0).clamp(0.0, 1.0)
        translated = outputs["translated"].detach().to(device).float().add(1.0).div(2.0).clamp(0.0, 1.0)
        masks = batch["synthetic"]["mask"].detach().to(device) > 0.5
        if "has_mask" in batch["synthetic"]:
            masks = masks & batch["synthetic"]["has_mask"].to(device).view(-1, 1, 1, 1).bool()
        window = self.window or default_window(min(source.shape[-2:]))
        if window > min(source.shape[-2:]):
            self._skipped += source.shape[0]
            return
        scores = inner_structure_per_image(source, translated, masks, window=window, eps=self.eps)
        kept = scores[~torch.isnan(scores)]
        self._sum += float(kept.sum())
        self._scored += int(kept.numel())
        self._skipped += int(scores.numel() - kept.numel())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        totals = torch.tensor([self._sum, float(self._scored)], dtype=torch.float64, device=pl_module.device)
        if trainer.world_size > 1:
            totals = trainer.strategy.reduce(totals, reduce_op="sum")
        total, scored = float(totals[0]), int(totals[1])
        value = total / scored if scored else math.nan
        if not scored:
            rank_zero_warn(f"{type(self).__name__}: no validation image could be scored (no hand masks, or every hand narrower than the window); {self.name} is NaN")
        self.last_value = value
        # every process logs the same, already reduced value (sync_dist only averages equal numbers)
        pl_module.log(self.name, value, prog_bar=False, sync_dist=True)


class PoseConsistencyMonitor(L.Callback):
    """Logs how well an oracle keypoint model finds the source pose in the current generator's translations.

    At the end of every validation epoch the synthetic→real generator (``pl_module.generator_s2r``,
    in eval mode, no gradients) translates ``probes`` fixed procedural synthetic hands (inputs in
    ``[-1, 1]`` with the background set to ``background`` outside the masks, outputs composited
    with the masks, as ``SynthToReal`` is used). The oracle predicts their keypoints, which are
    scored against the source keypoints: PCK@0.1 is logged as ``{prefix}pose_pck`` and its ratio to
    the oracle's PCK on real-style renderings of the same hands (computed once) as
    ``{prefix}pose_consistency``; the mean pixel error as ``{prefix}pose_error_px``.

    Args:
        oracle: a :class:`handaug.metrics.pose_benefit.KeypointRegressor` trained on real-style
            images only, or the path of a file written by
            :func:`handaug.metrics.pose_consistency.save_oracle` (``handaug-eval pose-consistency
            --save-oracle PATH``).
        image_size: side of the probe images (a multiple of 16); default: the size the oracle file
            records (required when ``oracle`` is a model).
        probes: number of probe hands.
        seed: their procedural seed is ``handaug.metrics.eval_data.role_seed(seed, "pose_test")``
            (evaluation hands, never the training hands).
        background: what the generator sees outside the hand: ``"white"`` / ``"black"`` (as the
            data module's ``background``) or a value in ``[-1, 1]``.
        prefix: prefix of the logged names.
    """

    def __init__(
        self,
        oracle: nn.Module | str | os.PathLike[str],
        *,
        image_size: int | None = None,
        probes: int = 32,
        seed: int = 0,
        background: str | float = "white",
        batch_size: int = 16,
        prefix: str = "val/",
    ) -> None:
        super().__init__()
        if isinstance(oracle, (str, os.PathLike)):
            model, settings = load_oracle(oracle)
            image_size = settings["image_size"] if image_size is None else image_size
        elif isinstance(oracle, KeypointRegressor):
            model = oracle
            if image_size is None:
                raise ValueError("image_size is required when oracle is a model (an oracle file records it)")
        else:
            raise ValueError(f"oracle must be a KeypointRegressor or the path of an oracle file, got {type(oracle).__name__}")
        if not is_integer(image_size) or image_size < 16 or image_size % 16:
            raise ValueError(f"image_size must be a positive multiple of 16, got {image_size!r}")
        self.background_value = _fill_value(background)
        self.oracle = model.eval().requires_grad_(False)
        self.image_size = int(image_size)
        self.probes = check_int(probes, "probes", 1)
        self.seed = check_int(seed, "seed", 0)
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.prefix = prefix
        self._probe_set = None
        self._reference_pck: float | None = None
        self.last_values: dict[str, float] = {}

    def _prepare(self) -> None:
        if self._probe_set is not None:
            return
        common = dict(image_size=self.image_size, n_test=self.probes, seed=self.seed, background="keep", show_progress=False)
        synthetic = pose_test_set("synthetic", **common)
        real = pose_test_set("real", image_size=self.image_size, n_test=self.probes, seed=self.seed, background="white", show_progress=False)
        predicted = predict_keypoints(self.oracle, real.images)
        self._reference_pck = pck(predicted, real.keypoints, visible_keypoints(real.keypoints, real.image_size))
        self._probe_set = synthetic

    @torch.no_grad()
    def translate_probes(self, generator: nn.Module, device: torch.device) -> torch.Tensor:
        """The probe hands translated by ``generator``: ``(probes, 3, S, S)`` float in ``[0, 1]`` on the CPU."""
        self._prepare()
        out = []
        for start in range(0, self.probes, self.batch_size):
            images = self._probe_set.images[start : start + self.batch_size].to(device).float().div(127.5).sub(1.0)
            masks = self._probe_set.masks[start : start + self.batch_size].to(device).float()
            x = torch.where(masks > 0, images, torch.full_like(images, self.background_value))
            translated = composite(generator(x).float().clamp(-1.0, 1.0), x, masks)
            out.append(translated.add(1.0).div(2.0).cpu())
        return torch.cat(out)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        generator = getattr(pl_module, "generator_s2r", None)
        if not isinstance(generator, nn.Module):
            raise ValueError(f"{type(self).__name__} needs a module with a generator_s2r network, got {type(pl_module).__name__}")
        was_training = generator.training
        generator.eval()
        try:
            translated = self.translate_probes(generator, pl_module.device)
        finally:
            generator.train(was_training)
        keypoints = self._probe_set.keypoints
        visible = visible_keypoints(keypoints, self._probe_set.image_size)
        predicted = predict_keypoints(self.oracle, translated, device=pl_module.device)
        score = pck(predicted, keypoints, visible)
        values = {
            "pose_pck": score,
            "pose_consistency": score / self._reference_pck if self._reference_pck else math.nan,
            "pose_error_px": mean_pixel_error(predicted, keypoints, visible),
        }
        self.oracle.to("cpu")
        self.last_values = values
        for key, value in values.items():
            # every process computes the same numbers on the same probes
            pl_module.log(self.prefix + key, float(value), prog_bar=False, sync_dist=True)


def _fill_value(background: str | float) -> float:
    """:func:`handaug.data.background.background_value` of ``background``, which must be a fill: not ``"keep"``, not a bool."""
    try:
        value = None if is_flag(background) else background_value(background)
    except ValueError:
        value = None
    if value is None:
        raise ValueError(f"background must be 'white', 'black' or a number in [-1, 1], got {background!r}")
    return value
