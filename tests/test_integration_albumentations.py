"""handaug.integrations.albumentations.SynthToReal inside A.Compose: targets untouched, masks, batching,
probability, pools, serialisation, DataLoader workers, bad input. Tiny random generators (no trained weights)."""

from __future__ import annotations

import json
import pickle

import albumentations as A
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import handaug
from handaug import save_generator
from handaug.data.procedural import ProceduralHands
from handaug.integrations.albumentations import SynthToReal
from handaug.registry import create_generator

KEYPOINTS = A.KeypointParams(format="xy", remove_invisible=False)
BOXES = A.BboxParams(format="pascal_voc", label_fields=["box_labels"], clip=False, min_visibility=0.0)


def make_checkpoint(path, seed=0):
    torch.manual_seed(seed)
    return save_generator(create_generator("resnet", n_blocks=1, ngf=8), path, background=1.0, trained_with_masks=True)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("albu") / "ckpt")


def hand(i=0, size=64):
    """A procedural hand: image, mask, keypoints (21, 5) = 2D pixels + 3D metres as extra columns, one box."""
    s = ProceduralHands("synthetic", image_size=size, length=8, seed=1)[i]
    keypoints = np.concatenate([s["keypoints_2d"], s["keypoints_3d"]], axis=1)
    ys, xs = np.nonzero(s["mask"])
    box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    return s["image"], s["mask"], keypoints, box


def core_translation(ckpt, images, masks=None):
    """What handaug.SynthToReal gives for the same HWC image or (N, H, W, 3) stack, as one batch (the
    reference for exact comparisons: convolutions may round differently for other batch sizes)."""
    x = torch.from_numpy(images.reshape(-1, *images.shape[-3:])).permute(0, 3, 1, 2)
    m = None if masks is None else torch.from_numpy(masks > 0).reshape(x.shape[0], *x.shape[-2:])
    out = handaug.SynthToReal(ckpt, precision="fp32")(x, mask=m).permute(0, 2, 3, 1).numpy()
    return out.reshape(images.shape)


def geometric():
    return [A.Affine(rotate=(-40, 40), scale=(0.8, 1.2), translate_percent=(-0.1, 0.1), p=1.0), A.HorizontalFlip(p=0.5)]


# ----------------------------------------------------------------------------- targets untouched
def test_keypoints_boxes_mask_unchanged_and_only_the_hand_changes(ckpt):
    image, mask, keypoints, box = hand()
    pipeline = A.Compose([SynthToReal(ckpt, precision="fp32", hand_mask_key="mask")], keypoint_params=KEYPOINTS,
                         bbox_params=BOXES)  # fmt: skip
    out = pipeline(image=image, mask=mask, keypoints=keypoints, bboxes=box, box_labels=[7])
    assert out["keypoints"].shape == (21, 5) and out["keypoints"].dtype == keypoints.dtype
    assert np.array_equal(out["keypoints"], keypoints)  # 2D and the 3D extra columns, bit for bit
    assert np.array_equal(out["bboxes"], box) and out["box_labels"] == [7]
    assert np.array_equal(out["mask"], mask)
    background = mask == 0
    assert np.array_equal(out["image"][background], image[background])
    assert (out["image"][~background] != image[~background]).mean() > 0.5
    assert np.array_equal(out["image"], core_translation(ckpt, image, mask))


def test_after_geometric_transforms_targets_equal_the_geometric_only_path(ckpt):
    full = A.Compose([*geometric(), SynthToReal(ckpt, precision="fp32", hand_mask_key="mask")], keypoint_params=KEYPOINTS,
                     bbox_params=BOXES)  # fmt: skip
    plain = A.Compose(geometric(), keypoint_params=KEYPOINTS, bbox_params=BOXES)
    for i in range(4):
        image, mask, keypoints, box = hand(i)
        full.set_random_seed(i)
        plain.set_random_seed(i)
        a = full(image=image, mask=mask, keypoints=keypoints, bboxes=box, box_labels=[1])
        b = plain(image=image, mask=mask, keypoints=keypoints, bboxes=box, box_labels=[1])
        assert not np.array_equal(b["keypoints"], keypoints)  # the warp did move them
        assert np.array_equal(a["keypoints"], b["keypoints"])
        assert np.array_equal(a["keypoints"][:, 2:], keypoints[:, 2:])  # the 3D columns ride along untouched
        assert np.array_equal(a["bboxes"], b["bboxes"]) and np.array_equal(a["mask"], b["mask"])
        # the warped mask was used: the warped background is exactly the geometric-only one
        background = b["mask"] == 0
        assert np.array_equal(a["image"][background], b["image"][background])
        assert not np.array_equal(a["image"], b["image"])


def test_without_mask_the_whole_image_is_translated(ckpt):
    image, mask, keypoints, _ = hand()
    out = A.Compose([SynthToReal(ckpt, precision="fp32")], keypoint_params=KEYPOINTS)(image=image, keypoints=keypoints)
    assert np.array_equal(out["image"], core_translation(ckpt, image))
    both = SynthToReal(ckpt, precision="fp32", mask_mode="none", hand_mask_key="mask")(image=image, mask=mask)
    assert np.array_equal(both["image"], out["image"])  # mask_mode="none" ignores the mask


def test_float32_images_keep_dtype_and_background(ckpt):
    image, mask, _, _ = hand()
    x = image.astype(np.float32) / 255
    out = SynthToReal(ckpt, precision="fp32", hand_mask_key="mask")(image=x, mask=mask)["image"]
    assert out.dtype == np.float32 and out.shape == x.shape
    background = mask == 0
    assert np.array_equal(out[background], x[background]) and not np.array_equal(out, x)
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_mask_forms_float_alpha_and_trailing_channel(ckpt):
    image, mask, _, _ = hand()
    t = SynthToReal(ckpt, precision="fp32", hand_mask_key="mask")
    reference = t(image=image, mask=mask)["image"]
    assert np.array_equal(t(image=image, mask=mask[..., None])["image"], reference)
    assert np.array_equal(t(image=image, mask=(mask > 0).astype(np.float32))["image"], reference)
    assert np.array_equal(t(image=image, mask=(mask > 0).astype(np.int32) * 3)["image"], reference)
    assert np.array_equal(t(image=image, mask=mask > 0)["image"], reference)  # bool
    assert np.array_equal(t(image=image, mask=(mask > 0)[..., None].astype(np.float64))["image"], reference)


# ----------------------------------------------------------------------------- the hand mask is named, never guessed
def test_by_default_no_mask_is_read_and_every_mask_is_left_alone(ckpt):
    """A segmentation map (3 channels, or labels 0..K) in ``mask`` is not a hand mask: without
    hand_mask_key the image is translated whole and the masks pass through untouched."""
    image, hand_mask, _, _ = hand()
    labels = (np.arange(64 * 64).reshape(64, 64) % 5).astype(np.uint8)  # a label map, values 0..4
    color_segmentation = np.stack([hand_mask, labels, 255 - hand_mask], axis=-1)  # (64, 64, 3)
    t = SynthToReal(ckpt, precision="fp32")
    whole = core_translation(ckpt, image)
    for mask in (labels, color_segmentation):
        out = A.Compose([t])(image=image, mask=mask)
        assert np.array_equal(out["image"], whole)
        assert np.array_equal(out["mask"], mask)
    out = A.Compose([t])(image=image, masks=[labels, hand_mask])
    assert np.array_equal(out["image"], whole) and np.array_equal(out["masks"][0], labels)


def test_hand_mask_from_an_additional_target_next_to_a_segmentation_mask(ckpt):
    image, hand_mask, keypoints, _ = hand()
    labels = (np.arange(64 * 64).reshape(64, 64) % 5).astype(np.uint8)
    s2r = SynthToReal(ckpt, precision="fp32", hand_mask_key="hand_mask")
    pipeline = A.Compose([*geometric(), s2r], keypoint_params=KEYPOINTS, additional_targets={"hand_mask": "mask"},
                         strict=True, seed=3)  # fmt: skip
    plain = A.Compose(geometric(), keypoint_params=KEYPOINTS, additional_targets={"hand_mask": "mask"}, seed=3)
    out = pipeline(image=image, mask=labels, hand_mask=hand_mask, keypoints=keypoints)
    ref = plain(image=image, mask=labels, hand_mask=hand_mask, keypoints=keypoints)
    assert np.array_equal(out["mask"], ref["mask"]) and np.array_equal(out["hand_mask"], ref["hand_mask"])
    assert np.array_equal(out["keypoints"], ref["keypoints"])
    background = ref["hand_mask"] == 0  # the warped hand mask was the one used
    assert np.array_equal(out["image"][background], ref["image"][background])
    assert (out["image"][~background] != ref["image"][~background]).mean() > 0.5


def test_a_named_mask_that_is_not_a_hand_mask_is_refused_by_name(ckpt):
    image, hand_mask, _, _ = hand()
    t = SynthToReal(ckpt, hand_mask_key="mask")
    with pytest.raises(ValueError, match=r"hand mask 'mask' must have shape \(64, 64\) or \(64, 64, 1\).*got \(64, 64, 3\)"):
        t(image=image, mask=np.repeat(hand_mask[..., None], 3, axis=-1))
    with pytest.raises(ValueError, match="hand_mask_key='mask', but the call has no 'mask'"):
        t(image=image)
    with pytest.raises(ValueError, match="hand_mask_key='hand', but the call has no 'hand' \\(it has: image, mask\\)"):
        SynthToReal(ckpt, hand_mask_key="hand")(image=image, mask=hand_mask)
    with pytest.raises(ValueError, match="hand mask 'mask' must be bool, integer or floating point"):
        t(image=image, mask=hand_mask.astype(np.complex64))


# ----------------------------------------------------------------------------- albumentations' parameter contract
def test_strict_and_unknown_arguments_behave_as_for_a_built_in(ckpt):
    t = SynthToReal(ckpt, p=0.5, strict=True)
    assert t.p == 0.5 and t.invalid_args == []
    with pytest.raises(ValueError, match="Argument\\(s\\) 'colour' are not valid for transform SynthToReal"):
        SynthToReal(ckpt, strict=True, colour="warm")
    with pytest.warns(UserWarning, match="Argument\\(s\\) 'colour' are not valid for transform SynthToReal"):
        lenient = SynthToReal(ckpt, colour="warm")
    assert lenient.invalid_args == ["colour"] and lenient.ckpt == str(ckpt)
    with pytest.raises(ValueError, match="are not valid for transform"):
        A.Compose([lenient], strict=True)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [({"p": 1.5}, "p"), ({"crop_margin": -1}, "crop_margin"), ({"mask_mode": "alpha"}, "mask_mode"),
     ({"precision": "int8"}, "precision"), ({"hand_mask_key": ""}, "hand_mask_key"), ({"hand_crop": "maybe"}, "hand_crop"),
     ({"ckpt": []}, "ckpt")],
)  # fmt: skip
def test_bad_values_raise_albumentations_validation_error_naming_the_parameter(ckpt, kwargs, parameter):
    kwargs = {"ckpt": ckpt, **kwargs}
    with pytest.raises(ValueError, match=f"validation error for InitSchema\n{parameter}\n"):
        SynthToReal(**kwargs)


def test_path_and_device_objects_are_stored_as_strings(ckpt):
    t = SynthToReal(ckpt, device=torch.device("cpu"))
    assert t.ckpt == str(ckpt) and t.device == "cpu"
    assert A.to_dict(t)["transform"]["hand_mask_key"] is None


TINY_SIZES = [(1, 1), (2, 2), (3, 64), (1, 1000), (64, 3)]


@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("size", TINY_SIZES)
def test_tiny_images_keep_shape_dtype_and_background(ckpt, size, dtype, with_mask):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    image = image if dtype == np.uint8 else image.astype(np.float32) / 255
    mask = (np.arange(size[0] * size[1]) % 2 == 0).reshape(size).astype(np.uint8)  # pixel (0, 0) is hand
    data = {"image": image, "mask": mask} if with_mask else {"image": image}
    out = A.Compose([SynthToReal(ckpt, p=1.0, hand_mask_key="mask" if with_mask else None)])(**data)["image"]
    assert out.shape == image.shape and out.dtype == image.dtype
    if with_mask:
        assert np.array_equal(out[mask == 0], image[mask == 0])


def test_numpy_probability_is_accepted(ckpt):
    assert SynthToReal(ckpt, p=np.float32(0.25)).p == 0.25
    with pytest.raises(ValueError, match=r"p\n.*expected a number, got the bool"):
        SynthToReal(ckpt, p=np.bool_(True))


def test_flags_are_bools_and_numbers_are_not_strings(ckpt):
    """handaug.arguments' rule, not pydantic's coercion of 1 or "yes" to True and of "0.5" to 0.5."""
    assert SynthToReal(ckpt, hand_crop=np.bool_(True), crop_margin=np.int64(1)).hand_crop is True
    for flag in ("hand_crop", "compile", "defer"):
        with pytest.raises(ValueError, match=rf"{flag}\n.*{flag} must be True or False, got 1"):
            SynthToReal(ckpt, **{flag: 1})
    with pytest.raises(ValueError, match=r"crop_margin\n.*expected a number, got '0.5'"):
        SynthToReal(ckpt, crop_margin="0.5")


# ----------------------------------------------------------------------------- batches and volumes
def test_images_stack_runs_as_one_generator_batch(ckpt):
    samples = [hand(i) for i in range(4)]
    images = np.stack([s[0] for s in samples])
    masks = np.stack([s[1] for s in samples])
    t = SynthToReal(ckpt, precision="fp32", hand_mask_key="masks")
    calls = []
    generator = t.translator.generators("cpu")[0]
    handle = generator.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    try:
        out = A.Compose([t])(images=images, masks=masks)["images"]
    finally:
        handle.remove()
    assert calls == [4]  # one generator call for the whole stack
    assert out.shape == images.shape and out.dtype == np.uint8
    background = masks == 0
    assert np.array_equal(out[background], images[background])
    assert np.array_equal(out, core_translation(ckpt, images, masks))


def test_volume_translates_every_slice_with_its_mask3d(ckpt):
    samples = [hand(i) for i in range(3)]
    volume = np.stack([s[0] for s in samples])
    mask3d = np.stack([s[1] for s in samples])
    out = A.Compose([SynthToReal(ckpt, precision="fp32", hand_mask_key="mask3d")])(volume=volume, mask3d=mask3d)
    assert np.array_equal(out["mask3d"], mask3d)
    assert np.array_equal(out["volume"], core_translation(ckpt, volume, mask3d))


# ----------------------------------------------------------------------------- randomness
def test_p_is_albumentations_per_call_decision_and_seeded(ckpt):
    image, mask, keypoints, _ = hand()
    assert np.array_equal(SynthToReal(ckpt, p=0.0)(image=image)["image"], image)

    def run(seed):
        pipeline = A.Compose([SynthToReal(ckpt, p=0.5, precision="fp32", hand_mask_key="mask")], keypoint_params=KEYPOINTS,
                             seed=seed)  # fmt: skip
        outs = [pipeline(image=image, mask=mask, keypoints=keypoints) for _ in range(16)]
        assert all(np.array_equal(o["keypoints"], keypoints) for o in outs)
        return np.array([not np.array_equal(o["image"], image) for o in outs])

    first = run(3)
    assert 0 < first.sum() < 16
    assert np.array_equal(first, run(3))


def test_pool_draws_one_generator_per_image_from_the_pipeline_seed(tmp_path):
    a, b = make_checkpoint(tmp_path / "a", seed=1), make_checkpoint(tmp_path / "b", seed=2)
    samples = [hand(i) for i in range(8)]
    images = np.stack([s[0] for s in samples])
    out = A.Compose([SynthToReal([a, b], precision="fp32")], seed=0)(images=images)["images"].astype(int)
    # each pool member translates its own sub-batch: allow 1 level of batch-size rounding
    from_a = np.abs(out - core_translation(a, images)).reshape(8, -1).max(1) <= 1
    from_b = np.abs(out - core_translation(b, images)).reshape(8, -1).max(1) <= 1
    assert np.all(from_a ^ from_b) and 0 < from_a.sum() < 8
    again = A.Compose([SynthToReal([a, b], precision="fp32")], seed=0)(images=images)["images"].astype(int)
    assert np.array_equal(out, again)


# ----------------------------------------------------------------------------- serialisation
def test_to_dict_from_dict_round_trip_stores_the_path(ckpt):
    pipeline = A.Compose(
        [*geometric(), SynthToReal(ckpt, p=0.8, precision="fp32", hand_mask_key="mask", hand_crop=True, crop_margin=0.25)],
        keypoint_params=KEYPOINTS, seed=5,
    )  # fmt: skip
    text = json.dumps(A.to_dict(pipeline))  # JSON-ready: paths and options only
    entry = json.loads(text)["transform"]["transforms"][-1]
    assert entry == {
        "__class_fullname__": "handaug.integrations.albumentations.SynthToReal", "p": 0.8, "ckpt": str(ckpt),
        "device": None, "mask_mode": "composite", "hand_mask_key": "mask", "precision": "fp32", "hand_crop": True,
        "crop_margin": 0.25,
        "compile": False, "defer": False, "decision_key": "synth_to_real",
    }  # fmt: skip
    restored = A.from_dict(json.loads(text))
    assert isinstance(restored.transforms[-1], SynthToReal) and restored.transforms[-1].hand_crop
    assert A.to_dict(restored) == A.to_dict(pipeline)
    restored.set_random_seed(5)
    pipeline.set_random_seed(5)
    image, mask, keypoints, _ = hand()
    a, b = pipeline(image=image, mask=mask, keypoints=keypoints), restored(image=image, mask=mask, keypoints=keypoints)
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["keypoints"], b["keypoints"])


def test_pool_of_paths_serialises_as_a_list(tmp_path):
    a, b = make_checkpoint(tmp_path / "a"), make_checkpoint(tmp_path / "b")
    entry = A.to_dict(SynthToReal([a, b]))["transform"]
    assert entry["ckpt"] == [str(a), str(b)]
    assert A.from_dict({"transform": entry}).ckpt == [str(a), str(b)]


def test_pickles_without_weights(ckpt):
    image, mask, _, _ = hand()
    pipeline = A.Compose([SynthToReal(ckpt, precision="fp32", hand_mask_key="mask")])
    before = pipeline(image=image, mask=mask)["image"]  # generator loaded in this process
    blob = pickle.dumps(pipeline)
    assert len(blob) < 20_000
    assert np.array_equal(pickle.loads(blob)(image=image, mask=mask)["image"], before)


# ----------------------------------------------------------------------------- DataLoader workers
class AugmentedHands(Dataset):
    """A user's dataset: an albumentations pipeline applied per sample, seeded by index for comparison."""

    def __init__(self, pipeline):
        self.pipeline = pipeline

    def __len__(self):
        return 6

    def __getitem__(self, i):
        image, mask, keypoints, _ = hand(i, size=32)
        self.pipeline.set_random_seed(i)
        out = self.pipeline(image=image, mask=mask, keypoints=keypoints)
        return torch.from_numpy(out["image"]), torch.from_numpy(out["keypoints"]), torch.from_numpy(out["mask"])


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_with_two_workers(ckpt, context):
    dataset = AugmentedHands(A.Compose([*geometric(), SynthToReal(ckpt, precision="fp32", hand_mask_key="mask")],
                                       keypoint_params=KEYPOINTS))  # fmt: skip
    plain = AugmentedHands(A.Compose(geometric(), keypoint_params=KEYPOINTS))
    expected = [dataset[i] for i in range(len(dataset))]
    loader = DataLoader(dataset, batch_size=3, num_workers=2, multiprocessing_context=context)
    images, keypoints, masks = (torch.cat(parts) for parts in zip(*loader))
    assert torch.equal(images, torch.stack([e[0] for e in expected]))
    assert torch.equal(keypoints, torch.stack([e[1] for e in expected]))
    geometric_only = [plain[i] for i in range(len(plain))]
    assert torch.equal(keypoints, torch.stack([g[1] for g in geometric_only]))
    assert torch.equal(masks, torch.stack([g[2] for g in geometric_only]))


# ----------------------------------------------------------------------------- bad input
def test_bad_arguments_and_inputs_name_what_is_wrong(ckpt, tmp_path):
    with pytest.raises(ValueError, match=r"p\n\s+Input should be less than or equal to 1"):
        SynthToReal(ckpt, p=1.5)
    with pytest.raises(ValueError, match="mask_mode"):
        SynthToReal(ckpt, mask_mode="alpha")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SynthToReal(tmp_path / "missing")
    image, mask, _, _ = hand()
    t = SynthToReal(ckpt)
    with pytest.raises(ValueError, match=r"image must be RGB with shape \(\.\.\., H, W, 3\)"):
        t(image=image[..., 0])
    with pytest.raises(ValueError, match=r"image of dtype torch.float32 must have values in \[0, 1\]"):
        t(image=image.astype(np.float32))
    with pytest.raises(ValueError, match=r"hand mask 'mask' must have shape \(32, 32\) or \(32, 32, 1\).*got \(64, 64\)"):
        SynthToReal(ckpt, hand_mask_key="mask")(image=image[:32, :32], mask=mask)
    with pytest.raises(ValueError, match=r"hand mask 'masks' must have shape .*\(3, 64, 64\).*got \(2, 64, 64\)"):
        SynthToReal(ckpt, hand_mask_key="masks")(images=np.stack([image] * 3), masks=np.stack([mask] * 2))
    with pytest.raises(ValueError, match=r"hand mask 'mask' of dtype torch.float32 must have values in \[0, 1\]"):
        SynthToReal(ckpt, hand_mask_key="mask")(image=image, mask=mask.astype(np.float32) * 2)
