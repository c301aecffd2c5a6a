"""The evaluation runs of ``handaug-eval``: each measure over one or more checkpoints, written to a report folder.

Each ``run_*`` function evaluates every checkpoint of an :class:`EvalSuite`, writes its tables
(Markdown + CSV) and figures into ``suite.out`` and returns the tables; :meth:`EvalSuite.run_all`
runs them all and writes ``report.md`` (every table, with the figures linked) and
``results.json`` (the raw numbers).

>>> suite = EvalSuite({"demo": "/tmp/handaug-demo/export"}, out="eval-report")   # doctest: +SKIP
>>> tables = suite.run_all()                                                      # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from handaug.atomic_files import write_bytes_atomically
from handaug.hub import is_hub_name
from handaug.metrics.classifier import (
    ClassifierConfig,
    binary_domain_experiment,
    binary_table,
    plot_confusion_matrix,
    three_class_experiment,
    three_class_table,
)
from handaug.metrics.eval_data import DomainSources, EvalSet, PathLike, role_seed, translate_set
from handaug.metrics.features import extract_features
from handaug.metrics.fid import fid_kid_from_features
from handaug.metrics.grids import sample_grid
from handaug.metrics.pose_benefit import KeypointRegressor, pose_benefit, pose_table, pose_test_set, train_oracles
from handaug.metrics.pose_consistency import consistency_table, pose_consistency, save_oracle
from handaug.metrics.report import Table, file_slug, format_mean_std, format_number
from handaug.metrics.shape import identity_translator, other_backgrounds_translator, shape_preservation, train_default_segmenter
from handaug.metrics.structure import chance_level, default_window, inner_structure
from handaug.registry import create_feature_extractor

MEASURES: tuple[str, ...] = ("fid", "classifier", "shape", "structure", "pose-benefit", "pose-consistency", "grid")


def checkpoint_label(path: PathLike) -> str:
    """A short name for a checkpoint path: its folder/file name, with the parent's for generic names like ``export``."""
    p = Path(path)
    name = p.stem if p.suffix == ".safetensors" else p.name
    if name in ("export", "checkpoint", "ckpt", "generator", "") and p.parent.name:
        name = f"{p.parent.name}/{name}"
    return _one_line(name)


def _one_line(text: str) -> str:
    """``text`` with newlines and other control characters written as escapes (``\\n``): one line of printable text."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


#: Longest checkpoint label (``--ckpt LABEL=PATH``).
MAX_LABEL_LENGTH = 200


def parse_checkpoints(specs: list[str]) -> dict[str, str]:
    """``["PATH", "LABEL=PATH", ...]`` → ``{label: path}`` (labels made unique); paths must exist.

    Raises:
        ValueError: no checkpoints, or a label that is not one line of printable text (a newline
            in a label would start a heading in ``report.md``) or is longer than 200 characters.
        FileNotFoundError: a path that does not exist.
    """
    if not specs:
        raise ValueError("ckpt: give at least one checkpoint (a directory or .safetensors file)")
    result: dict[str, str] = {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep or not label or os.path.exists(spec):
            label, path = "", spec
        if not os.path.exists(path) and not is_hub_name(path):  # hf:// names are fetched when loaded
            raise FileNotFoundError(f"ckpt {path!r} does not exist")
        if label and (not label.isprintable() or len(label) > MAX_LABEL_LENGTH):
            raise ValueError(
                f"ckpt {spec[:300]!r}: the label must be one line of printable text of at most "
                f"{MAX_LABEL_LENGTH} characters, got {label[:300]!r}"
            )
        label = label or checkpoint_label(path)
        unique, k = label, 2
        while unique in result:
            unique, k = f"{label} #{k}", k + 1
        result[unique] = path
    return result


def _code(text: str) -> str:
    """``text`` as one Markdown code span on one line (fenced with more backticks than it holds)."""
    text = _one_line(str(text))
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}" if "`" in text else f"`{text}`"


@dataclass
class EvalSettings:
    """Sizes and options of every measure (the defaults take a few minutes on 2 CPU cores at 64 px)."""

    image_size: int = 64
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 32
    background: str = "white"
    synthetic: str = "procedural"
    real: str = "procedural"
    synthetic_masks: str | None = None
    real_masks: str | None = None
    show_progress: bool = True
    # FID / KID
    fid_images: int = 500
    features: str = "inception"
    feature_kwargs: dict[str, Any] = field(default_factory=dict)
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    # classifier (paper: ViT-B/16, 10 500 train / 3 500 test images per class, 20 epochs)
    backbone: str = "vit_small"
    pretrained: bool = True
    vit_weights: str | None = None
    vit_kwargs: dict[str, int] | None = None
    classifier_train: int = 500
    classifier_test: int = 200
    classifier_epochs: int = 10
    classifier_lr: float | None = None  # None: 1e-3 for vit_small, the paper's 1e-5 for vit_b_16
    # shape preservation
    shape_images: int = 200
    segmenter_steps: int = 400
    segmenter_images: int = 400
    # inner structure
    structure_images: int = 200
    structure_window: int | None = None  # None: handaug.metrics.structure.default_window(image_size)
    # pose benefit and pose consistency (one oracle for both)
    pose_train: int = 2000
    pose_test: int = 500
    pose_epochs: int = 20
    pose_runs: int = 1
    pose_width: int = 16
    pose_oracle: bool = True
    save_oracle: str | None = None
    # sample grid
    grid_images: int = 8


class EvalSuite:
    """Every measure of ``handaug-eval`` over the checkpoints ``{label: path}``, written under ``out``."""

    def __init__(self, checkpoints: Mapping[str, PathLike], out: PathLike = "handaug-eval", settings: EvalSettings | None = None) -> None:
        if not checkpoints:
            raise ValueError("checkpoints must name at least one checkpoint")
        self.checkpoints = {label: str(path) for label, path in checkpoints.items()}
        self.out = Path(out)
        self.settings = settings or EvalSettings()
        s = self.settings
        if s.save_oracle is not None and not str(s.save_oracle).endswith(".safetensors"):
            raise ValueError(f"save_oracle must be a path ending in .safetensors, got {s.save_oracle!r}")
        self.sources = DomainSources(
            s.synthetic, s.real, image_size=s.image_size, seed=s.seed, background=s.background,
            synthetic_masks=s.synthetic_masks, real_masks=s.real_masks, show_progress=s.show_progress,
        )
        self.results: dict[str, Any] = {"checkpoints": dict(self.checkpoints), "settings": dict(vars(s))}
        self.tables: dict[str, Table] = {}
        self.figures: dict[str, Path] = {}
        self._oracles: list[KeypointRegressor] | None = None

    # ------------------------------------------------------------------ helpers
    def _translate(self, label: str, images: EvalSet) -> EvalSet:
        s = self.settings
        return translate_set(
            self.checkpoints[label], images, batch_size=s.batch_size, device=s.device, show_progress=s.show_progress,
            name=f"{label}: {images.name}",
        )

    def _emit(self, key: str, table: Table) -> Table:
        table.write(self.out / key)
        self.tables[key] = table
        print(table.to_markdown() + "\n", flush=True)
        return table

    # ------------------------------------------------------------------ measures
    def run_fid(self) -> Table:
        """Table I: FID and KID of each checkpoint's translations (and of the untranslated synthetic images) against real images."""
        s = self.settings
        extractor = create_feature_extractor(s.features, **s.feature_kwargs)
        synthetic = self.sources.take("synthetic", "fid_synthetic", s.fid_images)
        real = self.sources.take("real", "fid_real", s.fid_images)

        def features(images: EvalSet, what: str) -> torch.Tensor:
            return extract_features(extractor, images.images, batch_size=s.batch_size, device=s.device, show_progress=s.show_progress, desc=f"{s.features} features: {what}")

        real_features = features(real, "real")
        candidates = {"synthetic (no translation)": synthetic}
        for label in self.checkpoints:
            candidates[label] = self._translate(label, synthetic)
        table = Table(
            f"Table I: FID / KID against real images ({s.features} features, {len(real)} real, {len(synthetic)} generated, {s.image_size} px)",
            ["method", "FID ↓", "KID ↓", "real images", "generated images"],
        )
        self.results["fid"] = {}
        for label, images in candidates.items():
            result = fid_kid_from_features(real_features, features(images, label), kid_subsets=s.kid_subsets, kid_subset_size=s.kid_subset_size, seed=s.seed)
            self.results["fid"][label] = result.to_dict()
            table.add_row([label, format_number(result.fid, 3), format_mean_std(result.kid_mean, result.kid_std, 4), result.n_real, result.n_fake])
        kid_size = self.results["fid"][next(iter(candidates))]["kid_subset_size"]
        table.notes.append(f"KID: mean ± std over {s.kid_subsets} subsets of {kid_size} images per set.")
        if s.features != "inception":
            table.notes.append(
                f"Features: {s.features!r}, not the FID InceptionV3: these numbers rank the rows of this table "
                "against each other and are NOT FID/KID values comparable with the paper's Table I."
            )
        return self._emit("fid", table)

    def _classifier_sets(self, label: str) -> tuple[dict[str, EvalSet], dict[str, EvalSet]]:
        s = self.settings
        n_train, n_test = s.classifier_train, s.classifier_test
        train = {
            "synthetic": self.sources.take("synthetic", "classifier_train_synthetic", n_train),
            "real": self.sources.take("real", "classifier_train_real", n_train),
            "generated": self._translate(label, self.sources.take("synthetic", "classifier_train_generated", n_train)),
        }
        test = {
            "synthetic": self.sources.take("synthetic", "classifier_test_synthetic", n_test),
            "real": self.sources.take("real", "classifier_test_real", n_test),
            "generated": self._translate(label, self.sources.take("synthetic", "classifier_test_generated", n_test)),
        }
        return train, test

    def run_classifier(self) -> tuple[Table, Table]:
        """Tables II and III and the Fig. 7 confusion matrix (one per checkpoint)."""
        s = self.settings
        config = ClassifierConfig(
            backbone=s.backbone, image_size=s.image_size, pretrained=s.pretrained, vit_weights=s.vit_weights,
            vit_kwargs=s.vit_kwargs, epochs=s.classifier_epochs, lr=s.classifier_lr, batch_size=64, device=s.device, seed=s.seed,
        )
        sizes = f"{s.backbone}, {s.classifier_train} train / {s.classifier_test} test images per class, {s.classifier_epochs} epochs"
        self.results["classifier"] = {}
        binary_rows, three_scores = {}, {}
        for label in self.checkpoints:
            train, test = self._classifier_sets(label)
            binary_rows[label] = binary_domain_experiment(train, test, config, show_progress=s.show_progress)
            three_scores[label] = three_class_experiment(train, test, config, show_progress=s.show_progress)
            self.results["classifier"][label] = {
                "binary": [{"train_set": r.train_set, "test_set": r.test_set, **r.scores.to_dict()} for r in binary_rows[label]],
                "three_class": three_scores[label].to_dict(),
            }
            key = f"confusion_matrix_{file_slug(label)}"
            self.figures[key] = plot_confusion_matrix(three_scores[label], self.out / f"{key}.png", title=f"{label} (Fig. 7)")
            print(f"wrote {self.figures[key]}", flush=True)
        binary = binary_table(binary_rows, f"Table II: synthetic-vs-real classifier ({sizes})")
        three = three_class_table(three_scores, f"Table III: synthetic / real / generated classifier ({sizes})")
        return self._emit("classifier_binary", binary), self._emit("classifier_three_class", three)

    def run_shape(self) -> Table:
        """Silhouette IoU of whole-image translations (no compositing) against the source masks."""
        s = self.settings
        images = self.sources.take("synthetic", "shape", s.shape_images)
        if images.masks is None:
            raise ValueError("shape preservation needs hand masks of the synthetic images: give --synthetic-masks for a folder source")
        segmenter = train_default_segmenter(
            image_size=s.image_size, n=s.segmenter_images, seed=role_seed(s.seed, "segmenter_train"), steps=s.segmenter_steps,
            background=s.background, base_channels=8, show_progress=s.show_progress,
        )
        table = Table(
            f"Shape preservation: IoU of the generator's own hand silhouette with the source mask ({len(images)} images, no compositing)",
            ["checkpoint", "IoU, whole image ↑", "IoU, hand box ↑", "images"],
        )
        self.results["shape"] = {}
        reference = shape_preservation(identity_translator, images, segmenter, label="source (no translation)", batch_size=s.batch_size)
        off_white = shape_preservation(
            other_backgrounds_translator(s.seed), images, segmenter, label="source over other backgrounds", batch_size=s.batch_size,
        )
        rows = [reference, off_white] + [
            shape_preservation(
                path, images, segmenter, label=label, batch_size=s.batch_size, device=s.device, show_progress=s.show_progress,
            )
            for label, path in self.checkpoints.items()
        ]
        for result in rows:
            self.results["shape"][result.label] = result.to_dict()
            table.add_row([
                result.label, format_mean_std(result.iou_mean, result.iou_std, 4), format_mean_std(result.box_iou_mean, result.box_iou_std, 4), result.n,
            ])
        table.notes.append(
            "Each generator gets its training input (its background value outside the hand mask) and its raw output, not "
            "composited, is segmented: the silhouette it draws itself, what a user gets without masks (with masks, compositing "
            f"keeps the silhouette exactly). Silhouettes by a SilNet trained for {s.segmenter_steps} steps on "
            f"{s.segmenter_images} procedural hands of both styles over varied backgrounds; the first row is that segmenter on "
            "the untranslated images (its own error, the best a translation can get), the second on the same hands over "
            "random backgrounds (what a generator that keeps the hand but paints the background can expect). "
            "Mean ± std over images. Hand box: only the source hand's bounding box padded by 10 % is compared (gaps between "
            "fingers count, the far background does not)."
        )
        return self._emit("shape", table)

    def run_structure(self) -> Table:
        """Inner structure: how much of each synthetic hand's internal edges and shading its translation keeps."""
        s = self.settings
        images = self.sources.take("synthetic", "structure", s.structure_images)
        if images.masks is None:
            raise ValueError("inner structure needs hand masks of the synthetic images: give --synthetic-masks for a folder source")
        window = s.structure_window or default_window(s.image_size)
        table = Table(
            f"Inner structure: source variance inside the hand explained by its translation ({len(images)} images, {window} px windows)",
            ["checkpoint", "inner structure ↑", "images scored", "images excluded"],
        )
        self.results["structure"] = {}
        for label in self.checkpoints:
            translated = self._translate(label, images)
            result = inner_structure(images.images, translated.images, images.masks, label=label, window=window)
            self.results["structure"][label] = result.to_dict()
            table.add_row([label, format_mean_std(result.mean, result.std, 3), result.n, result.n_excluded])
        table.notes.append(
            f"In every {window} × {window} window entirely inside the source hand, the fraction of the source's colour variance "
            "that an affine function of the translation's colours explains, summed over the windows of each image and corrected "
            f"for chance (unrelated noise explains {chance_level(window):.3f} before the correction): 1 = the hand's edges and "
            "shading are kept (any global colour, skin-tone or brightness change allowed), 0 = a flat blob. Mean ± std over "
            "images; images whose hand holds no whole window or has no colour variance are excluded. It does not judge realism "
            "(FID/KID, classifiers) or the silhouette (shape)."
        )
        return self._emit("structure", table)

    def pose_oracles(self) -> list[KeypointRegressor]:
        """The real-style keypoint models (one per ``pose_runs``), trained on first use and shared by pose benefit and pose consistency."""
        s = self.settings
        if self._oracles is None:
            self._oracles = train_oracles(
                image_size=s.image_size, n_train=s.pose_train, epochs=s.pose_epochs, runs=s.pose_runs, seed=s.seed,
                background=s.background, width=s.pose_width, device=s.device, show_progress=s.show_progress,
            )
            if s.save_oracle:
                path = save_oracle(
                    self._oracles[0].cpu(), s.save_oracle, image_size=s.image_size,
                    trained_on=f"{s.pose_train} real-style procedural hands at {s.image_size} px (seed {s.seed})",
                )
                print(f"wrote the keypoint oracle to {path}", flush=True)
        return self._oracles

    def _check_pose_sources(self) -> None:
        if not (self.sources.is_procedural("synthetic") and self.sources.is_procedural("real")):
            print("the pose measures use the procedural hands (they need paired keypoints); --synthetic/--real are ignored for them", flush=True)

    def run_pose_benefit(self) -> Table:
        """Keypoint regressors trained on synthetic / translated / real-style hands, tested on real-style hands."""
        s = self.settings
        self._check_pose_sources()
        rows = pose_benefit(
            self.checkpoints, image_size=s.image_size, n_train=s.pose_train, n_test=s.pose_test, epochs=s.pose_epochs,
            runs=s.pose_runs, seed=s.seed, include_real=s.pose_oracle, oracles=self.pose_oracles() if s.pose_oracle else None,
            background=s.background, width=s.pose_width, batch_size=s.batch_size, device=s.device, show_progress=s.show_progress,
        )
        self.results["pose_benefit"] = {row.label: row.to_dict() for row in rows}
        table = pose_table(rows, title=f"Pose benefit: 2D keypoint regressor tested on {s.pose_test} real-style procedural hands ({s.image_size} px)")
        return self._emit("pose_benefit", table)

    def run_pose_consistency(self) -> Table:
        """The real-style oracle on each checkpoint's translations (source keypoints), on real-style and on synthetic hands."""
        s = self.settings
        self._check_pose_sources()
        oracles = self.pose_oracles()
        common = dict(image_size=s.image_size, n_test=s.pose_test, seed=s.seed, background=s.background, show_progress=s.show_progress)
        rows = pose_consistency(
            self.checkpoints, oracles, pose_test_set("synthetic", **common), pose_test_set("real", **common), n_train=s.pose_train,
            batch_size=s.batch_size, device=s.device, show_progress=s.show_progress,
        )
        self.results["pose_consistency"] = {row.label: row.to_dict() for row in rows}
        table = consistency_table(
            rows, title=f"Pose consistency: a keypoint model trained on real-style hands only, on {s.pose_test} hands ({s.image_size} px)",
        )
        return self._emit("pose_consistency", table)

    def run_grid(self) -> Path:
        """Fig. 5-like samples: synthetic inputs, one row per checkpoint, real images for reference."""
        s = self.settings
        synthetic = self.sources.take("synthetic", "grid_synthetic", s.grid_images)
        real = self.sources.take("real", "grid_real", s.grid_images)
        rows = [("synthetic (input)", synthetic.images)]
        rows += [(label, self._translate(label, synthetic).images) for label in self.checkpoints]
        rows.append(("real (other hands)", real.images))
        path = sample_grid(rows, self.out / "samples.png", title="Synthetic hands translated by each checkpoint")
        self.figures["samples"] = path
        print(f"wrote {path}", flush=True)
        return path

    # ------------------------------------------------------------------ everything
    def run(self, measures: tuple[str, ...] = MEASURES) -> dict[str, Table]:
        """Run the named ``measures`` (see :data:`MEASURES`) and write ``report.md`` and ``results.json``."""
        unknown = [m for m in measures if m not in MEASURES]
        if unknown:
            raise ValueError(f"measures must be among {MEASURES}, got {unknown}")
        runners = {
            "fid": self.run_fid,
            "classifier": self.run_classifier,
            "shape": self.run_shape,
            "structure": self.run_structure,
            "pose-benefit": self.run_pose_benefit,
            "pose-consistency": self.run_pose_consistency,
            "grid": self.run_grid,
        }
        for measure in measures:
            runners[measure]()
        self.write_report()
        return dict(self.tables)

    def run_all(self) -> dict[str, Table]:
        return self.run(MEASURES)

    def write_report(self) -> tuple[Path, Path]:
        """``report.md`` (every table so far, figures linked) and ``results.json`` in ``out``."""
        lines = ["# handaug evaluation", ""]
        lines += [f"- {_code(label)}: {_code(path)}" for label, path in self.checkpoints.items()]
        lines.append("")
        for table in self.tables.values():
            lines += [table.to_markdown(), ""]
        for key, path in self.figures.items():
            lines += [f"![{key}]({Path(path).name})", ""]
        report = write_bytes_atomically(self.out / "report.md", "\n".join(lines).encode())
        results = write_bytes_atomically(self.out / "results.json", (json.dumps(self.results, indent=2, default=str) + "\n").encode())
        return report, results
