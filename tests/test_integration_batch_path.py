"""The batched GPU path (handaug.integrations.batch, .lightning), run on the CPU: deferred adapters
draw the same decisions as the per-sample path, translate_batch gives the same images in one call,
and keypoints, masks and every other target stay untouched. Tiny random generators."""

from __future__ import annotations

import subprocess
import sys

import albumentations as A
import numpy as np
import pytest
import torch
from tiny import tiny_pool
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision import tv_tensors
from torchvision.transforms import v2

import handaug
from handaug.data.procedural import ProceduralHands
from handaug.integrations import albumentations as albu_adapter
from handaug.integrations import kornia as kornia_adapter
from handaug.integrations import torchvision as tv_adapter
from handaug.integrations.batch import translate_batch

KEYPOINTS = A.KeypointParams(format="xy", remove_invisible=False)
N = 8


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Two different tiny generators: a pool, so that decisions carry a member."""
    return tiny_pool(tmp_path_factory.mktemp("batch"))


def assert_same_translation(out, expected):
    """The batched and per-sample paths run the generator at other batch sizes, whose convolutions may
    round differently: fp32 agrees to 1e-6, which can put a rare uint8 pixel on the neighbouring level."""
    assert out.dtype == expected.dtype and out.shape == expected.shape
    if out.dtype == torch.uint8:
        diff = (out.int() - expected.int()).abs()
        assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 1e-3
    else:
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def hand(i, size=48):
    s = ProceduralHands("synthetic", image_size=size, length=N, seed=1)[i]
    keypoints = np.concatenate([s["keypoints_2d"], s["keypoints_3d"]], axis=1)  # 2D + 3D extra columns
    return s["image"], s["mask"], keypoints


# ----------------------------------------------------------------------------- albumentations
def darken(image, **kwargs):
    """A photometric change that draws no random number (so moving it does not shift other draws)."""
    return (image * 0.75).astype(image.dtype)


def albu_pipeline(pool, defer, photometric=None):
    """Geometry, then SynthToReal; ``photometric="before"``/``"after"`` puts ``darken`` before or after it."""
    s2r = albu_adapter.SynthToReal(pool, p=0.5, precision="fp32", hand_mask_key="mask", defer=defer)
    middle = {None: [s2r], "before": [A.Lambda(image=darken, p=1.0), s2r], "after": [s2r, A.Lambda(image=darken, p=1.0)]}
    return A.Compose([A.Affine(rotate=(-40, 40), scale=(0.8, 1.2), p=1.0), A.HorizontalFlip(p=0.5), *middle[photometric]],
                     keypoint_params=KEYPOINTS)  # fmt: skip


def run_albu(pipeline, dtype=np.uint8):
    outs = []
    for i in range(N):
        image, mask, keypoints = hand(i)
        if dtype == np.float32:
            image = image.astype(np.float32) / 255
        pipeline.set_random_seed(i)
        outs.append(pipeline(image=image, mask=mask, keypoints=keypoints))
    return outs


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_albumentations_deferred_batch_equals_the_per_sample_path(pool, dtype):
    per_sample = run_albu(albu_pipeline(pool, defer=False), dtype)
    deferred_pipeline = albu_pipeline(pool, defer=True)
    deferred = run_albu(deferred_pipeline, dtype)
    decisions = default_collate([d["synth_to_real"] for d in deferred])
    assert decisions.shape == (N,) and decisions.dtype == torch.int64
    assert {-1, 0, 1} <= set(decisions.tolist())  # the seeds give every kind of decision
    for p, d in zip(per_sample, deferred):
        assert np.array_equal(p["keypoints"], d["keypoints"])  # 2D and 3D columns, bit for bit
        assert np.array_equal(p["mask"], d["mask"])
    images = torch.stack([torch.from_numpy(d["image"]) for d in deferred])
    masks = torch.stack([torch.from_numpy(d["mask"]) for d in deferred])
    out = translate_batch(deferred_pipeline.transforms[-1], images, decisions, masks, channels="last")
    expected = torch.stack([torch.from_numpy(p["image"]) for p in per_sample])
    assert out.dtype == images.dtype and out.shape == images.shape
    not_chosen = decisions == -1
    assert torch.equal(out[not_chosen], images[not_chosen])  # bit for bit
    assert_same_translation(out, expected)
    # The per-sample path translated exactly the images the decisions name, and only inside the hand.
    changed = (expected != images).flatten(1).any(1)
    assert torch.equal(changed, ~not_chosen)
    assert torch.equal(out[masks[..., None].expand_as(out) == 0], images[masks[..., None].expand_as(out) == 0])


def test_albumentations_defer_moves_the_translation_after_later_transforms_as_documented(pool):
    """With defer, a photometric transform placed after SynthToReal runs before the translation: the
    batched result is exactly the per-sample pipeline with that transform in front of SynthToReal."""
    moved = run_albu(albu_pipeline(pool, defer=False, photometric="before"))
    deferred_pipeline = albu_pipeline(pool, defer=True, photometric="after")
    deferred = run_albu(deferred_pipeline)
    images = torch.stack([torch.from_numpy(d["image"]) for d in deferred])
    masks = torch.stack([torch.from_numpy(d["mask"]) for d in deferred])
    decisions = default_collate([d["synth_to_real"] for d in deferred])
    assert (decisions >= 0).any()
    out = translate_batch(deferred_pipeline.transforms[2], images, decisions, masks, channels="last")
    assert_same_translation(out, torch.stack([torch.from_numpy(m["image"]) for m in moved]))
    in_order = torch.stack([torch.from_numpy(o["image"]) for o in run_albu(albu_pipeline(pool, False, "after"))])
    assert (out.int() - in_order.int()).abs().max() > 1  # which is not the per-sample pipeline in its written order


def test_albumentations_defer_records_one_decision_per_image_of_a_stack(pool):
    t = albu_adapter.SynthToReal(pool, precision="fp32", defer=True)
    stack = np.stack([hand(i)[0] for i in range(3)])
    out = A.Compose([t], seed=0)(images=stack)
    assert out["synth_to_real"].shape == (3,) and set(out["synth_to_real"].tolist()) <= {0, 1}
    assert np.array_equal(out["images"], stack)
    expected = A.Compose([albu_adapter.SynthToReal(pool, precision="fp32")], seed=0)(images=stack)["images"]
    got = translate_batch(t, torch.from_numpy(stack)[None], torch.from_numpy(out["synth_to_real"])[None], channels="last")
    assert_same_translation(got[0], torch.from_numpy(expected))
    skipped = A.Compose([albu_adapter.SynthToReal(pool, p=0.0, defer=True)])(images=stack)
    assert skipped["synth_to_real"].tolist() == [-1, -1, -1]
    assert A.Compose([albu_adapter.SynthToReal(pool, p=0.0, defer=True)])(image=stack[0])["synth_to_real"] == -1


def test_albumentations_defer_keeps_the_checks_and_serialises(pool):
    t = albu_adapter.SynthToReal(pool, hand_mask_key="mask", defer=True, decision_key="s2r")
    image, mask, _ = hand(0)
    with pytest.raises(ValueError, match="hand_mask_key='mask', but the call has no 'mask'"):
        A.Compose([t])(image=image)
    with pytest.raises(ValueError, match=r"image of dtype torch.float32 must have values in \[0, 1\]"):
        A.Compose([t])(image=image.astype(np.float32), mask=mask)
    with pytest.raises(ValueError, match="the data already has 's2r'"):
        t(image=image, mask=mask, s2r=0)
    assert "s2r" in A.Compose([t])(image=image, mask=mask)
    restored = A.from_dict(A.to_dict(A.Compose([t])))
    assert restored.transforms[0].defer is True and restored.transforms[0].decision_key == "s2r"


# ----------------------------------------------------------------------------- torchvision
def tv_sample(i, size=48):
    image, mask, keypoints = hand(i, size)
    return {
        "image": tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1)),
        "mask": tv_tensors.Mask(torch.from_numpy(mask)),
        "keypoints": tv_tensors.KeyPoints(torch.from_numpy(keypoints[:, :2].copy()), canvas_size=(size, size)),
        "joints_3d": torch.from_numpy(keypoints[:, 2:].copy()),
        "label": 4,
    }


def tv_transform(pool, defer):
    return v2.Compose([v2.RandomAffine(degrees=40), v2.RandomHorizontalFlip(),
                       tv_adapter.SynthToReal(pool, p=0.5, use_mask=True, precision="fp32", defer=defer)])  # fmt: skip


class TorchvisionHands(Dataset):
    def __init__(self, transform):
        self.transform = transform

    def __len__(self):
        return N

    def __getitem__(self, i):
        torch.manual_seed(i)
        out = self.transform(tv_sample(i))
        out["keypoints"] = out["keypoints"].as_subclass(torch.Tensor)
        return out


def test_torchvision_deferred_batch_in_workers_equals_the_per_sample_path(pool):
    per_sample = TorchvisionHands(tv_transform(pool, defer=False))
    expected = default_collate([per_sample[i] for i in range(N)])
    deferred_transform = tv_transform(pool, defer=True)
    loader = DataLoader(TorchvisionHands(deferred_transform), batch_size=N, num_workers=2, multiprocessing_context="fork")
    batch = next(iter(loader))
    decisions = batch["synth_to_real"]
    assert decisions.shape == (N,) and {-1, 0, 1} <= set(decisions.tolist())
    for key in ("keypoints", "mask", "joints_3d", "label"):
        assert torch.equal(batch[key], expected[key]), key
    out = translate_batch(deferred_transform.transforms[-1], batch["image"], decisions, batch["mask"])
    assert_same_translation(out, expected["image"])
    assert torch.equal(out[decisions == -1], batch["image"][decisions == -1])


def test_torchvision_defer_returns_the_same_objects_and_refuses_what_it_cannot_record(pool):
    s = tv_sample(0)
    out = tv_adapter.SynthToReal(pool, defer=True)(s)
    assert out is not s and all(out[k] is s[k] for k in s) and out["synth_to_real"] in (0, 1)
    with pytest.raises(ValueError, match="the sample must be a dict, got Image"):
        tv_adapter.SynthToReal(pool, defer=True)(s["image"])
    with pytest.raises(ValueError, match="the sample already has 'synth_to_real'"):
        tv_adapter.SynthToReal(pool, defer=True)(out)
    with pytest.raises(ValueError, match="use_mask=True needs exactly one tv_tensors.Mask in the sample, found 0"):
        tv_adapter.SynthToReal(pool, use_mask=True, defer=True)({"image": s["image"]})


# ----------------------------------------------------------------------------- kornia
def test_kornia_per_sample_decisions_applied_to_the_batch_equal_the_per_sample_path(pool):
    aug = kornia_adapter.SynthToReal(pool, p=0.5, precision="fp32")
    images = torch.stack([torch.from_numpy(hand(i)[0]).permute(2, 0, 1) for i in range(N)]).float() / 255
    masks = torch.stack([torch.from_numpy(hand(i)[1]) for i in range(N)])
    per_sample, decisions = [], []
    for i in range(N):
        torch.manual_seed(i)
        per_sample.append(aug(images[i : i + 1], mask=masks[i : i + 1]))
        chosen = bool(aug._params["batch_prob"][0] > 0.5)
        decisions.append(int(aug._params["pool_index"][0]) if chosen else -1)
    decisions = torch.tensor(decisions)
    assert {-1, 0, 1} <= set(decisions.tolist())
    out = translate_batch(aug, images, decisions, masks)
    assert_same_translation(out, torch.cat(per_sample))
    assert torch.equal(out[decisions == -1], images[decisions == -1])
    assert torch.equal(out[masks[:, None].expand_as(out) == 0], images[masks[:, None].expand_as(out) == 0])


# ----------------------------------------------------------------------------- translate_batch input
def test_translate_batch_bad_input_names_the_argument(pool):
    s2r = handaug.SynthToReal(pool, precision="fp32")
    images = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    with pytest.raises(ValueError, match="s2r must be a handaug.SynthToReal or one of the handaug.integrations adapters"):
        translate_batch(object(), images, [0, 0])
    with pytest.raises(ValueError, match=r"pool member in \[0, 1\], got values in \[0, 2\].*another checkpoint pool"):
        translate_batch(s2r, images, [0, 2])
    with pytest.raises(ValueError, match=r"decisions must be -1 .* got values in \[-2, 0\]"):
        translate_batch(s2r, images, torch.tensor([-2, 0]))
    with pytest.raises(ValueError, match="decisions must be integers .* got dtype torch.float32"):
        translate_batch(s2r, images, torch.zeros(2))
    with pytest.raises(ValueError, match=r"decisions of shape \(3,\) do not fit images whose leading shape is \(2,\)"):
        translate_batch(s2r, images, [0, 0, 0])
    with pytest.raises(ValueError, match=r"images must have shape \(\*lead, H, W, 3\)"):
        translate_batch(s2r, images, [0, 0], channels="last")
    with pytest.raises(ValueError, match=r"masks must have shape \(2, 16, 16\) or \(2, 1, 16, 16\) .* got \(2, 8, 8\)"):
        translate_batch(s2r, images, [0, 0], torch.ones(2, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"images of dtype torch.float32 must have values in \[0, 1\]"):
        translate_batch(s2r, images.float() + 2, [0, 0])
    assert translate_batch(s2r, images, [-1, -1]) is images  # nothing chosen: the batch itself


def test_translate_batch_broadcasts_one_decision_per_sample_over_its_images(pool):
    s2r = handaug.SynthToReal(pool, precision="fp32")
    clips = torch.randint(0, 256, (2, 3, 3, 16, 16), dtype=torch.uint8)  # (B, T, 3, H, W)
    out = translate_batch(s2r, clips, torch.tensor([1, -1]))
    assert torch.equal(out[1], clips[1])
    assert torch.equal(out[0], s2r.translate(clips[0], assignment=torch.ones(3, dtype=torch.int64)))


def test_import_handaug_does_not_import_lightning_or_the_libraries():
    code = ("import sys, handaug, handaug.integrations.batch, handaug.integrations.workers; "
            "print(sorted(m for m in ('lightning', 'albumentations', 'kornia') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
