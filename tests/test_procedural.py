"""Tests of the procedural hand renderer (handaug.data.procedural)."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from handaug.data.background import GREEN_SCREEN_RGB
from handaug.data.joints import BONES, JOINT_NAMES, NUM_JOINTS
from handaug.data.procedural import ProceduralHands

SIZE = 64
BATCH = 48


def _batch(style: str, seed: int = 0, **kwargs: object) -> list[dict]:
    dataset = ProceduralHands(style, image_size=SIZE, length=BATCH, seed=seed, **kwargs)
    return [dataset[i] for i in range(BATCH)]


@pytest.fixture(scope="module")
def synthetic() -> list[dict]:
    return _batch("synthetic")


@pytest.fixture(scope="module")
def real() -> list[dict]:
    return _batch("real")


def _digest(sample: dict) -> str:
    digest = hashlib.sha256()
    for key in ("image", "mask", "keypoints_2d", "keypoints_3d", "K"):
        digest.update(np.ascontiguousarray(sample[key]).tobytes())
    return digest.hexdigest()


# --- fields -------------------------------------------------------------------------------------
@pytest.mark.parametrize("style", ["synthetic", "real"])
@pytest.mark.parametrize("size", [16, 64, 128, 256])
def test_fields_have_documented_shapes_and_dtypes(style: str, size: int) -> None:
    dataset = ProceduralHands(style, image_size=size, length=5, seed=3)
    sample = dataset[2]
    assert set(sample) == {"image", "mask", "keypoints_2d", "keypoints_3d", "K", "style", "index"}
    assert sample["image"].shape == (size, size, 3) and sample["image"].dtype == np.uint8
    assert sample["mask"].shape == (size, size) and sample["mask"].dtype == np.uint8
    assert sample["keypoints_2d"].shape == (NUM_JOINTS, 2) and sample["keypoints_2d"].dtype == np.float32
    assert sample["keypoints_3d"].shape == (NUM_JOINTS, 3) and sample["keypoints_3d"].dtype == np.float32
    assert sample["K"].shape == (3, 3) and sample["K"].dtype == np.float32
    assert sample["style"] == style
    assert sample["index"] == 2 and type(sample["index"]) is int
    assert set(np.unique(sample["mask"])) == {0, 255}
    assert len(dataset) == 5


def test_joint_names_follow_the_documented_order() -> None:
    assert NUM_JOINTS == 21 == len(JOINT_NAMES) == len(set(JOINT_NAMES))
    assert JOINT_NAMES[0] == "wrist"
    for chain, finger in enumerate(["thumb", "index", "middle", "ring", "pinky"]):
        names = JOINT_NAMES[1 + 4 * chain : 5 + 4 * chain]
        assert all(name.startswith(finger + "_") for name in names)
        assert names[-1] == f"{finger}_tip"
    assert JOINT_NAMES[1:5] == ("thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip")
    assert JOINT_NAMES[5:9] == ("index_mcp", "index_pip", "index_dip", "index_tip")
    assert len(BONES) == 20 and {child for _, child in BONES} == set(range(1, 21))


def test_hand_covers_a_plausible_part_of_the_image(synthetic: list[dict]) -> None:
    coverage = np.array([(s["mask"] > 0).mean() for s in synthetic])
    assert coverage.min() >= 0.02 and coverage.max() <= 0.70
    assert 0.08 <= coverage.mean() <= 0.40


def test_hand_scale_controls_the_size() -> None:
    small = ProceduralHands(image_size=SIZE, length=20, hand_scale=(0.3, 0.3))
    large = ProceduralHands(image_size=SIZE, length=20, hand_scale=(0.8, 0.8))
    ratios = []
    for i in range(20):
        # the longer side of the keypoints' box; hand_scale also counts the flesh around them
        extent_small = np.ptp(small[i]["keypoints_2d"], axis=0).max()
        extent_large = np.ptp(large[i]["keypoints_2d"], axis=0).max()
        assert 0.2 * SIZE < extent_small <= 0.3 * SIZE
        assert 0.5 * SIZE < extent_large <= 0.8 * SIZE
        ratios.append(extent_large / extent_small)
    assert np.median(ratios) > 2.3


# --- determinism ----------------------------------------------------------------------------------
@pytest.mark.parametrize("style", ["synthetic", "real"])
def test_same_arguments_give_bit_identical_samples(style: str) -> None:
    first = ProceduralHands(style, image_size=SIZE, seed=11, background="noise")
    second = ProceduralHands(style, image_size=SIZE, seed=11, background="noise")
    for index in (0, 7, 999):
        a, b = first[index], second[index]
        for key in ("image", "mask", "keypoints_2d", "keypoints_3d", "K"):
            assert np.array_equal(a[key], b[key]), key


def test_samples_are_identical_in_another_process() -> None:
    here = [_digest(ProceduralHands(style, image_size=SIZE, seed=5)[3]) for style in ("synthetic", "real")]
    code = (
        "from handaug.data.procedural import ProceduralHands\n"
        "import hashlib, numpy as np\n"
        "for style in ('synthetic', 'real'):\n"
        f"    s = ProceduralHands(style, image_size={SIZE}, seed=5)[3]\n"
        "    d = hashlib.sha256()\n"
        "    for k in ('image', 'mask', 'keypoints_2d', 'keypoints_3d', 'K'):\n"
        "        d.update(np.ascontiguousarray(s[k]).tobytes())\n"
        "    print(d.hexdigest())\n"
    )
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": path}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.split() == here


def test_different_seeds_and_indices_give_different_hands() -> None:
    a = ProceduralHands(image_size=SIZE, seed=0)
    b = ProceduralHands(image_size=SIZE, seed=1)
    assert not np.array_equal(a[0]["image"], b[0]["image"])
    assert not np.allclose(a[0]["keypoints_3d"], b[0]["keypoints_3d"])
    assert not np.allclose(a[0]["keypoints_3d"], a[1]["keypoints_3d"])


def test_negative_indices_count_from_the_end() -> None:
    dataset = ProceduralHands(image_size=SIZE, length=4)
    last, also_last = dataset[-1], dataset[3]
    assert last["index"] == 3
    assert np.array_equal(last["image"], also_last["image"])


def test_dataset_pickles(synthetic: list[dict]) -> None:
    dataset = pickle.loads(pickle.dumps(ProceduralHands(image_size=SIZE, length=BATCH)))
    assert np.array_equal(dataset[5]["image"], synthetic[5]["image"])


# --- geometry -------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [64, 128])
def test_keypoints_2d_are_the_projection_of_keypoints_3d(size: int) -> None:
    dataset = ProceduralHands("real", image_size=size, length=20, seed=2)
    for i in range(20):
        sample = dataset[i]
        K, points = sample["K"], sample["keypoints_3d"]
        assert np.all(points[:, 2] > 0)
        projected = (K @ points.T).T
        np.testing.assert_allclose(sample["keypoints_2d"], projected[:, :2] / projected[:, 2:], rtol=1e-5, atol=1e-4)
        # square pixels, principal point at the image centre (pixel (i, j) centred at x=j, y=i)
        assert K[0, 0] == K[1, 1] and K[0, 1] == 0 and K[1, 0] == 0
        assert K[0, 2] == K[1, 2] == (size - 1) / 2
        np.testing.assert_array_equal(K[2], [0, 0, 1])
        fov = np.degrees(2 * np.arctan(size / 2 / K[0, 0]))
        assert 50 <= fov <= 70


def test_3d_geometry_does_not_depend_on_the_image_size() -> None:
    small, large = ProceduralHands(image_size=64, seed=4)[9], ProceduralHands(image_size=256, seed=4)[9]
    assert np.array_equal(small["keypoints_3d"], large["keypoints_3d"])
    # normalised image coordinates (x + 0.5) / size agree
    np.testing.assert_allclose((small["keypoints_2d"] + 0.5) / 64, (large["keypoints_2d"] + 0.5) / 256, atol=1e-5)


def test_styles_share_geometry_but_not_appearance(synthetic: list[dict], real: list[dict]) -> None:
    for a, b in zip(synthetic, real):
        for key in ("mask", "keypoints_2d", "keypoints_3d", "K"):
            assert np.array_equal(a[key], b[key]), key
        assert a["index"] == b["index"]
        assert np.abs(a["image"].astype(int) - b["image"].astype(int)).mean() > 5


def test_keypoints_lie_on_the_hand(synthetic: list[dict]) -> None:
    near = []
    for sample in synthetic:
        distance = cv2.distanceTransform(255 - sample["mask"], cv2.DIST_L2, 5)  # to the nearest hand pixel
        points = sample["keypoints_2d"]
        inside = np.all((points > -0.5) & (points < SIZE - 0.5), axis=1)
        pixels = np.rint(points[inside]).astype(int)
        near.extend(distance[pixels[:, 1], pixels[:, 0]] <= 2.0)
    assert len(near) > 0.8 * BATCH * NUM_JOINTS  # most keypoints are inside the image
    assert np.mean(near) > 0.95


def test_bones_have_adult_lengths_and_chain_order() -> None:
    dataset = ProceduralHands(image_size=16, length=200, seed=6)
    for i in range(len(dataset)):
        points = dataset[i]["keypoints_3d"].astype(np.float64)
        length = {pair: np.linalg.norm(points[pair[1]] - points[pair[0]]) for pair in BONES}
        for chain in range(5):
            base = 1 + 4 * chain
            phalanges = [length[(base + k, base + k + 1)] for k in range(3)]
            if chain == 0:  # thumb: metacarpal, proximal, distal
                assert 0.035 < phalanges[0] < 0.06 and 0.022 < phalanges[1] < 0.042
            else:  # fingers: the proximal phalanx is the longest, then MCP -> tip is 5-11 cm
                assert phalanges[0] > phalanges[1] and phalanges[0] > phalanges[2]
                assert 0.05 < sum(phalanges) < 0.115
                assert 0.055 < length[(0, base)] < 0.11  # wrist -> MCP (metacarpal)
        index_length = sum(length[(5 + k, 6 + k)] for k in range(3))
        assert 0.06 < index_length < 0.11
        # the knuckles are ordered across the hand: index-pinky is the widest span
        mcp = points[[5, 9, 13, 17]]
        span = np.linalg.norm(mcp[:, None] - mcp[None], axis=-1)
        assert span.argmax() in (3, 12)  # the (index, pinky) pair
        assert 0.035 < span[0, 3] < 0.075


# --- appearance -----------------------------------------------------------------------------------
def test_synthetic_green_screen_is_exact_chroma_green(synthetic: list[dict]) -> None:
    for sample in synthetic:
        background = sample["image"][sample["mask"] == 0]
        assert np.all(background == np.array(GREEN_SCREEN_RGB, dtype=np.uint8))
    white = ProceduralHands("synthetic", image_size=SIZE, background="white")[0]
    assert np.all(white["image"][white["mask"] == 0] == 255)


@pytest.mark.parametrize("style", ["synthetic", "real"])
def test_noise_background_is_textured(style: str) -> None:
    sample = ProceduralHands(style, image_size=SIZE, background="noise")[1]
    background = sample["image"][sample["mask"] == 0].astype(float)
    assert background.std(axis=0).mean() > 10


def test_real_skin_tones_vary_more_than_synthetic(synthetic: list[dict], real: list[dict]) -> None:
    def spread(samples: list[dict]) -> float:
        means = [s["image"][s["mask"] > 0].astype(float).mean(axis=0) for s in samples]
        return float(np.std(means, axis=0).mean())

    assert spread(real) > 1.5 * spread(synthetic)


def test_synthetic_shading_is_flat_and_real_is_noisy(synthetic: list[dict], real: list[dict]) -> None:
    kernel = np.ones((5, 5), np.uint8)
    synthetic_colours, real_colours = [], []
    for a, b in zip(synthetic, real):
        interior = cv2.erode(a["mask"], kernel) > 0
        if interior.sum() < 30:
            continue
        # the synthetic hand is one colour under a few quantised light levels
        synthetic_colours.append(len(np.unique(a["image"][interior], axis=0)))
        real_colours.append(len(np.unique(b["image"][interior], axis=0)))
    assert len(synthetic_colours) > BATCH // 2
    assert max(synthetic_colours) <= 6
    assert np.median(real_colours) > 5 * max(synthetic_colours)


def test_real_background_has_sensor_noise(synthetic: list[dict], real: list[dict]) -> None:
    def background_energy(sample: dict) -> float:
        outside = cv2.erode(255 - sample["mask"], np.ones((5, 5), np.uint8)) > 0
        laplacian = cv2.Laplacian(sample["image"].astype(np.float32), cv2.CV_32F)
        return float(laplacian[outside].var())

    assert all(background_energy(s) == 0.0 for s in synthetic)
    assert min(background_energy(s) for s in real) > 2.0


def test_real_edges_are_soft(synthetic: list[dict], real: list[dict]) -> None:
    # Synthetic pixels are either hand or exact green; in the real style the ring of pixels just
    # outside the silhouette blends with the skin, so it is less green than the background.
    square = np.ones((3, 3), np.uint8)
    checked = 0
    for a, b in zip(synthetic, real):
        ring = (cv2.dilate(a["mask"], square) > 0) & (a["mask"] == 0)
        far = cv2.distanceTransform(255 - a["mask"], cv2.DIST_L2, 5) > 4
        if ring.sum() < 10 or not far.any():
            continue
        image = b["image"].astype(float)
        greenness = image[..., 1] - image[..., 0]
        assert greenness[ring].mean() < greenness[far].mean()
        checked += 1
    assert checked > BATCH // 2


# --- loading --------------------------------------------------------------------------------------
def test_works_with_a_torch_dataloader() -> None:
    torch = pytest.importorskip("torch")
    loader = torch.utils.data.DataLoader(ProceduralHands("real", image_size=32, length=6), batch_size=3)
    batch = next(iter(loader))
    assert batch["image"].shape == (3, 32, 32, 3) and batch["image"].dtype == torch.uint8
    assert batch["keypoints_2d"].shape == (3, 21, 2)
    assert batch["index"].tolist() == [0, 1, 2]


# --- validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"style": "foo"}, "style"),
        ({"style": None}, "style"),
        ({"image_size": 8}, "image_size"),
        ({"image_size": 0}, "image_size"),
        ({"image_size": -64}, "image_size"),
        ({"image_size": 64.0}, "image_size"),
        ({"image_size": "64"}, "image_size"),
        ({"image_size": True}, "image_size"),
        ({"length": 0}, "length"),
        ({"length": -3}, "length"),
        ({"length": 2.5}, "length"),
        ({"seed": -1}, "seed"),
        ({"background": "beach"}, "background"),
        ({"hand_scale": (0.8, 0.3)}, "hand_scale"),
        ({"hand_scale": (0.0, 0.5)}, "hand_scale"),
        ({"hand_scale": (0.5,)}, "hand_scale"),
        ({"hand_scale": (0.2, 3.0)}, "hand_scale"),
        ({"hand_scale": "ab"}, "hand_scale"),
        ({"hand_scale": (float("nan"), 0.5)}, "hand_scale"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ProceduralHands(**kwargs)


def test_integer_arguments_follow_the_one_rule() -> None:
    dataset = ProceduralHands(image_size=np.int64(SIZE), length=np.uint8(3), seed=np.int32(2))
    assert (type(dataset.image_size), type(dataset.length), type(dataset.seed)) == (int, int, int)
    with pytest.raises(ValueError, match=r"^image_size must be an integer >= 16, got 8$"):
        ProceduralHands(image_size=8)
    with pytest.raises(ValueError, match=r"^seed must be a non-negative integer, got np.True_$"):
        ProceduralHands(seed=np.bool_(True))


def test_unknown_style_error_lists_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="synthetic") as info:
        ProceduralHands("foo")
    assert "real" in str(info.value)


def test_out_of_range_indices_raise_index_errors() -> None:
    dataset = ProceduralHands(image_size=SIZE, length=3)
    for index in (3, 100, -4):
        with pytest.raises(IndexError):
            dataset[index]
    with pytest.raises(TypeError):
        dataset[1.0]  # type: ignore[index]


def test_valid_numpy_arguments_are_accepted() -> None:
    dataset = ProceduralHands(image_size=np.int64(32), length=np.int32(2), seed=np.uint8(3), hand_scale=[0.4, 0.5])
    assert dataset.image_size == 32 and len(dataset) == 2
    assert dataset[np.int64(1)]["image"].shape == (32, 32, 3)
