"""SynthToReal: shapes and dtypes, probability, masks, pools, hand crops, precision, workers, bad input."""

from __future__ import annotations

import json
import pickle
import threading

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from handaug import SynthToReal, save_generator
from handaug.checkpoint_config import CONFIG_FILE
from handaug.data.procedural import ProceduralHands
from handaug.precision import BF16_TOLERANCE, cpu_supports_bf16
from handaug.registry import create_generator


def make_checkpoint(path, seed=0, background=1.0):
    torch.manual_seed(seed)
    g = create_generator("resnet", n_blocks=1, ngf=8)
    for p in g.parameters():
        p.data.add_(torch.randn_like(p) * 0.1)
    return save_generator(g, path, background=background, trained_with_masks=background is not None), g.eval()


@pytest.fixture
def ckpt(tmp_path):
    return make_checkpoint(tmp_path / "ckpt")


def hands(n=4, size=64, seed=0):
    data = ProceduralHands("synthetic", image_size=size, length=n, seed=seed)
    images = torch.stack([torch.from_numpy(data[i]["image"]).permute(2, 0, 1) for i in range(n)])
    masks = torch.stack([torch.from_numpy(data[i]["mask"] > 0) for i in range(n)])
    return images, masks  # (n, 3, H, W) uint8, (n, H, W) bool


def reference(generator, images):
    """Plain eager translation of uint8 images, the definition SynthToReal must match in fp32."""
    with torch.no_grad():
        y = generator(images.float() / 127.5 - 1)
    return ((y + 1) * 0.5).clamp(0, 1).mul(255).round().to(torch.uint8)


# ----------------------------------------------------------------------------- shapes and values
def test_uint8_batch_matches_plain_generator_exactly(ckpt):
    path, generator = ckpt
    images, _ = hands()
    out = SynthToReal(path, precision="fp32")(images)
    assert out.shape == images.shape and out.dtype == torch.uint8 and out.device == images.device
    assert torch.equal(out, reference(generator, images))


def test_cpu_chunks_match_one_call_to_rounding(ckpt):
    # Convolutions may pick another algorithm for another batch size, so fp32 results can differ
    # in the last bits and flip a rounding: at most 1 uint8 level, on a tiny share of pixels.
    path, generator = ckpt
    images, masks = hands(n=5)
    chunked = SynthToReal(path, precision="fp32")
    chunked.CPU_CHUNK_PIXELS = 2 * 64 * 64  # batches of 2, 2 and 1
    diff = (chunked(images).int() - reference(generator, images).int()).abs()
    assert int(diff.max()) <= 1 and diff.float().mean() < 0.01
    out = chunked(images, mask=masks)
    background = ~masks.unsqueeze(1).expand_as(images)
    assert torch.equal(out[background], images[background])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_float_images_keep_dtype_and_range(ckpt, dtype):
    images = torch.rand(2, 3, 32, 40).to(dtype)
    out = SynthToReal(ckpt[0], precision="fp32")(images)
    assert out.dtype == dtype and out.shape == images.shape
    assert out.min() >= 0 and out.max() <= 1 and not torch.equal(out, images)


@pytest.mark.parametrize("size", [(33, 47), (5, 6), (64, 30)])
def test_any_size_is_padded_inside_and_cropped_back(ckpt, size):
    images = torch.randint(0, 256, (2, 3, *size), dtype=torch.uint8)
    assert SynthToReal(ckpt[0])(images).shape == images.shape


TINY_SIZES = [(1, 1), (2, 2), (3, 64), (1, 1000), (64, 3)]


def stripes(size):
    """A mask with every other pixel (in reading order) on: pixel (0, 0) is hand, (0, 1) is not."""
    h, w = size
    return (torch.arange(h * w) % 2 == 0).reshape(h, w)


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("size", TINY_SIZES)
def test_tiny_images_keep_shape_dtype_device_and_background(ckpt, size, dtype, with_mask):
    images = torch.randint(0, 256, (2, 3, *size), dtype=torch.uint8)
    images = images if dtype == torch.uint8 else images.to(dtype) / 255
    mask = stripes(size).expand(2, *size) if with_mask else None
    out = SynthToReal(ckpt[0], p=1.0, precision="fp32")(images, mask=mask)
    assert out.shape == images.shape and out.dtype == images.dtype and out.device == images.device
    if with_mask:
        outside = ~mask.unsqueeze(1).expand_as(images)
        assert torch.equal(out[outside], images[outside])


def test_a_tiny_image_is_translated_as_the_corner_of_its_edge_repeated_padding(ckpt):
    # The documented behaviour: a 1×1 image is padded to min_side × min_side by repeating it.
    s2r = SynthToReal(ckpt[0], precision="fp32")
    assert s2r.min_side == 16
    pixel = torch.randint(0, 256, (1, 3, 1, 1), dtype=torch.uint8)
    assert torch.equal(s2r(pixel), s2r(pixel.expand(1, 3, 16, 16).contiguous())[..., :1, :1])


def test_unbatched_image_and_mask(ckpt):
    images, masks = hands(1)
    s2r = SynthToReal(ckpt[0], precision="fp32")
    out = s2r(images[0], mask=masks[0])
    assert out.shape == (3, 64, 64)
    assert torch.equal(out, s2r(images, mask=masks)[0])


def test_output_is_an_ordinary_tensor(ckpt):
    out = SynthToReal(ckpt[0])(torch.rand(1, 3, 16, 16))
    out.mul_(0.5)  # in-place edits must be allowed (no inference tensor leaks out)
    assert not out.is_inference()


# ----------------------------------------------------------------------------- probability
def test_p_zero_returns_every_image_bit_for_bit(ckpt):
    images, _ = hands()
    out = SynthToReal(ckpt[0], p=0.0)(images)
    assert torch.equal(out, images)


def test_p_chooses_per_image_reproducibly(ckpt):
    images, _ = hands(16, size=32)
    first = SynthToReal(ckpt[0], p=0.5, seed=3)(images)
    again = SynthToReal(ckpt[0], p=0.5, seed=3)(images)
    other = SynthToReal(ckpt[0], p=0.5, seed=4)(images)
    changed = (first != images).flatten(1).any(1)
    assert 0 < changed.sum() < 16
    assert torch.equal(first, again) and not torch.equal(first, other)
    full = SynthToReal(ckpt[0], p=1.0)(images)
    assert torch.equal(first[changed], full[changed])  # chosen images are translated as a whole batch would be
    assert torch.equal(first[~changed], images[~changed])  # the others are untouched


def test_user_generator_drives_the_choice(ckpt):
    images, _ = hands(8, size=32)
    a = SynthToReal(ckpt[0], p=0.5, generator=torch.Generator().manual_seed(1))(images)
    b = SynthToReal(ckpt[0], p=0.5, generator=torch.Generator().manual_seed(1))(images)
    assert torch.equal(a, b)


# ----------------------------------------------------------------------------- masks
@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.uint8, torch.float32])
def test_composite_keeps_background_bit_for_bit(ckpt, mask_dtype):
    images, masks = hands()
    mask = masks.to(mask_dtype)
    if mask_dtype == torch.uint8:
        mask = mask * 255  # 0/255 masks as read from PNG files
    out = SynthToReal(ckpt[0])(images, mask=mask)
    outside = ~masks.unsqueeze(1).expand_as(images)
    assert torch.equal(out[outside], images[outside])
    assert (out[~outside] != images[~outside]).float().mean() > 0.5


def test_composite_float_images_and_channel_mask(ckpt):
    images, masks = hands(2)
    images = images.float() / 255
    out = SynthToReal(ckpt[0])(images, mask=masks.unsqueeze(1))
    outside = ~masks.unsqueeze(1).expand_as(images)
    assert torch.equal(out[outside], images[outside])


def test_soft_mask_blends(ckpt):
    images, masks = hands(1)
    s2r = SynthToReal(ckpt[0], precision="fp32")
    full = s2r(images, mask=masks)
    half = s2r(images, mask=masks.float() * 0.5)
    inside = masks.unsqueeze(1).expand_as(images)
    expected = torch.lerp(images.float(), full.float(), 0.5).round().to(torch.uint8)
    assert torch.equal(half[inside], expected[inside])


def test_mask_mode_none_translates_everything(ckpt):
    images, masks = hands()
    out = SynthToReal(ckpt[0], mask_mode="none", precision="fp32")(images, mask=masks)
    assert torch.equal(out, SynthToReal(ckpt[0], precision="fp32")(images))


def test_trained_background_is_fed_to_the_generator(ckpt):
    # The same hand on two different backgrounds translates to the same hand: the generator sees
    # the white background it was trained with, whatever the photo's background is.
    images, masks = hands(1)
    other = images.clone()
    outside = ~masks.unsqueeze(1).expand_as(images)
    other[outside] = torch.randint(0, 256, (int(outside.sum()),), dtype=torch.uint8)
    s2r = SynthToReal(ckpt[0], precision="fp32")
    a, b = s2r(images, mask=masks), s2r(other, mask=masks)
    assert torch.equal(a[~outside], b[~outside])


def test_checkpoint_without_background_keeps_the_photo_background(tmp_path):
    path, generator = make_checkpoint(tmp_path / "nobg", background=None)
    images, masks = hands(2)
    out = SynthToReal(path, precision="fp32")(images, mask=masks)
    inside = masks.unsqueeze(1).expand_as(images)
    assert torch.equal(out[inside], reference(generator, images)[inside])


# ----------------------------------------------------------------------------- pools
def test_pool_draws_one_generator_per_image(tmp_path):
    (a, ga), (b, gb) = make_checkpoint(tmp_path / "a", seed=1), make_checkpoint(tmp_path / "b", seed=2)
    images, _ = hands(12, size=32)
    s2r = SynthToReal([a, b], seed=0, precision="fp32")
    out = s2r(images)
    from_a = (out == reference(ga, images)).flatten(1).all(1)
    from_b = (out == reference(gb, images)).flatten(1).all(1)
    assert torch.all(from_a ^ from_b)
    assert 0 < from_a.sum() < 12


# ----------------------------------------------------------------------------- hand crops
def test_hand_crop_changes_only_the_hand(ckpt):
    images, masks = hands(6, size=96)
    out = SynthToReal(ckpt[0], hand_crop=True)(images, mask=masks)
    outside = ~masks.unsqueeze(1).expand_as(images)
    assert torch.equal(out[outside], images[outside])
    assert (out[~outside] != images[~outside]).float().mean() > 0.5


def test_hand_crop_covering_the_frame_equals_full_frame(ckpt):
    images, masks = hands(3, size=48)
    full = SynthToReal(ckpt[0], precision="fp32")(images, mask=masks)
    crop = SynthToReal(ckpt[0], precision="fp32", hand_crop=True, crop_margin=4.0)(images, mask=masks)
    assert torch.equal(full, crop)


def test_hand_crop_with_an_empty_mask_changes_nothing(ckpt):
    images, masks = hands(2)
    masks[1] = False
    out = SynthToReal(ckpt[0], hand_crop=True)(images, mask=masks)
    assert torch.equal(out[1], images[1]) and not torch.equal(out[0], images[0])
    assert torch.equal(SynthToReal(ckpt[0], hand_crop=True)(images, mask=torch.zeros_like(masks)), images)


def test_hand_crop_with_a_hand_of_one_or_two_pixels_translates_the_batch(ckpt):
    # A stray mask pixel, and a hand pushed out of frame by an affine (2×2 px in the corner),
    # next to ordinary hands: the whole batch used to fail with a torch error.
    images, masks = hands(4)
    masks[1] = False
    masks[1, 30, 30] = True
    masks[2] = False
    masks[2, -2:, -2:] = True
    s2r = SynthToReal(ckpt[0], precision="fp32", hand_crop=True)
    out = s2r(images, mask=masks)
    outside = ~masks.unsqueeze(1).expand_as(images)
    assert torch.equal(out[outside], images[outside])
    assert not torch.equal(out[1], images[1]) and not torch.equal(out[2], images[2])
    # The ordinary hands come out as they do without the tiny ones.
    assert torch.equal(out[[0, 3]], s2r(images[[0, 3]], mask=masks[[0, 3]]))


@pytest.mark.parametrize("size", TINY_SIZES)
def test_hand_crop_on_tiny_images(ckpt, size):
    images = torch.randint(0, 256, (2, 3, *size), dtype=torch.uint8)
    mask = stripes(size).expand(2, *size)
    out = SynthToReal(ckpt[0], hand_crop=True)(images, mask=mask)
    outside = ~mask.unsqueeze(1).expand_as(images)
    assert out.shape == images.shape and torch.equal(out[outside], images[outside])


# ----------------------------------------------------------------------------- precision
def test_bf16_is_within_the_documented_tolerance_of_fp32(ckpt, tmp_path):
    images, _ = hands(4)
    torch.manual_seed(0)  # a generator with PyTorch's default init, not the test fixture's noisy weights
    path = save_generator(create_generator("resnet", n_blocks=4, ngf=32), tmp_path / "default_init")
    exact = SynthToReal(path, precision="fp32")(images).float() / 255
    if cpu_supports_bf16():
        fast = SynthToReal(path, precision="bf16")(images).float() / 255
        diff = (fast - exact).abs()
        assert diff.mean() <= BF16_TOLERANCE["mean"] and diff.max() <= BF16_TOLERANCE["max"]
    else:
        with pytest.raises(ValueError, match="precision='bf16' is not supported"):
            SynthToReal(ckpt[0], precision="bf16")(images)
    with pytest.raises(ValueError, match="fp16"):
        SynthToReal(ckpt[0], precision="fp16")(images)


# ----------------------------------------------------------------------------- processes and threads
def test_pickles_without_weights_and_translates_the_same(ckpt):
    images, _ = hands(2)
    s2r = SynthToReal(ckpt[0], precision="fp32")
    before = s2r(images)  # loads the generator
    blob = pickle.dumps(s2r)
    assert len(blob) < 10_000  # paths and options, no weights
    assert torch.equal(pickle.loads(blob)(images), before)


class TranslatedHands(Dataset):
    """What a user's dataset looks like: the transform applied per sample inside __getitem__."""

    def __init__(self, transform):
        self.hands = ProceduralHands("synthetic", image_size=32, length=8, seed=5)
        self.transform = transform

    def __len__(self):
        return len(self.hands)

    def __getitem__(self, i):
        sample = self.hands[i]
        image = torch.from_numpy(sample["image"]).permute(2, 0, 1)
        mask = torch.from_numpy(sample["mask"] > 0)
        return self.transform(image, mask=mask), torch.from_numpy(sample["keypoints_2d"])


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_with_two_workers(ckpt, context):
    dataset = TranslatedHands(SynthToReal(ckpt[0], precision="fp32"))
    expected = [dataset[i] for i in range(len(dataset))]
    loader = DataLoader(dataset, batch_size=4, num_workers=2, multiprocessing_context=context)
    images = torch.cat([b[0] for b in loader])
    keypoints = torch.cat([b[1] for b in loader])
    assert torch.equal(images, torch.stack([e[0] for e in expected]))
    assert torch.equal(keypoints, torch.stack([e[1] for e in expected]))


def test_seeded_workers_do_not_repeat_each_other(ckpt):
    dataset = TranslatedHands(SynthToReal(ckpt[0], p=0.5, seed=0))
    dataset.hands = [dataset.hands[0]] * 16  # the same image everywhere: only the choice differs
    loader = DataLoader(dataset, batch_size=8, num_workers=2, multiprocessing_context="fork")
    per_worker = [b[0].flatten(1).float().sum(1) for b in loader]
    assert not torch.equal(per_worker[0], per_worker[1])


def test_concurrent_threads_get_the_serial_results(ckpt):
    s2r = SynthToReal(ckpt[0], precision="fp32")
    batches = [hands(2, size=32, seed=s)[0] for s in range(6)]
    serial = [s2r(b) for b in batches]
    results = [None] * len(batches)

    def work(i):
        results[i] = s2r(batches[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(a, b) for a, b in zip(serial, results))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "images, message",
    [
        (torch.zeros(2, 4, 8, 8), "3 \\(RGB\\) channels"),
        (torch.zeros(8, 8), "2-D tensor"),
        (torch.zeros(1, 1, 3, 8, 8), "5-D tensor"),
        (torch.full((1, 3, 8, 8), 255.0), "values in \\[0, 1\\]"),
        (torch.full((1, 3, 8, 8), -0.1), "values in \\[0, 1\\]"),
        (torch.full((1, 3, 8, 8), float("nan")), "NaN"),
        (torch.full((1, 3, 8, 8), float("inf")), "NaN or infinite"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.int32), "dtype torch.int32"),
        (np.zeros((8, 8, 3), np.uint8), "torch.Tensor"),
    ],
)
def test_bad_images_name_the_argument(ckpt, images, message):
    with pytest.raises(ValueError, match=message) as err:
        SynthToReal(ckpt[0])(images)
    assert "images" in str(err.value)


def test_small_float_overshoot_is_clamped_not_rejected(ckpt):
    images = torch.rand(1, 3, 8, 8)
    images[0, 0, 0, 0] = 1.0 + 1e-4
    assert SynthToReal(ckpt[0])(images).max() <= 1


@pytest.mark.parametrize(
    "mask, message",
    [
        (torch.ones(2, 1, 8, 9, dtype=torch.bool), "does not match the images"),
        (torch.ones(3, 8, 8, dtype=torch.bool), "does not match the images"),
        (torch.ones(2, 2, 8, 8, dtype=torch.bool), "shape"),
        (torch.ones(2, 8, 8, dtype=torch.int64), "dtype torch.int64"),
        (torch.full((2, 8, 8), 2.0), "values in \\[0, 1\\]"),
        (torch.full((2, 8, 8), float("nan")), "NaN"),
    ],
)
def test_bad_masks_name_the_argument(ckpt, mask, message):
    with pytest.raises(ValueError, match=message) as err:
        SynthToReal(ckpt[0])(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), mask=mask)
    assert "mask" in str(err.value)


def test_bad_constructor_arguments(ckpt, tmp_path):
    with pytest.raises(ValueError, match="p must be"):
        SynthToReal(ckpt[0], p=1.5)
    with pytest.raises(ValueError, match="mask_mode"):
        SynthToReal(ckpt[0], mask_mode="alpha")
    with pytest.raises(ValueError, match="precision"):
        SynthToReal(ckpt[0], precision="int8")
    with pytest.raises(ValueError, match="ckpt must be"):
        SynthToReal([])
    with pytest.raises(ValueError, match="seed or generator"):
        SynthToReal(ckpt[0], seed=1, generator=torch.Generator())


BAD_ARGUMENTS = [
    ({"seed": "abc"}, r"seed must be an integer \(or None\), got 'abc'"),
    ({"seed": 1.5}, r"seed must be an integer \(or None\), got 1.5"),
    ({"seed": True}, r"seed must be an integer"),
    ({"p": True}, r"p must be a probability in \[0, 1\], got True"),
    ({"p": np.bool_(True)}, r"p must be a probability"),
    ({"p": float("nan")}, r"p must be a probability in \[0, 1\], got nan"),
    ({"p": np.float32(1.5)}, r"p must be a probability"),
    ({"p": "0.5"}, r"p must be a probability"),
    ({"crop_margin": float("nan")}, r"crop_margin must be a number in \[0, 4\], got nan"),
    ({"crop_margin": np.float64(-0.1)}, r"crop_margin must be a number in \[0, 4\]"),
    ({"crop_margin": True}, r"crop_margin must be a number"),
    ({"hand_crop": "yes"}, r"hand_crop must be True or False, got 'yes'"),
    ({"compile": 1}, r"compile must be True, False or None \(compile on CUDA\), got 1"),
    ({"check_values": "yes"}, r"check_values must be True or False, got .yes."),
    ({"device": "meta"}, r"device='meta' holds no data"),
    ({"device": "cuda"}, r"device='cuda' is not available: this process sees 0 CUDA device"),
    ({"device": "cuda:7"}, r"device='cuda:7' is not available"),
    ({"device": "tpu9"}, r"device must be a torch device such as 'cpu' or 'cuda:0' \(or None\), got 'tpu9'"),
    ({"device": 3.5}, r"device must be a torch device"),
]


@pytest.mark.parametrize(
    ("kwargs", "message"), [pytest.param(k, m, id=",".join(f"{n}={v!r}" for n, v in k.items())) for k, m in BAD_ARGUMENTS]
)
def test_bad_arguments_are_refused_at_construction_naming_them(ckpt, kwargs, message):
    if "cuda" in str(kwargs.get("device")) and torch.cuda.is_available():
        pytest.skip("this case is about a process without CUDA")  # tests run with CUDA_VISIBLE_DEVICES=""
    with pytest.raises(ValueError, match=message):
        SynthToReal(ckpt[0], **kwargs)


def test_numpy_numbers_are_accepted_like_python_ones(ckpt):
    images, _ = hands(8, size=32)
    for p in (np.float32(0.5), np.float64(0.5)):
        python = SynthToReal(ckpt[0], p=0.5, seed=3, crop_margin=0.25)
        numpy = SynthToReal(ckpt[0], p=p, seed=np.int64(3), crop_margin=np.float32(0.25))
        assert type(numpy.p) is float and numpy.p == 0.5 and type(numpy.seed) is int and numpy.crop_margin == 0.25
        first, second = numpy(images), numpy(images)  # the same draws as the Python-number transform
        assert torch.equal(first, python(images)) and torch.equal(second, python(images))
        assert not torch.equal(first, images) and not torch.equal(first, second)
    assert SynthToReal(ckpt[0], p=np.int64(1), hand_crop=np.bool_(True)).hand_crop is True


def test_missing_corrupt_or_wrong_checkpoints(ckpt, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SynthToReal(tmp_path / "missing")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a readable safetensors"):
        SynthToReal(corrupt)
    config = json.loads((ckpt[0] / CONFIG_FILE).read_text())
    config["network"]["kind"] = "discriminator"
    (ckpt[0] / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="expected a generator"):
        SynthToReal(ckpt[0])
    path, _ = make_checkpoint(tmp_path / "r2s")
    config = json.loads((path / CONFIG_FILE).read_text())
    config["direction"] = "real_to_synthetic"
    (path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="expected synthetic_to_real"):
        SynthToReal(path)
