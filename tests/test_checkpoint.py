"""The generator checkpoint format: exact round trips, and a clear error for every broken file."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from tiny import TINY_GENERATOR

from handaug import load_generator, read_checkpoint, save_generator
from handaug.checkpoint_config import CONFIG_FILE, WEIGHTS_FILE
from handaug.registry import PluginError, create_discriminator, create_generator, network_spec


@pytest.fixture
def generator():
    torch.manual_seed(0)
    g = create_generator("resnet", **TINY_GENERATOR)
    for p in g.parameters():  # make the weights differ from a fresh init
        p.data.add_(torch.randn_like(p) * 0.05)
    return g.eval()


@pytest.mark.parametrize("layout", ["dir", "file.safetensors"])
def test_round_trip_gives_identical_outputs(tmp_path, generator, layout):
    path = save_generator(generator, tmp_path / layout, background=1.0, trained_with_masks=True,
                          image_size={"train": 128, "val": 256}, training={"epochs": 3})
    loaded = load_generator(path)
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        assert torch.equal(generator(x), loaded(x))
    assert not loaded.training
    assert all(not p.requires_grad for p in loaded.parameters())
    spec = network_spec(loaded)
    assert (spec.name, spec.kwargs) == ("resnet", TINY_GENERATOR)
    ckpt = read_checkpoint(path)
    assert ckpt.stride == 4 and ckpt.background == 1.0 and ckpt.direction == "synthetic_to_real"
    assert ckpt.config["training"] == {"epochs": 3}
    assert ckpt.config["image_size"] == {"train": 128, "val": 256}


def test_directory_layout_and_config(tmp_path, generator):
    path = save_generator(generator, tmp_path / "ckpt")
    assert sorted(p.name for p in path.iterdir()) == sorted([WEIGHTS_FILE, CONFIG_FILE])  # no temporary leftovers
    config = json.loads((path / CONFIG_FILE).read_text())
    assert config["format"] == "handaug.generator"
    assert config["network"]["plugin"] == "handaug.plugins.resnet"
    assert config["network"]["distribution"] == "handaug"
    assert len(config["weights_sha256"]) == 64


def test_loading_never_unpickles(tmp_path, generator, monkeypatch):
    path = save_generator(generator, tmp_path / "ckpt")

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load must not be used for handaug checkpoints")

    monkeypatch.setattr(torch, "load", forbidden)
    load_generator(path)


def test_save_rejects_networks_not_made_by_the_registry(tmp_path):
    with pytest.raises(ValueError, match="create_generator"):
        save_generator(torch.nn.Conv2d(3, 3, 1), tmp_path / "x")


def test_save_rejects_a_discriminator(tmp_path):
    d = create_discriminator("pixel", ndf=4)
    with pytest.raises(ValueError, match="discriminator"):
        save_generator(d, tmp_path / "x")


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_generator(tmp_path / "nope")


def test_directory_without_weights(tmp_path, generator):
    path = save_generator(generator, tmp_path / "ckpt")
    (path / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=WEIGHTS_FILE):
        load_generator(path)


def test_corrupt_weights_are_detected_by_hash(tmp_path, generator):
    path = save_generator(generator, tmp_path / "ckpt")
    data = bytearray((path / WEIGHTS_FILE).read_bytes())
    data[-10] ^= 0xFF
    (path / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256"):
        load_generator(path)


def test_truncated_single_file(tmp_path, generator):
    path = save_generator(generator, tmp_path / "g.safetensors")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_generator(path)


def test_safetensors_file_without_handaug_config(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="handaug_config"):
        load_generator(path)


def test_bad_json_config(tmp_path, generator):
    path = save_generator(generator, tmp_path / "ckpt")
    (path / CONFIG_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_generator(path)


def _edit_config(path, **changes):
    config = json.loads((path / CONFIG_FILE).read_text())
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            config[outer][inner] = value
        else:
            config[key] = value
    (path / CONFIG_FILE).write_text(json.dumps(config))


def test_other_format_kind_or_newer_version(tmp_path, generator):
    path = save_generator(generator, tmp_path / "ckpt")
    _edit_config(path, format="something.else")
    with pytest.raises(ValueError, match="not a handaug generator checkpoint"):
        load_generator(path)
    path = save_generator(generator, tmp_path / "ckpt2")
    _edit_config(path, **{"network.kind": "discriminator"})
    with pytest.raises(ValueError, match="holds a 'discriminator' network, expected a generator"):
        load_generator(path)
    path = save_generator(generator, tmp_path / "ckpt3")
    _edit_config(path, format_version=99)
    with pytest.raises(ValueError, match="format version 99.*upgrade"):
        load_generator(path)


def test_weights_that_do_not_fit_the_config(tmp_path, generator):
    path = save_generator(generator, tmp_path / "ckpt")
    _edit_config(path, **{"network.kwargs": {"n_blocks": 3, "ngf": 8}})
    with pytest.raises(ValueError, match="do not fit"):
        load_generator(path)


def test_checkpoint_of_a_plugin_that_is_not_installed(tmp_path, generator):
    path = save_generator(generator, tmp_path / "ckpt")
    _edit_config(path, network={"kind": "generator", "name": "unet", "kwargs": {}, "plugin": "acme_nets",
                                "distribution": "handaug-acme", "version": "1.2"})
    with pytest.raises(PluginError, match=r"'unet'.*acme_nets.*distribution 'handaug-acme'") as err:
        load_generator(path)
    assert "pip install" not in str(err.value)  # the name comes from the file: no command built from it


def test_save_is_atomic_over_an_existing_checkpoint(tmp_path, generator, monkeypatch):
    path = save_generator(generator, tmp_path / "ckpt")
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    import handaug.safetensors_files as ck  # the writer save_generator uses

    real = ck.write_bytes_atomically

    def crash(path, *args, **kwargs):  # killed after the weights, before the config
        if path.name == CONFIG_FILE:
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(ck, "write_bytes_atomically", crash)
    other = create_generator("resnet", **TINY_GENERATOR)
    with pytest.raises(KeyboardInterrupt):
        save_generator(other, path)
    # The weights were replaced but the config was not: loading must refuse the mixture.
    assert sorted(p.name for p in path.iterdir()) == sorted(before)
    with pytest.raises(ValueError, match="SHA-256"):
        load_generator(path)
