"""Weights files handaug writes get the mode a plain ``open()`` gives (``0o666`` less the umask), as every
other file it writes does: safetensors' own writers create ``0o600`` files whatever the umask (issue 20, item 14)."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from tiny import TINY_GENERATOR

from handaug import load_generator, read_checkpoint, save_generator
from handaug.checkpoint_config import WEIGHTS_FILE
from handaug.registry import create_generator, get_registry


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_generator_weights_get_the_umasks_mode(tmp_path, umask):
    generator = create_generator("resnet", **TINY_GENERATOR)
    directory = save_generator(generator, tmp_path / "ckpt")
    single = save_generator(generator, tmp_path / "g.safetensors")
    expected = 0o666 & ~umask  # 0o644 with umask 022, 0o640 with 027
    assert mode(directory / WEIGHTS_FILE) == expected and mode(directory / "config.json") == expected
    assert mode(single) == expected
    read_checkpoint(directory), read_checkpoint(single)


def test_hub_export_and_silnet_weights_get_the_umasks_mode(tmp_path, umask):
    from handaug.export import export_hub_folder
    from handaug.networks.silnet import SilNet
    from handaug.silnet.checkpoint import WEIGHTS_FILE as SILNET_WEIGHTS
    from handaug.silnet.checkpoint import read_silnet_checkpoint, save_silnet

    expected = 0o666 & ~umask
    ckpt = save_generator(create_generator("resnet", **TINY_GENERATOR), tmp_path / "ckpt")
    out = export_hub_folder(ckpt, tmp_path / "hub")
    assert {p.name: mode(p) for p in out.iterdir()} == dict.fromkeys(["README.md", "config.json", WEIGHTS_FILE], expected)
    silnet = save_silnet(SilNet(base_channels=4, depth=2), tmp_path / "silnet")
    assert mode(silnet / SILNET_WEIGHTS) == expected
    read_silnet_checkpoint(silnet)


def test_tied_parameters_are_written_once_and_load_back(tmp_path):
    """Serialising in memory keeps what safetensors' save_model did: a tensor under several names is stored once."""

    class Tied(torch.nn.Module):
        stride = 1

        def __init__(self, width: int = 3):
            super().__init__()
            self.a = torch.nn.Conv2d(3, 3, 1)
            self.b = torch.nn.Conv2d(3, 3, 1)
            self.b.weight = self.a.weight  # tied

        def forward(self, x):
            return torch.tanh(self.b(self.a(x)))

    get_registry("generator").add("tied", Tied)
    generator = create_generator("tied")
    path = save_generator(generator, tmp_path / "t.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert sorted(f.keys()) == ["a.bias", "a.weight", "b.bias"]
    loaded = load_generator(path)
    assert loaded.a.weight is loaded.b.weight and torch.equal(loaded.a.weight, generator.a.weight)
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(loaded(x), generator.eval()(x))


def test_pose_oracle_files_get_the_umasks_mode(tmp_path, umask):
    from handaug.metrics.pose_benefit import KeypointRegressor
    from handaug.metrics.pose_consistency import load_oracle, save_oracle

    torch.manual_seed(0)
    oracle = KeypointRegressor(width=4)
    path = save_oracle(oracle, tmp_path / "oracle.safetensors", image_size=32)
    assert mode(path) == 0o666 & ~umask
    model, _ = load_oracle(path)
    assert all(torch.equal(a, b) for a, b in zip(oracle.state_dict().values(), model.state_dict().values()))
