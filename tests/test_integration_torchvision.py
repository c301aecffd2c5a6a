"""handaug.integrations.torchvision.SynthToReal in transforms.v2 pipelines: only images change (KeyPoints,
BoundingBoxes, Mask, 3D joints and labels come back as the same objects), hand masks, input types, per-call
probability, pools, DataLoader workers, bad input. Tiny random generators (no trained weights)."""

from __future__ import annotations

import pickle

import numpy as np
import PIL.Image
import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

import handaug
from handaug import save_generator
from handaug.data.procedural import ProceduralHands
from handaug.integrations.torchvision import SynthToReal
from handaug.registry import create_generator


def make_checkpoint(path, seed=0):
    torch.manual_seed(seed)
    return save_generator(create_generator("resnet", n_blocks=1, ngf=8), path, background=1.0, trained_with_masks=True)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("tv") / "ckpt")


def sample(i=0, size=48):
    """A torchvision sample of a procedural hand: every kind of target next to the image."""
    s = ProceduralHands("synthetic", image_size=size, length=8, seed=3)[i]
    mask = torch.from_numpy(s["mask"])
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return {
        "image": tv_tensors.Image(torch.from_numpy(s["image"]).permute(2, 0, 1)),
        "mask": tv_tensors.Mask(mask),
        "keypoints": tv_tensors.KeyPoints(torch.from_numpy(s["keypoints_2d"]), canvas_size=(size, size)),
        "joints_3d": torch.from_numpy(s["keypoints_3d"]),
        "boxes": tv_tensors.BoundingBoxes(
            torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()[None],
            format="XYXY",
            canvas_size=(size, size),
        ),
        "label": 4,
    }


def core(ckpt, images, masks=None):
    return handaug.SynthToReal(ckpt, precision="fp32")(images, mask=masks)


def geometric():
    return [v2.RandomAffine(degrees=40, translate=(0.1, 0.1), scale=(0.8, 1.2)), v2.RandomHorizontalFlip()]


# ----------------------------------------------------------------------------- targets untouched
def test_only_the_image_changes_and_the_background_stays(ckpt):
    s = sample()
    out = SynthToReal(ckpt, use_mask=True, precision="fp32")(s)
    for key in ("mask", "keypoints", "joints_3d", "boxes"):
        assert out[key] is s[key]  # the very same objects
    assert out["label"] == 4
    assert type(out["image"]) is tv_tensors.Image and out["image"].dtype == torch.uint8
    background = (s["mask"] == 0).expand_as(s["image"])
    assert torch.equal(out["image"][background], s["image"][background])
    assert (out["image"][~background] != s["image"][~background]).float().mean() > 0.5
    assert torch.equal(out["image"], core(ckpt, s["image"], s["mask"] > 0))


def test_after_geometric_transforms_targets_equal_the_geometric_only_path(ckpt):
    full = v2.Compose([*geometric(), SynthToReal(ckpt, use_mask=True, precision="fp32")])
    plain = v2.Compose(geometric())
    for i in range(4):
        s = sample(i)
        torch.manual_seed(i)
        a = full(s)
        torch.manual_seed(i)
        b = plain(s)
        assert not torch.equal(b["keypoints"], s["keypoints"])  # the warp moved them
        for key in ("keypoints", "boxes", "mask", "joints_3d"):
            assert torch.equal(a[key], b[key]) and type(a[key]) is type(b[key])
        assert torch.equal(a["joints_3d"], s["joints_3d"])
        background = (b["mask"] == 0).expand_as(b["image"])
        assert torch.equal(a["image"][background], b["image"][background])
        assert not torch.equal(a["image"], b["image"])


def test_without_use_mask_whole_images_are_translated(ckpt):
    s = sample()
    out = SynthToReal(ckpt, precision="fp32")(s)
    assert torch.equal(out["image"], core(ckpt, s["image"])) and out["mask"] is s["mask"]
    none = SynthToReal(ckpt, precision="fp32", use_mask=True, mask_mode="none")(s)
    assert torch.equal(none["image"], out["image"])


# ----------------------------------------------------------------------------- input types and mask forms
def test_plain_tensor_float_pil_and_video_inputs(ckpt):
    s = sample()
    image, mask = s["image"].as_subclass(torch.Tensor), s["mask"]
    t = SynthToReal(ckpt, use_mask=True, precision="fp32")
    expected = core(ckpt, image, mask > 0)
    plain, plain_mask = t(image, mask)  # no tv Image: the first plain tensor is the image
    assert type(plain) is torch.Tensor and torch.equal(plain, expected) and plain_mask is mask
    as_float = t(tv_tensors.Image(image.float() / 255), mask)[0]
    assert as_float.dtype == torch.float32
    background = (mask == 0).expand_as(image)
    assert torch.equal(as_float[background], image[background].float() / 255)
    pil = t(PIL.Image.fromarray(image.permute(1, 2, 0).numpy()), mask)[0]
    assert isinstance(pil, PIL.Image.Image)
    assert torch.equal(torch.from_numpy(np.asarray(pil)).permute(2, 0, 1), expected)
    video = tv_tensors.Video(torch.stack([image, image]))  # (T, 3, H, W): every frame
    out = t(video, mask)[0]
    assert type(out) is tv_tensors.Video
    assert torch.equal(out, core(ckpt, video.as_subclass(torch.Tensor), torch.stack([mask, mask]) > 0))


def test_batched_image_with_per_image_and_instance_masks(ckpt):
    samples = [sample(i) for i in range(3)]
    images = tv_tensors.Image(torch.stack([s["image"] for s in samples]))
    masks = torch.stack([s["mask"] for s in samples])
    t = SynthToReal(ckpt, use_mask=True, precision="fp32")
    expected = core(ckpt, images.as_subclass(torch.Tensor), masks > 0)
    assert torch.equal(t(images, tv_tensors.Mask(masks))[0], expected)  # (B, H, W)
    # (B, K, H, W) instance masks: their union is the hand
    halves = torch.stack([masks * (torch.arange(48) < 24), masks * (torch.arange(48) >= 24)], dim=1)
    assert torch.equal(t(images, tv_tensors.Mask(halves))[0], expected)
    # int64 label masks (torchvision's usual segmentation type): non-zero is hand
    assert torch.equal(t(images, tv_tensors.Mask(masks.long() * 2))[0], expected)


TINY_SIZES = [(1, 1), (2, 2), (3, 64), (1, 1000), (64, 3)]


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("size", TINY_SIZES)
def test_tiny_images_keep_shape_dtype_device_and_background(ckpt, size, dtype, with_mask):
    image = torch.randint(0, 256, (3, *size), dtype=torch.uint8)
    image = image if dtype == torch.uint8 else image.to(dtype) / 255
    mask = (torch.arange(size[0] * size[1]) % 2 == 0).reshape(size)  # pixel (0, 0) is hand
    out = SynthToReal(ckpt, p=1.0, use_mask=with_mask)({"image": tv_tensors.Image(image), "mask": tv_tensors.Mask(mask)})
    result = out["image"]
    assert isinstance(result, tv_tensors.Image) and result.shape == image.shape and result.dtype == image.dtype
    assert result.device == image.device
    if with_mask:
        outside = ~mask.expand_as(image)
        assert torch.equal(result.as_subclass(torch.Tensor)[outside], image[outside])


def test_numpy_probability_is_accepted(ckpt):
    assert SynthToReal(ckpt, p=np.float32(0.25)).p == 0.25


# ----------------------------------------------------------------------------- probability and pools
def test_p_decides_per_call_from_torch_global_rng(ckpt):
    s = sample()
    out = SynthToReal(ckpt, p=0.0)(s)
    assert out["image"] is s["image"]

    def run():
        t = SynthToReal(ckpt, p=0.5, precision="fp32")
        torch.manual_seed(11)
        return [t(s)["image"] is not s["image"] for _ in range(16)]

    first = run()
    assert 0 < sum(first) < 16 and first == run()


def test_pool_draws_one_generator_per_call(ckpt, tmp_path):
    other = make_checkpoint(tmp_path / "other", seed=5)
    s = sample()
    t = SynthToReal([ckpt, other], precision="fp32")
    torch.manual_seed(0)
    outs = [t(s["image"]) for _ in range(12)]
    a, b = core(ckpt, s["image"]), core(other, s["image"])
    from_a = [torch.equal(o, a) for o in outs]
    from_b = [torch.equal(o, b) for o in outs]
    assert all(a != b for a, b in zip(from_a, from_b)) and 0 < sum(from_a) < 12


def test_pickles_without_weights(ckpt):
    t = SynthToReal(ckpt, use_mask=True, precision="fp32")
    s = sample()
    before = t(s)["image"]
    blob = pickle.dumps(t)
    assert len(blob) < 20_000  # the tiny generator's weights alone are 131 kB
    assert torch.equal(pickle.loads(blob)(s)["image"], before)


# ----------------------------------------------------------------------------- DataLoader workers
class AugmentedHands(Dataset):
    """A user's dataset: a v2 pipeline per sample, seeded by index so that runs can be compared."""

    def __init__(self, transform):
        self.transform = transform

    def __len__(self):
        return 6

    def __getitem__(self, i):
        torch.manual_seed(i)
        out = self.transform(sample(i, size=32))
        return out["image"], out["keypoints"].as_subclass(torch.Tensor), out["mask"], out["joints_3d"], out["label"]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_with_two_workers(ckpt, context):
    dataset = AugmentedHands(v2.Compose([*geometric(), SynthToReal(ckpt, use_mask=True, precision="fp32")]))
    plain = AugmentedHands(v2.Compose(geometric()))
    expected = [dataset[i] for i in range(len(dataset))]
    loader = DataLoader(dataset, batch_size=3, num_workers=2, multiprocessing_context=context)
    images, keypoints, masks, joints, labels = (torch.cat(parts) for parts in zip(*loader))
    assert torch.equal(images, torch.stack([e[0] for e in expected]))
    geometric_only = [plain[i] for i in range(len(plain))]
    assert torch.equal(keypoints, torch.stack([g[1] for g in geometric_only]))
    assert torch.equal(masks, torch.stack([g[2] for g in geometric_only]))
    assert torch.equal(joints, torch.stack([sample(i, size=32)["joints_3d"] for i in range(6)]))
    assert labels.tolist() == [4] * 6


# ----------------------------------------------------------------------------- bad input
def test_bad_arguments_and_inputs_name_what_is_wrong(ckpt, tmp_path):
    with pytest.raises(ValueError, match="p must be a probability"):
        SynthToReal(ckpt, p=-1)
    with pytest.raises(ValueError, match="use_mask must be True or False"):
        SynthToReal(ckpt, use_mask="yes")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SynthToReal(tmp_path / "missing")
    s = sample()
    t = SynthToReal(ckpt, use_mask=True)
    with pytest.raises(ValueError, match="use_mask=True needs exactly one tv_tensors.Mask in the sample, found 0"):
        t(s["image"])
    with pytest.raises(ValueError, match="found 0"):  # whatever p decides: a missing mask is not a matter of chance
        SynthToReal(ckpt, p=0.0, use_mask=True)(s["image"])
    with pytest.raises(ValueError, match="found 2"):
        t(s["image"], s["mask"], s["mask"])
    with pytest.raises(ValueError, match="mask of shape .* does not match the image size 48×48"):
        t(s["image"], tv_tensors.Mask(s["mask"][:32]))
    with pytest.raises(ValueError, match=r"3 \(RGB\) channels"):
        SynthToReal(ckpt)(tv_tensors.Image(s["image"][:1]))
    with pytest.raises(ValueError, match=r"images of dtype torch.float32 must have values in \[0, 1\]"):
        SynthToReal(ckpt)(tv_tensors.Image(s["image"].float()))
    with pytest.raises(ValueError, match="mode 'RGB'"):
        SynthToReal(ckpt)(PIL.Image.new("L", (8, 8)))
