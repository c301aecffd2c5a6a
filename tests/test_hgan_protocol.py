"""``handaug-eval fid --protocol hgan``: the H-GAN reference code's test protocol (issue 10, item 3).

Centroid crop (exact window, borders), raw generator output (not composited), the JPEG round
trip before torch-fidelity reads the images, KID subsets of n // 10 (200 for 2,000). Features:
a small random CNN handed to torch-fidelity (the InceptionV3 weights are not available offline).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import handaug.metrics.hgan_protocol as protocol
from handaug import save_generator
from handaug.cli.eval import build_parser, main
from handaug.metrics.features import RandomConvFeatures
from handaug.metrics.fid import fid_kid_of_folders
from handaug.metrics.hgan_protocol import (
    HganProtocol,
    centroid_crop,
    protocol_images,
    raw_translator,
    reference_kid_subset_size,
    reference_model_range,
    reference_quantize,
    run_hgan_protocol,
    write_jpeg_folder,
)
from handaug.registry import create_generator

TINY = dict(n_images=20, crop_size=32, crop_offset=(2, -4), procedural_size=64, features="random_conv", show_progress=False)


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    return str(save_generator(create_generator("resnet", n_blocks=1, ngf=8), tmp_path / "run" / "export", background=1.0, trained_with_masks=True))


def numbered_image(height, width):
    """Every pixel tells where it is: R = row % 256, G = column % 256, B = (row + column) // 256."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows % 256, cols % 256, (rows + cols) // 256], axis=2).astype(np.uint8)


def jpeg_bytes(pixels_hwc, quality):
    buffer = io.BytesIO()
    Image.fromarray(pixels_hwc).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# ------------------------------------------------------------------------------ the centroid crop


def test_centroid_crop_is_the_window_moved_20_right_and_100_up():
    image = numbered_image(480, 640)
    mask = np.zeros((480, 640), np.uint8)
    mask[200:261, 300:341] = 255  # centroid (row 230, column 320)
    crop, crop_mask = centroid_crop(image, mask)
    assert crop.shape == (256, 256, 3) and crop_mask.shape == (256, 256)
    top, left = 230 - 128 - 100, 320 - 128 + 20
    assert np.array_equal(crop, image[top : top + 256, left : left + 256])
    assert np.array_equal(crop_mask, mask[top : top + 256, left : left + 256])
    # The centroid is truncated to whole pixels: a 2-pixel-wide hand centred on 320.5 crops as 320.
    thin = np.zeros_like(mask)
    thin[230, 320:322] = 255
    assert np.array_equal(centroid_crop(image, thin)[0], image[2:258, 212:468])


def test_centroid_crop_pads_white_and_never_leaves_the_frame():
    image = numbered_image(480, 640)
    mask = np.zeros((480, 640), np.uint8)
    mask[0:21, 0:11] = 255  # centroid (10, 5): the window starts 238 rows above and 103 columns left of the frame
    crop, crop_mask = centroid_crop(image, mask)
    top, left = 10 - 128 - 100, 5 - 128 + 20
    inside = crop[-top:, -left:]
    assert np.array_equal(inside, image[: 256 + top, : 256 + left])
    assert (crop[:-top] == 255).all() and (crop[:, :-left] == 255).all()  # padding above and to the left: white
    assert crop_mask[:-top].max() == 0 and crop_mask[:, :-left].max() == 0  # the mask is padded with 0
    assert np.array_equal(crop_mask[-top:, -left:], mask[: 256 + top, : 256 + left])
    # Hands at any corner and offsets of either sign: always a full window.
    for rows, cols in ((slice(470, 480), slice(630, 640)), (slice(0, 5), slice(635, 640)), (slice(475, 480), slice(0, 3))):
        corner = np.zeros_like(mask)
        corner[rows, cols] = 255
        for offset in ((20, -100), (-100, 100), (0, 0)):
            assert centroid_crop(image, corner, 256, offset)[0].shape == (256, 256, 3)
    with pytest.raises(ValueError, match="mask is empty"):
        centroid_crop(image, np.zeros_like(mask))
    with pytest.raises(ValueError, match="mask must be"):
        centroid_crop(image, mask[:10])


# ------------------------------------------------------------------------------ pixels: denormalise, truncate, JPEG


def test_reference_quantize_matches_torchvisions_denormalise_and_to_pil_image():
    """The reference's Normalize(0.5, 0.5), Denormalize (std + 1e-7) and ToPILImage, run through torchvision itself."""
    import torchvision.transforms as T

    levels = torch.arange(256, dtype=torch.uint8).repeat(3, 1)[:, None, :]  # (3, 1, 256)
    normalise = T.Normalize(mean=[0.5] * 3, std=[0.5] * 3)
    std_inv = 1 / (torch.tensor([0.5] * 3) + 1e-7)
    denormalise = T.Normalize(mean=-torch.tensor([0.5] * 3) * std_inv, std=std_inv)
    unit = torch.from_numpy(np.float32(levels.numpy() / 255.0))
    oracle = torch.from_numpy(np.array(T.ToPILImage()(denormalise(normalise(unit))))).permute(2, 0, 1)
    ours = reference_quantize(reference_model_range(levels))
    assert torch.equal(ours, oracle)
    assert (ours != levels).sum() > 100  # the reference really does shift dark levels by one
    generated = torch.rand(3, 8, 8) * 2 - 1
    oracle_generated = torch.from_numpy(np.array(T.ToPILImage()(denormalise(generated)))).permute(2, 0, 1)
    assert torch.equal(reference_quantize(generated), oracle_generated)


def test_write_jpeg_folder_writes_quality_75_jpegs_and_replaces_only_its_own(tmp_path):
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    folder = write_jpeg_folder(images, tmp_path / "set")
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["000000.jpg", "000001.jpg", "000002.jpg"]
    assert (folder / "000001.jpg").read_bytes() == jpeg_bytes(images[1].permute(1, 2, 0).numpy(), 75)
    write_jpeg_folder(images[:2], folder)  # a rerun replaces the folder as a whole
    assert sorted(p.name for p in folder.iterdir()) == ["000000.jpg", "000001.jpg"]
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds files handaug-eval did not write"):
        write_jpeg_folder(images, folder)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


class RecordingFeatures(nn.Module):
    """A random CNN that remembers every batch torch-fidelity hands it."""

    def __init__(self):
        super().__init__()
        self.inner = RandomConvFeatures(num_features=8, width=4)
        self.num_features = 8
        self.seen = []

    def forward(self, images):
        self.seen.append(images.detach().cpu().clone())
        return self.inner(images)


def test_fid_kid_of_folders_scores_the_decoded_files(tmp_path):
    real = torch.randint(0, 256, (12, 3, 24, 24), dtype=torch.uint8)
    fake = torch.randint(0, 256, (12, 3, 24, 24), dtype=torch.uint8)
    real_dir, fake_dir = write_jpeg_folder(real, tmp_path / "real"), write_jpeg_folder(fake, tmp_path / "fake")
    spy = RecordingFeatures()
    result = fid_kid_of_folders(fake_dir, real_dir, features=spy, kid_subset_size=3, kid_subsets=10)
    seen = torch.cat(spy.seen)
    decoded_fake = torch.stack([torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1) for p in sorted(fake_dir.iterdir())])
    assert torch.equal((seen[:12] * 255).round().to(torch.uint8), decoded_fake)  # fake first, read back from the JPEGs
    assert not torch.equal(decoded_fake, fake)  # ... which are not the pixels before JPEG
    assert (result.n_fake, result.n_real, result.kid_subset_size, result.kid_subsets) == (12, 12, 3, 10)
    same = fid_kid_of_folders(real_dir, real_dir, features=RandomConvFeatures(num_features=8, width=4), kid_subset_size=3)
    assert abs(same.fid) < 1e-6 and result.fid > same.fid
    with pytest.raises(ValueError, match=r"kid_subset_size 13 exceeds the images of a folder \(fake 12, real 12\)"):
        fid_kid_of_folders(fake_dir, real_dir, features=spy, kid_subset_size=13)
    with pytest.raises(ValueError, match="isc needs the InceptionV3"):
        fid_kid_of_folders(fake_dir, real_dir, features=spy, kid_subset_size=3, isc=True)


# ------------------------------------------------------------------------------ the whole protocol


def test_kid_subset_size_is_n_over_10_so_200_for_the_papers_2000():
    assert HganProtocol().n_images == 2000 and HganProtocol().kid_subset_size == 200 == reference_kid_subset_size(2000)
    assert HganProtocol().kid_subsets == 100 and HganProtocol().jpeg_quality == 75
    assert (HganProtocol().crop_size, HganProtocol().crop_offset) == (256, (20, -100))
    args = build_parser().parse_args(["fid", "--protocol", "hgan", "--ckpt", "x"])
    assert args.fid_images is None and args.crop_size == 256 and args.crop_offset == [20, -100]
    with pytest.raises(ValueError, match="at least 20 test images"):
        HganProtocol(n_images=10).check()


def test_protocol_scores_raw_translations_after_a_jpeg_round_trip(tmp_path, ckpt, monkeypatch):
    calls = []
    real_scorer = protocol.fid_kid_of_folders

    def spy(fake, real, **kwargs):
        calls.append((fake, real, kwargs))
        return real_scorer(fake, real, **kwargs)

    monkeypatch.setattr(protocol, "fid_kid_of_folders", spy)
    settings = HganProtocol(**TINY)
    table = run_hgan_protocol({"demo": ckpt}, tmp_path / "out", settings)
    images = tmp_path / "out" / "hgan-protocol"
    assert [c[0].name for c in calls] == ["synthetic", "generated-demo"] and all(c[1] == images / "real" for c in calls)
    assert all(c[2]["kid_subset_size"] == 2 and c[2]["kid_subsets"] == 100 for c in calls)  # 20 // 10
    for folder in ("real", "synthetic", "generated-demo"):
        names = sorted(p.name for p in (images / folder).iterdir())
        assert names == [f"{i:06d}.jpg" for i in range(20)]
        assert (images / folder / "000000.jpg").read_bytes()[:2] == b"\xff\xd8"  # JPEG files, read back by torch-fidelity

    # The generated images are the RAW generator output on the synthetic crops, quantised and JPEG-encoded
    # as the reference does, not the translation composited over the input with the hand mask.
    synthetic = protocol_images("synthetic", settings)
    raw = raw_translator(ckpt)(synthetic.images[:1])
    written = (images / "generated-demo" / "000000.jpg").read_bytes()
    assert written == jpeg_bytes(reference_quantize(raw)[0].permute(1, 2, 0).numpy(), 75)
    composited = torch.where(synthetic.masks[:1], reference_quantize(raw), synthetic.images[:1])
    assert written != jpeg_bytes(composited[0].permute(1, 2, 0).numpy(), 75)
    assert not synthetic.masks[0].all()  # the crop has background, where the two differ

    rows = [row[0] for row in table.rows]
    assert rows == ["synthetic (no translation)", "demo"]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["protocol"] == "hgan" and results["settings"]["kid_subset_size"] == 2
    assert results["fid"]["demo"]["n_fake"] == 20 and results["fid"]["demo"]["n_real"] == 20
    assert "NOT FID/KID values" in (tmp_path / "out" / "fid.md").read_text()


def test_protocol_images_crop_each_frame_at_native_resolution(tmp_path):
    settings = HganProtocol(**TINY)
    real = protocol_images("real", settings)
    assert real.images.shape == (20, 3, 32, 32) and real.masks.shape == (20, 1, 32, 32)
    full = protocol.procedural_set("real", 20, protocol.role_seed(0, "fid_real"), image_size=64)
    expected, _ = centroid_crop(full.images[3].permute(1, 2, 0).numpy(), full.masks[3, 0].numpy().astype(np.uint8) * 255, 32, (2, -4))
    assert np.array_equal(real.images[3].permute(1, 2, 0).numpy(), expected)  # no resizing, only the crop


def test_cli_protocol_hgan_end_to_end(tmp_path, ckpt, capsys):
    out = tmp_path / "report"
    argv = ["fid", "--protocol", "hgan", "--ckpt", f"demo={ckpt}", "--out", str(out), "--features", "random_conv",
            "--fid-images", "20", "--image-size", "64", "--crop-size", "32", "--crop-offset", "2", "-4", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "### Table I, H-GAN reference protocol" in printed and "| demo |" in printed
    assert "raw generator output (not composited)" in printed and "subsets of 2 images" in printed
    assert "NOT FID/KID values" in printed and "procedural hands rendered at 64 px" in printed
    assert (out / "fid.csv").read_text().splitlines()[0] == "method,FID ↓,KID ↓,real images,generated images"


def test_cli_protocol_hgan_without_inception_weights_says_which_file(tmp_path, ckpt, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(SystemExit) as err:
        main(["fid", "--protocol", "hgan", "--ckpt", ckpt, "--out", str(tmp_path / "r"), "--no-progress"])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert "weights-inception-2015-12-05-6726825d.pth" in message and str(tmp_path / "hub" / "checkpoints") in message
    assert not (tmp_path / "r" / "hgan-protocol").exists()  # stopped before cropping or translating anything


def test_fid_kid_of_folders_hands_torch_fidelity_its_inception_and_a_checked_copy_of_the_weights(tmp_path, monkeypatch):
    """Random InceptionV3 weights under the published file name: torch-fidelity gets its own extractor
    (``inception-v3-compat``) and a copy of the tensors it can load. The forward pass is not run (minutes on CPU)."""
    import torch_fidelity
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torchvision.models import inception_v3

    state = inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False).state_dict()
    weights = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(state, weights)
    a = write_jpeg_folder(torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8), tmp_path / "a")
    b = write_jpeg_folder(torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8), tmp_path / "b")
    seen = {}

    def calculate_metrics(**kwargs):
        seen.update(kwargs)
        extractor = FeatureExtractorInceptionV3(kwargs["feature_extractor"], ["2048"], kwargs["feature_extractor_weights_path"])
        seen["loaded"] = torch.equal(extractor.state_dict()["Mixed_7c.branch_pool.conv.weight"], state["Mixed_7c.branch_pool.conv.weight"])
        return {torch_fidelity.KEY_METRIC_FID: 1.5, torch_fidelity.KEY_METRIC_KID_MEAN: 0.25, torch_fidelity.KEY_METRIC_KID_STD: 0.5,
                torch_fidelity.KEY_METRIC_ISC_MEAN: 2.0, torch_fidelity.KEY_METRIC_ISC_STD: 0.125}

    monkeypatch.setattr(torch_fidelity, "calculate_metrics", calculate_metrics)
    result = fid_kid_of_folders(a, b, features="inception", weights=weights, kid_subset_size=2, kid_subsets=3, isc=True)
    assert seen["feature_extractor"] == "inception-v3-compat" and seen["loaded"]
    assert seen["feature_extractor_weights_path"] != str(weights)  # a private copy, not the user's file
    assert (seen["input1"], seen["input2"]) == (str(a), str(b)) and seen["isc"] and seen["fid"] and seen["kid"]
    assert (seen["kid_subsets"], seen["kid_subset_size"], seen["cache"]) == (3, 2, False)
    assert (result.fid, result.kid_mean, result.isc_mean, result.isc_std) == (1.5, 0.25, 2.0, 0.125)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fid_kid_of_folders(a, b, features="inception", weights=tmp_path / "nope.pth", kid_subset_size=2)
