"""The §IV-D domain-classifier experiments, with a tiny randomly initialised ViT (not the paper's ViT-B/16)."""

from __future__ import annotations

import cv2
import pytest
import torch

from handaug.metrics.classifier import (
    ClassifierConfig,
    binary_domain_experiment,
    binary_table,
    build_classifier,
    classification_scores,
    plot_confusion_matrix,
    three_class_experiment,
    three_class_table,
)
from handaug.metrics.eval_data import procedural_set

TINY_VIT = {"num_layers": 1, "num_heads": 2, "hidden_dim": 32, "mlp_dim": 64}


def _config(**overrides):
    kwargs = dict(backbone="vit_small", image_size=32, vit_kwargs=TINY_VIT, epochs=20, lr=3e-3, batch_size=32, seed=0)
    kwargs.update(overrides)
    return ClassifierConfig(**kwargs)


@pytest.fixture(scope="module")
def domains():
    """Two obviously different procedural styles; "generated" is the real style at other seeds.

    Rendered on the green screen and blackened: the real style then carries green spill, which a
    tiny ViT at 32 px tells apart in a few epochs (lit by a white wall the styles are closer there).
    """
    def make(base, n):
        return {
            "synthetic": procedural_set("synthetic", n, base, image_size=32, background="black"),
            "real": procedural_set("real", n, base + 1, image_size=32, background="black"),
            "generated": procedural_set("real", n, base + 2, image_size=32, background="black"),
        }
    return make(200, 100), make(300, 30)


def test_scores_on_known_predictions():
    targets = torch.tensor([0, 0, 1, 1, 2, 2])
    predictions = torch.tensor([0, 1, 1, 1, 2, 0])
    s = classification_scores(predictions, targets, ["syn", "rea", "gen"])
    assert s.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert s.precision == pytest.approx([0.5, 2 / 3, 1.0])
    assert s.recall == pytest.approx([0.5, 1.0, 0.5])
    assert s.f1 == pytest.approx([0.5, 0.8, 2 / 3])
    assert s.accuracy == pytest.approx(4 / 6)
    assert s.support == [2, 2, 2]


def test_three_class_experiment_separates_styles_and_confuses_equal_ones(domains, tmp_path):
    train, test = domains
    scores = three_class_experiment(train, test, _config(), show_progress=False)
    # synthetic is a different style: found and not confused
    assert scores.precision[0] > 0.9 and scores.recall[0] > 0.9
    # real and "generated" come from one distribution: between them the classifier is near chance
    c = scores.confusion
    between = (c[1][1] + c[2][2]) / (c[1][1] + c[1][2] + c[2][1] + c[2][2])
    assert between < 0.8
    table = three_class_table({"ckpt": scores})
    assert [row[1] for row in table.rows] == ["synthetic", "real", "generated", "accuracy"]
    assert f"{c[1][2]} (" in table.notes[0]
    path = plot_confusion_matrix(scores, tmp_path / "cm.png", title="t")
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100


def test_binary_experiment_counts_generated_real_as_real(domains):
    train, test = domains
    rows = binary_domain_experiment(train, test, _config(), show_progress=False)
    assert [(r.train_set, r.test_set) for r in rows] == [
        ("syn vs rea", "syn + rea"), ("syn vs rea", "syn + gen"),
        ("syn vs gen", "syn + rea"), ("syn vs gen", "syn + gen"),
        ("syn vs ½ rea + ½ gen", "syn + rea"), ("syn vs ½ rea + ½ gen", "syn + gen"),
    ]
    for row in rows:
        assert row.scores.support == [30, 30]
        assert row.scores.accuracy > 0.85  # "generated" here is real-style, so it passes for real
    table = binary_table({"ckpt": rows})
    assert len(table.rows) == 6 and table.rows[0][:4] == ["ckpt", 1, "syn vs rea", "syn + rea"]
    assert "‖" in table.rows[0][4]


def test_experiments_check_their_inputs(domains):
    train, test = domains
    with pytest.raises(ValueError, match="train must be a dict with the keys"):
        three_class_experiment({"synthetic": train["synthetic"]}, test, _config())


def test_build_classifier_options(tmp_path, monkeypatch):
    model = build_classifier("vit_small", 3, image_size=32, vit_kwargs=TINY_VIT)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)
    assert model(torch.rand(2, 3, 48, 48)).shape == (2, 3)  # resized to its input size
    with pytest.raises(ValueError, match="backbone must be one of"):
        build_classifier("resnet50")
    with pytest.raises(ValueError, match="multiple of the ViT patch size"):
        build_classifier("vit_small", image_size=36)
    with pytest.raises(ValueError, match="unknown keys"):
        build_classifier("vit_small", vit_kwargs={"depth": 2})


def test_vit_b_16_without_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="vit_b_16-c867db91.pth") as err:
        build_classifier("vit_b_16", 2)
    assert "vit_weights" in str(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_classifier("vit_b_16", 2, vit_weights=str(tmp_path / "missing.pth"))


def test_classifier_runs_are_reproducible(domains):
    train, test = domains
    small = {k: v.subset(slice(0, 20)) for k, v in train.items()}
    first = three_class_experiment(small, test, _config(epochs=2), show_progress=False)
    again = three_class_experiment(small, test, _config(epochs=2), show_progress=False)
    assert first == again
