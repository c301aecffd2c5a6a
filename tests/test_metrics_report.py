"""Evaluation data sets, report tables and sample grids."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from handaug import save_generator
from handaug.data.procedural import ProceduralHands
from handaug.metrics.eval_data import ROLES, DomainSources, EvalSet, procedural_set, role_seed, translate_set
from handaug.metrics.grids import sample_grid
from handaug.metrics.report import Table, format_mean_std
from handaug.registry import create_generator


def test_table_markdown_and_csv(tmp_path):
    table = Table("FID", ["method", "FID", "KID"], [["a|b", "1.000", format_mean_std(0.04791, 0.0067)]], notes=["note"])
    assert table.to_markdown() == (
        "### FID\n\n| method | FID | KID |\n| --- | --- | --- |\n| a\\|b | 1.000 | 0.0479 ± 0.0067 |\n\nnote"
    )
    assert table.to_csv() == "method,FID,KID\na|b,1.000,0.0479 ± 0.0067\n"
    md, csv_path = table.write(tmp_path / "sub" / "fid")
    assert md.read_text(encoding="utf-8") == table.to_markdown() + "\n"
    assert csv_path.read_text(encoding="utf-8") == table.to_csv()
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["fid.csv", "fid.md"]  # no temporary files left
    with pytest.raises(ValueError, match="expected 3"):
        table.add_row(["only one"])


def test_role_seeds_are_distinct_and_far_from_training_seeds():
    seeds = [role_seed(0, r) for r in ROLES] + [role_seed(1, r) for r in ROLES]
    assert len(set(seeds)) == len(seeds) and min(seeds) >= 10_000
    with pytest.raises(ValueError, match="role must be one of"):
        role_seed(0, "nope")


def test_procedural_set_matches_the_renderer_with_white_background():
    s = procedural_set("real", 3, 77, image_size=32)
    hands = ProceduralHands("real", image_size=32, length=3, seed=77, background="white")  # lit by a white wall
    for i in range(3):
        item = hands[i]
        mask = item["mask"] > 0
        image = s.images[i].permute(1, 2, 0).numpy()
        assert np.array_equal(s.masks[i, 0].numpy(), mask)
        assert np.array_equal(image[mask], item["image"][mask])
        assert (image[~mask] == 255).all()
        assert np.array_equal(s.keypoints[i].numpy(), item["keypoints_2d"])
    kept = procedural_set("real", 1, 77, image_size=32, background="keep")  # rendered on the green screen
    assert np.array_equal(kept.images[0].permute(1, 2, 0).numpy(), ProceduralHands("real", image_size=32, length=1, seed=77)[0]["image"])
    with pytest.raises(ValueError, match="background must be one of"):
        procedural_set("real", 1, 0, background="green")


def test_translate_set_with_a_checkpoint_keeps_background_and_annotations(tmp_path):
    ckpt = save_generator(create_generator("resnet", n_blocks=1, ngf=8), tmp_path / "g", background=1.0, trained_with_masks=True)
    s = procedural_set("synthetic", 4, 5, image_size=32)
    out = translate_set(str(ckpt), s)
    outside = ~s.masks.expand(-1, 3, -1, -1)
    assert torch.equal(out.images[outside], s.images[outside])
    assert not torch.equal(out.images, s.images)
    assert out.masks is s.masks and out.keypoints is s.keypoints
    whole = translate_set(str(ckpt), s, mask_mode="none")
    assert not torch.equal(whole.images[outside], s.images[outside])
    with pytest.raises(ValueError, match="translator returned"):
        translate_set(lambda images, masks: images.float(), s)


def test_eval_set_checks_shapes():
    with pytest.raises(ValueError, match="uint8 tensor of shape"):
        EvalSet(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="masks must be a bool tensor"):
        EvalSet(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), masks=torch.zeros(2, 8, 8, dtype=torch.bool))


def _write_folder(root, n, size=40, value=0):
    root.mkdir()
    for i in range(n):
        image = np.full((size, size + 8, 3), (i * 7 + value) % 256, dtype=np.uint8)
        cv2.imwrite(str(root / f"{i:03d}.png"), image)


def test_domain_sources_from_a_folder_give_disjoint_roles(tmp_path):
    _write_folder(tmp_path / "real", 10)
    sources = DomainSources("procedural", str(tmp_path / "real"), image_size=16, show_progress=False)
    a = sources.take("real", "classifier_train_real", 4)
    b = sources.take("real", "classifier_test_real", 4)
    assert a.images.shape == (4, 3, 16, 16) and a.masks is None
    values_a = {int(v) for v in a.images[:, 0, 0, 0]}
    values_b = {int(v) for v in b.images[:, 0, 0, 0]}
    assert len(values_a) == 4 and not values_a & values_b
    assert torch.equal(sources.take("real", "classifier_train_real", 4).images, a.images)  # same role, same images
    with pytest.raises(ValueError, match="has 10 images, too few"):
        sources.take("real", "fid_real", 5)
    synthetic = sources.take("synthetic", "fid_synthetic", 3)
    assert synthetic.masks is not None and synthetic.keypoints is not None


def test_sample_grid_writes_a_png(tmp_path):
    a = torch.zeros(3, 3, 16, 16, dtype=torch.uint8)
    b = torch.full((3, 3, 16, 16), 200, dtype=torch.uint8)
    path = sample_grid([("input", a), ("translated", b)], tmp_path / "grid.png", title="t")
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] > image.shape[0] > 40
    with pytest.raises(ValueError, match="row 'b' has images of shape"):
        sample_grid([("a", a), ("b", b[:2])], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="at least one"):
        sample_grid([], tmp_path / "none.png")


def test_public_api_names_resolve():
    import subprocess
    import sys

    import handaug.metrics as metrics

    for name in metrics.__all__:
        assert getattr(metrics, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        metrics.nope  # noqa: B018
    # registering the feature extractors (done whenever plugins load) imports nothing heavy
    code = "import sys, handaug.metrics.builtin; print('torchmetrics' in sys.modules, 'matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == ["False", "False"]
