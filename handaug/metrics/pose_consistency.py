"""Pose consistency: can a keypoint model that has only seen real-style hands find the source pose in a translation?

A translation is worth training on if it (i) keeps the pose visible, so that the source's
keypoints are still right, and (ii) looks real, so that what a model learns from it transfers.
This measure asks both at once of an *oracle*: the keypoint regressor trained on real-style hands
only (the ``"real (oracle)"`` row of :mod:`handaug.metrics.pose_benefit`, trained once for both
measures by :func:`handaug.metrics.pose_benefit.train_oracles`). The oracle is scored

(a) on synthetic hands translated by each checkpoint, against the SOURCE keypoints (composited
    with the hand masks, as ``SynthToReal`` is used);
(b) on real-style renderings of the same hands (the oracle's own domain: its reference score);
(c) on the untranslated synthetic hands (the domain gap the translation should close).

Rows report PCK@0.1 and the mean pixel error (as in :mod:`handaug.metrics.pose_benefit`), and
``PCK / PCK on real``: (a) / (b), per oracle run. A translation that keeps the pose and looks
real scores near 1; one that blurs the fingers or blanks the hand scores far lower, and so does
one that keeps the pose but looks nothing like the real domain (then (a) stays near (c)).

What it does not capture: the oracle judges appearance only through what a small keypoint model
trained on procedural real-style hands relies on, so a translation can score well while its
texture would not fool a domain classifier (FID/KID and the classifier tests measure that); and a
ratio above 1 is possible (the translated hand may be easier for the oracle than the real
rendering).

Oracles can be saved (:func:`save_oracle`, a ``.safetensors`` file with its settings in the
metadata) and loaded (:func:`load_oracle`) for the validation-time monitor
(:class:`handaug.training.validation_measures.PoseConsistencyMonitor`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from handaug.metrics.eval_data import EvalSet, PathLike, Translator, translate_set
from handaug.metrics.pose_benefit import KeypointRegressor, PoseScore, mean_of_runs, score_models, std_of_runs
from handaug.metrics.report import Table, format_mean_std
from handaug.pretrained import load_state_dict_file
from handaug.safetensors_files import safetensors_metadata, write_tensor_file

ORACLE_FORMAT = "handaug.keypoint_oracle"
ORACLE_FORMAT_VERSION = 1
ORACLE_METADATA_KEY = "handaug_keypoint_oracle"
#: Limits on an oracle file's network settings, checked before anything is allocated.
ORACLE_BOUNDS = {"num_keypoints": (1, 256), "width": (1, 256), "image_size": (16, 4096)}

REAL_LABEL = "real-style (oracle's domain)"
SYNTHETIC_LABEL = "synthetic (no translation)"


@dataclass(frozen=True)
class ConsistencyScore(PoseScore):
    """The oracle's PCK@0.1 and mean pixel error on one set of images, per oracle run; its PCK relative to
    real-style images (``pck_ratio``) and its PCK minus that on the untranslated synthetic images
    (``pck_gain``, a fraction, paired per oracle run: the gain a translation gives over no translation)."""

    pck_ratio: list[float] = field(default_factory=list)
    pck_gain: list[float] = field(default_factory=list)

    @property
    def ratio_mean(self) -> float:
        return mean_of_runs(self.pck_ratio)

    @property
    def ratio_std(self) -> float | None:
        return std_of_runs(self.pck_ratio)

    @property
    def gain_mean(self) -> float:
        return mean_of_runs(self.pck_gain)

    @property
    def gain_std(self) -> float | None:
        return std_of_runs(self.pck_gain)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d.update(ratio_mean=self.ratio_mean, ratio_std=self.ratio_std, gain_mean=self.gain_mean, gain_std=self.gain_std)
        return d


def _with_references(score: PoseScore, real: PoseScore, synthetic: PoseScore) -> ConsistencyScore:
    ratio = [a / b if b > 0 else float("nan") for a, b in zip(score.pck, real.pck)]
    gain = [a - b for a, b in zip(score.pck, synthetic.pck)]
    return ConsistencyScore(score.label, score.pck, score.pixel_error, score.n_train, score.n_test, list(score.notes), ratio, gain)


def pose_consistency(
    translators: Mapping[str, Translator | PathLike],
    oracles: Sequence[nn.Module],
    synthetic: EvalSet,
    real: EvalSet,
    *,
    n_train: int = 0,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    show_progress: bool = False,
) -> list[ConsistencyScore]:
    """Score the oracle(s) on real-style images, untranslated synthetic images and each translation.

    Args:
        translators: ``{label: checkpoint path or Translator}``; checkpoints translate with the
            hand masks (composited, as ``SynthToReal(ckpt)(images, mask=masks)``).
        oracles: keypoint models trained on real-style images only (one per run), e.g. from
            :func:`handaug.metrics.pose_benefit.train_oracles`.
        synthetic: synthetic-style images with keypoints (and masks, for compositing).
        real: real-style images with keypoints, never seen by the oracles (ideally the same hands
            as ``synthetic``, as :func:`handaug.metrics.pose_benefit.pose_test_set` gives).
        n_train: how many images the oracles were trained on (reported only).

    Returns:
        Rows ``REAL_LABEL`` (b), ``SYNTHETIC_LABEL`` (c), then one per translator (a), each with
        ``pck_ratio``: its PCK over (b)'s, and ``pck_gain``: its PCK minus (c)'s, per oracle.

    Raises:
        ValueError: no oracles, or a set without keypoints.
    """
    if not oracles:
        raise ValueError("oracles must hold at least one keypoint model")
    for name, images in (("synthetic", synthetic), ("real", real)):
        if images.keypoints is None:
            raise ValueError(f"{name} images {images.name!r} have no keypoints; pose consistency needs them")
    reference = score_models(REAL_LABEL, oracles, real, n_train=n_train, device=device)
    untranslated = score_models(SYNTHETIC_LABEL, oracles, synthetic, n_train=n_train, device=device)
    rows = [_with_references(reference, reference, untranslated), _with_references(untranslated, reference, untranslated)]
    for label, translator in translators.items():
        translated = translate_set(translator, synthetic, batch_size=batch_size, device=device, show_progress=show_progress, name=label)
        rows.append(_with_references(score_models(label, oracles, translated, n_train=n_train, device=device), reference, untranslated))
    return rows


def consistency_table(rows: Sequence[ConsistencyScore], title: str = "Pose consistency: a real-style keypoint model on translated hands") -> Table:
    """One row per image set: the oracle's PCK@0.1 (%), mean pixel error and PCK relative to real-style images."""
    columns = ["images", "PCK@0.1 (%) ↑", "mean error (px) ↓", "PCK / PCK on real ↑", "PCK − untranslated (points) ↑", "images scored", "oracles"]
    table = Table(title, columns)
    for row in rows:
        pck_std = None if row.pck_std is None else 100 * row.pck_std
        gain_std = None if row.gain_std is None else 100 * row.gain_std
        table.add_row([
            row.label,
            format_mean_std(100 * row.pck_mean, pck_std, 1),
            format_mean_std(row.error_mean, row.error_std, 2),
            format_mean_std(row.ratio_mean, row.ratio_std, 3),
            format_mean_std(100 * row.gain_mean, gain_std, 1),
            row.n_test,
            len(row.pck),
        ])
    n_train = rows[0].n_train if rows else 0
    table.notes.append(
        f"The oracle is a keypoint regressor trained only on {n_train} real-style hands; every row shows it the same hands: "
        "real-style renderings (its own domain), the synthetic renderings, and the synthetic renderings translated by each "
        "checkpoint (hand masks composited), scored against the source keypoints. A ratio near 1: the translation keeps the "
        "pose visible and looks real to the oracle; near the synthetic row's: it did not close the domain gap; far below: "
        "it lost the hand's inner structure. The gain over the untranslated row is paired (same oracle, same hands), so it "
        "varies far less between oracle runs than the PCK itself; a translation should not make it negative."
    )
    return table


# ---------------------------------------------------------------------- oracle files
def save_oracle(model: KeypointRegressor, path: str | os.PathLike[str], *, image_size: int, trained_on: str = "") -> Path:
    """Write ``model`` to ``path`` (a ``.safetensors`` file, written atomically) with its settings in the metadata.

    Args:
        model: a :class:`~handaug.metrics.pose_benefit.KeypointRegressor`.
        image_size: the side of the images it was trained on (the monitor renders its probes at this size).
        trained_on: a free-form description (shown by :func:`load_oracle`'s callers).
    """
    if not isinstance(model, KeypointRegressor):
        raise ValueError(f"model must be a KeypointRegressor, got {type(model).__name__}")
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"path must end in .safetensors, got {str(path)!r}")
    settings = {
        "format": ORACLE_FORMAT, "format_version": ORACLE_FORMAT_VERSION, "num_keypoints": int(model.num_keypoints),
        "width": int(model.width), "image_size": int(image_size), "trained_on": str(trained_on),
    }
    write_tensor_file(path, model.state_dict(), ORACLE_METADATA_KEY, settings)
    return path


def _oracle_settings(path: Path) -> dict[str, Any]:
    try:
        metadata = safetensors_metadata(path.read_bytes())
    except OSError as err:
        raise ValueError(f"oracle file {str(path)!r} cannot be read: {err.strerror or err}") from None
    except ValueError as err:
        raise ValueError(f"oracle file {str(path)!r} is not a readable .safetensors file: {err}") from None
    try:
        settings = json.loads(metadata[ORACLE_METADATA_KEY])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"oracle file {str(path)!r} has no {ORACLE_METADATA_KEY!r} metadata: it was not written by save_oracle") from err
    if not isinstance(settings, dict) or settings.get("format") != ORACLE_FORMAT or settings.get("format_version") != ORACLE_FORMAT_VERSION:
        raise ValueError(f"oracle file {str(path)!r}: expected format {ORACLE_FORMAT!r} version {ORACLE_FORMAT_VERSION}")
    for key, (low, high) in ORACLE_BOUNDS.items():
        value = settings.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"oracle file {str(path)!r}: {key} must be an integer in [{low}, {high}], got {value!r}")
    if settings["image_size"] % 16:
        raise ValueError(f"oracle file {str(path)!r}: image_size must be a multiple of 16, got {settings['image_size']}")
    return settings


def load_oracle(path: str | os.PathLike[str]) -> tuple[KeypointRegressor, dict[str, Any]]:
    """The keypoint model saved by :func:`save_oracle` at ``path`` (CPU, eval mode) and its settings.

    Nothing is unpickled: the settings are JSON in the safetensors metadata, checked against
    :data:`ORACLE_BOUNDS` before the network is built, and the weights must match it exactly.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not an oracle file, settings out of bounds, weights that do not fit, NaN weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"oracle file {str(path)!r} does not exist")
    settings = _oracle_settings(path)
    model = KeypointRegressor(num_keypoints=settings["num_keypoints"], width=settings["width"])
    state = load_state_dict_file(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"oracle file {str(path)!r}: the weights do not fit a KeypointRegressor with its settings: {err}") from err
    if not all(bool(torch.isfinite(v).all()) for v in state.values()):
        raise ValueError(f"oracle file {str(path)!r} holds NaN or infinite weights")
    return model.eval(), settings
