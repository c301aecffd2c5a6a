"""Space-to-depth folding of thin convolutions: the same function, at any size, inside SynthToReal too."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from handaug import SynthToReal, save_generator
from handaug.registry import create_generator
from handaug.space_to_depth import SpaceToDepthConv2d, fold_thin_convolutions


@pytest.mark.parametrize(
    ("c_in", "c_out", "kernel", "padding"), [(3, 16, 7, 0), (16, 3, 7, 0), (3, 8, 5, 2), (2, 5, 7, 3), (3, 6, 4, 1), (3, 4, (7, 5), (0, 1))]
)
@pytest.mark.parametrize("size", [(7, 9), (13, 13), (14, 17), (40, 32)])
def test_folded_convolution_computes_the_original(c_in, c_out, kernel, padding, size):
    torch.manual_seed(0)
    conv = nn.Conv2d(c_in, c_out, kernel, padding=padding).double()
    x = torch.randn(2, c_in, *size, dtype=torch.float64)
    folded = SpaceToDepthConv2d(conv)
    expected = conv(x)
    out = folded(x)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    assert folded.weight.shape[:2] == (4 * c_out, 4 * c_in)  # 4x the channels on both sides


def test_only_plain_stride_one_convolutions_fold():
    for conv in (nn.Conv2d(3, 8, 7, stride=2), nn.Conv2d(3, 8, 7, dilation=2), nn.Conv2d(4, 8, 7, groups=2),
                 nn.Conv2d(3, 8, 7, padding=3, padding_mode="reflect")):
        with pytest.raises(ValueError, match="conv must be a plain nn.Conv2d"):
            SpaceToDepthConv2d(conv)


def test_a_resnet_generator_folds_its_two_thin_layers_and_translates_the_same():
    torch.manual_seed(0)
    generator = create_generator("resnet", n_blocks=2, ngf=16).eval()
    folded = create_generator("resnet", n_blocks=2, ngf=16).eval()
    folded.load_state_dict(generator.state_dict())
    assert fold_thin_convolutions(folded) == 2  # the 3->16 and 16->3 7x7 convolutions; 3x3 ones stay
    x = torch.rand(3, 3, 36, 44) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(folded(x), generator(x), rtol=0, atol=2e-5)


def test_synth_to_real_with_folding_on_the_cpu_matches_the_unfolded_transform(tmp_path, monkeypatch):
    torch.manual_seed(0)
    path = save_generator(create_generator("resnet", n_blocks=1, ngf=8), tmp_path / "g")
    images = torch.randint(0, 256, (4, 3, 30, 26), dtype=torch.uint8)
    plain = SynthToReal(path, precision="fp32")(images)
    monkeypatch.setattr(SynthToReal, "FOLD_THIN_CONVS_ON", ("cpu",))
    s2r = SynthToReal(path, precision="fp32")
    out = s2r(images)
    assert any(isinstance(m, SpaceToDepthConv2d) for m in s2r.generators("cpu")[0].modules())
    assert (out.int() - plain.int()).abs().max() <= 1  # float rounding may flip a uint8 rounding
    assert (out != plain).float().mean() < 0.01


# ----------------------------------------------------------------------------- compiled calls
@pytest.mark.slow  # two torch.compile runs on the CPU: about a minute
def test_compiled_calls_agree_with_eager_ones(tmp_path):
    """fp32: compiled and eager agree to a flipped uint8 rounding. bf16: within the documented
    tolerance of fp32, as eager bf16 is (kornia's own dynamo test compares at 1e-5 and sees 3
    levels, so the tolerance is stated rather than assumed)."""
    from handaug.data.procedural import ProceduralHands
    from handaug.precision import BF16_TOLERANCE, cpu_supports_bf16

    torch.manual_seed(0)
    path = save_generator(create_generator("resnet", n_blocks=4, ngf=16), tmp_path / "g", background=1.0)
    data = ProceduralHands("synthetic", image_size=48, length=4, seed=0)
    images = torch.stack([torch.from_numpy(data[i]["image"]).permute(2, 0, 1) for i in range(4)])
    masks = torch.stack([torch.from_numpy(data[i]["mask"] > 0) for i in range(4)])
    eager = SynthToReal(path, precision="fp32", compile=False)(images, mask=masks)
    compiled = SynthToReal(path, precision="fp32", compile=True)(images, mask=masks)
    diff = (compiled.int() - eager.int()).abs()
    assert diff.max() <= 1 and diff.float().mean() < 0.01
    outside = ~masks.unsqueeze(1).expand_as(images)
    assert torch.equal(compiled[outside], images[outside])
    if cpu_supports_bf16():
        fast = SynthToReal(path, precision="bf16", compile=True)(images, mask=masks)
        diff = (fast.float() - eager.float()).abs() / 255
        assert diff.mean() <= BF16_TOLERANCE["mean"] and diff.max() <= BF16_TOLERANCE["max"]
