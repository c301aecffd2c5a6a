"""The one checkpoint-to-translator helper gives, bit for bit, what each measure's own adapter used to."""

import pytest
import torch

from handaug import SynthToReal, save_generator
from handaug.metrics.eval_data import procedural_set, translate_set
from handaug.metrics.hgan_protocol import raw_translator
from handaug.metrics.report import file_slug
from handaug.metrics.shape import generator_view
from handaug.metrics.translators import checkpoint_translator
from handaug.registry import create_generator


@pytest.fixture(scope="module")
def hands():
    return procedural_set("synthetic", 3, 5, image_size=32, background="black")


@pytest.fixture(scope="module", params=[1.0, 0.0, None], ids=["white", "grey", "none"])
def ckpt(request, tmp_path_factory):
    torch.manual_seed(0)
    generator = create_generator("resnet", n_blocks=1, ngf=8)
    background = request.param
    return str(save_generator(generator, tmp_path_factory.mktemp("g") / "g", background=background, trained_with_masks=background is not None))


def _s2r(ckpt, mask_mode, seed=0):
    return SynthToReal(ckpt, p=1.0, mask_mode=mask_mode, seed=seed, precision="fp32")


def test_composite_and_none_are_synth_to_real(ckpt, hands):
    # eval_data.checkpoint_translator before: masks to SynthToReal in "composite" mode, none otherwise.
    assert torch.equal(checkpoint_translator(ckpt)(hands.images, hands.masks), _s2r(ckpt, "composite")(hands.images, mask=hands.masks))
    assert torch.equal(checkpoint_translator(ckpt)(hands.images, None), _s2r(ckpt, "composite")(hands.images))
    whole = _s2r(ckpt, "none")(hands.images)
    assert torch.equal(checkpoint_translator(ckpt, mask_mode="none")(hands.images, hands.masks), whole)
    assert torch.equal(translate_set(ckpt, hands, mask_mode="none").images, whole)


def test_fill_is_the_old_generator_view(ckpt, hands):
    # shape.generator_view before: the uint8 fill round((b + 1) * 127.5) outside the mask, raw output of whole images.
    from handaug.checkpoint import read_checkpoint

    background = read_checkpoint(ckpt).background
    images = hands.images
    if background is not None:
        images = torch.where(hands.masks, images, torch.full_like(images, round((float(background) + 1.0) * 127.5)))
    expected = _s2r(ckpt, "none")(images)
    assert torch.equal(generator_view(ckpt)(hands.images, hands.masks), expected)
    assert torch.equal(checkpoint_translator(ckpt, mask_mode="fill")(hands.images, hands.masks), expected)
    assert torch.equal(generator_view(ckpt)(hands.images, None), _s2r(ckpt, "none")(hands.images))


def test_model_range_is_the_old_raw_translator(ckpt, hands):
    # hgan_protocol.raw_translator before: float in [0, 1] through SynthToReal (no seed), then to [-1, 1].
    expected = _s2r(ckpt, "none", seed=None)(hands.images.float().div(255.0)).mul(2.0).sub(1.0)
    raw = raw_translator(ckpt)(hands.images)
    assert raw.dtype == torch.float32 and torch.equal(raw, expected)


def test_bad_options_are_refused(ckpt):
    with pytest.raises(ValueError, match="mask_mode must be one of"):
        checkpoint_translator(ckpt, mask_mode="paste")
    with pytest.raises(ValueError, match="output must be one of"):
        checkpoint_translator(ckpt, output="float16")
    with pytest.raises(ValueError, match="ckpt must be one checkpoint path"):
        generator_view([ckpt, ckpt])


@pytest.mark.parametrize(
    ("label", "slug"),
    [("msH-GAN 6", "msH-GAN_6"), ("runs/a b.", "runs_a_b"), ("..", "checkpoint"), (".hidden", "hidden"), ("", "checkpoint"),
     ("_x_", "x"), ("v1.2", "v1.2"), ("ünï", "n")],
)
def test_file_slug(label, slug):
    assert file_slug(label) == slug
