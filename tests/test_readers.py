"""Dataset readers on tiny fixtures written in each dataset's real layout and file formats.

Images are procedural hands composited on the dataset's background; keypoints are chosen so
that the remap tables and projections can be checked against values computed by hand.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from pickle_attacks import (
    field_outside_item_dtype,
    load_isolated,
    op_array,
    op_dict,
    op_dtype,
    op_get,
    op_int,
    op_text,
    pickle_of,
    shared_lists,
)

from handaug.data.background import GREEN_SCREEN_RGB
from handaug.data.folder import ImageFolder
from handaug.data.joints import JOINT_NAMES, REMAP_TABLES, remap_joints
from handaug.data.procedural import ProceduralHands
from handaug.data.readers import RHD, FreiHAND, GANeratedHands, RealHands, SynthHands, safe_load_pickle
from handaug.data.sources import SourceSpec, parse_source
from handaug.registry import create_dataset


def write_rgb(path, rgb, quality=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if quality else []
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)


def write_line(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(",".join(repr(float(v)) for v in np.asarray(array).ravel()) + "\n")


def composite(sample, height, width, top, left, background):
    """Paste a procedural hand (its mask) into a (height, width) canvas of ``background``."""
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = background
    size = sample["image"].shape[0]
    window = canvas[top : top + size, left : left + size]
    hand = sample["mask"] > 0
    window[hand] = sample["image"][hand]
    mask = np.zeros((height, width), np.uint8)
    mask[top : top + size, left : left + size] = sample["mask"]
    return canvas, mask


# ------------------------------------------------------------------------------ joint order


def test_joint_names_come_from_procedural_and_rhd_table_reverses_each_finger():
    assert JOINT_NAMES[1] == "thumb_cmc" and JOINT_NAMES[4] == "thumb_tip"
    assert REMAP_TABLES["rhd"].tolist() == [0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17]
    for name in ("synthhands", "ganerated", "freihand", "realhands"):
        assert REMAP_TABLES[name].tolist() == list(range(21))


def test_remap_joints_picks_rhd_hand_and_checks_arguments():
    both = np.arange(42 * 2).reshape(42, 2)
    right = remap_joints(both, "rhd", hand="right")
    # Canonical thumb CMC (row 1) is RHD's right-hand row 21 + 4; thumb tip (row 4) is 21 + 1.
    assert right[1].tolist() == both[25].tolist() and right[4].tolist() == both[22].tolist()
    assert right[0].tolist() == both[21].tolist() and right[20].tolist() == both[21 + 17].tolist()
    assert remap_joints(both, "rhd", hand="left")[8].tolist() == both[5].tolist()  # index tip
    with pytest.raises(ValueError, match="hand must be 'left' or 'right'"):
        remap_joints(both, "rhd")
    with pytest.raises(ValueError, match="dataset must be one of"):
        remap_joints(both[:21], "nyu")
    with pytest.raises(ValueError, match="21 rows"):
        remap_joints(both[:20], "freihand")


# ------------------------------------------------------------------------------ SynthHands


def make_synthhands(root, n=3, size=96):
    hands = ProceduralHands("synthetic", image_size=size, length=n, seed=5, background="green_screen")
    frames = []
    for i in range(n):
        folder = root / "female_noobject" / "seq01" / "cam01" / "01"
        image, mask = composite(hands[i], 480, 640, (100 + 20 * i) % (480 - size), (200 + 30 * i) % (640 - size), GREEN_SCREEN_RGB)
        write_rgb(folder / f"{i:08d}_color.png", image)
        # Depth-frame millimetres: row j = (10 j - 100, 5 j - 50, 400 + 2 j) plus the frame number.
        joints = np.stack([10.0 * np.arange(21) - 100 + i, 5.0 * np.arange(21) - 50, 400 + 2.0 * np.arange(21)], axis=1)
        write_line(folder / f"{i:08d}_joint_pos.txt", joints)
        cv2.imwrite(str(folder / f"{i:08d}_depth.png"), np.zeros((480, 640), np.uint16))  # ignored
        frames.append((image, mask, joints))
    return frames


def test_synthhands_projects_depth_frame_millimetres_into_the_colour_camera(tmp_path):
    frames = make_synthhands(tmp_path)
    data = SynthHands(tmp_path)
    assert len(data) == 3 and [p.name for p in data.image_paths] == [f"{i:08d}_color.png" for i in range(3)]
    sample = data[1]
    image, mask, joints = frames[1]
    assert np.array_equal(sample["image"], image)
    assert np.array_equal(sample["mask"], mask)  # chroma key recovers the composited silhouette exactly
    # Joint 3 of frame 1 in the depth frame: (10*3 - 100 + 1, 5*3 - 50, 400 + 2*3) = (-69, -35, 406) mm.
    x, y, z = -69 + 24.7, -35 - 0.0471401, 406 + 3.72045  # into the colour camera frame
    assert sample["keypoints_3d"][3] == pytest.approx([x / 1000, y / 1000, z / 1000], abs=1e-7)
    assert sample["keypoints_2d"][3] == pytest.approx([617.173 * x / z + 315.453, 617.173 * y / z + 242.259], abs=1e-4)
    assert sample["keypoints_2d"].dtype == np.float32 and sample["keypoints_3d"].shape == (21, 3)
    assert np.allclose(sample["K"], [[617.173, 0, 315.453], [0, 617.173, 242.259], [0, 0, 1]], rtol=0, atol=1e-4)
    assert sample["path"] == str(data.image_paths[1])
    assert data[-1]["path"].endswith("00000002_color.png")


def test_synthhands_errors_name_root_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"root .*nowhere.*_color.png"):
        SynthHands(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"root .*empty.* no files matching '\*\*/\*_color.png'"):
        SynthHands(tmp_path / "empty")
    with pytest.raises(ValueError, match="root must be"):
        SynthHands(None)
    make_synthhands(tmp_path / "sh", n=2)
    next((tmp_path / "sh").rglob("00000001_joint_pos.txt")).unlink()
    with pytest.raises(ValueError, match=r"1 SynthHands frame\(s\).*00000001_joint_pos.txt"):
        SynthHands(tmp_path / "sh")
    with pytest.raises(ValueError, match="mask_tolerance"):
        SynthHands(tmp_path / "sh", mask_tolerance=-1)
    with pytest.raises(ValueError, match=r"^mask_tolerance must be an integer in \[0, 255\], got True$"):
        SynthHands(tmp_path / "sh", mask_tolerance=True)


def test_synthhands_short_joint_file_is_named(tmp_path):
    make_synthhands(tmp_path, n=1)
    next(tmp_path.rglob("*_joint_pos.txt")).write_text("1,2,3\n")
    with pytest.raises(ValueError, match=r"_joint_pos.txt' holds 3 numbers, expected 63"):
        SynthHands(tmp_path)[0]


# ------------------------------------------------------------------------------ RealHands


def make_realhands(root, n=5, size=96, extra_bad=True, seed=11):
    """n frames of real-style procedural hands on a noisy green screen; plus an empty and a full frame."""
    hands = ProceduralHands("real", image_size=size, length=n, seed=seed, background="white", hand_scale=(0.55, 0.75))
    rng = np.random.default_rng(seed)
    folder = root / "user01" / "color"
    masks = {}
    for i in range(n):
        sample = hands[i]
        screen = np.clip(rng.normal(0, 8, sample["image"].shape) + GREEN_SCREEN_RGB, 0, 255).astype(np.uint8)
        write_rgb(folder / f"{i:04d}_color.png", np.where(sample["mask"][..., None] > 0, sample["image"], screen))
        masks[f"{i:04d}_color.png"] = sample["mask"]
    if extra_bad:
        screen = np.clip(rng.normal(0, 6, (size, size, 3)) + GREEN_SCREEN_RGB, 0, 255).astype(np.uint8)
        write_rgb(folder / f"{n:04d}_color.png", screen)  # no hand: 0 % area
        write_rgb(folder / f"{n + 1:04d}_color.png", np.full((size, size, 3), (200, 150, 120), np.uint8))  # 100 %
    return masks


def test_realhands_refines_masks_and_drops_frames_outside_the_area_bounds(tmp_path, caplog):
    masks = make_realhands(tmp_path)
    with caplog.at_level(logging.INFO, logger="handaug.data.readers.realhands"):
        data = RealHands(tmp_path)
    assert data.dropped == 2 and [p.name for p in data.dropped_paths] == ["0005_color.png", "0006_color.png"]
    assert len(data) == 5 and [p.name for p in data.image_paths] == [f"{i:04d}_color.png" for i in range(5)]
    assert (data.area_filter.kept, data.area_filter.dropped) == (5, 2)
    assert "dropped 2 of 7 frames" in caplog.text
    for i in range(5):
        sample = data[i]
        truth, found = masks[f"{i:04d}_color.png"] > 0, sample["mask"] > 0
        assert set(np.unique(sample["mask"])) <= {0, 255}
        assert (truth & found).sum() / (truth | found).sum() > 0.75  # 96 px: the 1 px erosion alone costs ~15 %
        assert "keypoints_2d" not in sample


def test_realhands_provided_masks_keypoints_and_errors(tmp_path):
    make_realhands(tmp_path, n=2, extra_bad=False)
    mask_dir = tmp_path / "user01" / "mask"
    mask_dir.mkdir()
    for i in range(2):
        cv2.imwrite(str(mask_dir / f"{i:04d}_mask.jpg"), np.full((96, 96), 255 * i, np.uint8))
    keypoints = np.arange(42, dtype=np.float64).reshape(21, 2)
    write_line(tmp_path / "user01" / "color" / "0001_color_joint2D.txt", keypoints)
    data = RealHands(tmp_path, mask_source="provided", keypoints_pattern="{stem}_joint2D.txt")
    assert data.dropped == 0 and len(data) == 2
    assert data[0]["mask"].max() == 0 and data[1]["mask"].min() == 255
    assert "keypoints_2d" not in data[0] and np.array_equal(data[1]["keypoints_2d"], keypoints.astype(np.float32))
    assert "mask" not in RealHands(tmp_path, mask_source="none")[0]
    (mask_dir / "0001_mask.jpg").unlink()
    with pytest.raises(ValueError, match=r"1 frame\(s\).*no provided mask.*0001_mask.jpg"):
        RealHands(tmp_path, mask_source="provided")
    with pytest.raises(ValueError, match="mask_source must be one of"):
        RealHands(tmp_path, mask_source="auto")
    with pytest.raises(ValueError, match="median_kernel"):
        RealHands(tmp_path, mask_params={"median_kernel": 4})
    with pytest.raises(ValueError, match="mask_params"):
        RealHands(tmp_path, mask_params={"blur": 3})
    with pytest.raises(ValueError, match=r"all 2 frames .* were dropped"):
        RealHands(tmp_path, area_range=(0.9, 1.0))


# ------------------------------------------------------------------------------ GANeratedHands


def test_ganerated_reads_comma_separated_annotations(tmp_path):
    hands = ProceduralHands("real", image_size=64, length=2, seed=2, background="noise")
    folder = tmp_path / "noObject" / "0001"
    uv = np.arange(42, dtype=np.float64).reshape(21, 2) * 1.5 + 0.25
    xyz = np.arange(63, dtype=np.float64).reshape(21, 3) * 3.0 + 100.0
    for i in range(2):
        write_rgb(folder / f"{i:04d}_color_composed.png", hands[i]["image"])
        write_line(folder / f"{i:04d}_joint2D.txt", uv + i)
        write_line(folder / f"{i:04d}_joint_pos.txt", xyz / 1000 - 0.1)
        if i == 0:
            write_line(folder / f"{i:04d}_joint_pos_global.txt", xyz)
        (folder / f"{i:04d}_crop_params.txt").write_text("10,20,1.5\n")
    data = GANeratedHands(tmp_path)
    assert len(data) == 2 and data.image_paths[1].name == "0001_color_composed.png"
    first, second = data[0], data[1]
    assert np.array_equal(first["image"], hands[0]["image"])
    assert first["keypoints_2d"][7].tolist() == [14 * 1.5 + 0.25, 15 * 1.5 + 0.25]
    assert first["keypoints_3d"][20] == pytest.approx([(60 * 3 + 100) / 1000, (61 * 3 + 100) / 1000, (62 * 3 + 100) / 1000])
    assert first["keypoints_3d_normalized"][0] == pytest.approx([0.1 - 0.1, 0.103 - 0.1, 0.106 - 0.1], abs=1e-6)
    assert second["keypoints_2d"][0].tolist() == [1.25, 2.75] and "keypoints_3d" not in second
    assert "mask" not in first and "K" not in first
    (folder / "0001_joint2D.txt").unlink()
    with pytest.raises(ValueError, match=r"1 GANeratedHands frame\(s\).*0001_joint2D.txt"):
        GANeratedHands(tmp_path)


# ------------------------------------------------------------------------------ FreiHAND


def make_freihand(root, n=2, versions=4):
    hands = ProceduralHands("real", image_size=32, length=n, seed=4, background="green_screen")
    xyz = np.zeros((n, 21, 3))
    xyz[:, :, 2] = 0.5
    xyz[1, 3] = [0.1, -0.05, 0.5]
    K = np.tile(np.array([[200.0, 0, 16], [0, 200.0, 16], [0, 0, 1]]), (n, 1, 1))
    K[1, 0, 0] = 100.0
    for v in range(versions):
        for a in range(n):
            write_rgb(root / "training" / "rgb" / f"{v * n + a:08d}.jpg", hands[a]["image"], quality=95)
    for a in range(n):
        (root / "training" / "mask").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "training" / "mask" / f"{a:08d}.jpg"), hands[a]["mask"])
    (root / "training_xyz.json").write_text(json.dumps(xyz.tolist()))
    (root / "training_K.json").write_text(json.dumps(K.tolist()))
    return hands


def test_freihand_four_versions_share_annotation_i_mod_n(tmp_path):
    hands = make_freihand(tmp_path)
    data = FreiHAND(tmp_path)
    assert len(data) == 8 and data.num_annotations == 2
    sample = data[5]  # version 2 of annotation 1
    assert sample["annotation_index"] == 1 and sample["path"].endswith("00000005.jpg")
    # Joint 3 of annotation 1: (0.1, -0.05, 0.5) m with fx = 100, fy = 200, c = (16, 16).
    assert sample["keypoints_2d"][3] == pytest.approx([100 * 0.1 / 0.5 + 16, 200 * -0.05 / 0.5 + 16], abs=1e-4)
    assert sample["keypoints_3d"][3] == pytest.approx([0.1, -0.05, 0.5])
    assert sample["K"][0, 0] == 100.0 and data[4]["K"][0, 0] == 200.0
    expected = hands[1]["mask"] > 0
    assert ((sample["mask"] > 0) == expected).mean() > 0.97  # JPEG-compressed mask, thresholded
    assert sample["image"].shape == (32, 32, 3)


def test_freihand_errors_name_the_files(tmp_path):
    make_freihand(tmp_path)
    (tmp_path / "training" / "rgb" / "00000007.jpg").unlink()
    with pytest.raises(ValueError, match=r"7 images in training/rgb, not a multiple of the 2 annotations"):
        FreiHAND(tmp_path)
    (tmp_path / "training_K.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"training_K.json' does not exist"):
        FreiHAND(tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        FreiHAND(tmp_path, split="test")


# ------------------------------------------------------------------------------ RHD


def make_rhd(root, protocol=pickle.HIGHEST_PROTOCOL):
    hands = ProceduralHands("synthetic", image_size=40, length=2, seed=8, background="noise")
    annotations = {}
    for i in range(2):
        write_rgb(root / "training" / "color" / f"{i:05d}.png", hands[i]["image"])
        labels = np.zeros((40, 40), np.uint8)
        labels[:, :5] = 1  # person
        labels[5:15, 5:15] = 3  # a left-hand part
        labels[20:30, 20:30] = 25  # a right-hand part
        (root / "training" / "mask").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "training" / "mask" / f"{i:05d}.png"), labels)
        uv_vis = np.zeros((42, 3), np.float32)
        uv_vis[:, 0] = np.arange(42) + 0.5
        uv_vis[:, 1] = 100 + i
        visible_left, visible_right = (10, 15) if i == 0 else (15, 10)
        uv_vis[:visible_left, 2] = 1
        uv_vis[21 : 21 + visible_right, 2] = 1
        xyz = np.stack([np.arange(42) / 100, np.full(42, 0.02), np.full(42, 0.5)], axis=1).astype(np.float32)
        K = np.array([[280.0, 0, 160], [0, 280.0, 160], [0, 0, 1]], np.float32)
        annotations[i] = {"xyz": xyz, "uv_vis": uv_vis, "K": K}
    (root / "training" / "anno_training.pickle").write_bytes(pickle.dumps(annotations, protocol=protocol))
    return annotations


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_rhd_chooses_the_hand_and_remaps_tip_to_base(tmp_path, protocol):
    make_rhd(tmp_path, protocol)
    data = RHD(tmp_path)  # hand="visible"
    first, second = data[0], data[1]
    assert first["hand"] == "right" and second["hand"] == "left"
    # Right hand of image 0: canonical thumb CMC (1) ← RHD row 21 + 4, thumb tip (4) ← 21 + 1, wrist ← 21.
    assert first["keypoints_2d"][[0, 1, 4]].tolist() == [[21.5, 100.0], [25.5, 100.0], [22.5, 100.0]]
    assert first["keypoints_3d"][1] == pytest.approx([0.25, 0.02, 0.5])
    # Visible joints of the right hand: its first 15 RHD rows (wrist, thumb, index, middle, ring), reordered.
    expected_visible = remap_joints(np.arange(21) < 15, "rhd")
    assert first["visible"].tolist() == expected_visible.tolist() and first["visible"].dtype == bool
    assert second["keypoints_2d"][8].tolist() == [5.5, 101.0]  # left index tip = RHD row 5
    assert first["mask"][25, 25] == 255 and first["mask"][10, 10] == 0 and first["mask"][0, 0] == 0
    assert second["mask"][10, 10] == 255 and second["mask"][25, 25] == 0
    assert first["K"][0, 0] == 280.0
    assert RHD(tmp_path, hand="left")[0]["hand"] == "left"
    with pytest.raises(ValueError, match="hand must be one of"):
        RHD(tmp_path, hand="both")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_rhd_pickle_that_calls_a_function_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    make_rhd(tmp_path)
    payload = {0: {"xyz": _Exploit(), "uv_vis": np.zeros((42, 3)), "K": np.eye(3)}}
    (tmp_path / "training" / "anno_training.pickle").write_bytes(pickle.dumps(payload))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pickle.UnpicklingError, match=rf"refusing to load {os.system.__module__}\.system"):
        RHD(tmp_path)
    assert not (tmp_path / "PWNED").exists()
    for dangerous in (eval, getattr):
        path = tmp_path / "x.pickle"
        path.write_bytes(pickle.dumps(dangerous))
        with pytest.raises(pickle.UnpicklingError, match=rf"builtins\.{dangerous.__name__}"):
            safe_load_pickle(path)


def test_safe_load_pickle_round_trips_arrays_scalars_and_containers(tmp_path):
    value = {1: [np.arange(6, dtype=np.float32).reshape(2, 3), np.float64(2.5), (1, "a", b"x", None, True)], "s": {3}}
    for protocol in (2, 4, 5):
        path = tmp_path / f"p{protocol}.pickle"
        path.write_bytes(pickle.dumps(value, protocol=protocol))
        loaded = safe_load_pickle(path)
        assert np.array_equal(loaded[1][0], value[1][0]) and loaded[1][0].dtype == np.float32
        assert loaded[1][1] == 2.5 and loaded[1][2] == (1, "a", b"x", None, True) and loaded["s"] == {3}


def _rhd_pickle(first_xyz: bytes) -> bytes:
    """RHD annotations for images 0 and 1, written by hand; image 0's ``xyz`` is ``first_xyz``."""

    def entry(xyz: bytes) -> bytes:
        array = op_array((42, 3), op_dtype("f4"), np.zeros((42, 3), "<f4").tobytes())
        K = op_array((3, 3), op_dtype("f4"), np.eye(3, dtype="<f4").tobytes())
        return op_dict((op_text("xyz"), xyz), (op_text("uv_vis"), array), (op_text("K"), K))

    safe_xyz = op_array((42, 3), op_dtype("f4"), np.zeros((42, 3), "<f4").tobytes())
    return pickle_of(op_dict((op_int(0), entry(first_xyz)), (op_int(1), entry(safe_xyz))))


def test_rhd_pickle_attacks_are_refused_before_numpy_sees_them(tmp_path):
    # A dtype whose field lies 4,096 bytes past its 8-byte item: reading keypoints_3d gave heap
    # bytes and the joint remap wrote out of bounds (SIGSEGV). 1 KB of lists sharing their children
    # (8**12 floats) took gigabytes in np.asarray. Both run in a child process under a memory limit.
    attacks = {
        "field outside its item": (op_array((42, 3), field_outside_item_dtype(), bytes(42 * 3 * 8)), "dtype 'V8' is not allowed"),
        "billion laughs": (op_get(1011), "expands to more than"),
    }
    cases = []
    for number, (label, (xyz, _)) in enumerate(attacks.items()):
        root = tmp_path / str(number)
        make_rhd(root)
        data = _rhd_pickle(xyz)
        if label == "billion laughs":  # define the shared lists before the annotations use them
            data = data[:2] + shared_lists(12) + data[2:]
        (root / "training" / "anno_training.pickle").write_bytes(data)
        cases.append((label, "rhd", root))
    results = load_isolated(cases)
    for number, (label, (_, expected)) in enumerate(attacks.items()):
        result = results[label]
        assert result.get("error") == "UnpicklingError", f"{label}: {result}"
        path = tmp_path / str(number) / "training" / "anno_training.pickle"
        assert expected in result["message"] and str(path) in result["message"]


@pytest.mark.slow
def test_handaug_translate_on_the_rhd_dtype_attack_exits_with_an_error_naming_the_file(tmp_path):
    import torch

    from handaug import save_generator
    from handaug.registry import create_generator

    make_rhd(tmp_path / "rhd")
    path = tmp_path / "rhd" / "training" / "anno_training.pickle"
    path.write_bytes(_rhd_pickle(op_array((42, 3), field_outside_item_dtype(), bytes(42 * 3 * 8))))
    torch.manual_seed(0)
    ckpt = save_generator(create_generator("resnet", ngf=8, n_blocks=1), tmp_path / "ckpt")
    command = [sys.executable, "-m", "handaug.cli.translate", str(ckpt), str(tmp_path / "rhd"), str(tmp_path / "out"),
               "--dataset", "rhd", "--no-progress"]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "handaug-translate: error:" in proc.stderr and str(path) in proc.stderr
    assert "dtype 'V8' is not allowed" in proc.stderr


MALFORMED_ENTRIES = {  # id: (change to sample 1's entry, what the message says after the file name)
    "missing key": (lambda e: e.pop("K"), r"sample 1, key 'K' is missing"),
    "21 joints": (lambda e: e.update(xyz=np.zeros((21, 3), np.float32)), r"sample 1, key 'xyz' must have shape \(42, 3\), got \(21, 3\)"),
    "2 columns": (lambda e: e.update(uv_vis=np.zeros((42, 2))), r"sample 1, key 'uv_vis' must have shape \(42, 3\), got \(42, 2\)"),
    "strings": (lambda e: e.update(K=[["1.0"] * 3] * 3), r"sample 1, key 'K' must be a \(3, 3\) array of numbers, got dtype <U3"),
    "ragged lists": (lambda e: e.update(xyz=[[0.0] * 3] * 41 + [[0.0] * 2]), r"sample 1, key 'xyz' must be a \(42, 3\) array of numbers"),
    "NaN": (lambda e: e["uv_vis"].__setitem__((3, 0), np.nan), r"sample 1, key 'uv_vis' contains NaN or infinite values"),
    "inf": (lambda e: e["xyz"].__setitem__((0, 2), np.inf), r"sample 1, key 'xyz' contains NaN or infinite values"),
}


@pytest.mark.parametrize(("change", "message"), list(MALFORMED_ENTRIES.values()), ids=list(MALFORMED_ENTRIES))
def test_rhd_malformed_entry_names_the_file_the_sample_and_the_key(tmp_path, change, message):
    annotations = make_rhd(tmp_path)
    change(annotations[1])
    path = tmp_path / "training" / "anno_training.pickle"
    path.write_bytes(pickle.dumps(annotations, protocol=2))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        RHD(tmp_path)


def test_rhd_entry_that_is_not_a_dict_is_an_error(tmp_path):
    annotations = make_rhd(tmp_path)
    annotations[0] = [annotations[0]["xyz"]]
    (tmp_path / "training" / "anno_training.pickle").write_bytes(pickle.dumps(annotations))
    with pytest.raises(ValueError, match=r"sample 0 must be a dict with keys \['xyz', 'uv_vis', 'K'\], got list"):
        RHD(tmp_path)


def test_rhd_missing_annotation_file(tmp_path):
    make_rhd(tmp_path)
    (tmp_path / "training" / "anno_training.pickle").unlink()
    with pytest.raises(FileNotFoundError, match=r"anno_training.pickle' does not exist.*ROOT/training/color"):
        RHD(tmp_path)


# ------------------------------------------------------------------------------ registry and folder


def test_readers_are_registered_by_name(tmp_path):
    make_synthhands(tmp_path / "sh", n=1)
    assert parse_source(f"synthhands:{tmp_path / 'sh'}", "synthetic") == SourceSpec("synthhands", str(tmp_path / "sh"))
    data = create_dataset("synthhands", root=str(tmp_path / "sh"), mask_tolerance=10)
    assert isinstance(data, SynthHands) and data.mask_tolerance == 10 and len(data) == 1
    for name in ("realhands", "ganerated", "freihand", "rhd", "folder", "procedural"):
        parse_source(f"{name}:/x", "real")  # known names parse without error


def test_image_folder_keypoints_per_image_and_one_file(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        write_rgb(tmp_path / "imgs" / f"a{i}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    kp = np.arange(42, dtype=np.float32).reshape(21, 2)
    for i in range(3):
        np.save(tmp_path / "imgs" / f"a{i}.npy", kp + i)
    folder = ImageFolder(tmp_path / "imgs", keypoints="{stem}.npy")
    assert folder.image_paths is folder.images and len(folder) == 3
    assert np.array_equal(folder[2]["keypoints_2d"], kp + 2)
    # One JSON for all, keyed by relative path, with 3D and K for one image.
    annotations = {f"a{i}.png": (kp + 10 * i).tolist() for i in range(3)}
    annotations["a1.png"] = {"keypoints_2d": kp.tolist(), "keypoints_3d": np.ones((21, 3)).tolist(), "K": np.eye(3).tolist()}
    (tmp_path / "kp.json").write_text(json.dumps(annotations))
    folder = ImageFolder(tmp_path / "imgs", keypoints=str(tmp_path / "kp.json"))
    assert np.array_equal(folder[2]["keypoints_2d"], kp + 20) and "keypoints_3d" not in folder[2]
    assert folder[1]["keypoints_3d"].shape == (21, 3) and np.array_equal(folder[1]["K"], np.eye(3, dtype=np.float32))
    np.save(tmp_path / "all.npy", np.stack([kp, kp + 1, kp + 2]))
    assert np.array_equal(ImageFolder(tmp_path / "imgs", keypoints=str(tmp_path / "all.npy"))[1]["keypoints_2d"], kp + 1)
    # Errors name what is wrong.
    (tmp_path / "imgs" / "a1.npy").unlink()
    with pytest.raises(ValueError, match=r"1 image\(s\).*keypoints='\{stem\}.npy'.*a1.npy"):
        ImageFolder(tmp_path / "imgs", keypoints="{stem}.npy")
    del annotations["a0.png"]
    (tmp_path / "kp.json").write_text(json.dumps(annotations))
    with pytest.raises(ValueError, match=r"no entry for 1 image\(s\): a0.png"):
        ImageFolder(tmp_path / "imgs", keypoints=str(tmp_path / "kp.json"))
    (tmp_path / "bad.json").write_text(json.dumps([kp[:20].tolist()] * 3))
    with pytest.raises(ValueError, match=r"keypoints_2d in .* must have shape \(21, 2\), got \(20, 2\)"):
        ImageFolder(tmp_path / "imgs", keypoints=str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="keypoints must name .json or .npy"):
        ImageFolder(tmp_path / "imgs", keypoints="{stem}.txt")


# ------------------------------------------------------------------------------ training end to end


@pytest.mark.slow
def test_handaug_train_on_synthhands_and_realhands_fixtures(tmp_path, monkeypatch):
    from handaug import read_checkpoint
    from handaug.cli.train import demo_config_path, main

    make_synthhands(tmp_path / "SynthHands", n=6, size=64)
    make_realhands(tmp_path / "RealHands", n=6, size=64)
    monkeypatch.chdir(tmp_path)
    main([
        "--config", str(demo_config_path()), "--trainer.default_root_dir", "out",  # --demo itself refuses other data
        "--data.synthetic", f"synthhands:{tmp_path / 'SynthHands'}",
        "--data.real", f"realhands:{tmp_path / 'RealHands'}",
        "--data.synthetic_kwargs", "{}", "--data.real_kwargs", "{}",
        "--data.crop_size", "32", "--data.val_size", "48", "--data.val_count", "2", "--data.batch_size", "2",
        "--model.generator_kwargs", '{"n_blocks": 1, "ngf": 8}',
        "--model.discriminator_kwargs", '{"ndf": 8, "vgg_weights": "random"}',
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false",
    ])  # fmt: skip
    data = read_checkpoint(tmp_path / "out" / "export").config["training"]["data"]
    assert data["synthetic"]["source"] == f"synthhands:{tmp_path / 'SynthHands'}" and data["synthetic"]["images"] == 6
    assert data["real"]["source"] == f"realhands:{tmp_path / 'RealHands'}"
    assert data["real"]["images"] == 6 and data["synthetic"]["masks"] and data["real"]["masks"]  # 2 hand-less frames dropped


# ------------------------------------------------------------------------------ names that are not UTF-8 (issue 20)

_ODD_NAMES_SCRIPT = r"""
import os, sys
from pathlib import Path
import numpy as np
from handaug.data.folder import ImageFolder, image_size, read_mask, read_rgb
from handaug.data.readers import RHD
from handaug.data.unpaired import DomainDataset
from handaug.registry import create_dataset

root = Path(sys.argv[1])
odd = root / os.fsdecode(b"caf\xe9")  # a Latin-1 folder name
bad = odd / os.fsdecode(b"bad\xff.png")
assert image_size(bad) == (24, 24) and read_rgb(bad).shape == (24, 24, 3) and read_mask(bad).shape == (24, 24)
folder = create_dataset("folder", root=str(odd), mask_pattern="../masks/{stem}.png", keypoints="{stem}.json")
assert [p.name for p in folder.images] == [os.fsdecode(b"bad\xff.png"), "good.png", os.fsdecode(b"worse\xfe.png")]
assert folder[0]["image"].shape == (24, 24, 3) and folder[0]["mask"].max() == 255 and folder[0]["keypoints_2d"].shape == (21, 2)
try:
    folder[2]
except OSError as err:
    assert "cannot be decoded" in str(err), err
else:
    raise AssertionError("a truncated image was decoded")
train = DomainDataset(folder, range(3), 16, random_crop=False, name="synthetic")  # what handaug-train reads
assert all(train[i]["image"].shape == (3, 16, 16) for i in range(3)) and train.decode_failures == 1
rhd = RHD(root / os.fsdecode(b"rhd\xff"))
assert rhd[0]["image"].shape == (40, 40, 3) and rhd[0]["mask"].shape == (40, 40)
print("ok")
"""


def test_file_names_that_are_not_utf8_are_read_or_skipped_not_a_crash(tmp_path):
    """Issue 20, item 2: ``cv2.imread`` segfaults on a name with a lone surrogate (``b"bad\\xff.png"``).
    Every reader (the folder reader of handaug-train and handaug-eval, the dataset readers) decodes
    such files, or skips and counts them when they are broken; the process never dies."""
    odd = tmp_path / os.fsdecode(b"caf\xe9")
    rgb = np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    mask = np.zeros((24, 24), np.uint8)
    mask[4:20, 4:20] = 255
    odd.mkdir()
    (tmp_path / "masks").mkdir()
    for name in (b"bad\xff", b"good", b"worse\xfe"):  # cv2.imwrite would crash on these names too
        (odd / os.fsdecode(name + b".png")).write_bytes(cv2.imencode(".png", rgb)[1].tobytes())
        (tmp_path / "masks" / os.fsdecode(name + b".png")).write_bytes(cv2.imencode(".png", mask)[1].tobytes())
        (odd / os.fsdecode(name + b".json")).write_text(json.dumps([[1.0, 2.0]] * 21))
    truncated = odd / os.fsdecode(b"worse\xfe.png")
    truncated.write_bytes(truncated.read_bytes()[:80])
    make_rhd(tmp_path / "rhd")
    (tmp_path / "rhd").rename(tmp_path / os.fsdecode(b"rhd\xff"))
    proc = subprocess.run([sys.executable, "-c", _ODD_NAMES_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr[-3000:])


def test_annotations_too_deep_or_not_finite_are_a_one_line_error_naming_the_file(tmp_path):
    """Issue 20, item 8: a deeply nested JSON raised RecursionError; NaN and infinite keypoints were accepted."""
    make_freihand(tmp_path / "frei")
    (tmp_path / "frei" / "training_xyz.json").write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(ValueError, match=r"training_xyz.json.*nests arrays/objects more than 32 deep"):
        FreiHAND(tmp_path / "frei")
    (tmp_path / "frei" / "training_xyz.json").write_text(json.dumps(np.full((2, 21, 3), 1e999).tolist()).replace("Infinity", "1e999"))
    with pytest.raises(ValueError, match=r"training_xyz.json.*NaN or infinite"):
        FreiHAND(tmp_path / "frei")

    folder = tmp_path / "images"
    write_rgb(folder / "a.png", np.zeros((8, 8, 3), np.uint8))
    (folder / "all.json").write_text(json.dumps({"a.png": [[1.0, 2.0]] * 20 + [[float("inf"), 2.0]]}).replace("Infinity", "1e999"))
    with pytest.raises(ValueError, match=r"all.json \[a.png\].*NaN or infinite"):
        ImageFolder(folder, keypoints="all.json")
    (folder / "all.json").write_text('{"a.png": [[NaN, 1]]}')
    with pytest.raises(ValueError, match=r"all.json.* holds NaN, which is not a finite number"):
        ImageFolder(folder, keypoints="all.json")
    np.save(folder / "all.npy", np.full((1, 21, 2), np.nan))
    with pytest.raises(ValueError, match=r"all.npy \[a.png\].*NaN or infinite"):
        ImageFolder(folder, keypoints="all.npy")

    from handaug.data.readers.base import read_numbers

    write_line(tmp_path / "joints.txt", [1.0] * 62 + [float("nan")])
    with pytest.raises(ValueError, match=r"joints.txt.*NaN or infinite"):
        read_numbers(tmp_path / "joints.txt", (21, 3))
