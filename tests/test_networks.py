"""The built-in networks: sizes from the paper / CycleGAN, shapes at several resolutions, frozen VGG."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from tiny import TINY_PERCEPTUAL

from handaug.initialization import init_weights
from handaug.plugins.patchgan import PatchDiscriminator
from handaug.plugins.perceptual import PerceptualDiscriminator
from handaug.plugins.resnet import ResnetGenerator
from handaug.registry import create_discriminator, create_generator


def n_params(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def test_resnet9_has_cyclegan_parameter_count():
    assert n_params(create_generator("resnet", ngf=64, n_blocks=9)) == 11_378_179


@pytest.mark.parametrize("n_blocks", [4, 6, 9])
def test_resnet_depths_differ_by_residual_blocks(n_blocks):
    block = 2 * (256 * 256 * 9 + 256)  # two 3x3 convs at 256 channels, with bias
    assert n_params(create_generator("resnet", n_blocks=n_blocks)) == 11_378_179 - (9 - n_blocks) * block


@pytest.mark.parametrize("size", [(32, 32), (36, 52), (64, 128)])
def test_resnet_keeps_shape_and_range_for_sizes_divisible_by_4(size):
    g = create_generator("resnet", ngf=8, n_blocks=2).eval()
    x = torch.rand(2, 3, *size) * 2 - 1
    y = g(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1


def test_resnet_rejects_sizes_not_divisible_by_stride():
    g = create_generator("resnet", ngf=8, n_blocks=1)
    with pytest.raises(ValueError, match=r"stride 4.*34×32"):
        g(torch.zeros(1, 3, 34, 32))


def test_resnet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="norm"):
        create_generator("resnet", norm="layer")
    with pytest.raises(ValueError, match="n_blocks"):
        create_generator("resnet", n_blocks=-1)
    with pytest.raises(TypeError, match="resnet.*n_layers"):
        create_generator("resnet", n_layers=3)


@pytest.mark.parametrize("init_type", ["xavier", "normal", "kaiming", "none"])
def test_residual_resnet_starts_as_the_identity_and_learns(init_type):
    generator = init_weights(create_generator("resnet", n_blocks=2, ngf=8, residual=True), init_type, 0.02)
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    x[:, :, :4] = 1.0  # a white background stays finite through atanh
    y = generator(x)
    assert torch.allclose(y, 0.999 * x, atol=1e-6)
    y.sub(0.5).square().mean().backward()
    last = generator.model[-1]
    assert last.weight.grad is not None and last.weight.grad.abs().sum() > 0
    plain = create_generator("resnet", n_blocks=2, ngf=8)
    assert plain.state_dict().keys() == generator.state_dict().keys()  # same weights, same checkpoint layout


def test_residual_needs_matching_channels():
    with pytest.raises(ValueError, match="residual"):
        create_generator("resnet", n_blocks=1, ngf=8, out_channels=1, residual=True)


def test_log_residual_starts_as_the_identity_and_changes_colour_by_a_gain():
    generator = init_weights(create_generator("resnet", n_blocks=1, ngf=8, residual=True, residual_space="log"), "xavier", 0.02)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.allclose(generator(x), x, atol=1e-6)
    with torch.no_grad():
        generator.model[-1].bias.copy_(torch.log(torch.tensor([0.8, 1.0, 1.0])))  # a constant f: less red everywhere
    y = generator(x)
    eps = 0.01
    expected_red = ((((x[:, 0] + 1) / 2 + eps) * 0.8 - eps).clamp(min=0.0)) * 2 - 1
    assert torch.allclose(y[:, 0], expected_red, atol=1e-5)  # a dark red pixel loses 20 % of its red, not a fixed amount
    assert torch.allclose(y[:, 1:], x[:, 1:], atol=1e-6)
    with pytest.raises(ValueError, match="residual_space must be one of"):
        create_generator("resnet", n_blocks=1, ngf=8, residual=True, residual_space="linear")
    with pytest.raises(ValueError, match="residual_space='log' needs residual=True"):
        create_generator("resnet", n_blocks=1, ngf=8, residual_space="log")


def test_patchgan_is_70x70_with_cyclegan_size():
    d = create_discriminator("patch", ndf=64, n_layers=3)
    assert n_params(d) == 2_764_737  # CycleGAN's published 2.765 M
    assert d(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    with pytest.raises(ValueError, match="at least 24"):
        d(torch.zeros(1, 3, 16, 16))


def test_pixelgan_scores_every_pixel():
    d = create_discriminator("pixel", ndf=8)
    assert d(torch.zeros(2, 3, 20, 28)).shape == (2, 1, 20, 28)


@pytest.mark.parametrize("size, expected", [(128, [16, 8, 4]), (256, [32, 16, 8]), (64, [8, 4, 2])])
def test_perceptual_gives_three_scales_at_any_size(size, expected):
    d = create_discriminator("perceptual", **TINY_PERCEPTUAL)
    out = d(torch.zeros(2, 3, size, size))
    assert [o.shape[-1] for o in out] == expected
    assert all(o.shape[:2] == (2, 1) for o in out)


def test_perceptual_same_weights_run_at_non_square_and_odd_sizes():
    d = create_discriminator("perceptual", **TINY_PERCEPTUAL)
    out = d(torch.zeros(1, 3, 96, 160))
    assert [tuple(o.shape[-2:]) for o in out] == [(12, 20), (6, 10), (3, 5)]
    out = d(torch.zeros(1, 3, 100, 100))
    assert [o.shape[-1] for o in out] == [12, 6, 3]


def test_perceptual_matches_reference_widths_at_ndf_64():
    d = create_discriminator("perceptual", vgg_weights="random")
    assert [blk[0].out_channels for blk in d.path] == [64, 128, 256, 512, 512]
    assert [p[0].in_channels for p in d.tap_projections] == [128, 256, 512]
    assert [h.in_channels for h in d.heads.values()] == [512, 512, 512]


def test_perceptual_vgg_is_frozen_in_eval_mode_but_passes_gradients():
    d = create_discriminator("perceptual", **TINY_PERCEPTUAL)
    d.train()
    assert not d.vgg.training
    assert all(not p.requires_grad for p in d.vgg.parameters())
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    sum(o.sum() for o in d(x)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in d.vgg.parameters())


def test_perceptual_loads_vgg_weights_from_a_file(tmp_path):
    d = create_discriminator("perceptual", **TINY_PERCEPTUAL)
    # A torchvision-style full-model state dict ("features.N.weight").
    state = {f"features.{k}": v for k, v in nn.Sequential(*[b for blk in d.vgg.blocks for b in blk]).state_dict().items()}
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    other = create_discriminator("perceptual", ndf=8, vgg_weights=str(path))
    for a, b in zip(d.vgg.parameters(), other.vgg.parameters()):
        assert torch.equal(a, b)


def test_perceptual_vgg_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth"):
        create_discriminator("perceptual", ndf=8)  # "imagenet", offline in tests
    bad = tmp_path / "vgg.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not be read"):
        create_discriminator("perceptual", ndf=8, vgg_weights=str(bad))
    torch.save({"fc.weight": torch.zeros(2)}, bad)
    with pytest.raises(ValueError, match="not a VGG16 state dict"):
        create_discriminator("perceptual", ndf=8, vgg_weights=str(bad))


def test_perceptual_random_weights_log_a_warning(caplog):
    with caplog.at_level("WARNING", logger="handaug.networks.vgg"):
        create_discriminator("perceptual", ndf=8, vgg_weights="random")
    assert any(r.levelname == "WARNING" and "differ from the paper" in r.getMessage() for r in caplog.records)


def test_perceptual_rejects_bad_strides():
    with pytest.raises(ValueError, match="output_strides"):
        create_discriminator("perceptual", ndf=8, vgg_weights="random", output_strides=(4,))
    with pytest.raises(ValueError, match="output_strides"):
        create_discriminator("perceptual", ndf=8, vgg_weights="random", output_strides=(8, 12))


def test_xavier_init_skips_frozen_vgg():
    d = create_discriminator("perceptual", **TINY_PERCEPTUAL)
    vgg_before = [p.clone() for p in d.vgg.parameters()]
    head_before = d.heads["8"].weight.clone()
    init_weights(d, "xavier", 0.02)
    assert all(torch.equal(a, b) for a, b in zip(vgg_before, d.vgg.parameters()))
    assert not torch.equal(head_before, d.heads["8"].weight)
    assert d.heads["8"].weight.std() < 0.05  # gain 0.02
    assert torch.count_nonzero(d.heads["8"].bias) == 0


def test_init_type_is_checked():
    with pytest.raises(ValueError, match="init_type"):
        init_weights(nn.Conv2d(1, 1, 1), "uniform")


@pytest.mark.parametrize(("norm", "layer"), [("batch", nn.BatchNorm2d), ("instance", nn.InstanceNorm2d), ("none", None)])
def test_resnet_norm_and_dropout_options_build_the_references_blocks(norm, layer):
    net = create_generator("resnet", ngf=8, n_blocks=2, norm=norm, dropout=0.5)
    norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d))]
    if layer is None:
        assert norms == [] and all(m.bias is not None for m in net.modules() if isinstance(m, nn.Conv2d))
    else:
        assert norms and all(type(m) is layer for m in norms)
    dropouts = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 2 and all(m.p == 0.5 for m in dropouts)  # one per residual block
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.manual_seed(0)
    net.train()
    assert not torch.equal(net(x), net(x))  # dropout is active while training
    net.eval()
    assert torch.equal(net(x), net(x))
    assert [m for m in create_generator("resnet", ngf=8, n_blocks=2).modules() if isinstance(m, nn.Dropout)] == []


def test_network_arguments_follow_the_one_rule():
    """The networks check their arguments with handaug.arguments: numpy integers and numpy bools
    are accepted and stored as plain Python values; bools are not sizes, 1 is not a flag."""
    generator = ResnetGenerator(ngf=np.int64(4), n_blocks=np.uint8(1), residual=np.bool_(True), dropout=np.float32(0.25))
    assert type(generator.residual) is bool and generator.residual
    assert n_params(generator) == n_params(ResnetGenerator(ngf=4, n_blocks=1, residual=True, dropout=0.25))
    assert n_params(PatchDiscriminator(ndf=np.int32(4), n_layers=np.int64(2))) == n_params(PatchDiscriminator(ndf=4, n_layers=2))
    for kwargs, message in [
        ({"ngf": True}, r"^ngf must be an integer >= 1, got True$"),
        ({"n_blocks": -1}, r"^n_blocks must be a non-negative integer, got -1$"),
        ({"residual": 1}, r"^residual must be True or False, got 1$"),
        ({"dropout": 1.0}, r"^dropout must be a number in \[0, 1\), got 1.0$"),
        ({"dropout": "0.5"}, r"^dropout must be a number in \[0, 1\), got '0.5'$"),
        ({"norm": "layer"}, r"^norm must be one of \('instance', 'batch', 'none'\), got 'layer'$"),
    ]:
        with pytest.raises(ValueError, match=message):
            ResnetGenerator(**kwargs)
    with pytest.raises(ValueError, match=r"^n_layers must be an integer >= 1, got False$"):
        PatchDiscriminator(n_layers=False)
    with pytest.raises(ValueError, match=r"^output_strides must be powers of two"):
        PerceptualDiscriminator(output_strides=(8.0, 16), vgg_weights="random")
