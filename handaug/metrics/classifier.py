"""The paper's §IV-D cross-domain classifier tests (Tables II and III, Fig. 7) with a Vision Transformer.

(a) :func:`binary_domain_experiment` (Table II): a classifier learns *synthetic* vs *real* from
three training sets (1: synthetic vs real, 2: synthetic vs generated, 3: synthetic vs half real +
half generated) and is tested on synthetic + real and on synthetic + generated images, where real and
generated both count as the class "real". If generated hands are classified as real about as
often as real hands, they approximate the real distribution.

(b) :func:`three_class_experiment` (Table III, Fig. 7): synthetic, real and generated as three
classes. A classifier that confuses real and generated hands cannot tell them apart.

"Generated" images are synthetic hands translated by the checkpoint. Scores (precision, recall,
F1 per class, accuracy, confusion matrix) are computed by torchmetrics.

Backbones (:func:`build_classifier`):

- ``"vit_b_16"``: torchvision's ViT-B/16 as in the paper, fine-tuned from its ImageNet weights
  (``vit_b_16-c867db91.pth`` in the torch hub cache, or ``vit_weights=PATH``); inputs are resized
  to 224×224. Use a GPU.
- ``"vit_small"``: a small torchvision ``VisionTransformer`` (patch 8, 3 layers, width 64 by
  default) trained from scratch at the evaluation image size: minutes on a CPU at 64 px. Its
  numbers are not the paper's, but the experiment's logic is the same.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from handaug.arguments import check_int
from handaug.fitting import fit, shuffled_batches
from handaug.fitting import predict as predict_batches
from handaug.metrics.eval_data import EvalSet
from handaug.metrics.features import as_unit_float
from handaug.metrics.progress import progress
from handaug.metrics.report import Table, format_number, save_figure
from handaug.pretrained import PretrainedFile, load_pretrained, load_state_dict_file

BACKBONES: tuple[str, ...] = ("vit_b_16", "vit_small")
VIT_B_16_IMAGENET = PretrainedFile(
    filename="vit_b_16-c867db91.pth",
    url="https://download.pytorch.org/models/vit_b_16-c867db91.pth",
    description="ViT-B/16 ImageNet weights (torchvision ViT_B_16_Weights.IMAGENET1K_V1)",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Default learning rates: the paper's 1e-5 for fine-tuning ViT-B/16, more for the small ViT trained from scratch.
DEFAULT_LR: dict[str, float] = {"vit_b_16": 1e-5, "vit_small": 1e-3}
#: Default size of the small ViT: patch 8 on the evaluation image, 3 blocks of width 64.
VIT_SMALL_DEFAULTS: dict[str, int] = {"patch_size": 8, "num_layers": 3, "num_heads": 4, "hidden_dim": 64, "mlp_dim": 128}


class DomainClassifier(nn.Module):
    """A ViT behind resizing and ImageNet normalisation: ``(B, 3, H, W)`` float in ``[0, 1]`` → logits ``(B, C)``."""

    def __init__(self, vit: nn.Module, input_size: int, backbone: str) -> None:
        super().__init__()
        self.vit = vit
        self.input_size = int(input_size)
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.input_size, self.input_size):
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False, antialias=True)
        return self.vit((images - self.mean) / self.std)


def build_classifier(
    backbone: str = "vit_b_16",
    num_classes: int = 2,
    *,
    image_size: int = 64,
    pretrained: bool = True,
    vit_weights: str | os.PathLike[str] | None = None,
    vit_kwargs: dict[str, int] | None = None,
    seed: int = 0,
) -> DomainClassifier:
    """A ViT classifier with ``num_classes`` outputs.

    Args:
        backbone: ``"vit_b_16"`` (the paper's, 224 px input) or ``"vit_small"`` (from scratch at
            ``image_size``).
        image_size: side of the evaluation images (the small ViT's input size; a multiple of its patch).
        pretrained: ``vit_b_16`` only: start from ImageNet weights (``vit_weights`` or the hub cache;
            downloaded there unless ``HANDAUG_OFFLINE`` is set). ``False`` trains it from scratch.
        vit_weights: path to ``vit_b_16-c867db91.pth`` (or a ``.safetensors`` of the same state dict).
        vit_kwargs: ``vit_small`` only: overrides of :data:`VIT_SMALL_DEFAULTS`.
        seed: seed of the randomly initialised weights (the classification head at least).

    Raises:
        ValueError: unknown backbone, bad sizes.
        FileNotFoundError: ImageNet weights requested but missing (the message names the file).
    """
    # deferred: importing torchvision takes over a second
    from torchvision.models import VisionTransformer, vit_b_16

    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    num_classes = check_int(num_classes, "num_classes", 2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if backbone == "vit_b_16":
            if vit_kwargs:
                raise ValueError("vit_kwargs only applies to backbone='vit_small'")
            vit = vit_b_16(weights=None)
            if pretrained:
                if vit_weights is not None:
                    state = load_state_dict_file(vit_weights)
                else:
                    state = load_pretrained(VIT_B_16_IMAGENET, argument="vit_weights")
                vit.load_state_dict(state)
            elif vit_weights is not None:
                raise ValueError("vit_weights was given but pretrained=False")
            vit.heads.head = nn.Linear(vit.heads.head.in_features, num_classes)
            return DomainClassifier(vit, 224, backbone)
        config = {**VIT_SMALL_DEFAULTS, **(vit_kwargs or {})}
        unknown = set(config) - set(VIT_SMALL_DEFAULTS)
        if unknown:
            raise ValueError(f"vit_kwargs has unknown keys {sorted(unknown)}; allowed: {sorted(VIT_SMALL_DEFAULTS)}")
        if image_size % config["patch_size"]:
            raise ValueError(f"image_size {image_size} must be a multiple of the ViT patch size {config['patch_size']}")
        vit = VisionTransformer(image_size=image_size, num_classes=num_classes, **config)
        return DomainClassifier(vit, image_size, backbone)


def _augment(images: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Random horizontal flips (hands of both sides occur in every domain)."""
    flip = torch.rand(images.shape[0], generator=rng) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1).to(images.device), images.flip(-1), images)


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int = 10,
    lr: float = 3e-4,
    weight_decay: float = 0.05,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    seed: int = 0,
    show_progress: bool = True,
    desc: str = "train classifier",
) -> list[float]:
    """Train ``model`` on ``images`` ``(N, 3, H, W)`` uint8 with integer ``labels`` ``(N,)``.

    AdamW with a cosine learning-rate decay, cross-entropy, random horizontal flips; batches drawn
    by a generator seeded with ``seed``. Returns the mean loss of every epoch; leaves ``model`` in eval mode.
    """
    if images.ndim != 4 or labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},) to match images {tuple(images.shape)}, got {tuple(labels.shape)}")
    epochs = check_int(epochs, "epochs", 1)
    batch_size = check_int(batch_size, "batch_size", 1)
    rng = torch.Generator().manual_seed(seed)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(images.shape[0] / batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)

    def loss(pick: torch.Tensor) -> torch.Tensor:
        x = _augment(as_unit_float(images[pick]), rng).to(device)
        return F.cross_entropy(model(x), labels[pick].to(device))

    picks = shuffled_batches(images.shape[0], batch_size, progress(range(epochs), desc, total=epochs, enabled=show_progress), rng)
    losses = fit(model, picks, loss, optimizer, scheduler)
    epoch_losses = [losses[i : i + steps_per_epoch] for i in range(0, len(losses), steps_per_epoch)]
    return [sum(part) / len(part) for part in epoch_losses]


def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 128, device: str | torch.device = "cpu") -> torch.Tensor:
    """Predicted class ``(N,)`` int64 of ``images`` ``(N, 3, H, W)`` uint8."""
    return predict_batches(model, images, batch_size=batch_size, device=device, prepare=as_unit_float).argmax(dim=1)


@dataclass(frozen=True)
class ClassificationScores:
    """Per-class precision, recall and F1 (in ``[0, 1]``), accuracy and the confusion matrix.

    ``confusion[i][j]`` counts images of true class ``i`` predicted as class ``j``.
    """

    class_names: list[str]
    precision: list[float]
    recall: list[float]
    f1: list[float]
    accuracy: float
    support: list[int]
    confusion: list[list[int]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def classification_scores(predictions: torch.Tensor, targets: torch.Tensor, class_names: Sequence[str]) -> ClassificationScores:
    """Scores of ``predictions`` against ``targets`` (both ``(N,)`` int64 in ``[0, len(class_names))``), by torchmetrics."""
    # deferred: torchmetrics is the [eval] extra
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_confusion_matrix,
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
    )

    k = len(class_names)
    common = {"num_classes": k, "average": None, "zero_division": 0}
    confusion = multiclass_confusion_matrix(predictions, targets, num_classes=k)
    return ClassificationScores(
        class_names=list(class_names),
        precision=multiclass_precision(predictions, targets, **common).tolist(),
        recall=multiclass_recall(predictions, targets, **common).tolist(),
        f1=multiclass_f1_score(predictions, targets, **common).tolist(),
        accuracy=float(multiclass_accuracy(predictions, targets, num_classes=k, average="micro")),
        support=confusion.sum(dim=1).tolist(),
        confusion=confusion.tolist(),
    )


def evaluate_classifier(
    model: nn.Module,
    sets: Sequence[EvalSet],
    labels: Sequence[int],
    class_names: Sequence[str],
    *,
    device: str | torch.device = "cpu",
) -> ClassificationScores:
    """Scores of ``model`` on the images of ``sets``, the images of ``sets[i]`` having class ``labels[i]``."""
    images, targets = _labelled(sets, labels)
    return classification_scores(predict(model, images, device=device), targets, class_names)


def _labelled(sets: Sequence[EvalSet], labels: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of ``sets`` in one tensor, and ``(N,)`` int64 class labels (``labels[i]`` for ``sets[i]``)."""
    if len(sets) != len(labels):
        raise ValueError(f"labels must give one class per set: {len(sets)} sets, {len(labels)} labels")
    images = torch.cat([s.images for s in sets])
    targets = torch.cat([torch.full((len(s),), int(c), dtype=torch.long) for s, c in zip(sets, labels, strict=True)])
    return images, targets


@dataclass(frozen=True)
class ClassifierConfig:
    """How the domain classifiers are built and trained (see :func:`build_classifier`, :func:`train_classifier`)."""

    backbone: str = "vit_small"
    image_size: int = 64
    pretrained: bool = True
    vit_weights: str | None = None
    vit_kwargs: dict[str, int] | None = None
    epochs: int = 10
    lr: float | None = None  # None: DEFAULT_LR of the backbone
    batch_size: int = 64
    device: str = "cpu"
    seed: int = 0

    def build(self, num_classes: int) -> DomainClassifier:
        return build_classifier(
            self.backbone,
            num_classes,
            image_size=self.image_size,
            pretrained=self.pretrained,
            vit_weights=self.vit_weights,
            vit_kwargs=self.vit_kwargs,
            seed=self.seed,
        )

    def train(self, model: nn.Module, sets: Sequence[EvalSet], labels: Sequence[int], *, show_progress: bool, desc: str) -> list[float]:
        images, targets = _labelled(sets, labels)
        lr = self.lr if self.lr is not None else DEFAULT_LR[self.backbone]
        return train_classifier(
            model, images, targets, epochs=self.epochs, lr=lr, batch_size=self.batch_size, device=self.device,
            seed=self.seed, show_progress=show_progress, desc=desc,
        )


@dataclass(frozen=True)
class BinaryDomainRow:
    """One row of Table II: a training set, a test set, and the scores (classes ``synthetic``, ``real``)."""

    train_set: str
    test_set: str
    scores: ClassificationScores


def _half(s: EvalSet, first: bool) -> EvalSet:
    n = len(s) // 2
    return s.subset(slice(0, n) if first else slice(n, 2 * n))


def binary_domain_experiment(
    train: dict[str, EvalSet],
    test: dict[str, EvalSet],
    config: ClassifierConfig,
    *,
    show_progress: bool = True,
) -> list[BinaryDomainRow]:
    """Table II: train synthetic-vs-real classifiers on three training sets, test each on syn+rea and syn+gen.

    Args:
        train: ``{"synthetic": ..., "real": ..., "generated": ...}`` training images (same size each).
        test: the same three keys: test images (other hands).
        config: backbone and training settings.

    Training sets: ``syn vs rea``, ``syn vs gen``, ``syn vs ½ rea + ½ gen`` (equal class sizes; the
    halves are the first half of the real and the second half of the generated training images).
    """
    _check_domains(train, "train")
    _check_domains(test, "test")
    training_sets = {
        "syn vs rea": [train["real"]],
        "syn vs gen": [train["generated"]],
        "syn vs ½ rea + ½ gen": [_half(train["real"], True), _half(train["generated"], False)],
    }
    names = ["synthetic", "real"]
    rows = []
    for k, (label, positives) in enumerate(training_sets.items(), start=1):
        model = config.build(2)
        config.train(model, [train["synthetic"], *positives], [0] + [1] * len(positives), show_progress=show_progress, desc=f"Table II ({k}/3) train {label}")
        for test_label, other in (("syn + rea", test["real"]), ("syn + gen", test["generated"])):
            scores = evaluate_classifier(model, [test["synthetic"], other], [0, 1], names, device=config.device)
            rows.append(BinaryDomainRow(label, test_label, scores))
    return rows


def three_class_experiment(
    train: dict[str, EvalSet],
    test: dict[str, EvalSet],
    config: ClassifierConfig,
    *,
    show_progress: bool = True,
) -> ClassificationScores:
    """Table III / Fig. 7: one classifier for synthetic, real and generated; its scores on the test images."""
    _check_domains(train, "train")
    _check_domains(test, "test")
    classes = list(DOMAINS)
    model = config.build(3)
    config.train(model, [train[c] for c in classes], [0, 1, 2], show_progress=show_progress, desc="Table III train syn vs rea vs gen")
    return evaluate_classifier(model, [test[c] for c in classes], [0, 1, 2], classes, device=config.device)


DOMAINS: tuple[str, ...] = ("synthetic", "real", "generated")


def _check_domains(sets: dict[str, EvalSet], argument: str) -> None:
    if not isinstance(sets, dict) or set(sets) != set(DOMAINS):
        raise ValueError(f"{argument} must be a dict with the keys {DOMAINS}, got {sorted(sets) if isinstance(sets, dict) else sets!r}")
    for key, value in sets.items():
        if not isinstance(value, EvalSet) or len(value) < 2:
            raise ValueError(f"{argument}[{key!r}] must be an EvalSet of at least 2 images")


def _percent(x: float) -> str:
    return format_number(100.0 * x, 2)


def binary_table(rows: Mapping[str, Sequence[BinaryDomainRow]], title: str = "Table II: synthetic-vs-real classifier") -> Table:
    """Table II layout, one block per checkpoint (``{checkpoint label: rows}``): precision, recall and
    F1 as ``synthetic ‖ real`` in percent, accuracy in percent."""
    table = Table(title, ["checkpoint", "#", "train set", "test set", "precision (syn ‖ real)", "recall (syn ‖ real)", "F1 (syn ‖ real)", "accuracy"])
    for label, block in rows.items():
        for i, row in enumerate(block):
            s = row.scores
            table.add_row([
                label,
                i // 2 + 1,
                row.train_set,
                row.test_set,
                f"{_percent(s.precision[0])} ‖ {_percent(s.precision[1])}",
                f"{_percent(s.recall[0])} ‖ {_percent(s.recall[1])}",
                f"{_percent(s.f1[0])} ‖ {_percent(s.f1[1])}",
                _percent(s.accuracy),
            ])
    table.notes.append(
        "Percentages. Real and generated test images both count as the class real: a real-class recall on "
        "`syn + gen` close to the one on `syn + rea` means the generated hands pass for real ones."
    )
    return table


def three_class_table(scores: Mapping[str, ClassificationScores], title: str = "Table III: synthetic / real / generated classifier") -> Table:
    """Table III layout, one block per checkpoint (``{checkpoint label: scores}``): a row per class, then the accuracy."""
    table = Table(title, ["checkpoint", "class", "precision", "recall", "F1", "support"])
    for label, sc in scores.items():
        for i, name in enumerate(sc.class_names):
            table.add_row([label, name, format_number(sc.precision[i]), format_number(sc.recall[i]), format_number(sc.f1[i]), sc.support[i]])
        table.add_row([label, "accuracy", "", "", format_number(sc.accuracy), sum(sc.support)])
        c, support = sc.confusion, sc.support
        if len(c) == 3 and support[1] and support[2]:
            table.notes.append(
                f"{label}: {c[1][2]} ({100 * c[1][2] / support[1]:.0f}%) of the real test hands were classified as generated and "
                f"{c[2][1]} ({100 * c[2][1] / support[2]:.0f}%) of the generated ones as real (paper, msH-GAN6: 18% and 13%)."
            )
    return table


def plot_confusion_matrix(scores: ClassificationScores, path: str | os.PathLike[str], title: str | None = None) -> os.PathLike[str]:
    """Draw the confusion matrix (true class in rows, predicted in columns, counts in cells) as a PNG at ``path``.

    Uses torchmetrics' matplotlib plotting; the file is written atomically.
    """
    import matplotlib  # deferred: matplotlib is the [eval] extra

    matplotlib.use("Agg", force=False)
    # deferred: torchmetrics is the [eval] extra
    from torchmetrics.utilities.plot import plot_confusion_matrix as tm_plot

    short = {"synthetic": "syn", "real": "rea", "generated": "gen"}
    labels = [short.get(n, n) for n in scores.class_names]
    with warnings.catch_warnings():
        # torchmetrics hands matplotlib a tensor, which numpy 2 warns about
        warnings.filterwarnings("ignore", message=".*__array__ implementation doesn't accept a copy keyword.*")
        fig, ax = tm_plot(torch.tensor(scores.confusion), add_text=True, labels=labels)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


__all__ = [
    "BACKBONES",
    "BinaryDomainRow",
    "ClassificationScores",
    "ClassifierConfig",
    "DomainClassifier",
    "binary_domain_experiment",
    "binary_table",
    "build_classifier",
    "classification_scores",
    "evaluate_classifier",
    "plot_confusion_matrix",
    "predict",
    "three_class_experiment",
    "three_class_table",
    "train_classifier",
]
