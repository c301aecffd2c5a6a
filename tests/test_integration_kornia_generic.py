"""kornia's generic checks for augmentations, applied to handaug.integrations.kornia.SynthToReal.

kornia runs the same checks on each of its augmentations (``CommonTests`` and the
``_assert_dynamo_fullgraph`` helper in its ``tests/augmentation/test_augmentation.py``, the
``IntensityAugmentationBase2D`` autocast check in ``tests/augmentation/test_base.py`` and
``TestMultiprocessing``). They are rewritten here for this adapter, with two differences that
kornia makes for its RGB-only augmentations too: inputs have 3 channels (a 1-channel ``(4, 5)``
input is refused with a clear error instead), and compiling uses the ``aot_eager`` backend (the
same fullgraph tracing by dynamo and AOTAutograd, without inductor's minutes of C++ compilation
on a CPU). Not covered: ``gradcheck``, because the translation is documented as not
differentiable (the generator runs in inference mode).
"""

from __future__ import annotations

import os
from unittest.mock import patch

import kornia
import pytest
import torch
from kornia.augmentation import AugmentationSequential
from kornia.augmentation._2d.base import AugmentationBase2D
from torch.utils.data import DataLoader, Dataset

from handaug import save_generator
from handaug.integrations.kornia import SynthToReal
from handaug.registry import create_generator

#: fullgraph tracing without inductor's code generation (which takes about a minute per graph on 2 CPU cores).
BACKEND = "aot_eager"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    return save_generator(create_generator("resnet", n_blocks=1, ngf=8), tmp_path_factory.mktemp("kgeneric") / "ckpt",
                          background=1.0, trained_with_masks=True)  # fmt: skip


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


def make(ckpt, **kwargs):
    return SynthToReal(ckpt, precision="fp32", **kwargs)


# ----------------------------------------------------------------------------- CommonTests
def test_smoke(ckpt, dtype):
    augmentation = make(ckpt)
    assert isinstance(augmentation, AugmentationBase2D)
    batch_shape = (4, 3, 5, 6)
    params = augmentation.forward_parameters(batch_shape)
    assert isinstance(params, dict)
    test_input = torch.ones(batch_shape, dtype=dtype)
    transformation = augmentation.compute_transformation(test_input, params, augmentation.flags)
    assert transformation.shape == (4, 3, 3)
    output = augmentation.apply_transform(test_input, params, augmentation.flags, transformation)
    assert output.shape[0] == batch_shape[0]
    output = augmentation(test_input, params=augmentation.forward_parameters(batch_shape))
    assert output.shape[0] == batch_shape[0]
    assert augmentation.transform_matrix.shape == (4, 3, 3)


@pytest.mark.parametrize("keepdim", [True, False])
@pytest.mark.parametrize("input_shape", [(3, 4, 5), (2, 3, 4, 5)])
def test_cardinality(ckpt, dtype, input_shape, keepdim):
    batched = (*(1,) * (4 - len(input_shape)), *input_shape)
    for p in (0.0, 1.0):
        output = make(ckpt, p=p, keepdim=keepdim)(torch.rand(input_shape, dtype=dtype))
        assert output.shape == (input_shape if keepdim else batched)
        assert output.dtype == dtype


def test_cardinality_single_channel_is_refused_by_name(ckpt):
    """kornia's 1-channel (4, 5) case: an RGB augmentation says what it needs."""
    with pytest.raises(ValueError, match=r"input must have 3 \(RGB\) channels"):
        make(ckpt, p=1.0)(torch.rand(4, 5))


def test_random_p_0(ckpt, dtype):
    test_input = torch.rand((2, 3, 4, 5), dtype=dtype)
    torch.testing.assert_close(make(ckpt, p=0.0)(test_input), test_input)


def test_random_p_1_changes_every_image(ckpt, dtype):
    test_input = torch.rand((2, 3, 4, 5), dtype=dtype)
    output = make(ckpt, p=1.0)(test_input)
    assert (output != test_input).flatten(1).any(1).all()


def test_inverse_coordinate_check_identity(ckpt, dtype):
    """kornia skips its coordinate check for intensity augmentations: their transform is the identity."""
    torch.manual_seed(42)
    input_tensor = torch.zeros((1, 3, 50, 100), dtype=dtype)
    input_tensor[:, :, 20:30, 40:60] = 1.0
    augmentation = make(ckpt, p=1.0)
    output = augmentation(input_tensor)
    assert output.shape == input_tensor.shape
    assert torch.equal(augmentation.transform_matrix, kornia.core.ops.eye_like(3, augmentation.transform_matrix))


def test_module_composition(ckpt, dtype):
    """Sequential(a, b)(x) == b(a(x)), and the transform matrix is the product of the two."""
    a, b = make(ckpt, p=1.0), make(ckpt, p=1.0)
    sequence = AugmentationSequential(a, b)
    input_tensor = torch.rand(2, 3, 5, 5, dtype=dtype)
    torch.manual_seed(42)
    out_a = a(input_tensor)
    transform_a = a.transform_matrix
    out_manual = b(out_a)
    transform_manual = b.transform_matrix @ transform_a
    torch.manual_seed(42)
    out_sequence = sequence(input_tensor)
    assert out_manual.shape == out_sequence.shape
    torch.testing.assert_close(out_manual, out_sequence)
    torch.testing.assert_close(transform_manual, sequence.transform_matrix)


# ----------------------------------------------------------------------------- torch.compile(fullgraph=True)
@pytest.mark.parametrize("pool", [1, 2], ids=["one checkpoint", "pool of two"])
def test_dynamo_fullgraph_with_and_without_params(ckpt, tmp_path, pool):
    """kornia's _assert_dynamo_fullgraph: compile with pre-drawn params (matches eager), then a fresh
    augmentation with no params (the parameter generation is traced too). A per-image gate with a
    mix of chosen and skipped images is the data-dependent case that used to break the graph."""
    ckpts = ckpt if pool == 1 else [ckpt, save_generator(create_generator("resnet", n_blocks=1, ngf=8), tmp_path / "b")]
    torch.manual_seed(0)
    x = torch.rand(4, 3, 8, 8)
    op = make(ckpts, p=0.5)
    params = op.forward_parameters(x.shape)
    params["batch_prob"] = torch.tensor([1.0, 0.0, 1.0, 0.0])  # a mixed gate, whatever the seed drew
    expected = op(x, params=params)
    torch._dynamo.reset()
    try:
        compiled = torch.compile(op, fullgraph=True, backend=BACKEND)(x, params=params)
        torch.testing.assert_close(compiled, expected)
        assert torch.equal(compiled[1], x[1]) and torch.equal(compiled[3], x[3])  # skipped rows: untouched
        torch._dynamo.reset()
        assert torch.compile(make(ckpts, p=0.5), fullgraph=True, backend=BACKEND)(x).shape == x.shape
    finally:
        torch._dynamo.reset()


def test_dynamo_fullgraph_direct_call_with_a_bool_hand_mask(ckpt):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8)
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[:, :, 2:6, 2:6] = True
    op = make(ckpt, p=1.0)
    params = op.forward_parameters(x.shape)
    expected = op(x, params=params, mask=mask)
    torch._dynamo.reset()
    try:
        out = torch.compile(op, fullgraph=True, backend=BACKEND)(x, params=params, mask=mask)
    finally:
        torch._dynamo.reset()
    torch.testing.assert_close(out, expected)
    outside = ~mask.expand_as(x)
    assert torch.equal(out[outside], x[outside])


def test_dynamo_hand_crop_is_refused_with_a_reason(ckpt):
    x = torch.rand(2, 3, 8, 8)
    mask = torch.ones(2, 1, 8, 8, dtype=torch.bool)
    torch._dynamo.reset()
    try:
        with pytest.raises(Exception, match="hand_crop=True cannot be compiled"):
            torch.compile(make(ckpt, hand_crop=True), fullgraph=True, backend=BACKEND)(x, mask=mask)
    finally:
        torch._dynamo.reset()


# ----------------------------------------------------------------------------- autocast (test_base.py)
@pytest.mark.parametrize("batch_prob", [[True, True], [False, True], [False, False]])
def test_autocast_keeps_the_input_dtype(ckpt, batch_prob):
    augmentation = make(ckpt, p=1.0)
    x = torch.rand(len(batch_prob), 3, 10, 7)
    with patch.object(augmentation, "__batch_prob_generator__", return_value=torch.tensor(batch_prob)):
        params = augmentation.forward_parameters(x.shape)
    with torch.autocast("cpu"):
        result = augmentation(x, params)
    assert result.dtype == x.dtype


# ----------------------------------------------------------------------------- TestMultiprocessing
class Translated(Dataset):
    """kornia's DummyMPDataset: each item goes through the augmentation in the worker."""

    def __init__(self, augmentation):
        self.augmentation = augmentation

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return self.augmentation(torch.rand(3, 16, 16))[0]


@pytest.mark.parametrize(
    "context", ["fork", pytest.param("spawn", marks=pytest.mark.slow), pytest.param("forkserver", marks=pytest.mark.slow)]
)
def test_dataloader_multiprocessing_context(ckpt, context):
    if context != "spawn" and not hasattr(os, "fork"):
        pytest.skip("fork and forkserver exist only on POSIX")
    augmentation = make(ckpt, p=1.0)
    augmentation(torch.rand(2, 3, 16, 16))  # the parent has translated before the workers start
    loader = DataLoader(Translated(augmentation), batch_size=4, num_workers=2, persistent_workers=True,
                        multiprocessing_context=context, timeout=120)  # fmt: skip
    batches = [b for b in loader]
    assert [b.shape for b in batches] == [(4, 3, 16, 16)] * 2
