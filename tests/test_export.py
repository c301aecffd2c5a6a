"""handaug-export: ONNX (run with onnxruntime) and TorchScript match the PyTorch generator."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from handaug import load_generator, save_generator
from handaug.export import export_generator
from handaug.registry import create_generator


@pytest.fixture(params=[None, "atanh", "log"], ids=["plain", "residual", "log-residual"])
def ckpt(tmp_path, request):
    torch.manual_seed(0)
    space = request.param
    generator = create_generator("resnet", n_blocks=1, ngf=8, residual=space is not None, residual_space=space or "atanh")
    if space:  # move it off the identity it starts as
        torch.nn.init.normal_(generator.model[-1].weight, 0.0, 0.05)
    return save_generator(generator, tmp_path / "ckpt", background=1.0)


def test_onnx_matches_torch_within_1e3_at_several_sizes(ckpt):
    import onnx
    import onnxruntime as ort

    path = export_generator(ckpt, format="onnx", example_size=64)
    assert path == ckpt / "generator.onnx"
    model = onnx.load(str(path))
    config = json.loads({p.key: p.value for p in model.metadata_props}["handaug_config"])
    assert config["network"]["name"] == "resnet" and config["stride"] == 4
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = load_generator(ckpt)
    for shape in [(1, 3, 64, 64), (3, 3, 96, 40)]:
        x = torch.rand(*shape) * 2 - 1
        (y,) = session.run(None, {"image": x.numpy()})
        with torch.no_grad():
            assert np.abs(y - generator(x).numpy()).max() < 1e-3


def test_torchscript_matches_torch_and_carries_the_config(ckpt, tmp_path):
    path = export_generator(ckpt, tmp_path / "g.pt", format="torchscript", example_size=32)
    extra = {"handaug_config.json": ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["handaug_config.json"])["direction"] == "synthetic_to_real"
    x = torch.rand(2, 3, 48, 36) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(module(x), load_generator(ckpt)(x), atol=1e-5)


def test_bad_arguments(ckpt, tmp_path):
    with pytest.raises(ValueError, match="format"):
        export_generator(ckpt, format="tflite")
    with pytest.raises(ValueError, match="example_size.*stride 4"):
        export_generator(ckpt, format="onnx", example_size=30)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_generator(tmp_path / "missing")


def test_command_line(ckpt, tmp_path):
    out = tmp_path / "cli.pt"
    proc = subprocess.run([sys.executable, "-m", "handaug.cli.export", str(ckpt), "--format", "torchscript", "--out", str(out),
                           "--example-size", "32"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and f"wrote {out}" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "handaug.cli.export", str(tmp_path / "nope")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
