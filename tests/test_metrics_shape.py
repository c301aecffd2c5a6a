"""Shape preservation: silhouette IoU of translated hands against the source masks."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from handaug import save_generator
from handaug.metrics.eval_data import EvalSet, procedural_set
from handaug.metrics.shape import (
    hand_boxes,
    identity_translator,
    mask_iou,
    shape_preservation,
    silhouettes,
    train_default_segmenter,
)
from handaug.registry import create_generator


def not_white(images: torch.Tensor) -> torch.Tensor:
    """A perfect segmenter for white-background images: every pixel that is not pure white is hand."""
    return (images < 1.0).any(dim=1, keepdim=True)


@pytest.fixture(scope="module")
def hands():
    return procedural_set("synthetic", 24, 500, image_size=32)


def test_mask_iou_known_cases():
    a = torch.zeros(4, 1, 4, 4, dtype=torch.bool)
    b = torch.zeros(4, 1, 4, 4, dtype=torch.bool)
    a[0, :, :2] = True
    b[0, :, :2] = True  # identical: 1
    a[1, :, :2] = True
    b[1, :, 2:] = True  # disjoint: 0
    a[2, :, :2] = True
    b[2, :, 1:3] = True  # 4 shared of 12 pixels: 1/3
    # image 3: both empty counts as 1
    assert mask_iou(a, b).tolist() == pytest.approx([1.0, 0.0, 1 / 3, 1.0])
    with pytest.raises(ValueError, match="same shape"):
        mask_iou(a, b[:, 0, :2])


def test_identity_translation_has_iou_one(hands):
    assert hands.images[~hands.masks.expand(-1, 3, -1, -1)].eq(255).all()
    result = shape_preservation(identity_translator, hands, not_white, label="identity")
    assert result.iou_mean == 1.0 and result.iou_std == 0.0 and result.n == 24
    assert result.box_iou_mean == 1.0


def test_a_translation_that_fills_the_background_loses_iou(hands):
    def paint_everything(images, masks):
        return torch.zeros_like(images)  # the "hand" now covers the whole image

    result = shape_preservation(paint_everything, hands, not_white)
    expected = hands.masks.flatten(1).float().mean(dim=1).double()
    assert result.iou_mean == pytest.approx(float(expected.mean()))
    assert result.iou_mean < 0.5
    assert result.iou_mean < result.box_iou_mean < 1.0


@pytest.fixture
def identity_plugin(tmp_path, monkeypatch):
    """A plugin that registers an identity generator, for a checkpoint that changes nothing."""
    (tmp_path / "identity_gen_plugin.py").write_text(textwrap.dedent('''
        import torch
        import torch.nn as nn
        from handaug.hookspecs import hookimpl

        class Identity(nn.Module):
            def __init__(self):
                super().__init__()
                self.unused = nn.Parameter(torch.zeros(1))

            def forward(self, x):
                return x

        @hookimpl
        def handaug_register_generators(registry):
            registry.add("identity_for_tests", Identity)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("HANDAUG_PLUGINS", "identity_gen_plugin")
    yield
    sys.modules.pop("identity_gen_plugin", None)


def test_identity_checkpoint_through_synth_to_real_has_iou_one(hands, tmp_path, identity_plugin):
    ckpt = save_generator(create_generator("identity_for_tests"), tmp_path / "identity")
    result = shape_preservation(str(ckpt), hands, not_white)
    assert result.iou_mean == 1.0 and result.box_iou_mean == 1.0


def test_real_checkpoint_runs_without_compositing(hands, tmp_path):
    ckpt = save_generator(create_generator("resnet", n_blocks=1, ngf=8), tmp_path / "g", background=1.0, trained_with_masks=True)
    result = shape_preservation(str(ckpt), hands, not_white)
    # an untrained generator tints the white background, so the whole image looks like hand
    assert result.iou_mean < 0.9


def test_shape_needs_masks(hands):
    with pytest.raises(ValueError, match="have no hand masks"):
        shape_preservation(identity_translator, EvalSet(hands.images, name="no masks"), not_white)


def test_silhouettes_checks_the_segmenter(hands):
    with pytest.raises(ValueError, match="segmenter returned shape"):
        silhouettes(lambda x: x[:, :1, :4], hands.images)
    probabilities = silhouettes(lambda x: not_white(x).float() * 0.9, hands.images)
    assert torch.equal(probabilities, hands.masks)


def test_default_segmenter_learns_the_procedural_hands():
    segmenter = train_default_segmenter(image_size=32, n=64, steps=150, seed=7, show_progress=False)
    held_out = procedural_set("real", 16, 901, image_size=32)
    result = shape_preservation(identity_translator, held_out, segmenter)
    assert result.iou_mean > 0.8
    again = train_default_segmenter(image_size=32, n=64, steps=150, seed=7, show_progress=False)
    assert torch.equal(silhouettes(segmenter, held_out.images), silhouettes(again, held_out.images))


def test_hand_boxes_and_region_iou():
    masks = torch.zeros(2, 1, 20, 20, dtype=torch.bool)
    masks[0, 0, 5:15, 8:10] = True  # 10 × 2 box, padding 1
    boxes = hand_boxes(masks)
    expected = torch.zeros(20, 20, dtype=torch.bool)
    expected[4:16, 7:11] = True
    assert torch.equal(boxes[0, 0], expected)
    assert not boxes[1].any()
    everything = torch.ones_like(masks)
    # the whole image counts the far background; the box only the hand's surroundings
    assert mask_iou(everything, masks)[0] == pytest.approx(20 / 400)
    assert mask_iou(everything, masks, region=boxes)[0] == pytest.approx(20 / 48)
    with pytest.raises(ValueError, match="region must have the shape"):
        mask_iou(everything, masks, region=boxes[:, 0])
