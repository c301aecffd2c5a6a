"""Evaluating trained checkpoints: FID/KID, the paper's domain-classifier tests, shape preservation,
inner structure, the pose benefit and pose consistency, sample grids and report tables (the engine
behind ``handaug-eval``).

Submodules, one concept each:

- :mod:`handaug.metrics.features`: FID/KID feature extractors (InceptionV3, a tiny random CNN);
- :mod:`handaug.metrics.eval_data`: evaluation image sets (procedural hands, folders) and their translation;
- :mod:`handaug.metrics.translators`: checkpoints as the translator callables every measure runs;
- :mod:`handaug.metrics.fid`: FID and KID (torchmetrics) between two image sets;
- :mod:`handaug.metrics.classifier`: the paper's §IV-D Vision-Transformer domain classifier (Tables II, III, Fig. 7);
- :mod:`handaug.metrics.shape`: hand-shape preservation (IoU of the generator's own silhouette with the source mask);
- :mod:`handaug.metrics.structure`: how much of the hand's inner edges and shading a translation keeps;
- :mod:`handaug.metrics.pose_benefit`: does training a 2D keypoint regressor on translated data help on real images;
- :mod:`handaug.metrics.pose_consistency`: can a keypoint model trained on real images find the source pose in translations;
- :mod:`handaug.metrics.grids`: sample grids like the paper's Fig. 5;
- :mod:`handaug.metrics.report`: Markdown/CSV tables and atomic file writes;
- :mod:`handaug.metrics.suite`: all of the above over several checkpoints, into one report folder.

The names below are imported on first use, so that ``import handaug.metrics`` (which the plugin
manager does to register the feature extractors) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "InceptionFeatures": "handaug.metrics.features",
    "RandomConvFeatures": "handaug.metrics.features",
    "extract_features": "handaug.metrics.features",
    "EvalSet": "handaug.metrics.eval_data",
    "procedural_set": "handaug.metrics.eval_data",
    "load_image_set": "handaug.metrics.eval_data",
    "translate_set": "handaug.metrics.eval_data",
    "FidKid": "handaug.metrics.fid",
    "fid_kid": "handaug.metrics.fid",
    "fid_kid_from_features": "handaug.metrics.fid",
    "build_classifier": "handaug.metrics.classifier",
    "train_classifier": "handaug.metrics.classifier",
    "evaluate_classifier": "handaug.metrics.classifier",
    "binary_domain_experiment": "handaug.metrics.classifier",
    "three_class_experiment": "handaug.metrics.classifier",
    "ClassificationScores": "handaug.metrics.classifier",
    "mask_iou": "handaug.metrics.shape",
    "shape_preservation": "handaug.metrics.shape",
    "SilNetSegmenter": "handaug.metrics.shape",
    "train_default_segmenter": "handaug.metrics.shape",
    "inner_structure": "handaug.metrics.structure",
    "inner_structure_per_image": "handaug.metrics.structure",
    "pose_consistency": "handaug.metrics.pose_consistency",
    "train_oracles": "handaug.metrics.pose_benefit",
    "save_oracle": "handaug.metrics.pose_consistency",
    "load_oracle": "handaug.metrics.pose_consistency",
    "KeypointRegressor": "handaug.metrics.pose_benefit",
    "pck": "handaug.metrics.pose_benefit",
    "pose_benefit": "handaug.metrics.pose_benefit",
    "sample_grid": "handaug.metrics.grids",
    "hand_boxes": "handaug.metrics.shape",
    "pose_table": "handaug.metrics.pose_benefit",
    "plot_confusion_matrix": "handaug.metrics.classifier",
    "ClassifierConfig": "handaug.metrics.classifier",
    "DomainSources": "handaug.metrics.eval_data",
    "EvalSuite": "handaug.metrics.suite",
    "EvalSettings": "handaug.metrics.suite",
    "Table": "handaug.metrics.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'handaug.metrics' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
