"""Image folders with masks, source parsing and the unpaired data module."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from handaug.data.background import background_value
from handaug.data.datamodule import UnpairedDataModule
from handaug.data.folder import ImageFolder
from handaug.data.sources import SourceSpec, parse_source
from handaug.data.unpaired import to_tensor_pair


def write_rgb(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def make_folder(root, n=6, size=(40, 48), masks=True, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        write_rgb(root / f"img{i:02d}.png", image)
        if masks:
            mask = np.zeros(size, np.uint8)
            mask[5:30, 8 + i : 30 + i] = 255
            cv2.imwrite(str(root / f"img{i:02d}_mask.png"), mask)
    return root


def test_folder_pairs_images_with_masks_and_skips_mask_files(tmp_path):
    folder = ImageFolder(make_folder(tmp_path / "a"), mask_pattern="{stem}_mask.png")
    assert len(folder) == 6
    sample = folder[2]
    assert sample["image"].shape == (40, 48, 3) and sample["image"].dtype == np.uint8
    assert set(np.unique(sample["mask"])) == {0, 255}
    assert sample["mask"][10, 12] == 255 and sample["mask"][35, 5] == 0
    assert sample["path"].endswith("img02.png")


def test_folder_reads_rgb_not_bgr(tmp_path):
    image = np.zeros((8, 8, 3), np.uint8)
    image[..., 0] = 200  # red
    write_rgb(tmp_path / "r.png", image)
    assert ImageFolder(tmp_path)[0]["image"][0, 0].tolist() == [200, 0, 0]


def test_masks_in_a_sibling_folder(tmp_path):
    make_folder(tmp_path / "images", masks=False)
    (tmp_path / "masks").mkdir()
    for i in range(6):
        cv2.imwrite(str(tmp_path / "masks" / f"img{i:02d}.png"), np.full((40, 48), 255, np.uint8))
    folder = ImageFolder(tmp_path / "images", mask_pattern="../masks/{stem}.png")
    assert len(folder) == 6 and folder[0]["mask"].min() == 255


def test_empty_or_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        ImageFolder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "nowhere")


def test_missing_mask_is_named(tmp_path):
    root = make_folder(tmp_path / "a")
    (root / "img03_mask.png").unlink()
    with pytest.raises(ValueError, match=r"1 image\(s\).*mask_pattern='\{stem\}_mask.png'.*img03.png"):
        ImageFolder(root, mask_pattern="{stem}_mask.png")


def test_mask_of_another_size_is_named(tmp_path):
    root = make_folder(tmp_path / "a")
    cv2.imwrite(str(root / "img01_mask.png"), np.zeros((20, 20), np.uint8))
    with pytest.raises(ValueError, match=r"img01_mask.png is 20×20 but img01.png is 40×48"):
        ImageFolder(root, mask_pattern="{stem}_mask.png")


def test_unreadable_images_are_skipped_and_counted(tmp_path):
    root = make_folder(tmp_path / "a", n=20, masks=False)
    (root / "broken.png").write_bytes(b"")
    with pytest.warns(RuntimeWarning, match="skipped 1 of 21"):
        folder = ImageFolder(root, max_unreadable_fraction=0.1)
    assert len(folder) == 20 and [p.name for p in folder.unreadable] == ["broken.png"]


def test_too_many_unreadable_images_is_an_error(tmp_path):
    root = make_folder(tmp_path / "a", n=2, masks=False)
    for i in range(3):
        (root / f"text{i}.jpg").write_text("not an image")
    with pytest.raises(ValueError, match=r"3 of 5 .*max_unreadable_fraction=0.05"):
        ImageFolder(root)


def test_parse_source():
    assert parse_source("procedural", "synthetic") == SourceSpec("procedural", None)
    assert parse_source("/data/x", "real") == SourceSpec("folder", "/data/x")
    assert parse_source("folder:/data/x", "real") == SourceSpec("folder", "/data/x")
    assert parse_source("C:\\data", "real") == SourceSpec("folder", "C:\\data")
    with pytest.raises(ValueError, match="unknown dataset name 'synthands'"):
        parse_source("synthands:/data", "synthetic")
    with pytest.raises(ValueError, match="synthetic"):
        parse_source("", "synthetic")


def test_background_values():
    assert background_value("white") == 1.0 and background_value("black") == -1.0
    assert background_value("keep") is None and background_value(0.25) == 0.25
    with pytest.raises(ValueError, match="background"):
        background_value("green")
    with pytest.raises(ValueError, match="background"):
        background_value(3.0)


def test_to_tensor_pair_sets_background_outside_mask_only():
    image = np.full((4, 4, 3), 255, np.uint8)
    image[..., 1] = 0
    mask = np.zeros((4, 4), np.uint8)
    mask[1:3, 1:3] = 255
    img, m = to_tensor_pair(image, mask, -1.0)
    assert m.shape == (1, 4, 4) and m.sum() == 4
    assert torch.equal(img[:, 0, 0], torch.tensor([-1.0, -1.0, -1.0]))
    assert torch.equal(img[:, 1, 1], torch.tensor([1.0, -1.0, 1.0]))
    img, m = to_tensor_pair(image, None, -1.0)
    assert m.min() == 1 and torch.equal(img[:, 0, 0], torch.tensor([1.0, -1.0, 1.0]))


def test_datamodule_on_folders_with_masks(tmp_path):
    make_folder(tmp_path / "synth", n=8, seed=1)
    make_folder(tmp_path / "real", n=5, masks=False, seed=2)
    dm = UnpairedDataModule(
        synthetic=str(tmp_path / "synth"), real=str(tmp_path / "real"), synthetic_masks="{stem}_mask.png",
        crop_size=32, val_size=40, val_count=2, batch_size=2, num_workers=0, background="white",
    )
    dm.setup("fit")
    assert len(dm.train_set.synthetic) == 6 and len(dm.train_set.real) == 3
    batch = next(iter(dm.train_dataloader()))
    s, r = batch["synthetic"], batch["real"]
    assert s["image"].shape == (2, 3, 32, 32) and s["image"].dtype == torch.float32
    assert s["mask"].shape == (2, 1, 32, 32) and set(s["mask"].unique().tolist()) <= {0.0, 1.0}
    assert s["has_mask"].all() and not r["has_mask"].any() and r["mask"].min() == 1
    outside = s["mask"].expand_as(s["image"]) == 0
    assert torch.all(s["image"][outside] == 1.0)  # white background
    val = next(iter(dm.val_dataloader()))
    assert val["synthetic"]["image"].shape[-2:] == (40, 40)
    # Validation images are held out of training.
    assert not set(dm.val_set.synthetic.indices) & set(dm.train_set.synthetic.indices)
    summary = dm.describe()
    assert summary["synthetic"]["masks"] is True and summary["real"]["masks"] is False


def test_datamodule_crop_larger_than_images_names_crop_size(tmp_path):
    make_folder(tmp_path / "s", n=4, masks=False)
    dm = UnpairedDataModule(synthetic=str(tmp_path / "s"), real=str(tmp_path / "s"), crop_size=64, val_count=0, num_workers=0)
    dm.setup("fit")
    with pytest.raises(ValueError, match="smaller than the crop size 64"):
        dm.train_set[0]


def test_datamodule_masks_option_only_for_folders():
    with pytest.raises(ValueError, match="synthetic_masks applies to folder sources"):
        UnpairedDataModule(synthetic="procedural", synthetic_masks="{stem}.png")


def test_datamodule_needs_more_images_than_val_count(tmp_path):
    make_folder(tmp_path / "s", n=3, masks=False)
    dm = UnpairedDataModule(synthetic=str(tmp_path / "s"), real=str(tmp_path / "s"), val_count=3, crop_size=32, num_workers=0)
    with pytest.raises(ValueError, match="val_count=3"):
        dm.setup("fit")


def test_datamodule_bad_arguments_are_named():
    for kwargs, name in [({"crop_size": 0}, "crop_size"), ({"batch_size": -1}, "batch_size"), ({"val_count": -2}, "val_count"),
                         ({"num_workers": -1}, "num_workers"), ({"load_size": 0}, "load_size")]:
        with pytest.raises(ValueError, match=name):
            UnpairedDataModule(**kwargs)


def test_datamodule_sizes_follow_the_one_rule():
    """numpy integers are sizes (stored as int, also in the hyperparameters); bools are not."""
    dm = UnpairedDataModule(crop_size=np.int64(32), val_count=np.uint8(2), num_workers=np.int32(0), batch_size=np.int16(2),
                            val_crop="centroid", val_crop_offset=(np.int64(4), -8))
    assert (dm.crop_size, dm.val_count, dm.num_workers, dm.batch_size) == (32, 2, 0, 2)
    assert all(type(v) is int for v in (dm.crop_size, dm.val_count, dm.num_workers, dm.batch_size, *dm.val_crop_offset))
    assert type(dm.hparams["val_count"]) is int
    dm = UnpairedDataModule(seed=np.int64(7), val_batch_size=np.int32(3), hflip=np.True_)
    assert (dm.seed, dm.val_batch_size, dm.hflip) == (7, 3, True)
    assert type(dm.hparams["seed"]) is int and type(dm.hparams["hflip"]) is bool
    for kwargs, message in [({"val_count": True}, r"^val_count must be a non-negative integer, got True$"),
                            ({"num_workers": 1.0}, r"^num_workers must be a non-negative integer, got 1.0$"),
                            ({"crop_size": False}, r"^crop_size must be an integer >= 1, got False$"),
                            ({"val_crop_offset": (True, 0)}, r"^val_crop_offset must be two integers"),
                            ({"pairing": "zip"}, r"^pairing must be one of \("),
                            ({"seed": -1}, r"^seed must be a non-negative integer, got -1$"),
                            ({"seed": True}, r"^seed must be a non-negative integer, got True$"),
                            ({"seed": None}, r"^seed must be a non-negative integer, got None$"),
                            ({"val_batch_size": 0}, r"^val_batch_size must be an integer >= 1, got 0$"),
                            ({"hflip": 1}, r"^hflip must be True or False, got 1$")]:
        with pytest.raises(ValueError, match=message):
            UnpairedDataModule(**kwargs)


def test_procedural_domains_default_to_their_style_and_different_seeds():
    dm = UnpairedDataModule(crop_size=32, val_size=48, val_count=2, num_workers=0,
                            synthetic_kwargs={"length": 10}, real_kwargs={"length": 12})
    dm.setup("fit")
    assert dm.readers["synthetic"].style == "synthetic" and dm.readers["real"].style == "real"
    assert dm.reader_kwargs["synthetic"]["seed"] != dm.reader_kwargs["real"]["seed"]
    batch = dm.train_set[0]
    assert batch["synthetic"]["image"].shape == (3, 32, 32) and batch["synthetic"]["has_mask"]
